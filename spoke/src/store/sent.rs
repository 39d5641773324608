//! The record of each document this spoke sends (`sent`): its state as far as the spoke
//! knows, the hub's receipt or refusal, its history at the hub, the recipient's checked
//! acknowledgement and business responses; and the store's operations on it.

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp};

use super::{
    SpokeStore, StoreError,
    records::{AnswerRecord, decode, encode},
    tables::{META, RECEIPTED, RECEIPTED_PAYLOADS, SENT, STATUS_CURSOR, STATUS_EPOCH},
};

/// Where a document this spoke sends is, as far as the spoke knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SentState {
    /// In the outbox, not yet accepted by the hub (it may be unreachable).
    Queued,
    /// The hub refused it; `refusal` says why. It will not be sent again.
    Refused,
    Accepted,
    Delivered,
    Acknowledged,
    Rejected,
    Expired,
}

/// The hub's receipt for a sent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptInfo {
    pub hub_sequence: u64,
    pub accepted_at: Timestamp,
    pub key_id: String,
    /// The signed receipt (protobuf `SignedReceipt`), base64: proof of submission.
    pub signed: String,
}

/// A document this spoke sends or sent, with what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub message_id: MessageId,
    pub recipient: ParticipantId,
    pub document_type: DocumentType,
    pub document_id: String,
    pub payload_length: u64,
    pub header_sha256: String,
    pub queued_at: Timestamp,
    pub state: SentState,
    pub receipt: Option<ReceiptInfo>,
    pub refusal: Option<caravan_common::Refusal>,
    /// Submission attempts so far, and the last failure to reach the hub.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Every state the message has been in at the hub, as the hub reported it.
    #[serde(default)]
    pub transitions: Vec<StateChange>,
    /// The recipient's signed acknowledgement, as checked here: proof of receipt.
    #[serde(default)]
    pub acknowledgement: Option<AckRecord>,
    /// Business responses the recipient sent back about this document.
    #[serde(default)]
    pub responses: Vec<AnswerRecord>,
}

/// A state a sent message entered, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: SentState,
    pub at: Timestamp,
}

/// The recipient's signed acknowledgement, as this spoke checked it: verified with its content,
/// or not with the reason, never both. Stored, and shown by the control and NSW APIs, in its
/// flat form [`AckJson`] (as before it was an enum), so records written before still decode
/// and the APIs' JSON is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AckJson", into = "AckJson")]
pub struct AckRecord {
    pub check: AckCheck,
    /// The signed acknowledgement (protobuf `SignedAck`), base64.
    pub signed: String,
}

/// What checking an acknowledgement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckCheck {
    /// The signature verified with the recipient's registered key, and the acknowledgement
    /// names this message and header: its content (outcome, reason, time).
    Verified(serde_json::Value),
    /// It did not verify: why.
    Failed(String),
}

impl AckRecord {
    pub fn is_verified(&self) -> bool {
        matches!(self.check, AckCheck::Verified(_))
    }
}

/// [`AckRecord`] as stored and as the APIs show it: `verified`, with `ack` (the content) when
/// it did and `problem` when it did not, and `signed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckJson {
    pub verified: bool,
    pub ack: Option<serde_json::Value>,
    pub problem: Option<String>,
    pub signed: String,
}

impl From<AckJson> for AckRecord {
    /// A stored record said one thing by `verified` and its fields: `verified` decides.
    fn from(json: AckJson) -> Self {
        let check = if json.verified {
            AckCheck::Verified(json.ack.unwrap_or(serde_json::Value::Null))
        } else {
            AckCheck::Failed(json.problem.unwrap_or_default())
        };
        Self {
            check,
            signed: json.signed,
        }
    }
}

impl From<AckRecord> for AckJson {
    fn from(record: AckRecord) -> Self {
        let (verified, ack, problem) = match record.check {
            AckCheck::Verified(ack) => (true, Some(ack), None),
            AckCheck::Failed(problem) => (false, None, Some(problem)),
        };
        Self {
            verified,
            ack,
            problem,
            signed: record.signed,
        }
    }
}

impl SentState {
    /// Settled for good: nothing more will happen to the message.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Refused | Self::Acknowledged | Self::Rejected | Self::Expired
        )
    }
}

impl SpokeStore {
    /// Where the hub's stream of status events was last read, and the hub's epoch that cursor
    /// belongs to (empty before the first event).
    pub fn status_cursor(&self) -> Result<(u64, String), StoreError> {
        let cursor = self.meta_u64(STATUS_CURSOR)?.unwrap_or(0);
        let epoch = self
            .db
            .get(META, STATUS_EPOCH)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        Ok((cursor, epoch))
    }

    /// Apply a status event from the hub to the record of `message_id` and move the cursor,
    /// atomically. Events for messages this spoke has no record of only move the cursor.
    pub fn apply_status(
        &self,
        message_id: MessageId,
        change: StateChange,
        acknowledgement: Option<AckRecord>,
        cursor: u64,
        epoch: &str,
    ) -> Result<(), StoreError> {
        let key = message_id.as_bytes();
        self.db.update(|tx| {
            if let Some(v) = tx.get(SENT, key)? {
                let mut record: SentRecord = decode(&v, "sent record")?;
                if !record.transitions.contains(&change) {
                    if !record.state.is_final() {
                        record.state = change.state;
                    }
                    record.transitions.push(change.clone());
                }
                if acknowledgement.is_some() {
                    record.acknowledgement = acknowledgement.clone();
                }
                tx.insert(SENT, key, &encode(&record))?;
                if record.state.is_final() {
                    tx.remove(RECEIPTED, key)?;
                    tx.remove(RECEIPTED_PAYLOADS, key)?;
                }
            }
            tx.insert(META, STATUS_CURSOR, &cursor.to_be_bytes())?;
            tx.insert(META, STATUS_EPOCH, epoch.as_bytes())
        })
    }

    /// Link a verified business response from `from` to the sent message it answers.
    pub fn link_response(
        &self,
        answered: MessageId,
        from: ParticipantId,
        answer: AnswerRecord,
    ) -> Result<bool, StoreError> {
        let key = answered.as_bytes();
        self.db.update(|tx| {
            let Some(v) = tx.get(SENT, key)? else {
                return Ok(false);
            };
            let mut record: SentRecord = decode(&v, "sent record")?;
            if record.recipient != from {
                return Ok(false);
            }
            if !record
                .responses
                .iter()
                .any(|r| r.message_id == answer.message_id)
            {
                record.responses.push(answer.clone());
            }
            tx.insert(SENT, key, &encode(&record))?;
            Ok(true)
        })
    }

    pub fn sent_update(&self, record: &SentRecord) -> Result<(), StoreError> {
        self.put(SENT, record.message_id.as_bytes(), &encode(record))
    }

    pub fn sent_entry(&self, id: MessageId) -> Result<Option<SentRecord>, StoreError> {
        self.watched(self.get(SENT, id.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledgement_is_verified_or_not_and_keeps_its_stored_form() {
        let verified = AckRecord {
            check: AckCheck::Verified(serde_json::json!({"outcome": "ACCEPTED"})),
            signed: "c2lnbmVk".into(),
        };
        let json = serde_json::to_value(&verified).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"verified": true, "ack": {"outcome": "ACCEPTED"}, "problem": null, "signed": "c2lnbmVk"})
        );
        let failed: AckRecord = serde_json::from_value(serde_json::json!(
            {"verified": false, "ack": null, "problem": "BAD_SIGNATURE: no", "signed": "eA=="}
        ))
        .unwrap();
        assert_eq!(failed.check, AckCheck::Failed("BAD_SIGNATURE: no".into()));
        assert!(!failed.is_verified());
        assert_eq!(
            serde_json::from_value::<AckRecord>(json).unwrap(),
            verified,
            "it round-trips"
        );
    }
}
