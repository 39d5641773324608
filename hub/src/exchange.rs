//! The Exchange gRPC service: submit, deliveries, acknowledge, status.
//!
//! Each handler identifies the caller from its client certificate, applies the rules in order
//! and answers either with the result or with a refusal naming the broken rule. Nothing is
//! stored for a refused request. What is accepted is committed durably (message, payload,
//! dedup index, queue entry, status, log entry in one transaction, then a shared flush) before
//! the signed receipt goes back.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prost::Message;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, debug, info, info_span, warn};

use caravan_common::{
    MessageId, ParticipantId, Refusal, RefusalCode, Timestamp,
    envelope::{Ack, AckOutcome, Receipt},
    signing::SigningKey,
};
use caravan_proto::{envelope, receipt, v1};

use crate::{
    commit::GroupCommit,
    error::HubError,
    identity::{self, Peer},
    metrics::{Corridor, Event, Metrics},
    registry::Registry,
    store::{
        Acceptance, AckResult, AckUpdate, Incoming, MessageState, Store, StoreError, TreeHead,
    },
};

/// How long a status stream waits for a flush to make its events durable before it asks for
/// one itself.
const STATUS_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
/// How many pending documents a delivery stream reads from the store at a time.
const DELIVERY_BATCH: usize = 64;
/// How many deliveries may wait in a stream's send buffer; bounds memory per slow recipient.
const DELIVERY_BUFFER: usize = 8;

/// State shared by all handlers.
pub struct Exchange {
    registry: Arc<Registry>,
    store: Store,
    commit: GroupCommit,
    receipt_key: SigningKey,
    max_payload_bytes: usize,
    /// Room for streamed payloads in memory, in KiB (`payload_in_flight_mib`).
    in_flight: Semaphore,
    queues: QueueSignals,
    /// Wakes a sender's status watchers when one of its messages changes state.
    status_signals: QueueSignals,
    /// The store's epoch: status cursors belong to it (see `WatchStatusRequest.epoch`).
    epoch: String,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
}

/// Wakes a recipient's delivery streams when a message for it is committed.
#[derive(Default)]
struct QueueSignals(Mutex<HashMap<ParticipantId, watch::Sender<u64>>>);

impl QueueSignals {
    fn sender(&self, p: ParticipantId) -> watch::Sender<u64> {
        // Held only to look up or insert a channel; never across an await.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(p).or_insert_with(|| watch::channel(0).0).clone()
    }

    fn subscribe(&self, p: ParticipantId) -> watch::Receiver<u64> {
        self.sender(p).subscribe()
    }

    fn notify(&self, p: ParticipantId, sequence: u64) {
        self.sender(p).send_replace(sequence);
    }
}

impl Exchange {
    pub fn new(
        registry: Arc<Registry>,
        store: Store,
        commit: GroupCommit,
        receipt_key: SigningKey,
        (max_payload_bytes, payload_in_flight_bytes): (usize, usize),
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, crate::store::StoreError> {
        let epoch = store.backend().epoch()?;
        Ok(Self {
            registry,
            store,
            commit,
            receipt_key,
            max_payload_bytes,
            in_flight: Semaphore::new(payload_in_flight_bytes / 1024),
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

    /// The inclusion proof of log entry `log_index` in `head` (cheap: see `Heads::prove`).
    fn prove(&self, head: &TreeHead, log_index: u64) -> Result<Option<v1::LogProof>, HubError> {
        Ok(self
            .commit
            .heads()
            .prove(self.store.backend(), head, log_index)?)
    }

    /// The calling participant, or a refusal.
    fn participant<T>(&self, request: &Request<T>) -> Result<ParticipantId, Refusal> {
        let peer = identity::peer(request);
        let participant =
            identity::authorize_participant(peer.as_ref(), &self.registry.snapshot())?;
        if let Some(peer) = &peer {
            self.registry.note_certificate(peer);
        }
        Ok(participant)
    }

    /// Log and count a refusal, and turn it into a status.
    fn refuse(
        &self,
        op: &str,
        caller: Option<ParticipantId>,
        message_id: &str,
        e: HubError,
    ) -> Status {
        if let HubError::Refused(r) = &e {
            self.note_refusal(op, caller, message_id, r);
        }
        e.into()
    }

    /// Count and log a refusal.
    fn note_refusal(&self, op: &str, caller: Option<ParticipantId>, message_id: &str, r: &Refusal) {
        let total = self.metrics.refused(op, caller, r);
        warn!(op, caller = caller.map(|c| c.to_string()).unwrap_or_default(), message_id,
            code = %r.code, detail = %r.detail, total, "refused");
    }

    async fn submit(
        &self,
        caller: ParticipantId,
        request: v1::SubmitRequest,
    ) -> Result<v1::SubmitResponse, HubError> {
        let started = std::time::Instant::now();
        let envelope = request.envelope.ok_or_else(|| {
            HubError::refused(RefusalCode::MalformedRequest, "the request has no envelope")
        })?;
        if envelope.payload.len() > self.max_payload_bytes {
            return Err(HubError::refused(
                RefusalCode::PayloadTooLarge,
                format!(
                    "payload is {} bytes; the limit is {}",
                    envelope.payload.len(),
                    self.max_payload_bytes
                ),
            ));
        }
        let accepted_at = Timestamp::now();
        let snapshot = self.registry.snapshot();
        let trust = &snapshot.trust;
        let opened = envelope::open(&envelope, trust, Some(caller), accepted_at)?;
        let header = &opened.header;
        trust.check_active(header.recipient, "recipient")?;
        trust.check_corridor(header.sender, header.recipient, header.document_type)?;
        let incoming = Incoming {
            sender: header.sender,
            message_id: header.message_id,
            recipient: header.recipient,
            document_type: header.document_type,
            header_sha256: opened.header_sha256,
            key_id: opened.signer.key_id().to_string(),
            signature: envelope.signature.map(|s| s.signature).unwrap_or_default(),
            header: envelope.header,
            payload: envelope.payload,
            accepted_at,
        };
        let receipt_template = Receipt {
            message_id: header.message_id,
            sender: header.sender,
            recipient: header.recipient,
            header_sha256: opened.header_sha256,
            hub_sequence: 0,
            accepted_at,
            key_id: self.receipt_key.key_id(),
        };
        let key = self.receipt_key.clone();
        // The write and its flush are asked for together; a conflict (nothing written) waits
        // for a flush it does not need, which is rare and harmless.
        let (acceptance, head) = self
            .commit
            .write_durable(move |b| {
                b.accept(&incoming, &|sequence| {
                    let r = Receipt {
                        hub_sequence: sequence,
                        ..receipt_template.clone()
                    };
                    receipt::issue(&r, &key).encode_to_vec()
                })
            })
            .await?;
        let corridor = Corridor {
            sender: header.sender,
            recipient: header.recipient,
            document_type: header.document_type.to_string(),
        };
        let (receipt, duplicate, log_proof) = match acceptance {
            Acceptance::Accepted {
                sequence,
                receipt,
                log_index,
            } => {
                self.metrics.count(&corridor, Event::Accepted);
                self.metrics.accept.observe(started.elapsed().as_secs_f64());
                self.queues.notify(header.recipient, sequence);
                self.status_signals.notify(header.sender, sequence);
                info!(message_id = %header.message_id, sender = %header.sender,
                    recipient = %header.recipient, document_type = %header.document_type,
                    sequence, "accepted");
                (receipt, false, self.prove(&head, log_index)?)
            }
            Acceptance::Duplicate {
                sequence,
                receipt,
                log_index,
            } => {
                // The original may have been waiting for its flush: this answer comes after one.
                self.metrics.count(&corridor, Event::Duplicate);
                info!(message_id = %header.message_id, sender = %header.sender, sequence,
                    "duplicate resend answered with the original receipt");
                (receipt, true, self.prove(&head, log_index)?)
            }
            Acceptance::Conflict => {
                return Err(HubError::refused(
                    RefusalCode::DuplicateMessageId,
                    format!(
                        "message id {} was already used by {} for a different header",
                        header.message_id, header.sender
                    ),
                ));
            }
        };
        let receipt = v1::SignedReceipt::decode(receipt.as_slice()).map_err(|e| {
            crate::store::StoreError::Corrupt {
                what: "receipt",
                detail: e.to_string(),
            }
        })?;
        Ok(v1::SubmitResponse {
            receipt: Some(receipt),
            duplicate,
            log_proof,
        })
    }

    /// A submission in chunks: the signed header is judged first, and a document the header
    /// says is too large is refused before its payload is read.
    async fn submit_chunks(
        &self,
        caller: ParticipantId,
        mut chunks: tonic::Streaming<v1::SubmitChunk>,
    ) -> Result<v1::SubmitResponse, HubError> {
        let malformed =
            |detail: &str| HubError::refused(RefusalCode::MalformedRequest, detail.to_owned());
        let transport = |status: Status| {
            HubError::refused(
                RefusalCode::MalformedRequest,
                format!("the stream failed: {}", status.message()),
            )
        };
        let first = chunks
            .message()
            .await
            .map_err(transport)?
            .ok_or_else(|| malformed("the stream is empty"))?;
        let mut envelope = first
            .envelope
            .ok_or_else(|| malformed("the first chunk has no envelope"))?;
        let snapshot = self.registry.snapshot();
        let opened =
            envelope::open_header(&envelope, &snapshot.trust, Some(caller), Timestamp::now())?;
        let declared = opened.header.payload_length;
        if declared > self.max_payload_bytes as u64 {
            return Err(HubError::refused(
                RefusalCode::PayloadTooLarge,
                format!(
                    "the header declares {declared} bytes; the limit is {}",
                    self.max_payload_bytes
                ),
            ));
        }
        // Room for the whole payload first, or the document is turned away for now: the
        // hub's memory for payloads stays within its budget whatever the load. Not waiting:
        // the chunks of a waiting stream would fill the connection's HTTP/2 window and stall
        // the stream that holds the room, if both come from one spoke. Senders retry later
        // (a spoke's outbox backs off), as when the hub is unreachable.
        let Ok(_room) = self
            .in_flight
            .try_acquire_many(declared.div_ceil(1024) as u32)
        else {
            self.metrics
                .busy
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(HubError::Busy(format!(
                "no room now for a payload of {declared} bytes (payload_in_flight_mib); retry later"
            )));
        };
        // The payload: the envelope's, then every chunk's data, the first chunk's included.
        let mut payload = std::mem::take(&mut envelope.payload);
        payload.reserve(declared as usize - payload.len().min(declared as usize));
        let append = |payload: &mut Vec<u8>, data: &[u8]| {
            if (payload.len() + data.len()) as u64 > declared {
                return Err(HubError::refused(
                    RefusalCode::PayloadLengthMismatch,
                    format!("more payload than the {declared} bytes the header states"),
                ));
            }
            payload.extend_from_slice(data);
            Ok(())
        };
        append(&mut payload, &first.data)?;
        while let Some(chunk) = chunks.message().await.map_err(transport)? {
            if chunk.envelope.is_some() {
                return Err(malformed("only the first chunk carries an envelope"));
            }
            append(&mut payload, &chunk.data)?;
        }
        envelope.payload = payload;
        self.submit(
            caller,
            v1::SubmitRequest {
                envelope: Some(envelope),
            },
        )
        .await
    }

    /// Stream pending documents to `recipient` until it disconnects or the hub shuts down.
    async fn stream_deliveries(
        self: Arc<Self>,
        peer: Peer,
        recipient: ParticipantId,
        mut cursor: u64,
        tx: mpsc::Sender<Result<v1::Delivery, Status>>,
    ) {
        let mut updates = self.queues.subscribe(recipient);
        let mut registry = self.registry.subscribe();
        let mut shutdown = self.shutdown.clone();
        let mut store_health = self.store.backend().health().map(|h| h.subscribe());
        let mut generation = store_health
            .as_mut()
            .map(|h| h.borrow_and_update().generation);
        info!(resume_after = cursor, "delivery stream opened");
        // Counted down however the stream ends.
        let _open = self.metrics.stream_opened(recipient);
        loop {
            // A suspension or a revoked certificate ends an open stream at once.
            let snapshot = registry.borrow_and_update().clone();
            if let Err(refusal) = identity::authorize_participant(Some(&peer), &snapshot) {
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
                .backend()
                .pending(recipient, cursor, DELIVERY_BATCH)
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
            let mut sent = Vec::with_capacity(batch.len());
            'documents: for pending in batch {
                cursor = pending.sequence;
                // A payload found corrupt is held back: it stays queued (and is reported, once,
                // by the store), never sent as good; the others go on.
                if self.store.backend().payload_damaged(pending.sequence) {
                    continue;
                }
                let receipt = match v1::SignedReceipt::decode(pending.receipt.as_slice()) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(sequence = pending.sequence, cause = %e, "stored receipt is corrupt");
                        continue;
                    }
                };
                // The document goes out in frames of one stored chunk each, so a large one is
                // never held whole, and a slow recipient holds at most the channel's frames.
                let sequence = pending.sequence;
                let chunks = pending.payload_chunks;
                for index in 0..chunks.max(1) {
                    let chunk = match index < chunks {
                        true => match self.store.backend().payload_chunk(sequence, index) {
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
                            receipt: Some(receipt.clone()),
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
            // The batch's deliveries are recorded in one turn of the store's writer, not one
            // each: the stream does not wait for the writer per document.
            let sequences: Vec<u64> = sent.iter().map(|p| p.sequence).collect();
            let recorded = self
                .commit
                .write(move |b| {
                    let at = Timestamp::now();
                    Ok(sequences
                        .into_iter()
                        .map(|s| b.mark_delivered(s, at))
                        .collect::<Vec<_>>())
                })
                .await;
            let recorded = match recorded {
                Ok(recorded) => recorded,
                // A faulted store was logged once; the loop waits for it to recover.
                Err(StoreError::Unavailable(_)) => continue,
                Err(e) => {
                    tracing::error!(cause = %e, "could not record deliveries");
                    continue;
                }
            };
            for (pending, recorded) in sent.into_iter().zip(recorded) {
                match recorded {
                    // Counted once: a redelivery after a reconnect is not a new delivery.
                    Ok(true) => {
                        let corridor = Corridor {
                            sender: pending.sender,
                            recipient,
                            document_type: pending.document_type,
                        };
                        self.metrics.count(&corridor, Event::Delivered);
                        self.metrics
                            .corridor(&corridor)
                            .delivery
                            .observe(seconds_since(pending.accepted_at));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(sequence = pending.sequence, cause = %e, "could not record delivery");
                        continue;
                    }
                }
                self.status_signals.notify(pending.sender, pending.sequence);
            }
        }
        info!("delivery stream closed");
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
            let events = match self.store.backend().events(sender, cursor, DELIVERY_BATCH) {
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
            for (next, event) in events {
                let log_proof = match self.prove(&head, event.log_index) {
                    Ok(proof) => proof,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
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
    async fn durable_head(&self, size: u64) -> Result<Arc<TreeHead>, StoreError> {
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

    /// Expire what waited longer than its document type's time to live; run periodically.
    pub async fn expire(&self, ttl: &crate::config::MessageTtl) {
        let ttl = ttl.clone();
        let expired = match self
            .store
            .run(move |b| b.expire(Timestamp::now(), &|doc| ttl.millis(doc)))
            .await
        {
            Ok(expired) => expired,
            Err(StoreError::Unavailable(_)) => return,
            Err(e) => {
                tracing::error!(cause = %e, "expiry failed");
                return;
            }
        };
        if expired.is_empty() {
            return;
        }
        match self.commit.wait().await {
            Ok(_) | Err(StoreError::Unavailable(_)) => {}
            Err(e) => tracing::error!(cause = %e, "expiry not flushed"),
        }
        for message in &expired {
            self.metrics.count(&Corridor::of(message), Event::Expired);
            self.status_signals.notify(message.sender, 0);
        }
        info!(count = expired.len(), "messages expired");
    }

    async fn acknowledge(
        &self,
        caller: ParticipantId,
        request: v1::AcknowledgeRequest,
    ) -> Result<v1::AcknowledgeResponse, HubError> {
        let signed = request.ack.ok_or_else(|| {
            HubError::refused(
                RefusalCode::MalformedRequest,
                "the request has no acknowledgement",
            )
        })?;
        let (ack, update) = self.judge_ack(caller, &signed)?;
        let (recorded, head) = self
            .commit
            .write_durable(move |b| b.acknowledge(&update))
            .await?;
        self.answer_ack(caller, &ack, recorded, &head)
    }

    /// Several acknowledgements: each judged alone, all recorded in one write and made durable
    /// by one flush; one result each, in order.
    async fn acknowledge_many(
        &self,
        caller: ParticipantId,
        request: v1::AcknowledgeManyRequest,
    ) -> Result<v1::AcknowledgeManyResponse, HubError> {
        const MAX_ACKS: usize = 256;
        if request.acks.len() > MAX_ACKS {
            return Err(HubError::refused(
                RefusalCode::MalformedRequest,
                format!(
                    "at most {MAX_ACKS} acknowledgements per request; got {}",
                    request.acks.len()
                ),
            ));
        }
        // What to record goes to the writer; each acknowledgement stays here for its answer.
        let mut updates: Vec<AckUpdate> = Vec::with_capacity(request.acks.len());
        let judged: Vec<Result<Ack, HubError>> = request
            .acks
            .iter()
            .map(|signed| {
                self.judge_ack(caller, signed).map(|(ack, update)| {
                    updates.push(update);
                    ack
                })
            })
            .collect();
        let (recorded, head) = self
            .commit
            .write_durable(move |b| {
                Ok(updates
                    .iter()
                    .map(|u| b.acknowledge(u))
                    .collect::<Vec<Result<AckResult, StoreError>>>())
            })
            .await?;
        let mut recorded = recorded.into_iter();
        let mut results = Vec::with_capacity(judged.len());
        for judged in judged {
            let answer = judged.and_then(|ack| {
                let recorded = recorded
                    .next()
                    .ok_or_else(|| StoreError::Stopped("an acknowledgement was not recorded"))??;
                self.answer_ack(caller, &ack, recorded, &head)
            });
            let result = match answer {
                Ok(answer) => v1::acknowledge_result::Result::Answer(answer),
                Err(HubError::Refused(r)) => {
                    self.note_refusal("acknowledge", Some(caller), "", &r);
                    v1::acknowledge_result::Result::Refused(v1::Refused {
                        reason: r.code.to_string(),
                        detail: r.detail,
                    })
                }
                // A store failure fails the whole request: the caller sends it again.
                Err(e) => return Err(e),
            };
            results.push(v1::AcknowledgeResult {
                result: Some(result),
            });
        }
        Ok(v1::AcknowledgeManyResponse { results })
    }

    /// Check a signed acknowledgement from `caller` (signature, key, that it is the caller's)
    /// and say what to record.
    fn judge_ack(
        &self,
        caller: ParticipantId,
        signed: &v1::SignedAck,
    ) -> Result<(Ack, AckUpdate), HubError> {
        let ack =
            caravan_proto::ack::verify(signed, &self.registry.snapshot().trust, Timestamp::now())?;
        if ack.recipient != caller {
            return Err(HubError::refused(
                RefusalCode::SenderMismatch,
                format!(
                    "acknowledgement is from {}, but the client certificate is {caller}",
                    ack.recipient
                ),
            ));
        }
        let state = match ack.outcome {
            AckOutcome::Accepted => MessageState::Acknowledged,
            AckOutcome::Rejected { .. } => MessageState::Rejected,
        };
        let update = AckUpdate {
            recipient: caller,
            sender: ack.sender,
            message_id: ack.message_id,
            header_sha256: ack.header_sha256,
            state,
            ack: signed.encode_to_vec(),
            at: Timestamp::now(),
        };
        Ok((ack, update))
    }

    /// The answer to a recorded acknowledgement (durable under `head`), or its refusal.
    fn answer_ack(
        &self,
        caller: ParticipantId,
        ack: &Ack,
        recorded: AckResult,
        head: &TreeHead,
    ) -> Result<v1::AcknowledgeResponse, HubError> {
        match recorded {
            AckResult::Recorded {
                state,
                log_index,
                now,
            } => {
                self.status_signals.notify(ack.sender, 0);
                if let Some(message) = now {
                    let corridor = Corridor::of(&message);
                    self.metrics.count(
                        &corridor,
                        if state == MessageState::Rejected {
                            Event::Rejected
                        } else {
                            Event::Acknowledged
                        },
                    );
                    self.metrics
                        .corridor(&corridor)
                        .acknowledgement
                        .observe(seconds_since(message.accepted_at));
                }
                info!(message_id = %ack.message_id, sender = %ack.sender, state = ?state, "acknowledged");
                Ok(v1::AcknowledgeResponse {
                    state: wire_state(state) as i32,
                    log_proof: self.prove(head, log_index)?,
                })
            }
            AckResult::UnknownMessage => Err(HubError::refused(
                RefusalCode::UnknownMessage,
                format!(
                    "no message {} from {} is addressed to {caller}",
                    ack.message_id, ack.sender
                ),
            )),
            AckResult::DigestMismatch => Err(HubError::refused(
                RefusalCode::InvalidAck,
                format!(
                    "acknowledgement of {} names another header than the one delivered",
                    ack.message_id
                ),
            )),
        }
    }

    /// Prove that the log of size `second` extends the logs of each size in `first`.
    async fn log_consistency(
        &self,
        request: v1::LogConsistencyRequest,
    ) -> Result<v1::LogConsistencyResponse, HubError> {
        const MAX_PROOFS: usize = 1024;
        let head = self.commit.heads().current();
        let (firsts, second) = (request.first, request.second);
        if firsts.len() > MAX_PROOFS {
            return Err(HubError::refused(
                RefusalCode::MalformedRequest,
                format!(
                    "at most {MAX_PROOFS} consistency proofs per request; asked for {}",
                    firsts.len()
                ),
            ));
        }
        if let Some(bad) = firsts
            .iter()
            .find(|&&first| first == 0 || first > second || second > head.tree_size)
        {
            return Err(HubError::refused(
                RefusalCode::MalformedRequest,
                format!(
                    "a consistency proof needs 1 <= first <= second <= {} (the log's size); asked for {bad} and {second}",
                    head.tree_size
                ),
            ));
        }
        let heads = self.commit.heads().clone();
        let proofs = self
            .store
            .run(move |b| {
                firsts
                    .iter()
                    .map(|&first| {
                        heads
                            .consistency(b, first, second)
                            .map(|hashes| v1::ConsistencyProof { hashes })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(v1::LogConsistencyResponse {
            proofs,
            latest: Some(head.to_wire()),
        })
    }

    async fn status(
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
        let receipt =
            v1::SignedReceipt::decode(record.receipt.as_slice()).map_err(corrupt("receipt"))?;
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

/// Seconds from `t` to now (0 if `t` is in the future: clocks of another process).
fn seconds_since(t: Timestamp) -> f64 {
    (Timestamp::now().as_millis() - t.as_millis()).max(0) as f64 / 1000.0
}

fn wire_state(state: MessageState) -> v1::MessageState {
    match state {
        MessageState::Unspecified => v1::MessageState::Unspecified,
        MessageState::Accepted => v1::MessageState::Accepted,
        MessageState::Delivered => v1::MessageState::Delivered,
        MessageState::Acknowledged => v1::MessageState::Acknowledged,
        MessageState::Rejected => v1::MessageState::Rejected,
        MessageState::Expired => v1::MessageState::Expired,
    }
}

/// The tonic service wrapper.
#[derive(Clone)]
pub struct ExchangeService(pub Arc<Exchange>);

#[tonic::async_trait]
impl v1::exchange_server::Exchange for ExchangeService {
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let caller = self.0.participant(&request);
        let request = request.into_inner();
        let span = info_span!(
            "submit",
            caller = caller.as_ref().map(|c| c.to_string()).unwrap_or_default()
        );
        async {
            let caller = caller.map_err(|r| self.0.refuse("submit", None, "", r.into()))?;
            self.0
                .submit(caller, request)
                .await
                .map(Response::new)
                .map_err(|e| self.0.refuse("submit", Some(caller), "", e))
        }
        .instrument(span)
        .await
    }

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<v1::SubmitChunk>>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("submit", None, "", r.into()))?;
        self.0
            .submit_chunks(caller, request.into_inner())
            .instrument(info_span!("submit", caller = %caller))
            .await
            .map(Response::new)
            .map_err(|e| self.0.refuse("submit", Some(caller), "", e))
    }

    type DeliveriesStream = ReceiverStream<Result<v1::Delivery, Status>>;

    async fn deliveries(
        &self,
        request: Request<v1::DeliveriesRequest>,
    ) -> Result<Response<Self::DeliveriesStream>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("deliveries", None, "", r.into()))?;
        // `participant` succeeded, so the request has a peer certificate.
        let Some(peer) = identity::peer(&request) else {
            return Err(Status::unauthenticated("no client certificate"));
        };
        let resume_after = request.into_inner().resume_after;
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        let span = info_span!("deliveries", caller = %caller);
        tokio::spawn(
            self.0
                .clone()
                .stream_deliveries(peer, caller, resume_after, tx)
                .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type WatchStatusStream = ReceiverStream<Result<v1::StatusEvent, Status>>;

    async fn watch_status(
        &self,
        request: Request<v1::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("watch_status", None, "", r.into()))?;
        let request = request.into_inner();
        // A cursor from before a restore means nothing now: start again from the first event.
        let after = if request.epoch.is_empty() || request.epoch == self.0.epoch {
            request.after
        } else {
            info!(%caller, "status cursor from another epoch (the hub was restored): replaying");
            0
        };
        let (tx, rx) = mpsc::channel(DELIVERY_BUFFER);
        let span = info_span!("watch_status", caller = %caller);
        tokio::spawn(
            self.0
                .clone()
                .stream_status(caller, after, tx)
                .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::AcknowledgeResponse>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("acknowledge", None, "", r.into()))?;
        self.0
            .acknowledge(caller, request.into_inner())
            .instrument(info_span!("acknowledge", caller = %caller))
            .await
            .map(Response::new)
            .map_err(|e| self.0.refuse("acknowledge", Some(caller), "", e))
    }

    async fn acknowledge_many(
        &self,
        request: Request<v1::AcknowledgeManyRequest>,
    ) -> Result<Response<v1::AcknowledgeManyResponse>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("acknowledge", None, "", r.into()))?;
        self.0
            .acknowledge_many(caller, request.into_inner())
            .instrument(info_span!("acknowledge_many", caller = %caller))
            .await
            .map(Response::new)
            .map_err(|e| self.0.refuse("acknowledge", Some(caller), "", e))
    }

    async fn log_consistency(
        &self,
        request: Request<v1::LogConsistencyRequest>,
    ) -> Result<Response<v1::LogConsistencyResponse>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("log_consistency", None, "", r.into()))?;
        self.0
            .log_consistency(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| self.0.refuse("log_consistency", Some(caller), "", e))
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        let caller = self
            .0
            .participant(&request)
            .map_err(|r| self.0.refuse("status", None, "", r.into()))?;
        let request = request.into_inner();
        let id = request.message_id.clone();
        self.0
            .status(caller, request)
            .await
            .map(Response::new)
            .map_err(|e| self.0.refuse("status", Some(caller), &id, e))
    }
}
