//! Storage faults that pass: a full disk, an I/O error. The store says so, refuses writes at
//! once while it lasts, and recovers by itself when the cause is gone.
//!
//! Why a layer of its own: neither engine recovers from a failed write in place. sled 0.34
//! keeps the first I/O error and fails every later write with it; redb answers every later
//! transaction with `PreviousIo` ("close and re-open the database"). Without this, one
//! "No space left on device" wedged a hub until it was restarted, while its health said
//! SERVING and every request logged an error.
//!
//! [`Recovering`] wraps an engine. A write or flush that fails in the engine marks the store
//! faulted ([`StoreHealth`]: one log line, a metric, the health services NOT_SERVING) and
//! answers [`StoreError::Unavailable`]; while faulted, writes are refused without touching the
//! engine, and reads go on as far as the engine allows. A thread of its own then reopens the
//! engine with backoff and probes it with a real write and a durable flush; the store is
//! healthy again only when that probe is durable. Each recovery starts a new generation, which tells the stores'
//! users that state written but never made durable may be gone (the hub ends its delivery
//! streams then, so they start again from the store).
//!
//! Nothing acknowledged is lost: every caller learns of a failed write, and whatever was
//! answered as durable went through a successful flush before the fault.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use crate::store::{Body, Copied, Engine, EngineKind, Pairs, StoreError, Table};

/// The table the recovery probe writes to; every store opened through `store::Db::open` has
/// it, after its own tables.
pub(crate) const PROBE_TABLE: &str = "_health";
/// Bytes the probe writes: enough to need new space on a full disk.
const PROBE_BYTES: usize = 16 * 1024;
/// The first wait before a recovery attempt, doubled after each failed one up to the most.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MOST_RETRY: Duration = Duration::from_secs(5);
/// How long a recovery waits for operations still running on the old engine.
const DRAIN: Duration = Duration::from_secs(10);
/// Free space a full disk must have again before the store takes writes: an engine's own
/// probe can pass in the last few free blocks (sled writes into space it holds already).
const FREE_TO_RECOVER: u64 = 4 * 1024 * 1024;

/// Why a store is faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The file system is full (ENOSPC) or the quota is used up (EDQUOT).
    DiskFull,
    /// Any other failure of the storage.
    Io,
    /// The database server the store lives on cannot be reached (the hub's PostgreSQL engine).
    Unreachable,
}

impl FaultKind {
    /// Stable text, for logs, metrics and error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::Io => "io_error",
            Self::Unreachable => "database_unreachable",
        }
    }

    /// From an engine's or the file system's error text (the engines give text, not kinds).
    fn of(cause: &str) -> Self {
        // ENOSPC and EDQUOT on Linux; "No space left on device" is ENOSPC's text.
        if ["os error 28)", "os error 122)", "No space left on device"]
            .iter()
            .any(|s| cause.contains(s))
        {
            Self::DiskFull
        } else {
            Self::Io
        }
    }
}

/// A fault: its kind, the engine's words, and when it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub cause: String,
    pub since: SystemTime,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FaultKind::DiskFull => write!(f, "the disk is full ({})", self.cause),
            FaultKind::Io => write!(f, "storage I/O error ({})", self.cause),
            FaultKind::Unreachable => write!(f, "the database is unreachable ({})", self.cause),
        }
    }
}

/// The health of one store as seen by its users, now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// `None` while the store works.
    pub fault: Option<Fault>,
    /// Recoveries so far: a store that recovered may have lost writes that were never made
    /// durable (and never answered as such).
    pub generation: u64,
}

/// Shared state of a store's health: who is faulted, since when, and what subscribers see.
pub struct StoreHealth {
    /// Names the store in log lines: its folder.
    name: String,
    condition: tokio::sync::watch::Sender<Condition>,
    faults: AtomicU64,
    /// Wakes the recovery thread.
    wake: (Mutex<()>, Condvar),
}

impl StoreHealth {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            condition: tokio::sync::watch::Sender::new(Condition::default()),
            faults: AtomicU64::new(0),
            wake: (Mutex::new(()), Condvar::new()),
        }
    }

    /// The fault, if the store is faulted now.
    pub fn fault(&self) -> Option<Fault> {
        self.condition.borrow().fault.clone()
    }

    pub fn condition(&self) -> Condition {
        self.condition.borrow().clone()
    }

    /// Every change of condition.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Condition> {
        self.condition.subscribe()
    }

    /// Record a failure of the storage; logged once per fault, not per failed request.
    pub fn report(&self, cause: &str) -> Fault {
        self.report_as(FaultKind::of(cause), cause)
    }

    /// [`Self::report`] for a failure whose kind the caller knows.
    pub fn report_as(&self, kind: FaultKind, cause: &str) -> Fault {
        let mut now = None;
        self.condition.send_if_modified(|c| match &c.fault {
            Some(fault) => {
                now = Some(fault.clone());
                false
            }
            None => {
                let fault = Fault {
                    kind,
                    cause: cause.to_string(),
                    since: SystemTime::now(),
                };
                tracing::error!(store = %self.name, reason = fault.kind.as_str(), cause,
                    "store faulted: writes are refused until it recovers by itself");
                self.faults.fetch_add(1, Ordering::Relaxed);
                c.fault = Some(fault.clone());
                now = Some(fault);
                true
            }
        });
        self.wake.1.notify_all();
        now.expect("set above")
    }

    /// The store works again (its probe passed): one log line, and a new generation.
    pub fn recovered(&self) {
        self.condition.send_modify(|c| {
            if let Some(fault) = c.fault.take() {
                let lasted = fault.since.elapsed().unwrap_or_default();
                tracing::info!(store = %self.name, reason = fault.kind.as_str(),
                    lasted_ms = lasted.as_millis() as u64, "store recovered: writes are accepted again");
            }
            c.generation += 1;
        });
    }
}

impl std::fmt::Debug for StoreHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHealth")
            .field("name", &self.name)
            .field("fault", &self.fault())
            .finish_non_exhaustive()
    }
}

/// The store's health in `/metrics`, read at each scrape, registered under the side's prefix
/// (`caravan_hub_store_healthy`, ...).
impl prometheus_client::collector::Collector for StoreHealth {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use crate::metrics::write_family;
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge};
        let fault = self.fault();
        write_family(
            &mut encoder,
            "store_healthy",
            "1 while the store accepts writes, 0 while it is faulted (full disk, I/O error).",
            &[(&[], ConstGauge::new(i64::from(fault.is_none())))],
        )?;
        write_family(
            &mut encoder,
            "store_faults",
            "Storage faults since start (each recovers by itself once its cause is gone).",
            &[(&[], ConstCounter::new(self.faults.load(Ordering::Relaxed)))],
        )?;
        let on = |kind| ConstGauge::new(i64::from(fault.as_ref().is_some_and(|f| f.kind == kind)));
        write_family(
            &mut encoder,
            "store_fault",
            "Why the store is faulted now (1 for the reason).",
            &[
                (
                    &[("reason", FaultKind::DiskFull.as_str())],
                    on(FaultKind::DiskFull),
                ),
                (&[("reason", FaultKind::Io.as_str())], on(FaultKind::Io)),
                (
                    &[("reason", FaultKind::Unreachable.as_str())],
                    on(FaultKind::Unreachable),
                ),
            ],
        )
    }
}

/// The answer of a `/healthz` endpoint (hub and spoke): 200 `SERVING`, or 503
/// `NOT_SERVING` during shutdown or while the store is faulted, with the reason.
pub fn healthz(stopping: bool, fault: Option<&Fault>) -> (u16, String) {
    match (stopping, fault) {
        (true, _) => (503, "NOT_SERVING\n".into()),
        (false, Some(fault)) => (
            503,
            format!("NOT_SERVING store {}: {fault}\n", fault.kind.as_str()),
        ),
        (false, None) => (200, "SERVING\n".into()),
    }
}

type Reopen = Box<dyn Fn() -> Result<Box<dyn Engine>, StoreError> + Send + Sync>;

struct Inner {
    /// The store's folder.
    path: PathBuf,
    /// `None` while a recovery swaps the engine.
    engine: RwLock<Option<Arc<dyn Engine>>>,
    reopen: Reopen,
    health: Arc<StoreHealth>,
    inline_payload_limit: usize,
    kind: EngineKind,
    /// The table the probe writes.
    probe: Table,
}

/// An engine that recovers from storage faults (see the module doc).
pub struct Recovering {
    inner: Arc<Inner>,
}

impl Recovering {
    /// Wrap `engine`, the store in folder `path`; `reopen` opens it again after a fault.
    pub fn new(
        path: &Path,
        engine: Box<dyn Engine>,
        reopen: Reopen,
        health: Arc<StoreHealth>,
        probe: Table,
    ) -> Result<Self, StoreError> {
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            kind: engine.kind(),
            probe,
            inline_payload_limit: engine.inline_payload_limit(),
            engine: RwLock::new(Some(Arc::from(engine))),
            reopen,
            health,
        });
        let (weak, health) = (Arc::downgrade(&inner), inner.health.clone());
        std::thread::Builder::new()
            .name("store-recovery".into())
            .spawn(move || recover(weak, health))
            .map_err(|e| StoreError::engine_at("cannot start the store's recovery", e))?;
        Ok(Self { inner })
    }

    fn engine(&self) -> Result<Arc<dyn Engine>, StoreError> {
        let slot = self.inner.engine.read().unwrap_or_else(|e| e.into_inner());
        match (&*slot, self.inner.health.fault()) {
            (Some(engine), _) => Ok(engine.clone()),
            (None, Some(fault)) => Err(StoreError::Unavailable(fault)),
            (None, None) => Err(StoreError::Stopped("the store is being reopened")),
        }
    }

    /// The engine, for a write: refused while the store is faulted.
    fn for_write(&self) -> Result<Arc<dyn Engine>, StoreError> {
        match self.inner.health.fault() {
            Some(fault) => Err(StoreError::Unavailable(fault)),
            None => self.engine(),
        }
    }

    /// A failure of a write: the engine's own errors fault the store.
    fn failed(&self, e: StoreError) -> StoreError {
        if e.is_storage_failure() {
            StoreError::Unavailable(self.inner.health.report(&error_chain(&e)))
        } else {
            e
        }
    }
}

impl Engine for Recovering {
    fn kind(&self) -> EngineKind {
        self.inner.kind
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine()?.get(table, key)
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError> {
        self.engine()?.range(table, from, to, limit, reverse)
    }

    fn len(&self, table: Table) -> Result<u64, StoreError> {
        self.engine()?.len(table)
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        self.for_write()?.write(body).map_err(|e| self.failed(e))
    }

    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        // `ops` always runs (its writers must all be answered); while faulted each of its
        // writes is refused.
        match self.for_write() {
            Ok(engine) => engine.batch(ops).map_err(|e| self.failed(e)),
            Err(e) => {
                ops();
                Err(e)
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.for_write()?.flush().map_err(|e| self.failed(e))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.engine()?.size_on_disk()
    }

    fn inline_payload_limit(&self) -> usize {
        self.inner.inline_payload_limit
    }

    fn copy_to(&self, dest: &Path) -> Result<Copied, StoreError> {
        self.engine()?.copy_to(dest)
    }

    fn health(&self) -> Option<&Arc<StoreHealth>> {
        Some(&self.inner.health)
    }
}

/// The recovery thread: waits for a fault, then reopens and probes with backoff until the
/// store works again. Ends when the store is dropped.
///
/// While the store works it is never upgraded from its `Weak`: a store dropped by its owner
/// closes on the owner's thread at once (its files free for the next open), not a moment later
/// on this one.
fn recover(store: Weak<Inner>, health: Arc<StoreHealth>) {
    let mut wait = FIRST_RETRY;
    loop {
        if store.strong_count() == 0 {
            return;
        }
        if health.fault().is_none() {
            wait = FIRST_RETRY;
            let guard = health.wake.0.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock a reporter notifies with; the timeout notices a
            // dropped store.
            if health.fault().is_none() {
                let _ = health.wake.1.wait_timeout(guard, Duration::from_secs(1));
            }
            continue;
        }
        std::thread::sleep(wait);
        let Some(inner) = store.upgrade() else { return };
        match attempt(&inner) {
            Ok(()) => inner.health.recovered(),
            Err(e) => {
                tracing::debug!(cause = %e, retry_in_ms = (wait * 2).min(MOST_RETRY).as_millis() as u64,
                    "store still faulted");
                wait = (wait * 2).min(MOST_RETRY);
            }
        }
    }
}

/// Reopen the engine and prove that a write becomes durable (after a full disk, that there
/// is room again first).
fn attempt(inner: &Inner) -> Result<(), StoreError> {
    if inner
        .health
        .fault()
        .is_some_and(|f| f.kind == FaultKind::DiskFull)
    {
        let fs =
            rustix::fs::statvfs(&inner.path).map_err(|e| StoreError::io(&inner.path)(e.into()))?;
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free < FREE_TO_RECOVER {
            return Err(StoreError::engine(format!(
                "{free} bytes free on the store's file system; waiting for {FREE_TO_RECOVER}"
            )));
        }
    }
    let old = inner
        .engine
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(old) = old {
        // Operations that took the engine before the swap finish (or fail) first: the engine
        // must be closed before it is opened again (both lock their files).
        let deadline = Instant::now() + DRAIN;
        while Arc::strong_count(&old) > 1 {
            if Instant::now() > deadline {
                *inner.engine.write().unwrap_or_else(|e| e.into_inner()) = Some(old);
                return Err(StoreError::Stopped(
                    "operations on the faulted engine did not finish",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(old);
    }
    let engine: Arc<dyn Engine> = Arc::from((inner.reopen)()?);
    *inner.engine.write().unwrap_or_else(|e| e.into_inner()) = Some(engine.clone());
    let probe = vec![0u8; PROBE_BYTES];
    engine.write(&mut |tx| tx.insert(inner.probe, b"probe", &probe))?;
    engine.flush()
}

/// A failure of the storage beside the engine (payload segments): faults the store when the
/// engine recovers (`health`), and is answered as the engine's faults are.
pub fn storage_failed(engine: &dyn Engine, e: impl Into<StoreError>) -> StoreError {
    let e = e.into();
    match engine.health() {
        Some(health) => StoreError::Unavailable(health.report(&error_chain(&e))),
        None => e,
    }
}

/// An error and its sources, as one line: the words a fault is classified by.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_kinds_come_from_the_errors_text() {
        assert_eq!(
            FaultKind::of("io error: No space left on device (os error 28)"),
            FaultKind::DiskFull
        );
        assert_eq!(
            FaultKind::of("Disk quota exceeded (os error 122)"),
            FaultKind::DiskFull
        );
        assert_eq!(
            FaultKind::of("Input/output error (os error 5)"),
            FaultKind::Io
        );
    }

    #[test]
    fn a_fault_is_reported_once_and_a_recovery_is_a_new_generation() {
        let health = StoreHealth::new("test store");
        let mut watch = health.subscribe();
        let first = health.report("No space left on device (os error 28)");
        let again = health.report("another failure meanwhile");
        assert_eq!(first, again, "the first cause stands until recovery");
        assert_eq!(first.kind, FaultKind::DiskFull);
        assert!(watch.has_changed().unwrap());
        watch.borrow_and_update();
        let health = std::sync::Arc::new(health);
        let text = || crate::metrics::text_of("x", health.clone());
        assert!(text().contains("x_store_healthy 0\n"));
        assert!(text().contains("x_store_fault{reason=\"disk_full\"} 1\n"));
        health.recovered();
        let now = health.condition();
        assert_eq!(now.fault, None);
        assert_eq!(now.generation, 1);
        assert!(text().contains("x_store_faults_total 1\n"));
        assert!(text().contains("x_store_healthy 1\n"));
    }
}
