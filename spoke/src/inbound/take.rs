//! Taking a delivery in: verify it, judge it once (a redelivery gets the recorded decision),
//! store what is new in one batch of the store and flush it before any acknowledgement.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message;
use tracing::{debug, info, warn};

use caravan_common::{
    MessageId, ParticipantId, Timestamp,
    envelope::{Ack, AckOutcome, Header},
    signing::sha256,
    trust::TrustSet,
};
use caravan_proto::{receipt, v1};

use crate::{
    checks, document,
    rt::blocking,
    store::{
        AnswerRecord, Evidence, InboxRecord, Note, RESPONSE_CONTENT_TYPE, ResponseBody, StoreError,
        Verification,
    },
};

use super::{Inbound, acknowledge::PendingAck, verify::verify_delivery};

/// What a batch of deliveries brought: new documents to store (each with its payload and,
/// for a business response, the document it answers), and acknowledgements to send once they
/// are durable.
#[derive(Default)]
pub(super) struct Taken {
    store: Vec<NewDocument>,
    pub(super) acks: Vec<PendingAck>,
    /// A document was left unjudged because the list held (this version) is likely behind
    /// the hub's: see [`Inbound::behind_hub`].
    pub(super) behind: Option<u64>,
}

/// A document received for the first time, to keep in the inbox.
struct NewDocument {
    record: InboxRecord,
    payload: Vec<u8>,
    /// For a business response: the document it answers, and the answer.
    answers: Option<(MessageId, AnswerRecord)>,
}

impl Inbound {
    /// Whether to leave a delivery unjudged for now: its signing key is unknown to the list
    /// held, or not yet valid in it, but the hub accepted the document after that list was
    /// issued, so the list is likely behind the hub's (a key registered a moment ago, its new
    /// list still on its way). Refusing it would reject a genuine document; it is judged once
    /// a newer list is held, or, if none comes, on its next delivery (once per list version:
    /// never put off for good). The version of the list held, when left.
    fn behind_hub(
        &self,
        set: &TrustSet,
        verdict: &Result<
            (caravan_proto::envelope::Opened, Vec<crate::store::Note>),
            caravan_common::Refusal,
        >,
        receipt: &Result<caravan_common::envelope::Receipt, caravan_common::Refusal>,
    ) -> Option<u64> {
        use caravan_common::RefusalCode::{KeyNotYetValid, UnknownKey};
        let Err(refusal) = verdict else { return None };
        let receipt = receipt.as_ref().ok()?;
        if !matches!(refusal.code, UnknownKey | KeyNotYetValid)
            || receipt.accepted_at <= set.info.issued_at?
        {
            return None;
        }
        let version = set.info.version;
        let key = (receipt.sender, receipt.message_id);
        let mut left = self
            .left_for_newer_list
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if left.get(&key) == Some(&version) {
            return None;
        }
        // A bound, against a hub that keeps sending such documents: forgetting one only
        // means it is put off once more.
        if left.len() >= 1024 {
            left.clear();
        }
        left.insert(key, version);
        info!(
            message_id = %receipt.message_id,
            sender = %receipt.sender,
            code = %refusal.code,
            list_version = version,
            "the hub accepted this document after the trust list held was issued: waiting for a newer list before judging it"
        );
        Some(version)
    }

    /// Verify one delivery and judge it: what to store (a new document) goes into
    /// `taken.store`, and the acknowledgement to send (if the message can be named at all) into
    /// `taken.acks`.
    pub(super) fn take(&self, delivery: v1::Delivery, taken: &mut Taken) -> Result<(), StoreError> {
        let received_at = Timestamp::now();
        let batched = delivery.batch_ack;
        let Some(env) = delivery.envelope else {
            warn!(
                cursor = delivery.cursor,
                "delivery without an envelope; ignored"
            );
            return Ok(());
        };
        let Some(held) = self.hub.trust().current() else {
            warn!(
                cursor = delivery.cursor,
                "delivery before any trust list; left for redelivery"
            );
            return Ok(());
        };
        // The hub's receipt in either form: a log proof (protocol v2) or a signed receipt.
        let (receipt, receipt_evidence, accepted_proof) =
            match (delivery.receipt, delivery.accepted_proof) {
                (None, Some(proof)) => (
                    self.hub.log().receipt(&proof, &held.set),
                    String::new(),
                    Some(BASE64.encode(proof.encode_to_vec())),
                ),
                (signed, _) => {
                    let signed = signed.unwrap_or_default();
                    (
                        receipt::verify(&signed, &held.set),
                        BASE64.encode(signed.encode_to_vec()),
                        None,
                    )
                }
            };
        let verdict = verify_delivery(&held.set, self.me, &env, receipt.as_ref(), Timestamp::now());
        if let Some(version) = self.behind_hub(&held.set, &verdict, &receipt) {
            taken.behind = Some(version);
            return Ok(());
        }
        // Name the message: from the verified header, else the verified receipt, else (to be
        // able to answer at all) the header's unverified claims.
        let named = match (&verdict, &receipt) {
            (Ok((opened, _)), _) => Some((opened.header.sender, opened.header.message_id)),
            (Err(_), Ok(r)) => Some((r.sender, r.message_id)),
            _ => v1::Header::decode(env.header.as_slice())
                .ok()
                .and_then(|h| Some((h.sender.parse().ok()?, h.message_id.parse().ok()?))),
        };
        let Some((sender, message_id)) = named else {
            warn!(
                cursor = delivery.cursor,
                "delivery names no message; cannot acknowledge it"
            );
            return Ok(());
        };
        let header_sha256 = sha256(&env.header);
        let existing = self.store.inbox_entry(sender, message_id)?;
        let verification = match existing {
            Some(record) => {
                debug!(%message_id, %sender, "redelivered; answering with the recorded decision");
                record.verification
            }
            None => {
                // What the document says, judged as a sending spoke judges it, read only once
                // it verified: never parse what is not genuine. Business responses are not
                // trade documents.
                let reading = verdict
                    .as_ref()
                    .ok()
                    .map(|(o, _)| &o.header)
                    .filter(|h| h.content_type != RESPONSE_CONTENT_TYPE)
                    .map(|h| document::judge(&env.payload, h.document_type, Some(&h.content_type)));
                let verification = match &verdict {
                    Ok((_, notes)) => {
                        let mut notes = notes.clone();
                        // The signature verdict stands; what the content lacks is said beside it.
                        if let Some(Err(problems)) = &reading {
                            notes.push(content_note(problems));
                        }
                        Verification::Verified { notes }
                    }
                    Err(r) => Verification::Rejected {
                        code: r.code,
                        reason: r.detail.clone(),
                    },
                };
                let header = verdict.as_ref().ok().map(|(o, _)| &o.header);
                // What the document says, judged against its signer, header, the clock and the
                // inbox: only for a verified document that was understood.
                let checks = match (header, &reading) {
                    (Some(h), Some(Ok(content))) => {
                        self.content_checks(&held.set, h, content, &taken.store)?
                    }
                    _ => Vec::new(),
                };
                // Its replacement may have come first: recorded whether or not its content was
                // checked (the `replaced` line, when checked, says the same).
                let replacement = match header {
                    Some(h) => self.replacement_of(h.sender, h.message_id, &taken.store)?,
                    None => None,
                };
                let receipt = receipt.as_ref().ok();
                // A verified business response about one of our documents: read its decision.
                let response = header
                    .filter(|h| h.content_type == RESPONSE_CONTENT_TYPE)
                    .and_then(|_| serde_json::from_slice::<ResponseBody>(&env.payload).ok());
                let answered = header.and_then(|h| h.in_reply_to).zip(response.clone());
                let record = InboxRecord {
                    message_id,
                    sender,
                    document_type: header.map(|h| h.document_type),
                    document_id: header.map(|h| h.document_id.clone()),
                    content_type: header.map(|h| h.content_type.clone()),
                    supersedes: header.and_then(|h| h.supersedes),
                    in_reply_to: header.and_then(|h| h.in_reply_to),
                    response: response.clone(),
                    summary: reading
                        .as_ref()
                        .and_then(|r| r.as_ref().ok())
                        .map(document::Content::summary),
                    created_at: header.map(|h| h.created_at),
                    key_id: header.map(|h| h.key_id.to_string()),
                    payload_length: env.payload.len() as u64,
                    // Verified: the signed header's digest is the payload's (it was checked).
                    payload_sha256: hex::encode(
                        header.map_or_else(|| sha256(&env.payload), |h| h.payload_sha256),
                    ),
                    hub_sequence: receipt.map(|r| r.hub_sequence),
                    accepted_at: receipt.map(|r| r.accepted_at),
                    received_at,
                    verification: verification.clone(),
                    evidence: Evidence {
                        header: BASE64.encode(&env.header),
                        signature: env
                            .signature
                            .as_ref()
                            .map(|s| BASE64.encode(&s.signature))
                            .unwrap_or_default(),
                        signature_key_id: env
                            .signature
                            .as_ref()
                            .map(|s| s.key_id.clone())
                            .unwrap_or_default(),
                        receipt: receipt_evidence,
                        accepted_proof,
                        ack: None,
                    },
                    checks,
                    replacement,
                };
                match &verification {
                    Verification::Verified { notes } => {
                        let notes: Vec<&str> = notes.iter().map(|n| n.code.as_str()).collect();
                        let checks: Vec<&str> = record
                            .checks
                            .iter()
                            .filter(|c| c.outcome != checks::Outcome::Pass)
                            .map(|c| c.rule.as_str())
                            .collect();
                        info!(%message_id, %sender, ?notes, ?checks, "received and verified")
                    }
                    Verification::Rejected { code, reason } => {
                        warn!(%message_id, %sender, %code, reason, "received document failed verification")
                    }
                }
                let answered = answered.map(|(original, body)| {
                    (
                        original,
                        AnswerRecord {
                            message_id,
                            decision: body.decision,
                            reason: body.reason,
                            received_at,
                        },
                    )
                });
                taken.store.push(NewDocument {
                    record,
                    payload: env.payload,
                    answers: answered,
                });
                verification
            }
        };
        let outcome = match verification {
            Verification::Verified { .. } => AckOutcome::Accepted,
            Verification::Rejected { code, reason } => AckOutcome::Rejected {
                code: code.into(),
                reason,
            },
        };
        taken.acks.push(PendingAck {
            ack: Ack {
                message_id,
                sender,
                recipient: self.me,
                header_sha256,
                outcome,
                acknowledged_at: Timestamp::now(),
                key_id: self.key.key_id(),
            },
            batched,
        });
        Ok(())
    }

    /// Store what a batch of deliveries brought, in one batch of the store, and make it
    /// durable: the inbox is durable before any acknowledgement leaves.
    pub(super) async fn keep(&self, taken: &mut Taken) -> Result<(), StoreError> {
        let store = self.store.clone();
        let kept = std::mem::take(&mut taken.store);
        let linked = blocking(move || {
            let mut linked = Vec::new();
            store.batch(|| {
                for new in &kept {
                    store.inbox_insert(&new.record, &new.payload)?;
                    // A verified replacement marks the document it replaces.
                    if let Some(original) = new.record.supersedes {
                        store.inbox_mark_replaced(
                            original,
                            new.record.sender,
                            new.record.message_id,
                        )?;
                    }
                    if let Some((original, answer)) = &new.answers
                        && store.link_response(*original, new.record.sender, answer.clone())?
                    {
                        linked.push((new.record.message_id, *original));
                    }
                }
                Ok(())
            })?;
            store.flush()?;
            Ok(linked)
        })
        .await?;
        for (message_id, original) in linked {
            info!(%message_id, %original, "business response linked to the document it answers");
        }
        Ok(())
    }
}

/// The document from `sender` in this batch that replaces `id` (not in the inbox yet).
fn replaced_in_batch(
    batch: &[NewDocument],
    sender: ParticipantId,
    id: MessageId,
) -> Option<MessageId> {
    batch
        .iter()
        .find(|d| d.record.sender == sender && d.record.supersedes == Some(id))
        .map(|d| d.record.message_id)
}

impl Inbound {
    /// The document from `sender` that replaces `id`, if it came first: in the inbox or
    /// earlier in this batch.
    fn replacement_of(
        &self,
        sender: ParticipantId,
        id: MessageId,
        batch: &[NewDocument],
    ) -> Result<Option<MessageId>, StoreError> {
        Ok(self
            .store
            .inbox_replacement_of(sender, id)?
            .or_else(|| replaced_in_batch(batch, sender, id)))
    }

    /// The content checks of a verified, understood document from `h.sender`: against the
    /// registry's word on sender and recipient, this spoke's clock and limits, and the
    /// documents with the same number in the inbox or earlier in this batch.
    fn content_checks(
        &self,
        trust: &TrustSet,
        h: &Header,
        content: &document::Content,
        batch: &[NewDocument],
    ) -> Result<Vec<checks::Check>, StoreError> {
        let mut earlier: Vec<InboxRecord> = match content.document_number.as_deref() {
            Some(number) => self.store.inbox_same_number(h.sender, number)?,
            None => Vec::new(),
        };
        earlier.extend(
            batch
                .iter()
                .filter(|d| {
                    d.record.sender == h.sender
                        && d.record.number().is_some()
                        && d.record.number() == content.document_number.as_deref()
                })
                .map(|d| d.record.clone()),
        );
        let known = checks::Known {
            earlier: earlier
                .iter()
                .map(|r| checks::Earlier {
                    message_id: r.message_id,
                    replaced_by: r
                        .replaced_by()
                        .or_else(|| replaced_in_batch(batch, h.sender, r.message_id)),
                })
                .collect(),
            replaced_by: self.replacement_of(h.sender, h.message_id, batch)?,
        };
        Ok(checks::run(&checks::Facts {
            content,
            header: &checks::HeaderClaims::from(h),
            sender: &checks::Registered::of(trust, h.sender),
            recipient: &checks::Registered::of(trust, h.recipient),
            now: Timestamp::now(),
            rules: &self.check_rules,
            known: Some(&known),
        }))
    }
}

/// The note a verified document gets when its content is not what a sending spoke accepts:
/// every problem, by field and rule.
fn content_note(problems: &[document::Problem]) -> Note {
    let detail: Vec<String> = problems
        .iter()
        .map(|p| format!("{} ({}): {}", p.field, p.rule, p.message))
        .collect();
    Note::new(
        CONTENT_NOT_UNDERSTOOD,
        format!(
            "the signature verified, but the content is not a document this network accepts: {}",
            detail.join("; ")
        ),
    )
}

/// The note's code: the content is not understood as its declared document type.
pub const CONTENT_NOT_UNDERSTOOD: &str = "CONTENT_NOT_UNDERSTOOD";
