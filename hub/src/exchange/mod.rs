//! The Exchange gRPC service: submit, deliveries, acknowledge, status, log consistency; this
//! file wires the RPCs to their families.
//!
//! Each RPC goes through [`call::serve`]: the caller is identified from its client certificate,
//! the rules are applied in order, and the answer is either the result or a refusal naming the
//! broken rule (logged and counted). Nothing is stored for a refused request. What is accepted
//! is committed durably (message, payload, dedup index, queue entry, status, log entry in one
//! transaction, then a shared flush) before the signed receipt goes back.
//!
//! The families: [`submit`] (Submit, SubmitStream, SubmitMany), [`deliver`] (Deliveries), [`ack`]
//! (Acknowledge, AcknowledgeMany), [`status`] (Status, WatchStatus), [`log`] (LogConsistency),
//! [`expire`] (the time-to-live sweep); [`state`] is what they share.

mod ack;
mod call;
mod deliver;
mod expire;
mod log;
mod state;
mod status;
mod submit;

use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use caravan_proto::v1;

use call::{Rpc, serve};
pub use state::{Exchange, SubmitRules};

/// The tonic service wrapper.
#[derive(Clone)]
pub struct ExchangeService(pub Arc<Exchange>);

#[tonic::async_trait]
impl v1::exchange_server::Exchange for ExchangeService {
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        serve(&self.0, Rpc::Submit, request, |caller, request| {
            self.0.submit(caller.participant, request)
        })
        .await
    }

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<v1::SubmitChunk>>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        serve(&self.0, Rpc::SubmitStream, request, |caller, chunks| {
            self.0.submit_chunks(caller.participant, chunks)
        })
        .await
    }

    async fn submit_many(
        &self,
        request: Request<v1::SubmitManyRequest>,
    ) -> Result<Response<v1::SubmitManyResponse>, Status> {
        serve(&self.0, Rpc::SubmitMany, request, |caller, request| {
            self.0.submit_many(caller.participant, request)
        })
        .await
    }

    type DeliveriesStream = ReceiverStream<Result<v1::Delivery, Status>>;

    async fn deliveries(
        &self,
        request: Request<v1::DeliveriesRequest>,
    ) -> Result<Response<Self::DeliveriesStream>, Status> {
        serve(
            &self.0,
            Rpc::Deliveries,
            request,
            |caller, request| async move {
                Ok(self
                    .0
                    .clone()
                    .open_deliveries(caller.peer, caller.participant, request))
            },
        )
        .await
    }

    type WatchStatusStream = ReceiverStream<Result<v1::StatusEvent, Status>>;

    async fn watch_status(
        &self,
        request: Request<v1::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        serve(&self.0, Rpc::WatchStatus, request, |caller, request| async move {
            Ok(self.0.clone().open_status(caller.participant, request))
        })
        .await
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::AcknowledgeResponse>, Status> {
        serve(&self.0, Rpc::Acknowledge, request, |caller, request| {
            self.0.acknowledge(caller.participant, request)
        })
        .await
    }

    async fn acknowledge_many(
        &self,
        request: Request<v1::AcknowledgeManyRequest>,
    ) -> Result<Response<v1::AcknowledgeManyResponse>, Status> {
        serve(&self.0, Rpc::AcknowledgeMany, request, |caller, request| {
            self.0.acknowledge_many(caller.participant, request)
        })
        .await
    }

    async fn log_consistency(
        &self,
        request: Request<v1::LogConsistencyRequest>,
    ) -> Result<Response<v1::LogConsistencyResponse>, Status> {
        serve(&self.0, Rpc::LogConsistency, request, |_, request| {
            self.0.log_consistency(request)
        })
        .await
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        serve(&self.0, Rpc::Status, request, |caller, request| {
            self.0.status(caller.participant, request)
        })
        .await
    }
}
