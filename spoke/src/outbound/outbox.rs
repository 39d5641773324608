//! The outbox worker: submits what waits in the outbox, a window at a time, each under its
//! own message id on every attempt, and keeps the hub's verified receipt or its refusal.
//!
//! Submissions ask for protocol v2's receipt, the log proof of the message's ACCEPTED entry
//! (`proof_receipt`); a hub that answers with a signed receipt instead (v1) is understood too.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use caravan_common::{Refusal, RefusalCode, envelope::Receipt};
use caravan_proto::{receipt, v1};

use crate::{
    rt::{Backoff, Shutdown, blocking, store_writable},
    store::{HubState, Lifecycle, Queued, ReceiptInfo, SentRecord, StoreError},
};

use super::Outbound;

/// Documents submitted from the outbox at a time.
const OUTBOX_WINDOW: usize = 32;
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
        proof_receipt: true,
    };
    let count = payload.len().div_ceil(STREAM_ABOVE);
    let body = (0..count).map(move |i| {
        let end = ((i + 1) * STREAM_ABOVE).min(payload.len());
        v1::SubmitChunk {
            envelope: None,
            data: payload[i * STREAM_ABOVE..end].to_vec(),
            proof_receipt: false,
        }
    });
    futures::stream::iter(std::iter::once(head).chain(body))
}

impl Outbound {
    /// Submit what waits in the outbox until `shutdown`: in order, a window at a time, each
    /// under its own message id on every attempt (the hub answers a resend with the original
    /// receipt). A refusal settles a document for good; an unreachable hub is retried with
    /// backoff.
    pub async fn drain_outbox(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        let room = Semaphore::new(self.room.kib);
        loop {
            // Nothing is submitted while the receipt could not be kept.
            if !store_writable(&self.store, &mut shutdown).await {
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
            self.hub.client().submit_stream(chunked(envelope)).await
        } else {
            self.hub
                .client()
                .submit(v1::SubmitRequest {
                    envelope: Some(envelope),
                    proof_receipt: true,
                })
                .await
        };
        let unreachable = match outcome {
            Ok(response) => {
                let response = response.into_inner();
                match self.check_receipt(&record, &response).await {
                    Ok(receipt) => {
                        info!(message_id = %id, hub_sequence = receipt.hub_sequence, duplicate = response.duplicate, "accepted by the hub");
                        record.lifecycle = Lifecycle::AtHub {
                            state: HubState::Accepted,
                            receipt: Some(receipt),
                        };
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
                    record.lifecycle = Lifecycle::Refused { refusal };
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
            if record.lifecycle.is_queued() {
                store.note_attempt(record.message_id, record.attempts, record.last_error)
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

    /// Verify the hub's receipt for `record`, in either form: the log proof of its ACCEPTED
    /// entry (protocol v2; a proof that fails or proves another message is also an alarm about
    /// the hub's log), or a signed receipt (v1), whose log proof is then checked beside it.
    async fn check_receipt(
        &self,
        record: &SentRecord,
        response: &v1::SubmitResponse,
    ) -> Result<ReceiptInfo, Refusal> {
        let held = self.hub.trust_set()?;
        let expected = self.expected(v1::LogEntryKind::Accepted, record, None);
        let of_this = |receipt: Receipt| {
            if receipt.message_id != record.message_id
                || receipt.sender != self.me
                || receipt.recipient != record.recipient
                || Some(receipt.header_sha256) != expected.header_sha256
            {
                return Err(Refusal::new(
                    RefusalCode::BadReceipt,
                    "the hub's receipt is for another message",
                ));
            }
            Ok(receipt)
        };
        let (receipt, signed, log_proof) = match (&response.receipt, &response.log_proof) {
            (Some(signed), proof) => {
                let receipt = of_this(receipt::verify(signed, &held.set)?)?;
                self.hub
                    .check_log(proof.as_ref(), &expected, "receipt")
                    .await;
                (receipt, BASE64.encode(signed.encode_to_vec()), None)
            }
            (None, Some(proof)) => {
                match self.hub.log().receipt(proof, &held.set).and_then(of_this) {
                    Ok(receipt) => (
                        receipt,
                        String::new(),
                        Some(BASE64.encode(proof.encode_to_vec())),
                    ),
                    Err(refusal) => {
                        let alarm = Refusal::new(RefusalCode::BadLogProof, refusal.detail.clone());
                        self.hub.log().alarm_about(alarm, record.message_id).await;
                        return Err(refusal);
                    }
                }
            }
            (None, None) => {
                return Err(Refusal::new(
                    RefusalCode::BadReceipt,
                    "the hub answered without a receipt",
                ));
            }
        };
        Ok(ReceiptInfo {
            hub_sequence: receipt.hub_sequence,
            accepted_at: receipt.accepted_at,
            key_id: receipt.key_id.to_string(),
            signed,
            log_proof,
        })
    }
}
