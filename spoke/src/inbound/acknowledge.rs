//! Acknowledging what was taken in: the acknowledgements of a flushed batch go out together
//! (one `AcknowledgeMany`, or one request each to an older hub), each answer's log proof is
//! checked, and what was sent is kept as evidence in the inbox.

use tracing::warn;

use caravan_common::{MessageId, ParticipantId, envelope::Ack};
use caravan_proto::{ack, log::Expected, v1};

use crate::{hub::ack_evidence, rt::blocking};

use super::Inbound;

/// An acknowledgement waiting to be signed and sent.
pub(super) struct PendingAck {
    pub(super) ack: Ack,
    /// The hub said its message's sender judges acknowledgements signed in a batch
    /// (`Delivery.batch_ack`, protocol v2).
    pub(super) batched: bool,
}

/// Sign `acks`, in order: those that may be, together in one batch (one signature), the others
/// one by one.
fn sign_all(acks: &[PendingAck], key: &caravan_common::signing::SigningKey) -> Vec<v1::SignedAck> {
    let mut signed: Vec<Option<v1::SignedAck>> = acks
        .iter()
        .map(|p| (!p.batched).then(|| ack::sign(&p.ack, key)))
        .collect();
    let together: Vec<Ack> = acks
        .iter()
        .filter(|p| p.batched)
        .map(|p| p.ack.clone())
        .collect();
    // One signed acknowledgement for each of `together`, in order.
    let mut batch = ack::sign_batch(&together, key).into_iter();
    for slot in signed.iter_mut().filter(|s| s.is_none()) {
        *slot = batch.next();
    }
    signed.into_iter().flatten().collect()
}

impl Inbound {
    /// Send the acknowledgements of a flushed batch together (one request), then keep what
    /// was sent as evidence in the inbox, in one batch of the store.
    pub(super) async fn acknowledge_all(&self, acks: Vec<PendingAck>) -> Result<(), tonic::Status> {
        if acks.is_empty() {
            return Ok(());
        }
        let signed = sign_all(&acks, &self.key);
        let evidence: Vec<String> = signed.iter().map(ack_evidence).collect();
        let sent = match self
            .hub
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
        let evidence = ack_evidence(&signed);
        match self
            .hub
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
        if response.state() == v1::MessageState::Expired {
            // The message expired at the hub before this acknowledgement came: there is no
            // acknowledgement entry to prove (its expiry is the sender's to see).
            tracing::info!(message_id = %a.message_id, sender = %a.sender, "acknowledged after the message expired at the hub");
            return (a.sender, a.message_id, evidence);
        }
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
        self.hub
            .check_log(
                response.log_proof.as_ref(),
                &expected,
                "acknowledgement answer",
            )
            .await;
        (a.sender, a.message_id, evidence)
    }
}
