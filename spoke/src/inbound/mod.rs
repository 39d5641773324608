//! The inbound stage owns what this spoke receives: it keeps a delivery stream open to the
//! hub, assembles each document from its frames ([`assemble`]), verifies it end to end
//! ([`verify`]), takes it into the inbox ([`take`]) and acknowledges it, a batch at a time
//! ([`acknowledge`]).
//!
//! **Architecture invariant:** a received document is judged only with the trust set this
//! spoke holds (participants' keys and the hub's receipt keys), never on the hub's word; the
//! inbox is written and flushed before the acknowledgement leaves.

pub mod acknowledge;
pub mod assemble;
pub mod take;
pub mod verify;

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;
use tracing::{info, warn};

use caravan_common::{ParticipantId, signing::SigningKey};
use caravan_proto::v1;

use crate::{
    config::Config,
    hub::{Hub, store_status},
    rt::{self, Backoff, Shutdown, store_writable},
    store::SpokeStore,
};

use self::take::Taken;

/// Deliveries verified and stored before one flush and their acknowledgements.
const RECEIVE_BATCH: usize = 64;
/// Batches whose acknowledgements may be under way while the next ones are received: the hub
/// answers an acknowledgement after its own flush, and waiting for that before taking the next
/// batch would leave the stream idle for a round trip per batch.
const ACK_BATCHES_IN_FLIGHT: usize = 4;

/// The inbound stage: the delivery stream, and what it takes in and acknowledges.
pub struct Inbound {
    me: ParticipantId,
    key: SigningKey,
    store: Arc<SpokeStore>,
    hub: Arc<Hub>,
    /// Bumped whenever a document enters the inbox.
    arrived: watch::Sender<u64>,
    max_payload_bytes: usize,
    /// The content checks' limits.
    check_rules: crate::config::CheckRules,
    /// Documents left unjudged (see `take::behind_hub`), with the list version held then.
    left_for_newer_list: std::sync::Mutex<
        std::collections::HashMap<(ParticipantId, caravan_common::MessageId), u64>,
    >,
}

/// Why a delivery stream ended without an error.
enum Ended {
    /// The hub closed it.
    ByHub,
    /// This spoke, to have a document it left for a newer trust list delivered again.
    ForNewerList,
}

/// How long a stream waits for a newer trust list after it left a document for one.
const NEWER_LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Inbound {
    pub fn new(config: &Config, store: Arc<SpokeStore>, hub: Arc<Hub>) -> Self {
        Self {
            me: config.participant,
            key: config.signing_key.clone(),
            store,
            hub,
            arrived: watch::channel(0).0,
            max_payload_bytes: config.max_payload_bytes,
            check_rules: config.checks,
            left_for_newer_list: Default::default(),
        }
    }

    /// Follow arrivals in the inbox.
    pub fn arrivals(&self) -> watch::Receiver<u64> {
        self.arrived.subscribe()
    }

    /// Keep a delivery stream open to the hub until `shutdown`, reconnecting with backoff.
    pub async fn receive(self: Arc<Self>, mut shutdown: Shutdown) {
        // Nothing can be verified, so nothing is taken, before the hub's current trust list
        // was asked for since start (a list held from before a restart may miss a key
        // registered or revoked meanwhile).
        tokio::select! {
            ready = self.hub.trust().ready() => if !ready { return },
            _ = shutdown.changed() => return,
        }
        let mut backoff = Backoff::default();
        loop {
            // Nothing is taken in while it could not be kept.
            if !store_writable(&self.store, &mut shutdown).await {
                return;
            }
            let address = self.hub.link().current();
            let outcome = tokio::select! {
                r = self.receive_stream(&mut backoff) => r,
                _ = shutdown.changed() => return,
            };
            self.hub.set_connected(false);
            match outcome {
                Ok(Ended::ByHub) => info!("the hub closed the delivery stream"),
                Ok(Ended::ForNewerList) => {}
                Err(status) => {
                    warn!(code = ?status.code(), message = status.message(), "delivery stream failed");
                    if crate::hub::link::unreachable(&status) {
                        self.hub
                            .link()
                            .failed(address, "the delivery stream failed")
                            .await;
                    }
                }
            }
            let delay = backoff.next_delay();
            info!(
                delay_ms = delay.as_millis() as u64,
                "reconnecting to the hub"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn receive_stream(&self, backoff: &mut Backoff) -> Result<Ended, tonic::Status> {
        let stream = self
            .hub
            .client()
            .deliveries(v1::DeliveriesRequest {
                resume_after: 0,
                proof_receipts: true,
            })
            .await?
            .into_inner();
        self.hub.set_connected(true);
        backoff.reset();
        info!("delivery stream open");
        let mut batches = stream.ready_chunks(RECEIVE_BATCH);
        let mut ended = Ended::ByHub;
        // The document being assembled from its frames.
        let mut partial: Option<v1::Delivery> = None;
        // Acknowledgements of flushed batches, in flight while the next batches are taken.
        let mut acking = futures::stream::FuturesUnordered::new();
        loop {
            let batch = tokio::select! {
                Some(acked) = acking.next() => {
                    acked?;
                    continue;
                }
                batch = batches.next(), if acking.len() < ACK_BATCHES_IN_FLIGHT => batch,
            };
            let Some(batch) = batch else { break };
            let mut taken = Taken::default();
            // Verifying and reading a batch of documents is CPU work (and store reads).
            let failure = rt::cpu_bound(|| {
                for item in batch {
                    let frame = match item {
                        Ok(frame) => frame,
                        Err(status) => return Ok(Some(status)),
                    };
                    match assemble::assemble(&mut partial, frame, self.max_payload_bytes) {
                        Ok(Some(delivery)) => {
                            self.take(delivery, &mut taken).map_err(store_status)?
                        }
                        Ok(None) => {}
                        Err(status) => return Ok(Some(status)),
                    }
                }
                Ok::<_, tonic::Status>(None)
            })?;
            self.keep(&mut taken).await.map_err(store_status)?;
            self.arrived.send_modify(|n| *n += 1);
            acking.push(self.acknowledge_all(taken.acks));
            if let Some(status) = failure {
                return Err(status);
            }
            if let Some(version) = taken.behind {
                // A document was left for a newer list: ask the hub for its current one (the
                // watch stream may lag), and once a newer one is held (or the wait is over), a
                // new stream has the hub deliver the document again, to be judged then.
                let mut lists = self.hub.trust().subscribe();
                self.hub
                    .trust()
                    .refresh(self.hub.link().channel.clone())
                    .await;
                let newer = tokio::time::timeout(
                    NEWER_LIST_WAIT,
                    lists.wait_for(|held| {
                        held.as_ref().is_some_and(|h| h.set.info.version > version)
                    }),
                )
                .await;
                info!(
                    newer_list = matches!(newer, Ok(Ok(_))),
                    "reopening the delivery stream to judge the document left for a newer trust list"
                );
                ended = Ended::ForNewerList;
                break;
            }
        }
        // The stream ended: the acknowledgements already under way still go out.
        while let Some(acked) = acking.next().await {
            acked?;
        }
        Ok(ended)
    }
}
