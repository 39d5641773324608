//! The exchange log as evidence: signed tree heads over its Merkle tree, and the audit that
//! recomputes the tree from the stored entries and checks every signed head.
//!
//! Every event (accepted, delivered, acknowledged, rejected, expired, registry change) is an
//! entry in the store's log, appended in the same transaction as the change it records. The hub
//! periodically signs the Merkle root of the whole log (a tree head, RFC 9162 style); an entry
//! edited later no longer yields the signed roots, and the audit says which heads fail.

use prost::Message;
use serde::Serialize;

use caravan_common::{
    Timestamp,
    envelope::to_hex,
    signing::{Purpose, SigningKey},
    trust::TrustSet,
};

use crate::{
    merkle::{self, Hash},
    store::{Backend, LogEntry, LogKind, StoreError, TreeHead},
};

const BATCH: usize = 4096;

/// Every entry of the log, in order, as (index, encoded entry).
fn entries(store: &dyn Backend) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    loop {
        let from = out.last().map_or(1, |(i, _)| i + 1);
        let batch = store.log_entries(from, BATCH)?;
        let done = batch.len() < BATCH;
        out.extend(batch);
        if done {
            return Ok(out);
        }
    }
}

/// Sign a tree head over the whole log with `key`, if the log grew since the last one.
pub fn sign_tree_head(
    store: &dyn Backend,
    key: &SigningKey,
) -> Result<Option<TreeHead>, StoreError> {
    let entries = entries(store)?;
    let size = entries.len() as u64;
    let last = store.tree_heads()?.last().map_or(0, |h| h.tree_size);
    if size == 0 || size <= last {
        return Ok(None);
    }
    let leaves: Vec<Hash> = entries.iter().map(|(_, e)| merkle::leaf_hash(e)).collect();
    let mut head = TreeHead {
        tree_size: size,
        root_hash: merkle::root(&leaves).to_vec(),
        timestamp_ms: Timestamp::now().as_millis(),
        key_id: String::new(),
        signature: Vec::new(),
    };
    head.signature = key.sign(Purpose::TreeHead, &head.signed_bytes()).to_vec();
    head.key_id = key.key_id().to_string();
    store.save_tree_head(&head)?;
    Ok(Some(head))
}

/// What the audit found.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub entries: u64,
    pub tree_heads: usize,
    /// Empty when the log matches every signed tree head.
    pub problems: Vec<String>,
}

/// Recompute the Merkle tree from the stored entries and check every signed tree head: its
/// signature (with the hub keys in `trust`) and its root.
pub fn audit(store: &dyn Backend, trust: &TrustSet) -> Result<Audit, StoreError> {
    let entries = entries(store)?;
    let leaves: Vec<Hash> = entries.iter().map(|(_, e)| merkle::leaf_hash(e)).collect();
    let heads = store.tree_heads()?;
    let mut problems = Vec::new();
    for (i, (index, _)) in entries.iter().enumerate() {
        if *index != i as u64 + 1 {
            problems.push(format!(
                "entry {} is missing: the log jumps to {index}",
                i + 1
            ));
            break;
        }
    }
    let mut last_good = 0;
    for head in &heads {
        let signed = head
            .key_id
            .parse()
            .ok()
            .and_then(|id| trust.hub_key(id))
            .is_some_and(|k| {
                k.public_key
                    .verify(Purpose::TreeHead, &head.signed_bytes(), &head.signature)
                    .is_ok()
            });
        if !signed {
            problems.push(format!(
                "tree head of size {}: its signature does not verify with a hub key",
                head.tree_size
            ));
            continue;
        }
        let size = head.tree_size as usize;
        if size > leaves.len() {
            problems.push(format!(
                "tree head of size {size}: the log holds only {} entries (entries were removed)",
                leaves.len()
            ));
            continue;
        }
        if merkle::root(&leaves[..size]).as_slice() != head.root_hash.as_slice() {
            problems.push(format!(
                "tree head of size {size} (signed {}): the entries no longer hash to its root; an entry between {} and {size} was changed",
                Timestamp::from_millis(head.timestamp_ms),
                last_good + 1
            ));
        } else {
            last_good = size;
        }
    }
    Ok(Audit {
        entries: entries.len() as u64,
        tree_heads: heads.len(),
        problems,
    })
}

/// One log entry as exported for auditors (one JSON object per line).
#[derive(Debug, Serialize)]
pub struct ExportedEntry {
    pub index: u64,
    /// SHA-256(0x00 || entry): the Merkle leaf.
    pub leaf_hash: String,
    pub kind: &'static str,
    pub at: Timestamp,
    pub sequence: u64,
    pub sender: String,
    pub recipient: String,
    pub message_id: String,
    pub header_sha256: String,
    pub evidence_sha256: String,
    pub actor: String,
    pub detail: String,
}

/// The log entries at or after `since`, for auditors.
pub fn export(store: &dyn Backend, since: Timestamp) -> Result<Vec<ExportedEntry>, StoreError> {
    let mut out = Vec::new();
    for (index, bytes) in entries(store)? {
        let e = LogEntry::decode(bytes.as_slice()).map_err(|err| StoreError::Corrupt {
            what: "log entry",
            detail: err.to_string(),
        })?;
        if e.at_ms < since.as_millis() {
            continue;
        }
        let kind = match LogKind::try_from(e.kind).unwrap_or(LogKind::Unspecified) {
            LogKind::Accepted => "accepted",
            LogKind::Delivered => "delivered",
            LogKind::Acknowledged => "acknowledged",
            LogKind::Rejected => "rejected",
            LogKind::RegistryChange => "registry_change",
            LogKind::Expired => "expired",
            LogKind::Unspecified => "unknown",
        };
        out.push(ExportedEntry {
            index,
            leaf_hash: to_hex(&merkle::leaf_hash(&bytes)),
            kind,
            at: Timestamp::from_millis(e.at_ms),
            sequence: e.sequence,
            sender: e.sender,
            recipient: e.recipient,
            message_id: e.message_id,
            header_sha256: to_hex(&e.header_sha256),
            evidence_sha256: to_hex(&e.evidence_sha256),
            actor: e.actor,
            detail: e.detail,
        });
    }
    Ok(out)
}
