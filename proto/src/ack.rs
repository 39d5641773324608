//! The recipient's signed acknowledgement: proof that it verified and stored a message, or
//! the reason it refused it.

use caravan_common::{
    Refusal, RefusalCode, RejectCode, Timestamp,
    envelope::{Ack, AckOutcome},
    signing::{Purpose, SigningKey},
    trust::TrustSet,
};
use prost::Message;

use crate::{digest32, signature_of, signature_parts, v1};

/// Encode and sign `ack` with the recipient's key (whose id must be `ack.key_id`).
pub fn sign(ack: &Ack, key: &SigningKey) -> v1::SignedAck {
    let (outcome, reason_code, reason) = match &ack.outcome {
        AckOutcome::Accepted => (v1::AckOutcome::Accepted, String::new(), String::new()),
        AckOutcome::Rejected { code, reason } => {
            (v1::AckOutcome::Rejected, code.to_string(), reason.clone())
        }
    };
    let body = v1::AckBody {
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
    .encode_to_vec();
    let signature = key.sign(Purpose::Ack, &body);
    v1::SignedAck {
        body,
        signature: Some(signature_of(key.key_id(), signature)),
    }
}

/// Verify an acknowledgement: signed by a key of its recipient valid at `at`, then decoded.
pub fn verify(signed: &v1::SignedAck, trust: &TrustSet, at: Timestamp) -> Result<Ack, Refusal> {
    let invalid = |detail: String| Refusal::new(RefusalCode::InvalidAck, detail);
    let (key_id, signature) = signature_parts(signed.signature.as_ref(), "acknowledgement")?;
    let owner = trust.registered_key(key_id)?.participant;
    let key = trust.signer_key(key_id, owner, at)?;
    key.public_key
        .verify(Purpose::Ack, &signed.body, signature)
        .map_err(|_| {
            Refusal::new(
                RefusalCode::BadSignature,
                format!("acknowledgement signature does not verify with key {key_id}"),
            )
        })?;
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

    #[test]
    fn acks_verify_and_name_their_signer() {
        let cn = SigningKey::generate();
        let trust = TrustSet::new(
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
        .unwrap();
        let ack = Ack {
            message_id: MessageId::generate(),
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            header_sha256: [1; 32],
            outcome: AckOutcome::Rejected {
                code: RefusalCode::BadSignature.into(),
                reason: "no".into(),
            },
            acknowledged_at: Timestamp::now(),
            key_id: cn.key_id(),
        };
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
}
