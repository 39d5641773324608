//! The outbox worker: submits what waits in the outbox, a window at a time, each under its
//! own message id on every attempt, and keeps the hub's verified receipt or its refusal.
//!
//! Documents up to 32 KiB go together in `SubmitMany` requests (one request, and one share of
//! the hub's flushes, for many; one `Submit` each to a hub from before it); larger ones alone.
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
/// Documents up to this size are submitted together (`SubmitMany`).
const TOGETHER_UP_TO: u64 = 32 * 1024;

/// What the hub answered for one document.
enum Answer {
    Submitted(v1::SubmitResponse),
    /// Refused for good.
    Refused(Refusal),
    /// No answer (the hub unreachable or failing): tried again later.
    Failed(String),
}

impl From<Result<tonic::Response<v1::SubmitResponse>, tonic::Status>> for Answer {
    fn from(outcome: Result<tonic::Response<v1::SubmitResponse>, tonic::Status>) -> Self {
        match outcome {
            Ok(response) => Self::Submitted(response.into_inner()),
            Err(status) => match caravan_proto::status::from_status(&status) {
                Some(refusal) => Self::Refused(refusal),
                None => Self::Failed(format!("{}: {}", status.code(), status.message())),
            },
        }
    }
}

impl From<v1::SubmitResult> for Answer {
    fn from(result: v1::SubmitResult) -> Self {
        match result.result {
            Some(v1::submit_result::Result::Answer(answer)) => Self::Submitted(answer),
            Some(v1::submit_result::Result::Refused(r)) => match r.reason.parse() {
                Ok(code) => Self::Refused(Refusal::new(code, r.detail)),
                // A reason this spoke does not know (a newer hub's): not settled for good.
                Err(_) => Self::Failed(format!("refused {}: {}", r.reason, r.detail)),
            },
            None => Self::Failed("the hub answered nothing for the document".into()),
        }
    }
}

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
            let unreachable = self.submit_window(batch, &room).await;
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

    /// One attempt at each document of an outbox window; returns whether the hub was
    /// unreachable for any. Small documents go together in `SubmitMany` requests (one request
    /// and one share of the hub's flushes for many), the others one request each, their
    /// payloads in memory only once there is `room`.
    async fn submit_window(&self, window: Vec<Queued>, room: &Semaphore) -> bool {
        let records =
            futures::future::join_all(window.into_iter().map(|q| self.record_of(q))).await;
        let (together, alone): (Vec<_>, Vec<_>) = records
            .into_iter()
            .flatten()
            .partition(|(_, record)| record.payload_length <= TOGETHER_UP_TO);
        let alone = futures::future::join_all(
            alone
                .into_iter()
                .map(|(queued, record)| self.submit_alone(queued, record, room)),
        );
        let (alone, together) = futures::future::join(alone, self.submit_together(together)).await;
        alone.into_iter().any(|unreachable| unreachable) || together
    }

    /// The record of a queued document; `None` (logged) if it cannot be read.
    async fn record_of(&self, queued: Queued) -> Option<(Queued, SentRecord)> {
        let id = queued.message_id;
        let store = self.store.clone();
        match blocking(move || store.sent_entry(id)).await {
            Ok(Some(record)) => Some((queued, record)),
            Ok(None) => {
                error!(message_id = %id, "outbox entry without a record");
                None
            }
            Err(e) => {
                error!(message_id = %id, cause = %e, "cannot read the outbox entry");
                None
            }
        }
    }

    /// The envelope of a queued document with its payload; `None` (logged) if it cannot be
    /// read: it stays in the outbox, never sent with bad bytes.
    async fn envelope_of(&self, queued: &Queued) -> Option<v1::Envelope> {
        let id = queued.message_id;
        let (store, entry) = (self.store.clone(), queued.clone());
        let payload = match blocking(move || store.queued_payload(&entry)).await {
            Ok(payload) => payload,
            // The store logged it once.
            Err(StoreError::PayloadCorrupt { .. }) => return None,
            Err(e) => {
                error!(message_id = %id, cause = %e, "cannot read the outbox entry's payload");
                return None;
            }
        };
        let mut envelope = match v1::Envelope::decode(queued.envelope.as_slice()) {
            Ok(e) => e,
            Err(e) => {
                error!(message_id = %id, cause = %e, "outbox entry does not decode");
                return None;
            }
        };
        if let Some(payload) = payload {
            envelope.payload = payload;
        }
        Some(envelope)
    }

    /// One attempt at one document, alone, its payload in memory only once there is `room`;
    /// returns whether the hub was unreachable.
    async fn submit_alone(&self, queued: Queued, mut record: SentRecord, room: &Semaphore) -> bool {
        let Ok(_room) = room
            .acquire_many(self.room.permits(record.payload_length))
            .await
        else {
            return false;
        };
        let Some(envelope) = self.envelope_of(&queued).await else {
            return false;
        };
        record.attempts += 1;
        let answer = Answer::from(if envelope.payload.len() > STREAM_ABOVE {
            self.hub.client().submit_stream(chunked(envelope)).await
        } else {
            self.hub
                .client()
                .submit(v1::SubmitRequest {
                    envelope: Some(envelope),
                    proof_receipt: true,
                })
                .await
        });
        let (record, unreachable) = self.judge(record, answer).await;
        self.keep(vec![(queued, record)]).await;
        unreachable
    }

    /// One attempt at each of `documents` (small ones: a window of them holds at most
    /// `OUTBOX_WINDOW` times `TOGETHER_UP_TO` bytes, so they take no room), in `SubmitMany`
    /// requests of at most `STREAM_ABOVE` bytes of payload; to a hub from before
    /// `SubmitMany`, one request each. Returns whether the hub was unreachable for any.
    async fn submit_together(&self, documents: Vec<(Queued, SentRecord)>) -> bool {
        let mut ready = Vec::with_capacity(documents.len());
        for (queued, mut record) in documents {
            if let Some(envelope) = self.envelope_of(&queued).await {
                record.attempts += 1;
                ready.push((queued, record, envelope));
            }
        }
        let mut unreachable = false;
        while !ready.is_empty() {
            let mut bytes = 0;
            let take = ready
                .iter()
                .take_while(|(_, _, e)| {
                    bytes += e.payload.len();
                    bytes <= STREAM_ABOVE
                })
                .count()
                .max(1);
            let (queued, envelopes): (Vec<_>, Vec<_>) = ready
                .drain(..take)
                .map(|(queued, record, envelope)| ((queued, record), envelope))
                .unzip();
            let answers = self.submit_many(&queued, envelopes).await;
            let judged = futures::future::join_all(queued.into_iter().zip(answers).map(
                |((queued, record), answer)| async move {
                    let (record, unreachable) = self.judge(record, answer).await;
                    (queued, record, unreachable)
                },
            ))
            .await;
            unreachable |= judged.iter().any(|(_, _, u)| *u);
            self.keep(judged.into_iter().map(|(q, r, _)| (q, r)).collect())
                .await;
        }
        unreachable
    }

    /// The hub's answer for each of `documents` (whose envelopes are `envelopes`), in order:
    /// from one `SubmitMany`, or from one `Submit` each when the hub does not offer it. The
    /// request takes the envelopes; that rare second try reads them from the outbox again
    /// rather than every request keeping a copy.
    async fn submit_many(
        &self,
        documents: &[(Queued, SentRecord)],
        envelopes: Vec<v1::Envelope>,
    ) -> Vec<Answer> {
        let count = envelopes.len();
        let request = v1::SubmitManyRequest {
            envelopes,
            proof_receipt: true,
        };
        match self.hub.client().submit_many(request).await {
            Ok(response) => {
                let results = response.into_inner().results;
                if results.len() != count {
                    let failed = "the hub answered another number of documents than sent";
                    return (0..count).map(|_| Answer::Failed(failed.into())).collect();
                }
                results.into_iter().map(Answer::from).collect()
            }
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                futures::future::join_all(documents.iter().map(|(queued, _)| async {
                    // Unreadable now (logged): tried again with the next window.
                    let Some(envelope) = self.envelope_of(queued).await else {
                        return Answer::Failed("the outbox entry could not be read".into());
                    };
                    let mut client = self.hub.client();
                    Answer::from(
                        client
                            .submit(v1::SubmitRequest {
                                envelope: Some(envelope),
                                proof_receipt: true,
                            })
                            .await,
                    )
                }))
                .await
            }
            // A refusal of the request (the caller suspended, say) is every document's.
            Err(status) => (0..count)
                .map(|_| Answer::from(Err(status.clone())))
                .collect(),
        }
    }

    /// Judge the hub's answer for one document: the record with its verified receipt, its
    /// refusal for good, or another attempt noted; and whether the hub was unreachable (or its
    /// receipt no proof).
    async fn judge(&self, mut record: SentRecord, answer: Answer) -> (SentRecord, bool) {
        let id = record.message_id;
        let unreachable = match answer {
            Answer::Submitted(response) => match self.check_receipt(&record, &response).await {
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
            },
            Answer::Refused(refusal) => {
                warn!(message_id = %id, code = %refusal.code, detail = refusal.detail, "refused by the hub");
                record.lifecycle = Lifecycle::Refused { refusal };
                false
            }
            Answer::Failed(error) => {
                record.last_error = Some(error);
                true
            }
        };
        (record, unreachable)
    }

    /// Keep the judged answers of one request in one batch of the store: those settled leave
    /// the outbox with their receipt or refusal, made durable by one flush for them all; the
    /// others keep their attempt noted. A batch that fails keeps none of it: those documents
    /// stay queued, and their resend is answered with the original receipt.
    async fn keep(&self, judged: Vec<(Queued, SentRecord)>) {
        let store = self.store.clone();
        let count = judged.len();
        let settled = judged.iter().any(|(_, r)| !r.lifecycle.is_queued());
        let saved = blocking(move || {
            store.batch(|| {
                for (queued, record) in &judged {
                    if record.lifecycle.is_queued() {
                        store.note_attempt(
                            record.message_id,
                            record.attempts,
                            record.last_error.clone(),
                        )?;
                    } else {
                        store.settle(queued, record)?;
                    }
                }
                Ok(())
            })?;
            if settled { store.flush() } else { Ok(()) }
        })
        .await;
        match saved {
            Ok(()) => {}
            // Logged once when the store faulted; the outbox waits for it to recover.
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => error!(documents = count, cause = %e, "cannot update the outbox"),
        }
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
