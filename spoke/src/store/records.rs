//! The records the spoke keeps about documents received and about the hub's log, and how
//! every spoke record is stored: its JSON behind its version (`caravan_common::store::record`).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use caravan_common::{
    DocumentType, MessageId, ParticipantId, RefusalCode, Timestamp,
    store::{StoreError, record},
};

/// The version of the spoke's stored records whose JSON has not changed since records carried
/// versions (`caravan_common::store::record`): 1. Version 0, written before, is the same JSON.
/// A record type whose JSON changed says so with its own version (`JsonRecord::VERSION`).
pub const RECORD_VERSION: u8 = 1;

/// A record the spoke stores as JSON behind its version.
pub trait JsonRecord: Serialize + DeserializeOwned {
    /// The version this spoke writes.
    const VERSION: u8 = RECORD_VERSION;

    /// A body written as an older `version` (0: before records carried versions): by default
    /// the same JSON as today's.
    fn decode_older(version: u8, body: &[u8]) -> serde_json::Result<Self> {
        let _ = version;
        serde_json::from_slice(body)
    }
}

impl JsonRecord for InboxRecord {}
impl JsonRecord for LogHeadRecord {}
impl JsonRecord for Vec<LogAlarm> {}

/// A stored record of any version this spoke reads; `what` names it if it is corrupt, or
/// from a newer spoke.
pub(super) fn decode<T: JsonRecord>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    let (version, body) = record::split(bytes);
    if version > T::VERSION {
        return Err(StoreError::corrupt(
            what,
            format!("record version {version}, written by a newer Caravan"),
        ));
    }
    let decoded = match version == T::VERSION {
        true => serde_json::from_slice(body),
        false => T::decode_older(version, body),
    };
    decoded.map_err(|e| StoreError::corrupt(what, e))
}

/// A record as stored: its version, then its JSON.
pub(super) fn encode<T: JsonRecord>(value: &T) -> Vec<u8> {
    let mut out = vec![0, T::VERSION];
    // Serialising the records' own types (strings, numbers, enums) cannot fail.
    serde_json::to_writer(&mut out, value).expect("records serialise");
    out
}

/// The outcome of end-to-end verification of a received document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verification {
    /// Signature, signing key, sender, recipient, payload and hub receipt all check out; the
    /// notes say what an officer should know besides (a key revoked since, a stale trust list,
    /// a pilot corridor).
    Verified {
        #[serde(default)]
        notes: Vec<Note>,
    },
    /// A check failed; the document is kept as evidence and was acknowledged as rejected.
    Rejected { code: RefusalCode, reason: String },
}

/// Something worth knowing about a verified document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Stable: `KEY_SINCE_REVOKED`, `TRUST_LIST_STALE`, `PILOT_CORRIDOR`,
    /// `CONTENT_NOT_UNDERSTOOD` (signature verified, content not what a sending spoke accepts).
    pub code: String,
    pub message: String,
}

impl Note {
    pub fn new(code: &str, message: String) -> Self {
        Self {
            code: code.to_owned(),
            message,
        }
    }
}

/// A received document, with what was checked and the evidence to prove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    pub message_id: MessageId,
    pub sender: ParticipantId,
    /// As signed in the header; absent if the header could not be trusted.
    pub document_type: Option<DocumentType>,
    pub document_id: Option<String>,
    pub content_type: Option<String>,
    pub supersedes: Option<MessageId>,
    /// The message of ours this document answers.
    #[serde(default)]
    pub in_reply_to: Option<MessageId>,
    /// When the document is a business response: its decision.
    #[serde(default)]
    pub response: Option<ResponseBody>,
    /// Key fields read from a verified document (number, issue date).
    #[serde(default)]
    pub summary: Option<crate::document::Summary>,
    pub created_at: Option<Timestamp>,
    pub key_id: Option<String>,
    pub payload_length: u64,
    /// SHA-256 of the payload as received, hex.
    pub payload_sha256: String,
    /// From the hub's receipt, when it verified.
    pub hub_sequence: Option<u64>,
    pub accepted_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub verification: Verification,
    /// The signed header, its signature and the hub's signed receipt, base64: the evidence.
    pub evidence: Evidence,
    /// The content checks ([`crate::checks`]) of a verified, understood document, as judged on
    /// receipt; its `replaced` line turns REPLACED when a replacement arrives. Empty in
    /// records from before content checks, and for documents not verified or not understood.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::checks::Check>,
    /// The message that replaced this document, once a verified replacement arrived: kept for
    /// every document, checked or not (an unchecked one gets no `replaced` line, so no verdict
    /// on what was never judged). Absent in records from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<MessageId>,
}

impl InboxRecord {
    /// The number the document states (from its summary), for the duplicate check.
    pub fn number(&self) -> Option<&str> {
        self.summary.as_ref()?.document_number.as_deref()
    }

    /// The message that replaced this document, if one arrived.
    pub fn replaced_by(&self) -> Option<MessageId> {
        self.replacement.or_else(|| {
            self.checks
                .iter()
                .find(|c| c.rule == "REPLACED")
                .and_then(|c| c.params.get("replacement")?.parse().ok())
        })
    }

    /// Whether the inbox's search text `q` matches this record, case-insensitively: in its
    /// document number, its sender (whole), or its summary's parties, goods descriptions and
    /// HS codes (an HS code by its start). An empty `q` matches everything.
    pub fn matches_text(&self, q: &str) -> bool {
        let q = q.trim().to_lowercase();
        q.is_empty()
            || self
                .document_id
                .as_deref()
                .is_some_and(|d| d.to_lowercase().contains(&q))
            || self.sender.as_str().to_lowercase() == q
            || self.summary.as_ref().is_some_and(|s| s.matches(&q))
    }
}

/// Signed bytes kept as evidence, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub header: String,
    pub signature: String,
    pub signature_key_id: String,
    /// The hub's signed receipt (protocol v1); empty when the receipt is `accepted_proof`.
    pub receipt: String,
    /// The log proof of the document's ACCEPTED entry under a signed tree head: its receipt
    /// under protocol v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_proof: Option<String>,
    /// This spoke's signed acknowledgement, once sent.
    pub ack: Option<String>,
}

/// Media type of a business response's payload.
pub const RESPONSE_CONTENT_TYPE: &str = "application/vnd.caravan.response+json";

/// The payload of a business response: the recipient's decision about a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an importing authority decided about a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Rejected,
}

/// A verified business response to a document this spoke sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The response's own message id (in the inbox).
    pub message_id: MessageId,
    pub decision: Decision,
    pub reason: Option<String>,
    pub received_at: Timestamp,
}

/// A tree head of the hub's exchange log that this spoke verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeadRecord {
    pub size: u64,
    /// Merkle root, lowercase hex.
    pub root: String,
    pub signed_at: Timestamp,
    pub key_id: String,
    /// The encoded `caravan.v1.SignedTreeHead`, base64: evidence for third parties.
    pub signed: String,
}

/// A failed check of the hub's exchange log: the hub showed something it cannot stand by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAlarm {
    pub at: Timestamp,
    /// `BAD_LOG_PROOF` or `LOG_INCONSISTENT` (the log), or `HUB_LOST_DOCUMENTS` (documents
    /// with receipts the hub no longer knew, resubmitted).
    pub code: String,
    pub detail: String,
    /// The message whose proof failed, if the alarm came from one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<MessageId>,
    /// The signed heads involved, as evidence.
    #[serde(default)]
    pub heads: Vec<LogHeadRecord>,
}
