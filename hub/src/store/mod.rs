//! The hub's durable state, behind one trait on every engine.
//!
//! The exchange needs only a handful of operations: accept a message (message, payload,
//! dedup index, recipient queue entry, status and exchange-log entry, all in one atomic write),
//! list what is pending for a recipient, record deliveries and acknowledgements, answer status
//! queries, and make writes durable. [`Backend`] is those operations; [`Embedded`]
//! (`embedded.rs`) keeps them in typed tables of a `caravan_common::store::Db` in a folder of
//! the hub's own, on redb (the default for a new store) or sled; [`Postgres`] (`postgres/`)
//! keeps them in a PostgreSQL database that several hub replicas share. [`Store`] is the
//! cheap handle the rest of the hub holds.
//!
//! Writes run in batches ([`Backend::batch`]); [`Backend::flush`] makes everything written so
//! far durable. Callers batch concurrent writers onto one flush (see `crate::commit`) instead
//! of flushing per write.

mod embedded;
mod ops;
pub mod postgres;
mod records;
#[cfg(any(test, feature = "store-suite"))]
pub mod suite;
#[cfg(test)]
pub(crate) mod tests;

use std::{path::Path, sync::Arc};

use caravan_common::{MessageId, ParticipantId, Timestamp, merkle, recovery::StoreHealth};

/// The store's one error, shared with the spokes (`caravan_common::store`).
pub use caravan_common::store::StoreError;
pub use embedded::{Embedded, Exported, FORMAT_VERSION, PAYLOAD_CHUNK, PayloadChunks, TABLES};
pub use ops::{
    Acceptance, AckResult, AckUpdate, BackupSummary, ExchangeFact, Incoming, Pending, Settled,
};
pub use postgres::{Change, POLL_INTERVAL, Postgres, PostgresSettings};
pub use records::{
    CertificateRecord, ConformanceRecord, LogEntry, LogKind, MessageState, RegistryRecord,
    RevokedCertificate, ScorecardRecord, StatusEvent, StatusRecord, Transition, TreeHead,
};

/// What the hub does with its store, on whichever engine holds it: [`Embedded`] (redb or
/// sled in a folder of the hub's own) or [`Postgres`] (a database several replicas share).
/// Synchronous; async callers run it on blocking threads ([`Store::run`], [`Store::read`])
/// or on the writer thread (`crate::commit`), never on the runtime's own threads.
pub trait Backend: Send + Sync {
    /// The engine, as the logs and `info` name it (`redb`, `sled`, `postgres`).
    fn engine_name(&self) -> &'static str;

    /// Whether a read waits on something other than memory and the local disk (a database
    /// server): async callers then read on a blocking thread ([`Store::read`]).
    fn reads_block(&self) -> bool {
        false
    }

    /// Log entry `index`, if the engine holds it in memory now (an engine whose reads block
    /// keeps the newest ones, so that proofs need no round trip); `None`: read it.
    fn cached_log_entry(&self, _index: u64) -> Option<Vec<u8>> {
        None
    }

    /// Merkle node (`level`, `index`) of the log, if the engine holds it in memory now.
    fn cached_log_node(&self, _level: u32, _index: u64) -> Option<merkle::Hash> {
        None
    }

    /// Note a log size that is durable, for the check at the next start to compare with
    /// (the embedded engines keep it beside the store; a database needs none).
    fn note_floors(&self, _log_entries: u64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Changes other hub replicas commit to a shared store, as they happen (`None`: nothing
    /// else writes to this store).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// Whether this hub keeps the signed tree heads for audits now: always, unless replicas
    /// share the store, where one at a time does (a lease it takes over when the holder dies).
    fn keeps_tree_heads(&self) -> bool {
        true
    }

    /// Atomically store a new message, or report a duplicate or conflict. `issue_receipt` is
    /// called with the sequence number assigned to the message and returns the encoded signed
    /// receipt to store with it; it may be called more than once if the write is retried.
    /// A new message gets its ACCEPTED log entry but no status event: its sender has the
    /// acceptance in the answer, and its status stream starts with the changes that follow.
    fn accept(
        &self,
        m: &Incoming,
        issue_receipt: &dyn Fn(u64) -> Vec<u8>,
    ) -> Result<Acceptance, StoreError>;

    /// [`Self::accept`] for each of `messages`, in order, as one write (an engine may judge
    /// them in fewer round trips).
    fn accept_many(&self, messages: &[Accepting<'_>]) -> Vec<Result<Acceptance, StoreError>> {
        messages
            .iter()
            .map(|a| self.accept(a.message, a.issue_receipt))
            .collect()
    }

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
    fn acknowledge(&self, u: &AckUpdate) -> Result<AckResult, StoreError>;

    /// [`Self::mark_delivered`] for each of `sequences`, in order (an engine may do them in
    /// fewer round trips).
    fn mark_delivered_many(
        &self,
        sequences: &[u64],
        at: Timestamp,
    ) -> Vec<Result<bool, StoreError>> {
        sequences
            .iter()
            .map(|s| self.mark_delivered(*s, at))
            .collect()
    }

    /// [`Self::acknowledge`] for each of `updates`, in order (an engine may do them in fewer
    /// round trips).
    fn acknowledge_many(&self, updates: &[AckUpdate]) -> Vec<Result<AckResult, StoreError>> {
        updates.iter().map(|u| self.acknowledge(u)).collect()
    }

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
    /// chunks and checks as [`Backend::payload_chunk`], a segment file opened once.
    fn payload_reader(&self, sequence: u64) -> Result<Box<dyn ChunkReader + '_>, StoreError>;

    /// Whether message `sequence`'s payload was found corrupt since the hub started.
    fn payload_damaged(&self, sequence: u64) -> bool;

    /// How many messages' payloads were found corrupt since the hub started.
    fn damaged_payloads(&self) -> u64;

    /// Up to `limit` status events for `sender` after cursor `after`, oldest first.
    fn events(
        &self,
        sender: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StatusEvent)>, StoreError>;

    /// Whether the hub holds the message `id` of `sender` (accepted before, in any state).
    fn holds(&self, sender: ParticipantId, id: MessageId) -> Result<bool, StoreError>;

    /// The status of a message sent by `sender`.
    fn status(
        &self,
        sender: ParticipantId,
        message_id: MessageId,
    ) -> Result<Option<StatusRecord>, StoreError>;

    /// The registry, if one was ever saved.
    fn registry(&self) -> Result<Option<RegistryRecord>, StoreError>;

    /// Replace the registry and append `entry` to the exchange log, atomically.
    fn save_registry(&self, record: &RegistryRecord, entry: &LogEntry) -> Result<(), StoreError>;

    /// Record a conformance report and append its exchange-log entry, atomically. `make`
    /// builds both from the report's id (the next, from 1) and is called once, inside the
    /// transaction; the record gets the entry's log index. Returns the record as stored.
    fn record_conformance(
        &self,
        make: &dyn Fn(u64) -> (ConformanceRecord, LogEntry),
    ) -> Result<ConformanceRecord, StoreError>;

    /// Every recorded conformance report, oldest first.
    fn conformance_reports(&self) -> Result<Vec<ConformanceRecord>, StoreError>;

    /// Record a Readiness Scorecard entry and append its exchange-log entry, atomically, as
    /// [`Self::record_conformance`] does for reports: `make` builds both from the entry's id
    /// (the next, from 1); the record gets the entry's log index. Entries are never changed.
    fn record_scorecard(
        &self,
        make: &dyn Fn(u64) -> (ScorecardRecord, LogEntry),
    ) -> Result<ScorecardRecord, StoreError>;

    /// Every recorded scorecard entry, oldest first.
    fn scorecard_entries(&self) -> Result<Vec<ScorecardRecord>, StoreError>;

    /// Pass what the scorecard measures of every message accepted at or after `since` to
    /// `visit`, in no promised order.
    fn exchange_facts(
        &self,
        since: Timestamp,
        visit: &mut dyn FnMut(ExchangeFact),
    ) -> Result<(), StoreError>;

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

    /// The store's epoch: an id made when the store was created and made anew when it is
    /// restored from a backup, so that cursors given out before a restore are recognised.
    fn epoch(&self) -> Result<String, StoreError>;

    /// The trust-list version the registry must move beyond at start (0: none): the version
    /// the store replaced by a restore had reached.
    fn registry_version_floor(&self) -> Result<u64, StoreError>;

    /// Copy the whole store, as of one moment between writes, into a new store at `dest`
    /// (which must not exist), while the hub runs: writes wait for the copy, reads go on.
    fn backup(&self, dest: &Path) -> Result<BackupSummary, StoreError>;

    /// Run `ops`, whose writes may share one commit (see `caravan_common::store::Engine::batch`):
    /// other threads see them once it returns; after an error, callers treat every write of
    /// the batch as failed (those before a flush inside it were kept).
    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError>;

    /// Make every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// The store's health, where it recovers from storage faults by itself.
    fn health(&self) -> Option<std::sync::Arc<StoreHealth>>;
}

/// A message to accept, and how to sign its receipt once it has a sequence number
/// ([`Backend::accept_many`]).
pub struct Accepting<'a> {
    pub message: &'a Incoming,
    pub issue_receipt: &'a dyn Fn(u64) -> Vec<u8>,
}

/// A payload read chunk after chunk ([`Backend::payload_reader`]).
pub trait ChunkReader {
    /// Chunk `index`, as [`Backend::payload_chunk`] answers it.
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The handle the hub holds: cheap to clone, shared by all tasks. Writes on the request path
/// go through `crate::commit` (one writer thread, group commit); this handle reads.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    pub fn new(backend: impl Backend + 'static) -> Self {
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
        caravan_common::store::blocking(move || op(&*backend)).await
    }

    /// A read from an async task: on the calling thread where the engine answers from memory
    /// (see [`Store::backend`]), on a blocking thread where it waits on a network round trip
    /// ([`Backend::reads_block`]).
    pub async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.0.reads_block() {
            self.run(op).await
        } else {
            op(&*self.0)
        }
    }

    /// Direct access, on the calling thread, for reads of an engine that does not block
    /// ([`Backend::reads_block`]); async code reads through [`Store::read`]. The request path's reads use it from
    /// async tasks: the engine reads from memory (its page cache holds the working set) in
    /// microseconds, less than a hand-off to another thread and back costs, and reads never
    /// wait for a write's turn.
    pub fn backend(&self) -> &dyn Backend {
        &*self.0
    }

    pub(crate) fn arc(&self) -> Arc<dyn Backend> {
        self.0.clone()
    }
}
