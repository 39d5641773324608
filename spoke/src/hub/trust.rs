//! The trust list this spoke holds (owned here): fetched from the hub, believed only if the pinned anchor
//! key signed it and it is not older than the one held, kept durably, and followed as the hub
//! issues new versions.
//!
//! When the hub is unreachable the spoke keeps working on the last good list; once that list
//! passes its next-update time the spoke says so loudly (log lines, and a `TRUST_LIST_STALE`
//! note on every verification) but does not stop.

use std::{sync::Arc, time::Duration};

use prost::Message;
use tokio::sync::watch;
use tonic::transport::Channel;
use tracing::{error, info, warn};

use caravan_common::{Refusal, RefusalCode, Timestamp, signing::PublicKey, trust::TrustSet};
use caravan_proto::{trust_list, v1, v1::trust_anchor_client::TrustAnchorClient};

use crate::{
    rt::{Backoff, Shutdown, blocking},
    store::{SpokeStore, StoreError},
};

/// A verified trust list.
#[derive(Debug)]
pub struct Held {
    pub set: TrustSet,
    pub signed: v1::SignedTrustList,
}

/// The list in force, shared by every task.
pub struct TrustHolder {
    anchor: PublicKey,
    store: Arc<SpokeStore>,
    current: watch::Sender<Option<Arc<Held>>>,
    /// Whether the hub's current list was asked for (and judged) since start: deliveries
    /// wait for it, so that a spoke restarted with an old list never judges a document by
    /// it (a key revoked or registered meanwhile).
    asked: watch::Sender<bool>,
}

/// Why the held list could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The store could not be read: a disk or store failure, not a judgement of the list.
    #[error("cannot read the stored trust list: {0}")]
    Store(#[source] StoreError),
    /// The stored list was read, and is not one the pinned anchor signed.
    #[error("the stored trust list is not valid for the pinned anchor: {0}")]
    Invalid(#[source] Refusal),
}

/// Why a list the hub offered was not kept.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// Forged, for another anchor, or older than the list held: the held one stays.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A good list that could not be kept (a disk or store failure): the held one stays, and
    /// the hub's is judged again at the next offer.
    #[error("cannot keep the trust list: {0}")]
    Store(#[source] StoreError),
}

/// Judge what the store holds as the trust list (`read`, the store's answer): a store
/// failure stays a store failure, never an invalid list.
fn stored_list(
    read: Result<Option<Vec<u8>>, StoreError>,
    anchor: &PublicKey,
) -> Result<Option<Held>, TrustError> {
    let Some(bytes) = read.map_err(TrustError::Store)? else {
        return Ok(None);
    };
    let signed = v1::SignedTrustList::decode(bytes.as_slice()).map_err(|e| {
        TrustError::Invalid(Refusal::new(RefusalCode::InvalidTrustList, e.to_string()))
    })?;
    let (_, set) = trust_list::open(&signed, anchor).map_err(TrustError::Invalid)?;
    Ok(Some(Held { set, signed }))
}

impl TrustHolder {
    /// Load the last good list from the store (checked again: the store is not trusted more
    /// than the network).
    pub fn load(anchor: PublicKey, store: Arc<SpokeStore>) -> Result<Self, TrustError> {
        let held = stored_list(store.trust_list(), &anchor)?.map(|held| {
            info!(
                version = held.set.info.version,
                "trust list loaded from the store"
            );
            Arc::new(held)
        });
        Ok(Self {
            anchor,
            store,
            current: watch::channel(held).0,
            asked: watch::channel(false).0,
        })
    }

    /// Wait until the hub's current list has been asked for and judged since start, and a
    /// list is held: only then can a delivery be judged with the list in force. False when
    /// the holder is gone.
    pub async fn ready(&self) -> bool {
        let mut asked = self.asked.subscribe();
        let mut lists = self.current.subscribe();
        loop {
            if *asked.borrow_and_update() && lists.borrow_and_update().is_some() {
                return true;
            }
            tokio::select! {
                changed = asked.changed() => if changed.is_err() { return false },
                changed = lists.changed() => if changed.is_err() { return false },
            }
        }
    }

    /// The list in force, if any was ever received.
    pub fn current(&self) -> Option<Arc<Held>> {
        self.current.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Held>>> {
        self.current.subscribe()
    }

    fn version(&self) -> u64 {
        self.current().map(|h| h.set.info.version).unwrap_or(0)
    }

    /// Judge a list from the hub: keep it (durably) if genuine and newer. Returns whether it
    /// replaced the held one.
    pub async fn offer(&self, signed: v1::SignedTrustList) -> Result<bool, OfferError> {
        let (_, set) = trust_list::open(&signed, &self.anchor)?;
        let held = self.version();
        let version = set.info.version;
        if version < held {
            return Err(OfferError::Refused(Refusal::new(
                RefusalCode::TrustListRollback,
                format!(
                    "the hub offered trust list version {version}, older than the version {held} held"
                ),
            )));
        }
        if version == held {
            return Ok(false);
        }
        let (store, bytes) = (self.store.clone(), signed.encode_to_vec());
        blocking(move || {
            store.set_trust_list(&bytes)?;
            store.flush()
        })
        .await
        .map_err(OfferError::Store)?;
        info!(version, next_update = ?set.info.next_update, "trust list updated");
        self.current
            .send_replace(Some(Arc::new(Held { set, signed })));
        Ok(true)
    }

    /// Follow the hub's trust list until `shutdown`: watch for new versions, reconnect with
    /// backoff, and warn while the held list is stale.
    pub async fn follow(self: Arc<Self>, link: super::link::HubLink, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        loop {
            let address = link.current();
            let outcome = tokio::select! {
                r = self.watch_once(link.channel.clone(), &mut backoff) => r,
                _ = shutdown.changed() => return,
            };
            if let Err(status) = outcome {
                warn!(code = ?status.code(), message = status.message(), "trust list watch failed");
                if super::link::unreachable(&status) {
                    link.failed(address, "the trust list watch failed").await;
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = self.sleep_warning_if_stale(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Ask the hub for its current list now and judge it (a newer one replaces the held one),
    /// whatever the watch stream is doing: a document may name a key the list held does not
    /// know yet. False when the hub could not be asked.
    pub async fn refresh(&self, channel: Channel) -> bool {
        match TrustAnchorClient::new(channel)
            .current(v1::CurrentTrustListRequest {})
            .await
        {
            Ok(current) => {
                self.judge_offer(current.into_inner()).await;
                true
            }
            Err(status) => {
                warn!(code = ?status.code(), message = status.message(), "could not ask the hub for its current trust list");
                false
            }
        }
    }

    async fn watch_once(
        &self,
        channel: Channel,
        backoff: &mut Backoff,
    ) -> Result<(), tonic::Status> {
        let mut client = TrustAnchorClient::new(channel);
        // The current list first, whatever its version: a hub offering an older one than held
        // (restored from an old backup, or lying) is noticed and refused here.
        let current = client
            .current(v1::CurrentTrustListRequest {})
            .await?
            .into_inner();
        self.judge_offer(current).await;
        self.asked.send_replace(true);
        let mut stream = client
            .watch(v1::WatchTrustListRequest {
                after_version: self.version(),
            })
            .await?
            .into_inner();
        backoff.reset();
        loop {
            let next = tokio::select! {
                next = stream.message() => next?,
                _ = self.sleep_warning_if_stale(Duration::from_secs(3600)) => continue,
            };
            let Some(signed) = next else { return Ok(()) };
            self.judge_offer(signed).await;
        }
    }

    /// Offer a list; a forged or rolled-back one is refused, loudly, and the held one kept.
    async fn judge_offer(&self, signed: v1::SignedTrustList) {
        match self.offer(signed).await {
            Ok(_) => {}
            Err(OfferError::Refused(refusal)) => {
                error!(code = %refusal.code, detail = %refusal.detail, "trust list refused")
            }
            Err(OfferError::Store(e)) => {
                error!(cause = %e, "trust list not kept: the store failed; the held list stays in force")
            }
        }
    }

    /// Sleep for `period`, but wake to warn when the held list passes its next-update time,
    /// and every minute while it stays stale.
    async fn sleep_warning_if_stale(&self, period: Duration) {
        let deadline = tokio::time::Instant::now() + period;
        loop {
            let Some(held) = self.current() else {
                warn!(
                    "no trust list yet: received documents cannot be verified until the hub is reached"
                );
                tokio::time::sleep_until(
                    deadline.min(tokio::time::Instant::now() + Duration::from_secs(60)),
                )
                .await;
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                continue;
            };
            let now = Timestamp::now();
            let wake = match held.set.info.next_update {
                Some(next) if now > next => {
                    warn!(version = held.set.info.version, next_update = %next,
                        "TRUST LIST STALE: the held trust list passed its next-update time; verifications are marked stale");
                    Duration::from_secs(60)
                }
                Some(next) => Duration::from_millis(
                    u64::try_from(next.as_millis() - now.as_millis()).unwrap_or(0) + 1,
                ),
                None => period,
            };
            let until = deadline.min(tokio::time::Instant::now() + wake);
            tokio::time::sleep_until(until).await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use caravan_common::signing::SigningKey;

    use super::*;

    #[test]
    fn a_store_failure_is_not_an_invalid_list() {
        let anchor = SigningKey::generate().public().clone();
        let failed = stored_list(
            Err(StoreError::engine(std::io::Error::other("disk I/O error"))),
            &anchor,
        );
        let e = failed.unwrap_err();
        assert!(matches!(e, TrustError::Store(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "cannot read the stored trust list: storage engine: disk I/O error"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn stored_bytes_that_are_no_list_are_invalid() {
        let anchor = SigningKey::generate().public().clone();
        let e = stored_list(Ok(Some(b"\xff\xff not a list".to_vec())), &anchor).unwrap_err();
        assert!(matches!(e, TrustError::Invalid(_)), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("the stored trust list is not valid"),
            "{e}"
        );
        assert!(stored_list(Ok(None), &anchor).unwrap().is_none());
    }
}
