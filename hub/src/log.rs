//! The exchange log as evidence: signed tree heads over its Merkle tree, and the audit that
//! recomputes the tree from the stored entries and checks every signed head.
//!
//! Every event (accepted, delivered, acknowledged, rejected, expired, registry change) is an
//! entry in the store's log, appended with its Merkle nodes in the same transaction as the
//! change it records. After each flush the hub signs a head over the durable log ([`Heads`]);
//! receipts, acknowledgement answers and status events carry an inclusion proof against it,
//! spokes ask for consistency proofs between the heads they saw, and a head is kept in the
//! store now and then for audits. An entry edited later no longer yields the signed roots, and
//! the audit says which heads fail.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prost::Message;
use serde::Serialize;

use caravan_common::{
    Refusal, Timestamp,
    envelope::to_hex,
    merkle::{self, Hash, Nodes},
    signing::{Purpose, SigningKey},
    trust::TrustSet,
};

use caravan_proto::v1;

use crate::store::{Backend, LogEntry, LogKind, StoreError, TreeHead};

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

/// Nodes kept in memory, at most this many; the cache starts over when full. A proof for a
/// recent entry reads the same large subtrees as the one before, so a small cache serves most
/// reads.
const CACHED_NODES: usize = 1 << 16;

/// The store's Merkle nodes, as the proofs read them, through the cache (nodes never change
/// once written, so a cached one is never stale).
struct StoreNodes<'a> {
    store: &'a dyn Backend,
    cache: &'a Mutex<HashMap<(u32, u64), Hash>>,
}

impl StoreNodes<'_> {
    fn keep(&self, level: u32, index: u64, hash: Hash) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHED_NODES {
            cache.clear();
        }
        cache.insert((level, index), hash);
    }
}

impl Nodes for StoreNodes<'_> {
    type Error = StoreError;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let cached = (self.cache.lock().unwrap_or_else(|e| e.into_inner()))
            .get(&(level, index))
            .copied();
        if let Some(hash) = cached {
            return Ok(hash);
        }
        let hash = self.store.log_node(level, index)?;
        self.keep(level, index, hash);
        Ok(hash)
    }
}

/// Entries kept in memory, at most this many (the cache starts over when full): the newest,
/// read once per flush by [`Heads::advance`], because the proofs that follow are of them (a
/// receipt, a delivery, status events: several for each entry).
const CACHED_ENTRIES: usize = 1 << 14;

/// The latest signed tree head over the durable part of the log. The group commit advances it
/// after each flush (one signature per flush, not per document), so that every receipt,
/// acknowledgement answer and status event can carry a proof against a head that covers its
/// entry.
pub struct Heads {
    key: SigningKey,
    /// The current head; watchers learn of every new one.
    current: tokio::sync::watch::Sender<Arc<TreeHead>>,
    nodes: Mutex<HashMap<(u32, u64), Hash>>,
    /// The newest durable entries, by index (see [`CACHED_ENTRIES`]).
    entries: Mutex<HashMap<u64, Vec<u8>>>,
}

fn sign(nodes: &StoreNodes<'_>, key: &SigningKey, size: u64) -> Result<TreeHead, StoreError> {
    let root = merkle::root_of(nodes, size)?;
    let timestamp = Timestamp::now();
    Ok(TreeHead {
        tree_size: size,
        root_hash: root.to_vec(),
        timestamp_ms: timestamp.as_millis(),
        key_id: key.key_id().to_string(),
        signature: key
            .sign(
                Purpose::TreeHead,
                &caravan_proto::log::head_body(size, &root, timestamp),
            )
            .to_vec(),
    })
}

impl Heads {
    /// Sign a head over the log as it is (durable: the store was just opened).
    pub fn open(store: &dyn Backend, key: SigningKey) -> Result<Self, StoreError> {
        let nodes = Mutex::default();
        let head = sign(
            &StoreNodes {
                store,
                cache: &nodes,
            },
            &key,
            store.log_size()?,
        )?;
        Ok(Self {
            key,
            current: tokio::sync::watch::Sender::new(Arc::new(head)),
            nodes,
            entries: Mutex::default(),
        })
    }

    fn nodes<'a>(&'a self, store: &'a dyn Backend) -> StoreNodes<'a> {
        StoreNodes {
            store,
            cache: &self.nodes,
        }
    }

    pub fn current(&self) -> Arc<TreeHead> {
        self.current.borrow().clone()
    }

    /// Every new head, as flushes make more of the log durable.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<TreeHead>> {
        self.current.subscribe()
    }

    /// The first `size` entries are durable: sign a head over them if it is newer than the
    /// current one.
    pub fn advance(&self, store: &dyn Backend, size: u64) -> Result<Arc<TreeHead>, StoreError> {
        let current = self.current();
        if size <= current.tree_size {
            return Ok(current);
        }
        // An engine whose reads block keeps its newest entries itself.
        if !store.reads_block() {
            self.remember(store, current.tree_size, size)?;
        }
        let head = Arc::new(sign(&self.nodes(store), &self.key, size)?);
        self.current.send_if_modified(|slot| {
            let newer = head.tree_size > slot.tree_size;
            if newer {
                *slot = head;
            }
            newer
        });
        Ok(self.current())
    }

    /// Keep entries `from + 1..=to` in memory (the newest [`CACHED_ENTRIES`] of them), read
    /// in one turn of the store, with the Merkle nodes they complete: computed from the
    /// entries as the store computed them when it appended them, instead of read one by one
    /// by the proofs.
    fn remember(&self, store: &dyn Backend, from: u64, to: u64) -> Result<(), StoreError> {
        let count = (to - from).min(CACHED_ENTRIES as u64);
        let fresh = store.log_entries(to - count + 1, count as usize)?;
        let nodes = self.nodes(store);
        for (index, entry) in &fresh {
            let leaf = merkle::leaf_hash(entry);
            for (level, i, hash) in
                merkle::appended_nodes(index - 1, leaf, |l, i| nodes.perfect(l, i))?
            {
                nodes.keep(level, i, hash);
            }
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() + fresh.len() > CACHED_ENTRIES {
            entries.clear();
        }
        entries.extend(fresh);
        Ok(())
    }

    /// Entry `log_index`, if it is one of the newest, kept in memory.
    fn cached_entry(&self, log_index: u64) -> Option<Vec<u8>> {
        (self.entries.lock().unwrap_or_else(|e| e.into_inner()))
            .get(&log_index)
            .cloned()
    }

    /// The inclusion proof of entry `log_index` (from 1) in `head`; `None` if the head does
    /// not cover it (or the index is 0: a record older than log proofs). Cheap enough for an
    /// async task: the entry and nodes mostly from memory, else one read each.
    pub fn prove(
        &self,
        store: &dyn Backend,
        head: &TreeHead,
        log_index: u64,
    ) -> Result<Option<v1::LogProof>, StoreError> {
        if log_index == 0 || log_index > head.tree_size {
            return Ok(None);
        }
        let entry = match self.cached_entry(log_index) {
            Some(entry) => entry,
            None => match store.log_entries(log_index, 1)?.pop() {
                Some((_, entry)) => entry,
                None => {
                    return Err(StoreError::Corrupt {
                        what: "log entry",
                        detail: format!("entry {log_index} is missing"),
                    });
                }
            },
        };
        let path = merkle::inclusion_path(&self.nodes(store), log_index - 1, head.tree_size)?;
        Ok(Some(v1::LogProof {
            leaf_index: log_index - 1,
            entry,
            tree_head: Some(head.to_wire()),
            audit_path: path.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    /// [`Self::prove`] from memory alone (this cache and what the engine keeps in memory), for
    /// an engine whose reads block; `None` if anything it needs is not there.
    pub fn prove_cached(
        &self,
        store: &dyn Backend,
        head: &TreeHead,
        log_index: u64,
    ) -> Option<v1::LogProof> {
        /// Nodes from the heads' cache, then the engine's memory; a miss ends the attempt.
        struct Cached<'a> {
            store: &'a dyn Backend,
            cache: &'a Mutex<HashMap<(u32, u64), Hash>>,
        }
        impl Nodes for Cached<'_> {
            type Error = ();
            fn perfect(&self, level: u32, index: u64) -> Result<Hash, ()> {
                let cached = self
                    .cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(level, index))
                    .copied();
                cached
                    .or_else(|| self.store.cached_log_node(level, index))
                    .ok_or(())
            }
        }
        if log_index == 0 || log_index > head.tree_size {
            return None;
        }
        let entry = store.cached_log_entry(log_index)?;
        let nodes = Cached {
            store,
            cache: &self.nodes,
        };
        let path = merkle::inclusion_path(&nodes, log_index - 1, head.tree_size).ok()?;
        Some(v1::LogProof {
            leaf_index: log_index - 1,
            entry,
            tree_head: Some(head.to_wire()),
            audit_path: path.iter().map(|h| h.to_vec()).collect(),
        })
    }

    /// The consistency proof between the log's first `first` and first `second` entries.
    pub fn consistency(
        &self,
        store: &dyn Backend,
        first: u64,
        second: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(merkle::consistency_path(&self.nodes(store), first, second)?
            .iter()
            .map(|h| h.to_vec())
            .collect())
    }
}

/// The size of the last tree head kept for audits (0: none).
pub fn last_kept_size(store: &dyn Backend) -> Result<u64, StoreError> {
    Ok(store.tree_heads()?.last().map_or(0, |h| h.tree_size))
}

/// Keep `head` for audits if the log grew since the last one kept (of size `last`, which is
/// advanced).
pub fn keep_tree_head(
    store: &dyn Backend,
    head: &TreeHead,
    last: &mut u64,
) -> Result<bool, StoreError> {
    if head.tree_size == 0 || head.tree_size <= *last {
        return Ok(false);
    }
    store.save_tree_head(head)?;
    *last = head.tree_size;
    Ok(true)
}

/// Keep a signed head over the whole log unless a kept head covers its newest entry already:
/// at start (after a hub that was killed), after the final flush at shutdown, and in a backup,
/// so that `log verify` always has a head over the newest entries to check them against.
/// Returns the size of the head kept, if one was.
pub fn cover_log(store: &dyn Backend, key: &SigningKey) -> Result<Option<u64>, StoreError> {
    let size = store.log_size()?;
    if size == 0 || last_kept_size(store)? >= size {
        return Ok(None);
    }
    let cache = Mutex::default();
    let head = sign(
        &StoreNodes {
            store,
            cache: &cache,
        },
        key,
        size,
    )?;
    store.save_tree_head(&head)?;
    store.flush()?;
    Ok(Some(size))
}

/// What the audit found.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub entries: u64,
    pub tree_heads: usize,
    /// The size of the largest kept head whose root matched: entries up to it were checked.
    pub covered: u64,
    /// Empty when the log matches every signed tree head.
    pub problems: Vec<String>,
    /// Set when the newest entries are covered by no kept head, so nothing vouches for them
    /// (the hub was killed before it kept one, or the store is from before heads were kept at
    /// shutdown). `log verify` fails then; a restore accepts it, and the hub keeps a head at
    /// its next start.
    pub uncovered: Option<String>,
}

impl Audit {
    /// Whether every entry is covered by a kept head and every head holds.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.uncovered.is_none()
    }
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
    let entries = entries.len() as u64;
    let covered = heads.iter().map(|h| h.tree_size).max().unwrap_or(0);
    let uncovered = (entries > covered).then(|| {
        format!(
            "entries {} to {entries} are covered by no kept signed tree head, so nothing vouches for them (was the hub killed rather than stopped? start it and stop it with SIGTERM: it keeps a head over its log at start and at shutdown)",
            covered + 1
        )
    });
    Ok(Audit {
        entries,
        tree_heads: heads.len(),
        covered: last_good as u64,
        problems,
        uncovered,
    })
}

/// Why a stored log could not be audited.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed, or a record of it (the registry itself) is missing or does not decode.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trust list the store holds decodes but does not verify with the anchor key given:
    /// signed by another key, a signature that fails, or an entry that breaks a rule (the
    /// refusal names which). Its hub keys cannot judge the tree heads; not a store fault (the
    /// configured `anchor_key` may be another network's).
    #[error("the stored trust list does not verify with the anchor key {anchor}: {refusal}")]
    TrustList { anchor: String, refusal: Refusal },
}

/// Audit a store with the hub keys of the trust list it holds, which `anchor` must have signed.
/// Returns the audit and the trust list's version.
pub fn audit_stored(
    store: &dyn Backend,
    anchor: &caravan_common::signing::PublicKey,
) -> Result<(Audit, u64), AuditError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "registry",
        detail,
    };
    let record = store
        .registry()?
        .ok_or_else(|| corrupt("the store holds no registry".into()))?;
    let signed = v1::SignedTrustList::decode(record.signed_trust_list.as_slice())
        .map_err(|e| corrupt(e.to_string()))?;
    let (list, trust) = caravan_proto::trust_list::open(&signed, anchor).map_err(|refusal| {
        AuditError::TrustList {
            anchor: anchor.key_id().to_string(),
            refusal,
        }
    })?;
    Ok((audit(store, &trust)?, list.version))
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
            LogKind::ConformanceReport => "conformance_report",
            LogKind::ScorecardEntry => "scorecard_entry",
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

#[cfg(test)]
mod tests {
    use caravan_common::{RefusalCode, signing::SigningKey, store::EngineKind};
    use caravan_proto::trust_list;

    use super::*;
    use crate::store::{Embedded, RegistryRecord};

    fn store_with_list(dir: &std::path::Path, signer: &SigningKey) -> Embedded {
        let store = Embedded::open(dir, Some(EngineKind::Redb), 8 << 20).unwrap();
        let list = v1::TrustList {
            version: 2,
            anchor_key_id: signer.key_id().to_string(),
            ..Default::default()
        };
        let record = RegistryRecord {
            signed_trust_list: trust_list::sign(&list, signer).encode_to_vec(),
            revoked_certificates: Vec::new(),
        };
        let entry = LogEntry {
            kind: LogKind::RegistryChange as i32,
            actor: "operator:alice".into(),
            ..Default::default()
        };
        store.save_registry(&record, &entry).unwrap();
        store
    }

    #[test]
    fn a_trust_list_that_does_not_verify_is_not_a_store_fault() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = SigningKey::generate();
        let store = store_with_list(dir.path(), &anchor);
        let (_, version) = audit_stored(&store, anchor.public()).unwrap();
        assert_eq!(version, 2);
        let other = SigningKey::generate();
        let e = audit_stored(&store, other.public()).unwrap_err();
        match &e {
            AuditError::TrustList { anchor, refusal } => {
                assert_eq!(anchor, &other.key_id().to_string());
                assert_eq!(refusal.code, RefusalCode::InvalidTrustList);
                assert!(refusal.detail.contains("not by the pinned anchor"), "{e}");
            }
            AuditError::Store(_) => panic!("reported as a store fault: {e}"),
        }
        assert!(!e.to_string().contains("corrupt"), "{e}");
    }

    #[test]
    fn proofs_from_the_entries_a_head_remembers_are_those_the_store_gives() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let store = store_with_list(dir.path(), &key);
        let heads = Heads::open(&store, key.clone()).unwrap();
        let record = store.registry().unwrap().unwrap();
        for n in 0..6 {
            let entry = LogEntry {
                kind: LogKind::RegistryChange as i32,
                actor: format!("operator:{n}"),
                ..Default::default()
            };
            store.save_registry(&record, &entry).unwrap();
        }
        store.flush().unwrap();
        let head = heads.advance(&store, 7).unwrap();
        assert_eq!(heads.entries.lock().unwrap().len(), 6);
        // Every node computed from the remembered entries is the one the store appended.
        for ((level, i), hash) in heads.nodes.lock().unwrap().iter() {
            assert_eq!(
                *hash,
                store.log_node(*level, *i).unwrap(),
                "node {level}/{i}"
            );
        }
        // A head that remembers nothing reads everything from the store.
        let fresh = Heads::open(&store, key).unwrap();
        assert_eq!(fresh.current().root_hash, head.root_hash);
        for index in 1..=7 {
            let remembered = heads.prove(&store, &head, index).unwrap().unwrap();
            let read = fresh.prove(&store, &head, index).unwrap().unwrap();
            assert_eq!(remembered, read, "entry {index}");
            let path: Vec<Hash> = (remembered.audit_path.iter())
                .map(|h| h.as_slice().try_into().unwrap())
                .collect();
            let root: Hash = head.root_hash.as_slice().try_into().unwrap();
            let leaf = merkle::leaf_hash(&remembered.entry);
            assert!(merkle::verify_inclusion(index - 1, 7, &leaf, &path, &root));
        }
    }

    #[test]
    fn a_registry_that_does_not_decode_is_a_store_fault() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(dir.path(), Some(EngineKind::Redb), 8 << 20).unwrap();
        let record = RegistryRecord {
            signed_trust_list: vec![0xff; 7],
            revoked_certificates: Vec::new(),
        };
        store.save_registry(&record, &LogEntry::default()).unwrap();
        let e = audit_stored(&store, SigningKey::generate().public()).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::Store(StoreError::Corrupt {
                    what: "registry",
                    ..
                })
            ),
            "{e:?}"
        );
    }
}
