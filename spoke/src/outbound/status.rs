//! Following what was sent: the hub's resumable stream of status events for this spoke's
//! documents, each checked (log proof, the recipient's acknowledgement) and kept in the
//! document's history; documents the hub lost after a receipt are queued again.
//!
//! The stream is opened once the spoke has a document in flight (queued, or receipted and not
//! settled), and kept open from then on: a spoke that only receives has no events to follow,
//! and holds no stream at the hub (nor does it take in another client's events sent in its
//! name, as `caravan-bench`'s).

use std::sync::Arc;

use futures::StreamExt;
use prost::Message;
use tracing::{debug, error, info};

use caravan_common::{MessageId, Refusal, RefusalCode, Timestamp, signing::sha256};
use caravan_proto::{ack, v1};

use crate::{
    hub::{ack_evidence, store_status},
    rt::{Backoff, Shutdown, blocking},
    store::{AckCheck, AckRecord, HubState, LogAlarm, SentRecord, StateChange, StoreError},
};

use super::Outbound;

/// Status events applied in one batch of the store at most.
const STATUS_BATCH: usize = 256;
/// Why a receipted document went back to the outbox (its `last_error`).
const STRANDED: &str = "the hub no longer knew this document after giving a receipt for it (restored from a backup?): resubmitted under the same message id";

/// A status event to apply: message, change, the acknowledgement it carried, cursor, epoch.
type StatusChange = (MessageId, StateChange, Option<AckRecord>, u64, String);

impl Outbound {
    /// Follow the hub's stream of status events for what this spoke sent, keeping each
    /// message's history and the recipient's verified acknowledgement, until `shutdown`: from
    /// the first document in flight (see the module's documentation).
    pub async fn follow_status(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            let store = self.store.clone();
            let in_flight =
                blocking(move || Ok(store.outbox_len()? > 0 || !store.receipted(1)?.is_empty()))
                    .await;
            match in_flight {
                Ok(true) => break,
                Ok(false) => {}
                // The stream reports the store's trouble as it would without this wait.
                Err(e) => {
                    debug!(cause = %e, "could not tell whether a document is in flight; following status");
                    break;
                }
            }
            // A document queued since the check left its wake-up here.
            tokio::select! {
                _ = self.queued.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
        let mut backoff = Backoff::default();
        loop {
            let outcome = tokio::select! {
                r = self.status_stream(&mut backoff) => r,
                _ = shutdown.changed() => return,
            };
            if let Err(status) = outcome {
                debug!(code = ?status.code(), message = status.message(), "status stream ended");
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn status_stream(&self, backoff: &mut Backoff) -> Result<(), tonic::Status> {
        self.resubmit_stranded().await?;
        let store = self.store.clone();
        let (after, epoch) = blocking(move || store.status_cursor())
            .await
            .map_err(store_status)?;
        let stream = self
            .hub
            .client()
            .watch_status(v1::WatchStatusRequest { after, epoch })
            .await?
            .into_inner();
        backoff.reset();
        // The events that have arrived together are applied in one batch of the store.
        let mut chunks = stream.ready_chunks(STATUS_BATCH);
        while let Some(chunk) = chunks.next().await {
            let mut changes = Vec::with_capacity(chunk.len());
            for event in chunk {
                if let Some(change) = self.status_change(event?).await.map_err(store_status)? {
                    changes.push(change);
                }
            }
            let applied = changes.len() as u64;
            self.store
                .batch(|| {
                    for (message_id, change, acknowledgement, cursor, epoch) in changes.drain(..) {
                        self.store.apply_status(
                            message_id,
                            change,
                            acknowledgement,
                            cursor,
                            &epoch,
                        )?;
                    }
                    Ok(())
                })
                .map_err(store_status)?;
            self.settled.send_modify(|n| *n += applied);
        }
        Ok(())
    }

    /// Find the documents the hub gave receipts for that it no longer knows (its store was
    /// restored from a backup taken before them), and queue them again under their message
    /// ids, byte for byte: the hub takes them as new, and the recipient's duplicate check
    /// keeps them exactly once. One alarm names them all. Runs at each connection of the
    /// status stream, so after every restart of the hub.
    async fn resubmit_stranded(&self) -> Result<(), tonic::Status> {
        let store = self.store.clone();
        let receipted = blocking(move || store.receipted(usize::MAX))
            .await
            .map_err(store_status)?;
        if receipted.is_empty() {
            return Ok(());
        }
        let client = self.hub.client();
        let answers: Vec<_> = futures::stream::iter(receipted)
            .map(|id| {
                let mut client = client.clone();
                async move {
                    let asked = client
                        .status(v1::StatusRequest {
                            message_id: id.to_string(),
                        })
                        .await;
                    (id, asked)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut lost = Vec::new();
        for (id, answer) in answers {
            match answer {
                Ok(_) => {}
                Err(status)
                    if caravan_proto::status::from_status(&status)
                        .is_some_and(|r| r.code == RefusalCode::UnknownMessage) =>
                {
                    lost.push(id)
                }
                Err(status) => return Err(status),
            }
        }
        if lost.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let requeued = blocking(move || {
            let mut requeued = Vec::new();
            for id in lost {
                if store.requeue(id, STRANDED)? {
                    requeued.push(id);
                }
            }
            store.flush()?;
            Ok(requeued)
        })
        .await
        .map_err(store_status)?;
        if requeued.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = requeued.iter().map(|m| m.to_string()).collect();
        let detail = format!(
            "the hub no longer knew {} document(s) it had given receipts for (was it restored from a backup?); resubmitted under the same message ids: {}",
            ids.len(),
            ids.join(", ")
        );
        error!(
            alarm = "hub_lost_documents",
            count = ids.len(),
            detail,
            "the hub lost receipted documents"
        );
        self.hub
            .log()
            .keep_alarm(LogAlarm {
                at: Timestamp::now(),
                code: "HUB_LOST_DOCUMENTS".into(),
                detail,
                message_id: None,
                heads: Vec::new(),
            })
            .await;
        self.outbox_signal.notify_one();
        Ok(())
    }

    /// Check a status event (its log proof, the acknowledgement it carries) and say what it
    /// changes: `None` for an event this spoke does not understand.
    async fn status_change(
        &self,
        event: v1::StatusEvent,
    ) -> Result<Option<StatusChange>, StoreError> {
        let Ok(message_id) = event.message_id.parse::<MessageId>() else {
            return Ok(None);
        };
        let state = match v1::MessageState::try_from(event.state) {
            Ok(v1::MessageState::Accepted) => HubState::Accepted,
            Ok(v1::MessageState::Delivered) => HubState::Delivered,
            Ok(v1::MessageState::Acknowledged) => HubState::Acknowledged,
            Ok(v1::MessageState::Rejected) => HubState::Rejected,
            Ok(v1::MessageState::Expired) => HubState::Expired,
            _ => return Ok(None),
        };
        // Store reads on the request path run inline: the engine reads from memory, and a
        // hand-off to a blocking thread costs more.
        let record = self.store.sent_entry(message_id)?;
        if let Some(sent) = &record {
            let kind = match state {
                HubState::Accepted => v1::LogEntryKind::Accepted,
                HubState::Delivered => v1::LogEntryKind::Delivered,
                HubState::Acknowledged => v1::LogEntryKind::Acknowledged,
                HubState::Rejected => v1::LogEntryKind::Rejected,
                HubState::Expired => v1::LogEntryKind::Expired,
            };
            let evidence = event.ack.as_ref().map(|a| sha256(&a.encode_to_vec()));
            let expected = self.expected(kind, sent, evidence);
            self.hub
                .check_log(event.log_proof.as_ref(), &expected, "status event")
                .await;
        }
        // An acknowledgement of a message this spoke has no record of would not be kept: it is
        // not checked either.
        let change = StateChange {
            state,
            at: Timestamp::from_millis(event.at_ms),
        };
        let acknowledgement = event
            .ack
            .filter(|_| record.is_some())
            .map(|signed| self.check_ack(&signed, record.as_ref(), change.at));
        info!(%message_id, state = ?state, "status");
        Ok(Some((
            message_id,
            change,
            acknowledgement,
            event.cursor,
            event.epoch,
        )))
    }

    /// Verify a recipient's acknowledgement of `sent` with the trust list held, its key judged
    /// at `at`, when the hub recorded the acknowledgement (as a document's key is judged when
    /// the hub accepted it): an acknowledgement made before its key expired or was revoked
    /// stays verified when its event arrives later.
    fn check_ack(
        &self,
        signed: &v1::SignedAck,
        sent: Option<&SentRecord>,
        at: Timestamp,
    ) -> AckRecord {
        let encoded = ack_evidence(signed);
        let verified = self.hub.trust_set().and_then(|held| {
            let ack = {
                let mut batches = self.ack_batches.lock().unwrap_or_else(|e| e.into_inner());
                ack::verify_with(signed, &held.set, at, &mut batches)?
            };
            let mismatch = |what: &str| {
                Refusal::new(
                    RefusalCode::InvalidAck,
                    format!("the acknowledgement names another {what}"),
                )
            };
            if ack.sender != self.me {
                return Err(mismatch("sender"));
            }
            if let Some(s) = sent {
                if ack.message_id != s.message_id || ack.recipient != s.recipient {
                    return Err(mismatch("message"));
                }
                if hex::encode(ack.header_sha256) != s.header_sha256 {
                    return Err(mismatch("header"));
                }
            }
            Ok(ack)
        });
        match verified {
            Ok(ack) => AckRecord {
                check: AckCheck::Verified(
                    serde_json::to_value(&ack).unwrap_or(serde_json::Value::Null),
                ),
                signed: encoded,
            },
            Err(r) => AckRecord {
                check: AckCheck::Failed(r.to_string()),
                signed: encoded,
            },
        }
    }
}
