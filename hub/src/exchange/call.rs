//! The sequence every Exchange RPC runs through: identify the calling participant from its
//! client certificate (refused otherwise), run the RPC in a span naming it and the caller, and
//! log and count each refusal under the RPC's operation name before it becomes a status.

use std::future::Future;

use tonic::{Request, Response, Status};
use tracing::{Instrument, Span, info_span, warn};

use caravan_common::{ParticipantId, Refusal, RefusalCode};
use caravan_proto::v1;

use super::state::Exchange;
use crate::{error::HubError, identity::Peer};

/// The most items a batched request (`AcknowledgeMany`, `SubmitMany`) may carry.
pub(super) const BATCH_LIMIT: usize = 256;

/// The Exchange service's RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rpc {
    Submit,
    SubmitStream,
    SubmitMany,
    Deliveries,
    WatchStatus,
    Acknowledge,
    AcknowledgeMany,
    LogConsistency,
    Status,
}

impl Rpc {
    /// The operation its refusals are counted and listed under (the dashboard's "Operation"):
    /// both ways to submit are `submit`, both ways to acknowledge `acknowledge`.
    pub(super) fn op(self) -> &'static str {
        match self {
            Rpc::Submit | Rpc::SubmitStream | Rpc::SubmitMany => "submit",
            Rpc::Deliveries => "deliveries",
            Rpc::WatchStatus => "watch_status",
            Rpc::Acknowledge | Rpc::AcknowledgeMany => "acknowledge",
            Rpc::LogConsistency => "log_consistency",
            Rpc::Status => "status",
        }
    }

    /// The span the RPC runs in (a span's name is fixed where it is written, hence one each).
    fn span(self, caller: ParticipantId) -> Span {
        match self {
            Rpc::Submit | Rpc::SubmitStream => info_span!("submit", caller = %caller),
            Rpc::SubmitMany => info_span!("submit_many", caller = %caller),
            Rpc::Deliveries => info_span!("deliveries", caller = %caller),
            Rpc::WatchStatus => info_span!("watch_status", caller = %caller),
            Rpc::Acknowledge => info_span!("acknowledge", caller = %caller),
            Rpc::AcknowledgeMany => info_span!("acknowledge_many", caller = %caller),
            Rpc::LogConsistency => info_span!("log_consistency", caller = %caller),
            Rpc::Status => info_span!("status", caller = %caller),
        }
    }
}

/// What a refusal of a request names besides the caller: the message it is about, if the
/// request names one.
pub(super) trait About {
    fn message_id(&self) -> String {
        String::new()
    }
}

impl About for v1::SubmitRequest {}
impl About for tonic::Streaming<v1::SubmitChunk> {}
impl About for v1::DeliveriesRequest {}
impl About for v1::WatchStatusRequest {}
impl About for v1::AcknowledgeRequest {}
impl About for v1::AcknowledgeManyRequest {}
impl About for v1::SubmitManyRequest {}
impl About for v1::LogConsistencyRequest {}
impl About for v1::StatusRequest {
    fn message_id(&self) -> String {
        self.message_id.clone()
    }
}

/// The identified caller of an RPC.
pub(super) struct Caller {
    pub participant: ParticipantId,
    /// Its certificate (delivery streams judge it again at every registry change).
    pub peer: Peer,
}

/// Serve one RPC: identify the caller (a refusal otherwise), run `work` in the RPC's span,
/// and turn a failure into a status, logging and counting it if it is a refusal.
pub(super) async fn serve<Req, Res, Fut>(
    exchange: &Exchange,
    rpc: Rpc,
    request: Request<Req>,
    work: impl FnOnce(Caller, Req) -> Fut,
) -> Result<Response<Res>, Status>
where
    Req: About,
    Fut: Future<Output = Result<Res, HubError>>,
{
    let caller = exchange
        .identify(&request)
        .map_err(|r| exchange.refuse(rpc, None, "", r.into()))?;
    let participant = caller.participant;
    let request = request.into_inner();
    let message_id = request.message_id();
    work(caller, request)
        .instrument(rpc.span(participant))
        .await
        .map(Response::new)
        .map_err(|e| exchange.refuse(rpc, Some(participant), &message_id, e))
}

impl Exchange {
    /// The calling participant and its certificate, or a refusal.
    fn identify<T>(&self, request: &Request<T>) -> Result<Caller, Refusal> {
        let peer = crate::identity::peer(request);
        let participant = self
            .registry
            .snapshot()
            .authorize_participant(peer.as_ref())?;
        // Authorised, so the request has a peer certificate.
        let peer = peer.ok_or_else(|| {
            Refusal::new(
                caravan_common::RefusalCode::NoClientIdentity,
                "the client certificate carries no Caravan identity",
            )
        })?;
        self.registry.note_certificate(&peer);
        Ok(Caller { participant, peer })
    }

    /// Log and count a refusal, and turn it into a status.
    fn refuse(
        &self,
        rpc: Rpc,
        caller: Option<ParticipantId>,
        message_id: &str,
        e: HubError,
    ) -> Status {
        if let HubError::Refused(r) = &e {
            self.note_refusal(rpc.op(), caller, message_id, r);
        }
        e.into()
    }

    /// Count and log a refusal.
    pub(super) fn note_refusal(
        &self,
        op: &str,
        caller: Option<ParticipantId>,
        message_id: &str,
        r: &Refusal,
    ) {
        let total = self.metrics.refused(op, caller, r);
        warn!(op, caller = caller.map(|c| c.to_string()).unwrap_or_default(), message_id,
            code = %r.code, detail = %r.detail, total, "refused");
    }

    /// Refuse a batched request (`AcknowledgeMany`, `SubmitMany`) of more than [`BATCH_LIMIT`]
    /// items (`items` names them: "documents", "acknowledgements").
    pub(super) fn within_batch_limit(count: usize, items: &str) -> Result<(), HubError> {
        if count > BATCH_LIMIT {
            return Err(HubError::refused(
                RefusalCode::MalformedRequest,
                format!("at most {BATCH_LIMIT} {items} per request; got {count}"),
            ));
        }
        Ok(())
    }

    /// The refusal of one item of a batched request (`AcknowledgeMany`, `SubmitMany`): counted
    /// and logged as a refused request is, and given as that item's answer.
    pub(super) fn refused_item(&self, rpc: Rpc, caller: ParticipantId, r: Refusal) -> v1::Refused {
        self.note_refusal(rpc.op(), Some(caller), "", &r);
        v1::Refused {
            reason: r.code.to_string(),
            detail: r.detail,
        }
    }
}
