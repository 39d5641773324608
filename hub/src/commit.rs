//! The write path: one writer thread, and group commit.
//!
//! Every write of the request path runs on one thread of its own, in the order they come.
//! Why: an engine lets one transaction write at a time, and redb holds that turn through a
//! durable commit, `fdatasync` included; writes made on the runtime's threads would stop them
//! for as long (every connection of the hub, not only the writers). Here they queue instead,
//! and cost less than a hand-off to Tokio's blocking pool, whose threads would contend for
//! the turn.
//!
//! The writes waiting in the queue run as one batch of the store (which redb commits once; a
//! commit costs more than a write), and each is answered after that commit, so that what a
//! caller learns is visible to every reader. Writers that need their write durable ask for a
//! flush ([`GroupCommit::write_durable`], [`GroupCommit::wait`]): the batch ends with one flush
//! for all of them, so concurrent writers share one flush instead of paying one each, and the
//! batch, hence the share, grows with the load. After the flush the log's signed tree head
//! advances over what is now durable, so a waiter learns a head that covers its write (one
//! signature per flush).
//!
//! Submissions come as their own kind of job: a batch's are judged together, before its other
//! writes ([`Backend::accept_many`]), which an engine on a database server does in a couple of
//! round trips instead of one per document.
//!
//! This is deliberately not sled's `flush_async`, which can hang for good with concurrent
//! callers in sled 0.34.

use tokio::sync::oneshot;

use std::sync::{Arc, mpsc};

use crate::{
    log::Heads,
    metrics::Metrics,
    store::{Acceptance, Accepting, Backend, Incoming, Store, StoreError, TreeHead},
};

/// Writes the writer thread takes into one batch at most.
const WRITE_BATCH: usize = 256;

type Reply = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A write: it runs in a batch, and returns how to answer once the batch is committed (with
/// the batch's error if it failed).
type Write = Box<dyn FnOnce(&dyn Backend) -> Reply + Send>;
type Flushed = Result<Arc<TreeHead>, StoreError>;
/// Signs a message's receipt once it has its sequence number.
type IssueReceipt = Box<dyn Fn(u64) -> Vec<u8> + Send>;

/// A message to accept, and who waits for the answer.
struct Accept {
    message: Incoming,
    issue_receipt: IssueReceipt,
    answer: oneshot::Sender<Result<Acceptance, StoreError>>,
}

enum Job {
    Write(Write),
    Accept(Box<Accept>),
    /// Make everything written before durable, and answer with the tree head over it.
    Flush(oneshot::Sender<Flushed>),
}

/// Handle for writers; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    heads: Arc<Heads>,
}

impl GroupCommit {
    /// Start the writer thread for `store`. It ends when every handle is dropped.
    pub fn start(store: Store, heads: Arc<Heads>, metrics: Arc<Metrics>) -> Self {
        let (jobs, queue) = mpsc::channel();
        let backend = store.arc();
        let writer_heads = heads.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(&*backend, &writer_heads, &metrics, queue))
            .expect("a thread for the store's writes");
        Self { jobs, heads }
    }

    /// The log's signed tree heads, which every flush advances.
    pub fn heads(&self) -> &Arc<Heads> {
        &self.heads
    }

    fn stopped() -> StoreError {
        StoreError::Stopped("the store's writer has stopped")
    }

    /// Run a write on the writer thread; answered once it is visible to readers (not yet
    /// durable).
    pub async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Write(Box::new(move |b| {
                let result = op(b);
                Box::new(move |failed: Option<&StoreError>| {
                    let _ = tx.send(match failed {
                        Some(e) => Err(not_kept(e)),
                        None => result,
                    });
                })
            })))
            .map_err(|_| Self::stopped())?;
        rx.await.map_err(|_| Self::stopped())?
    }

    /// Wait until everything written before this call is durable; returns the log's signed
    /// tree head, which covers every entry written before the call.
    pub async fn wait(&self) -> Result<Arc<TreeHead>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Flush(tx))
            .map_err(|_| Self::stopped())?;
        rx.await.map_err(|_| Self::stopped())?
    }

    /// Accept `message` (see [`Backend::accept`]), then [`Self::wait`]: the answer comes once
    /// it is durable, with a tree head that covers it.
    pub async fn accept_durable(
        &self,
        message: Incoming,
        issue_receipt: impl Fn(u64) -> Vec<u8> + Send + 'static,
    ) -> Result<(Acceptance, Arc<TreeHead>), StoreError> {
        let (answer, rx) = oneshot::channel();
        self.jobs
            .send(Job::Accept(Box::new(Accept {
                message,
                issue_receipt: Box::new(issue_receipt),
                answer,
            })))
            .map_err(|_| Self::stopped())?;
        let accepted = async { rx.await.map_err(|_| Self::stopped())? };
        let (accepted, flushed) = tokio::join!(accepted, self.wait());
        Ok((accepted?, flushed?))
    }

    /// [`Self::write`], then [`Self::wait`], asked for together: the flush usually ends the
    /// very batch the write runs in.
    pub async fn write_durable<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(T, Arc<TreeHead>), StoreError> {
        let written = self.write(op);
        let flushed = self.wait();
        let (written, flushed) = tokio::join!(written, flushed);
        Ok((written?, flushed?))
    }
}

/// The answer to a write whose batch failed: a faulted store says so as it is.
fn not_kept(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(_) => e.clone(),
        other => StoreError::NotKept(Arc::new(other.clone())),
    }
}

/// The writer thread: batches of writes, each ended by one flush if any writer asked for it.
fn writer(backend: &dyn Backend, heads: &Heads, metrics: &Metrics, queue: mpsc::Receiver<Job>) {
    let mut replies: Vec<Reply> = Vec::with_capacity(WRITE_BATCH);
    let mut waiters = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut batch: Vec<Job> = std::iter::once(first)
            .chain(queue.try_iter().take(WRITE_BATCH - 1))
            .collect();
        let mut flushed = None;
        let outcome = backend.batch(&mut || {
            let mut accepts = Vec::new();
            let mut writes = Vec::new();
            for job in batch.drain(..) {
                match job {
                    Job::Write(write) => writes.push(write),
                    Job::Accept(accept) => accepts.push(accept),
                    Job::Flush(waiter) => waiters.push(waiter),
                }
            }
            if !accepts.is_empty() {
                let accepting: Vec<Accepting<'_>> = accepts
                    .iter()
                    .map(|a| Accepting {
                        message: &a.message,
                        issue_receipt: &*a.issue_receipt,
                    })
                    .collect();
                let judged = backend.accept_many(&accepting);
                drop(accepting);
                for (accept, result) in accepts.into_iter().zip(judged) {
                    let answer = accept.answer;
                    replies.push(Box::new(move |failed: Option<&StoreError>| {
                        let _ = answer.send(match failed {
                            Some(e) => Err(not_kept(e)),
                            None => result,
                        });
                    }));
                }
            }
            for write in writes {
                replies.push(write(backend));
            }
            if !waiters.is_empty() {
                let started = std::time::Instant::now();
                // Every write of the batch is applied, so this size covers them all.
                let result = backend.log_size().and_then(|size| {
                    backend.flush()?;
                    heads.advance(backend, size)
                });
                metrics.flushed(started.elapsed().as_secs_f64());
                flushed = Some(result);
            }
        });
        let failed = outcome.err();
        for reply in replies.drain(..) {
            reply(failed.as_ref());
        }
        // A flush ran exactly when some writer asked for one.
        let Some(flushed) = flushed else { continue };
        let flushed = match (flushed, &failed) {
            (Ok(head), None) => Ok(head),
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(not_kept(e)),
        };
        match &flushed {
            // Logged once, when the store faulted (`caravan_common::recovery`).
            Err(StoreError::Unavailable(_)) | Ok(_) => {}
            Err(e) => tracing::error!(cause = %e, waiters = waiters.len(), "store flush failed"),
        }
        for waiter in waiters.drain(..) {
            // A waiter that went away (its request was cancelled) needs no answer.
            let _ = waiter.send(flushed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Embedded;
    use caravan_common::store::EngineKind;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes_and_all_learn_of_failure() {
        for engine in [EngineKind::Redb, EngineKind::Sled] {
            let dir = tempfile::tempdir().unwrap();
            let backend = Arc::new(Embedded::open(dir.path(), Some(engine), 8 << 20).unwrap());
            let store = Store::shared(backend.clone());
            let key = caravan_common::signing::SigningKey::generate();
            let heads = Arc::new(Heads::open(&*backend, key).unwrap());
            let metrics = Arc::new(Metrics::default());
            let commit = GroupCommit::start(store, heads, metrics.clone());
            let before = metrics.flush.count();
            // The writer is held by a write until every waiter has queued.
            let (release, hold) = std::sync::mpsc::channel::<()>();
            let writer = commit.clone();
            let held = tokio::spawn(async move {
                writer
                    .write(move |_| {
                        let _ = hold.recv();
                        Ok(())
                    })
                    .await
            });
            let waiters: Vec<_> = (0..200)
                .map(|_| {
                    let commit = commit.clone();
                    tokio::spawn(async move { commit.wait().await })
                })
                .collect();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            release.send(()).unwrap();
            held.await.unwrap().unwrap();
            for w in waiters {
                w.await.unwrap().unwrap();
            }
            let flushes = metrics.flush.count() - before;
            assert!(
                (1..20).contains(&flushes),
                "{engine}: 200 waiters took {flushes} flushes"
            );

            // A storage fault: every waiter a flush answers learns of it.
            backend
                .health()
                .unwrap()
                .report("Input/output error (os error 5)");
            let waiters: Vec<_> = (0..10)
                .map(|_| {
                    let commit = commit.clone();
                    tokio::spawn(async move { commit.wait().await })
                })
                .collect();
            for w in waiters {
                assert!(
                    matches!(w.await.unwrap(), Err(StoreError::Unavailable(_))),
                    "{engine}: a failed flush fails every waiter it answers"
                );
            }
        }
    }
}
