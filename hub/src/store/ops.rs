//! What the hub's store operations take and answer ([`super::Backend`]): a message to
//! accept, the outcome of accepting it, pending deliveries, settled messages, acknowledgement
//! updates and results, and what a backup copied. Beside the stored records, apart from the
//! engine code that uses them (so that `backend` never imports its parent).

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp};

use super::records::MessageState;

/// A message the hub has verified and is about to accept.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub sender: ParticipantId,
    pub message_id: MessageId,
    pub recipient: ParticipantId,
    pub document_type: DocumentType,
    pub header_sha256: [u8; 32],
    /// The signed header bytes, exactly as received.
    pub header: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
    pub payload: Vec<u8>,
    pub accepted_at: Timestamp,
}

/// The outcome of [`Backend::accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// Newly stored under `sequence`; `receipt` is the encoded signed receipt; `log_index`
    /// the ACCEPTED entry in the exchange log.
    Accepted {
        sequence: u64,
        receipt: Vec<u8>,
        log_index: u64,
    },
    /// The same (sender, message id) with the same header was accepted before: its original
    /// receipt and log entry (0 if the store predates log proofs).
    Duplicate {
        sequence: u64,
        receipt: Vec<u8>,
        log_index: u64,
    },
    /// The same (sender, message id) was accepted before with a different header.
    Conflict,
}

/// A stored message waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub sequence: u64,
    pub sender: ParticipantId,
    pub message_id: MessageId,
    pub header: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
    pub payload_length: u64,
    /// Read them with [`Backend::payload_chunk`], index 0 to `payload_chunks - 1`.
    pub payload_chunks: u32,
    /// The signed receipt; empty for a message whose sender took a log proof instead.
    pub receipt: Vec<u8>,
    pub document_type: String,
    pub accepted_at: Timestamp,
    /// Its ACCEPTED log entry (1-based), whose proof is its receipt in protocol v2.
    pub log_index: u64,
    /// Recorded DELIVERED already (streamed before, and not settled within
    /// `DELIVERED_AFTER`): streaming it again is not a new delivery.
    pub delivered: bool,
}

/// A message that changed state: who sent it where, what it is and when it was accepted (for
/// the per-corridor metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub sender: ParticipantId,
    pub recipient: ParticipantId,
    pub document_type: String,
    pub accepted_at: Timestamp,
}

/// An acknowledgement the hub has verified, to be recorded.
#[derive(Debug, Clone)]
pub struct AckUpdate {
    /// The recipient acknowledging (the caller).
    pub recipient: ParticipantId,
    pub sender: ParticipantId,
    pub message_id: MessageId,
    pub header_sha256: [u8; 32],
    /// `Acknowledged` or `Rejected`.
    pub state: MessageState,
    /// The encoded signed acknowledgement.
    pub ack: Vec<u8>,
    pub at: Timestamp,
}

/// The outcome of [`Backend::acknowledge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckResult {
    /// Recorded now (`now` describes the message), or already recorded before (`now` is
    /// `None`: an acknowledgement is idempotent): the state the message is in, and the log
    /// entry of its acknowledgement (0 when it was settled otherwise, e.g. expired).
    Recorded {
        state: MessageState,
        log_index: u64,
        now: Option<Settled>,
    },
    /// No message (sender, message id) is addressed to this recipient.
    UnknownMessage,
    /// The acknowledgement's header digest is not the stored message's.
    DigestMismatch,
}

/// What an online backup copied.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// Key-value records copied.
    pub records: u64,
    /// Size of the copy on disk.
    pub bytes: u64,
    /// Entries of the exchange log in the copy.
    pub log_entries: u64,
    /// How long writes waited.
    pub pause: std::time::Duration,
}

/// What the Readiness Scorecard measures of one message ([`super::Backend::exchange_facts`]):
/// who sent what to whom, and when it moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeFact {
    pub sender: String,
    pub recipient: String,
    pub document_type: String,
    pub accepted_at_ms: i64,
    /// Where it is now.
    pub state: MessageState,
    /// When it was first streamed to its recipient: its DELIVERED time, or for one settled
    /// by its recipient before DELIVERED was recorded (the hub records it only for documents
    /// still unsettled a moment after streaming), the acknowledgement's, a bound from above.
    pub delivered_at_ms: Option<i64>,
    /// When it was acknowledged, rejected or expired.
    pub settled_at_ms: Option<i64>,
    /// The recipient's encoded signed acknowledgement, when it rejected the message (its
    /// reason code says why).
    pub rejection: Vec<u8>,
}

impl ExchangeFact {
    /// The fact of a stored message and its states.
    pub fn of(
        sender: String,
        recipient: String,
        document_type: String,
        accepted_at_ms: i64,
        state: MessageState,
        transitions: impl IntoIterator<Item = (MessageState, i64)>,
        ack: Vec<u8>,
    ) -> Self {
        let mut delivered_at_ms = None;
        let mut settled_at_ms = None;
        for (s, at) in transitions {
            match s {
                MessageState::Delivered => {
                    delivered_at_ms.get_or_insert(at);
                }
                s if s.is_final() => settled_at_ms = Some(at),
                _ => {}
            }
        }
        // An answer from the recipient means it was delivered (an expiry does not).
        if matches!(state, MessageState::Acknowledged | MessageState::Rejected) {
            delivered_at_ms = delivered_at_ms.or(settled_at_ms);
        }
        Self {
            sender,
            recipient,
            document_type,
            accepted_at_ms,
            state,
            delivered_at_ms,
            settled_at_ms,
            rejection: if state == MessageState::Rejected {
                ack
            } else {
                Vec::new()
            },
        }
    }
}
