//! The control and NSW APIs' answers, as they travel in JSON: what the API promises its
//! callers (the CLI, [`crate::client`], national single windows), apart from how the store
//! keeps records, converted from the stored records here and nowhere else.

use serde::{Deserialize, Serialize};

use caravan_common::Timestamp;

use crate::{
    document::{Field, Problem, Summary},
    outbound::Sent,
    store::{
        AckRecord, AnswerRecord, InboxRecord, LogAlarm, LogHeadRecord, ReceiptInfo, ResponseBody,
        SentRecord, SentState, StateChange, Verification,
    },
};

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
    /// For a refused document: each problem, with the field and rule it breaks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// `GET /health`: who this spoke is, and whether its delivery stream to the hub is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub participant: String,
    pub hub_connected: bool,
}

/// What this spoke verified of the hub's exchange log, and every alarm kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogView {
    pub last_verified_head: Option<LogHeadRecord>,
    pub alarms_total: u64,
    pub alarms: Vec<LogAlarm>,
}

/// One line of the inbox listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxItem {
    /// Arrival order: list again with `since` set to the last cursor seen.
    pub cursor: u64,
    pub message_id: String,
    pub sender: String,
    pub document_type: Option<String>,
    pub document_id: Option<String>,
    pub verified: bool,
    pub verification: Verification,
    pub received_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub payload_length: u64,
    pub supersedes: Option<String>,
    pub in_reply_to: Option<String>,
    pub response: Option<ResponseBody>,
    pub summary: Option<Summary>,
}

impl From<&InboxRecord> for InboxItem {
    fn from(r: &InboxRecord) -> Self {
        Self {
            cursor: 0,
            message_id: r.message_id.to_string(),
            sender: r.sender.to_string(),
            document_type: r.document_type.map(|t| t.to_string()),
            document_id: r.document_id.clone(),
            verified: matches!(r.verification, Verification::Verified { .. }),
            verification: r.verification.clone(),
            received_at: r.received_at,
            accepted_at: r.accepted_at,
            payload_length: r.payload_length,
            supersedes: r.supersedes.map(|s| s.to_string()),
            in_reply_to: r.in_reply_to.map(|s| s.to_string()),
            response: r.response.clone(),
            summary: r.summary.clone(),
        }
    }
}

/// A received document: its record, and the fields an officer checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxDetail {
    #[serde(flatten)]
    pub record: InboxRecord,
    /// Read from the document only when it verified: what is not genuine is not interpreted.
    pub fields: Vec<Field>,
}

/// The state of a sent message and its history, as this spoke followed it from the hub, with
/// the recipient's acknowledgement checked here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub message_id: String,
    /// `QUEUED`, `REFUSED`, `ACCEPTED`, `DELIVERED`, `ACKNOWLEDGED`, `REJECTED` or `EXPIRED`.
    pub state: SentState,
    pub transitions: Vec<StateChange>,
    pub acknowledgement: Option<AckRecord>,
    /// Business responses from the recipient, linked to this document.
    pub responses: Vec<AnswerRecord>,
    pub sent: SentRecord,
}

/// The answer to a send: the document is in the outbox (`QUEUED`), or, when the caller waited,
/// accepted by the hub (with its receipt).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentView {
    pub message_id: String,
    pub document_id: String,
    pub state: SentState,
    pub receipt: Option<ReceiptView>,
}

/// The hub's receipt for a sent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    pub hub_sequence: u64,
    pub accepted_at: Timestamp,
    pub key_id: String,
    /// The signed receipt (protobuf `SignedReceipt`), base64: proof of submission.
    pub signed: String,
}

impl From<&ReceiptInfo> for ReceiptView {
    fn from(r: &ReceiptInfo) -> Self {
        Self {
            hub_sequence: r.hub_sequence,
            accepted_at: r.accepted_at,
            key_id: r.key_id.clone(),
            signed: r.signed.clone(),
        }
    }
}

impl From<Sent> for SentView {
    fn from(s: Sent) -> Self {
        Self {
            message_id: s.message_id.to_string(),
            document_id: s.document_id,
            state: s.state,
            receipt: s.receipt.as_ref().map(ReceiptView::from),
        }
    }
}

/// `GET /trust-list`: the trust list held, and whether it is fresh (the view every CLI and
/// API shows, `caravan_common::trust::view`).
pub use caravan_common::trust::view::{
    CorridorView, HubKeyView, KeyView, ParticipantView, TrustListView,
};

#[cfg(test)]
mod tests {
    use caravan_common::{DocumentType, MessageId, RefusalCode};
    use serde_json::json;

    use crate::store::Evidence;

    use super::*;

    fn record(id: MessageId) -> InboxRecord {
        InboxRecord {
            message_id: id,
            sender: "KZ".parse().unwrap(),
            document_type: Some(DocumentType::CertificateOfOrigin),
            document_id: Some("KZ-CO-1".into()),
            content_type: Some("application/xml".into()),
            supersedes: None,
            in_reply_to: None,
            response: None,
            summary: None,
            created_at: None,
            key_id: None,
            payload_length: 3,
            payload_sha256: "00".into(),
            hub_sequence: Some(7),
            accepted_at: Some(Timestamp::from_millis(1_000)),
            received_at: Timestamp::from_millis(2_000),
            verification: Verification::Rejected {
                code: RefusalCode::KeyRevoked,
                reason: "lost".into(),
            },
            evidence: Evidence {
                header: String::new(),
                signature: String::new(),
                signature_key_id: String::new(),
                receipt: String::new(),
                ack: None,
            },
        }
    }

    /// The inbox item as the NSW API, the webhook and `inbox --json` have always shown it.
    #[test]
    fn an_inbox_item_keeps_its_json() {
        let id = MessageId::generate();
        let mut item = InboxItem::from(&record(id));
        item.cursor = 4;
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            json!({
                "cursor": 4,
                "message_id": id.to_string(),
                "sender": "KZ",
                "document_type": "e-co",
                "document_id": "KZ-CO-1",
                "verified": false,
                "verification": {"status": "rejected", "code": "KEY_REVOKED", "reason": "lost"},
                "received_at": "1970-01-01T00:00:02.000Z",
                "accepted_at": "1970-01-01T00:00:01.000Z",
                "payload_length": 3,
                "supersedes": null,
                "in_reply_to": null,
                "response": null,
                "summary": null,
            })
        );
    }

    /// The answer to a send, and the same answer read back by the client.
    #[test]
    fn a_sent_view_keeps_its_json_and_reads_back() {
        let id = MessageId::generate();
        let sent = SentView::from(Sent {
            message_id: id,
            document_id: "KZ-CO-1".into(),
            state: SentState::Accepted,
            receipt: Some(ReceiptInfo {
                hub_sequence: 9,
                accepted_at: Timestamp::from_millis(1_000),
                key_id: "abcd".into(),
                signed: "c2ln".into(),
            }),
        });
        let value = serde_json::to_value(&sent).unwrap();
        assert_eq!(
            value,
            json!({
                "message_id": id.to_string(),
                "document_id": "KZ-CO-1",
                "state": "ACCEPTED",
                "receipt": {
                    "hub_sequence": 9,
                    "accepted_at": "1970-01-01T00:00:01.000Z",
                    "key_id": "abcd",
                    "signed": "c2ln",
                },
            })
        );
        let back: SentView = serde_json::from_value(value).unwrap();
        assert_eq!(back.receipt.unwrap().hub_sequence, 9);
    }
}
