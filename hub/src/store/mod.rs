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
mod ops;
mod records;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use backend::{Backend, FORMAT_VERSION, PAYLOAD_CHUNK, PayloadChunks, TABLES};
/// The store's one error, shared with the spokes (`caravan_common::store`).
pub use caravan_common::store::StoreError;
pub use ops::{Acceptance, AckResult, AckUpdate, BackupSummary, Incoming, Pending, Settled};
pub use records::{
    CertificateRecord, ConformanceRecord, LogEntry, LogKind, MessageState, RegistryRecord,
    RevokedCertificate, StatusEvent, StatusRecord, Transition, TreeHead,
};

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
