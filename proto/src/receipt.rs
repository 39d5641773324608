//! The hub's signed receipt: proof that a message was durably accepted, and when.

use caravan_common::{
    Refusal, RefusalCode, Timestamp,
    envelope::Receipt,
    signing::{Purpose, SigningKey},
    trust::TrustSet,
};
use prost::Message;

use crate::{digest32, signature_of, signature_parts, v1};

/// Encode and sign `receipt` with the hub's key (whose id must be `receipt.key_id`).
pub fn issue(receipt: &Receipt, key: &SigningKey) -> v1::SignedReceipt {
    debug_assert_eq!(receipt.key_id, key.key_id());
    let body = v1::ReceiptBody {
        message_id: receipt.message_id.to_string(),
        sender: receipt.sender.to_string(),
        recipient: receipt.recipient.to_string(),
        header_sha256: receipt.header_sha256.to_vec(),
        hub_sequence: receipt.hub_sequence,
        accepted_at_ms: receipt.accepted_at.as_millis(),
        key_id: receipt.key_id.to_string(),
    }
    .encode_to_vec();
    let signature = key.sign(Purpose::Receipt, &body);
    v1::SignedReceipt {
        body,
        signature: Some(signature_of(key.key_id(), signature)),
    }
}

/// Verify a receipt against the hub keys in `trust`, then decode it.
pub fn verify(signed: &v1::SignedReceipt, trust: &TrustSet) -> Result<Receipt, Refusal> {
    let bad = |detail: String| Refusal::new(RefusalCode::BadReceipt, detail);
    let (key_id, signature) =
        signature_parts(signed.signature.as_ref(), "receipt").map_err(|r| bad(r.detail))?;
    let key = trust
        .hub_key(key_id)
        .ok_or_else(|| bad(format!("receipt key {key_id} is not a hub key")))?;
    key.public_key
        .verify(Purpose::Receipt, &signed.body, signature)
        .map_err(|_| {
            bad(format!(
                "receipt signature does not verify with hub key {key_id}"
            ))
        })?;
    let body = v1::ReceiptBody::decode(signed.body.as_slice())
        .map_err(|e| bad(format!("receipt does not decode: {e}")))?;
    let field = |name: &'static str| {
        move |e: caravan_common::ids::IdError| bad(format!("receipt {name}: {e}"))
    };
    let receipt = Receipt {
        message_id: body.message_id.parse().map_err(field("message_id"))?,
        sender: body.sender.parse().map_err(field("sender"))?,
        recipient: body.recipient.parse().map_err(field("recipient"))?,
        header_sha256: digest32(&body.header_sha256)
            .ok_or_else(|| bad("receipt header_sha256 is not 32 bytes".into()))?,
        hub_sequence: body.hub_sequence,
        accepted_at: Timestamp::from_millis(body.accepted_at_ms),
        key_id: body.key_id.parse().map_err(field("key_id"))?,
    };
    if receipt.key_id != key_id {
        return Err(bad(format!(
            "receipt body names key {}, signature key {key_id}",
            receipt.key_id
        )));
    }
    if !key.valid_at(receipt.accepted_at) {
        return Err(bad(format!(
            "hub key {key_id} was not valid at the receipt's acceptance time {}",
            receipt.accepted_at
        )));
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use caravan_common::{MessageId, trust::HubKey};

    use super::*;

    fn receipt(key: &SigningKey) -> Receipt {
        Receipt {
            message_id: MessageId::generate(),
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            header_sha256: [7; 32],
            hub_sequence: 42,
            accepted_at: Timestamp::now(),
            key_id: key.key_id(),
        }
    }

    #[test]
    fn issued_receipts_verify_and_forgeries_do_not() {
        let hub = SigningKey::generate();
        let hub_key = HubKey {
            public_key: hub.public().clone(),
            not_before: None,
            not_after: None,
        };
        let trust = TrustSet::new(Default::default(), [], [], [hub_key], []).unwrap();
        let r = receipt(&hub);
        let signed = issue(&r, &hub);
        assert_eq!(verify(&signed, &trust).unwrap(), r);

        let mut tampered = signed.clone();
        tampered.body[3] ^= 1;
        assert_eq!(
            verify(&tampered, &trust).unwrap_err().code,
            RefusalCode::BadReceipt
        );

        let impostor = SigningKey::generate();
        let forged = issue(&receipt(&impostor), &impostor);
        assert_eq!(
            verify(&forged, &trust).unwrap_err().code,
            RefusalCode::BadReceipt
        );
    }

    /// A rotated-out hub key still vouches for what it signed while valid, and for nothing
    /// dated outside its validity.
    #[test]
    fn a_receipt_is_judged_by_its_hub_key_at_its_acceptance_time() {
        let hub = SigningKey::generate();
        let r = receipt(&hub);
        let at = r.accepted_at.as_millis();
        let with = |not_before: Option<i64>, not_after: Option<i64>| {
            let key = HubKey {
                public_key: hub.public().clone(),
                not_before: not_before.map(Timestamp::from_millis),
                not_after: not_after.map(Timestamp::from_millis),
            };
            TrustSet::new(Default::default(), [], [], [key], []).unwrap()
        };
        let signed = issue(&r, &hub);
        assert!(verify(&signed, &with(Some(at - 1000), Some(at + 1000))).is_ok());
        assert!(verify(&signed, &with(Some(at), Some(at))).is_ok());
        for trust in [with(Some(at + 1), None), with(None, Some(at - 1))] {
            let refused = verify(&signed, &trust).unwrap_err();
            assert_eq!(refused.code, RefusalCode::BadReceipt);
            assert!(
                refused
                    .detail
                    .contains("was not valid at the receipt's acceptance time"),
                "{refused}"
            );
        }
    }
}
