//! The spoke's work: sign and submit outgoing documents, and receive, verify, store and
//! acknowledge incoming ones.
//!
//! **Architecture invariant:** a received document is judged only with the trust set this
//! spoke holds (participants' keys and the hub's receipt keys), never on the hub's word; the
//! inbox is written and flushed before the acknowledgement leaves.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use futures::StreamExt;
use prost::Message;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tracing::{debug, error, info, warn};

use caravan_common::{
    DocumentType, MessageId, ParticipantId, Refusal, RefusalCode, Timestamp,
    envelope::{Ack, AckOutcome, Header, Receipt, from_hex32, to_hex},
    signing::{SigningKey, sha256},
    trust::CorridorState,
};
use caravan_proto::{
    ack, envelope,
    log::Expected,
    receipt,
    v1::{self, exchange_client::ExchangeClient},
};

use crate::{
    config::Config,
    document,
    log_audit::LogAudit,
    store::{
        AckCheck, AckRecord, AnswerRecord, Evidence, InboxRecord, Note, Queued,
        RESPONSE_CONTENT_TYPE, ReceiptInfo, ResponseBody, SentRecord, SentState, SpokeStore,
        StateChange, StoreError, Verification,
    },
    trust::{Held, TrustHolder},
};

/// Room for the envelope's header, signature and framing on top of the payload limit.
const ENVELOPE_OVERHEAD: usize = 64 * 1024;
/// Deliveries verified and stored before one flush and their acknowledgements.
const RECEIVE_BATCH: usize = 64;
/// Batches whose acknowledgements may be under way while the next ones are received: the hub
/// answers an acknowledgement after its own flush, and waiting for that before taking the next
/// batch would leave the stream idle for a round trip per batch.
const ACK_BATCHES_IN_FLIGHT: usize = 4;
/// Status events applied in one batch of the store at most.
const STATUS_BATCH: usize = 256;
/// Documents submitted from the outbox at a time.
const OUTBOX_WINDOW: usize = 32;
/// Room for payloads in memory, in KiB permits (`payload_in_flight_mib`): held by the
/// documents being taken in by `send`, and, in a room of the same size, by the outbox's
/// concurrent submissions, so that many large documents wait for room instead of all being
/// loaded (one larger than the room goes alone).
struct PayloadRoom {
    kib: usize,
    /// Taken as a document's bytes arrive ([`crate::upload`]).
    taking_in: crate::upload::Room,
}

impl PayloadRoom {
    fn new(mib: usize) -> Self {
        let kib = mib.saturating_mul(1024).max(1);
        Self {
            kib,
            taking_in: crate::upload::Room {
                kib,
                permits: Arc::new(Semaphore::new(kib)),
            },
        }
    }

    /// The permits `bytes` of payload take.
    fn permits(&self, bytes: u64) -> u32 {
        bytes.div_ceil(1024).clamp(1, self.kib as u64) as u32
    }
}
/// Payloads larger than this are submitted in a stream of chunks of this size.
const STREAM_ABOVE: usize = caravan_proto::MAX_PAYLOAD_PER_MESSAGE;

/// The chunks of a large submission: the envelope without its payload, then the payload.
fn chunked(
    mut envelope: v1::Envelope,
) -> impl futures::Stream<Item = v1::SubmitChunk> + Send + 'static {
    let payload = std::mem::take(&mut envelope.payload);
    let head = v1::SubmitChunk {
        envelope: Some(envelope),
        data: Vec::new(),
    };
    let count = payload.len().div_ceil(STREAM_ABOVE);
    let body = (0..count).map(move |i| {
        let end = ((i + 1) * STREAM_ABOVE).min(payload.len());
        v1::SubmitChunk {
            envelope: None,
            data: payload[i * STREAM_ABOVE..end].to_vec(),
        }
    });
    futures::stream::iter(std::iter::once(head).chain(body))
}
/// Media type of the documents carried today.
const XML: &str = "application/xml";

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A rule was broken, found here or by the hub; nothing was accepted.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The hub could not be reached or failed; the document was not accepted.
    #[error("hub unavailable: {0}")]
    HubUnavailable(String),
    /// The spoke's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The document is not what it must be; nothing was queued.
    #[error("INVALID_DOCUMENT: {}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<document::Problem>),
}

/// What to send.
#[derive(Debug)]
pub struct Outgoing {
    pub to: ParticipantId,
    pub document_type: DocumentType,
    /// The business number; read from the document when absent.
    pub document_id: Option<String>,
    pub supersedes: Option<MessageId>,
    /// A document received from `to` that this one answers.
    pub in_reply_to: Option<MessageId>,
    /// The document itself, or a business response (decision) built by the spoke.
    pub content: Content,
    /// The room the document was taken in with ([`Spoke::take_in`]), given back once it is in
    /// the outbox.
    pub room: Option<OwnedSemaphorePermit>,
}

/// What an outgoing message carries.
#[derive(Debug, Clone)]
pub enum Content {
    /// A trade document (XML), checked against its declared type before signing.
    Document(Vec<u8>),
    /// A decision about the document named by `in_reply_to`.
    Response(ResponseBody),
}

/// The answer to a send: the document is in the outbox (`QUEUED`), or, when the caller waited,
/// accepted by the hub (with its receipt) or refused.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    pub message_id: MessageId,
    pub document_id: String,
    pub state: SentState,
    pub receipt: Option<ReceiptInfo>,
}

/// A running spoke's shared state.
pub struct Spoke {
    pub me: ParticipantId,
    trust: Arc<TrustHolder>,
    /// Wakes the outbox worker when a document is queued.
    outbox_signal: Notify,
    room: PayloadRoom,
    /// How a document handed to `send` must arrive.
    upload: crate::upload::UploadRules,
    uploads: crate::upload::UploadStats,
    /// The listeners' idle timeout (`net.idle_timeout_secs`), which also ends an idle body.
    idle_timeout: Duration,
    /// Bumped whenever a queued document is settled (accepted or refused).
    settled: watch::Sender<u64>,
    /// Bumped whenever a document enters the inbox.
    arrived: watch::Sender<u64>,
    key: SigningKey,
    pub store: Arc<SpokeStore>,
    client: ExchangeClient<Channel>,
    max_payload_bytes: usize,
    hub_connected: AtomicBool,
    /// Checks the hub's exchange-log proofs.
    pub log: Arc<LogAudit>,
}

/// A channel to the hub over mutual TLS; it connects on first use and reconnects by itself.
pub fn hub_channel(config: &Config) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&config.tls.ca_cert))
        .identity(Identity::from_pem(&config.tls.cert, &config.tls.key));
    if let Some(name) = &config.hub_tls_name {
        tls = tls.domain_name(name.clone());
    }
    Ok(Endpoint::from_shared(config.hub_url.clone())?
        .tls_config(tls)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

impl Spoke {
    pub fn new(
        config: Config,
        store: Arc<SpokeStore>,
        trust: Arc<TrustHolder>,
        channel: Channel,
    ) -> Self {
        let limit = config.max_payload_bytes + ENVELOPE_OVERHEAD;
        Self {
            me: config.participant,
            trust,
            outbox_signal: Notify::new(),
            room: PayloadRoom::new(config.payload_in_flight_mib),
            upload: config.upload,
            uploads: crate::upload::UploadStats::default(),
            idle_timeout: config.net.idle_timeout,
            settled: watch::channel(0).0,
            arrived: watch::channel(0).0,
            key: config.signing_key,
            store: store.clone(),
            client: ExchangeClient::new(channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            max_payload_bytes: config.max_payload_bytes,
            hub_connected: AtomicBool::new(false),
            log: Arc::new(LogAudit::new(store.clone())),
        }
    }

    /// Prometheus text exposition of the spoke's state.
    pub async fn metrics(&self) -> String {
        let store = self.store.clone();
        let (inbox, outbox, alarms) = blocking(move || {
            Ok((
                store.inbox_len()?,
                store.outbox_len()?,
                store.log_alarms()?.1,
            ))
        })
        .await
        .unwrap_or((0, 0, 0));
        let now = Timestamp::now();
        let (version, age, fresh) = match self.trust.current() {
            Some(h) => {
                let age = h
                    .set
                    .info
                    .issued_at
                    .map_or(0, |t| (now.as_millis() - t.as_millis()).max(0) / 1000);
                (h.set.info.version, age, u8::from(h.set.info.is_fresh(now)))
            }
            None => (0, 0, 0),
        };
        let gauges = [
            (
                "caravan_spoke_hub_connected",
                "1 while the delivery stream to the hub is open.",
                i64::from(self.hub_connected()),
            ),
            (
                "caravan_spoke_inbox_documents",
                "Documents in the inbox.",
                inbox as i64,
            ),
            (
                "caravan_spoke_outbox_documents",
                "Documents waiting in the outbox for the hub.",
                outbox as i64,
            ),
            (
                "caravan_spoke_trust_list_version",
                "Version of the trust list held.",
                version as i64,
            ),
            (
                "caravan_spoke_trust_list_age_seconds",
                "Seconds since the trust list held was issued.",
                age,
            ),
            (
                "caravan_spoke_trust_list_fresh",
                "1 while the trust list held is before its next-update time.",
                i64::from(fresh),
            ),
            (
                "caravan_spoke_log_verified_entries",
                "Size of the last exchange-log tree head verified consistent with all before it.",
                self.log.last().map_or(0, |h| h.size as i64),
            ),
            (
                "caravan_spoke_log_alarms",
                "Alarms raised about the hub's exchange log since install (failed proofs); any rise needs an operator.",
                alarms as i64,
            ),
            (
                "caravan_spoke_store_damaged",
                "1 once a read found the store damaged (a record that does not decode, a payload that fails its checksum) since the spoke started: /healthz says STORE_CORRUPT until a restart.",
                i64::from(self.store.damage().is_some()),
            ),
            (
                "caravan_spoke_payloads_corrupt",
                "Documents whose stored payload failed its checksum since the spoke started: never served (see the runbook).",
                self.store.damaged_payloads() as i64,
            ),
        ];
        let mut text: String = gauges
            .iter()
            .map(|(name, help, value)| {
                format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
            })
            .collect();
        if let Some(health) = self.store.health() {
            text.push_str(&health.render_metrics("caravan_spoke"));
        }
        text.push_str(
            &self
                .uploads
                .render(self.room.taking_in.taken_kib(), self.room.kib),
        );
        text
    }

    /// Follow arrivals in the inbox.
    pub fn arrivals(&self) -> watch::Receiver<u64> {
        self.arrived.subscribe()
    }

    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// Read a document handed to `send`, taking room among `payload_in_flight_mib` as its
    /// bytes arrive; hold it until the document is in the outbox ([`Outgoing::room`]). See
    /// [`crate::upload`] for the rules.
    pub async fn take_in(
        &self,
        body: axum::body::Body,
    ) -> Result<(Vec<u8>, OwnedSemaphorePermit), crate::upload::UploadError> {
        crate::upload::take_in(
            body,
            self.max_payload_bytes,
            &self.upload,
            &self.room.taking_in,
            &self.uploads,
            self.idle_timeout,
        )
        .await
    }

    pub fn hub_connected(&self) -> bool {
        self.hub_connected.load(Ordering::Relaxed)
    }

    pub fn trust(&self) -> &TrustHolder {
        &self.trust
    }

    /// The trust set in force, or a refusal if no trust list was ever received.
    fn trust_set(&self) -> Result<Arc<Held>, Refusal> {
        self.trust.current().ok_or_else(|| {
            Refusal::new(
                RefusalCode::InvalidTrustList,
                "no trust list yet: the hub has not been reached since this spoke was installed",
            )
        })
    }

    pub fn client(&self) -> ExchangeClient<Channel> {
        self.client.clone()
    }

    // === sending ===

    /// Check, sign and queue a document in the durable outbox; the outbox worker submits it.
    /// With `wait`, return once the hub accepted or refused it, or when `wait` runs out.
    pub async fn send(&self, out: Outgoing, wait: Option<Duration>) -> Result<Sent, SendError> {
        // An answer must name a document that came from the participant it goes to.
        let answered = match out.in_reply_to {
            Some(id) => {
                let (store, to) = (self.store.clone(), out.to);
                let original = blocking(move || store.inbox_entry(to, id)).await?;
                Some(original.ok_or_else(|| {
                    Refusal::new(
                        RefusalCode::UnknownMessage,
                        format!("no document {id} from {} in the inbox to answer", out.to),
                    )
                })?)
            }
            None => None,
        };
        let (payload, content_type, found_id) = match out.content {
            Content::Document(payload) => {
                let recognised = document::check(&payload, out.document_type)
                    .map_err(|e| SendError::Invalid(vec![e.problem()]))?;
                let missing = document::missing_fields(&payload, recognised.format);
                if !missing.is_empty() {
                    return Err(SendError::Invalid(missing));
                }
                (payload, XML, recognised.document_id)
            }
            Content::Response(body) => {
                let Some(original) = &answered else {
                    return Err(Refusal::new(
                        RefusalCode::MalformedRequest,
                        "a response must name the document it answers",
                    )
                    .into());
                };
                let payload = serde_json::to_vec(&body).expect("responses serialise");
                (payload, RESPONSE_CONTENT_TYPE, original.document_id.clone())
            }
        };
        if payload.len() > self.max_payload_bytes {
            return Err(Refusal::new(
                RefusalCode::PayloadTooLarge,
                format!(
                    "payload is {} bytes; the limit is {}",
                    payload.len(),
                    self.max_payload_bytes
                ),
            )
            .into());
        }
        let held = self.trust_set()?;
        held.set.check_active(out.to, "recipient")?;
        held.set
            .check_corridor(self.me, out.to, out.document_type)?;
        let document_id = out.document_id.or(found_id).ok_or_else(|| {
            SendError::Invalid(vec![document::Problem {
                field: "document_number".into(),
                rule: "required".into(),
                message: "the document carries no number; give one with --document-id".into(),
            }])
        })?;
        let header = Header {
            message_id: MessageId::generate(),
            sender: self.me,
            recipient: out.to,
            document_type: out.document_type,
            document_id: document_id.clone(),
            content_type: content_type.into(),
            payload_sha256: sha256(&payload),
            payload_length: payload.len() as u64,
            created_at: Timestamp::now(),
            key_id: self.key.key_id(),
            supersedes: out.supersedes,
            in_reply_to: out.in_reply_to,
        };
        let mut sealed = envelope::seal(&header, payload, &self.key);
        let record = SentRecord {
            message_id: header.message_id,
            recipient: header.recipient,
            document_type: header.document_type,
            document_id: document_id.clone(),
            payload_length: header.payload_length,
            header_sha256: to_hex(&sha256(&sealed.header)),
            queued_at: header.created_at,
            state: SentState::Queued,
            receipt: None,
            refusal: None,
            attempts: 0,
            last_error: None,
            transitions: Vec::new(),
            acknowledgement: None,
            responses: Vec::new(),
        };
        let mut settled = self.settled.subscribe();
        let payload = std::mem::take(&mut sealed.payload);
        let (store, bytes) = (self.store.clone(), sealed.encode_to_vec());
        let queued = record.clone();
        blocking(move || {
            store.enqueue(&queued, &bytes, &payload)?;
            store.flush()
        })
        .await?;
        drop(out.room);
        self.outbox_signal.notify_one();
        info!(message_id = %header.message_id, recipient = %header.recipient,
            document_type = %header.document_type, "queued");
        let mut record = record;
        if let Some(wait) = wait {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let (store, id) = (self.store.clone(), header.message_id);
                if let Some(now) = blocking(move || store.sent_entry(id)).await? {
                    record = now;
                }
                // Settled by the outbox worker: the receipt is kept, or the refusal.
                if record.receipt.is_some() || record.refusal.is_some() {
                    break;
                }
                tokio::select! {
                    changed = settled.changed() => if changed.is_err() { break },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            if let (SentState::Refused, Some(refusal)) = (record.state, &record.refusal) {
                return Err(refusal.clone().into());
            }
        }
        Ok(Sent {
            message_id: header.message_id,
            document_id,
            state: record.state,
            receipt: record.receipt,
        })
    }

    /// Submit what waits in the outbox until `shutdown`: in order, a window at a time, each
    /// under its own message id on every attempt (the hub answers a resend with the original
    /// receipt). A refusal settles a document for good; an unreachable hub is retried with
    /// backoff.
    pub async fn drain_outbox(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        let room = Semaphore::new(self.room.kib);
        loop {
            // Nothing is submitted while the receipt could not be kept.
            if !self.store_writable(&mut shutdown).await {
                return;
            }
            let store = self.store.clone();
            let batch = match blocking(move || store.outbox(OUTBOX_WINDOW)).await {
                Ok(batch) => batch,
                Err(e) => {
                    error!(cause = %e, "cannot read the outbox");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.outbox_signal.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let results =
                futures::future::join_all(batch.into_iter().map(|q| self.submit_queued(q, &room)))
                    .await;
            let unreachable = results.iter().any(|unreachable| *unreachable);
            self.settled.send_modify(|n| *n += 1);
            if unreachable {
                let delay = backoff.next_delay();
                info!(
                    delay_ms = delay.as_millis() as u64,
                    "hub unreachable; outbox retries later"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            } else {
                backoff.reset();
            }
        }
    }

    /// One attempt at one queued document, its payload in memory only once there is `room`;
    /// returns whether the hub was unreachable.
    async fn submit_queued(&self, queued: Queued, room: &Semaphore) -> bool {
        let id = queued.message_id;
        let store = self.store.clone();
        let mut record = match blocking(move || store.sent_entry(id)).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                error!(message_id = %id, "outbox entry without a record");
                return false;
            }
            Err(e) => {
                error!(message_id = %id, cause = %e, "cannot read the outbox entry");
                return false;
            }
        };
        let Ok(_room) = room
            .acquire_many(self.room.permits(record.payload_length))
            .await
        else {
            return false;
        };
        let (store, entry) = (self.store.clone(), queued.clone());
        let payload = match blocking(move || store.queued_payload(&entry)).await {
            Ok(payload) => payload,
            // Held in the outbox, never sent with bad bytes; the store logged it once.
            Err(StoreError::PayloadCorrupt { .. }) => return false,
            Err(e) => {
                error!(message_id = %id, cause = %e, "cannot read the outbox entry's payload");
                return false;
            }
        };
        record.attempts += 1;
        let mut envelope = match v1::Envelope::decode(queued.envelope.as_slice()) {
            Ok(e) => e,
            Err(e) => {
                error!(message_id = %id, cause = %e, "outbox entry does not decode");
                return false;
            }
        };
        if let Some(payload) = payload {
            envelope.payload = payload;
        }
        let outcome = if envelope.payload.len() > STREAM_ABOVE {
            self.client().submit_stream(chunked(envelope)).await
        } else {
            self.client()
                .submit(v1::SubmitRequest {
                    envelope: Some(envelope),
                })
                .await
        };
        let unreachable = match outcome {
            Ok(response) => {
                let response = response.into_inner();
                match self.check_receipt(&record, response.receipt) {
                    Ok(receipt) => {
                        info!(message_id = %id, hub_sequence = receipt.hub_sequence, duplicate = response.duplicate, "accepted by the hub");
                        let expected = self.expected(v1::LogEntryKind::Accepted, &record, None);
                        self.check_log(response.log_proof.as_ref(), &expected, "receipt")
                            .await;
                        record.state = SentState::Accepted;
                        record.receipt = Some(receipt);
                        false
                    }
                    Err(refusal) => {
                        // A receipt that does not verify is no proof: try again later.
                        warn!(message_id = %id, code = %refusal.code, detail = refusal.detail, "bad receipt; will resend");
                        record.last_error = Some(refusal.to_string());
                        true
                    }
                }
            }
            Err(status) => match caravan_proto::status::from_status(&status) {
                Some(refusal) => {
                    warn!(message_id = %id, code = %refusal.code, detail = refusal.detail, "refused by the hub");
                    record.state = SentState::Refused;
                    record.refusal = Some(refusal);
                    false
                }
                None => {
                    record.last_error = Some(format!("{}: {}", status.code(), status.message()));
                    true
                }
            },
        };
        let store = self.store.clone();
        let saved = blocking(move || {
            if record.state == SentState::Queued {
                store.sent_update(&record)
            } else {
                store.settle(&queued, &record)?;
                store.flush()
            }
        })
        .await;
        match saved {
            Ok(()) => {}
            // Logged once when the store faulted; the outbox waits for it to recover.
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => error!(message_id = %id, cause = %e, "cannot update the outbox"),
        }
        unreachable
    }

    /// Verify the hub's receipt for `record`.
    fn check_receipt(
        &self,
        record: &SentRecord,
        signed: Option<v1::SignedReceipt>,
    ) -> Result<ReceiptInfo, Refusal> {
        let signed = signed.ok_or_else(|| {
            Refusal::new(
                RefusalCode::BadReceipt,
                "the hub answered without a receipt",
            )
        })?;
        let receipt = receipt::verify(&signed, &self.trust_set()?.set)?;
        if receipt.message_id != record.message_id
            || to_hex(&receipt.header_sha256) != record.header_sha256
        {
            return Err(Refusal::new(
                RefusalCode::BadReceipt,
                "the hub's receipt is for another message",
            ));
        }
        Ok(ReceiptInfo {
            hub_sequence: receipt.hub_sequence,
            accepted_at: receipt.accepted_at,
            key_id: receipt.key_id.to_string(),
            signed: BASE64.encode(signed.encode_to_vec()),
        })
    }

    // === following what was sent ===

    /// Follow the hub's stream of status events for what this spoke sent, keeping each
    /// message's history and the recipient's verified acknowledgement, until `shutdown`.
    pub async fn follow_status(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
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
        let client = self.client();
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
        self.log
            .keep_alarm(crate::store::LogAlarm {
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
            Ok(v1::MessageState::Accepted) => SentState::Accepted,
            Ok(v1::MessageState::Delivered) => SentState::Delivered,
            Ok(v1::MessageState::Acknowledged) => SentState::Acknowledged,
            Ok(v1::MessageState::Rejected) => SentState::Rejected,
            Ok(v1::MessageState::Expired) => SentState::Expired,
            _ => return Ok(None),
        };
        // Store reads on the request path run inline: the engine reads from memory, and a
        // hand-off to a blocking thread costs more.
        let record = self.store.sent_entry(message_id)?;
        if let Some(sent) = &record {
            let kind = match state {
                SentState::Accepted => v1::LogEntryKind::Accepted,
                SentState::Delivered => v1::LogEntryKind::Delivered,
                SentState::Acknowledged => v1::LogEntryKind::Acknowledged,
                SentState::Rejected => v1::LogEntryKind::Rejected,
                _ => v1::LogEntryKind::Expired,
            };
            let evidence = event.ack.as_ref().map(|a| sha256(&a.encode_to_vec()));
            let expected = self.expected(kind, sent, evidence);
            self.check_log(event.log_proof.as_ref(), &expected, "status event")
                .await;
        }
        // An acknowledgement of a message this spoke has no record of would not be kept: it is
        // not checked either.
        let acknowledgement = event
            .ack
            .filter(|_| record.is_some())
            .map(|signed| self.check_ack(&signed, record.as_ref()));
        let change = StateChange {
            state,
            at: Timestamp::from_millis(event.at_ms),
        };
        info!(%message_id, state = ?state, "status");
        Ok(Some((
            message_id,
            change,
            acknowledgement,
            event.cursor,
            event.epoch,
        )))
    }

    /// What the log entry for an event about `sent` must record.
    fn expected(
        &self,
        kind: v1::LogEntryKind,
        sent: &SentRecord,
        evidence_sha256: Option<[u8; 32]>,
    ) -> Expected {
        Expected {
            kind,
            message_id: sent.message_id,
            sender: self.me,
            recipient: sent.recipient,
            header_sha256: from_hex32(&sent.header_sha256),
            evidence_sha256,
        }
    }

    /// Check a log proof from the hub with the trust list held (see [`LogAudit`]).
    async fn check_log(&self, proof: Option<&v1::LogProof>, expected: &Expected, event: &str) {
        if let Ok(held) = self.trust_set() {
            self.log.check(proof, expected, &held.set, event).await;
        }
    }

    /// Verify a recipient's acknowledgement of `sent` with the trust list held.
    fn check_ack(&self, signed: &v1::SignedAck, sent: Option<&SentRecord>) -> AckRecord {
        let encoded = evidence_of(signed);
        let verified = self.trust_set().and_then(|held| {
            let ack = ack::verify(signed, &held.set, Timestamp::now())?;
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
                if to_hex(&ack.header_sha256) != s.header_sha256 {
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

    // === receiving ===

    /// Wait until the store takes writes (at once, unless it is faulted: a full disk, say;
    /// it recovers by itself, `caravan_common::recovery`); false on shutdown.
    async fn store_writable(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let Some(health) = self.store.health() else {
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

    /// Keep a delivery stream open to the hub until `shutdown`, reconnecting with backoff.
    pub async fn receive(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Nothing can be verified, so nothing is taken, before the hub's current trust list
        // was asked for since start (a list held from before a restart may miss a key
        // registered or revoked meanwhile).
        tokio::select! {
            ready = self.trust.ready() => if !ready { return },
            _ = shutdown.changed() => return,
        }
        let mut backoff = Backoff::default();
        loop {
            // Nothing is taken in while it could not be kept.
            if !self.store_writable(&mut shutdown).await {
                return;
            }
            let outcome = tokio::select! {
                r = self.receive_stream(&mut backoff) => r,
                _ = shutdown.changed() => return,
            };
            self.hub_connected.store(false, Ordering::Relaxed);
            match outcome {
                Ok(()) => info!("the hub closed the delivery stream"),
                Err(status) => {
                    warn!(code = ?status.code(), message = status.message(), "delivery stream failed")
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

    async fn receive_stream(&self, backoff: &mut Backoff) -> Result<(), tonic::Status> {
        let stream = self
            .client()
            .deliveries(v1::DeliveriesRequest { resume_after: 0 })
            .await?
            .into_inner();
        self.hub_connected.store(true, Ordering::Relaxed);
        backoff.reset();
        info!("delivery stream open");
        let mut batches = stream.ready_chunks(RECEIVE_BATCH);
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
            let mut failure = None;
            for item in batch {
                let frame = match item {
                    Ok(frame) => frame,
                    Err(status) => {
                        failure = Some(status);
                        break;
                    }
                };
                match self.assemble(&mut partial, frame) {
                    Ok(Some(delivery)) => self.take(delivery, &mut taken).map_err(store_status)?,
                    Ok(None) => {}
                    Err(status) => {
                        failure = Some(status);
                        break;
                    }
                }
            }
            self.keep(&mut taken).await.map_err(store_status)?;
            self.arrived.send_modify(|n| *n += 1);
            acking.push(self.acknowledge_all(taken.acks));
            if let Some(status) = failure {
                return Err(status);
            }
        }
        // The stream ended: the acknowledgements already under way still go out.
        while let Some(acked) = acking.next().await {
            acked?;
        }
        Ok(())
    }

    /// Add a frame to the document being assembled; returns the document once complete.
    fn assemble(
        &self,
        partial: &mut Option<v1::Delivery>,
        frame: v1::Delivery,
    ) -> Result<Option<v1::Delivery>, tonic::Status> {
        let protocol = |what: &str| tonic::Status::data_loss(format!("delivery stream: {what}"));
        let mut delivery = match partial.take() {
            None if frame.envelope.is_some() => frame,
            None => return Err(protocol("a continuation without a document")),
            Some(_) if frame.envelope.is_some() => {
                return Err(protocol("a new document before the last was complete"));
            }
            Some(mut d) if d.cursor == frame.cursor => {
                let payload = &mut d
                    .envelope
                    .as_mut()
                    .expect("assembled documents have an envelope")
                    .payload;
                if payload.len() + frame.continuation.len() > self.max_payload_bytes {
                    return Err(protocol("a document larger than max_payload_bytes"));
                }
                payload.extend_from_slice(&frame.continuation);
                d.complete = frame.complete;
                d
            }
            Some(_) => return Err(protocol("a continuation of another document")),
        };
        if delivery.complete {
            delivery.continuation.clear();
            Ok(Some(delivery))
        } else {
            *partial = Some(delivery);
            Ok(None)
        }
    }

    /// Verify one delivery and judge it: what to store (a new document) goes into
    /// `taken.store`, and the acknowledgement to send (if the message can be named at all) into
    /// `taken.acks`.
    fn take(&self, delivery: v1::Delivery, taken: &mut Taken) -> Result<(), StoreError> {
        let received_at = Timestamp::now();
        let Some(env) = delivery.envelope else {
            warn!(
                cursor = delivery.cursor,
                "delivery without an envelope; ignored"
            );
            return Ok(());
        };
        let Some(held) = self.trust.current() else {
            warn!(
                cursor = delivery.cursor,
                "delivery before any trust list; left for redelivery"
            );
            return Ok(());
        };
        let signed_receipt = delivery.receipt.unwrap_or_default();
        let receipt = receipt::verify(&signed_receipt, &held.set);
        let verdict = verify_delivery(&held.set, self.me, &env, receipt.as_ref(), Timestamp::now());
        // Name the message: from the verified header, else the verified receipt, else (to be
        // able to answer at all) the header's unverified claims.
        let named = match (&verdict, &receipt) {
            (Ok((opened, _)), _) => Some((opened.header.sender, opened.header.message_id)),
            (Err(_), Ok(r)) => Some((r.sender, r.message_id)),
            _ => v1::Header::decode(env.header.as_slice())
                .ok()
                .and_then(|h| Some((h.sender.parse().ok()?, h.message_id.parse().ok()?))),
        };
        let Some((sender, message_id)) = named else {
            warn!(
                cursor = delivery.cursor,
                "delivery names no message; cannot acknowledge it"
            );
            return Ok(());
        };
        let header_sha256 = sha256(&env.header);
        let existing = self.store.inbox_entry(sender, message_id)?;
        let verification = match existing {
            Some(record) => {
                debug!(%message_id, %sender, "redelivered; answering with the recorded decision");
                record.verification
            }
            None => {
                let verification = match &verdict {
                    Ok((_, notes)) => Verification::Verified {
                        notes: notes.clone(),
                    },
                    Err(r) => Verification::Rejected {
                        code: r.code,
                        reason: r.detail.clone(),
                    },
                };
                let header = verdict.as_ref().ok().map(|(o, _)| &o.header);
                let receipt = receipt.as_ref().ok();
                // A verified business response about one of our documents: read its decision.
                let response = header
                    .filter(|h| h.content_type == RESPONSE_CONTENT_TYPE)
                    .and_then(|_| serde_json::from_slice::<ResponseBody>(&env.payload).ok());
                let answered = header.and_then(|h| h.in_reply_to).zip(response.clone());
                let record = InboxRecord {
                    message_id,
                    sender,
                    document_type: header.map(|h| h.document_type),
                    document_id: header.map(|h| h.document_id.clone()),
                    content_type: header.map(|h| h.content_type.clone()),
                    supersedes: header.and_then(|h| h.supersedes),
                    in_reply_to: header.and_then(|h| h.in_reply_to),
                    response: response.clone(),
                    // Read only once the document verified: never parse what is not genuine.
                    summary: header
                        .filter(|h| h.content_type == XML)
                        .and_then(|_| document::summary(&env.payload)),
                    created_at: header.map(|h| h.created_at),
                    key_id: header.map(|h| h.key_id.to_string()),
                    payload_length: env.payload.len() as u64,
                    // Verified: the signed header's digest is the payload's (it was checked).
                    payload_sha256: to_hex(
                        &header.map_or_else(|| sha256(&env.payload), |h| h.payload_sha256),
                    ),
                    hub_sequence: receipt.map(|r| r.hub_sequence),
                    accepted_at: receipt.map(|r| r.accepted_at),
                    received_at,
                    verification: verification.clone(),
                    evidence: Evidence {
                        header: BASE64.encode(&env.header),
                        signature: env
                            .signature
                            .as_ref()
                            .map(|s| BASE64.encode(&s.signature))
                            .unwrap_or_default(),
                        signature_key_id: env
                            .signature
                            .as_ref()
                            .map(|s| s.key_id.clone())
                            .unwrap_or_default(),
                        receipt: BASE64.encode(signed_receipt.encode_to_vec()),
                        ack: None,
                    },
                };
                match &verification {
                    Verification::Verified { notes } => {
                        let notes: Vec<&str> = notes.iter().map(|n| n.code.as_str()).collect();
                        info!(%message_id, %sender, ?notes, "received and verified")
                    }
                    Verification::Rejected { code, reason } => {
                        warn!(%message_id, %sender, %code, reason, "received document failed verification")
                    }
                }
                let answered = answered.map(|(original, body)| {
                    (
                        original,
                        AnswerRecord {
                            message_id,
                            decision: body.decision,
                            reason: body.reason,
                            received_at,
                        },
                    )
                });
                taken.store.push(NewDocument {
                    record,
                    payload: env.payload,
                    answers: answered,
                });
                verification
            }
        };
        let outcome = match verification {
            Verification::Verified { .. } => AckOutcome::Accepted,
            Verification::Rejected { code, reason } => AckOutcome::Rejected { code, reason },
        };
        taken.acks.push(PendingAck {
            ack: Ack {
                message_id,
                sender,
                recipient: self.me,
                header_sha256,
                outcome,
                acknowledged_at: Timestamp::now(),
                key_id: self.key.key_id(),
            },
        });
        Ok(())
    }

    /// Store what a batch of deliveries brought, in one batch of the store, and make it
    /// durable: the inbox is durable before any acknowledgement leaves.
    async fn keep(&self, taken: &mut Taken) -> Result<(), StoreError> {
        let store = self.store.clone();
        let kept = std::mem::take(&mut taken.store);
        let linked = blocking(move || {
            let mut linked = Vec::new();
            store.batch(|| {
                for new in &kept {
                    store.inbox_insert(&new.record, &new.payload)?;
                    if let Some((original, answer)) = &new.answers
                        && store.link_response(*original, new.record.sender, answer.clone())?
                    {
                        linked.push((new.record.message_id, *original));
                    }
                }
                Ok(())
            })?;
            store.flush()?;
            Ok(linked)
        })
        .await?;
        for (message_id, original) in linked {
            info!(%message_id, %original, "business response linked to the document it answers");
        }
        Ok(())
    }

    /// Send the acknowledgements of a flushed batch together (one request), then keep what
    /// was sent as evidence in the inbox, in one batch of the store.
    async fn acknowledge_all(&self, acks: Vec<PendingAck>) -> Result<(), tonic::Status> {
        if acks.is_empty() {
            return Ok(());
        }
        let signed: Vec<v1::SignedAck> =
            acks.iter().map(|p| ack::sign(&p.ack, &self.key)).collect();
        let evidence: Vec<String> = signed.iter().map(evidence_of).collect();
        let sent = match self
            .client()
            .acknowledge_many(v1::AcknowledgeManyRequest { acks: signed })
            .await
        {
            Ok(response) => {
                let results = response.into_inner().results;
                if results.len() != acks.len() {
                    return Err(tonic::Status::data_loss(
                        "the hub answered another number of acknowledgements than sent",
                    ));
                }
                let mut sent = Vec::with_capacity(acks.len());
                for ((pending, evidence), result) in acks.iter().zip(evidence).zip(results) {
                    match result.result {
                        Some(v1::acknowledge_result::Result::Answer(answer)) => {
                            sent.push(self.acknowledged(pending, evidence, answer).await)
                        }
                        Some(v1::acknowledge_result::Result::Refused(r)) => {
                            warn!(message_id = %pending.ack.message_id, code = r.reason, detail = r.detail,
                                "the hub refused our acknowledgement");
                        }
                        None => {
                            warn!(message_id = %pending.ack.message_id, "the hub answered nothing for our acknowledgement")
                        }
                    }
                }
                sent
            }
            // A hub from before AcknowledgeMany: one request each (signed again: the batch's
            // went with the request).
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                let results =
                    futures::future::join_all(acks.iter().map(|p| self.acknowledge(p))).await;
                let mut sent = Vec::with_capacity(results.len());
                for result in results {
                    sent.extend(result?);
                }
                sent
            }
            Err(status) => return Err(status),
        };
        if !sent.is_empty() {
            let (store, mut sent) = (self.store.clone(), sent);
            let kept = blocking(move || {
                store.batch(|| {
                    for (sender, message_id, evidence) in sent.drain(..) {
                        store.inbox_set_ack(sender, message_id, evidence)?;
                    }
                    Ok(())
                })
            })
            .await;
            if let Err(e) = kept {
                warn!(cause = %e, "could not keep the acknowledgements sent");
            }
        }
        Ok(())
    }

    /// Sign and send one acknowledgement; returns what to keep as evidence once the hub took
    /// it.
    async fn acknowledge(
        &self,
        pending: &PendingAck,
    ) -> Result<Option<(ParticipantId, MessageId, String)>, tonic::Status> {
        let signed = ack::sign(&pending.ack, &self.key);
        let evidence = evidence_of(&signed);
        match self
            .client()
            .acknowledge(v1::AcknowledgeRequest { ack: Some(signed) })
            .await
        {
            Ok(response) => Ok(Some(
                self.acknowledged(pending, evidence, response.into_inner())
                    .await,
            )),
            Err(status) => match caravan_proto::status::from_status(&status) {
                // The hub refused the acknowledgement itself: retrying will not help.
                Some(refusal) => {
                    warn!(message_id = %pending.ack.message_id, code = %refusal.code, detail = refusal.detail,
                        "the hub refused our acknowledgement");
                    Ok(None)
                }
                None => Err(status),
            },
        }
    }

    /// The hub took an acknowledgement: check the log entry it shows for it, and say what to
    /// keep as evidence (`evidence`, the signed acknowledgement encoded).
    async fn acknowledged(
        &self,
        pending: &PendingAck,
        evidence: String,
        response: v1::AcknowledgeResponse,
    ) -> (ParticipantId, MessageId, String) {
        let a = &pending.ack;
        // The entry records the first acknowledgement the hub took, which a resent one
        // (signed anew) does not match byte for byte: the evidence digest is not compared.
        let expected = Expected {
            kind: match response.state() {
                v1::MessageState::Rejected => v1::LogEntryKind::Rejected,
                _ => v1::LogEntryKind::Acknowledged,
            },
            message_id: a.message_id,
            sender: a.sender,
            recipient: self.me,
            header_sha256: Some(a.header_sha256),
            evidence_sha256: None,
        };
        self.check_log(
            response.log_proof.as_ref(),
            &expected,
            "acknowledgement answer",
        )
        .await;
        (a.sender, a.message_id, evidence)
    }
}

/// End-to-end verification, by spoke `me` at time `now`, of a delivered envelope and the hub's
/// receipt for it, with the spoke's own trust set. A verified document may carry notes an
/// officer should see.
pub fn verify_delivery(
    trust: &caravan_common::trust::TrustSet,
    me: ParticipantId,
    env: &v1::Envelope,
    receipt: Result<&Receipt, &Refusal>,
    now: Timestamp,
) -> Result<(envelope::Opened, Vec<Note>), Refusal> {
    let receipt = receipt.map_err(|r| r.clone())?;
    // The signing key is judged at the time the hub accepted the document.
    let opened = envelope::open(env, trust, None, receipt.accepted_at)?;
    let h = &opened.header;
    if receipt.message_id != h.message_id
        || receipt.sender != h.sender
        || receipt.recipient != h.recipient
        || receipt.header_sha256 != opened.header_sha256
    {
        return Err(Refusal::new(
            RefusalCode::BadReceipt,
            "the hub's receipt is for another message or header",
        ));
    }
    if h.recipient != me {
        return Err(Refusal::new(
            RefusalCode::WrongRecipient,
            format!(
                "the document is addressed to {}, not to {}",
                h.recipient, me
            ),
        ));
    }
    let mut notes = Vec::new();
    if let Some(r) = opened.signer.revoked.as_ref() {
        notes.push(Note::new(
            "KEY_SINCE_REVOKED",
            format!(
                "key {} was revoked at {} ({}), after the hub accepted this document at {}",
                opened.signer.key_id(),
                r.at,
                r.reason,
                receipt.accepted_at
            ),
        ));
    }
    if trust.corridor(h.sender, h.recipient, h.document_type) == CorridorState::Pilot {
        notes.push(Note::new(
            "PILOT_CORRIDOR",
            format!(
                "{} -> {} for {} is a pilot corridor",
                h.sender, h.recipient, h.document_type
            ),
        ));
    }
    if !trust.info.is_fresh(now) {
        notes.push(Note::new(
            "TRUST_LIST_STALE",
            format!(
                "verified with trust list version {}, whose next update was due at {}",
                trust.info.version,
                trust
                    .info
                    .next_update
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        ));
    }
    Ok((opened, notes))
}

/// A signed acknowledgement as the inbox keeps it: its encoding, base64.
fn evidence_of(signed: &v1::SignedAck) -> String {
    BASE64.encode(signed.encode_to_vec())
}

/// Why a receipted document went back to the outbox (its `last_error`).
const STRANDED: &str = "the hub no longer knew this document after giving a receipt for it (restored from a backup?): resubmitted under the same message id";

/// A status event to apply: message, change, the acknowledgement it carried, cursor, epoch.
type StatusChange = (MessageId, StateChange, Option<AckRecord>, u64, String);

/// An acknowledgement waiting to be signed and sent.
struct PendingAck {
    ack: Ack,
}

/// What a batch of deliveries brought: new documents to store (each with its payload and,
/// for a business response, the document it answers), and acknowledgements to send once they
/// are durable.
#[derive(Default)]
struct Taken {
    store: Vec<NewDocument>,
    acks: Vec<PendingAck>,
}

/// A document received for the first time, to keep in the inbox.
struct NewDocument {
    record: InboxRecord,
    payload: Vec<u8>,
    /// For a business response: the document it answers, and the answer.
    answers: Option<(MessageId, AnswerRecord)>,
}

fn store_status(e: StoreError) -> tonic::Status {
    tonic::Status::internal(format!("spoke store: {e}"))
}

/// Run blocking store work off the async threads.
pub use caravan_common::store::blocking;

/// Exponential backoff with full jitter, from 250 ms up to 30 s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE_MS: u64 = 250;
    const MAX_MS: u64 = 30_000;

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
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
    use caravan_common::{
        DocumentType, MessageId,
        trust::{
            CorridorState, HubKey, ListInfo, Participant, ParticipantStatus, Revocation,
            SigningKeyEntry, TrustSet,
        },
    };

    use super::*;

    const PAYLOAD: &[u8] = b"<CertificateOfOrigin/>";

    struct World {
        kz: SigningKey,
        hub: SigningKey,
    }

    fn pid(s: &str) -> ParticipantId {
        s.parse().unwrap()
    }

    fn trust(
        w: &World,
        corridor: CorridorState,
        revoked_at: Option<i64>,
        next_update: i64,
    ) -> TrustSet {
        let participant = |id: &str| Participant {
            id: pid(id),
            name: id.into(),
            contact: String::new(),
            status: ParticipantStatus::Active,
        };
        TrustSet::new(
            ListInfo {
                version: 7,
                issued_at: None,
                next_update: Some(Timestamp::from_millis(next_update)),
            },
            [participant("KZ"), participant("CN")],
            [SigningKeyEntry {
                participant: pid("KZ"),
                public_key: w.kz.public().clone(),
                document_types: vec![DocumentType::CertificateOfOrigin],
                not_before: None,
                not_after: None,
                revoked: revoked_at.map(|ms| Revocation {
                    at: Timestamp::from_millis(ms),
                    reason: "lost".into(),
                }),
            }],
            [HubKey {
                public_key: w.hub.public().clone(),
                not_before: None,
                not_after: None,
            }],
            [(
                (pid("KZ"), pid("CN"), DocumentType::CertificateOfOrigin),
                corridor,
            )],
        )
        .unwrap()
    }

    /// A sealed document from KZ to `to`, and the hub's receipt for it, accepted at 1000 ms.
    fn delivery(w: &World, to: &str) -> (v1::Envelope, Receipt) {
        let header = Header {
            message_id: MessageId::generate(),
            sender: pid("KZ"),
            recipient: pid(to),
            document_type: DocumentType::CertificateOfOrigin,
            document_id: "KZ-CO-1".into(),
            content_type: XML.into(),
            payload_sha256: sha256(PAYLOAD),
            payload_length: PAYLOAD.len() as u64,
            created_at: Timestamp::from_millis(900),
            key_id: w.kz.key_id(),
            supersedes: None,
            in_reply_to: None,
        };
        let env = envelope::seal(&header, PAYLOAD.to_vec(), &w.kz);
        let receipt = Receipt {
            message_id: header.message_id,
            sender: header.sender,
            recipient: header.recipient,
            header_sha256: sha256(&env.header),
            hub_sequence: 1,
            accepted_at: Timestamp::from_millis(1_000),
            key_id: w.hub.key_id(),
        };
        (env, receipt)
    }

    fn world() -> World {
        World {
            kz: SigningKey::generate(),
            hub: SigningKey::generate(),
        }
    }

    fn codes(notes: &[Note]) -> Vec<&str> {
        notes.iter().map(|n| n.code.as_str()).collect()
    }

    #[test]
    fn a_clean_delivery_verifies_without_notes() {
        let w = world();
        let (env, receipt) = delivery(&w, "CN");
        let trust = trust(&w, CorridorState::Open, None, 5_000);
        let (_, notes) = verify_delivery(
            &trust,
            pid("CN"),
            &env,
            Ok(&receipt),
            Timestamp::from_millis(2_000),
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn notes_for_revoked_since_pilot_and_stale() {
        let w = world();
        let (env, receipt) = delivery(&w, "CN");
        // Revoked at 1500, after the hub accepted at 1000; pilot corridor; list stale at 6000.
        let trust = trust(&w, CorridorState::Pilot, Some(1_500), 5_000);
        let (_, notes) = verify_delivery(
            &trust,
            pid("CN"),
            &env,
            Ok(&receipt),
            Timestamp::from_millis(6_000),
        )
        .unwrap();
        assert_eq!(
            codes(&notes),
            ["KEY_SINCE_REVOKED", "PILOT_CORRIDOR", "TRUST_LIST_STALE"]
        );
    }

    #[test]
    fn refusals_at_the_recipient() {
        let w = world();
        let now = Timestamp::from_millis(2_000);
        // The key was revoked before the hub accepted the document.
        let (env, receipt) = delivery(&w, "CN");
        let revoked = trust(&w, CorridorState::Open, Some(999), 5_000);
        let code = |r: Result<(envelope::Opened, Vec<Note>), Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(verify_delivery(
                &revoked,
                pid("CN"),
                &env,
                Ok(&receipt),
                now
            )),
            RefusalCode::KeyRevoked
        );
        // Delivered to the wrong spoke.
        let ok = trust(&w, CorridorState::Open, None, 5_000);
        assert_eq!(
            code(verify_delivery(&ok, pid("KZ"), &env, Ok(&receipt), now)),
            RefusalCode::WrongRecipient
        );
        // A receipt for another message.
        let mut other = receipt.clone();
        other.message_id = MessageId::generate();
        assert_eq!(
            code(verify_delivery(&ok, pid("CN"), &env, Ok(&other), now)),
            RefusalCode::BadReceipt
        );
        // A receipt that did not verify.
        let bad = Refusal::new(RefusalCode::BadReceipt, "forged");
        assert_eq!(
            code(verify_delivery(&ok, pid("CN"), &env, Err(&bad), now)),
            RefusalCode::BadReceipt
        );
        // A payload altered on the way.
        let mut altered = env.clone();
        altered.payload[1] = b'X';
        assert_eq!(
            code(verify_delivery(&ok, pid("CN"), &altered, Ok(&receipt), now)),
            RefusalCode::PayloadHashMismatch
        );
    }
}
