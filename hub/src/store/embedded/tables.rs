//! The hub store's layout: its tables and their slots, the counters and meta keys, the
//! format version, and how keys are built (see the table in `backend.rs`'s docs). Shared by the
//! records' code and the checks, which read the same tables.

use caravan_common::{
    MessageId, ParticipantId, merkle,
    store::{
        Counter, StoreError, Table,
        keys::{message_id, message_key, participant_key},
    },
};

pub(super) const MESSAGES: Table = Table::new(0, "messages");
pub(super) const PAYLOADS: Table = Table::new(1, "payloads");
pub(super) const DEDUP: Table = Table::new(2, "dedup");
pub(super) const QUEUE: Table = Table::new(3, "queue");
pub(super) const STATUS: Table = Table::new(4, "status");
pub(super) const LOG: Table = Table::new(5, "log");
pub(super) const LOG_NODES: Table = Table::new(6, "log_nodes");
pub(super) const META: Table = Table::new(7, "meta");
pub(super) const REGISTRY: Table = Table::new(8, "registry");
pub(super) const CERTIFICATES: Table = Table::new(9, "certificates");
pub(super) const EVENTS: Table = Table::new(10, "events");
pub(super) const TREE_HEADS: Table = Table::new(11, "tree_heads");
pub(super) const CONFORMANCE_REPORTS: Table = Table::new(12, "conformance_reports");
pub(super) const SCORECARD: Table = Table::new(13, "scorecard");
/// The hub store's tables, each at its slot (for `store migrate`, which copies them all).
pub const TABLES: &[Table] = &[
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
    CONFORMANCE_REPORTS,
    SCORECARD,
];

pub(super) const NEXT_SEQUENCE: Counter = Counter::new(META, b"next_sequence");
pub(super) const NEXT_LOG_INDEX: Counter = Counter::new(META, b"next_log_index");
pub(super) const NEXT_EVENT: Counter = Counter::new(META, b"next_event");
pub(super) const NEXT_CONFORMANCE_REPORT: Counter = Counter::new(META, b"next_conformance_report");
pub(super) const NEXT_SCORECARD_ENTRY: Counter = Counter::new(META, b"next_scorecard_entry");
pub(super) const CURRENT_REGISTRY: &[u8] = b"current";

/// The store's layout version, in `meta`. Opening a store of a later version is refused (a
/// downgrade would misread it); an earlier one is upgraded at open.
/// Version 2: payloads in segment files, not in the engine. Version 3: records carry their
/// own version (`caravan_common::store::record`; those written before read as version 0), and
/// dedup keys are id then sender, as every message key (rewritten at open).
pub const FORMAT_VERSION: u64 = 3;
pub(super) const FORMAT_KEY: &[u8] = b"format_version";
pub(super) const EPOCH: &[u8] = b"epoch";
pub(super) const REGISTRY_FLOOR: &[u8] = b"registry_version_floor";

/// Payloads are stored in chunks of this size, so that no value is huge and a delivery can
/// stream a document without loading it whole.
pub const PAYLOAD_CHUNK: usize = 1024 * 1024;

pub(super) fn chunk_key(sequence: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&sequence.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The dedup index's key: the message key of both stores (id, then sender).
pub(super) fn dedup_key(sender: ParticipantId, id: MessageId) -> [u8; 18] {
    message_key(id, sender)
}

/// A dedup key as stores before format 3 wrote it (sender, then id): the id and sender.
pub(super) fn old_dedup_key(key: &[u8]) -> Option<(MessageId, ParticipantId)> {
    let sender = std::str::from_utf8(key.get(..2)?).ok()?.parse().ok()?;
    let id = message_id(key.get(2..18)?.try_into().ok()?)?;
    (key.len() == 18).then_some((id, sender))
}

pub(super) fn queue_key(recipient: ParticipantId, sequence: u64) -> [u8; 10] {
    participant_key(recipient, sequence)
}

pub(super) fn node_key(level: u32, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level as u8;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(super) fn node_value(
    bytes: Option<Vec<u8>>,
    level: u32,
    index: u64,
) -> Result<merkle::Hash, StoreError> {
    bytes
        .and_then(|b| <merkle::Hash>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            StoreError::corrupt(
                "log node",
                format!("node {index} at level {level} is missing"),
            )
        })
}
