//! Runtime helpers every stage of the spoke shares: store work off the async threads, retry
//! backoff, waiting for a writable store, and the shutdown signal.
//!
//! A leaf: it knows the store's error and health, nothing of sending or receiving.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::SpokeStore;

/// The shutdown signal every long-running task watches: it changes (to `true`) once, when the
/// spoke stops.
pub type Shutdown = watch::Receiver<bool>;

/// Run blocking store work off the async threads.
pub use caravan_common::store::blocking;

/// Run CPU-heavy synchronous work (verifying signatures, hashing and parsing documents) where
/// it does not hold up the other tasks of an async worker thread: on the multi-threaded
/// runtime the spoke runs on, the worker hands its other tasks on first; elsewhere (a
/// single-threaded test runtime) in place.
pub fn cpu_bound<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Wait until the store takes writes (at once, unless it is faulted: a full disk, say; it
/// recovers by itself, `caravan_common::recovery`); false on shutdown.
pub async fn store_writable(store: &SpokeStore, shutdown: &mut Shutdown) -> bool {
    let Some(health) = store.health() else {
        return true;
    };
    let mut condition = health.subscribe();
    loop {
        if condition.borrow_and_update().fault.is_none() {
            return true;
        }
        tokio::select! {
            changed = condition.changed() => if changed.is_err() { return false },
            _ = shutdown.changed() => return false,
        }
    }
}

/// Exponential backoff with full jitter, from 250 ms up to 30 s.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE_MS: u64 = 250;
    const MAX_MS: u64 = 30_000;

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::BASE_MS
            .saturating_mul(1 << self.attempt.min(10))
            .min(Self::MAX_MS);
        self.attempt = self.attempt.saturating_add(1);
        // Half fixed, half random: spokes that lost the hub together do not return together.
        let jitter = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (ceiling / 2 + 1);
        Duration::from_millis(ceiling / 2 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds_and_resets() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(125) && d <= Duration::from_millis(30_000));
        }
        let late = b.next_delay();
        assert!(late >= Duration::from_millis(15_000), "{late:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(250));
    }
}
