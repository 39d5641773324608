//! The control and NSW APIs' answers, as they travel in JSON: what the API promises its
//! callers (the CLI, [`crate::client`], national single windows), apart from how the store
//! keeps records, converted from the stored records here and nowhere else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use caravan_common::{DocumentType, MessageId, ParticipantId, Refusal, RefusalCode, Timestamp};

use crate::{
    checks::{self, Check, Outcome},
    document::{Field, Problem, Summary},
    outbound::Sent,
    store::{
        AckCheck, AckRecord, AnswerRecord, Decision, Evidence, InboxRecord, LogAlarm,
        LogHeadRecord, Note, ReceiptInfo, ResponseBody, SentRecord, SentState, StateChange,
        Verification,
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
    pub last_verified_head: Option<LogHeadView>,
    pub alarms_total: u64,
    pub alarms: Vec<LogAlarmView>,
}

impl LogView {
    pub fn new(head: Option<&LogHeadRecord>, alarms: &[LogAlarm], alarms_total: u64) -> Self {
        Self {
            last_verified_head: head.map(LogHeadView::from),
            alarms_total,
            alarms: alarms.iter().map(LogAlarmView::from).collect(),
        }
    }
}

/// A tree head of the hub's exchange log that this spoke verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeadView {
    pub size: u64,
    /// Merkle root, lowercase hex.
    pub root: String,
    pub signed_at: Timestamp,
    pub key_id: String,
    /// The encoded `caravan.v1.SignedTreeHead`, base64: evidence for third parties.
    pub signed: String,
}

impl From<&LogHeadRecord> for LogHeadView {
    fn from(h: &LogHeadRecord) -> Self {
        Self {
            size: h.size,
            root: h.root.clone(),
            signed_at: h.signed_at,
            key_id: h.key_id.clone(),
            signed: h.signed.clone(),
        }
    }
}

/// A failed check of the hub's exchange log, or documents the hub lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAlarmView {
    pub at: Timestamp,
    /// `BAD_LOG_PROOF`, `LOG_INCONSISTENT` or `HUB_LOST_DOCUMENTS`.
    pub code: String,
    pub detail: String,
    /// The message whose proof failed, if the alarm came from one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<MessageId>,
    /// The signed heads involved, as evidence.
    #[serde(default)]
    pub heads: Vec<LogHeadView>,
}

impl From<&LogAlarm> for LogAlarmView {
    fn from(a: &LogAlarm) -> Self {
        Self {
            at: a.at,
            code: a.code.clone(),
            detail: a.detail.clone(),
            message_id: a.message_id,
            heads: a.heads.iter().map(LogHeadView::from).collect(),
        }
    }
}

/// The outcome of end-to-end verification of a received document, as the APIs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum VerificationView {
    /// Every check passed; the notes say what an officer should know besides.
    Verified {
        #[serde(default)]
        notes: Vec<NoteView>,
    },
    /// A check failed; the document is kept as evidence and was acknowledged as rejected.
    Rejected { code: RefusalCode, reason: String },
}

impl VerificationView {
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified { .. })
    }
}

impl From<&Verification> for VerificationView {
    fn from(v: &Verification) -> Self {
        match v {
            Verification::Verified { notes } => Self::Verified {
                notes: notes.iter().map(NoteView::from).collect(),
            },
            Verification::Rejected { code, reason } => Self::Rejected {
                code: *code,
                reason: reason.clone(),
            },
        }
    }
}

/// Something worth knowing about a verified document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteView {
    /// Stable: `KEY_SINCE_REVOKED`, `TRUST_LIST_STALE`, `PILOT_CORRIDOR`.
    pub code: String,
    pub message: String,
}

impl From<&Note> for NoteView {
    fn from(n: &Note) -> Self {
        Self {
            code: n.code.clone(),
            message: n.message.clone(),
        }
    }
}

/// A business response's decision, as the APIs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseView {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&ResponseBody> for ResponseView {
    fn from(r: &ResponseBody) -> Self {
        Self {
            decision: r.decision,
            reason: r.reason.clone(),
        }
    }
}

/// One line of the content checks ([`crate::checks`]), as the APIs show it: the officer's text
/// is rendered from `message_key` with `params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// `issuer`, `header`, `dates`, `duplicate` or `replaced`.
    pub check: String,
    /// `PASS`, `WARN` or `FAIL`.
    pub outcome: Outcome,
    /// Stable rule name, e.g. `ISSUER_COUNTRY_MISMATCH`, `DUPLICATE_NUMBER`, `REPLACED`.
    pub rule: String,
    pub message_key: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl From<&Check> for CheckView {
    fn from(c: &Check) -> Self {
        Self {
            check: c.check.as_str().to_owned(),
            outcome: c.outcome,
            rule: c.rule.clone(),
            message_key: c.message_key.clone(),
            params: c.params.clone(),
        }
    }
}

/// The overall verdict on a verified document with content checks: genuine and consistent
/// only when the signature verified and every check passed; otherwise the failing (else
/// warning) check is the headline. The signature verdict (`verification`) stands apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictView {
    /// `GENUINE_AND_CONSISTENT`, `GENUINE_WITH_WARNINGS` or `GENUINE_BUT_INCONSISTENT`.
    pub status: String,
    /// The first failing check, else the first warning; absent when every check passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<CheckView>,
}

impl VerdictView {
    /// The verdict on `r`, when its signature verified and its content was checked.
    pub fn of(r: &InboxRecord) -> Option<Self> {
        // A record whose only line is `replaced` was never checked: an earlier version gave
        // unchecked records that line when they were replaced.
        let unchecked = r
            .checks
            .iter()
            .all(|c| c.check == checks::CheckName::Replaced);
        if !matches!(r.verification, Verification::Verified { .. }) || unchecked {
            return None;
        }
        let status = match checks::worst(&r.checks) {
            Outcome::Pass => "GENUINE_AND_CONSISTENT",
            Outcome::Warn => "GENUINE_WITH_WARNINGS",
            Outcome::Fail => "GENUINE_BUT_INCONSISTENT",
        };
        Some(Self {
            status: status.to_owned(),
            headline: checks::headline(&r.checks).map(CheckView::from),
        })
    }
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
    pub verification: VerificationView,
    pub received_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub payload_length: u64,
    pub supersedes: Option<String>,
    pub in_reply_to: Option<String>,
    pub response: Option<ResponseView>,
    pub summary: Option<Summary>,
    /// The content checks, when the document verified and was understood.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckView>,
    /// The overall verdict, with the content checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView>,
    /// The message that replaced this document, if one arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
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
            verification: VerificationView::from(&r.verification),
            received_at: r.received_at,
            accepted_at: r.accepted_at,
            payload_length: r.payload_length,
            supersedes: r.supersedes.map(|s| s.to_string()),
            in_reply_to: r.in_reply_to.map(|s| s.to_string()),
            response: r.response.as_ref().map(ResponseView::from),
            summary: r.summary.clone(),
            checks: r.checks.iter().map(CheckView::from).collect(),
            verdict: VerdictView::of(r),
            replaced_by: r.replaced_by().map(|m| m.to_string()),
        }
    }
}

/// A received document: what was signed and checked, the evidence, and the fields an officer
/// checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxDetail {
    pub message_id: MessageId,
    pub sender: ParticipantId,
    /// As signed in the header; absent if the header could not be trusted.
    pub document_type: Option<DocumentType>,
    pub document_id: Option<String>,
    pub content_type: Option<String>,
    pub supersedes: Option<MessageId>,
    /// The message of this spoke's that the document answers.
    #[serde(default)]
    pub in_reply_to: Option<MessageId>,
    /// When the document is a business response: its decision.
    #[serde(default)]
    pub response: Option<ResponseView>,
    /// Key fields read from a verified document (number, issue date).
    #[serde(default)]
    pub summary: Option<Summary>,
    pub created_at: Option<Timestamp>,
    pub key_id: Option<String>,
    pub payload_length: u64,
    /// SHA-256 of the payload as received, hex.
    pub payload_sha256: String,
    /// From the hub's receipt, when it verified.
    pub hub_sequence: Option<u64>,
    pub accepted_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub verification: VerificationView,
    /// The signed header, its signature and the hub's signed receipt, base64: the evidence.
    pub evidence: EvidenceView,
    /// Read from the document only when it verified: what is not genuine is not interpreted.
    pub fields: Vec<Field>,
    /// The content checks, when the document verified and was understood.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckView>,
    /// The overall verdict, with the content checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView>,
}

impl InboxDetail {
    /// The record's view, with the `fields` read from its document.
    pub fn new(r: &InboxRecord, fields: Vec<Field>) -> Self {
        Self {
            message_id: r.message_id,
            sender: r.sender,
            document_type: r.document_type,
            document_id: r.document_id.clone(),
            content_type: r.content_type.clone(),
            supersedes: r.supersedes,
            in_reply_to: r.in_reply_to,
            response: r.response.as_ref().map(ResponseView::from),
            summary: r.summary.clone(),
            created_at: r.created_at,
            key_id: r.key_id.clone(),
            payload_length: r.payload_length,
            payload_sha256: r.payload_sha256.clone(),
            hub_sequence: r.hub_sequence,
            accepted_at: r.accepted_at,
            received_at: r.received_at,
            verification: VerificationView::from(&r.verification),
            evidence: EvidenceView::from(&r.evidence),
            fields,
            checks: r.checks.iter().map(CheckView::from).collect(),
            verdict: VerdictView::of(r),
        }
    }
}

/// Signed bytes kept as evidence, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceView {
    pub header: String,
    pub signature: String,
    pub signature_key_id: String,
    /// The hub's signed receipt (protocol v1); empty when the receipt is `accepted_proof`.
    pub receipt: String,
    /// The log proof of the document's acceptance under a signed tree head (protocol v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_proof: Option<String>,
    /// This spoke's signed acknowledgement, once sent.
    pub ack: Option<String>,
}

impl From<&Evidence> for EvidenceView {
    fn from(e: &Evidence) -> Self {
        Self {
            header: e.header.clone(),
            signature: e.signature.clone(),
            signature_key_id: e.signature_key_id.clone(),
            receipt: e.receipt.clone(),
            accepted_proof: e.accepted_proof.clone(),
            ack: e.ack.clone(),
        }
    }
}

/// The state of a sent message and its history, as this spoke followed it from the hub, with
/// the recipient's acknowledgement checked here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    pub message_id: String,
    /// `QUEUED`, `REFUSED`, `ACCEPTED`, `DELIVERED`, `ACKNOWLEDGED`, `REJECTED` or `EXPIRED`.
    pub state: SentState,
    /// Every state, from `QUEUED` (at the time it was queued) to the last; a refused document
    /// ends with `REFUSED` (at the time it was queued: the refusal's time is not kept).
    pub transitions: Vec<TransitionView>,
    pub acknowledgement: Option<AckView>,
    /// Business responses from the recipient, linked to this document.
    pub responses: Vec<AnswerView>,
    pub sent: SentDetail,
}

impl From<&SentRecord> for StatusView {
    fn from(sent: &SentRecord) -> Self {
        let detail = SentDetail::from(sent);
        let mut transitions = vec![TransitionView {
            state: SentState::Queued,
            at: sent.queued_at,
        }];
        transitions.extend(detail.transitions.iter().cloned());
        if detail.state == SentState::Refused {
            transitions.push(TransitionView {
                state: SentState::Refused,
                at: sent.queued_at,
            });
        }
        Self {
            message_id: sent.message_id.to_string(),
            state: detail.state,
            transitions,
            acknowledgement: detail.acknowledgement.clone(),
            responses: detail.responses.clone(),
            sent: detail,
        }
    }
}

/// A document this spoke sends or sent, with what happened to it, in one flat object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentDetail {
    pub message_id: MessageId,
    pub recipient: ParticipantId,
    pub document_type: DocumentType,
    pub document_id: String,
    pub payload_length: u64,
    /// SHA-256 of the signed header, hex.
    pub header_sha256: String,
    pub queued_at: Timestamp,
    pub state: SentState,
    /// The hub's receipt, once kept.
    pub receipt: Option<ReceiptView>,
    /// Why the hub refused it, when it did.
    pub refusal: Option<Refusal>,
    /// Submission attempts so far, and the last failure to reach the hub.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Every state the message has been in at the hub, as the hub reported it.
    pub transitions: Vec<TransitionView>,
    /// The recipient's signed acknowledgement, as checked here: proof of receipt.
    pub acknowledgement: Option<AckView>,
    /// Business responses the recipient sent back about this document.
    pub responses: Vec<AnswerView>,
}

impl From<&SentRecord> for SentDetail {
    fn from(r: &SentRecord) -> Self {
        Self {
            message_id: r.message_id,
            recipient: r.recipient,
            document_type: r.document_type,
            document_id: r.document_id.clone(),
            payload_length: r.payload_length,
            header_sha256: r.header_sha256.clone(),
            queued_at: r.queued_at,
            state: r.state(),
            receipt: r.lifecycle.receipt().map(ReceiptView::from),
            refusal: r.lifecycle.refusal().cloned(),
            attempts: r.attempts,
            last_error: r.last_error.clone(),
            transitions: r.transitions.iter().map(TransitionView::from).collect(),
            acknowledgement: r.acknowledgement.as_ref().map(AckView::from),
            responses: r.responses.iter().map(AnswerView::from).collect(),
        }
    }
}

/// A state a sent message entered, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionView {
    pub state: SentState,
    pub at: Timestamp,
}

impl From<&StateChange> for TransitionView {
    fn from(c: &StateChange) -> Self {
        Self {
            state: c.state.into(),
            at: c.at,
        }
    }
}

/// The recipient's signed acknowledgement as this spoke checked it: `verified`, with `ack`
/// (its content) when it did and `problem` (why not) when it did not, and `signed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckView {
    pub verified: bool,
    pub ack: Option<serde_json::Value>,
    pub problem: Option<String>,
    /// The signed acknowledgement (protobuf `SignedAck`), base64.
    pub signed: String,
}

impl From<&AckRecord> for AckView {
    fn from(a: &AckRecord) -> Self {
        let (verified, ack, problem) = match &a.check {
            AckCheck::Verified(ack) => (true, Some(ack.clone()), None),
            AckCheck::Failed(problem) => (false, None, Some(problem.clone())),
        };
        Self {
            verified,
            ack,
            problem,
            signed: a.signed.clone(),
        }
    }
}

/// A verified business response to a document this spoke sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerView {
    /// The response's own message id (in the inbox).
    pub message_id: MessageId,
    pub decision: Decision,
    pub reason: Option<String>,
    pub received_at: Timestamp,
}

impl From<&AnswerRecord> for AnswerView {
    fn from(a: &AnswerRecord) -> Self {
        Self {
            message_id: a.message_id,
            decision: a.decision,
            reason: a.reason.clone(),
            received_at: a.received_at,
        }
    }
}

/// The answer to a send: the document is in the outbox (`QUEUED`), or, when the caller waited,
/// accepted by the hub (with its receipt).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentView {
    pub message_id: String,
    pub document_id: String,
    pub state: SentState,
    pub receipt: Option<ReceiptView>,
    /// The content checks run before queueing (none for a business response): each passed
    /// or only warned, since a failing one refuses the send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckView>,
}

/// The hub's receipt for a sent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    pub hub_sequence: u64,
    pub accepted_at: Timestamp,
    pub key_id: String,
    /// The signed receipt (protobuf `SignedReceipt`), base64: proof of submission (protocol
    /// v1). Absent when the receipt is `log_proof`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signed: String,
    /// The log proof of the document's ACCEPTED entry under a signed tree head (protobuf
    /// `LogProof`), base64: proof of submission (protocol v2, docs/protocol.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_proof: Option<String>,
}

impl From<&ReceiptInfo> for ReceiptView {
    fn from(r: &ReceiptInfo) -> Self {
        Self {
            hub_sequence: r.hub_sequence,
            accepted_at: r.accepted_at,
            key_id: r.key_id.clone(),
            signed: r.signed.clone(),
            log_proof: r.log_proof.clone(),
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
            checks: s.checks.iter().map(CheckView::from).collect(),
        }
    }
}

/// `GET /trust-list`: the trust list held, and whether it is fresh (the view every CLI and
/// API shows, `caravan_common::trust::view`).
pub use caravan_common::trust::view::{
    CorridorView, HubKeyView, KeyView, ParticipantView, TrustListView,
};

#[cfg(test)]
mod tests;
