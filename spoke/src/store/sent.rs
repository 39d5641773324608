//! The record of each document this spoke sends (`sent`): its state as far as the spoke
//! knows, the hub's receipt or refusal, its history at the hub, the recipient's checked
//! acknowledgement and business responses; and the store's operations on it, the console's
//! counted pages of them ([`SentPage`]) among these: newest first by message id, whose UUIDv7
//! order is the order the spoke queued them, so no index beside `sent` is needed.

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, MessageId, ParticipantId, Refusal, Timestamp};

use super::{
    SpokeStore, StoreError,
    paging::{CHUNK, Page, PageAt, counted_page},
    records::{AnswerRecord, JsonRecord, decode, encode},
    tables::{
        META, RECEIPTED, RECEIPTED_PAYLOADS, SENT, STATUS_CURSOR, STATUS_EPOCH, uuid_message_id,
    },
};

/// One page of the sent documents, newest first, by message id ([`super::paging`]).
pub type SentPage = Page<MessageId, SentRecord>;

/// The version of the sent record's JSON (`caravan_common::store::record`): 2, its
/// [`Lifecycle`]. Versions 0 and 1 are the flat form (`SentRecordV1`), read still.
pub const SENT_RECORD_VERSION: u8 = 2;

/// Where a document this spoke sends is, as the APIs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SentState {
    /// In the outbox, not yet accepted by the hub (it may be unreachable).
    Queued,
    /// The hub refused it. It will not be sent again.
    Refused,
    Accepted,
    Delivered,
    Acknowledged,
    Rejected,
    Expired,
}

/// A state the hub reports for a message it accepted (its status events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HubState {
    Accepted,
    Delivered,
    Acknowledged,
    Rejected,
    Expired,
}

impl HubState {
    /// Settled for good: nothing more will happen to the message.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Acknowledged | Self::Rejected | Self::Expired)
    }
}

impl From<HubState> for SentState {
    fn from(state: HubState) -> Self {
        match state {
            HubState::Accepted => Self::Accepted,
            HubState::Delivered => Self::Delivered,
            HubState::Acknowledged => Self::Acknowledged,
            HubState::Rejected => Self::Rejected,
            HubState::Expired => Self::Expired,
        }
    }
}

/// The hub's receipt for a sent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptInfo {
    pub hub_sequence: u64,
    pub accepted_at: Timestamp,
    pub key_id: String,
    /// The signed receipt (protobuf `SignedReceipt`), base64: proof of submission (protocol
    /// v1). Empty when the receipt is `log_proof`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signed: String,
    /// The log proof of the ACCEPTED entry under a signed tree head (protobuf `LogProof`),
    /// base64: proof of submission (protocol v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_proof: Option<String>,
}

/// Where a sent document is in its life, with what is known in that state and nothing else:
/// a refusal only when refused, and no refused document with a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Lifecycle {
    /// In the outbox, not yet accepted by the hub (it may be unreachable). `lost_receipt`: a
    /// receipt from a hub that later lost the document (restored from a backup) and to which
    /// it is being resubmitted: kept as evidence until a new one replaces it.
    Queued { lost_receipt: Option<ReceiptInfo> },
    /// The hub refused it, for good: it will not be sent again.
    Refused { refusal: Refusal },
    /// The hub accepted it; `state` is the last state the hub reported. `receipt`: the hub's
    /// verified receipt once the outbox worker kept it (the hub's status events can arrive
    /// before the submission's own answer), until then a lost one it had.
    AtHub {
        state: HubState,
        receipt: Option<ReceiptInfo>,
    },
}

impl Lifecycle {
    /// A new document in the outbox.
    pub const QUEUED: Self = Self::Queued { lost_receipt: None };

    /// Its name in the APIs.
    pub fn state(&self) -> SentState {
        match self {
            Self::Queued { .. } => SentState::Queued,
            Self::Refused { .. } => SentState::Refused,
            Self::AtHub { state, .. } => (*state).into(),
        }
    }

    pub fn is_queued(&self) -> bool {
        matches!(self, Self::Queued { .. })
    }

    /// Settled for good: nothing more will happen to the message.
    pub fn is_final(&self) -> bool {
        match self {
            Self::Queued { .. } => false,
            Self::Refused { .. } => true,
            Self::AtHub { state, .. } => state.is_final(),
        }
    }

    /// The hub's receipt kept (see [`Lifecycle::Queued`] and [`Lifecycle::AtHub`]).
    pub fn receipt(&self) -> Option<&ReceiptInfo> {
        match self {
            Self::Queued { lost_receipt } => lost_receipt.as_ref(),
            Self::Refused { .. } => None,
            Self::AtHub { receipt, .. } => receipt.as_ref(),
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused { refusal } => Some(refusal),
            _ => None,
        }
    }

    /// The hub reported `state`: a settled document stays as it is; otherwise it is at the
    /// hub in `state`, with the receipt it had.
    pub(super) fn reported(self, state: HubState) -> Self {
        match self {
            settled if settled.is_final() => settled,
            Self::Queued { lost_receipt } => Self::AtHub {
                state,
                receipt: lost_receipt,
            },
            Self::AtHub { receipt, .. } => Self::AtHub { state, receipt },
            refused @ Self::Refused { .. } => refused,
        }
    }

    /// The outbox worker's `answer` for a submission (accepted with a receipt, or refused)
    /// applied to what is stored, which the hub's status events may have moved on meanwhile:
    /// a queued document takes the answer; one at the hub keeps the state the hub reported and
    /// takes the receipt. A refusal of a document the hub reports as accepted, and any answer
    /// for a refused one, leave what is stored as it is (the hub's own word stands; never a
    /// refused document with a receipt).
    pub(super) fn settled_by(self, answer: Self) -> Self {
        match (self, answer) {
            (Self::Queued { .. }, answer) => answer,
            (Self::AtHub { state, .. }, Self::AtHub { receipt, .. }) => {
                Self::AtHub { state, receipt }
            }
            (stored, _) => stored,
        }
    }
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
    pub lifecycle: Lifecycle,
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

impl SentRecord {
    /// Its state as the APIs name it.
    pub fn state(&self) -> SentState {
        self.lifecycle.state()
    }

    /// Add `change` to the history, in time order (a change it holds already is not added
    /// again). Returns whether it was new.
    pub(super) fn note(&mut self, change: StateChange) -> bool {
        if self.transitions.contains(&change) {
            return false;
        }
        let at = self.transitions.partition_point(|c| c.at <= change.at);
        self.transitions.insert(at, change);
        true
    }
}

impl JsonRecord for SentRecord {
    const VERSION: u8 = SENT_RECORD_VERSION;

    fn decode_older(_version: u8, body: &[u8]) -> serde_json::Result<Self> {
        let old: SentRecordV1 = serde_json::from_slice(body)?;
        Self::try_from(old).map_err(serde::de::Error::custom)
    }
}

/// A state a sent message entered at the hub, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: HubState,
    pub at: Timestamp,
}

/// A sent record as spokes wrote it before [`Lifecycle`] (record versions 0 and 1): a `state`
/// beside an optional `receipt` and `refusal`, which could contradict it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SentRecordV1 {
    pub message_id: MessageId,
    pub recipient: ParticipantId,
    pub document_type: DocumentType,
    pub document_id: String,
    pub payload_length: u64,
    pub header_sha256: String,
    pub queued_at: Timestamp,
    pub state: SentState,
    pub receipt: Option<ReceiptInfo>,
    pub refusal: Option<Refusal>,
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(default)]
    pub transitions: Vec<StateChangeV1>,
    #[serde(default)]
    pub acknowledgement: Option<AckRecord>,
    #[serde(default)]
    pub responses: Vec<AnswerRecord>,
}

/// A state change as [`SentRecordV1`] kept it, in the APIs' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StateChangeV1 {
    pub state: SentState,
    pub at: Timestamp,
}

/// What a record in the flat form, `state` beside `receipt` and `refusal`, becomes. `state`
/// decides, as the code that wrote it acted on `state` alone: `QUEUED` stays queued (a
/// receipt it carries is one the hub lost, as after a resubmission; a refusal beside it is
/// dropped); `REFUSED` stays refused with its refusal (a receipt beside it, from before a
/// resubmission, is dropped); a state at the hub keeps its receipt if any (none yet is
/// possible: the hub's events can come before the submission's answer) and drops a refusal.
/// `REFUSED` without a refusal, which no spoke wrote, does not decode: the record is damaged.
/// Transitions only ever held the hub's states: any other is dropped.
impl TryFrom<SentRecordV1> for SentRecord {
    type Error = &'static str;

    fn try_from(old: SentRecordV1) -> Result<Self, Self::Error> {
        let at_hub = |state| Lifecycle::AtHub {
            state,
            receipt: old.receipt.clone(),
        };
        let lifecycle = match old.state {
            SentState::Queued => Lifecycle::Queued {
                lost_receipt: old.receipt.clone(),
            },
            SentState::Refused => Lifecycle::Refused {
                refusal: old
                    .refusal
                    .clone()
                    .ok_or("a REFUSED sent record without its refusal")?,
            },
            SentState::Accepted => at_hub(HubState::Accepted),
            SentState::Delivered => at_hub(HubState::Delivered),
            SentState::Acknowledged => at_hub(HubState::Acknowledged),
            SentState::Rejected => at_hub(HubState::Rejected),
            SentState::Expired => at_hub(HubState::Expired),
        };
        let transitions = old
            .transitions
            .into_iter()
            .filter_map(|c| {
                let state = match c.state {
                    SentState::Accepted => HubState::Accepted,
                    SentState::Delivered => HubState::Delivered,
                    SentState::Acknowledged => HubState::Acknowledged,
                    SentState::Rejected => HubState::Rejected,
                    SentState::Expired => HubState::Expired,
                    SentState::Queued | SentState::Refused => return None,
                };
                Some(StateChange { state, at: c.at })
            })
            .collect();
        Ok(Self {
            message_id: old.message_id,
            recipient: old.recipient,
            document_type: old.document_type,
            document_id: old.document_id,
            payload_length: old.payload_length,
            header_sha256: old.header_sha256,
            queued_at: old.queued_at,
            lifecycle,
            attempts: old.attempts,
            last_error: old.last_error,
            transitions,
            acknowledgement: old.acknowledgement,
            responses: old.responses,
        })
    }
}

/// The recipient's signed acknowledgement, as this spoke checked it: verified with its content,
/// or not with the reason, never both. Stored in its flat form [`AckJson`] (as before it was
/// an enum), so records written before still decode; the APIs show it as
/// `crate::api::views::AckView`.
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

/// [`AckRecord`] as stored: `verified`, with `ack` (the content) when it did and `problem`
/// when it did not, and `signed`.
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
                if record.note(change.clone()) {
                    record.lifecycle = record.lifecycle.reported(change.state);
                }
                if acknowledgement.is_some() {
                    record.acknowledgement = acknowledgement.clone();
                }
                tx.insert(SENT, key, &encode(&record))?;
                if record.lifecycle.is_final() {
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

    /// Note a submission attempt that got no answer from the hub (unreachable, or a receipt
    /// that did not verify): the attempts so far and the last error. Only those: the hub's
    /// status events may have moved the record on since the outbox worker read it.
    pub fn note_attempt(
        &self,
        message_id: MessageId,
        attempts: u32,
        last_error: Option<String>,
    ) -> Result<(), StoreError> {
        let key = message_id.as_bytes();
        self.db.update(|tx| {
            if let Some(v) = tx.get(SENT, key)? {
                let mut record: SentRecord = decode(&v, "sent record")?;
                record.attempts = attempts;
                record.last_error = last_error.clone();
                tx.insert(SENT, key, &encode(&record))?;
            }
            Ok(())
        })
    }

    pub fn sent_entry(&self, id: MessageId) -> Result<Option<SentRecord>, StoreError> {
        self.watched(self.get(SENT, id.as_bytes()))
    }

    /// How many documents this spoke has sent or queued.
    pub fn sent_len(&self) -> Result<u64, StoreError> {
        self.db.len(SENT)
    }

    /// A page of at most `want` sent documents for which `keep` holds, newest first (by
    /// message id: the order they were queued), starting `at`, with the count of all matches
    /// and the cursors of the pages on either side. Reads `sent` a chunk at a time to count:
    /// memory holds one chunk and the page.
    pub fn sent_page(
        &self,
        at: PageAt<MessageId>,
        want: usize,
        keep: impl Fn(&SentRecord) -> bool,
    ) -> Result<SentPage, StoreError> {
        self.watched(counted_page(
            at,
            want,
            &mut |before: Option<MessageId>| self.sent_before(before),
            &keep,
        ))
    }

    /// At most [`CHUNK`] sent records queued before `before` (from the newest with `None`),
    /// newest first, with their message ids.
    fn sent_before(
        &self,
        before: Option<MessageId>,
    ) -> Result<Vec<(MessageId, SentRecord)>, StoreError> {
        let end = before.map(|id| *id.as_bytes());
        self.db
            .range(SENT, &[], end.as_ref().map(|e| &e[..]), CHUNK, true)?
            .into_iter()
            .map(|(key, value)| {
                let bytes: [u8; 16] = key
                    .try_into()
                    .map_err(|_| StoreError::corrupt("sent key", "not 16 bytes"))?;
                Ok((uuid_message_id(bytes)?, decode(&value, SENT.name())?))
            })
            .collect()
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

    /// A sent record exactly as spokes wrote it before [`Lifecycle`] (the flat form), with
    /// `state`, `receipt` and `refusal` as given.
    fn flat(id: MessageId, state: &str, receipt: bool, refusal: bool) -> serde_json::Value {
        let receipt = receipt.then(|| {
            serde_json::json!({
                "hub_sequence": 9,
                "accepted_at": "1970-01-01T00:00:01.000Z",
                "key_id": "abcd",
                "signed": "c2ln",
            })
        });
        let refusal =
            refusal.then(|| serde_json::json!({"code": "CORRIDOR_CLOSED", "detail": "closed"}));
        serde_json::json!({
            "message_id": id.to_string(),
            "recipient": "CN",
            "document_type": "e-invoice",
            "document_id": "INV-1",
            "payload_length": 3,
            "header_sha256": "ab",
            "queued_at": "1970-01-01T00:00:00.100Z",
            "state": state,
            "receipt": receipt,
            "refusal": refusal,
            "attempts": 2,
            "last_error": "Unavailable: down",
            "transitions": [{"state": "ACCEPTED", "at": "1970-01-01T00:00:01.000Z"}],
            "acknowledgement": null,
            "responses": [],
        })
    }

    fn receipt() -> ReceiptInfo {
        ReceiptInfo {
            hub_sequence: 9,
            accepted_at: Timestamp::from_millis(1_000),
            key_id: "abcd".into(),
            signed: "c2ln".into(),
            log_proof: None,
        }
    }

    /// The flat form as a stored value: bare (version 0) or behind version 1.
    fn stored(json: &serde_json::Value, version: u8) -> Vec<u8> {
        let body = serde_json::to_vec(json).unwrap();
        match version {
            0 => body,
            v => [&[0, v][..], &body].concat(),
        }
    }

    #[test]
    fn flat_sent_records_from_older_spokes_decode_to_their_lifecycle() {
        let id = MessageId::generate();
        let closed = Refusal::new(
            caravan_common::RefusalCode::CorridorClosed,
            "closed".to_owned(),
        );
        let cases = [
            // (state, receipt, refusal) as written -> the lifecycle read
            (("QUEUED", false, false), Lifecycle::QUEUED),
            // Queued again after the hub lost it: the receipt is kept as a lost one.
            (
                ("QUEUED", true, false),
                Lifecycle::Queued {
                    lost_receipt: Some(receipt()),
                },
            ),
            // A refusal beside QUEUED: `state` decides.
            (("QUEUED", false, true), Lifecycle::QUEUED),
            (
                ("REFUSED", false, true),
                Lifecycle::Refused {
                    refusal: closed.clone(),
                },
            ),
            // Refused on resubmission with the lost receipt still beside it: never both.
            (
                ("REFUSED", true, true),
                Lifecycle::Refused {
                    refusal: closed.clone(),
                },
            ),
            (
                ("ACCEPTED", true, false),
                Lifecycle::AtHub {
                    state: HubState::Accepted,
                    receipt: Some(receipt()),
                },
            ),
            // The hub's events came before the outbox kept the receipt.
            (
                ("DELIVERED", false, false),
                Lifecycle::AtHub {
                    state: HubState::Delivered,
                    receipt: None,
                },
            ),
            // A refusal beside a state at the hub: the hub's word stands.
            (
                ("ACKNOWLEDGED", true, true),
                Lifecycle::AtHub {
                    state: HubState::Acknowledged,
                    receipt: Some(receipt()),
                },
            ),
            (
                ("REJECTED", true, false),
                Lifecycle::AtHub {
                    state: HubState::Rejected,
                    receipt: Some(receipt()),
                },
            ),
            (
                ("EXPIRED", false, false),
                Lifecycle::AtHub {
                    state: HubState::Expired,
                    receipt: None,
                },
            ),
        ];
        for ((state, with_receipt, with_refusal), lifecycle) in cases {
            for version in [0, 1] {
                let bytes = stored(&flat(id, state, with_receipt, with_refusal), version);
                let record: SentRecord = decode(&bytes, "sent").unwrap();
                assert_eq!(record.lifecycle, lifecycle, "{state} v{version}");
                assert_eq!(record.message_id, id);
                assert_eq!(record.attempts, 2);
                assert_eq!(record.last_error.as_deref(), Some("Unavailable: down"));
                assert_eq!(
                    record.transitions,
                    [StateChange {
                        state: HubState::Accepted,
                        at: Timestamp::from_millis(1_000),
                    }]
                );
                // Written again in the lifecycle form, it reads back the same.
                let again = encode(&record);
                assert_eq!(&again[..2], &[0, SENT_RECORD_VERSION]);
                assert_eq!(decode::<SentRecord>(&again, "sent").unwrap(), record);
            }
        }
        // REFUSED without its refusal, which no spoke wrote: damaged, not guessed at.
        let err = decode::<SentRecord>(&stored(&flat(id, "REFUSED", false, false), 1), "sent")
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("without its refusal"), "{err}");
        // From a newer spoke: refused, not misread.
        let newer = [&[0, SENT_RECORD_VERSION + 1][..], b"{}"].concat();
        let err = decode::<SentRecord>(&newer, "sent").unwrap_err();
        assert!(err.to_string().contains("newer Caravan"), "{err}");
    }

    #[test]
    fn a_sent_record_written_by_an_older_spoke_goes_on_in_the_store() {
        use crate::store::fixtures::ENGINES;

        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let id = MessageId::generate();
            // Accepted, as a spoke of record version 1 left it.
            store
                .put(
                    SENT,
                    id.as_bytes(),
                    &stored(&flat(id, "ACCEPTED", true, false), 1),
                )
                .unwrap();
            let record = store.sent_entry(id).unwrap().unwrap();
            assert_eq!(record.state(), SentState::Accepted);
            assert_eq!(record.lifecycle.receipt(), Some(&receipt()));
            assert!(store.check().is_sound(), "{engine}");
            // A status event moves it on and writes it in the lifecycle form.
            let change = StateChange {
                state: HubState::Delivered,
                at: Timestamp::from_millis(2_000),
            };
            store.apply_status(id, change, None, 1, "e").unwrap();
            let bytes = store.db.get(SENT, id.as_bytes()).unwrap().unwrap();
            assert_eq!(&bytes[..2], &[0, SENT_RECORD_VERSION]);
            let record = store.sent_entry(id).unwrap().unwrap();
            assert_eq!(
                record.lifecycle,
                Lifecycle::AtHub {
                    state: HubState::Delivered,
                    receipt: Some(receipt()),
                }
            );
            assert_eq!(record.transitions.len(), 2);
            assert!(store.check().is_sound(), "{engine}");
        }
    }

    #[test]
    fn a_failed_attempt_keeps_what_the_hubs_events_said_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = SpokeStore::open(dir.path(), None, 4 << 20).unwrap();
        let id = MessageId::generate();
        let bytes = stored(&flat(id, "QUEUED", false, false), 1);
        let queued: SentRecord = decode(&bytes, "sent").unwrap();
        store.enqueue(&queued, b"envelope", b"abc").unwrap();
        // The worker read it queued; the hub's event arrives while its attempt fails.
        let change = StateChange {
            state: HubState::Delivered,
            at: Timestamp::from_millis(2_000),
        };
        store.apply_status(id, change, None, 1, "e").unwrap();
        store
            .note_attempt(id, queued.attempts + 1, Some("bad receipt".into()))
            .unwrap();
        let now = store.sent_entry(id).unwrap().unwrap();
        assert_eq!(
            now.state(),
            SentState::Delivered,
            "not wound back to QUEUED"
        );
        assert_eq!(now.transitions.len(), 2);
        assert_eq!(now.attempts, 3);
        assert_eq!(now.last_error.as_deref(), Some("bad receipt"));
    }

    #[test]
    fn the_hubs_events_and_the_outbox_answer_merge_into_one_lifecycle() {
        let accepted = |receipt| Lifecycle::AtHub {
            state: HubState::Accepted,
            receipt,
        };
        let delivered = |receipt| Lifecycle::AtHub {
            state: HubState::Delivered,
            receipt,
        };
        let refused = Lifecycle::Refused {
            refusal: Refusal::new(caravan_common::RefusalCode::CorridorClosed, "closed"),
        };
        // Events: a queued document moves to the hub's state, a final one stays.
        assert_eq!(
            Lifecycle::QUEUED.reported(HubState::Delivered),
            delivered(None)
        );
        assert_eq!(
            accepted(Some(receipt())).reported(HubState::Delivered),
            delivered(Some(receipt()))
        );
        assert_eq!(refused.clone().reported(HubState::Accepted), refused);
        let expired = Lifecycle::AtHub {
            state: HubState::Expired,
            receipt: None,
        };
        assert_eq!(expired.clone().reported(HubState::Delivered), expired);
        // The outbox's answer: taken while queued; after the hub's events, only its receipt.
        assert_eq!(
            Lifecycle::QUEUED.settled_by(accepted(Some(receipt()))),
            accepted(Some(receipt()))
        );
        assert_eq!(Lifecycle::QUEUED.settled_by(refused.clone()), refused);
        assert_eq!(
            delivered(None).settled_by(accepted(Some(receipt()))),
            delivered(Some(receipt()))
        );
        assert_eq!(delivered(None).settled_by(refused.clone()), delivered(None));
        assert_eq!(
            refused.clone().settled_by(accepted(Some(receipt()))),
            refused
        );
        assert!(refused.is_final() && refused.receipt().is_none());
        assert!(!delivered(None).is_final());
        assert_eq!(delivered(None).state(), SentState::Delivered);
    }

    #[test]
    fn sent_documents_page_newest_first_filtered_and_counted() {
        use crate::store::fixtures::ENGINES;

        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let mut ids: Vec<MessageId> = (0..600).map(|_| MessageId::generate()).collect();
            ids.sort();
            for (i, id) in ids.iter().enumerate() {
                let bytes = stored(&flat(*id, "QUEUED", false, false), 1);
                let mut record: SentRecord = decode(&bytes, "sent").unwrap();
                record.document_id = format!("INV-{i}");
                if i.is_multiple_of(3) {
                    record.lifecycle = Lifecycle::AtHub {
                        state: HubState::Rejected,
                        receipt: Some(receipt()),
                    };
                }
                store.enqueue(&record, b"envelope", b"abc").unwrap();
            }
            assert_eq!(store.sent_len().unwrap(), 600);
            let rejected = |r: &SentRecord| r.state() == SentState::Rejected;
            let first = store.sent_page(PageAt::Newest, 50, rejected).unwrap();
            assert_eq!(first.matching, 200, "{engine}");
            assert_eq!(first.records.len(), 50);
            // Newest first: the last queued that was rejected is 597.
            assert_eq!(first.records[0].0, ids[597]);
            assert_eq!(first.records[0].1.document_id, "INV-597");
            assert_eq!(first.newer_from, None);
            let older = first.older_from.unwrap();
            let second = store
                .sent_page(PageAt::Before(older), 50, rejected)
                .unwrap();
            assert_eq!(second.newer, 50);
            assert_eq!(second.records[0].1.document_id, "INV-447");
            let back = store
                .sent_page(PageAt::After(second.newer_from.unwrap()), 50, rejected)
                .unwrap();
            assert_eq!(back.records[0].1.document_id, "INV-597");
            let none = store.sent_page(PageAt::Newest, 50, |_| false).unwrap();
            assert!(none.records.is_empty() && none.matching == 0);
        }
    }
}
