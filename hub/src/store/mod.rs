//! The hub's durable state: its records in typed tables on the store foundation.
//!
//! The exchange needs only a handful of operations: accept a message (message, payload,
//! dedup index, recipient queue entry, status and exchange-log entry, all in one atomic write),
//! list what is pending for a recipient, record deliveries and acknowledgements, answer status
//! queries, and make writes durable. [`Backend`] (`backend.rs`) is those operations over a
//! `caravan_common::store::Db`, on redb (the default for a new store) or sled
//! (`store_engine`); [`Store`] is the cheap handle the rest of the hub holds.
//!
//! Writes are applied in memory first; [`Backend::flush`] makes everything written so far
//! durable. Callers batch concurrent writers onto one flush (see `crate::commit`) instead of
//! flushing per write.

mod backend;
mod records;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp};

pub use backend::{Backend, FORMAT_VERSION, PAYLOAD_CHUNK, TABLES};
/// The store's one error, shared with the spokes (`caravan_common::store`).
pub use caravan_common::store::StoreError;
pub use records::{
    CertificateRecord, LogEntry, LogKind, MessageState, RegistryRecord, RevokedCertificate,
    StatusEvent, StatusRecord, Transition, TreeHead,
};

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
    pub receipt: Vec<u8>,
    pub document_type: String,
    pub accepted_at: Timestamp,
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

/// The handle the hub holds: cheap to clone, shared by all tasks. Writes on the request path
/// go through `crate::commit` (one writer thread, group commit); this handle reads.
#[derive(Clone)]
pub struct Store(Arc<Backend>);

impl Store {
    pub fn new(backend: Backend) -> Self {
        Self(Arc::new(backend))
    }

    /// [`Store::new`] for a backend the caller keeps a handle to.
    pub fn shared(backend: Arc<Backend>) -> Self {
        Self(backend)
    }

    /// Run a long store operation (a backup, an audit, an expiry sweep) on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let backend = self.0.clone();
        caravan_common::store::blocking(move || op(&backend)).await
    }

    /// Direct access, on the calling thread, for reads. The request path's reads use it from
    /// async tasks: the engine reads from memory (its page cache holds the working set) in
    /// microseconds, less than a hand-off to another thread and back costs, and reads never
    /// wait for a write's turn.
    pub fn backend(&self) -> &Backend {
        &self.0
    }

    pub(crate) fn arc(&self) -> Arc<Backend> {
        self.0.clone()
    }
}
