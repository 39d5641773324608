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
//! | `numbers`  | sender (2) + SHA-256 of the document number (first 16) + message id (16) | empty: the inbox by document number, for the duplicate check |
//! | `replacements` | replaced message id (16) + sender (2) | the replacing document's message id (16), kept whether or not the replaced one has arrived |
//!
//! Here: the [`SpokeStore`] handle (open, upgrade, damage, batches, flush). Beside it, one
//! module per part: `tables` (the layout: tables, `meta` keys, counters, key making),
//! `records` (the inbox's and log's records, and the versioned JSON every record is stored
//! in), `sent` (the record of a document sent and its lifecycle, and the `sent` table),
//! `inbox`, `outbox` (with `receipted`), `payloads` (inline or in segments, with checksums),
//! `meta` (trust list, log head and alarms, webhook cursor), `check` (`store check`).
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
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use caravan_common::{
    recovery,
    store::{Counter, Db, EngineKind, Table, keys::u64_of, segments::Damaged},
};

mod certificates;
mod check;
#[cfg(test)]
pub(crate) mod fixtures;
mod inbox;
mod meta;
mod outbox;
mod paging;
mod payloads;
mod records;
mod sent;
mod tables;
#[cfg(test)]
mod tests;

pub use certificates::{Action, CertificateRecord, CertificateState, Step, TemplateRecord};
pub use inbox::{Arrivals, InboxPage};
pub use outbox::Queued;
pub use paging::{Page, PageAt};
pub use records::{
    AnswerRecord, Decision, Evidence, InboxRecord, LogAlarm, LogHeadRecord, Note, RECORD_VERSION,
    RESPONSE_CONTENT_TYPE, ResponseBody, Verification,
};
pub use sent::{
    AckCheck, AckJson, AckRecord, HubState, Lifecycle, ReceiptInfo, SENT_RECORD_VERSION, SentPage,
    SentRecord, SentState, StateChange,
};
pub use tables::{FORMAT_VERSION, TABLES};

use records::{JsonRecord, decode};
use tables::{ARRIVALS, FORMAT_KEY, META, NEXT_ARRIVAL, NEXT_QUEUED, OUTBOX};

/// The store's one error, shared with the hub (`caravan_common::store`).
pub use caravan_common::store::StoreError;

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
    /// Durable flushes since the spoke started (`caravan_spoke_store_flushes_total`).
    flushes: AtomicU64,
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
            flushes: AtomicU64::new(0),
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
            // Any earlier version (or none). Older records still decode (each by its version);
            // only the indexes are built again: before format 4 they did not hold everything
            // received, before format 5 `numbers` was keyed by the numbers' hashes. The new
            // version is recorded so that an older spoke refuses what it could not read or keep.
            _ => {
                self.clear_numbers()?;
                let indexed = self.index_inbox()?;
                tracing::info!(
                    documents = indexed,
                    "store upgraded: inbox documents indexed by number and replacement"
                );
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

    fn get<T: JsonRecord>(&self, table: Table, key: &[u8]) -> Result<Option<T>, StoreError> {
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
        self.db.flush()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// How many flushes made writes durable since the spoke started.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The store's health: faulted while the disk is full or failing, until it recovers.
    pub fn health(&self) -> Option<&std::sync::Arc<recovery::StoreHealth>> {
        self.db.health()
    }
}
