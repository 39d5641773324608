//! Deliveries: the stream of a recipient's pending documents, in frames of one stored chunk,
//! judged again at every registry change, held back while the store is faulted, and recorded
//! as delivered a batch at a time, for those still unsettled a moment later
//! (`Exchange::record_delivered`). Each document goes with its receipt: the log proof of its
//! ACCEPTED entry for a recipient of protocol v2 (`proof_receipts`), the hub's signed receipt
//! for one of v1 (signed now if its sender took a log proof instead).

use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{Instrument, debug, info};

use caravan_common::{ParticipantId, Timestamp};
use caravan_proto::v1;

use super::state::{DELIVERED_AFTER, DELIVERY_BATCH, DELIVERY_BUFFER, Exchange, seconds_since};
use crate::{
    error::HubError,
    identity::Peer,
    metrics::{Corridor, Event},
    store::{Pending, StoreError},
};

impl Exchange {
    /// Open a delivery stream for `recipient` (whose certificate is `peer`) from after
    /// `resume_after`; it runs in its own task, in the caller's span.
    pub(crate) fn open_deliveries(
        self: Arc<Self>,
        peer: Peer,
        recipient: ParticipantId,
        request: v1::DeliveriesRequest,
    ) -> ReceiverStream<Result<v1::Delivery, Status>> {
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        tokio::spawn(
            self.stream_deliveries(peer, recipient, request, tx)
                .in_current_span(),
        );
        ReceiverStream::new(rx)
    }

    /// Stream pending documents to `recipient` until it disconnects or the hub shuts down.
    async fn stream_deliveries(
        self: Arc<Self>,
        peer: Peer,
        recipient: ParticipantId,
        request: v1::DeliveriesRequest,
        tx: mpsc::Sender<Result<v1::Delivery, Status>>,
    ) {
        let (mut cursor, proofs) = (request.resume_after, request.proof_receipts);
        let mut updates = self.queues.subscribe(recipient);
        let mut registry = self.registry.subscribe();
        let mut shutdown = self.shutdown.clone();
        let mut store_health = self.store.backend().health().map(|h| h.subscribe());
        let mut generation = store_health
            .as_mut()
            .map(|h| h.borrow_and_update().generation);
        info!(
            resume_after = cursor,
            proof_receipts = proofs,
            "delivery stream opened"
        );
        // Counted down however the stream ends.
        let _open = self.metrics.stream_opened(recipient);
        loop {
            // A suspension or a revoked certificate ends an open stream at once.
            let snapshot = registry.borrow_and_update().clone();
            if let Err(refusal) = snapshot.authorize_participant(Some(&peer)) {
                info!(code = %refusal.code, "closing the delivery stream");
                let _ = tx
                    .send(Err(caravan_proto::status::to_status(&refusal)))
                    .await;
                return;
            }
            // While the store is faulted nothing is delivered (it could not be recorded); after
            // it recovered, the queue is read again from its start: writes that were never
            // made durable may be gone, and their sequence numbers given anew.
            if let Some(health) = &mut store_health {
                let condition = health.borrow_and_update().clone();
                if condition.fault.is_some() {
                    tokio::select! {
                        changed = health.changed() => if changed.is_err() { return },
                        _ = tx.closed() => break,
                        _ = shutdown.changed() => break,
                    }
                    continue;
                }
                if generation != Some(condition.generation) {
                    generation = Some(condition.generation);
                    cursor = 0;
                }
            }
            // Mark the signal seen before reading, so a commit that lands after the read wakes us.
            updates.borrow_and_update();
            let batch = match self
                .store
                .read(move |b| b.pending(recipient, cursor, DELIVERY_BATCH))
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = tx.send(Err(HubError::from(e).into())).await;
                    return;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { return },
                    changed = registry.changed() => if changed.is_err() { return },
                    _ = tx.closed() => break,
                    _ = shutdown.changed() => break,
                }
                continue;
            }
            // A payload found corrupt is held back: it stays queued (and is reported, once,
            // by the store), never sent as good; the others go on.
            cursor = batch.last().map_or(cursor, |p| p.sequence);
            let batch: Vec<Pending> = batch
                .into_iter()
                .filter(|pending| !self.store.backend().payload_damaged(pending.sequence))
                .collect();
            let batch = match self.with_receipts(batch, proofs).await {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            // DELIVERED, if it is recorded, takes the time the batch began to go out.
            let streamed_at = Timestamp::now();
            // The payloads are read on a blocking thread, a chunk ahead of the frames sent.
            let mut payloads = self.read_payloads(&batch);
            let mut sent = Vec::with_capacity(batch.len());
            'documents: for (pending, receipt) in batch {
                // The document goes out in frames of one stored chunk each, so a large one is
                // never held whole, and a slow recipient holds at most the channel's frames.
                let sequence = pending.sequence;
                let chunks = pending.payload_chunks;
                for index in 0..chunks.max(1) {
                    let chunk = match index < chunks {
                        true => match payloads.next(sequence, index).await {
                            Ok(Some(chunk)) => chunk,
                            // Found before any of it went out: skip it.
                            Err(StoreError::PayloadCorrupt { .. }) if index == 0 => {
                                continue 'documents;
                            }
                            // Part of it went out: the recipient drops the part when the
                            // stream ends; the next stream skips the document.
                            Err(StoreError::PayloadCorrupt { document, .. }) => {
                                let _ = tx
                                    .send(Err(Status::data_loss(format!(
                                        "the stored payload of {document} is corrupt: held back at the hub"
                                    ))))
                                    .await;
                                return;
                            }
                            Ok(None) => {
                                tracing::error!(sequence, index, "stored payload chunk is missing");
                                let _ = tx
                                    .send(Err(Status::internal("stored payload is incomplete")))
                                    .await;
                                return;
                            }
                            // Logged once per episode by `caravan_common::fd`; the spoke
                            // reconnects and the document is delivered again.
                            Err(StoreError::OutOfFiles(cause)) => {
                                tracing::debug!(
                                    sequence,
                                    index,
                                    cause = %cause,
                                    "cannot read a stored payload: out of file descriptors"
                                );
                                let _ = tx
                                    .send(Err(Status::unavailable(
                                        "the hub is out of file descriptors; retry",
                                    )))
                                    .await;
                                return;
                            }
                            Err(e) => {
                                tracing::error!(sequence, index, cause = %e, "cannot read a stored payload chunk");
                                let _ = tx
                                    .send(Err(Status::internal("stored payload could not be read")))
                                    .await;
                                return;
                            }
                        },
                        false => Vec::new(),
                    };
                    let complete = index + 1 >= chunks;
                    let frame = if index == 0 {
                        v1::Delivery {
                            envelope: Some(v1::Envelope {
                                header: pending.header.clone(),
                                signature: Some(v1::Signature {
                                    key_id: pending.key_id.clone(),
                                    signature: pending.signature.clone(),
                                }),
                                payload: chunk,
                            }),
                            receipt: receipt.signed.clone(),
                            accepted_proof: receipt.proof.clone(),
                            // Its sender took a log proof as the receipt, so it speaks v2.
                            batch_ack: proofs && pending.receipt.is_empty(),
                            cursor: sequence,
                            continuation: Vec::new(),
                            complete,
                        }
                    } else {
                        v1::Delivery {
                            cursor: sequence,
                            continuation: chunk,
                            complete,
                            ..Default::default()
                        }
                    };
                    tokio::select! {
                        sent = tx.send(Ok(frame)) => if sent.is_err() { return },
                        _ = shutdown.changed() => return,
                    }
                }
                debug!(sender = %pending.sender, message_id = %pending.message_id, sequence = pending.sequence, "delivered");
                sent.push(pending);
            }
            // Counted as delivered when first streamed (a document streamed again after a
            // reconnect, before its DELIVERED was recorded, counts again).
            for pending in sent.iter().filter(|p| !p.delivered) {
                let corridor = Corridor {
                    sender: pending.sender,
                    recipient,
                    document_type: pending.document_type.clone(),
                };
                self.metrics.count(&corridor, Event::Delivered);
                self.metrics
                    .corridor(&corridor)
                    .delivery
                    .observe(seconds_since(pending.accepted_at));
            }
            let sent = sent.into_iter().map(|p| (p.sequence, p.sender)).collect();
            tokio::spawn(
                self.clone()
                    .record_delivered(sent, streamed_at)
                    .in_current_span(),
            );
        }
        info!("delivery stream closed");
    }

    /// Record DELIVERED, at `streamed_at`, for the documents of `sent` (sequence and sender)
    /// still unsettled [`DELIVERED_AFTER`] after they were streamed, in one turn of the
    /// store's writer.
    ///
    /// A recipient's spoke acknowledges within milliseconds; recording DELIVERED for every
    /// document (a log entry, its status, an event and its proof for the sender, who checks
    /// and keeps it) took about 12% of the hub's CPU per document for a state that lasted
    /// until the acknowledgement, which is the stronger evidence of delivery: signed by the
    /// recipient. The state stays where it tells something: a recipient that received a
    /// document and did not answer. A document left unrecorded by a shutdown or a store fault
    /// stays queued and is delivered (and recorded) again.
    async fn record_delivered(
        self: Arc<Self>,
        sent: Vec<(u64, ParticipantId)>,
        streamed_at: Timestamp,
    ) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(DELIVERED_AFTER) => {}
            _ = shutdown.changed() => return,
        }
        let sequences: Vec<u64> = sent.iter().map(|(sequence, _)| *sequence).collect();
        let recorded = self
            .commit
            .write(move |b| Ok(b.mark_delivered_many(&sequences, streamed_at)))
            .await;
        let recorded = match recorded {
            Ok(recorded) => recorded,
            // A faulted store was logged once.
            Err(StoreError::Unavailable(_)) => return,
            Err(e) => {
                tracing::error!(cause = %e, "could not record deliveries");
                return;
            }
        };
        for ((sequence, sender), recorded) in sent.into_iter().zip(recorded) {
            match recorded {
                Ok(true) => self.status_signals.notify(sender, sequence),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(sequence, cause = %e, "could not record delivery");
                }
            }
        }
    }
}

/// The receipt a document goes out with: one of the two forms.
struct GivenReceipt {
    signed: Option<v1::SignedReceipt>,
    proof: Option<v1::LogProof>,
}

impl Exchange {
    /// `batch` with each document's receipt in the form the recipient asked for (`proofs`:
    /// protocol v2). A document with no receipt to give (its stored one corrupt, or its log
    /// entry beyond reach) is logged and held back, never sent without one.
    async fn with_receipts(
        &self,
        batch: Vec<Pending>,
        proofs: bool,
    ) -> Result<Vec<(Pending, GivenReceipt)>, HubError> {
        // The log entries that must be proved: every one for v2, for v1 only those of messages
        // stored without a signed receipt (their senders took a log proof).
        let needed: Vec<u64> = batch
            .iter()
            .map(|p| match proofs || p.receipt.is_empty() {
                true => p.log_index,
                false => 0,
            })
            .collect();
        let largest = needed.iter().copied().max().unwrap_or(0);
        let proved = match largest {
            0 => vec![None; batch.len()],
            // A document is read once its transaction committed, perhaps before the flush that
            // makes it durable and signs the head that covers it: wait for that head.
            _ => {
                let head = self.durable_head(largest).await?;
                self.prove_many(&head, &needed).await?
            }
        };
        let mut out = Vec::with_capacity(batch.len());
        for (pending, proof) in batch.into_iter().zip(proved) {
            let sequence = pending.sequence;
            let given = match (proofs, proof) {
                (true, Some(proof)) => Ok(GivenReceipt {
                    signed: None,
                    proof: Some(proof),
                }),
                (_, Some(proof)) => self
                    .sign_receipt_of(&proof.entry)
                    .map_err(|e| e.to_string())
                    .map(|signed| GivenReceipt {
                        signed: Some(signed),
                        proof: None,
                    }),
                // v1, or a message from before the log whose entry cannot be proved: the
                // stored signed receipt.
                (_, None) if !pending.receipt.is_empty() => {
                    v1::SignedReceipt::decode(pending.receipt.as_slice())
                        .map_err(|e| format!("stored receipt does not decode: {e}"))
                        .map(|signed| GivenReceipt {
                            signed: Some(signed),
                            proof: None,
                        })
                }
                (_, None) => Err(format!(
                    "no signed receipt and log entry {} cannot be proved",
                    pending.log_index
                )),
            };
            match given {
                Ok(given) => out.push((pending, given)),
                Err(cause) => {
                    tracing::error!(sequence, cause, "no receipt to deliver with: held back")
                }
            }
        }
        Ok(out)
    }
}

/// Bytes of payload chunks a delivery stream's reader may hold ready ahead of the stream.
const READ_AHEAD: u64 = 2 * 1024 * 1024;

/// One chunk read by a batch's payload reader: the message, the chunk's index, what the
/// store answered.
type ChunkRead = (u64, u32, Result<Option<Vec<u8>>, StoreError>);

/// The payloads of a batch of deliveries, read in order on a blocking thread (never on the
/// runtime's threads), each document's segment file opened once, a chunk ahead of the stream.
struct Payloads(mpsc::Receiver<ChunkRead>);

impl Exchange {
    /// Start reading the payloads of `batch`, in order: every chunk of each document, up to
    /// the first that fails (the document ends there). Dropping the answer stops the reading.
    fn read_payloads(&self, batch: &[(Pending, GivenReceipt)]) -> Payloads {
        let documents: Vec<(u64, u32)> = batch
            .iter()
            .map(|(p, _)| (p.sequence, p.payload_chunks))
            .filter(|(_, chunks)| *chunks > 0)
            .collect();
        // Chunks wait in the channel while the stream sends the one before them: up to
        // READ_AHEAD bytes of the largest chunk in the batch (one 1 MiB chunk at least, up to
        // 64 small payloads), so that small documents are not handed over one at a time.
        let largest = batch
            .iter()
            .map(|(p, _)| p.payload_length.min(crate::store::PAYLOAD_CHUNK as u64))
            .max()
            .unwrap_or(1)
            .max(1);
        let ahead = (READ_AHEAD / largest).clamp(1, 64) as usize;
        let (tx, rx) = mpsc::channel(ahead);
        if !documents.is_empty() {
            let backend = self.store.arc();
            tokio::task::spawn_blocking(move || {
                for (sequence, chunks) in documents {
                    let mut reader = match backend.payload_reader(sequence) {
                        Ok(reader) => reader,
                        Err(e) => {
                            if tx.blocking_send((sequence, 0, Err(e))).is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    for index in 0..chunks {
                        let chunk = reader.chunk(index);
                        let failed = !matches!(chunk, Ok(Some(_)));
                        if tx.blocking_send((sequence, index, chunk)).is_err() {
                            return;
                        }
                        if failed {
                            break;
                        }
                    }
                }
            });
        }
        Payloads(rx)
    }
}

impl Payloads {
    /// Chunk `index` of message `sequence`'s payload: the next one read.
    async fn next(&mut self, sequence: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        match self.0.recv().await {
            Some((s, i, chunk)) if s == sequence && i == index => chunk,
            // The reader sends every chunk of every document in the stream's order.
            Some(_) => Err(StoreError::Stopped(
                "the payload reader went out of step with the delivery stream",
            )),
            None => Err(StoreError::Stopped(
                "the payload reader stopped before the payload was read",
            )),
        }
    }
}
