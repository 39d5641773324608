//! The outbound stage owns what this spoke sends: a document is taken in ([`upload`]),
//! checked, signed and queued in the durable outbox ([`Outbound::send`]); the outbox worker
//! submits it to the hub ([`outbox`]); the hub's status events follow it to the end
//! ([`status`]).
//!
//! **Architecture invariant:** `send` returns only after the sealed envelope and its record are
//! in the outbox, committed together and flushed; the envelope is resent byte for byte, so
//! retries can never create a second message.

pub mod outbox;
pub mod status;
pub mod upload;

use std::{sync::Arc, time::Duration};

use prost::Message;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tracing::info;

use caravan_common::{
    DocumentType, MessageId, ParticipantId, Refusal, RefusalCode, Timestamp,
    envelope::{Header, from_hex32},
    signing::{SigningKey, sha256},
};
use caravan_proto::{envelope, log::Expected, v1};

use crate::{
    checks::{self, Check, CheckRules, Outcome, Registered},
    config::{Config, UploadRules},
    document,
    hub::Hub,
    rt::blocking,
    store::{
        Lifecycle, RESPONSE_CONTENT_TYPE, ReceiptInfo, ResponseBody, SentRecord, SentState,
        SpokeStore, StoreError,
    },
};

use self::upload::{Room, UploadError, UploadStats};

/// Room for payloads in memory, in KiB permits (`payload_in_flight_mib`): held by the
/// documents being taken in by `send`, and, in a room of the same size, by the outbox's
/// concurrent submissions, so that many large documents wait for room instead of all being
/// loaded (one larger than the room goes alone).
struct PayloadRoom {
    kib: usize,
    /// Taken as a document's bytes arrive ([`upload`]).
    taking_in: Room,
}

impl PayloadRoom {
    fn new(mib: usize) -> Self {
        let kib = mib.saturating_mul(1024).max(1);
        Self {
            kib,
            taking_in: Room {
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

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A rule was broken, found here or by the hub; nothing was accepted.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The spoke's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The document is not what it must be; nothing was queued.
    #[error("INVALID_DOCUMENT: {}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<document::Problem>),
    /// What the document says fails a content check (the recipient would mark it FAIL);
    /// nothing was queued. Every line is kept, the passing ones too.
    #[error("CONTENT_CHECK_FAILED: {}", .0.iter().filter(|c| c.outcome == Outcome::Fail).map(Check::describe).collect::<Vec<_>>().join("; "))]
    Inconsistent(Vec<Check>),
}

/// The rules of the lines that did not pass (failed or warned), for the log (never the
/// document's words).
fn rules_not_passed(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| c.rule.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// What to send.
#[derive(Debug)]
pub struct Outgoing {
    /// The message's id; `None`: a new one. A caller that must know the id before the
    /// document is queued (a certificate approved in the console: its id is the message's, so
    /// that a step interrupted after queueing is finished, never sent twice) gives it.
    pub message_id: Option<MessageId>,
    pub to: ParticipantId,
    pub document_type: DocumentType,
    /// The business number; read from the document when absent.
    pub document_id: Option<String>,
    pub supersedes: Option<MessageId>,
    /// A document received from `to` that this one answers.
    pub in_reply_to: Option<MessageId>,
    /// The document itself, or a business response (decision) built by the spoke.
    pub content: Content,
    /// The room the document was taken in with ([`Outbound::take_in`]), given back once it is in
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
    /// The content checks run before queueing: every line passed or only warned.
    pub checks: Vec<Check>,
}

/// The outbound stage: sending, the outbox worker and status following share it.
pub struct Outbound {
    me: ParticipantId,
    key: SigningKey,
    store: Arc<SpokeStore>,
    hub: Arc<Hub>,
    /// Wakes the outbox worker when a document is queued.
    outbox_signal: Notify,
    /// Wakes the status follower when a document is queued (see [`Outbound::follow_status`]).
    queued: Notify,
    room: PayloadRoom,
    /// How a document handed to `send` must arrive.
    upload: UploadRules,
    uploads: UploadStats,
    /// The listeners' idle timeout (`net.idle_timeout_secs`), which also ends an idle body.
    idle_timeout: Duration,
    /// Bumped whenever a queued document is settled (accepted or refused).
    settled: watch::Sender<u64>,
    max_payload_bytes: usize,
    /// The content checks' clock skew and age limits, as the recipient applies them.
    check_rules: CheckRules,
    /// Recipients' batch signatures already checked (acknowledgements signed in batches).
    ack_batches: std::sync::Mutex<caravan_proto::ack::VerifiedBatches>,
}

impl Outbound {
    pub fn new(config: &Config, store: Arc<SpokeStore>, hub: Arc<Hub>) -> Self {
        Self {
            me: config.participant,
            key: config.signing_key.clone(),
            store,
            hub,
            outbox_signal: Notify::new(),
            queued: Notify::new(),
            room: PayloadRoom::new(config.payload_in_flight_mib),
            upload: config.upload,
            uploads: UploadStats::default(),
            idle_timeout: config.net.idle_timeout,
            settled: watch::channel(0).0,
            max_payload_bytes: config.max_payload_bytes,
            check_rules: config.checks,
            ack_batches: Default::default(),
        }
    }

    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// Register the uploads' refusals in `registry` (`/metrics`).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.uploads.register(registry);
    }

    /// The room uploads hold now, in `registry` (a scrape's own).
    pub fn room_gauges(&self, registry: &mut prometheus_client::registry::Registry) {
        upload::room_gauges(registry, self.room.taking_in.taken_kib(), self.room.kib);
    }

    /// Read a document handed to `send`, taking room among `payload_in_flight_mib` as its
    /// bytes arrive; hold it until the document is in the outbox ([`Outgoing::room`]). See
    /// [`upload`] for the rules.
    pub async fn take_in(
        &self,
        body: axum::body::Body,
    ) -> Result<(Vec<u8>, OwnedSemaphorePermit), UploadError> {
        upload::take_in(
            body,
            self.max_payload_bytes,
            &self.upload,
            &self.room.taking_in,
            &self.uploads,
            self.idle_timeout,
        )
        .await
    }

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
        let (payload, content_type, document) = match out.content {
            Content::Document(payload) => {
                // The same judgement the receiving spoke applies; the content type is the
                // format's (XML, or JSON for a JSON e-CO).
                let content = document::judge(&payload, out.document_type, None)
                    .map_err(SendError::Invalid)?;
                (payload, content.format.media_type(), Some(content))
            }
            Content::Response(body) => {
                if answered.is_none() {
                    return Err(Refusal::new(
                        RefusalCode::MalformedRequest,
                        "a response must name the document it answers",
                    )
                    .into());
                }
                let payload = serde_json::to_vec(&body).expect("responses serialise");
                (payload, RESPONSE_CONTENT_TYPE, None)
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
        let held = self.hub.trust_set()?;
        held.set.check_active(out.to, "recipient")?;
        held.set
            .check_corridor(self.me, out.to, out.document_type)?;
        let found_id = match &document {
            Some(content) => content.document_number.clone(),
            None => answered.and_then(|original| original.document_id),
        };
        let document_id = out.document_id.or(found_id).ok_or_else(|| {
            SendError::Invalid(vec![document::Problem {
                field: "document_number".into(),
                rule: "required".into(),
                message: "the document carries no number; give one with --document-id".into(),
            }])
        })?;
        let message_id = out.message_id.unwrap_or_else(MessageId::generate);
        // What the recipient will judge, judged here first: a FAIL is refused before signing.
        let checks = match &document {
            Some(content) => checks::run(&checks::Facts {
                content,
                header: &checks::HeaderClaims {
                    message_id,
                    document_id: document_id.clone(),
                    document_type: out.document_type,
                    supersedes: out.supersedes,
                },
                sender: &Registered::of(&held.set, self.me),
                recipient: &Registered::of(&held.set, out.to),
                now: Timestamp::now(),
                rules: &self.check_rules,
                known: None,
            }),
            None => Vec::new(),
        };
        if checks::worst(&checks) == Outcome::Fail {
            info!(recipient = %out.to, document_type = %out.document_type,
                failed = %rules_not_passed(&checks), "refused: content check failed");
            return Err(SendError::Inconsistent(checks));
        }
        let header = Header {
            message_id,
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
            header_sha256: hex::encode(sha256(&sealed.header)),
            queued_at: header.created_at,
            lifecycle: Lifecycle::QUEUED,
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
        self.queued.notify_one();
        info!(message_id = %header.message_id, recipient = %header.recipient,
            document_type = %header.document_type, warnings = %rules_not_passed(&checks), "queued");
        let mut record = record;
        if let Some(wait) = wait {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let (store, id) = (self.store.clone(), header.message_id);
                if let Some(now) = blocking(move || store.sent_entry(id)).await? {
                    record = now;
                }
                // Settled by the outbox worker: the receipt is kept, or the refusal.
                if record.lifecycle.receipt().is_some() || record.lifecycle.refusal().is_some() {
                    break;
                }
                tokio::select! {
                    changed = settled.changed() => if changed.is_err() { break },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            if let Some(refusal) = record.lifecycle.refusal() {
                return Err(refusal.clone().into());
            }
        }
        Ok(Sent {
            message_id: header.message_id,
            document_id,
            state: record.state(),
            receipt: record.lifecycle.receipt().cloned(),
            checks,
        })
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
}
