//! Acknowledge and AcknowledgeMany: a recipient's signed acknowledgement judged (signature,
//! key, that it is the caller's), recorded with its log entry and status event, made durable,
//! and answered with the new state and its log proof.

use prost::Message;
use tracing::info;

use caravan_common::{
    ParticipantId, RefusalCode, Timestamp,
    envelope::{Ack, AckOutcome},
};
use caravan_proto::{
    ack::{self, VerifiedBatches},
    v1,
};

use super::{
    call::Rpc,
    state::{Exchange, seconds_since, wire_state},
};
use crate::{
    error::HubError,
    metrics::{Corridor, Event},
    store::{AckResult, AckUpdate, MessageState, StoreError, TreeHead},
};

impl Exchange {
    pub(super) async fn acknowledge(
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
        let (ack, update) = self.judge_ack(caller, &signed, &mut VerifiedBatches::default())?;
        let (recorded, head) = self
            .commit
            .write_durable(move |b| b.acknowledge(&update))
            .await?;
        self.answer_ack(caller, &ack, recorded, &head).await
    }

    /// Several acknowledgements: each judged alone, all recorded in one write and made durable
    /// by one flush; one result each, in order.
    pub(crate) async fn acknowledge_many(
        &self,
        caller: ParticipantId,
        request: v1::AcknowledgeManyRequest,
    ) -> Result<v1::AcknowledgeManyResponse, HubError> {
        Self::within_batch_limit(request.acks.len(), "acknowledgements")?;
        // What to record goes to the writer; each acknowledgement stays here for its answer.
        let mut updates: Vec<AckUpdate> = Vec::with_capacity(request.acks.len());
        // Acknowledgements signed in a batch (protocol v2) cost one signature check a batch.
        let mut batches = VerifiedBatches::default();
        let judged: Vec<Result<Ack, HubError>> = request
            .acks
            .iter()
            .map(|signed| {
                self.judge_ack(caller, signed, &mut batches)
                    .map(|(ack, update)| {
                        updates.push(update);
                        ack
                    })
            })
            .collect();
        let (recorded, head) = self
            .commit
            .write_durable(move |b| Ok(b.acknowledge_many(&updates)))
            .await?;
        let mut recorded = recorded.into_iter();
        let mut results = Vec::with_capacity(judged.len());
        for judged in judged {
            let answer = match judged {
                Ok(ack) => match recorded
                    .next()
                    .ok_or(StoreError::Stopped("an acknowledgement was not recorded"))
                {
                    Ok(Ok(recorded)) => self.answer_ack(caller, &ack, recorded, &head).await,
                    Ok(Err(e)) | Err(e) => Err(e.into()),
                },
                Err(e) => Err(e),
            };
            let result = match answer {
                Ok(answer) => v1::acknowledge_result::Result::Answer(answer),
                Err(HubError::Refused(r)) => v1::acknowledge_result::Result::Refused(
                    self.refused_item(Rpc::AcknowledgeMany, caller, r),
                ),
                // A store failure fails the whole request: the caller sends it again.
                Err(e) => return Err(e),
            };
            results.push(v1::AcknowledgeResult {
                result: Some(result),
            });
        }
        Ok(v1::AcknowledgeManyResponse { results })
    }

    /// Check a signed acknowledgement from `caller` (signature, or batch signature and path,
    /// key, that it is the caller's) and say what to record.
    pub(super) fn judge_ack(
        &self,
        caller: ParticipantId,
        signed: &v1::SignedAck,
        batches: &mut VerifiedBatches,
    ) -> Result<(Ack, AckUpdate), HubError> {
        let trust = &self.registry.snapshot().trust;
        let ack = ack::verify_with(signed, trust, Timestamp::now(), batches)?;
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
    pub(super) async fn answer_ack(
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
                    log_proof: self.prove(head, log_index).await?,
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
}
