//! Submit and SubmitStream: a signed envelope judged (key, signature, header, its creation
//! time, payload, recipient, corridor) before anything is stored, then accepted durably in one
//! transaction and answered with its log proof and, for a protocol v1 caller, the hub-signed
//! receipt. A v2 caller (`proof_receipt`) takes the log proof as the receipt, so the hub signs
//! nothing per message: the tree head's one signature covers every message of a flush.

use prost::Message;
use tonic::Status;
use tracing::info;

use caravan_common::{
    ParticipantId, RefusalCode, Timestamp,
    envelope::{Header, Receipt},
};
use caravan_proto::{envelope, receipt, v1};

use super::{call::Rpc, state::Exchange};
use crate::{
    error::HubError,
    metrics::{Corridor, Event},
    store::{Acceptance, Incoming, StoreError},
};

impl Exchange {
    pub(crate) async fn submit(
        &self,
        caller: ParticipantId,
        request: v1::SubmitRequest,
    ) -> Result<v1::SubmitResponse, HubError> {
        let started = std::time::Instant::now();
        let proof_receipt = request.proof_receipt;
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
        self.check_created_at(header, accepted_at).await?;
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
            .accept_durable(incoming, move |sequence| {
                // A v2 sender's message is stored without a signed receipt; one is signed when a
                // v1 caller asks for it (a resend, a delivery, a status).
                if proof_receipt {
                    return Vec::new();
                }
                let r = Receipt {
                    hub_sequence: sequence,
                    ..receipt_template.clone()
                };
                receipt::issue(&r, &key).encode_to_vec()
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
                // The recipient's stream only: an acceptance adds nothing to the sender's
                // status stream (the answer carries it).
                self.queues.notify(header.recipient, sequence);
                info!(message_id = %header.message_id, sender = %header.sender,
                    recipient = %header.recipient, document_type = %header.document_type,
                    sequence, "accepted");
                (receipt, false, self.prove(&head, log_index).await?)
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
                (receipt, true, self.prove(&head, log_index).await?)
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
        let receipt = match (&log_proof, proof_receipt) {
            (Some(_), true) => None,
            _ if !receipt.is_empty() => {
                Some(v1::SignedReceipt::decode(receipt.as_slice()).map_err(|e| {
                    StoreError::Corrupt {
                        what: "receipt",
                        detail: e.to_string(),
                    }
                })?)
            }
            // Stored without one (its first submission took a log proof), asked for by a v1
            // resend: signed now from the ACCEPTED entry, which says what it would have said.
            (Some(proof), false) => Some(self.sign_receipt_of(&proof.entry)?),
            (None, _) => {
                return Err(StoreError::Corrupt {
                    what: "receipt",
                    detail: format!(
                        "message {} has neither a signed receipt nor a log entry",
                        header.message_id
                    ),
                }
                .into());
            }
        };
        Ok(v1::SubmitResponse {
            receipt,
            duplicate,
            log_proof,
        })
    }

    /// Several documents in one request: each judged and accepted as `Submit` would, all at
    /// once, so that the writer commits them together and one flush makes them durable; one
    /// result each, in order. A refusal is that document's result; any other failure (the
    /// store) fails the request, and the caller sends them all again.
    pub(crate) async fn submit_many(
        &self,
        caller: ParticipantId,
        request: v1::SubmitManyRequest,
    ) -> Result<v1::SubmitManyResponse, HubError> {
        Self::within_batch_limit(request.envelopes.len(), "documents")?;
        let proof_receipt = request.proof_receipt;
        let answers = futures::future::join_all(request.envelopes.into_iter().map(|envelope| {
            self.submit(
                caller,
                v1::SubmitRequest {
                    envelope: Some(envelope),
                    proof_receipt,
                },
            )
        }))
        .await;
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            let result =
                match answer {
                    Ok(answer) => v1::submit_result::Result::Answer(answer),
                    Err(HubError::Refused(r)) => v1::submit_result::Result::Refused(
                        self.refused_item(Rpc::SubmitMany, caller, r),
                    ),
                    Err(e) => return Err(e),
                };
            results.push(v1::SubmitResult {
                result: Some(result),
            });
        }
        Ok(v1::SubmitManyResponse { results })
    }

    /// Refuse a header created further ahead of the hub's clock than the allowed skew, or
    /// longer ago than its document type's lifetime (`CREATED_AT_FUTURE`,
    /// `CREATED_AT_EXPIRED`). A message the hub holds already passes: its resend is answered
    /// with the original receipt (or refused as a reused id) whatever the time now.
    async fn check_created_at(&self, header: &Header, now: Timestamp) -> Result<(), HubError> {
        let Err(refusal) = self.created_at.check(header, now) else {
            return Ok(());
        };
        let (sender, id) = (header.sender, header.message_id);
        if self.store.read(move |b| b.holds(sender, id)).await? {
            return Ok(());
        }
        Err(HubError::Refused(refusal))
    }

    /// A submission in chunks: the signed header is judged first, and a document the header
    /// says is too large is refused before its payload is read.
    pub(super) async fn submit_chunks(
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
        self.check_created_at(&opened.header, Timestamp::now())
            .await?;
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
            self.metrics.busy.inc();
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
                proof_receipt: first.proof_receipt,
            },
        )
        .await
    }
}
