//! The recipient's signed acknowledgement: proof that it verified and stored a message, or
//! the reason it refused it. Signed alone (protocol v1), or in a batch: one signature over the
//! Merkle root of the batch's bodies, each acknowledgement carrying its path (protocol v2,
//! for messages whose senders judge that form), so that a batch costs its recipient one
//! signature and each verifier one check.

use caravan_common::{
    Refusal, RefusalCode, RejectCode, Timestamp,
    envelope::{Ack, AckOutcome},
    merkle,
    signing::{Purpose, SigningKey, sha256},
    trust::TrustSet,
};
use prost::Message;

use crate::{digest32, signature_of, signature_parts, v1};

/// The encoded `AckBody` of `ack`.
fn body_of(ack: &Ack) -> Vec<u8> {
    let (outcome, reason_code, reason) = match &ack.outcome {
        AckOutcome::Accepted => (v1::AckOutcome::Accepted, String::new(), String::new()),
        AckOutcome::Rejected { code, reason } => {
            (v1::AckOutcome::Rejected, code.to_string(), reason.clone())
        }
    };
    v1::AckBody {
        message_id: ack.message_id.to_string(),
        sender: ack.sender.to_string(),
        recipient: ack.recipient.to_string(),
        header_sha256: ack.header_sha256.to_vec(),
        outcome: outcome as i32,
        reason_code,
        reason,
        acknowledged_at_ms: ack.acknowledged_at.as_millis(),
        key_id: ack.key_id.to_string(),
    }
    .encode_to_vec()
}

/// Encode and sign `ack` with the recipient's key (whose id must be `ack.key_id`).
pub fn sign(ack: &Ack, key: &SigningKey) -> v1::SignedAck {
    let body = body_of(ack);
    let signature = key.sign(Purpose::Ack, &body);
    v1::SignedAck {
        body,
        signature: Some(signature_of(key.key_id(), signature)),
        batch: None,
    }
}

/// Sign `acks` together (protocol v2): one signature over the Merkle root of their bodies,
/// each acknowledgement carrying its path to that root. Only for messages whose senders judge
/// this form (`Delivery.batch_ack`). One acknowledgement alone is signed as [`sign`] does.
pub fn sign_batch(acks: &[Ack], key: &SigningKey) -> Vec<v1::SignedAck> {
    if acks.len() == 1 {
        return vec![sign(&acks[0], key)];
    }
    let bodies: Vec<Vec<u8>> = acks.iter().map(body_of).collect();
    let leaves: Vec<merkle::Hash> = bodies.iter().map(|b| merkle::leaf_hash(b)).collect();
    let batch = v1::AckBatch {
        root_hash: merkle::root(&leaves).to_vec(),
        size: leaves.len() as u64,
    }
    .encode_to_vec();
    let signature = signature_of(key.key_id(), key.sign(Purpose::AckBatch, &batch));
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| v1::SignedAck {
            body,
            signature: None,
            batch: Some(v1::AckBatchProof {
                batch: batch.clone(),
                signature: Some(signature.clone()),
                leaf_index: i as u64,
                audit_path: merkle::inclusion_proof(i, &leaves)
                    .iter()
                    .map(|h| h.to_vec())
                    .collect(),
            }),
        })
        .collect()
}

/// Batch signatures already verified, so that the acknowledgements of one batch cost one
/// signature check: by the digest of key id, batch and signature. The key's registration and
/// validity, and each acknowledgement's path, are still checked every time. Bounded (it
/// starts over when full).
#[derive(Debug, Default)]
pub struct VerifiedBatches(std::collections::HashSet<[u8; 32]>);

/// Batch signatures remembered, at most.
const VERIFIED_BATCHES: usize = 4096;

/// Verify an acknowledgement: signed by a key of its recipient valid at `at` (alone, or in a
/// batch whose root it signed), then decoded.
pub fn verify(signed: &v1::SignedAck, trust: &TrustSet, at: Timestamp) -> Result<Ack, Refusal> {
    verify_with(signed, trust, at, &mut VerifiedBatches::default())
}

/// [`verify`], a batch signature checked once while it is in `batches`.
pub fn verify_with(
    signed: &v1::SignedAck,
    trust: &TrustSet,
    at: Timestamp,
    batches: &mut VerifiedBatches,
) -> Result<Ack, Refusal> {
    let invalid = |detail: String| Refusal::new(RefusalCode::InvalidAck, detail);
    let bad_signature = |detail: String| Refusal::new(RefusalCode::BadSignature, detail);
    // Signed alone, or in a batch (`batch` in place of `signature`): the same key rules.
    let batch = signed.batch.as_ref().filter(|_| signed.signature.is_none());
    let (key_id, signature) = match batch {
        Some(proof) => signature_parts(proof.signature.as_ref(), "acknowledgement batch")?,
        None => signature_parts(signed.signature.as_ref(), "acknowledgement")?,
    };
    let owner = trust.registered_key(key_id)?.participant;
    let key = trust.signer_key(key_id, owner, at)?;
    match batch {
        Some(proof) => {
            let mut signed_bytes = key_id.to_string().into_bytes();
            signed_bytes.extend_from_slice(&proof.batch);
            signed_bytes.extend_from_slice(signature);
            let digest = sha256(&signed_bytes);
            if !batches.0.contains(&digest) {
                key.public_key
                    .verify(Purpose::AckBatch, &proof.batch, signature)
                    .map_err(|_| {
                        bad_signature(format!(
                            "acknowledgement batch signature does not verify with key {key_id}"
                        ))
                    })?;
                if batches.0.len() >= VERIFIED_BATCHES {
                    batches.0.clear();
                }
                batches.0.insert(digest);
            }
            let batch = v1::AckBatch::decode(proof.batch.as_slice())
                .map_err(|e| invalid(format!("acknowledgement batch does not decode: {e}")))?;
            let root = digest32(&batch.root_hash)
                .ok_or_else(|| invalid("acknowledgement batch root is not 32 bytes".into()))?;
            let path = proof
                .audit_path
                .iter()
                .map(|h| digest32(h))
                .collect::<Option<Vec<merkle::Hash>>>()
                .ok_or_else(|| invalid("acknowledgement batch path hash is not 32 bytes".into()))?;
            let leaf = merkle::leaf_hash(&signed.body);
            if !merkle::verify_inclusion(proof.leaf_index, batch.size, &leaf, &path, &root) {
                return Err(bad_signature(format!(
                    "acknowledgement is not leaf {} of the batch of {} its recipient signed with key {key_id}",
                    proof.leaf_index, batch.size
                )));
            }
        }
        None => key
            .public_key
            .verify(Purpose::Ack, &signed.body, signature)
            .map_err(|_| {
                bad_signature(format!(
                    "acknowledgement signature does not verify with key {key_id}"
                ))
            })?,
    }
    let body = v1::AckBody::decode(signed.body.as_slice())
        .map_err(|e| invalid(format!("acknowledgement does not decode: {e}")))?;
    let field = |name: &'static str| {
        move |e: caravan_common::ids::IdError| invalid(format!("acknowledgement {name}: {e}"))
    };
    let outcome = match v1::AckOutcome::try_from(body.outcome) {
        Ok(v1::AckOutcome::Accepted) => AckOutcome::Accepted,
        Ok(v1::AckOutcome::Rejected) => AckOutcome::Rejected {
            code: body
                .reason_code
                .parse()
                .map_err(|c| invalid(format!("reason code {c:?} is not {}", RejectCode::RULE)))?,
            reason: body.reason,
        },
        _ => {
            return Err(invalid(format!(
                "outcome {} is neither accepted nor rejected",
                body.outcome
            )));
        }
    };
    let ack = Ack {
        message_id: body.message_id.parse().map_err(field("message_id"))?,
        sender: body.sender.parse().map_err(field("sender"))?,
        recipient: body.recipient.parse().map_err(field("recipient"))?,
        header_sha256: digest32(&body.header_sha256)
            .ok_or_else(|| invalid("acknowledgement header_sha256 is not 32 bytes".into()))?,
        outcome,
        acknowledged_at: Timestamp::from_millis(body.acknowledged_at_ms),
        key_id: body.key_id.parse().map_err(field("key_id"))?,
    };
    if ack.key_id != key_id {
        return Err(invalid(format!(
            "body names key {}, signature key {key_id}",
            ack.key_id
        )));
    }
    if ack.recipient != owner {
        return Err(Refusal::new(
            RefusalCode::SenderMismatch,
            format!(
                "acknowledgement from {} signed with key {key_id} of {owner}",
                ack.recipient
            ),
        ));
    }
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use caravan_common::{
        DocumentType, MessageId,
        trust::{Participant, ParticipantStatus, SigningKeyEntry},
    };

    use super::*;

    /// A trust list with CN's key `cn`.
    fn trust_with(cn: &SigningKey) -> TrustSet {
        TrustSet::new(
            Default::default(),
            [Participant {
                id: "CN".parse().unwrap(),
                name: "China".into(),
                contact: String::new(),
                status: ParticipantStatus::Active,
                country: None,
                issuing_authorities: Vec::new(),
                stage: caravan_common::trust::ParticipantStage::Production,
            }],
            [SigningKeyEntry {
                participant: "CN".parse().unwrap(),
                public_key: cn.public().clone(),
                document_types: vec![DocumentType::Invoice],
                not_before: None,
                not_after: None,
                revoked: None,
            }],
            [],
            [],
        )
        .unwrap()
    }

    fn ack_of(cn: &SigningKey) -> Ack {
        Ack {
            message_id: MessageId::generate(),
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            header_sha256: [1; 32],
            outcome: AckOutcome::Rejected {
                code: RefusalCode::BadSignature.into(),
                reason: "no".into(),
            },
            acknowledged_at: Timestamp::from_millis(Timestamp::now().as_millis()),
            key_id: cn.key_id(),
        }
    }

    #[test]
    fn acks_verify_and_name_their_signer() {
        let cn = SigningKey::generate();
        let trust = trust_with(&cn);
        let ack = ack_of(&cn);
        let signed = sign(&ack, &cn);
        assert_eq!(verify(&signed, &trust, Timestamp::now()).unwrap(), ack);

        let mut claims_other = ack.clone();
        claims_other.recipient = "UZ".parse().unwrap();
        let signed = sign(&claims_other, &cn);
        assert_eq!(
            verify(&signed, &trust, Timestamp::now()).unwrap_err().code,
            RefusalCode::SenderMismatch
        );

        // A business reason of the recipient's own, namespaced, travels and verifies; a code
        // that is neither Caravan's nor namespaced is refused, saying what is allowed.
        let mut business = ack.clone();
        business.outcome = AckOutcome::Rejected {
            code: "cn.customs:QUOTA_EXCEEDED".parse().unwrap(),
            reason: "the import quota for HS 0808 is exhausted".into(),
        };
        let signed = sign(&business, &cn);
        assert_eq!(verify(&signed, &trust, Timestamp::now()).unwrap(), business);
        let mut body = v1::AckBody::decode(signed.body.as_slice()).unwrap();
        body.reason_code = "BUSINESS_RULE".into();
        let body = body.encode_to_vec();
        let unknown = v1::SignedAck {
            signature: Some(signature_of(cn.key_id(), cn.sign(Purpose::Ack, &body))),
            body,
            batch: None,
        };
        let refused = verify(&unknown, &trust, Timestamp::now()).unwrap_err();
        assert_eq!(refused.code, RefusalCode::InvalidAck);
        assert!(
            refused.detail.contains("\"BUSINESS_RULE\" is not one of Caravan's refusal codes, or a business code `namespace:CODE`"),
            "{refused}"
        );

        let mut tampered = sign(&ack, &cn);
        tampered.body[5] ^= 1;
        assert_eq!(
            verify(&tampered, &trust, Timestamp::now())
                .unwrap_err()
                .code,
            RefusalCode::BadSignature
        );
    }

    /// A batch's acknowledgements verify, each with one signature check for the batch; an
    /// edited body, a path to another leaf, a forged batch signature, and a batch signed by a
    /// key of another participant do not, even after the batch's signature was remembered.
    #[test]
    fn acks_signed_in_a_batch_verify_one_by_one_and_cannot_be_moved() {
        let cn = SigningKey::generate();
        let trust = trust_with(&cn);
        let now = Timestamp::now();
        let acks: Vec<Ack> = (0..5).map(|_| ack_of(&cn)).collect();
        let signed = sign_batch(&acks, &cn);
        let mut batches = VerifiedBatches::default();
        for (ack, signed) in acks.iter().zip(&signed) {
            assert!(signed.signature.is_none());
            assert_eq!(
                &verify_with(signed, &trust, now, &mut batches).unwrap(),
                ack
            );
            // Alone, without what was remembered, too (the offline verifier's way).
            assert_eq!(&verify(signed, &trust, now).unwrap(), ack);
        }
        assert_eq!(batches.0.len(), 1, "one batch signature checked");
        // One acknowledgement alone is signed as before.
        assert!(sign_batch(&acks[..1], &cn)[0].signature.is_some());

        let refused = |a: &v1::SignedAck, batches: &mut VerifiedBatches| {
            verify_with(a, &trust, now, batches).unwrap_err()
        };
        let mut edited = signed[1].clone();
        edited.body[5] ^= 1;
        let e = refused(&edited, &mut batches);
        assert_eq!(e.code, RefusalCode::BadSignature);
        assert!(e.detail.contains("is not leaf 1 of the batch of 5"), "{e}");
        let mut moved = signed[1].clone();
        moved.batch.as_mut().unwrap().leaf_index = 2;
        assert_eq!(
            refused(&moved, &mut batches).code,
            RefusalCode::BadSignature
        );
        let mut forged = signed[1].clone();
        forged
            .batch
            .as_mut()
            .unwrap()
            .signature
            .as_mut()
            .unwrap()
            .signature[0] ^= 1;
        let e = refused(&forged, &mut batches);
        assert!(e.detail.contains("batch signature does not verify"), "{e}");
        // Another key signing the same batch bytes is unknown here.
        let other = SigningKey::generate();
        let theirs = sign_batch(&acks, &other);
        assert_eq!(
            refused(&theirs[0], &mut batches).code,
            RefusalCode::UnknownKey
        );
        // No signature and no batch.
        let bare = v1::SignedAck {
            body: signed[0].body.clone(),
            ..Default::default()
        };
        assert_eq!(
            refused(&bare, &mut batches).code,
            RefusalCode::MalformedRequest
        );
    }
}
