//! The hub's exchange log as participants check it: signed tree heads, inclusion proofs of the
//! entries that receipts, acknowledgement answers and status events come with, and consistency
//! proofs between two heads (RFC 9162 section 2.1).
//!
//! A proof is checked in three steps, and each failure names what broke (`BAD_LOG_PROOF`, or
//! `LOG_INCONSISTENT` for two heads that cannot both be true): the head's signature with a hub
//! key of the trust list, the entry's path up to the head's root, and that the entry records the
//! event it came with.

use caravan_common::{
    KeyId, MessageId, ParticipantId, Refusal, RefusalCode, Timestamp,
    merkle::{self, Hash},
    signing::{Purpose, SigningKey},
    trust::TrustSet,
};
use prost::Message;

use crate::{digest32, signature_of, signature_parts, v1};

/// A tree head whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    pub timestamp: Timestamp,
    pub key_id: KeyId,
}

/// The bytes a tree head's signature covers.
pub fn head_body(size: u64, root: &Hash, timestamp: Timestamp) -> Vec<u8> {
    v1::TreeHeadBody {
        tree_size: size,
        root_hash: root.to_vec(),
        timestamp_ms: timestamp.as_millis(),
    }
    .encode_to_vec()
}

/// Sign the head of the tree of `size` entries with root `root`.
pub fn sign_head(
    size: u64,
    root: &Hash,
    timestamp: Timestamp,
    key: &SigningKey,
) -> v1::SignedTreeHead {
    let body = head_body(size, root, timestamp);
    let signature = key.sign(Purpose::TreeHead, &body);
    v1::SignedTreeHead {
        body,
        signature: Some(signature_of(key.key_id(), signature)),
    }
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal::new(RefusalCode::BadLogProof, detail)
}

/// Verify a signed tree head against the hub keys in `trust`, then decode it.
pub fn verify_head(signed: &v1::SignedTreeHead, trust: &TrustSet) -> Result<TreeHead, Refusal> {
    let (key_id, signature) =
        signature_parts(signed.signature.as_ref(), "tree head").map_err(|r| bad(r.detail))?;
    let key = trust
        .hub_key(key_id)
        .ok_or_else(|| bad(format!("tree head key {key_id} is not a hub key")))?;
    key.public_key
        .verify(Purpose::TreeHead, &signed.body, signature)
        .map_err(|_| {
            bad(format!(
                "tree head signature does not verify with hub key {key_id}"
            ))
        })?;
    let body = v1::TreeHeadBody::decode(signed.body.as_slice())
        .map_err(|e| bad(format!("tree head does not decode: {e}")))?;
    let timestamp = Timestamp::from_millis(body.timestamp_ms);
    if !key.valid_at(timestamp) {
        return Err(bad(format!(
            "hub key {key_id} was not valid at the tree head's time {timestamp}"
        )));
    }
    Ok(TreeHead {
        size: body.tree_size,
        root: digest32(&body.root_hash)
            .ok_or_else(|| bad("tree head root_hash is not 32 bytes"))?,
        timestamp,
        key_id,
    })
}

/// Tree heads whose signature verified, by the digest of their signed form: the hub signs one
/// head per flush and many proofs share it, so each head's signature is checked once. Bounded
/// (it starts over when full); shared between tasks (the lock is not held while verifying).
#[derive(Debug, Default)]
pub struct VerifiedHeads(std::sync::Mutex<std::collections::HashMap<[u8; 32], TreeHead>>);

/// Verified heads remembered, at most.
const VERIFIED_HEADS: usize = 1024;

impl VerifiedHeads {
    /// The head of `signed`: [`verify_head`], or what it said the last time for these bytes.
    pub fn verify(
        &self,
        signed: &v1::SignedTreeHead,
        trust: &TrustSet,
    ) -> Result<TreeHead, Refusal> {
        let digest = caravan_common::signing::sha256(&signed.encode_to_vec());
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(head) = lock().get(&digest) {
            return Ok(head.clone());
        }
        let head = verify_head(signed, trust)?;
        let mut verified = lock();
        if verified.len() >= VERIFIED_HEADS {
            verified.clear();
        }
        verified.insert(digest, head.clone());
        Ok(head)
    }
}

fn hashes(path: &[Vec<u8>], what: &str) -> Result<Vec<Hash>, Refusal> {
    path.iter()
        .map(|h| {
            digest32(h).ok_or_else(|| bad(format!("{what} holds a hash that is not 32 bytes")))
        })
        .collect()
}

/// What a proven entry must record: the event the proof came with.
#[derive(Debug, Clone)]
pub struct Expected {
    pub kind: v1::LogEntryKind,
    pub message_id: MessageId,
    pub sender: ParticipantId,
    pub recipient: ParticipantId,
    /// SHA-256 of the message's signed header bytes, when the checker knows it.
    pub header_sha256: Option<[u8; 32]>,
    /// SHA-256 of the encoded signed acknowledgement, for acknowledgements and rejections.
    pub evidence_sha256: Option<[u8; 32]>,
}

/// Check `proof`: its tree head with the hub keys in `trust`, the entry's path to the head's
/// root, and that the entry records `expected`. Returns the verified head.
pub fn verify_proof(
    proof: &v1::LogProof,
    expected: &Expected,
    trust: &TrustSet,
) -> Result<TreeHead, Refusal> {
    let head = verify_head(signed_head(proof)?, trust)?;
    check_inclusion(proof, &head, expected)?;
    Ok(head)
}

/// The signed tree head a proof is against.
pub fn signed_head(proof: &v1::LogProof) -> Result<&v1::SignedTreeHead, Refusal> {
    proof
        .tree_head
        .as_ref()
        .ok_or_else(|| bad("log proof has no tree head"))
}

/// [`verify_proof`] without the head's signature, for a `head` already verified (one head
/// covers every proof given out between two flushes).
pub fn check_inclusion(
    proof: &v1::LogProof,
    head: &TreeHead,
    expected: &Expected,
) -> Result<(), Refusal> {
    let entry = included(proof, head)?;
    let differs = |field: &str, got: &dyn std::fmt::Display, want: &dyn std::fmt::Display| {
        bad(format!(
            "log entry {} records {field} {got}, expected {want}",
            proof.leaf_index
        ))
    };
    if entry.kind != expected.kind as i32 {
        let got = v1::LogEntryKind::try_from(entry.kind)
            .map(|k| k.as_str_name())
            .unwrap_or("an unknown kind");
        return Err(differs("kind", &got, &expected.kind.as_str_name()));
    }
    if entry.message_id != expected.message_id.to_string() {
        return Err(differs("message", &entry.message_id, &expected.message_id));
    }
    if entry.sender != expected.sender.as_str() || entry.recipient != expected.recipient.as_str() {
        return Err(differs(
            "corridor",
            &format!("{}->{}", entry.sender, entry.recipient),
            &format!("{}->{}", expected.sender, expected.recipient),
        ));
    }
    if let Some(digest) = expected.header_sha256
        && entry.header_sha256 != digest
    {
        return Err(bad(format!(
            "log entry {} records another header digest",
            proof.leaf_index
        )));
    }
    if let Some(digest) = expected.evidence_sha256
        && entry.evidence_sha256 != digest
    {
        return Err(bad(format!(
            "log entry {} records another acknowledgement",
            proof.leaf_index
        )));
    }
    Ok(())
}

/// The entry `proof` proves in `head` (already verified): its path leads to the head's root.
pub fn included(proof: &v1::LogProof, head: &TreeHead) -> Result<v1::LogEntry, Refusal> {
    let path = hashes(&proof.audit_path, "log proof")?;
    let leaf = merkle::leaf_hash(&proof.entry);
    if !merkle::verify_inclusion(proof.leaf_index, head.size, &leaf, &path, &head.root) {
        return Err(bad(format!(
            "entry {} is not in the tree head of size {}: its inclusion path does not lead to the signed root",
            proof.leaf_index, head.size
        )));
    }
    v1::LogEntry::decode(proof.entry.as_slice())
        .map_err(|e| bad(format!("log entry does not decode: {e}")))
}

/// Check that `second` only appended to `first` (heads in either order), with `proof` from
/// the hub for the smaller size to the larger.
pub fn verify_consistency(
    first: &TreeHead,
    second: &TreeHead,
    proof: &[Vec<u8>],
) -> Result<(), Refusal> {
    let (old, new) = if first.size <= second.size {
        (first, second)
    } else {
        (second, first)
    };
    let proof = hashes(proof, "consistency proof")?;
    if merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof) {
        Ok(())
    } else {
        Err(Refusal::new(
            RefusalCode::LogInconsistent,
            format!(
                "the hub's log of size {} (signed {}) is not an extension of its log of size {} (signed {})",
                new.size, new.timestamp, old.size, old.timestamp
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use caravan_common::trust::HubKey;

    use super::*;

    fn entry(i: u64, kind: v1::LogEntryKind, id: MessageId) -> Vec<u8> {
        v1::LogEntry {
            kind: kind as i32,
            at_ms: 1,
            sequence: i,
            sender: "KZ".into(),
            recipient: "CN".into(),
            message_id: id.to_string(),
            header_sha256: vec![7; 32],
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn trust(key: &SigningKey) -> TrustSet {
        let hub = HubKey {
            public_key: key.public().clone(),
            not_before: None,
            not_after: None,
        };
        TrustSet::new(Default::default(), [], [], [hub], []).unwrap()
    }

    #[test]
    fn a_proof_verifies_and_every_forgery_is_named() {
        let hub = SigningKey::generate();
        let trust = trust(&hub);
        let ids: Vec<MessageId> = (0..5).map(|_| MessageId::generate()).collect();
        let entries: Vec<Vec<u8>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| entry(i as u64, v1::LogEntryKind::Accepted, *id))
            .collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let root = merkle::root(&leaves);
        let proof = v1::LogProof {
            leaf_index: 3,
            entry: entries[3].clone(),
            tree_head: Some(sign_head(5, &root, Timestamp::now(), &hub)),
            audit_path: merkle::inclusion_proof(3, &leaves)
                .iter()
                .map(|h| h.to_vec())
                .collect(),
        };
        let expected = Expected {
            kind: v1::LogEntryKind::Accepted,
            message_id: ids[3],
            sender: "KZ".parse().unwrap(),
            recipient: "CN".parse().unwrap(),
            header_sha256: Some([7; 32]),
            evidence_sha256: None,
        };
        let head = verify_proof(&proof, &expected, &trust).unwrap();
        assert_eq!((head.size, head.root), (5, root));

        let refused = |p: &v1::LogProof, e: &Expected, t: &TrustSet| {
            let r = verify_proof(p, e, t).unwrap_err();
            assert_eq!(r.code, RefusalCode::BadLogProof);
            r.detail
        };
        // Another hub's signature.
        let impostor = SigningKey::generate();
        let mut forged = proof.clone();
        forged.tree_head = Some(sign_head(5, &root, Timestamp::now(), &impostor));
        assert!(refused(&forged, &expected, &trust).contains("not a hub key"));
        // An entry edited after the fact.
        let mut edited = proof.clone();
        edited.entry = entry(3, v1::LogEntryKind::Accepted, ids[2]);
        assert!(refused(&edited, &expected, &trust).contains("inclusion path"));
        // A true entry, but of another message.
        let other = Expected {
            message_id: ids[2],
            ..expected.clone()
        };
        assert!(refused(&proof, &other, &trust).contains("records message"));
        // A true entry, but of another event.
        let other = Expected {
            kind: v1::LogEntryKind::Acknowledged,
            ..expected.clone()
        };
        assert!(refused(&proof, &other, &trust).contains("records kind LOG_ENTRY_KIND_ACCEPTED"));
        // A path cut short.
        let mut short = proof.clone();
        short.audit_path.pop();
        refused(&short, &expected, &trust);
    }

    #[test]
    fn consistency_holds_for_an_append_and_fails_for_a_rewrite() {
        let hub = SigningKey::generate();
        let leaves: Vec<Hash> = (0..9u8).map(|i| merkle::leaf_hash(&[i])).collect();
        let head = |l: &[Hash]| TreeHead {
            size: l.len() as u64,
            root: merkle::root(l),
            timestamp: Timestamp::now(),
            key_id: hub.key_id(),
        };
        let old = head(&leaves[..4]);
        let new = head(&leaves);
        let proof: Vec<Vec<u8>> = merkle::consistency_proof(4, &leaves)
            .iter()
            .map(|h| h.to_vec())
            .collect();
        verify_consistency(&old, &new, &proof).unwrap();
        verify_consistency(&new, &old, &proof).unwrap();

        let mut rewritten = leaves.clone();
        rewritten[1] = merkle::leaf_hash(b"rewritten");
        let forked = head(&rewritten);
        let proof: Vec<Vec<u8>> = merkle::consistency_proof(4, &rewritten)
            .iter()
            .map(|h| h.to_vec())
            .collect();
        let r = verify_consistency(&old, &forked, &proof).unwrap_err();
        assert_eq!(r.code, RefusalCode::LogInconsistent);
        // Same size, different roots: two histories.
        let r = verify_consistency(&new, &forked, &[]).unwrap_err();
        assert_eq!(r.code, RefusalCode::LogInconsistent);
    }
}
