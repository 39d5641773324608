//! The spoke's durable state: the inbox (documents received, each with its verification
//! result and evidence) and the record of documents sent, in tables of a key-value engine
//! (`caravan_common::store`: redb, the default for a new store, or sled; `store_engine`).
//!
//! | table      | key                            | value                         |
//! |------------|--------------------------------|-------------------------------|
//! | `inbox`    | message id (16) + sender (2)   | [`InboxRecord`] (JSON)        |
//! | `payload_at` | message id (16) + sender (2) | segment (u32) + offset (u64) + length (u64) of the payload in `payload-segments/`, then the CRC-32 of each 1 MiB block (none in stores from before checksums: read unchecked) |
//! | `payloads` | message id (16) + sender (2)   | payload bytes up to the engine's `inline_payload_limit` (redb: 8 KiB; and stores written before segments) |
//! | `arrivals` | arrival number (u64, BE)       | inbox key: arrival order      |
//! | `sent`     | message id (16)                | [`SentRecord`] (JSON)         |
//! | `queued`   | queue number (u64) + id (16)   | the sealed envelope (protobuf) of a document in the outbox, without its payload |
//! | `outbox_payloads` | the `queued` key        | 0 + the payload (up to the engine's inline limit), or 1 + a location as in `payload_at` |
//! | `outbox`   | queue number (u64) + id (16)   | a whole sealed envelope, queued by a spoke from before `queued`: sent, never written (an older spoke, after a downgrade, sees none of `queued` and leaves those documents waiting rather than sending them without payload) |
//! | `receipted` | message id (16)               | the sealed envelope of a document the hub gave a receipt for, kept (as it was in `queued` or `outbox`) until it reaches a final state: a hub restored from a backup may no longer know it, and it is then queued again, byte for byte |
//! | `receipted_payloads` | message id (16)      | its payload, as in `outbox_payloads` (none for a whole envelope) |
//! | `trust`    | `current`                      | the signed trust list held    |
//! | `meta`     | `format_version`, `status_cursor`, `next_arrival`, `next_queued`, ... | the store's format, cursors and counters (u64), log head and alarms (JSON) |
//!
//! Payloads above the engine's inline limit live in append-only segment files
//! (`caravan_common::store::segments`), not in the engine (sled would keep every one in memory until
//! the process ends, so on sled all of them do). A document enters the inbox
//! once: the same (sender, message id) delivered again is recognised, and answered with the
//! decision already recorded.
//!
//! A payload in a segment is read back only if it matches the checksums kept with its location:
//! otherwise [`StoreError::PayloadCorrupt`] names the document, the segment and the offset
//! (logged once per document, counted), and the NSW API, the console and the outbox get that,
//! never the bytes. A read that finds the store damaged marks it ([`SpokeStore::damage`]) for
//! `/healthz` and the metrics.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use caravan_common::{
    DocumentType, MessageId, ParticipantId, RefusalCode, Timestamp, recovery,
    store::{
        Counter, Db, EngineKind, Table,
        keys::{message_key, message_range_end, u64_of},
        record,
        segments::{self, Damaged, Location, Placed, SegmentError},
    },
};

mod check;

/// The store's one error, shared with the hub (`caravan_common::store`).
pub use caravan_common::store::StoreError;

/// The outcome of end-to-end verification of a received document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verification {
    /// Signature, signing key, sender, recipient, payload and hub receipt all check out; the
    /// notes say what an officer should know besides (a key revoked since, a stale trust list,
    /// a pilot corridor).
    Verified {
        #[serde(default)]
        notes: Vec<Note>,
    },
    /// A check failed; the document is kept as evidence and was acknowledged as rejected.
    Rejected { code: RefusalCode, reason: String },
}

/// Something worth knowing about a verified document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Stable: `KEY_SINCE_REVOKED`, `TRUST_LIST_STALE`, `PILOT_CORRIDOR`.
    pub code: String,
    pub message: String,
}

impl Note {
    pub fn new(code: &str, message: String) -> Self {
        Self {
            code: code.to_owned(),
            message,
        }
    }
}

/// A received document, with what was checked and the evidence to prove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    pub message_id: MessageId,
    pub sender: ParticipantId,
    /// As signed in the header; absent if the header could not be trusted.
    pub document_type: Option<DocumentType>,
    pub document_id: Option<String>,
    pub content_type: Option<String>,
    pub supersedes: Option<MessageId>,
    /// The message of ours this document answers.
    #[serde(default)]
    pub in_reply_to: Option<MessageId>,
    /// When the document is a business response: its decision.
    #[serde(default)]
    pub response: Option<ResponseBody>,
    /// Key fields read from a verified document (number, issue date).
    #[serde(default)]
    pub summary: Option<crate::document::Summary>,
    pub created_at: Option<Timestamp>,
    pub key_id: Option<String>,
    pub payload_length: u64,
    /// SHA-256 of the payload as received, hex.
    pub payload_sha256: String,
    /// From the hub's receipt, when it verified.
    pub hub_sequence: Option<u64>,
    pub accepted_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub verification: Verification,
    /// The signed header, its signature and the hub's signed receipt, base64: the evidence.
    pub evidence: Evidence,
}

/// Signed bytes kept as evidence, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub header: String,
    pub signature: String,
    pub signature_key_id: String,
    pub receipt: String,
    /// This spoke's signed acknowledgement, once sent.
    pub ack: Option<String>,
}

/// Where a document this spoke sends is, as far as the spoke knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SentState {
    /// In the outbox, not yet accepted by the hub (it may be unreachable).
    Queued,
    /// The hub refused it; `refusal` says why. It will not be sent again.
    Refused,
    Accepted,
    Delivered,
    Acknowledged,
    Rejected,
    Expired,
}

/// The hub's receipt for a sent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptInfo {
    pub hub_sequence: u64,
    pub accepted_at: Timestamp,
    pub key_id: String,
    /// The signed receipt (protobuf `SignedReceipt`), base64: proof of submission.
    pub signed: String,
}

/// A document this spoke sends or sent, with what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRecord {
    pub message_id: MessageId,
    pub recipient: ParticipantId,
    pub document_type: DocumentType,
    pub document_id: String,
    pub payload_length: u64,
    pub header_sha256: String,
    pub queued_at: Timestamp,
    pub state: SentState,
    pub receipt: Option<ReceiptInfo>,
    pub refusal: Option<caravan_common::Refusal>,
    /// Submission attempts so far, and the last failure to reach the hub.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Every state the message has been in at the hub, as the hub reported it.
    #[serde(default)]
    pub transitions: Vec<StateChange>,
    /// The recipient's signed acknowledgement, as checked here: proof of receipt.
    #[serde(default)]
    pub acknowledgement: Option<AckRecord>,
    /// Business responses the recipient sent back about this document.
    #[serde(default)]
    pub responses: Vec<AnswerRecord>,
}

/// Media type of a business response's payload.
pub const RESPONSE_CONTENT_TYPE: &str = "application/vnd.caravan.response+json";

/// The payload of a business response: the recipient's decision about a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an importing authority decided about a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Rejected,
}

/// A verified business response to a document this spoke sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// The response's own message id (in the inbox).
    pub message_id: MessageId,
    pub decision: Decision,
    pub reason: Option<String>,
    pub received_at: Timestamp,
}

/// A state a sent message entered, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: SentState,
    pub at: Timestamp,
}

/// The recipient's signed acknowledgement, as this spoke checked it: verified with its content,
/// or not with the reason, never both. Stored, and shown by the control and NSW APIs, in its
/// flat form [`AckJson`] (as before it was an enum), so records written before still decode
/// and the APIs' JSON is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AckJson", into = "AckJson")]
pub struct AckRecord {
    pub check: AckCheck,
    /// The signed acknowledgement (protobuf `SignedAck`), base64.
    pub signed: String,
}

/// What checking an acknowledgement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckCheck {
    /// The signature verified with the recipient's registered key, and the acknowledgement
    /// names this message and header: its content (outcome, reason, time).
    Verified(serde_json::Value),
    /// It did not verify: why.
    Failed(String),
}

impl AckRecord {
    pub fn is_verified(&self) -> bool {
        matches!(self.check, AckCheck::Verified(_))
    }
}

/// [`AckRecord`] as stored and as the APIs show it: `verified`, with `ack` (the content) when
/// it did and `problem` when it did not, and `signed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckJson {
    pub verified: bool,
    pub ack: Option<serde_json::Value>,
    pub problem: Option<String>,
    pub signed: String,
}

impl From<AckJson> for AckRecord {
    /// A stored record said one thing by `verified` and its fields: `verified` decides.
    fn from(json: AckJson) -> Self {
        let check = if json.verified {
            AckCheck::Verified(json.ack.unwrap_or(serde_json::Value::Null))
        } else {
            AckCheck::Failed(json.problem.unwrap_or_default())
        };
        Self {
            check,
            signed: json.signed,
        }
    }
}

impl From<AckRecord> for AckJson {
    fn from(record: AckRecord) -> Self {
        let (verified, ack, problem) = match record.check {
            AckCheck::Verified(ack) => (true, Some(ack), None),
            AckCheck::Failed(problem) => (false, None, Some(problem)),
        };
        Self {
            verified,
            ack,
            problem,
            signed: record.signed,
        }
    }
}

impl SentState {
    /// Settled for good: nothing more will happen to the message.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Refused | Self::Acknowledged | Self::Rejected | Self::Expired
        )
    }
}

/// Inbox entries with their arrival cursors.
pub type Arrivals = Vec<(u64, InboxRecord)>;

/// The spoke's store.
pub struct SpokeStore {
    /// The engine and the payload segments.
    db: Db,
    /// The store's folder, for reports.
    path: PathBuf,
    /// Documents whose payload failed its checksum (logged once each), by their key.
    damaged: Damaged<Vec<u8>>,
    /// The first damage a read found since the spoke started: health says so until a restart.
    damage: Mutex<Option<String>>,
}

/// The store's layout version, in `meta` (absent in stores from before it: version 1 too).
/// Opening a store of a later version is refused; payload locations with checksums are read
/// by earlier spokes as before (they ignore the checksums). Version 2: records carry their
/// own version ([`RECORD_VERSION`]); those written before read as version 0.
pub const FORMAT_VERSION: u64 = 2;
const FORMAT_KEY: &[u8] = b"format_version";

const INBOX: Table = Table::new(0, "inbox");
const PAYLOADS: Table = Table::new(1, "payloads");
const PAYLOAD_AT: Table = Table::new(2, "payload_at");
const ARRIVALS: Table = Table::new(3, "arrivals");
const SENT: Table = Table::new(4, "sent");
const OUTBOX: Table = Table::new(5, "outbox");
const QUEUED: Table = Table::new(6, "queued");
const OUTBOX_PAYLOADS: Table = Table::new(7, "outbox_payloads");
const RECEIPTED: Table = Table::new(8, "receipted");
const RECEIPTED_PAYLOADS: Table = Table::new(9, "receipted_payloads");
const TRUST: Table = Table::new(10, "trust");
const META: Table = Table::new(11, "meta");
/// The spoke store's tables, each at its slot (for `store migrate`, which copies them all).
pub const TABLES: &[Table] = &[
    INBOX,
    PAYLOADS,
    PAYLOAD_AT,
    ARRIVALS,
    SENT,
    OUTBOX,
    QUEUED,
    OUTBOX_PAYLOADS,
    RECEIPTED,
    RECEIPTED_PAYLOADS,
    TRUST,
    META,
];

const CURRENT_TRUST_LIST: &[u8] = b"current";
const STATUS_CURSOR: &[u8] = b"status_cursor";
const STATUS_EPOCH: &[u8] = b"status_epoch";
const WEBHOOK_CURSOR: &[u8] = b"webhook_cursor";
const LOG_HEAD: &[u8] = b"log_head";
const LOG_ALARMS: &[u8] = b"log_alarms";
/// Alarms kept (the newest); the total count is kept apart.
const LOG_ALARMS_KEPT: usize = 100;
const LOG_ALARMS_TOTAL: &[u8] = b"log_alarms_total";
/// The next arrival number (the inbox's order) and outbox queue number. Stores made before
/// the store foundation numbered from 0 and go on from where they are; new ones from 1.
const NEXT_ARRIVAL: Counter = Counter::new(META, b"next_arrival");
const NEXT_QUEUED: Counter = Counter::new(META, b"next_queued");

/// A tree head of the hub's exchange log that this spoke verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeadRecord {
    pub size: u64,
    /// Merkle root, lowercase hex.
    pub root: String,
    pub signed_at: Timestamp,
    pub key_id: String,
    /// The encoded `caravan.v1.SignedTreeHead`, base64: evidence for third parties.
    pub signed: String,
}

/// A failed check of the hub's exchange log: the hub showed something it cannot stand by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAlarm {
    pub at: Timestamp,
    /// `BAD_LOG_PROOF` or `LOG_INCONSISTENT` (the log), or `HUB_LOST_DOCUMENTS` (documents
    /// with receipts the hub no longer knew, resubmitted).
    pub code: String,
    pub detail: String,
    /// The message whose proof failed, if the alarm came from one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<MessageId>,
    /// The signed heads involved, as evidence.
    #[serde(default)]
    pub heads: Vec<LogHeadRecord>,
}

/// An envelope waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    key: Vec<u8>,
    /// In `outbox`, with its payload inside the envelope.
    whole: bool,
    pub message_id: MessageId,
    /// The encoded, sealed `caravan.v1.Envelope`, without its payload (see
    /// [`SpokeStore::queued_payload`]): resent byte for byte on every attempt.
    pub envelope: Vec<u8>,
}

/// Where a payload kept in a segment is, as stored: segment (u32), offset (u64), length (u64),
/// then the CRC-32 (u32) of each block.
fn encode_location(placed: &Placed, len: usize) -> Vec<u8> {
    let at = placed.at;
    let mut pointer = Vec::with_capacity(20 + 4 * placed.checksums.len());
    pointer.extend_from_slice(&at.segment.to_be_bytes());
    pointer.extend_from_slice(&at.offset.to_be_bytes());
    pointer.extend_from_slice(&(len as u64).to_be_bytes());
    for sum in &placed.checksums {
        pointer.extend_from_slice(&sum.to_be_bytes());
    }
    pointer
}

/// A payload's place: where, how long, and its block checksums (empty: written before them).
struct Placement {
    at: Location,
    len: usize,
    checksums: Vec<u32>,
}

fn decode_location(pointer: &[u8]) -> Result<Placement, StoreError> {
    let corrupt = || StoreError::corrupt("payload location", "does not decode");
    let segment = pointer
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(corrupt)?;
    let offset = pointer.get(4..12).and_then(u64_of).ok_or_else(corrupt)?;
    let len = pointer
        .get(12..20)
        .and_then(u64_of)
        .and_then(|l| usize::try_from(l).ok())
        .ok_or_else(corrupt)?;
    let sums = &pointer[20..];
    if !sums.len().is_multiple_of(4)
        || (!sums.is_empty() && sums.len() / 4 != len.div_ceil(segments::CHECK_BLOCK))
    {
        return Err(corrupt());
    }
    let checksums = sums
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Placement {
        at: Location { segment, offset },
        len,
        checksums,
    })
}

fn inbox_key(id: MessageId, sender: ParticipantId) -> [u8; 18] {
    message_key(id, sender)
}

fn uuid_message_id(bytes: [u8; 16]) -> Result<MessageId, StoreError> {
    uuid::Uuid::from_bytes(bytes)
        .hyphenated()
        .to_string()
        .parse()
        .map_err(|e| StoreError::corrupt("outbox key", e))
}

/// A stored record; `what` names it if it is corrupt.
/// The version of the spoke's stored records (JSON bodies; `caravan_common::store::record`):
/// 1. Version 0, written before records carried versions, is the same JSON.
pub const RECORD_VERSION: u8 = 1;

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    let (version, body) = record::split(bytes);
    if version > RECORD_VERSION {
        return Err(StoreError::corrupt(
            what,
            format!("record version {version}, written by a newer Caravan"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| StoreError::corrupt(what, e))
}

/// A record as stored: its version, then its JSON.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![0, RECORD_VERSION];
    // Serialising the records' own types (strings, numbers, enums) cannot fail.
    serde_json::to_writer(&mut out, value).expect("records serialise");
    out
}

impl SpokeStore {
    /// Open (or create) the store in folder `path`: on the engine it was created with, or for
    /// a new store `engine` (`None`: the default).
    pub fn open(
        path: &Path,
        engine: Option<EngineKind>,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let store = Self {
            db: Db::open(path, engine, TABLES, cache_bytes)?,
            path: path.to_path_buf(),
            damaged: Damaged::default(),
            damage: Mutex::new(None),
        };
        store.upgrade()?;
        store.start_counters()?;
        Ok(store)
    }

    /// Open the store in folder `path` on whichever engine it was created with (for
    /// `store check` of a backup); `None` if `path` holds no store.
    pub fn open_found(path: &Path, cache_bytes: u64) -> Result<Option<Self>, StoreError> {
        match EngineKind::detect(path) {
            Some(kind) => Self::open(path, Some(kind), cache_bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Copy the stopped store in folder `from` into a new store in folder `to` on `engine`
    /// (`None`: the default for a new store), leaving `from` as it was, then check the copy
    /// whole (`caravan-spoke store migrate`). A running spoke's store is refused (it holds the
    /// engine's lock), and so is a `to` that holds anything. Returns what was copied and the
    /// copy's check.
    pub fn migrate(
        from: &Path,
        to: &Path,
        engine: Option<EngineKind>,
    ) -> Result<
        (
            caravan_common::store::Migrated,
            caravan_common::check::Report,
        ),
        StoreError,
    > {
        let migrated =
            caravan_common::store::migrate(from, to, engine.unwrap_or_default(), TABLES)?;
        let moved =
            Self::open_found(to, 8 << 20)?.ok_or_else(|| StoreError::NoStore(to.to_path_buf()))?;
        Ok((migrated, moved.check()))
    }

    /// Record the format version, or refuse a store of a later one.
    fn upgrade(&self) -> Result<(), StoreError> {
        match self.meta_u64(FORMAT_KEY)? {
            Some(v) if v > FORMAT_VERSION => Err(StoreError::Newer {
                found: v,
                supported: FORMAT_VERSION,
            }),
            Some(FORMAT_VERSION) => Ok(()),
            // Nothing to rewrite: older records still decode (as version 0). The new version
            // is recorded so that an older spoke refuses the records it could not read.
            _ => {
                self.put(META, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
                self.flush()
            }
        }
    }

    /// The first damage a read found since the spoke started (`None`: none).
    pub fn damage(&self) -> Option<String> {
        self.damage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many documents' payloads failed their checksum since the spoke started.
    pub fn damaged_payloads(&self) -> u64 {
        self.damaged.count()
    }

    /// Pass a read's outcome on, noting damage (a record that does not decode, an engine that
    /// cannot read its files, a payload that fails its checksum) for health; logged the first
    /// time.
    fn watched<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        // Damage, not a passing fault (a full disk, a reopen under way: `recovery` has those).
        // The engines say "corrupt" in words only.
        let damage = |e: &StoreError| match e {
            StoreError::Corrupt { .. } | StoreError::PayloadCorrupt { .. } => true,
            StoreError::Engine { .. } => e.to_string().to_lowercase().contains("corrupt"),
            _ => false,
        };
        if let Err(e) = outcome.as_ref()
            && damage(e)
        {
            let mut damage = self.damage.lock().unwrap_or_else(|e| e.into_inner());
            if damage.is_none() {
                // A payload's damage was logged where it was found, once per document.
                if !matches!(e, StoreError::PayloadCorrupt { .. }) {
                    tracing::error!(store = %self.path.display(), cause = %e,
                        "the store is damaged: health reports STORE_CORRUPT until a restart; run `caravan-spoke store check` (see the runbook)");
                }
                *damage = Some(e.to_string());
            }
        }
        outcome
    }

    /// Stores written before the counters were kept in `meta` numbered arrivals and the outbox
    /// with sled's id generator: go on after the last number used.
    fn start_counters(&self) -> Result<(), StoreError> {
        // (`queued` came after the counters: a store without them has none of it.)
        for (counter, table) in [(NEXT_ARRIVAL, ARRIVALS), (NEXT_QUEUED, OUTBOX)] {
            if counter.next(&self.db)?.is_some() {
                continue;
            }
            let last = self.db.range(table, &[], None, 1, true)?;
            let next = match last.first() {
                Some((key, _)) => u64_of(key)
                    .ok_or_else(|| StoreError::corrupt(table.name(), "key is not a number"))?
                    .saturating_add(1),
                None => Counter::FIRST,
            };
            self.db.update(|tx| counter.set_next(tx, next))?;
        }
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, table: Table, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.db
            .get(table, key)?
            .map(|b| decode(&b, table.name()))
            .transpose()
    }

    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.put(table, key, value)
    }

    fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        Ok(self.db.get(META, key)?.as_deref().and_then(u64_of))
    }

    /// The inbox entry for (sender, message id).
    pub fn inbox_entry(
        &self,
        sender: ParticipantId,
        id: MessageId,
    ) -> Result<Option<InboxRecord>, StoreError> {
        self.watched(self.get(INBOX, &inbox_key(id, sender)))
    }

    /// Inbox entries with this message id (from any sender; normally one).
    pub fn inbox_find(&self, id: MessageId) -> Result<Vec<InboxRecord>, StoreError> {
        // Keys are the id and a two-letter sender: this range holds every sender's.
        let end = message_range_end(id);
        self.watched((|| {
            self.db
                .range(INBOX, id.as_bytes(), Some(&end), usize::MAX, false)?
                .into_iter()
                .map(|(_, v)| decode(&v, INBOX.name()))
                .collect::<Result<_, _>>()
        })())
    }

    /// Store a received document unless (sender, message id) is there already. Returns
    /// whether it was new. Not durable until [`Self::flush`].
    pub fn inbox_insert(&self, record: &InboxRecord, payload: &[u8]) -> Result<bool, StoreError> {
        let key = inbox_key(record.message_id, record.sender);
        if self.db.get(INBOX, &key)?.is_some() {
            return Ok(false);
        }
        let pointer = self.place_payload(payload)?;
        let value = encode(record);
        self.db.update(|tx| {
            if tx.get(INBOX, &key)?.is_some() {
                return Ok(false);
            }
            let arrival = NEXT_ARRIVAL.take(tx)?;
            tx.insert(INBOX, &key, &value)?;
            match &pointer {
                Some(pointer) => tx.insert(PAYLOAD_AT, &key, pointer)?,
                None => tx.insert(PAYLOADS, &key, payload)?,
            }
            tx.insert(ARRIVALS, &arrival.to_be_bytes(), &key)?;
            Ok(true)
        })
    }

    /// Record the acknowledgement sent for an inbox entry.
    pub fn inbox_set_ack(
        &self,
        sender: ParticipantId,
        id: MessageId,
        ack: String,
    ) -> Result<(), StoreError> {
        let key = inbox_key(id, sender);
        self.db.update(|tx| {
            if let Some(bytes) = tx.get(INBOX, &key)? {
                let mut record: InboxRecord = decode(&bytes, "inbox entry")?;
                record.evidence.ack = Some(ack.clone());
                tx.insert(INBOX, &key, &encode(&record))?;
            }
            Ok(())
        })
    }

    /// How many documents the inbox holds.
    pub fn inbox_len(&self) -> Result<u64, StoreError> {
        self.db.len(ARRIVALS)
    }

    /// At most `limit` inbox entries that arrived after cursor `since` (from the first with
    /// `None`), in arrival order, with their cursors.
    pub fn inbox_since(&self, since: Option<u64>, limit: usize) -> Result<Arrivals, StoreError> {
        let start = since.map_or(0, |s| s.saturating_add(1));
        self.arrivals(&start.to_be_bytes(), None, limit, false)
    }

    /// Inbox entries newest first, from before cursor `before` (from the newest with
    /// `None`), for which `keep` holds, until `want` are found: read a page at a time, so
    /// that memory holds one page and the matches, never the whole inbox. Returns them and,
    /// if more may follow, the cursor to go on before.
    pub fn inbox_matching(
        &self,
        mut before: Option<u64>,
        want: usize,
        keep: impl Fn(&InboxRecord) -> bool,
    ) -> Result<(Arrivals, Option<u64>), StoreError> {
        const PAGE: usize = 256;
        let mut found = Vec::new();
        loop {
            let end = before.map(u64::to_be_bytes);
            let page = self.arrivals(&[], end.as_ref().map(|e| &e[..]), PAGE, true)?;
            let full = page.len() == PAGE;
            for (cursor, record) in page {
                before = Some(cursor);
                if keep(&record) {
                    found.push((cursor, record));
                    if found.len() == want {
                        return Ok((found, before.filter(|c| *c > 0)));
                    }
                }
            }
            if !full {
                return Ok((found, None));
            }
        }
    }

    /// Inbox entries by arrival cursor in `[from, to)`, at most `limit`, with their cursors.
    fn arrivals(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Arrivals, StoreError> {
        // Every inbox listing reads here: damage found makes health say so.
        self.watched((|| {
            let mut out = Vec::new();
            for (arrival, key) in self.db.range(ARRIVALS, from, to, limit, reverse)? {
                let cursor = u64_of(&arrival)
                    .ok_or_else(|| StoreError::corrupt("arrival key", "not a number"))?;
                if let Some(record) = self.get(INBOX, &key)? {
                    out.push((cursor, record));
                }
            }
            Ok(out)
        })())
    }

    pub fn payload(
        &self,
        sender: ParticipantId,
        id: MessageId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = inbox_key(id, sender);
        self.watched((|| {
            let Some(pointer) = self.db.get(PAYLOAD_AT, &key)? else {
                // Kept in the engine: small, or stored before segments.
                return self.db.get(PAYLOADS, &key);
            };
            let document = format!("message {id} from {sender}");
            self.read_placed(&pointer, &key, &document).map(Some)
        })())
    }

    /// Where a payload goes: `None` to be written with its record (up to the engine's inline
    /// limit), else appended to a segment now, and the encoded location to record. Either is
    /// durable with the next flush (see the module docs).
    fn place_payload(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if payload.len() <= self.db.inline_payload_limit() {
            return Ok(None);
        }
        let placed = self.db.append_payload(payload)?;
        Ok(Some(encode_location(&placed, payload.len())))
    }

    /// The payload at an encoded segment location from [`Self::place_payload`], checked
    /// against its checksums; `key` and `document` name it.
    fn read_placed(
        &self,
        pointer: &[u8],
        key: &[u8],
        document: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let p = decode_location(pointer)?;
        match self.db.segments().read(p.at, 0, p.len, &p.checksums) {
            Ok(bytes) => Ok(bytes),
            Err(e @ SegmentError::Corrupt { .. }) => {
                if self.damaged.note(key.to_vec()) {
                    tracing::error!(store = %self.path.display(), document, cause = %e,
                        "stored payload fails its checksum; it is not served, and health reports STORE_CORRUPT until a restart");
                }
                Err(StoreError::PayloadCorrupt {
                    document: document.to_owned(),
                    source: Arc::new(e),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Put a sealed envelope in the outbox together with its record, atomically: `envelope`
    /// encoded without its payload, and `payload`, which is kept apart like an inbox entry's
    /// (in a segment above the engine's inline limit: sled would keep a large value in
    /// memory until the process ends). Durable after [`Self::flush`].
    pub fn enqueue(
        &self,
        record: &SentRecord,
        envelope: &[u8],
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let kept = match self.place_payload(payload)? {
            None => [&[0u8][..], payload].concat(),
            Some(pointer) => [&[1u8][..], &pointer].concat(),
        };
        let value = encode(record);
        self.db.update(|tx| {
            let mut key = NEXT_QUEUED.take(tx)?.to_be_bytes().to_vec();
            key.extend_from_slice(record.message_id.as_bytes());
            tx.insert(SENT, record.message_id.as_bytes(), &value)?;
            tx.insert(QUEUED, &key, envelope)?;
            tx.insert(OUTBOX_PAYLOADS, &key, &kept)
        })
    }

    /// The payload of a queued envelope; `None` for an envelope queued with its payload inside
    /// (by a spoke from before `queued`).
    pub fn queued_payload(&self, queued: &Queued) -> Result<Option<Vec<u8>>, StoreError> {
        if queued.whole {
            return Ok(None);
        }
        self.watched((|| {
            let kept = self
                .db
                .get(OUTBOX_PAYLOADS, &queued.key)?
                .ok_or_else(|| StoreError::corrupt("outbox payload", "missing"))?;
            match kept.split_first() {
                Some((0, payload)) => Ok(Some(payload.to_vec())),
                Some((1, pointer)) => {
                    let document = format!("outbox message {}", queued.message_id);
                    self.read_placed(pointer, &queued.key, &document).map(Some)
                }
                _ => Err(StoreError::corrupt("outbox payload", "unknown kind")),
            }
        })())
    }

    /// The oldest `limit` envelopes in the outbox (both tables share the queue numbers).
    pub fn outbox(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let mut oldest = Vec::new();
        for (table, whole) in [(QUEUED, false), (OUTBOX, true)] {
            for (key, envelope) in self.db.range(table, &[], None, limit, false)? {
                let id: [u8; 16] = key
                    .get(8..24)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StoreError::corrupt("outbox key", "not number + id"))?;
                oldest.push(Queued {
                    message_id: uuid_message_id(id)?,
                    key,
                    whole,
                    envelope,
                });
            }
        }
        oldest.sort_by(|a, b| a.key.cmp(&b.key));
        oldest.truncate(limit);
        Ok(oldest)
    }

    /// How many envelopes wait in the outbox.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        Ok(self.db.len(QUEUED)? + self.db.len(OUTBOX)?)
    }

    /// Take `queued` out of the outbox and record the hub's answer (receipt or refusal),
    /// atomically. State changes the hub already reported are kept.
    pub fn settle(&self, queued: &Queued, answer: &SentRecord) -> Result<(), StoreError> {
        let key = answer.message_id.as_bytes();
        self.db.update(|tx| {
            let mut record: SentRecord = match tx.get(SENT, key)? {
                Some(v) => decode(&v, "sent record")?,
                None => answer.clone(),
            };
            record.receipt = answer.receipt.clone();
            record.refusal = answer.refusal.clone();
            record.attempts = answer.attempts;
            record.last_error = answer.last_error.clone();
            if record.state == SentState::Queued {
                record.state = answer.state;
            }
            tx.insert(SENT, key, &encode(&record))?;
            // Receipted and not settled for good: the envelope is kept until it is (see
            // `receipted`), for a hub that loses it in a restore.
            let keep = record.receipt.is_some() && !record.state.is_final();
            let table = if queued.whole { OUTBOX } else { QUEUED };
            if keep {
                let envelope = tx.get(table, &queued.key)?.ok_or_else(|| {
                    StoreError::corrupt("outbox entry", "missing while it is settled")
                })?;
                tx.insert(RECEIPTED, key, &envelope)?;
            }
            if !queued.whole {
                if keep && let Some(payload) = tx.get(OUTBOX_PAYLOADS, &queued.key)? {
                    tx.insert(RECEIPTED_PAYLOADS, key, &payload)?;
                }
                tx.remove(OUTBOX_PAYLOADS, &queued.key)?;
            }
            tx.remove(table, &queued.key)
        })
    }

    /// Documents the hub gave a receipt for that have not reached a final state yet, up to
    /// `limit`.
    pub fn receipted(&self, limit: usize) -> Result<Vec<MessageId>, StoreError> {
        self.db
            .range(RECEIPTED, &[], None, limit, false)?
            .into_iter()
            .map(|(key, _)| {
                let id: [u8; 16] = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::corrupt("receipted key", "not an id"))?;
                uuid_message_id(id)
            })
            .collect()
    }

    /// Put a receipted document the hub no longer knows back in the outbox, byte for byte,
    /// under its message id, with `why` as its last error; false if it is not kept (settled
    /// meanwhile). Durable after [`Self::flush`].
    pub fn requeue(&self, message_id: MessageId, why: &str) -> Result<bool, StoreError> {
        let id = message_id.as_bytes();
        self.db.update(|tx| {
            let (Some(envelope), Some(v)) = (tx.get(RECEIPTED, id)?, tx.get(SENT, id)?) else {
                return Ok(false);
            };
            let mut record: SentRecord = decode(&v, "sent record")?;
            let mut key = NEXT_QUEUED.take(tx)?.to_be_bytes().to_vec();
            key.extend_from_slice(id);
            match tx.get(RECEIPTED_PAYLOADS, id)? {
                Some(payload) => {
                    tx.insert(QUEUED, &key, &envelope)?;
                    tx.insert(OUTBOX_PAYLOADS, &key, &payload)?;
                    tx.remove(RECEIPTED_PAYLOADS, id)?;
                }
                None => tx.insert(OUTBOX, &key, &envelope)?,
            }
            tx.remove(RECEIPTED, id)?;
            record.state = SentState::Queued;
            record.last_error = Some(why.to_owned());
            tx.insert(SENT, id, &encode(&record))?;
            Ok(true)
        })
    }

    /// The last inbox arrival the NSW webhook acknowledged (`None`: none yet).
    pub fn webhook_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.meta_u64(WEBHOOK_CURSOR)
    }

    pub fn set_webhook_cursor(&self, cursor: u64) -> Result<(), StoreError> {
        self.put(META, WEBHOOK_CURSOR, &cursor.to_be_bytes())?;
        self.flush()
    }

    /// Where the hub's stream of status events was last read, and the hub's epoch that cursor
    /// belongs to (empty before the first event).
    pub fn status_cursor(&self) -> Result<(u64, String), StoreError> {
        let cursor = self.meta_u64(STATUS_CURSOR)?.unwrap_or(0);
        let epoch = self
            .db
            .get(META, STATUS_EPOCH)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        Ok((cursor, epoch))
    }

    /// Apply a status event from the hub to the record of `message_id` and move the cursor,
    /// atomically. Events for messages this spoke has no record of only move the cursor.
    pub fn apply_status(
        &self,
        message_id: MessageId,
        change: StateChange,
        acknowledgement: Option<AckRecord>,
        cursor: u64,
        epoch: &str,
    ) -> Result<(), StoreError> {
        let key = message_id.as_bytes();
        self.db.update(|tx| {
            if let Some(v) = tx.get(SENT, key)? {
                let mut record: SentRecord = decode(&v, "sent record")?;
                if !record.transitions.contains(&change) {
                    if !record.state.is_final() {
                        record.state = change.state;
                    }
                    record.transitions.push(change.clone());
                }
                if acknowledgement.is_some() {
                    record.acknowledgement = acknowledgement.clone();
                }
                tx.insert(SENT, key, &encode(&record))?;
                if record.state.is_final() {
                    tx.remove(RECEIPTED, key)?;
                    tx.remove(RECEIPTED_PAYLOADS, key)?;
                }
            }
            tx.insert(META, STATUS_CURSOR, &cursor.to_be_bytes())?;
            tx.insert(META, STATUS_EPOCH, epoch.as_bytes())
        })
    }

    /// Link a verified business response from `from` to the sent message it answers.
    pub fn link_response(
        &self,
        answered: MessageId,
        from: ParticipantId,
        answer: AnswerRecord,
    ) -> Result<bool, StoreError> {
        let key = answered.as_bytes();
        self.db.update(|tx| {
            let Some(v) = tx.get(SENT, key)? else {
                return Ok(false);
            };
            let mut record: SentRecord = decode(&v, "sent record")?;
            if record.recipient != from {
                return Ok(false);
            }
            if !record
                .responses
                .iter()
                .any(|r| r.message_id == answer.message_id)
            {
                record.responses.push(answer.clone());
            }
            tx.insert(SENT, key, &encode(&record))?;
            Ok(true)
        })
    }

    pub fn sent_update(&self, record: &SentRecord) -> Result<(), StoreError> {
        self.put(SENT, record.message_id.as_bytes(), &encode(record))
    }

    pub fn sent_entry(&self, id: MessageId) -> Result<Option<SentRecord>, StoreError> {
        self.watched(self.get(SENT, id.as_bytes()))
    }

    /// The last good signed trust list (encoded `caravan.v1.SignedTrustList`).
    pub fn trust_list(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(TRUST, CURRENT_TRUST_LIST)
    }

    /// Keep a new good trust list; durable after [`Self::flush`].
    pub fn set_trust_list(&self, signed: &[u8]) -> Result<(), StoreError> {
        self.put(TRUST, CURRENT_TRUST_LIST, signed)
    }

    /// The last tree head of the hub's log this spoke verified consistent with every earlier one.
    pub fn log_head(&self) -> Result<Option<LogHeadRecord>, StoreError> {
        self.get(META, LOG_HEAD)
    }

    /// Keep a newer verified head, durably.
    pub fn set_log_head(&self, head: &LogHeadRecord) -> Result<(), StoreError> {
        self.put(META, LOG_HEAD, &encode(head))?;
        self.flush()
    }

    /// The newest log alarms (at most 100), oldest first, and how many were raised in all.
    pub fn log_alarms(&self) -> Result<(Vec<LogAlarm>, u64), StoreError> {
        let alarms = self.get(META, LOG_ALARMS)?.unwrap_or_default();
        let total = self.meta_u64(LOG_ALARMS_TOTAL)?.unwrap_or(0);
        Ok((alarms, total))
    }

    /// Record an alarm, durably.
    pub fn add_log_alarm(&self, alarm: &LogAlarm) -> Result<(), StoreError> {
        self.db.update(|tx| {
            let mut alarms: Vec<LogAlarm> = match tx.get(META, LOG_ALARMS)? {
                Some(v) => decode(&v, "log alarms")?,
                None => Vec::new(),
            };
            alarms.push(alarm.clone());
            let excess = alarms.len().saturating_sub(LOG_ALARMS_KEPT);
            alarms.drain(..excess);
            let total = tx
                .get(META, LOG_ALARMS_TOTAL)?
                .as_deref()
                .and_then(u64_of)
                .unwrap_or(0);
            tx.insert(META, LOG_ALARMS, &encode(&alarms))?;
            tx.insert(META, LOG_ALARMS_TOTAL, &(total + 1).to_be_bytes())
        })?;
        self.flush()
    }

    /// Run `ops` as one batch of the engine: their writes share one commit where the engine
    /// can (see `caravan_common::store::Engine::batch`); an error from `ops` or the batch comes
    /// back; after a failed batch, treat each of its writes as not kept.
    pub fn batch(&self, mut ops: impl FnMut() -> Result<(), StoreError>) -> Result<(), StoreError> {
        // The engine runs an object-safe `ops`; its outcome comes back through this slot.
        let mut outcome = Ok(());
        self.db.batch(&mut || outcome = ops())?;
        outcome
    }

    /// Make every write so far durable (what that promises depends on the engine: see
    /// `caravan_common::store`): the payloads first, then the engine (`Db::flush`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()
    }

    /// The store's health: faulted while the disk is full or failing, until it recovers.
    pub fn health(&self) -> Option<&std::sync::Arc<recovery::StoreHealth>> {
        self.db.health()
    }
}

/// Records for tests: one of each kind, shared by the store's tests and the APIs'.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A document from `sender` (a new message id each time), as the inbox keeps it: an e-CO
    /// with a 3-byte payload, accepted by the hub at 1 s and received at 2 s, rejected for a
    /// revoked key.
    pub fn inbox_record(sender: &str) -> InboxRecord {
        InboxRecord {
            message_id: MessageId::generate(),
            sender: sender.parse().unwrap(),
            document_type: Some(DocumentType::CertificateOfOrigin),
            document_id: Some("KZ-CO-1".into()),
            content_type: Some("application/xml".into()),
            supersedes: None,
            in_reply_to: None,
            response: None,
            summary: None,
            created_at: None,
            key_id: None,
            payload_length: 3,
            payload_sha256: "00".into(),
            hub_sequence: Some(7),
            accepted_at: Some(Timestamp::from_millis(1_000)),
            received_at: Timestamp::from_millis(2_000),
            verification: Verification::Rejected {
                code: RefusalCode::KeyRevoked,
                reason: "lost".into(),
            },
            evidence: Evidence {
                header: String::new(),
                signature: String::new(),
                signature_key_id: String::new(),
                receipt: String::new(),
                ack: None,
            },
        }
    }
}

/// The engines the tests run on.
#[cfg(test)]
const ENGINES: [EngineKind; 2] = [EngineKind::Sled, EngineKind::Redb];

#[cfg(test)]
mod tests {
    use super::*;

    use super::fixtures::inbox_record as record;

    #[test]
    fn inbox_keeps_each_document_once_in_arrival_order() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let a = record("KZ");
            let b = record("UZ");
            assert!(store.inbox_insert(&a, b"abc").unwrap());
            assert!(store.inbox_insert(&b, b"xyz").unwrap());
            assert!(
                !store.inbox_insert(&a, b"other").unwrap(),
                "a redelivery is not stored again"
            );
            let list: Vec<InboxRecord> = store
                .inbox_since(None, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(_, r)| r)
                .collect();
            assert_eq!(
                list.iter().map(|r| r.message_id).collect::<Vec<_>>(),
                vec![a.message_id, b.message_id]
            );
            assert_eq!(
                store.payload(a.sender, a.message_id).unwrap().unwrap(),
                b"abc"
            );
            assert_eq!(store.inbox_find(b.message_id).unwrap(), vec![b.clone()]);
            store
                .inbox_set_ack(a.sender, a.message_id, "ack".into())
                .unwrap();
            assert_eq!(
                store
                    .inbox_entry(a.sender, a.message_id)
                    .unwrap()
                    .unwrap()
                    .evidence
                    .ack
                    .as_deref(),
                Some("ack")
            );
            // Payloads up to the engine's inline limit are kept in the engine, larger ones in
            // segment files; both survive a reopen, and a payload stored by a spoke from before
            // segments (in sled's `payloads` tree) is still read.
            let big = record("TJ");
            let big_payload = vec![7u8; 64 * 1024 + 1];
            assert!(store.inbox_insert(&big, &big_payload).unwrap());
            let kept_inline = |r: &InboxRecord| {
                let key = inbox_key(r.message_id, r.sender);
                let inline = store.db.get(PAYLOADS, &key).unwrap().is_some();
                let in_segment = store.db.get(PAYLOAD_AT, &key).unwrap().is_some();
                assert_ne!(inline, in_segment, "a payload is kept in one place");
                inline
            };
            assert_eq!(kept_inline(&b), engine == EngineKind::Redb);
            assert!(!kept_inline(&big));
            assert_eq!(
                store.payload(b.sender, b.message_id).unwrap().unwrap(),
                b"xyz"
            );
            let key = inbox_key(a.message_id, a.sender);
            store
                .db
                .update(|tx| {
                    tx.remove(PAYLOAD_AT, &key)?;
                    tx.insert(PAYLOADS, &key, b"old format")
                })
                .unwrap();
            store.flush().unwrap();
            drop(store);
            let store = SpokeStore::open(dir.path(), Some(engine), 1 << 20).unwrap();
            assert_eq!(
                store.payload(b.sender, b.message_id).unwrap().unwrap(),
                b"xyz"
            );
            assert_eq!(
                store.payload(a.sender, a.message_id).unwrap().unwrap(),
                b"old format"
            );
            assert_eq!(
                store.payload(big.sender, big.message_id).unwrap().unwrap(),
                big_payload
            );
        }
    }
    #[test]
    fn damage_is_refused_reported_and_marks_the_store_unhealthy() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let (a, b) = (record("KZ"), record("UZ"));
            let big = vec![5u8; segments::CHECK_BLOCK + 100];
            store.inbox_insert(&a, &big).unwrap();
            store.inbox_insert(&b, b"small").unwrap();
            store.flush().unwrap();
            let report = store.check();
            // The records say 3 bytes: the check compares.
            assert_eq!(report.problems.len(), 2, "{engine}: {:?}", report.problems);
            let dir2 = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir2.path(), Some(engine), 4 << 20).unwrap();
            let mut a = record("KZ");
            a.payload_length = big.len() as u64;
            let mut b = record("UZ");
            b.payload_length = 5;
            store.inbox_insert(&a, &big).unwrap();
            store.inbox_insert(&b, b"small").unwrap();
            store.flush().unwrap();
            let report = store.check();
            assert!(report.is_sound(), "{engine}: {:?}", report.problems);
            // On sled even the small one is in a segment; redb keeps it in its own pages.
            let in_engine = u64::from(engine == EngineKind::Redb);
            assert_eq!(report.payloads.checked, 2 - in_engine);
            assert_eq!(report.payloads.in_engine, in_engine);
            assert!(store.check_at_start().is_sound());
            assert_eq!(store.damage(), None);

            // A flipped bit in the segment: never served, named, counted once.
            let file = dir2.path().join("payload-segments").join("seg-000001.bin");
            let mut bytes = std::fs::read(&file).unwrap();
            bytes[segments::CHECK_BLOCK + 1] ^= 8;
            std::fs::write(&file, bytes).unwrap();
            for _ in 0..2 {
                match store.payload(a.sender, a.message_id) {
                    Err(StoreError::PayloadCorrupt { document, source }) => {
                        let detail = source.to_string();
                        assert!(document.contains(&a.message_id.to_string()), "{document}");
                        assert!(detail.contains("block 1"), "{detail}");
                    }
                    other => panic!("{engine}: {other:?}"),
                }
            }
            assert_eq!(store.damaged_payloads(), 1);
            assert!(store.damage().is_some());
            assert_eq!(
                store.payload(b.sender, b.message_id).unwrap().unwrap(),
                b"small"
            );
            let report = store.check();
            assert_eq!(report.problems.len(), 1, "{engine}: {:?}", report.problems);
            assert!(
                report.problems[0]
                    .record
                    .contains(&a.message_id.to_string())
            );

            // A record that no longer decodes breaks the inbox listing: said, and remembered.
            let dir3 = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir3.path(), Some(engine), 4 << 20).unwrap();
            store.inbox_insert(&b, b"small").unwrap();
            let key = inbox_key(b.message_id, b.sender);
            store.put(INBOX, &key, b"{not json").unwrap();
            store.flush().unwrap();
            assert!(
                store
                    .check_at_start()
                    .problems
                    .iter()
                    .any(|p| p.place == INBOX.name())
            );
            assert!(store.inbox_since(None, 100).is_err());
            assert!(store.damage().unwrap().contains("inbox"));
            // Counters that went back since they were noted: committed data was lost.
            store.note_floors().unwrap();
            assert!(
                store
                    .check_at_start()
                    .problems
                    .iter()
                    .all(|p| p.place == INBOX.name())
            );
            store
                .put(META, NEXT_ARRIVAL.key(), &0u64.to_be_bytes())
                .unwrap();
            let report = store.check_at_start();
            // Arrivals number from 1 (`Counter::FIRST`): after one, the next is 2.
            assert!(
                report.problems.iter().any(
                    |p| p.record == "next_arrival" && p.detail.contains("is at 0 but was at 2")
                ),
                "{engine}: {:?}",
                report.problems
            );
            let report = store.check();
            assert!(!report.is_sound());
        }
    }

    #[test]
    fn records_written_before_record_versions_still_decode() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let a = record("KZ");
            store.inbox_insert(&a, b"abc").unwrap();
            let key = inbox_key(a.message_id, a.sender);
            let stored = store.db.get(INBOX, &key).unwrap().unwrap();
            assert_eq!(
                &stored[..2],
                &[0, RECORD_VERSION],
                "a record carries its version"
            );
            // As a spoke from before versions wrote it: the bare JSON.
            store
                .put(INBOX, &key, &serde_json::to_vec(&a).unwrap())
                .unwrap();
            assert_eq!(
                store.inbox_entry(a.sender, a.message_id).unwrap(),
                Some(a.clone())
            );
            assert!(store.check().is_sound(), "{engine}");
            // One from a newer spoke is refused, not misread.
            let newer = [
                &[0u8, RECORD_VERSION + 1][..],
                &serde_json::to_vec(&a).unwrap(),
            ]
            .concat();
            store.put(INBOX, &key, &newer).unwrap();
            let err = store.inbox_entry(a.sender, a.message_id).unwrap_err();
            assert!(err.to_string().contains("newer Caravan"), "{err}");
        }
    }

    #[test]
    fn an_acknowledgement_is_verified_or_not_and_keeps_its_stored_form() {
        let verified = AckRecord {
            check: AckCheck::Verified(serde_json::json!({"outcome": "ACCEPTED"})),
            signed: "c2lnbmVk".into(),
        };
        let json = serde_json::to_value(&verified).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"verified": true, "ack": {"outcome": "ACCEPTED"}, "problem": null, "signed": "c2lnbmVk"})
        );
        let failed: AckRecord = serde_json::from_value(serde_json::json!(
            {"verified": false, "ack": null, "problem": "BAD_SIGNATURE: no", "signed": "eA=="}
        ))
        .unwrap();
        assert_eq!(failed.check, AckCheck::Failed("BAD_SIGNATURE: no".into()));
        assert!(!failed.is_verified());
        assert_eq!(
            serde_json::from_value::<AckRecord>(json).unwrap(),
            verified,
            "it round-trips"
        );
    }

    #[test]
    fn numbering_goes_on_after_a_store_numbered_by_sled() {
        // Stores from before the counters in `meta` numbered arrivals with sled's ids.
        let dir = tempfile::tempdir().unwrap();
        let a = record("KZ");
        {
            let store = SpokeStore::open(dir.path(), Some(EngineKind::Sled), 1 << 20).unwrap();
            store.inbox_insert(&a, b"abc").unwrap();
            let key = inbox_key(a.message_id, a.sender);
            store
                .db
                .update(|tx| {
                    tx.remove(ARRIVALS, &Counter::FIRST.to_be_bytes())?;
                    tx.insert(ARRIVALS, &41u64.to_be_bytes(), &key)?;
                    tx.remove(META, NEXT_ARRIVAL.key())
                })
                .unwrap();
            store.flush().unwrap();
        }
        let store = SpokeStore::open(dir.path(), Some(EngineKind::Sled), 1 << 20).unwrap();
        let b = record("UZ");
        store.inbox_insert(&b, b"xyz").unwrap();
        let cursors: Vec<u64> = store
            .inbox_since(None, usize::MAX)
            .unwrap()
            .iter()
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(cursors, [41, 42]);
        assert_eq!(store.inbox_len().unwrap(), 2);
    }

    #[test]
    fn the_inbox_is_read_a_page_at_a_time() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            // 600 documents: more than one page of the scan; every third from UZ.
            for i in 0..600 {
                let sender = if i % 3 == 0 { "UZ" } else { "KZ" };
                store.inbox_insert(&record(sender), b"xyz").unwrap();
            }
            let first = store.inbox_since(None, 250).unwrap();
            assert_eq!(first.len(), 250);
            let next = store.inbox_since(Some(first[249].0), 1000).unwrap();
            assert_eq!(next.len(), 350, "{engine}");
            assert_eq!(next[0].0, first[249].0 + 1);
            // Newest first, filtered, a page at a time, and on from where a page ended.
            let uz = |r: &InboxRecord| r.sender.as_str() == "UZ";
            let (page, older) = store.inbox_matching(None, 150, uz).unwrap();
            assert_eq!(page.len(), 150);
            assert!(page.windows(2).all(|w| w[0].0 > w[1].0), "newest first");
            assert!(page.iter().all(|(_, r)| uz(r)));
            let (rest, none) = store.inbox_matching(older, 150, uz).unwrap();
            assert_eq!(rest.len(), 50, "{engine}: 200 from UZ in all");
            assert_eq!(none, None);
            assert!(rest[0].0 < page[149].0);
        }
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::*;

    fn record() -> SentRecord {
        SentRecord {
            message_id: MessageId::generate(),
            recipient: "CN".parse().unwrap(),
            document_type: DocumentType::Invoice,
            document_id: "INV-1".into(),
            payload_length: 3,
            header_sha256: "00".into(),
            queued_at: Timestamp::now(),
            state: SentState::Queued,
            receipt: None,
            refusal: None,
            attempts: 0,
            last_error: None,
            transitions: Vec::new(),
            acknowledgement: None,
            responses: Vec::new(),
        }
    }

    #[test]
    fn status_events_and_the_outbox_answer_merge_in_any_order() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let a = record();
            store.enqueue(&a, b"envelope", b"abc").unwrap();
            // The hub's events overtake the outbox worker's own answer.
            let at = Timestamp::now();
            store
                .apply_status(
                    a.message_id,
                    StateChange {
                        state: SentState::Accepted,
                        at,
                    },
                    None,
                    1,
                    "epoch-1",
                )
                .unwrap();
            store
                .apply_status(
                    a.message_id,
                    StateChange {
                        state: SentState::Acknowledged,
                        at,
                    },
                    None,
                    2,
                    "epoch-1",
                )
                .unwrap();
            let queued = store.outbox(1).unwrap().remove(0);
            let mut answer = a.clone();
            answer.state = SentState::Accepted;
            answer.attempts = 1;
            store.settle(&queued, &answer).unwrap();
            let now = store.sent_entry(a.message_id).unwrap().unwrap();
            assert_eq!(now.state, SentState::Acknowledged, "the later state stands");
            assert_eq!(now.transitions.len(), 2);
            assert_eq!(now.attempts, 1);
            assert_eq!(store.status_cursor().unwrap(), (2, "epoch-1".to_owned()));
            assert_eq!(store.outbox_len().unwrap(), 0);
        }
    }

    #[test]
    fn the_outbox_survives_a_reopen_and_settles_atomically() {
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let (a, b) = (record(), record());
            // Over the inline limit of either engine: kept in a segment, not in the engine.
            let big = vec![9u8; 64 * 1024 + 1];
            {
                let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
                store.enqueue(&a, b"envelope a", b"small").unwrap();
                store.enqueue(&b, b"envelope b", &big).unwrap();
                store.flush().unwrap();
            }
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let queued = store.outbox(10).unwrap();
            assert_eq!(
                queued.iter().map(|q| q.message_id).collect::<Vec<_>>(),
                vec![a.message_id, b.message_id]
            );
            assert_eq!(queued[0].envelope, b"envelope a");
            assert_eq!(store.queued_payload(&queued[0]).unwrap().unwrap(), b"small");
            assert_eq!(store.queued_payload(&queued[1]).unwrap().unwrap(), big);
            let in_segments = store.db.segments().size().unwrap();
            let small_outside = if engine == EngineKind::Sled { 5 } else { 0 };
            assert_eq!(in_segments, (big.len() + small_outside) as u64, "{engine}");
            let mut settled = a.clone();
            settled.state = SentState::Accepted;
            store.settle(&queued[0], &settled).unwrap();
            assert_eq!(store.outbox_len().unwrap(), 1);
            assert_eq!(store.db.len(OUTBOX_PAYLOADS).unwrap(), 1, "settled with it");
            assert_eq!(
                store.sent_entry(a.message_id).unwrap().unwrap().state,
                SentState::Accepted
            );
            assert_eq!(
                store.sent_entry(b.message_id).unwrap().unwrap().state,
                SentState::Queued
            );
        }
    }

    #[test]
    fn envelopes_queued_whole_by_an_older_spoke_go_out_in_turn_as_they_were() {
        // Spokes from before `queued` kept the whole envelope in `outbox`.
        for engine in ENGINES {
            let dir = tempfile::tempdir().unwrap();
            let store = SpokeStore::open(dir.path(), Some(engine), 4 << 20).unwrap();
            let (a, b, c) = (record(), record(), record());
            store.enqueue(&a, b"envelope a", b"payload a").unwrap();
            store
                .db
                .update(|tx| {
                    let mut key = NEXT_QUEUED.take(tx)?.to_be_bytes().to_vec();
                    key.extend_from_slice(b.message_id.as_bytes());
                    tx.insert(SENT, b.message_id.as_bytes(), &encode(&b))?;
                    tx.insert(OUTBOX, &key, b"whole envelope b")
                })
                .unwrap();
            store.enqueue(&c, b"envelope c", b"payload c").unwrap();
            let queued = store.outbox(10).unwrap();
            assert_eq!(
                queued.iter().map(|q| q.message_id).collect::<Vec<_>>(),
                vec![a.message_id, b.message_id, c.message_id],
                "in the order they were queued"
            );
            assert_eq!(store.outbox_len().unwrap(), 3);
            assert_eq!(queued[1].envelope, b"whole envelope b");
            assert_eq!(store.queued_payload(&queued[1]).unwrap(), None);
            assert_eq!(
                store.queued_payload(&queued[2]).unwrap().unwrap(),
                b"payload c"
            );
            let mut settled = b.clone();
            settled.state = SentState::Accepted;
            store.settle(&queued[1], &settled).unwrap();
            assert_eq!(
                store
                    .outbox(10)
                    .unwrap()
                    .iter()
                    .map(|q| q.message_id)
                    .collect::<Vec<_>>(),
                vec![a.message_id, c.message_id]
            );
        }
    }
}
