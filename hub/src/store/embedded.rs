//! The hub's records in tables of the store foundation (`caravan_common::store`: redb, the
//! default for a new store, or sled).
//!
//! Tables (all numbers big-endian so that byte order is numeric order,
//! `caravan_common::store::keys`):
//!
//! | table      | key                                 | value                        |
//! |------------|-------------------------------------|------------------------------|
//! | `messages` | sequence (u64)                      | `MessageRecord`              |
//! | `payloads` | sequence (u64) + chunk index (u32)  | payload bytes up to the engine's `inline_payload_limit` (redb: 8 KiB), and format 1's 1 MiB chunks; the others are in `payload-segments/` (see `segments`) |
//! | `dedup`    | message id (16) + sender (2)        | sequence (u64); stores before format 3 had sender + id, and are rewritten at open |
//! | `queue`    | recipient (2) + sequence (u64)      | empty: pending delivery      |
//! | `status`   | sequence (u64)                      | `StatusRecord`               |
//! | `log`      | log index (u64)                     | `LogEntry`                   |
//! | `log_nodes` | level (u8) + index (u64)           | 32-byte hash of a perfect subtree of the log's Merkle tree |
//! | `meta`     | `next_sequence`, `next_log_index`, `next_event` (counters: the first is 1), `format_version`, `epoch`, ... | u64, or text |
//! | `registry` | `current`                           | `RegistryRecord`             |
//! | `certificates` | serial (hex text)               | `CertificateRecord`          |
//! | `tree_heads` | tree size (u64)                   | `TreeHead`: signed Merkle roots of the log |
//! | `events`   | sender (2) + event cursor (u64)     | `StatusEvent`: what the sender sees |
//! | `conformance_reports` | report id (u64, from counter `next_conformance_report`) | `ConformanceRecord`: a recorded, hub-signed conformance report |
//! | `scorecard` | entry id (u64, from counter `next_scorecard_entry`) | `ScorecardRecord`: a recorded, hub-signed Readiness Scorecard entry |
//!
//! Every accept and acknowledgement is one transaction over several tables, so a crash leaves
//! either all of a message's entries or none. Payloads above the engine's inline limit are
//! appended to segment files first and synced before the engine's flush (`Db::flush`), so that
//! a durable record never names bytes that are not on disk. What a flush promises depends on
//! the engine (see `caravan_common::store`).

use std::path::{Path, PathBuf};

use prost::Message;

use caravan_common::{
    MessageId, ParticipantId, Timestamp,
    check::Report,
    merkle,
    recovery::StoreHealth,
    store::{
        Counter, Db, EngineKind, StoreError, Tx,
        keys::{message_key, u64_value},
        record::Record,
        segments::{Damaged, Location, PayloadReader, SegmentError},
    },
};

use super::{
    Backend, ChunkReader,
    ops::{
        Acceptance, AckResult, AckUpdate, BackupSummary, ExchangeFact, Incoming, Pending, Settled,
    },
    records::{
        CertificateRecord, ConformanceRecord, LogEntry, LogKind, MessageRecord, MessageState,
        RegistryRecord, ScorecardRecord, StatusEvent, StatusRecord, TreeHead,
    },
};

mod check;
mod export;
mod tables;

pub use export::Exported;

use tables::{
    CERTIFICATES, CONFORMANCE_REPORTS, CURRENT_REGISTRY, DEDUP, EPOCH, EVENTS, FORMAT_KEY, LOG,
    LOG_NODES, MESSAGES, META, NEXT_CONFORMANCE_REPORT, NEXT_EVENT, NEXT_LOG_INDEX,
    NEXT_SCORECARD_ENTRY, NEXT_SEQUENCE, PAYLOADS, QUEUE, REGISTRY, REGISTRY_FLOOR, SCORECARD,
    STATUS, TREE_HEADS, chunk_key, dedup_key, node_key, node_value, old_dedup_key, queue_key,
};
pub use tables::{FORMAT_VERSION, PAYLOAD_CHUNK, TABLES};

/// The outcome of a state change.
struct Transitioned {
    state: MessageState,
    /// The log entry that recorded the change, or of the acknowledgement held before.
    log_index: u64,
    /// The message, if it changed state now.
    now: Option<Settled>,
}

/// The hub's store: its records over the store foundation's [`Db`] (engine and payload
/// segments).
pub struct Embedded {
    db: Db,
    /// The store's folder, for reports.
    path: PathBuf,
    /// Messages whose payload failed its checksum, by sequence (logged once each).
    damaged: Damaged<u64>,
}

/// A fresh epoch: a UUIDv7, unique and ordered by time.
fn new_epoch() -> String {
    MessageId::generate().to_string()
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(what, detail)
}

/// Append a status event to `sender`'s stream of events.
fn append_event(
    tx: &mut dyn Tx,
    sender: ParticipantId,
    event: &StatusEvent,
) -> Result<(), StoreError> {
    let cursor = NEXT_EVENT.take(tx)?;
    tx.insert(EVENTS, &queue_key(sender, cursor), &Record::encode(event))
}

/// Append `entry` to the exchange log with the Merkle nodes it completes; returns its index
/// (from 1).
fn append_log(tx: &mut dyn Tx, entry: &LogEntry) -> Result<u64, StoreError> {
    let index = NEXT_LOG_INDEX.take(tx)?;
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

fn decode_message(bytes: &[u8]) -> Result<MessageRecord, StoreError> {
    <MessageRecord as Record>::decode(bytes)
}

impl Embedded {
    /// The state in message `sequence`'s status record, if there is one.
    fn stored_state(&self, sequence: u64) -> Result<Option<MessageState>, StoreError> {
        self.db
            .get(STATUS, &sequence.to_be_bytes())?
            .map(|bytes| <StatusRecord as Record>::decode(&bytes).map(|s| s.current()))
            .transpose()
    }

    /// Open (or create) the store in folder `path`, with at most `cache_bytes` of page cache:
    /// on the engine it was created with, or for a new store `engine` (`None`: the default).
    pub fn open(
        path: &Path,
        engine: Option<EngineKind>,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        Self::on(Db::open(path, engine, TABLES, cache_bytes)?)
    }

    /// Open the store in folder `path` on whichever engine it was created with (for tools that
    /// read a store or a backup); `None` if `path` holds no store.
    pub fn open_found(path: &Path, cache_bytes: u64) -> Result<Option<Self>, StoreError> {
        Db::open_found(path, TABLES, cache_bytes)?
            .map(Self::on)
            .transpose()
    }

    /// Open the store for the hub to run on: [`Self::check_at_start`] runs before the upgrade
    /// writes anything; a store that fails it is left as it is, and its report returned.
    pub fn open_checked(
        path: &Path,
        engine: Option<EngineKind>,
        cache_bytes: u64,
    ) -> Result<Result<Self, Report>, StoreError> {
        let backend = Self::unchecked(Db::open(path, engine, TABLES, cache_bytes)?);
        let report = backend.check_at_start();
        if !report.is_sound() {
            return Ok(Err(report));
        }
        backend.upgrade()?;
        Ok(Ok(backend))
    }

    fn on(db: Db) -> Result<Self, StoreError> {
        let backend = Self::unchecked(db);
        backend.upgrade()?;
        Ok(backend)
    }

    fn unchecked(db: Db) -> Self {
        Self {
            path: db.path().to_path_buf(),
            db,
            damaged: Damaged::default(),
        }
    }

    /// The engine the store runs on.
    pub fn engine_kind(&self) -> EngineKind {
        self.db.kind()
    }

    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(META, key)
    }

    fn set_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.put(META, key, value)
    }

    fn meta_u64(&self, key: &[u8], what: &'static str) -> Result<Option<u64>, StoreError> {
        self.meta(key)?.map(|v| u64_value(&v, what)).transpose()
    }

    /// Bring a store of an earlier format up to [`FORMAT_VERSION`], or refuse a later one.
    fn upgrade(&self) -> Result<(), StoreError> {
        let found = self.meta_u64(FORMAT_KEY, "format version")?;
        if let Some(v) = found
            && v > FORMAT_VERSION
        {
            return Err(StoreError::Newer {
                found: v,
                supported: FORMAT_VERSION,
            });
        }
        // Version 0 (no version recorded): the log's Merkle nodes may be missing, and there is
        // no epoch yet.
        self.complete_log_nodes()?;
        if found.is_none_or(|v| v < 3) {
            self.rewrite_dedup_keys()?;
        }
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
    pub fn prepare_restored(&self, replaced: Option<&Embedded>) -> Result<(), StoreError> {
        self.set_meta(EPOCH, new_epoch().as_bytes())?;
        if let Some(old) = replaced {
            for counter in [NEXT_SEQUENCE, NEXT_EVENT] {
                let read = |b: &Embedded| -> Result<u64, StoreError> {
                    Ok(counter.next(&b.db)?.unwrap_or(Counter::FIRST))
                };
                let next = read(self)?.max(read(old)?);
                self.db.update(|tx| counter.set_next(tx, next))?;
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

    /// Dedup keys written before format 3 (sender, then id) rewritten as id, then sender, a
    /// batch per transaction. A key in the new order is left as it is, so a rewrite that was
    /// cut short goes on where it stopped.
    fn rewrite_dedup_keys(&self) -> Result<(), StoreError> {
        const BATCH: usize = 1024;
        let mut old = Vec::new();
        let mut from = Vec::new();
        loop {
            let page = self.db.range(DEDUP, &from, None, BATCH, false)?;
            for (key, value) in &page {
                if let Some((id, sender)) = old_dedup_key(key) {
                    old.push((key.clone(), message_key(id, sender), value.clone()));
                }
            }
            match page.last() {
                Some((key, _)) if page.len() == BATCH => {
                    from = key.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
        if old.is_empty() {
            return Ok(());
        }
        tracing::info!(
            keys = old.len(),
            "rewriting the dedup index as id, then sender"
        );
        for batch in old.chunks(BATCH) {
            self.db.update(|tx| {
                for (old_key, new_key, value) in batch {
                    tx.remove(DEDUP, old_key)?;
                    tx.insert(DEDUP, new_key, value)?;
                }
                Ok(())
            })?;
        }
        self.flush()
    }

    /// A store written before the log kept its Merkle nodes gets them computed from its entries
    /// once, at open: the upgrade path for the log's proofs. (Nodes are written in the same
    /// transaction as their entry, so a crash cannot leave them behind.)
    fn complete_log_nodes(&self) -> Result<(), StoreError> {
        let last_leaf =
            self.db
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
            self.db.update(|tx| {
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
            .db
            .get(MESSAGES, &sequence.to_be_bytes())?
            .ok_or_else(|| corrupt("message", format!("sequence {sequence} is missing")))?;
        decode_message(&bytes)
    }

    fn sequence_of(&self, sender: ParticipantId, id: MessageId) -> Result<Option<u64>, StoreError> {
        self.db
            .get(DEDUP, &dedup_key(sender, id))?
            .map(|v| u64_value(&v, "dedup"))
            .transpose()
    }

    /// Move message `sequence` to `to` if it is in one of `from`, together with its log entry
    /// and its sender's status event; a settled message also leaves the recipient's queue.
    /// Returns the state the message is in afterwards.
    fn transition(
        &self,
        sequence: u64,
        record: &MessageRecord,
        from: &[MessageState],
        to: MessageState,
        at: Timestamp,
        ack: Option<&[u8]>,
    ) -> Result<Transitioned, StoreError> {
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
        // (state afterwards, log index, whether it changed now)
        let (state, log_index, fresh) = self.db.update(|tx| {
            let mut state = match tx.get(STATUS, &key)? {
                Some(bytes) => <StatusRecord as Record>::decode(&bytes)?,
                None => return Ok((MessageState::Unspecified, 0, false)),
            };
            if !from.contains(&state.current()) {
                return Ok((state.current(), state.ack_log_index, false));
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
            tx.insert(STATUS, &key, &Record::encode(&state))?;
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
            Ok((to, log_index, true))
        })?;
        Ok(Transitioned {
            state,
            log_index,
            now: fresh.then(|| Settled {
                sender,
                recipient,
                document_type: record.document_type.clone(),
                accepted_at: Timestamp::from_millis(record.accepted_at_ms),
            }),
        })
    }
}

#[cfg(test)]
impl Embedded {
    pub fn engine_inline_payload_limit(&self) -> usize {
        self.db.inline_payload_limit()
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

/// A payload read chunk after chunk ([`Backend::payload_reader`]): from the engine chunk by
/// chunk, or from its segment file, opened once.
pub struct PayloadChunks<'a> {
    backend: &'a Embedded,
    sequence: u64,
    /// The message and its open segment; `None`: the payload is kept in the engine.
    segment: Option<(MessageRecord, PayloadReader)>,
}

impl super::ChunkReader for PayloadChunks<'_> {
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((record, reader)) = &mut self.segment else {
            return self.backend.payload_chunk(self.sequence, index);
        };
        let Some((skip, len)) = chunk_span(record, index) else {
            return Ok(None);
        };
        reader
            .read(skip, len)
            .map(Some)
            .map_err(|e| self.backend.payload_error(record, self.sequence, e))
    }
}

impl Embedded {
    /// A failed read of message `sequence`'s payload as the store reports it: a checksum
    /// failure logged once per message and counted; other errors as they are.
    fn payload_error(&self, record: &MessageRecord, sequence: u64, e: SegmentError) -> StoreError {
        match e {
            e @ SegmentError::Corrupt { .. } => {
                let document = format!("{}/{}", record.sender, record.message_id);
                if self.damaged.note(sequence) {
                    tracing::error!(store = %self.path.display(), message = %document, sequence, cause = %e,
                        "stored payload fails its checksum; the document is held back, not delivered");
                }
                StoreError::PayloadCorrupt {
                    document,
                    source: std::sync::Arc::new(e),
                }
            }
            e => e.into(),
        }
    }
}

/// What the hub does with its store. Synchronous; async callers run it on blocking threads
/// (`crate::commit` for the request path's writes).
impl Backend for Embedded {
    fn engine_name(&self) -> &'static str {
        self.db.kind().as_str()
    }

    /// A log size that is durable, noted beside the store (at start, once checked; with each
    /// tree head kept; after the final flush at shutdown). Never more than is durable: a
    /// killed hub loses what was not flushed, and must not then take its store for a damaged
    /// one.
    fn note_floors(&self, log_entries: u64) -> Result<(), StoreError> {
        self.write_floors(log_entries)
    }

    fn accept(
        &self,
        m: &Incoming,
        issue_receipt: &dyn Fn(u64) -> Vec<u8>,
    ) -> Result<Acceptance, StoreError> {
        let dedup = dedup_key(m.sender, m.message_id);
        // A small payload is written with its record; a larger one goes to its segment first
        // (a resend of a stored message writes nothing).
        let inline = m.payload.len() <= self.db.inline_payload_limit().min(PAYLOAD_CHUNK);
        let (at, checksums) = if inline || self.db.get(DEDUP, &dedup)?.is_some() {
            let at = Location {
                segment: 0,
                offset: 0,
            };
            (at, Vec::new())
        } else {
            let placed = self.db.append_payload(&m.payload)?;
            (placed.at, placed.checksums)
        };
        self.db.update(|tx| {
            if let Some(existing) = tx.get(DEDUP, &dedup)? {
                let sequence = u64_value(&existing, "dedup")?;
                let record = tx
                    .get(MESSAGES, &sequence.to_be_bytes())?
                    .ok_or_else(|| {
                        StoreError::corrupt("message", format!("sequence {sequence} is missing"))
                    })
                    .and_then(|b| decode_message(&b))?;
                return Ok(if record.header_sha256 == m.header_sha256 {
                    Acceptance::Duplicate {
                        sequence,
                        receipt: record.receipt,
                        log_index: record.log_index,
                    }
                } else {
                    Acceptance::Conflict
                });
            }
            let sequence = NEXT_SEQUENCE.take(tx)?;
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
            tx.insert(MESSAGES, &key, &Record::encode(&record))?;
            if inline && !m.payload.is_empty() {
                tx.insert(PAYLOADS, &chunk_key(sequence, 0), &m.payload)?;
            }
            tx.insert(DEDUP, &dedup, &key)?;
            tx.insert(QUEUE, &queue_key(m.recipient, sequence), &[])?;
            // The receipt stays in the message record only: the status record is rewritten at
            // every state change, and `status` fills it in.
            let mut state = StatusRecord::default();
            state.advance(MessageState::Accepted, m.accepted_at);
            tx.insert(STATUS, &key, &Record::encode(&state))?;
            // No status event: the sender has the acceptance in its answer (the receipt or the
            // log proof), and a resend is answered with it again. Its stream starts with what
            // follows (DELIVERED, ACKNOWLEDGED, REJECTED, EXPIRED).
            Ok(Acceptance::Accepted {
                sequence,
                receipt,
                log_index,
            })
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
        for (key, _) in self.db.range(QUEUE, &start, Some(&end), limit, false)? {
            let sequence = u64_value(&key[2..], "queue")?;
            let record = self.message(sequence)?;
            let delivered = self.stored_state(sequence)? == Some(MessageState::Delivered);
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
                log_index: record.log_index,
                delivered,
            });
        }
        Ok(out)
    }

    fn mark_delivered(&self, sequence: u64, at: Timestamp) -> Result<bool, StoreError> {
        // Most documents are settled by the time their DELIVERED is due (the hub records it
        // only for one unsettled a moment after streaming): the status says so before the
        // message is read.
        if self
            .stored_state(sequence)?
            .is_some_and(|state| state != MessageState::Accepted)
        {
            return Ok(false);
        }
        self.transition(
            sequence,
            &self.message(sequence)?,
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
        let t = self.transition(sequence, &record, &open, u.state, u.at, Some(&u.ack))?;
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
        for (key, _) in self.db.range(QUEUE, &[], None, usize::MAX, false)? {
            let sequence = u64_value(&key[2..], "queue")?;
            let record = self.message(sequence)?;
            let Some(ttl_ms) = ttl(&record.document_type) else {
                continue;
            };
            if now.as_millis() < record.accepted_at_ms.saturating_add(ttl_ms as i64) {
                continue;
            }
            let open = [MessageState::Accepted, MessageState::Delivered];
            let t = self.transition(sequence, &record, &open, MessageState::Expired, now, None)?;
            expired.extend(t.now);
        }
        Ok(expired)
    }

    fn queue_depths(&self) -> Result<Vec<(ParticipantId, u64)>, StoreError> {
        let mut depths: Vec<(ParticipantId, u64)> = Vec::new();
        for (key, _) in self.db.range(QUEUE, &[], None, usize::MAX, false)? {
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
        self.db.size_on_disk()
    }

    fn payload_chunk(&self, sequence: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let record = self.message(sequence)?;
        if record.payload_segment == 0 {
            // Kept in the engine (small, or from format 1), or empty.
            return self.db.get(PAYLOADS, &chunk_key(sequence, index));
        }
        let Some((skip, len)) = chunk_span(&record, index) else {
            return Ok(None);
        };
        let at = Location {
            segment: record.payload_segment,
            offset: record.payload_offset,
        };
        self.db
            .segments()
            .read(at, skip, len, &record.payload_crc32)
            .map(Some)
            .map_err(|e| self.payload_error(&record, sequence, e))
    }

    fn payload_reader(&self, sequence: u64) -> Result<Box<dyn ChunkReader + '_>, StoreError> {
        let record = self.message(sequence)?;
        if record.payload_segment == 0 {
            return Ok(Box::new(PayloadChunks {
                backend: self,
                sequence,
                segment: None,
            }));
        }
        let at = Location {
            segment: record.payload_segment,
            offset: record.payload_offset,
        };
        let reader = self
            .db
            .segments()
            .reader(at, record.payload_crc32.clone())
            .map_err(|e| self.payload_error(&record, sequence, e))?;
        Ok(Box::new(PayloadChunks {
            backend: self,
            sequence,
            segment: Some((record, reader)),
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
        self.db
            .range(EVENTS, &start, Some(&end), limit, false)?
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    u64_value(&key[2..], "event")?,
                    <StatusEvent as Record>::decode(&value)?,
                ))
            })
            .collect()
    }

    fn holds(&self, sender: ParticipantId, id: MessageId) -> Result<bool, StoreError> {
        Ok(self.sequence_of(sender, id)?.is_some())
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
            .db
            .get(STATUS, &sequence.to_be_bytes())?
            .ok_or_else(|| corrupt("status", format!("sequence {sequence} is missing")))?;
        let mut status = <StatusRecord as Record>::decode(&bytes)?;
        if status.receipt.is_empty() {
            let message = self.message(sequence)?;
            status.receipt = message.receipt;
            status.accepted_log_index = message.log_index;
        }
        Ok(Some(status))
    }

    fn registry(&self) -> Result<Option<RegistryRecord>, StoreError> {
        self.db
            .get(REGISTRY, CURRENT_REGISTRY)?
            .map(|b| <RegistryRecord as Record>::decode(&b))
            .transpose()
    }

    fn save_registry(&self, record: &RegistryRecord, entry: &LogEntry) -> Result<(), StoreError> {
        let value = Record::encode(record);
        self.db.update(|tx| {
            tx.insert(REGISTRY, CURRENT_REGISTRY, &value)?;
            append_log(tx, entry).map(drop)
        })
    }

    fn record_conformance(
        &self,
        make: &dyn Fn(u64) -> (ConformanceRecord, LogEntry),
    ) -> Result<ConformanceRecord, StoreError> {
        self.db.update(|tx| {
            let id = NEXT_CONFORMANCE_REPORT.take(tx)?;
            let (mut record, entry) = make(id);
            record.log_index = append_log(tx, &entry)?;
            tx.insert(
                CONFORMANCE_REPORTS,
                &id.to_be_bytes(),
                &Record::encode(&record),
            )?;
            Ok(record)
        })
    }

    fn conformance_reports(&self) -> Result<Vec<ConformanceRecord>, StoreError> {
        self.db
            .range(CONFORMANCE_REPORTS, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| <ConformanceRecord as Record>::decode(&v))
            .collect()
    }

    fn record_scorecard(
        &self,
        make: &dyn Fn(u64) -> (ScorecardRecord, LogEntry),
    ) -> Result<ScorecardRecord, StoreError> {
        self.db.update(|tx| {
            let id = NEXT_SCORECARD_ENTRY.take(tx)?;
            let (mut record, entry) = make(id);
            record.log_index = append_log(tx, &entry)?;
            tx.insert(SCORECARD, &id.to_be_bytes(), &Record::encode(&record))?;
            Ok(record)
        })
    }

    fn scorecard_entries(&self) -> Result<Vec<ScorecardRecord>, StoreError> {
        self.db
            .range(SCORECARD, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| <ScorecardRecord as Record>::decode(&v))
            .collect()
    }

    fn exchange_facts(
        &self,
        since: Timestamp,
        visit: &mut dyn FnMut(ExchangeFact),
    ) -> Result<(), StoreError> {
        self.walk_facts(since, visit)
    }

    fn record_certificate(&self, certificate: &CertificateRecord) -> Result<(), StoreError> {
        let key = certificate.serial.as_bytes();
        let value = Record::encode(certificate);
        self.db.update(|tx| {
            // Already known: the first sighting stands.
            if tx.get(CERTIFICATES, key)?.is_none() {
                tx.insert(CERTIFICATES, key, &value)?;
            }
            Ok(())
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        self.db
            .range(CERTIFICATES, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| <CertificateRecord as Record>::decode(&v))
            .collect()
    }

    fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.db
            .range(LOG, &from.to_be_bytes(), None, limit, false)?
            .into_iter()
            .map(|(k, v)| Ok((u64_value(&k, "log")?, v)))
            .collect()
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        Ok(NEXT_LOG_INDEX
            .next(&self.db)?
            .map_or(0, |next| next - Counter::FIRST))
    }

    fn log_node(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
        node_value(
            self.db.get(LOG_NODES, &node_key(level, index))?,
            level,
            index,
        )
    }

    fn save_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        let value = Record::encode(head);
        self.db
            .put(TREE_HEADS, &head.tree_size.to_be_bytes(), &value)
    }

    fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError> {
        self.db
            .range(TREE_HEADS, &[], None, usize::MAX, false)?
            .into_iter()
            .map(|(_, v)| <TreeHead as Record>::decode(&v))
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
        let (copied, segment_bytes) = self.db.copy_to(dest)?;
        let copy = Self::open_found(dest, 8 << 20)?
            .ok_or_else(|| StoreError::NoStore(dest.to_path_buf()))?;
        Ok(BackupSummary {
            records: copied.records,
            bytes: copy.db.engine().size_on_disk()? + segment_bytes,
            log_entries: copy.log_size()?,
            pause: copied.writes_paused,
        })
    }

    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.db.batch(ops)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Payloads first, then the engine (`Db::flush`).
        self.db.flush()
    }

    fn health(&self) -> Option<std::sync::Arc<StoreHealth>> {
        self.db.health().cloned()
    }
}
