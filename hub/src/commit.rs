//! Group commit: concurrent writers share one flush instead of paying one each.
//!
//! A writer applies its change to the store (in memory), then calls [`GroupCommit::wait`]. One
//! flusher task collects every waiter that has arrived, runs a single `flush()` on a blocking
//! thread, and wakes them all with its result. Because a waiter registers only after its write
//! is applied, the flush that answers it covers that write. While a flush runs, new waiters
//! queue up for the next one, so the batch grows with the load.
//!
//! After the flush it advances the log's signed tree head over what is now durable, so a
//! waiter learns a head that covers its write (one signature per flush).
//!
//! This is deliberately not sled's `flush_async`, which can hang for good with concurrent
//! callers in sled 0.34.

use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::{
    log::Heads,
    metrics::Metrics,
    store::{Store, StoreError, TreeHead},
};

type Waiter = oneshot::Sender<Result<Arc<TreeHead>, String>>;

/// Handle for writers; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    waiters: mpsc::UnboundedSender<Waiter>,
    heads: Arc<Heads>,
}

impl GroupCommit {
    /// Start the flusher task for `store`. It ends when every handle is dropped.
    pub fn start(store: Store, heads: Arc<Heads>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(flusher(store, heads.clone(), metrics, rx));
        Self { waiters: tx, heads }
    }

    /// The log's signed tree heads, which every flush advances.
    pub fn heads(&self) -> &Arc<Heads> {
        &self.heads
    }

    /// Wait until everything written before this call is durable; returns the log's signed
    /// tree head, which covers every entry written before the call.
    pub async fn wait(&self) -> Result<Arc<TreeHead>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || StoreError::Backend("the flusher has stopped".into());
        self.waiters.send(tx).map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(StoreError::Backend)
    }
}

async fn flusher(
    store: Store,
    heads: Arc<Heads>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, usize::MAX).await > 0 {
        let heads = heads.clone();
        let started = std::time::Instant::now();
        let result = store
            .write(move |b| {
                // Every waiter's write is applied, so this size covers them all.
                let size = b.log_size()?;
                b.flush()?;
                heads.advance(b, size)
            })
            .await
            .map_err(|e| e.to_string());
        metrics.flushed(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::error!(cause = %e, waiters = batch.len(), "store flush failed");
        }
        for waiter in batch.drain(..) {
            // A waiter that went away (its request was cancelled) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    };

    use caravan_common::{MessageId, ParticipantId, Timestamp};

    use super::*;
    use crate::store::{
        Acceptance, AckResult, AckUpdate, Backend, Incoming, LogEntry, Pending, RegistryRecord,
        StatusRecord,
    };

    /// A backend that only flushes: each flush takes a while and is counted; it can be made
    /// to fail.
    #[derive(Default)]
    struct Flushes {
        count: AtomicU64,
        fail: Mutex<bool>,
    }

    impl Backend for Flushes {
        fn accept(
            &self,
            _: &Incoming,
            _: &dyn Fn(u64) -> Vec<u8>,
        ) -> Result<Acceptance, StoreError> {
            Ok(Acceptance::Conflict)
        }
        fn pending(&self, _: ParticipantId, _: u64, _: usize) -> Result<Vec<Pending>, StoreError> {
            Ok(Vec::new())
        }
        fn mark_delivered(&self, _: u64, _: Timestamp) -> Result<bool, StoreError> {
            Ok(false)
        }
        fn acknowledge(&self, _: &AckUpdate) -> Result<AckResult, StoreError> {
            Ok(AckResult::UnknownMessage)
        }
        fn status(
            &self,
            _: ParticipantId,
            _: MessageId,
        ) -> Result<Option<StatusRecord>, StoreError> {
            Ok(None)
        }
        fn registry(&self) -> Result<Option<RegistryRecord>, StoreError> {
            Ok(None)
        }
        fn save_registry(&self, _: &RegistryRecord, _: &LogEntry) -> Result<(), StoreError> {
            Ok(())
        }
        fn record_certificate(
            &self,
            _: &crate::store::CertificateRecord,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        fn expire(
            &self,
            _: Timestamp,
            _: &dyn Fn(&str) -> Option<u64>,
        ) -> Result<Vec<crate::store::Settled>, StoreError> {
            Ok(Vec::new())
        }
        fn backup(&self, _: &std::path::Path) -> Result<crate::store::BackupSummary, StoreError> {
            Err(StoreError::Backend("no backups".into()))
        }
        fn epoch(&self) -> Result<String, StoreError> {
            Ok(String::new())
        }
        fn registry_version_floor(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn queue_depths(&self) -> Result<Vec<(ParticipantId, u64)>, StoreError> {
            Ok(Vec::new())
        }
        fn size_on_disk(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn payload_chunk(&self, _: u64, _: u32) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        fn log_entries(&self, _: u64, _: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
            Ok(Vec::new())
        }
        fn log_size(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn log_node(&self, _: u32, _: u64) -> Result<caravan_common::merkle::Hash, StoreError> {
            Err(StoreError::Backend("no log".into()))
        }
        fn save_tree_head(&self, _: &crate::store::TreeHead) -> Result<(), StoreError> {
            Ok(())
        }
        fn tree_heads(&self) -> Result<Vec<crate::store::TreeHead>, StoreError> {
            Ok(Vec::new())
        }
        fn events(
            &self,
            _: ParticipantId,
            _: u64,
            _: usize,
        ) -> Result<Vec<(u64, crate::store::StatusEvent)>, StoreError> {
            Ok(Vec::new())
        }
        fn certificates(&self) -> Result<Vec<crate::store::CertificateRecord>, StoreError> {
            Ok(Vec::new())
        }
        fn flush(&self) -> Result<(), StoreError> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.count.fetch_add(1, Ordering::SeqCst);
            if *self.fail.lock().unwrap() {
                return Err(StoreError::Backend("disk on fire".into()));
            }
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes_and_all_learn_of_failure() {
        let backend = Arc::new(Flushes::default());
        let store = Store::shared(backend.clone());
        let key = caravan_common::signing::SigningKey::generate();
        let heads = Arc::new(Heads::open(backend.as_ref(), key).unwrap());
        let commit = GroupCommit::start(store, heads, Arc::new(Metrics::default()));
        let waiters: Vec<_> = (0..200)
            .map(|_| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.wait().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        let flushes = backend.count.load(Ordering::SeqCst);
        assert!(
            (1..20).contains(&flushes),
            "200 waiters took {flushes} flushes"
        );

        *backend.fail.lock().unwrap() = true;
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.wait().await })
            })
            .collect();
        for w in waiters {
            assert!(
                w.await.unwrap().is_err(),
                "a failed flush fails every waiter it answers"
            );
        }
    }
}
