//! The exchange's shared state: the registry, store, writer and keys every RPC family uses,
//! the wake-up signals of delivery and status streams, and what every family needs (proofs,
//! the wire form of a state).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Semaphore, broadcast, watch};

use caravan_common::{ParticipantId, Timestamp, signing::SigningKey};
use caravan_proto::v1;

use crate::{
    commit::GroupCommit,
    config::CreatedAtBounds,
    error::HubError,
    metrics::Metrics,
    registry::Registry,
    store::{Change, MessageState, Store, StoreError, TreeHead},
};

/// How long a status stream waits for a flush to make its events durable before it asks for
/// one itself.
pub(super) const STATUS_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
/// How long after streaming a document the hub records it DELIVERED, if it is not settled by
/// then (`Exchange::record_delivered` says why).
pub(super) const DELIVERED_AFTER: std::time::Duration = std::time::Duration::from_secs(2);
/// How many pending documents (or status events) a stream reads from the store at a time.
pub(super) const DELIVERY_BATCH: usize = 64;
/// How many deliveries (or status events) may wait in a stream's send buffer; bounds memory
/// per slow recipient.
pub(super) const DELIVERY_BUFFER: usize = 8;

/// What a submission is held to: its payload's size, the room for streamed payloads, and its
/// header's creation time.
pub struct SubmitRules {
    pub max_payload_bytes: usize,
    pub payload_in_flight_bytes: usize,
    pub created_at: CreatedAtBounds,
}

/// State shared by all handlers.
pub struct Exchange {
    pub(super) registry: Arc<Registry>,
    pub(super) store: Store,
    pub(super) commit: GroupCommit,
    pub(super) receipt_key: SigningKey,
    pub(super) max_payload_bytes: usize,
    /// The creation times a submitted header may carry.
    pub(super) created_at: CreatedAtBounds,
    /// Room for streamed payloads in memory, in KiB (`payload_in_flight_mib`).
    pub(super) in_flight: Semaphore,
    pub(super) queues: QueueSignals,
    /// Wakes a sender's status watchers when one of its messages changes state.
    pub(super) status_signals: QueueSignals,
    /// The store's epoch: status cursors belong to it (see `WatchStatusRequest.epoch`).
    pub(super) epoch: String,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Wakes a participant's streams (deliveries for a recipient, status for a sender) when a
/// change for it is committed.
#[derive(Default)]
pub(super) struct QueueSignals(Mutex<HashMap<ParticipantId, watch::Sender<u64>>>);

impl QueueSignals {
    fn sender(&self, p: ParticipantId) -> watch::Sender<u64> {
        // Held only to look up or insert a channel; never across an await.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(p).or_insert_with(|| watch::channel(0).0).clone()
    }

    pub(super) fn subscribe(&self, p: ParticipantId) -> watch::Receiver<u64> {
        self.sender(p).subscribe()
    }

    pub(super) fn notify(&self, p: ParticipantId, sequence: u64) {
        self.sender(p).send_replace(sequence);
    }

    /// Wake every stream: something may have changed for anyone.
    fn notify_all(&self) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for sender in map.values() {
            sender.send_modify(|_| {});
        }
    }
}

impl Exchange {
    pub async fn new(
        registry: Arc<Registry>,
        store: Store,
        commit: GroupCommit,
        receipt_key: SigningKey,
        rules: SubmitRules,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, StoreError> {
        let epoch = store.read(|b| b.epoch()).await?;
        Ok(Self {
            registry,
            store,
            commit,
            receipt_key,
            max_payload_bytes: rules.max_payload_bytes,
            created_at: rules.created_at,
            in_flight: Semaphore::new(rules.payload_in_flight_bytes / 1024),
            queues: QueueSignals::default(),
            status_signals: QueueSignals::default(),
            epoch,
            metrics,
            shutdown,
        })
    }

    pub fn commit(&self) -> &GroupCommit {
        &self.commit
    }

    /// Wake this replica's streams, and read the registry again, when another replica sharing
    /// the store commits a change for them (`Backend::changes`), until the hub stops.
    pub async fn follow_replicas(
        self: Arc<Self>,
        mut changes: broadcast::Receiver<Change>,
        registry: Arc<Registry>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = stop.changed() => return,
            };
            let reload = match change {
                Ok(Change::Queue(recipient)) => {
                    self.queues.notify(recipient, 0);
                    false
                }
                Ok(Change::Status(sender)) => {
                    self.status_signals.notify(sender, 0);
                    false
                }
                Ok(Change::Registry) => true,
                // Missed changes (this replica fell behind, or reconnected): look at everything.
                Ok(Change::Everything) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.queues.notify_all();
                    self.status_signals.notify_all();
                    true
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if reload && let Err(e) = registry.reload().await {
                tracing::error!(cause = %e, "could not read the registry another replica changed");
            }
        }
    }

    /// The signed receipt of a message whose sender took a log proof instead, for a caller of
    /// protocol v1: signed now from its ACCEPTED log entry (`entry`, encoded), which says what
    /// the receipt would have said. An entry that records no acceptance means a corrupt store.
    pub(super) fn sign_receipt_of(&self, entry: &[u8]) -> Result<v1::SignedReceipt, StoreError> {
        caravan_proto::receipt::issue_for_entry(entry, &self.receipt_key).map_err(|r| {
            StoreError::Corrupt {
                what: "log entry",
                detail: r.detail,
            }
        })
    }

    /// The inclusion proof of log entry `log_index` in `head` (cheap: see `Heads::prove`).
    pub(super) async fn prove(
        &self,
        head: &TreeHead,
        log_index: u64,
    ) -> Result<Option<v1::LogProof>, HubError> {
        Ok(self.prove_many(head, &[log_index]).await?.pop().flatten())
    }

    /// [`Self::prove`] for each of `indices` in `head`, in order: those not in memory are read
    /// in one turn of the store, not one each.
    pub(super) async fn prove_many(
        &self,
        head: &TreeHead,
        indices: &[u64],
    ) -> Result<Vec<Option<v1::LogProof>>, HubError> {
        let heads = self.commit.heads().clone();
        let backend = self.store.backend();
        // Most proofs are of recent entries, which an engine whose reads block keeps in memory.
        let mut proofs: Vec<Option<v1::LogProof>> = indices
            .iter()
            .map(|&i| match backend.reads_block() {
                true => heads.prove_cached(backend, head, i),
                false => None,
            })
            .collect();
        // An index the head does not cover (0: none asked for) has no proof: not read.
        let missing: Vec<(usize, u64)> = (indices.iter().copied().enumerate())
            .filter(|&(n, i)| proofs[n].is_none() && i > 0 && i <= head.tree_size)
            .collect();
        if !missing.is_empty() {
            let head = head.clone();
            let read = self
                .store
                .read(move |b| {
                    missing
                        .into_iter()
                        .map(|(n, i)| Ok((n, heads.prove(b, &head, i)?)))
                        .collect::<Result<Vec<_>, StoreError>>()
                })
                .await?;
            for (n, proof) in read {
                proofs[n] = proof;
            }
        }
        Ok(proofs)
    }
}

/// Seconds from `t` to now (0 if `t` is in the future: clocks of another process).
pub(super) fn seconds_since(t: Timestamp) -> f64 {
    (Timestamp::now().as_millis() - t.as_millis()).max(0) as f64 / 1000.0
}

/// A stored state as the wire says it.
pub(super) fn wire_state(state: MessageState) -> v1::MessageState {
    match state {
        MessageState::Unspecified => v1::MessageState::Unspecified,
        MessageState::Accepted => v1::MessageState::Accepted,
        MessageState::Delivered => v1::MessageState::Delivered,
        MessageState::Acknowledged => v1::MessageState::Acknowledged,
        MessageState::Rejected => v1::MessageState::Rejected,
        MessageState::Expired => v1::MessageState::Expired,
    }
}
