//! The stand-in hub's script: a real hub (its store, log, receipts and proofs are the hub's
//! own code, in the kit's folder) whose Exchange and TrustAnchor services pass through the
//! kit on the way to and from the candidate. That is where the kit does what a genuine hub
//! never does: it flips a byte of a delivered payload, breaks a header's or a receipt's
//! signature, cuts a delivery off midway, delivers a document again, forges the receipt of the
//! candidate's own submission, and offers an older trust list. It also watches what the
//! candidate sends back: every acknowledgement (checked against the candidate's keys), every
//! submission, every delivery stream opened.
//!
//! Nothing here is reachable from a hub's own configuration: only `caravan-hub conformance
//! run` builds a [`StandIn`], on its own listener, store and anchor key, which production spokes
//! do not pin.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use caravan_common::{MessageId, ParticipantId, Timestamp, envelope::AckOutcome};
use caravan_proto::v1;

use crate::{
    anchor::TrustAnchorService,
    exchange::{Exchange, ExchangeService},
    registry::Registry,
};

/// What the kit does to a document on its way to the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// One bit of the payload flipped: the header's digest no longer matches.
    Payload,
    /// One bit of the sender's header signature flipped.
    HeaderSignature,
    /// One bit of the hub's receipt signature flipped.
    Receipt,
    /// The first frame sent with half the payload and `complete = false`, then the stream
    /// ends as a hub restarting would end it. Once: the next delivery is whole.
    CutMidway,
}

/// An acknowledgement the candidate sent, as the kit judged it: its outcome, or why it does
/// not count (it does not verify with the candidate's keys).
pub type SeenAck = Result<AckOutcome, String>;

#[derive(Default)]
struct State {
    tamper: HashMap<MessageId, Tamper>,
    /// Frames to deliver (again) on the candidate's open stream.
    inject: Vec<v1::Delivery>,
    /// The first frame of each document sent to the candidate, as sent.
    delivered: HashMap<MessageId, v1::Delivery>,
    /// Forge the receipt of the candidate's next new submission.
    forge_next_receipt: bool,
    forged: Option<MessageId>,
    /// The candidate's Submit calls, per message id.
    submissions: HashMap<MessageId, u32>,
    acks: HashMap<MessageId, Vec<SeenAck>>,
    delivery_streams: u64,
    /// A list served instead of the registry's (an older one).
    trust_override: Option<v1::SignedTrustList>,
    /// Versions from this one on are kept off the watch streams (served on `Current` only),
    /// so that a document signed with a new key arrives before its list does.
    withheld_from: Option<u64>,
    /// How often the override was handed to the candidate.
    override_served: u32,
    /// The newest version of the registry's list handed to the candidate.
    version_served: u64,
}

/// The kit's hold on a stand-in hub: attached to the hub's parts when it starts.
pub struct StandIn {
    candidate: ParticipantId,
    parts: OnceLock<(Arc<Exchange>, Arc<Registry>)>,
    state: Mutex<State>,
    /// Counts every change of `state`, so the kit waits without polling.
    changed: watch::Sender<u64>,
}

impl StandIn {
    pub fn new(candidate: ParticipantId) -> Arc<Self> {
        Arc::new(Self {
            candidate,
            parts: OnceLock::new(),
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        })
    }

    pub fn candidate(&self) -> ParticipantId {
        self.candidate
    }

    /// Called by the hub's wiring once its exchange and registry exist.
    pub(crate) fn attach(&self, exchange: Arc<Exchange>, registry: Arc<Registry>) {
        let _ = self.parts.set((exchange, registry));
        self.changed.send_modify(|n| *n += 1);
    }

    /// The hub's exchange and registry, once it started.
    pub fn parts(&self) -> Option<(Arc<Exchange>, Arc<Registry>)> {
        self.parts.get().cloned()
    }

    pub(crate) fn exchange(self: &Arc<Self>, inner: ExchangeService) -> KitExchange {
        KitExchange {
            inner,
            kit: self.clone(),
        }
    }

    pub(crate) fn anchor(self: &Arc<Self>, inner: TrustAnchorService) -> KitAnchor {
        KitAnchor {
            inner,
            kit: self.clone(),
        }
    }

    fn edit<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.send_modify(|n| *n += 1);
        out
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Wait until `ready` finds what it looks for, or `timeout` passes (then `None`).
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            if let Some(found) = ready(self) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    pub fn tamper(&self, id: MessageId, how: Tamper) {
        self.edit(|s| s.tamper.insert(id, how));
    }

    /// Deliver `id` again, as first sent, on the candidate's open stream.
    pub fn redeliver(&self, id: MessageId) -> bool {
        self.edit(|s| match s.delivered.get(&id).cloned() {
            Some(frame) => {
                s.inject.push(frame);
                true
            }
            None => false,
        })
    }

    pub fn forge_next_receipt(&self) {
        self.edit(|s| {
            s.forge_next_receipt = true;
            s.forged = None;
        });
    }

    /// The candidate's submission whose receipt was forged, and how often it submitted it.
    pub fn forged(&self) -> Option<(MessageId, u32)> {
        self.read(|s| {
            s.forged
                .map(|id| (id, s.submissions.get(&id).copied().unwrap_or(0)))
        })
    }

    pub fn acks(&self, id: MessageId) -> Vec<SeenAck> {
        self.read(|s| s.acks.get(&id).cloned().unwrap_or_default())
    }

    pub fn delivery_streams(&self) -> u64 {
        self.read(|s| s.delivery_streams)
    }

    /// Keep versions from `version` on off the watch streams (`None`: hand them over).
    pub fn withhold_from_watch(&self, version: Option<u64>) {
        self.edit(|s| s.withheld_from = version);
    }

    fn withheld(&self, list: &v1::SignedTrustList) -> bool {
        let version = v1::TrustList::decode(list.body.as_slice()).map_or(0, |l| l.version);
        self.read(|s| s.withheld_from.is_some_and(|from| version >= from))
    }

    pub fn serve_trust_list(&self, list: Option<v1::SignedTrustList>) {
        self.edit(|s| s.trust_override = list);
    }

    fn trust_override(&self) -> Option<v1::SignedTrustList> {
        self.read(|s| s.trust_override.clone())
    }

    pub fn trust_override_served(&self) -> u32 {
        self.read(|s| s.override_served)
    }

    pub fn trust_version_served(&self) -> u64 {
        self.read(|s| s.version_served)
    }

    fn note_served(&self, list: &v1::SignedTrustList, overridden: bool) {
        let version = v1::TrustList::decode(list.body.as_slice()).map_or(0, |l| l.version);
        self.edit(|s| match overridden {
            true => s.override_served += 1,
            false => s.version_served = s.version_served.max(version),
        });
    }

    /// Judge and note an acknowledgement from the candidate.
    fn note_ack(&self, signed: &v1::SignedAck) {
        let Some((_, registry)) = self.parts() else {
            return;
        };
        let trust = registry.snapshot().trust.clone();
        let id = v1::AckBody::decode(signed.body.as_slice())
            .ok()
            .and_then(|b| b.message_id.parse::<MessageId>().ok());
        let Some(id) = id else {
            return;
        };
        let seen: SeenAck = match caravan_proto::ack::verify(signed, &trust, Timestamp::now()) {
            Ok(ack) if ack.recipient == self.candidate => Ok(ack.outcome),
            Ok(ack) => Err(format!(
                "the acknowledgement is signed by {}, not by the candidate",
                ack.recipient
            )),
            Err(refusal) => Err(format!(
                "the acknowledgement does not verify: {}: {}",
                refusal.code, refusal.detail
            )),
        };
        self.edit(|s| s.acks.entry(id).or_default().push(seen));
    }
}

/// The id in an envelope's header bytes (a hint: the hub checks the rest).
fn message_id(envelope: Option<&v1::Envelope>) -> Option<(MessageId, String)> {
    let header = v1::Header::decode(envelope?.header.as_slice()).ok()?;
    Some((header.message_id.parse().ok()?, header.sender))
}

fn flip(bytes: &mut [u8], at: usize) {
    if let Some(b) = bytes.get_mut(at) {
        *b ^= 0x01;
    }
}

/// Forge a receipt in whichever form it travels: a signed receipt's signature (protocol v1), or
/// the entry of the log proof that stands for one (v2), so that its path no longer leads to the
/// signed root.
fn forge_receipt(signed: Option<&mut v1::SignedReceipt>, proof: Option<&mut v1::LogProof>) {
    match (signed.and_then(|r| r.signature.as_mut()), proof) {
        (Some(sig), _) => flip(&mut sig.signature, 0),
        (None, Some(proof)) => flip(&mut proof.entry, 0),
        (None, None) => {}
    }
}

/// The stand-in's Exchange service: the hub's own, with the kit's hand on what passes.
#[derive(Clone)]
pub struct KitExchange {
    inner: ExchangeService,
    kit: Arc<StandIn>,
}

#[tonic::async_trait]
impl v1::exchange_server::Exchange for KitExchange {
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let submitted = message_id(request.get_ref().envelope.as_ref())
            .filter(|(_, sender)| *sender == self.kit.candidate.as_str());
        let mut response = self.inner.submit(request).await?;
        if let Some((id, _)) = submitted {
            let forge = self.kit.edit(|s| {
                let count = s.submissions.entry(id).or_default();
                *count += 1;
                let forge = s.forge_next_receipt && *count == 1;
                if forge {
                    s.forge_next_receipt = false;
                    s.forged = Some(id);
                }
                forge
            });
            if forge {
                let answer = response.get_mut();
                forge_receipt(answer.receipt.as_mut(), answer.log_proof.as_mut());
            }
        }
        Ok(response)
    }

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<v1::SubmitChunk>>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        self.inner.submit_stream(request).await
    }

    /// Not offered: the kit watches (and forges the receipt of) each submission alone, so a
    /// candidate submits one by one here, as it must to a hub from before `SubmitMany`.
    async fn submit_many(
        &self,
        _: Request<v1::SubmitManyRequest>,
    ) -> Result<Response<v1::SubmitManyResponse>, Status> {
        Err(Status::unimplemented(
            "the conformance kit's stand-in hub takes submissions one by one",
        ))
    }

    type DeliveriesStream = ReceiverStream<Result<v1::Delivery, Status>>;

    async fn deliveries(
        &self,
        request: Request<v1::DeliveriesRequest>,
    ) -> Result<Response<Self::DeliveriesStream>, Status> {
        let mut inner = self.inner.deliveries(request).await?.into_inner();
        self.kit.edit(|s| s.delivery_streams += 1);
        let (tx, rx) = mpsc::channel(8);
        let kit = self.kit.clone();
        tokio::spawn(async move {
            let mut changed = kit.changed.subscribe();
            loop {
                let injected = kit.edit(|s| std::mem::take(&mut s.inject));
                for frame in injected {
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                let frame = tokio::select! {
                    frame = inner.next() => frame,
                    _ = changed.changed() => continue,
                    _ = tx.closed() => return,
                };
                let Some(frame) = frame else { return };
                let mut frame = match frame {
                    Ok(frame) => frame,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let id = message_id(frame.envelope.as_ref()).map(|(id, _)| id);
                let how = id.and_then(|id| {
                    kit.edit(|s| {
                        s.delivered.entry(id).or_insert_with(|| frame.clone());
                        let how = s.tamper.get(&id).copied();
                        if how == Some(Tamper::CutMidway) {
                            s.tamper.remove(&id);
                        }
                        how
                    })
                });
                match how {
                    Some(Tamper::Payload) => {
                        if let Some(env) = frame.envelope.as_mut() {
                            let middle = env.payload.len() / 2;
                            flip(&mut env.payload, middle);
                        }
                    }
                    Some(Tamper::HeaderSignature) => {
                        if let Some(sig) =
                            frame.envelope.as_mut().and_then(|e| e.signature.as_mut())
                        {
                            flip(&mut sig.signature, 0);
                        }
                    }
                    Some(Tamper::Receipt) => {
                        forge_receipt(frame.receipt.as_mut(), frame.accepted_proof.as_mut())
                    }
                    Some(Tamper::CutMidway) => {
                        if let Some(env) = frame.envelope.as_mut() {
                            let half = env.payload.len() / 2;
                            env.payload.truncate(half);
                        }
                        frame.complete = false;
                        let _ = tx.send(Ok(frame)).await;
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "conformance kit: the hub restarts in the middle of a delivery",
                            )))
                            .await;
                        return;
                    }
                    None => {}
                }
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::AcknowledgeResponse>, Status> {
        if let Some(ack) = &request.get_ref().ack {
            self.kit.note_ack(ack);
        }
        self.inner.acknowledge(request).await
    }

    async fn acknowledge_many(
        &self,
        request: Request<v1::AcknowledgeManyRequest>,
    ) -> Result<Response<v1::AcknowledgeManyResponse>, Status> {
        for ack in &request.get_ref().acks {
            self.kit.note_ack(ack);
        }
        self.inner.acknowledge_many(request).await
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        self.inner.status(request).await
    }

    type WatchStatusStream = ReceiverStream<Result<v1::StatusEvent, Status>>;

    async fn watch_status(
        &self,
        request: Request<v1::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        self.inner.watch_status(request).await
    }

    async fn log_consistency(
        &self,
        request: Request<v1::LogConsistencyRequest>,
    ) -> Result<Response<v1::LogConsistencyResponse>, Status> {
        self.inner.log_consistency(request).await
    }
}

/// The stand-in's TrustAnchor service: the registry's lists, or the one the kit serves
/// instead (an older version), on `Current` and on open watch streams alike.
#[derive(Clone)]
pub struct KitAnchor {
    inner: TrustAnchorService,
    kit: Arc<StandIn>,
}

#[tonic::async_trait]
impl v1::trust_anchor_server::TrustAnchor for KitAnchor {
    async fn current(
        &self,
        request: Request<v1::CurrentTrustListRequest>,
    ) -> Result<Response<v1::SignedTrustList>, Status> {
        let current = self.inner.current(request).await?;
        Ok(match self.kit.trust_override() {
            Some(list) => {
                self.kit.note_served(&list, true);
                Response::new(list)
            }
            None => {
                self.kit.note_served(current.get_ref(), false);
                current
            }
        })
    }

    type WatchStream = ReceiverStream<Result<v1::SignedTrustList, Status>>;

    async fn watch(
        &self,
        request: Request<v1::WatchTrustListRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut inner = self.inner.watch(request).await?.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let kit = self.kit.clone();
        tokio::spawn(async move {
            let mut changed = kit.changed.subscribe();
            let mut offered: Option<Vec<u8>> = None;
            // The newest list kept off this stream, handed over once no longer withheld.
            let mut held_back: Option<v1::SignedTrustList> = None;
            loop {
                if let Some(list) = kit.trust_override()
                    && offered.as_ref() != Some(&list.body)
                {
                    offered = Some(list.body.clone());
                    if tx.send(Ok(list.clone())).await.is_err() {
                        return;
                    }
                    kit.note_served(&list, true);
                }
                if let Some(list) = held_back.take_if(|l| !kit.withheld(l)) {
                    if tx.send(Ok(list.clone())).await.is_err() {
                        return;
                    }
                    kit.note_served(&list, false);
                }
                tokio::select! {
                    list = inner.next() => match list {
                        Some(Ok(list)) if kit.withheld(&list) => held_back = Some(list),
                        Some(Ok(list)) => {
                            if tx.send(Ok(list.clone())).await.is_err() {
                                return;
                            }
                            kit.note_served(&list, false);
                        }
                        Some(Err(status)) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        None => return,
                    },
                    _ = changed.changed() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The identity the conformance participant takes in-process, where no TLS is in between.
pub fn zz_peer(participant: ParticipantId) -> crate::identity::Peer {
    crate::identity::Peer {
        caller: crate::identity::Caller::Participant(participant),
        serial: format!("conformance-kit-{participant}"),
        fingerprint: String::new(),
        not_before_ms: 0,
        not_after_ms: i64::MAX,
    }
}
