//! The hub's receipt: proof that a message was durably accepted, and when. Two forms say the
//! same: a receipt the hub signed for the message alone (protocol v1), or the log proof of the
//! message's ACCEPTED entry under a signed tree head (protocol v2, `proof_receipt`), where one
//! hub signature covers every message of a flush.

use caravan_common::{
    KeyId, Refusal, RefusalCode, Timestamp,
    envelope::Receipt,
    signing::{Purpose, SigningKey},
    trust::TrustSet,
};
use prost::Message;

use crate::{
    digest32,
    log::{self, TreeHead},
    signature_of, signature_parts, v1,
};

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

fn bad(detail: String) -> Refusal {
    Refusal::new(RefusalCode::BadReceipt, detail)
}

/// What an ACCEPTED log entry says as a receipt, under the hub key `key_id`.
fn of_entry(entry: &v1::LogEntry, key_id: KeyId) -> Result<Receipt, Refusal> {
    if entry.kind != v1::LogEntryKind::Accepted as i32 {
        return Err(bad("receipt: the log entry records no acceptance".into()));
    }
    let field = |name: &'static str| {
        move |e: caravan_common::ids::IdError| bad(format!("receipt entry {name}: {e}"))
    };
    Ok(Receipt {
        message_id: entry.message_id.parse().map_err(field("message_id"))?,
        sender: entry.sender.parse().map_err(field("sender"))?,
        recipient: entry.recipient.parse().map_err(field("recipient"))?,
        header_sha256: digest32(&entry.header_sha256)
            .ok_or_else(|| bad("receipt entry header_sha256 is not 32 bytes".into()))?,
        hub_sequence: entry.sequence,
        accepted_at: Timestamp::from_millis(entry.at_ms),
        key_id,
    })
}

/// The receipt a log proof stands for (protocol v2): the ACCEPTED entry that `proof` proves in
/// `head`, a tree head whose signature the caller verified with the hub keys of its trust list
/// ([`log::verify_head`]). The entry names the message, its sender and recipient, its header's
/// digest, its hub sequence and when it was accepted: what a signed receipt says, under the
/// head's signature. The receipt's key is the head's.
pub fn from_proof(proof: &v1::LogProof, head: &TreeHead) -> Result<Receipt, Refusal> {
    let entry = log::included(proof, head).map_err(|r| bad(format!("receipt: {}", r.detail)))?;
    of_entry(&entry, head.key_id)
}

/// [`from_proof`], with the tree head's signature checked against the hub keys in `trust`
/// (for a verifier that holds no verified heads: the offline verifier).
pub fn verify_proof(proof: &v1::LogProof, trust: &TrustSet) -> Result<Receipt, Refusal> {
    let head = log::signed_head(proof)
        .and_then(|signed| log::verify_head(signed, trust))
        .map_err(|r| bad(format!("receipt: {}", r.detail)))?;
    from_proof(proof, &head)
}

/// The receipt of the ACCEPTED log entry `entry` (encoded), signed by the hub's `key`: what the
/// hub gives a caller of protocol v1 for a message whose sender took a log proof instead.
pub fn issue_for_entry(entry: &[u8], key: &SigningKey) -> Result<v1::SignedReceipt, Refusal> {
    let entry = v1::LogEntry::decode(entry)
        .map_err(|e| bad(format!("receipt: log entry does not decode: {e}")))?;
    Ok(issue(&of_entry(&entry, key.key_id())?, key))
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

    /// A log proof of an ACCEPTED entry is a receipt that says what the signed one says; a
    /// proof of another kind of entry, an edited entry or another hub's head is none.
    #[test]
    fn a_log_proof_of_acceptance_is_a_receipt_and_nothing_else_is() {
        use caravan_common::merkle;
        let hub = SigningKey::generate();
        let trust = TrustSet::new(
            Default::default(),
            [],
            [],
            [HubKey {
                public_key: hub.public().clone(),
                not_before: None,
                not_after: None,
            }],
            [],
        )
        .unwrap();
        let r = Receipt {
            accepted_at: Timestamp::from_millis(Timestamp::now().as_millis()),
            ..receipt(&hub)
        };
        let entry = |kind: v1::LogEntryKind| {
            v1::LogEntry {
                kind: kind as i32,
                at_ms: r.accepted_at.as_millis(),
                sequence: r.hub_sequence,
                sender: r.sender.to_string(),
                recipient: r.recipient.to_string(),
                message_id: r.message_id.to_string(),
                header_sha256: r.header_sha256.to_vec(),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let entries = [
            entry(v1::LogEntryKind::Delivered),
            entry(v1::LogEntryKind::Accepted),
            entry(v1::LogEntryKind::Acknowledged),
        ];
        let leaves: Vec<merkle::Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let root = merkle::root(&leaves);
        let proof = |index: usize, key: &SigningKey| v1::LogProof {
            leaf_index: index as u64,
            entry: entries[index].clone(),
            tree_head: Some(log::sign_head(3, &root, Timestamp::now(), key)),
            audit_path: merkle::inclusion_proof(index, &leaves)
                .iter()
                .map(|h| h.to_vec())
                .collect(),
        };
        assert_eq!(verify_proof(&proof(1, &hub), &trust).unwrap(), r);
        // The v1 receipt the hub signs for the same entry says the same.
        let signed = issue_for_entry(&entries[1], &hub).unwrap();
        assert_eq!(verify(&signed, &trust).unwrap(), r);

        let refused = |p: &v1::LogProof| {
            let e = verify_proof(p, &trust).unwrap_err();
            assert_eq!(e.code, RefusalCode::BadReceipt);
            e.detail
        };
        assert!(refused(&proof(0, &hub)).contains("records no acceptance"));
        assert!(refused(&proof(1, &SigningKey::generate())).contains("not a hub key"));
        let mut edited = proof(1, &hub);
        edited.entry[5] ^= 1;
        assert!(refused(&edited).contains("inclusion path"));
        assert!(issue_for_entry(&entries[2], &hub).is_err());
    }
}
