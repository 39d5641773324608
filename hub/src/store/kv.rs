//! The hub's store over a key-value engine (`caravan_common::kv`: sled by default, or redb).
//!
//! Tables (all keys big-endian so that byte order is numeric order):
//!
//! | table      | key                                 | value                        |
//! |------------|-------------------------------------|------------------------------|
//! | `messages` | sequence (u64)                      | `MessageRecord`              |
//! | `payloads` | sequence (u64) + chunk index (u32)  | payload bytes up to the engine's `inline_payload_limit` (redb: 8 KiB), and format 1's 1 MiB chunks; the others are in `payload-segments/` (see `segments`) |
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
//! Every accept and acknowledgement is one transaction over several tables, so a crash leaves
//! either all of a message's entries or none. Payloads above the engine's inline limit are
//! appended to segment files first and synced before the engine's flush, so that a durable
//! record never names bytes that are not on disk. What a flush promises depends on the engine
//! (see `caravan_common::kv`).

use std::path::{Path, PathBuf};

use prost::Message;

use caravan_common::{
    MessageId, ParticipantId, Timestamp,
    kv::{self, Engine, EngineKind, KvError, Tx},
    merkle, recovery,
    segments::{Damaged, Location, PayloadReader, SegmentError, Segments},
};

use super::{
    Acceptance, AckResult, AckUpdate, Backend, BackupSummary, ChunkByChunk, Incoming, MessageState,
    PayloadChunks, Pending, Settled, StatusRecord, StoreError,
    records::{
        CertificateRecord, LogEntry, LogKind, MessageRecord, RegistryRecord, StatusEvent, TreeHead,
    },
};

mod check;

const MESSAGES: &str = "messages";
const PAYLOADS: &str = "payloads";
const DEDUP: &str = "dedup";
const QUEUE: &str = "queue";
const STATUS: &str = "status";
const LOG: &str = "log";
const LOG_NODES: &str = "log_nodes";
const META: &str = "meta";
const REGISTRY: &str = "registry";
const CERTIFICATES: &str = "certificates";
const EVENTS: &str = "events";
const TREE_HEADS: &str = "tree_heads";
const TABLES: &[&str] = &[
    MESSAGES,
    PAYLOADS,
    DEDUP,
    QUEUE,
    STATUS,
    LOG,
    LOG_NODES,
    META,
    REGISTRY,
    CERTIFICATES,
    EVENTS,
    TREE_HEADS,
];

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

/// The hub's store on a key-value engine.
pub struct KvBackend {
    engine: Box<dyn Engine>,
    /// The payloads (see `segments`).
    segments: Segments,
    /// The store's folder, for reports.
    path: PathBuf,
    /// Messages whose payload failed its checksum, by sequence (logged once each).
    damaged: Damaged<u64>,
}

/// The store's layout version, in `meta`. Opening a store of a later version is refused (a
/// downgrade would misread it); an earlier one is upgraded at open.
/// Version 2: payloads in segment files, not in the engine.
pub const FORMAT_VERSION: u64 = 2;
const FORMAT_KEY: &[u8] = b"format_version";
const EPOCH: &[u8] = b"epoch";
const REGISTRY_FLOOR: &[u8] = b"registry_version_floor";

/// A fresh epoch: a UUIDv7, unique and ordered by time.
fn new_epoch() -> String {
    MessageId::generate().to_string()
}

impl From<KvError> for StoreError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Corrupt { what, detail } => StoreError::Corrupt { what, detail },
            KvError::Unavailable(fault) => StoreError::Unavailable(fault),
            other => StoreError::Backend(other.to_string()),
        }
    }
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

fn u64_value(bytes: &[u8], what: &'static str) -> Result<u64, KvError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| KvError::corrupt(what, "not 8 bytes"))
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
fn next_counter(tx: &mut dyn Tx, name: &[u8]) -> Result<u64, KvError> {
    let current = match tx.get(META, name)? {
        Some(v) => u64_value(&v, "counter")?,
        None => 1,
    };
    tx.insert(META, name, &(current + 1).to_be_bytes())?;
    Ok(current)
}

/// Append a status event to `sender`'s stream of events.
fn append_event(
    tx: &mut dyn Tx,
    sender: ParticipantId,
    event: &StatusEvent,
) -> Result<(), KvError> {
    let cursor = next_counter(tx, NEXT_EVENT)?;
    tx.insert(EVENTS, &queue_key(sender, cursor), &event.encode_to_vec())
}

fn node_key(level: u32, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level as u8;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn node_value(bytes: Option<Vec<u8>>, level: u32, index: u64) -> Result<merkle::Hash, KvError> {
    bytes
        .and_then(|b| <merkle::Hash>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            KvError::corrupt(
                "log node",
                format!("node {index} at level {level} is missing"),
            )
        })
}

/// Append `entry` to the exchange log with the Merkle nodes it completes; returns its index
/// (from 1).
fn append_log(tx: &mut dyn Tx, entry: &LogEntry) -> Result<u64, KvError> {
    let index = next_counter(tx, NEXT_LOG_INDEX)?;
    let bytes = entry.encode_to_vec();
    let appended = merkle::appended_nodes(index - 1, merkle::leaf_hash(&bytes), |level, i| {
        node_value(tx.get(LOG_NODES, &node_key(level, i))?, level, i)
    })?;
    for (level, i, hash) in appended {
        tx.insert(LOG_NODES, &node_key(level, i), &hash)?;
    }
    tx.insert(LOG, &index.to_be_bytes(), &bytes)?;
    Ok(index)
}

fn decode_message(bytes: &[u8]) -> Result<MessageRecord, KvError> {
    MessageRecord::decode(bytes).map_err(|e| KvError::corrupt("message", e))
}

impl KvBackend {
    /// Open (or create, on `engine`) the store in folder `path`, with at most `cache_bytes` of
    /// page cache.
    pub fn open(path: &Path, engine: EngineKind, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::on(kv::open(path, engine, TABLES, cache_bytes)?, path)
    }

    /// Open the store in folder `path` on whichever engine it was created with (for tools that
    /// read a store or a backup); `None` if `path` holds no store.
    pub fn open_found(path: &Path, cache_bytes: u64) -> Result<Option<Self>, StoreError> {
        kv::open_found(path, TABLES, cache_bytes)?
            .map(|engine| Self::on(engine, path))
            .transpose()
    }

    /// Open the store for the hub to run on: [`Self::check_at_start`] runs before the upgrade
    /// writes anything; a store that fails it is left as it is, and its report returned.
    pub fn open_checked(
        path: &Path,
        engine: EngineKind,
        cache_bytes: u64,
    ) -> Result<Result<Self, caravan_common::check::Report>, StoreError> {
        let backend = Self::unchecked(kv::open(path, engine, TABLES, cache_bytes)?, path)?;
        let report = backend.check_at_start();
        if !report.is_sound() {
            return Ok(Err(report));
        }
        backend.upgrade()?;
        Ok(Ok(backend))
    }

    fn on(engine: Box<dyn Engine>, path: &Path) -> Result<Self, StoreError> {
        let backend = Self::unchecked(engine, path)?;
        backend.upgrade()?;
        Ok(backend)
    }

    fn unchecked(engine: Box<dyn Engine>, path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            engine,
            segments: Segments::open(path).map_err(backend_error)?,
            path: path.to_path_buf(),
            damaged: Damaged::default(),
        })
    }

    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.engine.get(META, key)?)
    }

    fn set_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        Ok(self.engine.write(&mut |tx| tx.insert(META, key, value))?)
    }

    fn meta_u64(&self, key: &[u8], what: &'static str) -> Result<Option<u64>, StoreError> {
        Ok(self.meta(key)?.map(|v| u64_value(&v, what)).transpose()?)
    }

    /// Bring a store of an earlier format up to [`FORMAT_VERSION`], or refuse a later one.
    fn upgrade(&self) -> Result<(), StoreError> {
        let found = self.meta_u64(FORMAT_KEY, "format version")?;
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
        if self.meta(EPOCH)?.is_none() {
            self.set_meta(EPOCH, new_epoch().as_bytes())?;
        }
        if found != Some(FORMAT_VERSION) {
            self.set_meta(FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
            self.flush()?;
        }
        Ok(())
    }

    /// Prepare a store just copied from a backup to be the hub's: a new epoch (cursors handed
    /// out before are recognised as stale), and, from the store it replaces if there is one,
    /// sequence and event numbers continued (never reused) and the trust-list version to move
    /// beyond (spokes refuse an older list).
    pub fn prepare_restored(&self, replaced: Option<&KvBackend>) -> Result<(), StoreError> {
        self.set_meta(EPOCH, new_epoch().as_bytes())?;
        if let Some(old) = replaced {
            for counter in [NEXT_SEQUENCE, NEXT_EVENT] {
                let read = |b: &KvBackend| -> Result<u64, StoreError> {
                    Ok(b.meta_u64(counter, "counter")?.unwrap_or(1))
                };
                let next = read(self)?.max(read(old)?);
                self.set_meta(counter, &next.to_be_bytes())?;
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
            self.set_meta(REGISTRY_FLOOR, &version.to_be_bytes())?;
        }
        self.flush()
    }

    /// A store written before the log kept its Merkle nodes gets them computed from its entries
    /// once, at open: the upgrade path for the log's proofs. (Nodes are written in the same
    /// transaction as their entry, so a crash cannot leave them behind.)
    fn complete_log_nodes(&self) -> Result<(), StoreError> {
        let last_leaf =
            self.engine
                .range(LOG_NODES, &node_key(0, 0), Some(&node_key(1, 0)), 1, true)?;
        let mut leaves = match last_leaf.first() {
            Some((key, _)) => u64_value(&key[1..], "log node")? + 1,
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
        while leaves < size {
            let entries = self.log_entries(leaves + 1, 1024)?;
            self.engine.write(&mut |tx| {
                for (index, bytes) in &entries {
                    let appended =
                        merkle::appended_nodes(index - 1, merkle::leaf_hash(bytes), |l, i| {
                            node_value(tx.get(LOG_NODES, &node_key(l, i))?, l, i)
                        })?;
                    for (level, i, hash) in appended {
                        tx.insert(LOG_NODES, &node_key(level, i), &hash)?;
                    }
                }
                Ok(())
            })?;
            leaves += entries.len() as u64;
            if entries.is_empty() {
                break;
            }
        }
        self.flush()
    }

    fn message(&self, sequence: u64) -> Result<MessageRecord, StoreError> {
        let bytes = self
            .engine
            .get(MESSAGES, &sequence.to_be_bytes())?
            .ok_or_else(|| corrupt("message", format!("sequence {sequence} is missing")))?;
        Ok(decode_message(&bytes)?)
    }

    fn sequence_of(&self, sender: ParticipantId, id: MessageId) -> Result<Option<u64>, StoreError> {
        Ok(self
            .engine
            .get(DEDUP, &dedup_key(sender, id))?
            .map(|v| u64_value(&v, "dedup"))
            .transpose()?)
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
        let key = sequence.to_be_bytes();
        let mut outcome = (MessageState::Unspecified, 0, false);
        self.engine.write(&mut |tx| {
            let mut state = match tx.get(STATUS, &key)? {
                Some(bytes) => StatusRecord::decode(bytes.as_slice())
                    .map_err(|e| KvError::corrupt("status", e))?,
                None => {
                    outcome = (MessageState::Unspecified, 0, false);
                    return Ok(());
                }
            };
            if !from.contains(&state.current()) {
                outcome = (state.current(), state.ack_log_index, false);
                return Ok(());
            }
            if to.is_final() {
                tx.remove(QUEUE, &queue_key(recipient, sequence))?;
            }
            let log_index = append_log(
                tx,
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
            tx.insert(STATUS, &key, &state.encode_to_vec())?;
            append_event(
                tx,
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
            outcome = (to, log_index, true);
            Ok(())
        })?;
        let (state, log_index, fresh) = outcome;
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
}

#[cfg(test)]
impl KvBackend {
    pub fn engine_inline_payload_limit(&self) -> usize {
        self.engine.inline_payload_limit()
    }
}

/// Where chunk `index` of a message's segment payload lies: bytes skipped and length
/// (`None`: past its end).
fn chunk_span(record: &MessageRecord, index: u32) -> Option<(u64, usize)> {
    let skip = u64::from(index) * PAYLOAD_CHUNK as u64;
    (skip < record.payload_length).then(|| {
        (
            skip,
            (record.payload_length - skip).min(PAYLOAD_CHUNK as u64) as usize,
        )
    })
}

/// A segment payload read chunk after chunk, its file opened once.
struct SegmentChunks<'a> {
    backend: &'a KvBackend,
    sequence: u64,
    record: MessageRecord,
    reader: PayloadReader,
}

impl PayloadChunks for SegmentChunks<'_> {
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((skip, len)) = chunk_span(&self.record, index) else {
            return Ok(None);
        };
        self.reader
            .read(skip, len)
            .map(Some)
            .map_err(|e| self.backend.payload_error(&self.record, self.sequence, e))
    }
}

impl KvBackend {
    /// A failed read of message `sequence`'s payload as the store reports it: a checksum
    /// failure logged once per message and counted, running out of file descriptors apart.
    fn payload_error(&self, record: &MessageRecord, sequence: u64, e: SegmentError) -> StoreError {
        match e {
            e @ SegmentError::Corrupt { .. } => {
                let message = format!("{}/{}", record.sender, record.message_id);
                if self.damaged.note(sequence) {
                    tracing::error!(store = %self.path.display(), %message, sequence, cause = %e,
                        "stored payload fails its checksum; the document is held back, not delivered");
                }
                StoreError::PayloadCorrupt {
                    sequence,
                    message,
                    detail: e.to_string(),
                }
            }
            SegmentError::Io(e) if caravan_common::fd::is_exhaustion(&e) => {
                StoreError::OutOfFiles(e.to_string())
            }
            e => backend_error(e),
        }
    }
}

impl Backend for KvBackend {
    fn accept(
        &self,
        m: &Incoming,
        issue_receipt: &dyn Fn(u64) -> Vec<u8>,
    ) -> Result<Acceptance, StoreError> {
        let dedup = dedup_key(m.sender, m.message_id);
        // A small payload is written with its record; a larger one goes to its segment first
        // (a resend of a stored message writes nothing).
        let inline = m.payload.len() <= self.engine.inline_payload_limit().min(PAYLOAD_CHUNK);
        let (at, checksums) = if inline || self.engine.get(DEDUP, &dedup)?.is_some() {
            let at = Location {
                segment: 0,
                offset: 0,
            };
            (at, Vec::new())
        } else {
            let placed = self
                .segments
                .append(&m.payload)
                .map_err(|e| recovery::storage_failed(self.engine.as_ref(), e))?;
            (placed.at, placed.checksums)
        };
        let mut outcome = Acceptance::Conflict;
        self.engine.write(&mut |tx| {
            if let Some(existing) = tx.get(DEDUP, &dedup)? {
                let sequence = u64_value(&existing, "dedup")?;
                let record = tx
                    .get(MESSAGES, &sequence.to_be_bytes())?
                    .ok_or_else(|| {
                        KvError::corrupt("message", format!("sequence {sequence} is missing"))
                    })
                    .and_then(|b| decode_message(&b))?;
                outcome = if record.header_sha256 == m.header_sha256 {
                    Acceptance::Duplicate {
                        sequence,
                        receipt: record.receipt,
                        log_index: record.log_index,
                    }
                } else {
                    Acceptance::Conflict
                };
                return Ok(());
            }
            let sequence = next_counter(tx, NEXT_SEQUENCE)?;
            let key = sequence.to_be_bytes();
            let receipt = issue_receipt(sequence);
            let log_index = append_log(
                tx,
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
                payload_crc32: checksums.clone(),
            };
            tx.insert(MESSAGES, &key, &record.encode_to_vec())?;
            if inline && !m.payload.is_empty() {
                tx.insert(PAYLOADS, &chunk_key(sequence, 0), &m.payload)?;
            }
            tx.insert(DEDUP, &dedup, &key)?;
            tx.insert(QUEUE, &queue_key(m.recipient, sequence), &[])?;
            // The receipt stays in the message record only: the status record is rewritten at
            // every state change, and `status` fills it in.
            let mut state = StatusRecord::default();
            state.advance(MessageState::Accepted, m.accepted_at);
            tx.insert(STATUS, &key, &state.encode_to_vec())?;
            append_event(
                tx,
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
            outcome = Acceptance::Accepted {
                sequence,
                receipt,
                log_index,
            };
            Ok(())
        })?;
        Ok(outcome)
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
        for (key, _) in self.engine.range(QUEUE, &start, Some(&end), limit, false)? {
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
        let Some(sequence) = self.sequence_of(u.sender, u.message_id)? else {
            return Ok(AckResult::UnknownMessage);
        };
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
        for (key, _) in self.engine.range(QUEUE, &[], None, usize::MAX, false)? {
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
        for (key, _) in self.engine.range(QUEUE, &[], None, usize::MAX, false)? {
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
        Ok(self.engine.size_on_disk()? + self.segments.size().map_err(backend_error)?)
    }

    fn payload_chunk(&self, sequence: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let record = self.message(sequence)?;
        if record.payload_segment == 0 {
            // Kept in the engine (small, or from format 1), or empty.
            return Ok(self.engine.get(PAYLOADS, &chunk_key(sequence, index))?);
        }
        let Some((skip, len)) = chunk_span(&record, index) else {
            return Ok(None);
        };
        let at = Location {
            segment: record.payload_segment,
            offset: record.payload_offset,
        };
        self.segments
            .read(at, skip, len, &record.payload_crc32)
            .map(Some)
            .map_err(|e| self.payload_error(&record, sequence, e))
    }

    fn payload_reader(&self, sequence: u64) -> Result<Box<dyn PayloadChunks + '_>, StoreError> {
        let record = self.message(sequence)?;
        if record.payload_segment == 0 {
            return Ok(Box::new(ChunkByChunk {
                backend: self,
                sequence,
            }));
        }
        let at = Location {
            segment: record.payload_segment,
            offset: record.payload_offset,
        };
        let reader = self
            .segments
            .reader(at, record.payload_crc32.clone())
            .map_err(|e| self.payload_error(&record, sequence, e))?;
        Ok(Box::new(SegmentChunks {
            backend: self,
            sequence,
            record,
            reader,
        }))
    }

    fn payload_damaged(&self, sequence: u64) -> bool {
        self.damaged.contains(&sequence)
    }

    fn damaged_payloads(&self) -> u64 {
        self.damaged.count()
    }

    fn events(
        &self,
        sender: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StatusEvent)>, StoreError> {
        let start = queue_key(sender, after.saturating_add(1));
        let end = queue_key(sender, u64::MAX);
        self.engine
            .range(EVENTS, &start, Some(&end), limit, false)?
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    u64_value(&key[2..], "event")?,
                    StatusEvent::decode(value.as_slice()).map_err(|e| corrupt("event", e))?,
                ))
            })
            .collect()
    }

    fn status(
        &self,
        sender: ParticipantId,
        message_id: MessageId,
    ) -> Result<Option<StatusRecord>, StoreError> {
        let Some(sequence) = self.sequence_of(sender, message_id)? else {
            return Ok(None);
        };
        let bytes = self
            .engine
            .get(STATUS, &sequence.to_be_bytes())?
            .ok_or_else(|| corrupt("status", format!("sequence {sequence} is missing")))?;
        let mut status =
            StatusRecord::decode(bytes.as_slice()).map_err(|e| corrupt("status", e))?;
        if status.receipt.is_empty() {
            status.receipt = self.message(sequence)?.receipt;
        }
        Ok(Some(status))
    }

    fn registry(&self) -> Result<Option<RegistryRecord>, StoreError> {
        self.engine
            .get(REGISTRY, CURRENT_REGISTRY)?
            .map(|b| RegistryRecord::decode(b.as_slice()).map_err(|e| corrupt("registry", e)))
            .transpose()
    }

    fn save_registry(&self, record: &RegistryRecord, entry: &LogEntry) -> Result<(), StoreError> {
        let value = record.encode_to_vec();
        Ok(self.engine.write(&mut |tx| {
            tx.insert(REGISTRY, CURRENT_REGISTRY, &value)?;
            append_log(tx, entry).map(drop)
        })?)
    }

    fn record_certificate(&self, certificate: &CertificateRecord) -> Result<(), StoreError> {
        let key = certificate.serial.as_bytes();
        let value = certificate.encode_to_vec();
        Ok(self.engine.write(&mut |tx| {
            // Already known: the first sighting stands.
            if tx.get(CERTIFICATES, key)?.is_none() {
                tx.insert(CERTIFICATES, key, &value)?;
            }
            Ok(())
        })?)
    }

    fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        self.engine
            .range(CERTIFICATES, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| {
                CertificateRecord::decode(v.as_slice()).map_err(|e| corrupt("certificate", e))
            })
            .collect()
    }

    fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.engine
            .range(LOG, &from.to_be_bytes(), None, limit, false)?
            .into_iter()
            .map(|(k, v)| Ok((u64_value(&k, "log")?, v)))
            .collect()
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta_u64(NEXT_LOG_INDEX, "counter")?
            .map_or(0, |next| next - 1))
    }

    fn log_node(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
        Ok(node_value(
            self.engine.get(LOG_NODES, &node_key(level, index))?,
            level,
            index,
        )?)
    }

    fn save_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        let value = head.encode_to_vec();
        Ok(self
            .engine
            .write(&mut |tx| tx.insert(TREE_HEADS, &head.tree_size.to_be_bytes(), &value))?)
    }

    fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError> {
        self.engine
            .range(TREE_HEADS, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| TreeHead::decode(v.as_slice()).map_err(|e| corrupt("tree head", e)))
            .collect()
    }

    fn epoch(&self) -> Result<String, StoreError> {
        Ok(self
            .meta(EPOCH)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    }

    fn registry_version_floor(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta_u64(REGISTRY_FLOOR, "registry version floor")?
            .unwrap_or(0))
    }

    fn backup(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        // The engine copies one state between transactions; the segments are copied after it,
        // so they hold every payload that state names (and perhaps a few more bytes).
        let copied = self.engine.copy_to(dest)?;
        let segment_bytes = self.segments.copy_to(dest).map_err(backend_error)?;
        let copy = Self::open_found(dest, 8 << 20)?
            .ok_or_else(|| backend_error("the copy is not a store"))?;
        Ok(BackupSummary {
            records: copied.records,
            bytes: copy.engine.size_on_disk()? + segment_bytes,
            log_entries: copy.log_size()?,
            pause: copied.writes_paused,
        })
    }

    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        Ok(self.engine.batch(ops)?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Payloads first: a record made durable must not name bytes still in the page cache.
        self.segments
            .sync()
            .map_err(|e| recovery::storage_failed(self.engine.as_ref(), e))?;
        Ok(self.engine.flush()?)
    }

    fn health(&self) -> Option<std::sync::Arc<recovery::StoreHealth>> {
        self.engine.health().cloned()
    }
}
