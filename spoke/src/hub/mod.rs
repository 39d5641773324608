//! The spoke's link to the hub: the gRPC channel over mutual TLS ([`link`], to one address or to
//! one of a hub's replicas), whether the delivery stream
//! is open, the trust list held ([`trust`]) and the watch over the hub's exchange log
//! ([`log_audit`]).
//!
//! Every stage that talks to the hub goes through [`Hub`]; it judges nothing of documents.

pub mod link;
pub mod log_audit;
pub mod trust;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message;
use tonic::transport::Channel;

use caravan_common::{Refusal, RefusalCode};
use caravan_proto::{
    log::Expected,
    v1::{self, exchange_client::ExchangeClient},
};

use crate::store::StoreError;

use self::{
    link::HubLink,
    log_audit::LogAudit,
    trust::{Held, TrustHolder},
};

/// Room for the envelope's header, signature and framing on top of the payload limit.
const ENVELOPE_OVERHEAD: usize = 64 * 1024;

/// The hub as the stages see it: its Exchange client, the trust list held and the log audit.
pub struct Hub {
    client: ExchangeClient<Channel>,
    link: HubLink,
    trust: Arc<TrustHolder>,
    log: Arc<LogAudit>,
    /// Whether the delivery stream is open.
    connected: AtomicBool,
}

impl Hub {
    /// The link over `channel`, its messages sized for payloads up to `max_payload_bytes`.
    pub fn new(
        link: HubLink,
        max_payload_bytes: usize,
        trust: Arc<TrustHolder>,
        log: Arc<LogAudit>,
    ) -> Self {
        let limit = max_payload_bytes + ENVELOPE_OVERHEAD;
        Self {
            client: ExchangeClient::new(link.channel.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            link,
            trust,
            log,
            connected: AtomicBool::new(false),
        }
    }

    pub fn client(&self) -> ExchangeClient<Channel> {
        self.client.clone()
    }

    /// The link's address in use, and moving to the next when it fails.
    pub fn link(&self) -> &HubLink {
        &self.link
    }

    pub fn trust(&self) -> &Arc<TrustHolder> {
        &self.trust
    }

    pub fn log(&self) -> &Arc<LogAudit> {
        &self.log
    }

    /// Whether the delivery stream to the hub is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Record whether the delivery stream is open (the inbound stage does).
    pub fn set_connected(&self, open: bool) {
        self.connected.store(open, Ordering::Relaxed);
    }

    /// The trust set in force, or a refusal if no trust list was ever received.
    pub fn trust_set(&self) -> Result<Arc<Held>, Refusal> {
        self.trust.current().ok_or_else(|| {
            Refusal::new(
                RefusalCode::InvalidTrustList,
                "no trust list yet: the hub has not been reached since this spoke was installed",
            )
        })
    }

    /// Check a log proof from the hub with the trust list held (see [`LogAudit`]).
    pub async fn check_log(&self, proof: Option<&v1::LogProof>, expected: &Expected, event: &str) {
        if let Ok(held) = self.trust_set() {
            self.log.check(proof, expected, &held.set, event).await;
        }
    }
}

/// A signed acknowledgement as the spoke keeps it (inbox evidence, a sent document's
/// acknowledgement): its encoding, base64.
pub fn ack_evidence(signed: &v1::SignedAck) -> String {
    BASE64.encode(signed.encode_to_vec())
}

/// A store failure met while talking to the hub, as the status that ends the stream.
pub fn store_status(e: StoreError) -> tonic::Status {
    tonic::Status::internal(format!("spoke store: {e}"))
}
