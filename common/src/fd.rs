//! Running out of file descriptors, told apart from every other I/O error.
//!
//! A process that reaches its `RLIMIT_NOFILE` fails in places that seem unrelated: `accept`
//! returns `EMFILE` (and a listener that retries at once spins at 100% CPU), and opening a
//! payload segment fails, which once read as "stored payload chunk is missing". Every place
//! that can hit the limit asks [`is_exhaustion`] and reports it here: the first failure of an
//! episode logs one warning with the limit, the first success after it (an accept, a segment
//! opened) one line saying it is over, and the counts are in `/metrics` (`Descriptors`). The
//! state is the process's, as the limit is.

use std::{
    io,
    sync::{
        OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

/// `EMFILE`: the process's descriptor limit (the same number on Linux and the BSDs).
const EMFILE: i32 = 24;
/// `ENFILE`: the system-wide file table is full.
const ENFILE: i32 = 23;

/// Where descriptors ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum During {
    /// Accepting a connection.
    Accept,
    /// Opening a file (a payload segment).
    Open,
}

impl During {
    pub fn as_str(self) -> &'static str {
        match self {
            During::Accept => "accept",
            During::Open => "open",
        }
    }
}

static EXHAUSTED: AtomicBool = AtomicBool::new(false);
/// Milliseconds after [`epoch`] when the current episode began.
static SINCE_MS: AtomicU64 = AtomicU64::new(0);
static EPISODES: AtomicU64 = AtomicU64::new(0);
static ACCEPT_FAILURES: AtomicU64 = AtomicU64::new(0);
static OPEN_FAILURES: AtomicU64 = AtomicU64::new(0);
/// The soft limit, once [`set_limit`] was told it (0: unknown).
static LIMIT: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Whether `e` (or an error it wraps) is `EMFILE` or `ENFILE`.
pub fn is_exhaustion(e: &io::Error) -> bool {
    let raw = |e: &io::Error| matches!(e.raw_os_error(), Some(EMFILE | ENFILE));
    if raw(e) {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|c| c as _);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>().is_some_and(raw) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Descriptors ran out `during` an operation: counted; the first failure of an episode logs
/// one warning.
pub fn exhausted(during: During, cause: &io::Error) {
    match during {
        During::Accept => ACCEPT_FAILURES.fetch_add(1, Ordering::Relaxed),
        During::Open => OPEN_FAILURES.fetch_add(1, Ordering::Relaxed),
    };
    if !EXHAUSTED.swap(true, Ordering::AcqRel) {
        SINCE_MS.store(epoch().elapsed().as_millis() as u64, Ordering::Relaxed);
        EPISODES.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            during = during.as_str(),
            limit = LIMIT.load(Ordering::Relaxed),
            %cause,
            "out of file descriptors: new connections are held back and payload reads fail until some close (see the runbook, 'Out of file descriptors')"
        );
    }
}

/// An operation that needs a descriptor succeeded: ends an episode (one line), else nothing.
pub fn available() {
    if EXHAUSTED.load(Ordering::Relaxed) && EXHAUSTED.swap(false, Ordering::AcqRel) {
        let since = SINCE_MS.load(Ordering::Relaxed);
        let lasted_ms = (epoch().elapsed().as_millis() as u64).saturating_sub(since);
        tracing::info!(
            lasted_ms,
            accept_failures = ACCEPT_FAILURES.load(Ordering::Relaxed),
            open_failures = OPEN_FAILURES.load(Ordering::Relaxed),
            "file descriptors available again"
        );
    }
}

/// Whether descriptors are out now (between a failure and the next success).
pub fn is_exhausted() -> bool {
    EXHAUSTED.load(Ordering::Relaxed)
}

/// Record the process's soft limit, for the warning and the metrics.
pub fn set_limit(limit: u64) {
    epoch();
    LIMIT.store(limit, Ordering::Relaxed);
}

/// The process's descriptors in `/metrics`: a collector reading the counts at each scrape,
/// registered under the side's prefix (`caravan_hub_fd_limit`, ...).
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub struct Descriptors;

#[cfg(feature = "metrics")]
impl prometheus_client::collector::Collector for Descriptors {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use crate::metrics::write_family;
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge};
        let limit = LIMIT.load(Ordering::Relaxed) as i64;
        write_family(
            &mut encoder,
            "fd_limit",
            "Soft limit on open file descriptors (RLIMIT_NOFILE), raised to the hard limit at start.",
            &[(&[], ConstGauge::new(limit))],
        )?;
        write_family(
            &mut encoder,
            "fd_exhausted",
            "1 while file descriptors are out (EMFILE/ENFILE).",
            &[(&[], ConstGauge::new(i64::from(is_exhausted())))],
        )?;
        write_family(
            &mut encoder,
            "fd_exhaustion_episodes",
            "Times file descriptors ran out.",
            &[(&[], ConstCounter::new(EPISODES.load(Ordering::Relaxed)))],
        )?;
        write_family(
            &mut encoder,
            "fd_exhaustion_failures",
            "Operations that failed for want of a file descriptor.",
            &[
                (
                    &[("during", During::Accept.as_str())],
                    ConstCounter::new(ACCEPT_FAILURES.load(Ordering::Relaxed)),
                ),
                (
                    &[("during", During::Open.as_str())],
                    ConstCounter::new(OPEN_FAILURES.load(Ordering::Relaxed)),
                ),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emfile_is_found_through_wrappers() {
        let emfile = io::Error::from_raw_os_error(EMFILE);
        assert!(is_exhaustion(&emfile));
        #[derive(Debug, thiserror::Error)]
        #[error("seg-000001.bin: {0}")]
        struct Located(#[source] io::Error);
        let wrapped = io::Error::new(emfile.kind(), Located(emfile));
        assert!(is_exhaustion(&wrapped));
        assert!(!is_exhaustion(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(2)));
    }

    #[test]
    fn an_episode_is_counted_once() {
        let before = EPISODES.load(Ordering::Relaxed);
        let e = io::Error::from_raw_os_error(ENFILE);
        exhausted(During::Open, &e);
        exhausted(During::Open, &e);
        assert!(is_exhausted());
        assert_eq!(EPISODES.load(Ordering::Relaxed), before + 1);
        available();
        assert!(!is_exhausted());
        #[cfg(feature = "metrics")]
        {
            let out = crate::metrics::text_of("caravan_test", Descriptors);
            assert!(out.contains("caravan_test_fd_exhausted 0\n"), "{out}");
            assert!(out.contains("during=\"open\"}"), "{out}");
        }
    }
}
