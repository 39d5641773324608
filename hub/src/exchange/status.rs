//! Status and WatchStatus: a sender's view of its messages, one message's record or the
//! resumable stream of state changes, each shown only once durable, with its log proof.

use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{Instrument, info};

use caravan_common::{MessageId, ParticipantId, RefusalCode};
use caravan_proto::v1;

use super::state::{DELIVERY_BATCH, DELIVERY_BUFFER, Exchange, STATUS_FLUSH_WAIT, wire_state};
use crate::{
    error::HubError,
    store::{MessageState, StoreError, TreeHead},
};

impl Exchange {
    /// Open `sender`'s status stream after the request's cursor; it runs in its own task, in
    /// the caller's span.
    pub(super) fn open_status(
        self: Arc<Self>,
        sender: ParticipantId,
        request: v1::WatchStatusRequest,
    ) -> ReceiverStream<Result<v1::StatusEvent, Status>> {
        // A cursor from before a restore means nothing now: start again from the first event.
        let after = if request.epoch.is_empty() || request.epoch == self.epoch {
            request.after
        } else {
            info!(caller = %sender, "status cursor from another epoch (the hub was restored): replaying");
            0
        };
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        tokio::spawn(self.stream_status(sender, after, tx).in_current_span());
        ReceiverStream::new(rx)
    }

    /// Stream `sender`'s status events after `cursor` until it disconnects or the hub stops.
    async fn stream_status(
        self: Arc<Self>,
        sender: ParticipantId,
        mut cursor: u64,
        tx: mpsc::Sender<Result<v1::StatusEvent, Status>>,
    ) {
        let mut updates = self.status_signals.subscribe(sender);
        let mut shutdown = self.shutdown.clone();
        loop {
            updates.borrow_and_update();
            let events = match self
                .store
                .read(move |b| b.events(sender, cursor, DELIVERY_BATCH))
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    let _ = tx.send(Err(HubError::from(e).into())).await;
                    return;
                }
            };
            if events.is_empty() {
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            // Tell the sender only what is durable, each change with its proof: wait for the
            // flush that covers the newest one if the signed head does not yet.
            let newest = events.iter().map(|(_, e)| e.log_index).max().unwrap_or(0);
            let mut head = self.commit.heads().current();
            if newest > head.tree_size {
                head = match self.durable_head(newest).await {
                    Ok(head) => head,
                    Err(e) => {
                        let _ = tx.send(Err(HubError::from(e).into())).await;
                        return;
                    }
                };
            }
            let indices: Vec<u64> = events.iter().map(|(_, e)| e.log_index).collect();
            let proofs = match self.prove_many(&head, &indices).await {
                Ok(proofs) => proofs,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            for ((next, event), log_proof) in events.into_iter().zip(proofs) {
                cursor = next;
                let state =
                    MessageState::try_from(event.state).unwrap_or(MessageState::Unspecified);
                let ack = (!event.ack.is_empty())
                    .then(|| v1::SignedAck::decode(event.ack.as_slice()).ok())
                    .flatten();
                let event = v1::StatusEvent {
                    cursor: next,
                    message_id: event.message_id,
                    state: wire_state(state) as i32,
                    at_ms: event.at_ms,
                    ack,
                    log_proof,
                    epoch: self.epoch.clone(),
                };
                tokio::select! {
                    sent = tx.send(Ok(event)) => if sent.is_err() { return },
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    /// A signed head over the first `size` entries of the log: the next flush usually brings
    /// one within milliseconds (writers ask for flushes all the time under load), and only if
    /// none comes within [`STATUS_FLUSH_WAIT`] is one asked for. A state change nobody waits
    /// for (a delivery) so rides on the flush of the next write instead of costing one.
    pub(super) async fn durable_head(&self, size: u64) -> Result<Arc<TreeHead>, StoreError> {
        let mut heads = self.commit.heads().subscribe();
        let covered = tokio::time::timeout(
            STATUS_FLUSH_WAIT,
            heads.wait_for(|head| head.tree_size >= size),
        )
        .await
        .ok()
        .and_then(|head| head.ok().map(|head| head.clone()));
        match covered {
            Some(head) => Ok(head),
            None => self.commit.wait().await,
        }
    }

    pub(super) async fn status(
        &self,
        caller: ParticipantId,
        request: v1::StatusRequest,
    ) -> Result<v1::StatusResponse, HubError> {
        let message_id: MessageId = request
            .message_id
            .parse()
            .map_err(|e| HubError::refused(RefusalCode::MalformedRequest, format!("{e}")))?;
        let Some(record) = self
            .store
            .run(move |b| b.status(caller, message_id))
            .await?
        else {
            return Err(HubError::refused(
                RefusalCode::UnknownMessage,
                format!("no message {message_id} was sent by {caller}"),
            ));
        };
        let corrupt = |what: &'static str| {
            move |e: prost::DecodeError| {
                HubError::Store(crate::store::StoreError::Corrupt {
                    what,
                    detail: e.to_string(),
                })
            }
        };
        let receipt = match record.receipt.is_empty() {
            false => {
                v1::SignedReceipt::decode(record.receipt.as_slice()).map_err(corrupt("receipt"))?
            }
            // Its sender took a log proof as the receipt: signed now from the ACCEPTED entry.
            true => {
                let index = record.accepted_log_index;
                let entry = self
                    .store
                    .read(move |b| b.log_entries(index, 1))
                    .await?
                    .pop()
                    .filter(|(i, _)| *i == index)
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "log entry",
                        detail: format!("entry {index} of {message_id}'s acceptance is missing"),
                    })?;
                self.sign_receipt_of(&entry.1)?
            }
        };
        let ack = match record.ack.is_empty() {
            true => None,
            false => Some(v1::SignedAck::decode(record.ack.as_slice()).map_err(corrupt("ack"))?),
        };
        Ok(v1::StatusResponse {
            message_id: message_id.to_string(),
            state: wire_state(record.current()) as i32,
            receipt: Some(receipt),
            ack,
            transitions: record
                .transitions
                .iter()
                .map(|t| v1::Transition {
                    state: wire_state(
                        MessageState::try_from(t.state).unwrap_or(MessageState::Unspecified),
                    ) as i32,
                    at_ms: t.at_ms,
                })
                .collect(),
        })
    }
}
