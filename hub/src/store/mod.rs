//! The hub's durable state behind a narrow, synchronous trait.
//!
//! The exchange needs only a handful of operations: accept a message (message, payload,
//! dedup index, recipient queue entry, status and exchange-log entry, all in one atomic write),
//! list what is pending for a recipient, record deliveries and acknowledgements, answer status
//! queries, and make writes durable. [`Store`] is the handle the rest of the hub holds;
//! backends implement [`Backend`]. The one the hub runs, [`kv::KvBackend`], keeps its records
//! in tables of a key-value engine (`caravan_common::kv`): sled, the embedded default, or
//! redb (`store_engine`), whose types never leave that module.
//!
//! Writes are applied in memory first; [`Backend::flush`] makes everything written so far
//! durable. Callers batch concurrent writers onto one flush (see `crate::commit`) instead of
//! flushing per write.

pub mod kv;
mod records;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use caravan_common::{DocumentType, MessageId, ParticipantId, Timestamp, merkle};

pub use records::{
    CertificateRecord, LogEntry, LogKind, MessageState, RegistryRecord, RevokedCertificate,
    StatusEvent, StatusRecord, Transition, TreeHead,
};

/// Failures of the storage layer. They are internal: callers log them and answer the peer
/// with a generic "unavailable" error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an I/O or corruption error.
    #[error("storage backend: {0}")]
    Backend(String),
    /// The store is faulted (a full disk, an I/O error) and recovers by itself
    /// (`caravan_common::recovery`): logged once there, answered UNAVAILABLE here.
    #[error("the hub's store is unavailable: {0}")]
    Unavailable(caravan_common::recovery::Fault),
    /// A stored record failed to decode: the database is corrupt or from an unknown version.
    #[error("stored record {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A stored payload's bytes fail their checksum: the document is not served as good.
    #[error("the stored payload of message {message} (sequence {sequence}) is corrupt: {detail}")]
    PayloadCorrupt {
        sequence: u64,
        /// `<sender>/<message id>`.
        message: String,
        /// The segment file, offset and block, from `caravan_common::segments`.
        detail: String,
    },
    /// The process is out of file descriptors (EMFILE/ENFILE): a payload segment could not be
    /// opened. Nothing is missing; the read works again once descriptors are free.
    #[error("out of file descriptors: {0}")]
    OutOfFiles(String),
}

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

/// A payload being read chunk after chunk ([`Backend::payload_reader`]).
pub trait PayloadChunks: Send {
    /// Chunk `index`, as [`Backend::payload_chunk`] answers it.
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Each chunk read on its own with [`Backend::payload_chunk`].
pub(crate) struct ChunkByChunk<'a, B: ?Sized> {
    pub(crate) backend: &'a B,
    pub(crate) sequence: u64,
}

impl<B: Backend + ?Sized> PayloadChunks for ChunkByChunk<'_, B> {
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.payload_chunk(self.sequence, index)
    }
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

/// What a storage backend must provide. Implementations are synchronous; async callers run
/// them on blocking threads.
pub trait Backend: Send + Sync + 'static {
    /// Atomically store a new message, or report a duplicate or conflict. `issue_receipt` is
    /// called with the sequence number assigned to the message and returns the encoded signed
    /// receipt to store with it; it may be called more than once if the write is retried.
    fn accept(
        &self,
        message: &Incoming,
        issue_receipt: &dyn Fn(u64) -> Vec<u8>,
    ) -> Result<Acceptance, StoreError>;

    /// Up to `limit` unacknowledged messages for `recipient` with a sequence above `after`,
    /// oldest first.
    fn pending(
        &self,
        recipient: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError>;

    /// Record that message `sequence` was streamed to its recipient (only if it is still
    /// `Accepted`).
    /// Returns whether it moved to DELIVERED now (not before, and not settled already).
    fn mark_delivered(&self, sequence: u64, at: Timestamp) -> Result<bool, StoreError>;

    /// Record a verified acknowledgement: the message leaves the recipient's queue.
    fn acknowledge(&self, update: &AckUpdate) -> Result<AckResult, StoreError>;

    /// Expire every queued message older than its time to live (`ttl` gives it in
    /// milliseconds per document type; `None`: never). Returns the messages expired.
    fn expire(
        &self,
        now: Timestamp,
        ttl: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Vec<Settled>, StoreError>;

    /// How many messages wait for each recipient (those with none are left out).
    fn queue_depths(&self) -> Result<Vec<(ParticipantId, u64)>, StoreError>;

    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// Chunk `index` of the payload of message `sequence`, checked against its checksum
    /// ([`StoreError::PayloadCorrupt`] if it fails: logged once per message, and counted).
    fn payload_chunk(&self, sequence: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError>;

    /// The payload of message `sequence`, to read chunk after chunk (a delivery): the same
    /// chunks and checks as [`Backend::payload_chunk`], the segment file opened once. The
    /// default reads each chunk with `payload_chunk`.
    fn payload_reader(&self, sequence: u64) -> Result<Box<dyn PayloadChunks + '_>, StoreError> {
        Ok(Box::new(ChunkByChunk {
            backend: self,
            sequence,
        }))
    }

    /// Whether message `sequence`'s payload was found corrupt since the hub started.
    fn payload_damaged(&self, _sequence: u64) -> bool {
        false
    }

    /// How many messages' payloads were found corrupt since the hub started.
    fn damaged_payloads(&self) -> u64 {
        0
    }

    /// Up to `limit` status events for `sender` after cursor `after`, oldest first.
    fn events(
        &self,
        sender: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StatusEvent)>, StoreError>;

    /// The status of a message sent by `sender`.
    fn status(
        &self,
        sender: ParticipantId,
        message_id: MessageId,
    ) -> Result<Option<StatusRecord>, StoreError>;

    /// The registry, if one was ever saved.
    fn registry(&self) -> Result<Option<RegistryRecord>, StoreError>;

    /// Replace the registry and append `entry` to the exchange log, atomically.
    fn save_registry(&self, registry: &RegistryRecord, entry: &LogEntry) -> Result<(), StoreError>;

    /// Remember a client certificate the first time it is seen; a known serial is left as is.
    fn record_certificate(&self, certificate: &CertificateRecord) -> Result<(), StoreError>;

    /// Every client certificate seen, by serial.
    fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError>;

    /// Up to `limit` encoded exchange-log entries from index `from` (the first is 1), in order.
    fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// How many entries the exchange log holds.
    fn log_size(&self) -> Result<u64, StoreError>;

    /// The hash of a perfect subtree of the log's Merkle tree, stored as entries were appended
    /// (see `caravan_common::merkle::Nodes`); level 0 holds the leaves, index from 0.
    fn log_node(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError>;

    /// Keep a signed tree head.
    fn save_tree_head(&self, head: &TreeHead) -> Result<(), StoreError>;

    /// Every signed tree head, by tree size.
    fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError>;

    /// Copy the whole store, as of one moment between writes, into a new store at `dest`
    /// (which must not exist), while the hub runs: writes wait for the copy, reads go on.
    fn backup(&self, dest: &std::path::Path) -> Result<BackupSummary, StoreError>;

    /// The store's epoch: an id made when the store was created and made anew when it is
    /// restored from a backup, so that cursors given out before a restore are recognised.
    fn epoch(&self) -> Result<String, StoreError>;

    /// The trust-list version the registry must move beyond at start (0: none): the version
    /// the store replaced by a restore had reached.
    fn registry_version_floor(&self) -> Result<u64, StoreError>;

    /// Make every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// The store's health, where it recovers from storage faults by itself.
    fn health(&self) -> Option<Arc<caravan_common::recovery::StoreHealth>> {
        None
    }

    /// Run `ops`, whose writes may share one commit (see `caravan_common::kv::Engine::batch`):
    /// other threads see them once it returns; after an error, callers treat every write of
    /// the batch as failed (those before a flush inside it were kept).
    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        ops();
        Ok(())
    }
}

/// The handle the hub holds: cheap to clone, shared by all tasks. Writes on the request path
/// go through `crate::commit` (one writer thread, group commit); this handle reads.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    pub fn new(backend: impl Backend) -> Self {
        Self(Arc::new(backend))
    }

    /// [`Store::new`] for a backend the caller keeps a handle to.
    pub fn shared(backend: Arc<dyn Backend>) -> Self {
        Self(backend)
    }

    /// Run a long store operation (a backup, an audit, an expiry sweep) on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let backend = self.0.clone();
        tokio::task::spawn_blocking(move || op(backend.as_ref()))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Direct access, on the calling thread, for reads. The request path's reads use it from
    /// async tasks: the engine reads from memory (its page cache holds the working set) in
    /// microseconds, less than a hand-off to another thread and back costs, and reads never
    /// wait for a write's turn.
    pub fn backend(&self) -> &dyn Backend {
        self.0.as_ref()
    }

    pub(crate) fn arc(&self) -> Arc<dyn Backend> {
        self.0.clone()
    }
}
