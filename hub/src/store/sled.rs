//! The embedded default backend, on sled 0.34.
//!
//! Trees (all keys big-endian so that byte order is numeric order):
//!
//! | tree       | key                                 | value                        |
//! |------------|-------------------------------------|------------------------------|
//! | `messages` | sequence (u64)                      | `MessageRecord`              |
//! | `payloads` | sequence (u64) + chunk index (u32)  | payload bytes, 1 MiB chunks (format 1 only; now in `payload-segments/`, see `segments`) |
//! | `dedup`    | sender (2) + message id (16)        | sequence (u64)               |
//! | `queue`    | recipient (2) + sequence (u64)      | empty: pending delivery      |
//! | `status`   | sequence (u64)                      | `StatusRecord`               |
//! | `log`      | log index (u64)                     | `LogEntry`                   |
//! | `log_nodes` | level (u8) + index (u64)           | 32-byte hash of a perfect subtree of the log's Merkle tree |
//! | `meta`     | `next_sequence`, `next_log_index`   | u64                          |
//! | `registry` | `current`                           | `RegistryRecord`             |
//! | `certificates` | serial (hex text)               | `CertificateRecord`          |
//! | `tree_heads` | tree size (u64)                   | `TreeHead`: signed Merkle roots of the log |
//! | `events`   | sender (2) + event cursor (u64)     | `StatusEvent`: what the sender sees |
//!
//! Every accept and acknowledgement is one multi-tree transaction, so a crash leaves either
//! all of a message's entries or none. Durability: `flush()` writes sled's log with
//! `sync_file_range`, which survives a killed process but (unlike `fsync`) is not guaranteed
//! to survive a power cut on a disk with a volatile write cache.

use std::{
    path::Path,
    sync::{Mutex, RwLock},
};

use prost::Message;
use sled::{
    Transactional,
    transaction::{ConflictableTransactionError, TransactionError, TransactionalTree},
};

use caravan_common::{MessageId, ParticipantId, Timestamp, merkle};

use super::{
    Acceptance, AckResult, AckUpdate, Backend, BackupSummary, Incoming, MessageState, Pending,
    Settled, StatusRecord, StoreError,
    records::{
        CertificateRecord, LogEntry, LogKind, MessageRecord, RegistryRecord, StatusEvent, TreeHead,
    },
};
use caravan_common::segments::{Location, Segments};

const NEXT_SEQUENCE: &[u8] = b"next_sequence";
const NEXT_LOG_INDEX: &[u8] = b"next_log_index";
const CURRENT_REGISTRY: &[u8] = b"current";
const NEXT_EVENT: &[u8] = b"next_event";

/// The outcome of a state change.
struct Transitioned {
    state: MessageState,
    /// The log entry that recorded the change, or of the acknowledgement held before.
    log_index: u64,
    /// The message, if it changed state now.
    now: Option<Settled>,
}

/// The sled backend.
pub struct SledBackend {
    db: sled::Db,
    messages: sled::Tree,
    payloads: sled::Tree,
    dedup: sled::Tree,
    queue: sled::Tree,
    status: sled::Tree,
    log: sled::Tree,
    log_nodes: sled::Tree,
    meta: sled::Tree,
    registry: sled::Tree,
    certificates: sled::Tree,
    events: sled::Tree,
    tree_heads: sled::Tree,
    /// Serialises writers that take sequence numbers. This is a `std` mutex, not a Tokio one:
    /// it is only held on blocking threads, for the few microseconds of an in-memory sled
    /// transaction, and it spares those transactions from conflicting and retrying.
    writer: Mutex<()>,
    /// The payloads (see `segments`).
    segments: Segments,
    /// Every write holds it shared; an online backup holds it exclusively, so that it copies
    /// a state between transactions, never in the middle of one's trees.
    gate: RwLock<()>,
}

/// The store's layout version, in `meta`. Opening a store of a later version is refused (a
/// downgrade would misread it); an earlier one is upgraded at open.
/// Version 2: payloads in segment files, not in sled.
pub const FORMAT_VERSION: u64 = 2;
const FORMAT_KEY: &[u8] = b"format_version";
const EPOCH: &[u8] = b"epoch";
const REGISTRY_FLOOR: &[u8] = b"registry_version_floor";

/// A fresh epoch: a UUIDv7, unique and ordered by time.
fn new_epoch() -> String {
    MessageId::generate().to_string()
}

/// The transaction aborted on purpose with this outcome.
enum Abort {
    Duplicate(u64, Vec<u8>, u64),
    Conflict,
    Corrupt(StoreError),
}

fn backend_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn u64_value(bytes: &[u8], what: &'static str) -> Result<u64, StoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(what, "not 8 bytes"))
}

/// Payloads are stored in chunks of this size, so that no value is huge and a delivery can
/// stream a document without loading it whole.
pub const PAYLOAD_CHUNK: usize = 1024 * 1024;

fn chunk_key(sequence: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&sequence.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

fn dedup_key(sender: ParticipantId, id: MessageId) -> [u8; 18] {
    let mut key = [0u8; 18];
    key[..2].copy_from_slice(sender.as_str().as_bytes());
    key[2..].copy_from_slice(id.as_bytes());
    key
}

fn queue_key(recipient: ParticipantId, sequence: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(recipient.as_str().as_bytes());
    key[2..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// Take the next value of a counter in `meta`, starting at 1.
fn next_counter(
    meta: &TransactionalTree,
    name: &[u8],
) -> Result<u64, ConflictableTransactionError<Abort>> {
    let current = match meta.get(name)? {
        Some(v) => u64_value(&v, "counter")
            .map_err(|e| ConflictableTransactionError::Abort(Abort::Corrupt(e)))?,
        None => 1,
    };
    meta.insert(name, &(current + 1).to_be_bytes())?;
    Ok(current)
}

/// Append a status event to `sender`'s stream of events.
fn append_event(
    events: &TransactionalTree,
    meta: &TransactionalTree,
    sender: ParticipantId,
    event: &StatusEvent,
) -> Result<(), ConflictableTransactionError<Abort>> {
    let cursor = next_counter(meta, NEXT_EVENT)?;
    events.insert(&queue_key(sender, cursor), event.encode_to_vec())?;
    Ok(())
}

fn node_key(level: u32, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level as u8;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn node_value(
    bytes: Option<sled::IVec>,
    level: u32,
    index: u64,
) -> Result<merkle::Hash, StoreError> {
    bytes
        .and_then(|b| <merkle::Hash>::try_from(b.as_ref()).ok())
        .ok_or_else(|| {
            corrupt(
                "log node",
                format!("node {index} at level {level} is missing"),
            )
        })
}

/// Append `entry` to the exchange log with the Merkle nodes it completes; returns its index
/// (from 1).
fn append_log(
    log: &TransactionalTree,
    nodes: &TransactionalTree,
    meta: &TransactionalTree,
    entry: &LogEntry,
) -> Result<u64, ConflictableTransactionError<Abort>> {
    let index = next_counter(meta, NEXT_LOG_INDEX)?;
    let bytes = entry.encode_to_vec();
    let appended = merkle::appended_nodes(index - 1, merkle::leaf_hash(&bytes), |level, i| {
        node_value(nodes.get(node_key(level, i))?, level, i)
            .map_err(|e| ConflictableTransactionError::Abort(Abort::Corrupt(e)))
    })?;
    for (level, i, hash) in appended {
        nodes.insert(&node_key(level, i), &hash)?;
    }
    log.insert(&index.to_be_bytes(), bytes)?;
    Ok(index)
}

impl SledBackend {
    /// Open (or create) the store in `path`, with at most `cache_bytes` of page cache.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let tree = |name: &str| db.open_tree(name).map_err(backend_error);
        let backend = Self {
            messages: tree("messages")?,
            payloads: tree("payloads")?,
            dedup: tree("dedup")?,
            queue: tree("queue")?,
            status: tree("status")?,
            log: tree("log")?,
            log_nodes: tree("log_nodes")?,
            meta: tree("meta")?,
            registry: tree("registry")?,
            certificates: tree("certificates")?,
            events: tree("events")?,
            tree_heads: tree("tree_heads")?,
            db,
            segments: Segments::open(path).map_err(backend_error)?,
            writer: Mutex::new(()),
            gate: RwLock::new(()),
        };
        backend.upgrade()?;
        Ok(backend)
    }

    /// Bring a store of an earlier format up to [`FORMAT_VERSION`], or refuse a later one.
    fn upgrade(&self) -> Result<(), StoreError> {
        let found = self
            .meta
            .get(FORMAT_KEY)
            .map_err(backend_error)?
            .map(|v| u64_value(&v, "format version"))
            .transpose()?;
        if let Some(v) = found
            && v > FORMAT_VERSION
        {
            return Err(StoreError::Backend(format!(
                "the store has format version {v}, written by a newer Caravan; this one reads up to version {FORMAT_VERSION}: run the newer binary, or restore a backup taken before the upgrade"
            )));
        }
        // Version 0 (no version recorded): the log's Merkle nodes may be missing, and there is
        // no epoch yet.
        self.complete_log_nodes()?;
        if self.meta.get(EPOCH).map_err(backend_error)?.is_none() {
            self.meta
                .insert(EPOCH, new_epoch().as_bytes())
                .map_err(backend_error)?;
        }
        if found != Some(FORMAT_VERSION) {
            self.meta
                .insert(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())
                .map_err(backend_error)?;
            self.flush()?;
        }
        Ok(())
    }

    /// Prepare a store just copied from a backup to be the hub's: a new epoch (cursors handed
    /// out before are recognised as stale), and, from the store it replaces if there is one,
    /// sequence and event numbers continued (never reused) and the trust-list version to move
    /// beyond (spokes refuse an older list).
    pub fn prepare_restored(&self, replaced: Option<&SledBackend>) -> Result<(), StoreError> {
        self.meta
            .insert(EPOCH, new_epoch().as_bytes())
            .map_err(backend_error)?;
        if let Some(old) = replaced {
            for counter in [NEXT_SEQUENCE, NEXT_EVENT] {
                let read = |b: &SledBackend| -> Result<u64, StoreError> {
                    b.meta
                        .get(counter)
                        .map_err(backend_error)?
                        .map(|v| u64_value(&v, "counter"))
                        .transpose()
                        .map(|v| v.unwrap_or(1))
                };
                let next = read(self)?.max(read(old)?);
                self.meta
                    .insert(counter, &next.to_be_bytes())
                    .map_err(backend_error)?;
            }
            let version = match old.registry()? {
                Some(record) => {
                    caravan_proto::v1::SignedTrustList::decode(record.signed_trust_list.as_slice())
                        .ok()
                        .and_then(|s| caravan_proto::v1::TrustList::decode(s.body.as_slice()).ok())
                        .map_or(0, |l| l.version)
                }
                None => 0,
            };
            self.meta
                .insert(REGISTRY_FLOOR, &version.to_be_bytes())
                .map_err(backend_error)?;
        }
        self.flush()
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A store written before the log kept its Merkle nodes gets them computed from its entries
    /// once, at open: the upgrade path for the log's proofs. (Nodes are written in the same
    /// transaction as their entry, so a crash cannot leave them behind.)
    fn complete_log_nodes(&self) -> Result<(), StoreError> {
        let leaves = match self
            .log_nodes
            .range(node_key(0, 0)..node_key(1, 0))
            .next_back()
        {
            Some(entry) => u64_value(&entry.map_err(backend_error)?.0[1..], "log node")? + 1,
            None => 0,
        };
        let size = self.log_size()?;
        if leaves >= size {
            return Ok(());
        }
        tracing::info!(
            from = leaves + 1,
            to = size,
            "computing the exchange log's Merkle nodes"
        );
        for entry in self.log.range((leaves + 1).to_be_bytes()..) {
            let (key, bytes) = entry.map_err(backend_error)?;
            let index = u64_value(&key, "log")?;
            let appended = merkle::appended_nodes(index - 1, merkle::leaf_hash(&bytes), |l, i| {
                self.log_node(l, i)
            })?;
            for (level, i, hash) in appended {
                self.log_nodes
                    .insert(node_key(level, i), &hash)
                    .map_err(backend_error)?;
            }
        }
        self.flush()
    }

    fn message(&self, sequence: u64) -> Result<MessageRecord, StoreError> {
        let bytes = self
            .messages
            .get(sequence.to_be_bytes())
            .map_err(backend_error)?
            .ok_or_else(|| corrupt("message", format!("sequence {sequence} is missing")))?;
        MessageRecord::decode(bytes.as_ref()).map_err(|e| corrupt("message", e))
    }

    /// Move message `sequence` to `to` if it is in one of `from`, together with its log entry
    /// and its sender's status event; a settled message also leaves the recipient's queue.
    /// Returns the state the message is in afterwards.
    fn transition(
        &self,
        sequence: u64,
        from: &[MessageState],
        to: MessageState,
        at: Timestamp,
        ack: Option<&[u8]>,
    ) -> Result<Transitioned, StoreError> {
        let _gate = self.shared();
        let record = self.message(sequence)?;
        let sender: ParticipantId = record.sender.parse().map_err(|e| corrupt("message", e))?;
        let recipient: ParticipantId = record
            .recipient
            .parse()
            .map_err(|e| corrupt("message", e))?;
        let evidence = ack
            .map(|a| caravan_common::signing::sha256(a).to_vec())
            .unwrap_or_default();
        let kind = match to {
            MessageState::Delivered => LogKind::Delivered,
            MessageState::Acknowledged => LogKind::Acknowledged,
            MessageState::Rejected => LogKind::Rejected,
            _ => LogKind::Expired,
        };
        let result = (
            &self.status,
            &self.queue,
            &self.log,
            &self.log_nodes,
            &self.meta,
            &self.events,
        )
            .transaction(|(status, queue, log, nodes, meta, events)| {
                let key = sequence.to_be_bytes();
                let mut state = match status.get(key)? {
                    Some(bytes) => StatusRecord::decode(bytes.as_ref()).map_err(|e| {
                        ConflictableTransactionError::Abort(Abort::Corrupt(corrupt("status", e)))
                    })?,
                    None => return Ok((MessageState::Unspecified, 0, false)),
                };
                if !from.contains(&state.current()) {
                    return Ok((state.current(), state.ack_log_index, false));
                }
                if to.is_final() {
                    queue.remove(&queue_key(recipient, sequence))?;
                }
                let log_index = append_log(
                    log,
                    nodes,
                    meta,
                    &LogEntry {
                        kind: kind as i32,
                        at_ms: at.as_millis(),
                        sequence,
                        sender: record.sender.clone(),
                        recipient: record.recipient.clone(),
                        message_id: record.message_id.clone(),
                        header_sha256: record.header_sha256.clone(),
                        evidence_sha256: evidence.clone(),
                        ..Default::default()
                    },
                )?;
                state.advance(to, at);
                if let Some(ack) = ack {
                    state.ack = ack.to_vec();
                    state.ack_log_index = log_index;
                }
                status.insert(&key, state.encode_to_vec())?;
                append_event(
                    events,
                    meta,
                    sender,
                    &StatusEvent {
                        sequence,
                        message_id: record.message_id.clone(),
                        state: to as i32,
                        at_ms: at.as_millis(),
                        ack: ack.map(<[u8]>::to_vec).unwrap_or_default(),
                        log_index,
                    },
                )?;
                Ok((to, log_index, true))
            });
        let (state, log_index, fresh) =
            transaction_result(result)?.map_err(|_| corrupt("status", "unexpected abort"))?;
        Ok(Transitioned {
            state,
            log_index,
            now: fresh.then(|| Settled {
                sender,
                recipient,
                document_type: record.document_type,
                accepted_at: Timestamp::from_millis(record.accepted_at_ms),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`, so a panic elsewhere cannot have left it inconsistent.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn transaction_result<T>(
    r: Result<T, TransactionError<Abort>>,
) -> Result<Result<T, Abort>, StoreError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(TransactionError::Abort(Abort::Corrupt(e))) => Err(e),
        Err(TransactionError::Abort(abort)) => Ok(Err(abort)),
        Err(TransactionError::Storage(e)) => Err(backend_error(e)),
    }
}

impl Backend for SledBackend {
    fn accept(
        &self,
        m: &Incoming,
        issue_receipt: &dyn Fn(u64) -> Vec<u8>,
    ) -> Result<Acceptance, StoreError> {
        let _gate = self.shared();
        let _writer = self.lock();
        let dedup = dedup_key(m.sender, m.message_id);
        // The payload goes to its segment first (a resend of a stored message writes nothing).
        let at = if m.payload.is_empty() || self.dedup.contains_key(dedup).map_err(backend_error)? {
            Location {
                segment: 0,
                offset: 0,
            }
        } else {
            self.segments.append(&m.payload).map_err(backend_error)?
        };
        let result = (
            &self.messages,
            &self.dedup,
            &self.queue,
            &self.status,
            &self.log,
            &self.log_nodes,
            &self.meta,
            &self.events,
        )
            .transaction(
                |(messages, dedup_tree, queue, status, log, nodes, meta, events)| {
                    if let Some(existing) = dedup_tree.get(dedup)? {
                        let sequence = u64_value(&existing, "dedup")
                            .map_err(|e| ConflictableTransactionError::Abort(Abort::Corrupt(e)))?;
                        let record = messages
                            .get(sequence.to_be_bytes())?
                            .ok_or_else(|| {
                                corrupt("message", format!("sequence {sequence} is missing"))
                            })
                            .and_then(|b| {
                                MessageRecord::decode(b.as_ref()).map_err(|e| corrupt("message", e))
                            })
                            .map_err(|e| ConflictableTransactionError::Abort(Abort::Corrupt(e)))?;
                        let abort = if record.header_sha256 == m.header_sha256 {
                            Abort::Duplicate(sequence, record.receipt, record.log_index)
                        } else {
                            Abort::Conflict
                        };
                        return Err(ConflictableTransactionError::Abort(abort));
                    }
                    let sequence = next_counter(meta, NEXT_SEQUENCE)?;
                    let key = sequence.to_be_bytes();
                    let receipt = issue_receipt(sequence);
                    let log_index = append_log(
                        log,
                        nodes,
                        meta,
                        &LogEntry {
                            kind: LogKind::Accepted as i32,
                            at_ms: m.accepted_at.as_millis(),
                            sequence,
                            sender: m.sender.to_string(),
                            recipient: m.recipient.to_string(),
                            message_id: m.message_id.to_string(),
                            header_sha256: m.header_sha256.to_vec(),
                            ..Default::default()
                        },
                    )?;
                    let record = MessageRecord {
                        sender: m.sender.to_string(),
                        message_id: m.message_id.to_string(),
                        recipient: m.recipient.to_string(),
                        document_type: m.document_type.to_string(),
                        header_sha256: m.header_sha256.to_vec(),
                        header: m.header.clone(),
                        key_id: m.key_id.clone(),
                        signature: m.signature.clone(),
                        receipt: receipt.clone(),
                        accepted_at_ms: m.accepted_at.as_millis(),
                        payload_length: m.payload.len() as u64,
                        payload_chunks: m.payload.len().div_ceil(PAYLOAD_CHUNK) as u32,
                        log_index,
                        payload_segment: at.segment,
                        payload_offset: at.offset,
                    };
                    messages.insert(&key, record.encode_to_vec())?;
                    dedup_tree.insert(&dedup, &key)?;
                    queue.insert(&queue_key(m.recipient, sequence), &[])?;
                    // The receipt stays in the message record only: the status record is
                    // rewritten at every state change, and `status` fills it in.
                    let mut state = StatusRecord::default();
                    state.advance(MessageState::Accepted, m.accepted_at);
                    status.insert(&key, state.encode_to_vec())?;
                    append_event(
                        events,
                        meta,
                        m.sender,
                        &StatusEvent {
                            sequence,
                            message_id: record.message_id.clone(),
                            state: MessageState::Accepted as i32,
                            at_ms: m.accepted_at.as_millis(),
                            ack: Vec::new(),
                            log_index,
                        },
                    )?;
                    Ok((sequence, receipt, log_index))
                },
            );
        Ok(match transaction_result(result)? {
            Ok((sequence, receipt, log_index)) => Acceptance::Accepted {
                sequence,
                receipt,
                log_index,
            },
            Err(Abort::Duplicate(sequence, receipt, log_index)) => Acceptance::Duplicate {
                sequence,
                receipt,
                log_index,
            },
            Err(Abort::Conflict) => Acceptance::Conflict,
            Err(Abort::Corrupt(e)) => return Err(e),
        })
    }

    fn pending(
        &self,
        recipient: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let start = queue_key(recipient, after.saturating_add(1));
        let end = queue_key(recipient, u64::MAX);
        let mut out = Vec::new();
        for entry in self.queue.range(start..=end).take(limit) {
            let (key, _) = entry.map_err(backend_error)?;
            let sequence = u64_value(&key[2..], "queue")?;
            let record = self.message(sequence)?;
            out.push(Pending {
                sequence,
                sender: record.sender.parse().map_err(|e| corrupt("message", e))?,
                message_id: record
                    .message_id
                    .parse()
                    .map_err(|e| corrupt("message", e))?,
                header: record.header,
                key_id: record.key_id,
                signature: record.signature,
                payload_length: record.payload_length,
                payload_chunks: record.payload_chunks,
                receipt: record.receipt,
                document_type: record.document_type,
                accepted_at: Timestamp::from_millis(record.accepted_at_ms),
            });
        }
        Ok(out)
    }

    fn mark_delivered(&self, sequence: u64, at: Timestamp) -> Result<bool, StoreError> {
        self.transition(
            sequence,
            &[MessageState::Accepted],
            MessageState::Delivered,
            at,
            None,
        )
        .map(|t| t.now.is_some())
    }

    fn acknowledge(&self, u: &AckUpdate) -> Result<AckResult, StoreError> {
        let Some(seq_bytes) = self
            .dedup
            .get(dedup_key(u.sender, u.message_id))
            .map_err(backend_error)?
        else {
            return Ok(AckResult::UnknownMessage);
        };
        let sequence = u64_value(&seq_bytes, "dedup")?;
        let record = self.message(sequence)?;
        if record.recipient != u.recipient.as_str() {
            return Ok(AckResult::UnknownMessage);
        }
        if record.header_sha256 != u.header_sha256 {
            return Ok(AckResult::DigestMismatch);
        }
        // Acknowledging twice is harmless: the first answer stands.
        let open = [MessageState::Accepted, MessageState::Delivered];
        let t = self.transition(sequence, &open, u.state, u.at, Some(&u.ack))?;
        Ok(AckResult::Recorded {
            state: t.state,
            log_index: t.log_index,
            now: t.now,
        })
    }

    fn expire(
        &self,
        now: Timestamp,
        ttl: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Vec<Settled>, StoreError> {
        let mut expired = Vec::new();
        for entry in self.queue.iter() {
            let (key, _) = entry.map_err(backend_error)?;
            let sequence = u64_value(&key[2..], "queue")?;
            let record = self.message(sequence)?;
            let Some(ttl_ms) = ttl(&record.document_type) else {
                continue;
            };
            if now.as_millis() < record.accepted_at_ms.saturating_add(ttl_ms as i64) {
                continue;
            }
            let open = [MessageState::Accepted, MessageState::Delivered];
            let t = self.transition(sequence, &open, MessageState::Expired, now, None)?;
            expired.extend(t.now);
        }
        Ok(expired)
    }

    fn queue_depths(&self) -> Result<Vec<(ParticipantId, u64)>, StoreError> {
        let mut depths: Vec<(ParticipantId, u64)> = Vec::new();
        for key in self.queue.iter().keys() {
            let key = key.map_err(backend_error)?;
            let recipient = std::str::from_utf8(&key[..2])
                .ok()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| corrupt("queue", "key without a recipient"))?;
            match depths.last_mut() {
                Some((r, n)) if *r == recipient => *n += 1,
                _ => depths.push((recipient, 1)),
            }
        }
        Ok(depths)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk().map_err(backend_error)?
            + self.segments.size().map_err(backend_error)?)
    }

    fn payload_chunk(&self, sequence: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let record = self.message(sequence)?;
        if record.payload_segment == 0 {
            // Format 1, or an empty payload.
            return Ok(self
                .payloads
                .get(chunk_key(sequence, index))
                .map_err(backend_error)?
                .map(|v| v.to_vec()));
        }
        let skip = u64::from(index) * PAYLOAD_CHUNK as u64;
        if skip >= record.payload_length {
            return Ok(None);
        }
        let len = (record.payload_length - skip).min(PAYLOAD_CHUNK as u64) as usize;
        let at = Location {
            segment: record.payload_segment,
            offset: record.payload_offset,
        };
        self.segments
            .read(at, skip, len)
            .map(Some)
            .map_err(backend_error)
    }

    fn events(
        &self,
        sender: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StatusEvent)>, StoreError> {
        let start = queue_key(sender, after.saturating_add(1));
        let end = queue_key(sender, u64::MAX);
        self.events
            .range(start..=end)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(backend_error)?;
                let cursor = u64_value(&key[2..], "event")?;
                Ok((
                    cursor,
                    StatusEvent::decode(value.as_ref()).map_err(|e| corrupt("event", e))?,
                ))
            })
            .collect()
    }

    fn status(
        &self,
        sender: ParticipantId,
        message_id: MessageId,
    ) -> Result<Option<StatusRecord>, StoreError> {
        let Some(seq_bytes) = self
            .dedup
            .get(dedup_key(sender, message_id))
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        let sequence = u64_value(&seq_bytes, "dedup")?;
        let bytes = self
            .status
            .get(sequence.to_be_bytes())
            .map_err(backend_error)?
            .ok_or_else(|| corrupt("status", format!("sequence {sequence} is missing")))?;
        let mut status = StatusRecord::decode(bytes.as_ref()).map_err(|e| corrupt("status", e))?;
        if status.receipt.is_empty() {
            status.receipt = self.message(sequence)?.receipt;
        }
        Ok(Some(status))
    }

    fn registry(&self) -> Result<Option<RegistryRecord>, StoreError> {
        self.registry
            .get(CURRENT_REGISTRY)
            .map_err(backend_error)?
            .map(|b| RegistryRecord::decode(b.as_ref()).map_err(|e| corrupt("registry", e)))
            .transpose()
    }

    fn save_registry(&self, record: &RegistryRecord, entry: &LogEntry) -> Result<(), StoreError> {
        let _gate = self.shared();
        let value = record.encode_to_vec();
        let result = (&self.registry, &self.log, &self.log_nodes, &self.meta).transaction(
            |(registry, log, nodes, meta)| {
                registry.insert(CURRENT_REGISTRY, value.as_slice())?;
                append_log(log, nodes, meta, entry).map(drop)
            },
        );
        transaction_result(result)?.map_err(|_| corrupt("registry", "unexpected abort"))
    }

    fn record_certificate(&self, certificate: &CertificateRecord) -> Result<(), StoreError> {
        let _gate = self.shared();
        let value = certificate.encode_to_vec();
        self.certificates
            .compare_and_swap(
                certificate.serial.as_bytes(),
                None as Option<&[u8]>,
                Some(value),
            )
            .map_err(backend_error)?
            .ok(); // Already known: the first sighting stands.
        Ok(())
    }

    fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        self.certificates
            .iter()
            .map(|entry| {
                let (_, v) = entry.map_err(backend_error)?;
                CertificateRecord::decode(v.as_ref()).map_err(|e| corrupt("certificate", e))
            })
            .collect()
    }

    fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.log
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|entry| {
                let (k, v) = entry.map_err(backend_error)?;
                Ok((u64_value(&k, "log")?, v.to_vec()))
            })
            .collect()
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(NEXT_LOG_INDEX)
            .map_err(backend_error)?
            .map(|v| u64_value(&v, "counter"))
            .transpose()?
            .map_or(0, |next| next - 1))
    }

    fn log_node(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
        node_value(
            self.log_nodes
                .get(node_key(level, index))
                .map_err(backend_error)?,
            level,
            index,
        )
    }

    fn save_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        let _gate = self.shared();
        self.tree_heads
            .insert(head.tree_size.to_be_bytes(), head.encode_to_vec())
            .map(drop)
            .map_err(backend_error)
    }

    fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError> {
        self.tree_heads
            .iter()
            .map(|entry| {
                let (_, v) = entry.map_err(backend_error)?;
                TreeHead::decode(v.as_ref()).map_err(|e| corrupt("tree head", e))
            })
            .collect()
    }

    fn epoch(&self) -> Result<String, StoreError> {
        Ok(self
            .meta
            .get(EPOCH)
            .map_err(backend_error)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    }

    fn registry_version_floor(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(REGISTRY_FLOOR)
            .map_err(backend_error)?
            .map(|v| u64_value(&v, "registry version floor"))
            .transpose()?
            .unwrap_or(0))
    }

    fn backup(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        let started = std::time::Instant::now();
        // Writers wait until the copy is done; readers (deliveries, status) go on.
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let copy = sled::Config::new()
            .path(dest)
            .create_new(true)
            .open()
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dest.display())))?;
        let mut records = 0u64;
        for name in self.db.tree_names() {
            let from = self.db.open_tree(&name).map_err(backend_error)?;
            let to = copy.open_tree(&name).map_err(backend_error)?;
            for entry in from.iter() {
                let (k, v) = entry.map_err(backend_error)?;
                to.insert(k, v).map_err(backend_error)?;
                records += 1;
            }
        }
        copy.flush().map_err(backend_error)?;
        let bytes = copy.size_on_disk().map_err(backend_error)?
            + self.segments.copy_to(dest).map_err(backend_error)?;
        Ok(BackupSummary {
            records,
            bytes,
            log_entries: self.log_size()?,
            pause: started.elapsed(),
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Payloads first: a record flushed by sled must not name bytes still in the page cache.
        self.segments.sync().map_err(backend_error)?;
        self.db.flush().map(drop).map_err(backend_error)
    }
}
