//! Taking in a document handed to `send` (NSW API and control API) so that no client can hold
//! the others hostage.
//!
//! Room among `payload_in_flight_mib` is taken as the bytes arrive, not for the length a client
//! declares: a slow client holds only what it has sent. The body must keep up, in the manner of
//! Apache's `mod_reqtimeout` (`body=20,MinRate=500`): after a grace period it must have
//! arrived at a minimum average rate (each `min_rate` bytes buy one more second), and a body
//! with no byte for the listener's `idle_timeout` fails too ([`caravan_common::net::BodyIdle`]).
//! Either is answered 408 `BODY_TIMEOUT` and the room it held is given back at once. When the
//! room is full, a send waits at most `room_wait` for it, then gets 503 `NO_ROOM_TO_SEND` with
//! `Retry-After` (two half-received documents each waiting for the other's room end this way
//! too). The room a document holds goes with it into the outbox ([`crate::outbound::Outgoing`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::body::Body;
use http_body_util::BodyExt;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::ConstGauge},
    registry::Registry,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tracing::{info, warn};

use caravan_common::net::BodyIdle;

use crate::config::UploadRules;

/// The `Retry-After` of a send refused for want of room, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Why a document was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Over `max_payload_bytes` (413).
    #[error("the document is larger than max_payload_bytes ({0} bytes)")]
    TooLarge(usize),
    /// Slower than the minimum rate after the grace period (408).
    #[error(
        "the document arrived slower than {min_rate} bytes/s after the first {grace_secs} s (upload.min_rate_bytes_per_sec, upload.grace_secs)"
    )]
    Slow { min_rate: u64, grace_secs: u64 },
    /// No byte for the idle timeout (408).
    #[error("no byte of the document for {0} s (net.idle_timeout_secs)")]
    Idle(u64),
    /// No room among `payload_in_flight_mib` within `room_wait` (503).
    #[error(
        "no room to take the document in: payload_in_flight_mib ({mib} MiB) is held by documents being received or queued; waited {waited_secs} s (upload.room_wait_secs)"
    )]
    NoRoom { mib: usize, waited_secs: u64 },
    /// The body failed otherwise (400); the body's (or the room's) error is the source.
    #[error("the document could not be read: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What uploads did, for `/metrics`, and whether the room is full now (logged once per change).
#[derive(Debug)]
pub struct UploadStats {
    /// `caravan_spoke_uploads_refused_total`, by reason; the three below are its members.
    refused: Family<Reason, Counter>,
    slow: Counter,
    idle: Counter,
    no_room: Counter,
    full: AtomicBool,
}

/// The label of refused uploads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

impl Default for UploadStats {
    fn default() -> Self {
        let refused = Family::<Reason, Counter>::default();
        let member = |reason| refused.get_or_create_owned(&Reason { reason });
        let (slow, idle, no_room) = (member("slow"), member("idle"), member("no_room"));
        Self {
            refused,
            slow,
            idle,
            no_room,
            full: AtomicBool::new(false),
        }
    }
}

impl UploadStats {
    /// Register the refusals in `registry`; the room, read at scrape time, goes into each
    /// scrape's registry with [`room_gauges`].
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "caravan_spoke_uploads_refused",
            "Documents refused while being taken in, by reason (slow and idle: 408 BODY_TIMEOUT; no_room: 503 NO_ROOM_TO_SEND)",
            self.refused.clone(),
        );
    }

    fn count(&self, e: &UploadError) {
        let counter = match e {
            UploadError::Slow { .. } => &self.slow,
            UploadError::Idle(_) => &self.idle,
            UploadError::NoRoom { .. } => &self.no_room,
            _ => return,
        };
        counter.inc();
    }
}

/// The room now in `registry`: `taken_kib` of `room_kib` held.
pub fn room_gauges(registry: &mut Registry, taken_kib: usize, room_kib: usize) {
    registry.register(
        "caravan_spoke_upload_room_taken_kib",
        "KiB of payload_in_flight_mib held by documents being taken in or queued",
        ConstGauge::new(taken_kib as i64),
    );
    registry.register(
        "caravan_spoke_upload_room_kib",
        "KiB of payload_in_flight_mib",
        ConstGauge::new(room_kib as i64),
    );
}

/// The room documents are taken in with: `kib` permits of one KiB.
pub struct Room {
    pub kib: usize,
    pub permits: Arc<Semaphore>,
}

impl Room {
    /// KiB held now.
    pub fn taken_kib(&self) -> usize {
        self.kib.saturating_sub(self.permits.available_permits())
    }
}

/// Read `body` (at most `max` bytes), taking room as its bytes arrive, under `rules`.
/// `idle` is the listener's idle timeout, for the message. Returns the document and the room
/// it holds; on any error the room taken is given back (dropped) at once.
pub async fn take_in(
    body: Body,
    max: usize,
    rules: &UploadRules,
    room: &Room,
    stats: &UploadStats,
    idle: Duration,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), UploadError> {
    let result = read(body, max, rules, room, idle).await;
    match &result {
        Err(e) => {
            stats.count(e);
            if matches!(e, UploadError::NoRoom { .. }) && !stats.full.swap(true, Ordering::Relaxed)
            {
                warn!(
                    mib = room.kib / 1024,
                    "send room full: sends are refused with 503 NO_ROOM_TO_SEND until documents already taken in reach the outbox (see the runbook, 'Slow uploads')"
                );
            }
        }
        Ok(_) => {
            if stats.full.swap(false, Ordering::Relaxed) {
                info!("send room available again");
            }
        }
    }
    result
}

async fn read(
    body: Body,
    max: usize,
    rules: &UploadRules,
    room: &Room,
    idle: Duration,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), UploadError> {
    let start = Instant::now();
    let mut paused = Duration::ZERO;
    let mut held = room
        .permits
        .clone()
        .try_acquire_many_owned(0)
        .map_err(|e| UploadError::Read(e.into()))?;
    let mut document = Vec::new();
    let mut body = body;
    loop {
        // mod_reqtimeout's rule: the grace period, plus a second per `min_rate` bytes received.
        let allowed =
            rules.grace + Duration::from_secs_f64(document.len() as f64 / rules.min_rate as f64);
        let deadline = start + paused + allowed;
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(UploadError::Slow {
                    min_rate: rules.min_rate,
                    grace_secs: rules.grace.as_secs(),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(c) = cause {
                    if c.is::<BodyIdle>() {
                        return Err(UploadError::Idle(idle.as_secs()));
                    }
                    cause = c.source();
                }
                return Err(UploadError::Read(e.into()));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if document.len() + data.len() > max {
            return Err(UploadError::TooLarge(max));
        }
        document.extend_from_slice(&data);
        // One KiB permit per KiB received; a document larger than the room takes it all.
        let want = document.len().div_ceil(1024).min(room.kib);
        let need = want.saturating_sub(held.num_permits());
        if need > 0 {
            let waiting = Instant::now();
            let more = more_room(room, need, rules).await;
            // Time spent waiting for room is not the client's.
            paused += waiting.elapsed();
            held.merge(more?);
        }
    }
    if held.num_permits() == 0 {
        // An empty document still takes a place, as it did when room was taken up front.
        held.merge(more_room(room, 1, rules).await?);
    }
    Ok((document, held))
}

/// `kib` more KiB of room: at once when free, else within `room_wait` or [`UploadError::NoRoom`].
async fn more_room(
    room: &Room,
    kib: usize,
    rules: &UploadRules,
) -> Result<OwnedSemaphorePermit, UploadError> {
    let kib = u32::try_from(kib).unwrap_or(u32::MAX);
    if let Ok(more) = room.permits.clone().try_acquire_many_owned(kib) {
        return Ok(more);
    }
    tokio::time::timeout(
        rules.room_wait,
        room.permits.clone().acquire_many_owned(kib),
    )
    .await
    .map_err(|_| UploadError::NoRoom {
        mib: room.kib / 1024,
        waited_secs: rules.room_wait.as_secs(),
    })?
    .map_err(|e| UploadError::Read(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `take_in` of `len` bytes under `max`, with a listener idle timeout of a minute.
    async fn take(
        len: usize,
        max: usize,
        rules: &UploadRules,
        room: &Room,
        stats: &UploadStats,
    ) -> Result<(Vec<u8>, OwnedSemaphorePermit), UploadError> {
        let body = Body::from(vec![1u8; len]);
        take_in(body, max, rules, room, stats, Duration::from_secs(60)).await
    }

    fn room(kib: usize) -> Room {
        Room {
            kib,
            permits: Arc::new(Semaphore::new(kib)),
        }
    }

    #[tokio::test]
    async fn room_follows_the_bytes_received() {
        let room = room(4);
        let stats = UploadStats::default();
        let rules = UploadRules::default();
        let (doc, held) = take(2000, 10_000, &rules, &room, &stats).await.unwrap();
        assert_eq!(doc.len(), 2000);
        assert_eq!(held.num_permits(), 2);
        assert_eq!(room.taken_kib(), 2);
        drop(held);
        assert_eq!(room.taken_kib(), 0);
        let err = take(10_001, 10_000, &rules, &room, &stats)
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::TooLarge(10_000)), "{err}");
        assert_eq!(
            room.taken_kib(),
            0,
            "a refused document gives its room back"
        );
    }

    #[tokio::test]
    async fn a_full_room_is_refused_after_the_wait() {
        let room = room(2);
        let stats = UploadStats::default();
        let rules = UploadRules {
            room_wait: Duration::from_millis(100),
            ..UploadRules::default()
        };
        let holder = room.permits.clone().try_acquire_many_owned(2).unwrap();
        let err = take(10, 100, &rules, &room, &stats).await.unwrap_err();
        assert!(matches!(err, UploadError::NoRoom { .. }), "{err}");
        let mut registry = Registry::default();
        stats.register(&mut registry);
        room_gauges(&mut registry, 2, 2);
        let text = caravan_common::metrics::encode(&[&registry]);
        for line in [
            "caravan_spoke_uploads_refused_total{reason=\"no_room\"} 1",
            "caravan_spoke_uploads_refused_total{reason=\"slow\"} 0",
            "caravan_spoke_upload_room_taken_kib 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        drop(holder);
        assert!(take(10, 100, &rules, &room, &stats).await.is_ok());
    }
}
