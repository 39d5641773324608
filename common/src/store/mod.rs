//! The store foundation under the hub's and the spokes' stores: engines, tables,
//! transactions, payload segments, the ordered flush, counters and one error.
//!
//! A store is a set of tables of byte keys and values, read one key or one key range at a
//! time and written by atomic transactions, plus the payload files beside them
//! ([`segments`]). That is all the hub's and the spokes' records need, so their logic (what a
//! message or an inbox entry is, which keys change together) is written once, over [`Db`],
//! and the engine is a setting:
//!
//! - **redb** 4 (`redb.rs`), the default for a new store: transactions commit in memory and a
//!   flush is one durable commit, written with `fdatasync`; no background threads.
//! - **sled** 0.34 (`sled.rs`): its flush syncs with `sync_file_range`, so it survives a
//!   killed process, not necessarily a power cut on a disk with a volatile write cache.
//!
//! Engine types never leave their adapter's file. A table is named by a [`Table`] handle,
//! declared once by its store with its place among the store's tables, so that an engine
//! finds it by index, never by searching names. A transaction body returns a value, or aborts
//! with an error of its own ([`TxError::Abort`]) and leaves nothing behind
//! ([`Db::transact`], after garage's `db` crate).
//!
//! The engine of an existing store is found from its files ([`EngineKind::detect`]) and kept;
//! a configuration naming the other engine is refused at open. Moving a store to the other
//! engine is an explicit copy into a new folder ([`migrate`]), never done in place.

pub mod keys;
pub mod record;
mod redb;
pub mod segments;
mod sled;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::recovery::{Fault, Recovering, StoreHealth};
use segments::{Placed, SegmentError, Segments};

pub use keys::Counter;

/// Key-value pairs, in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The cause an engine or the file system gave, kept whole for the error chain. (An `Arc`, so
/// that an error can be answered to every writer of a batch.)
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Failures of a store, for the hub and the spokes alike.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine (sled or redb) reported an error.
    #[error("storage engine: {context}{}{source}", if context.is_empty() { "" } else { ": " })]
    Engine {
        /// What was being done (may be empty).
        context: String,
        #[source]
        source: Cause,
    },
    /// A file of the store could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A stored record failed to decode: the database is corrupt or from an unknown version.
    #[error("stored record {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A stored payload's bytes fail their checksum: the document is never served as good.
    #[error("the stored payload of {document} is corrupt: {source}")]
    PayloadCorrupt {
        /// Names the document (the hub: `<sender>/<message id>`; a spoke: `message <id> from
        /// <sender>`, or the outbox entry).
        document: String,
        /// The segment file, offset and block.
        #[source]
        source: Arc<SegmentError>,
    },
    /// The process is out of file descriptors (EMFILE/ENFILE): a payload segment could not be
    /// opened. Nothing is missing; the read works again once descriptors are free.
    #[error("out of file descriptors: {0}")]
    OutOfFiles(#[source] Arc<std::io::Error>),
    /// The store is faulted (a full disk, an I/O error): writes are refused until it recovers
    /// by itself (`crate::recovery`). Callers answer "retry later", and log nothing more: the
    /// fault was logged once.
    #[error("the store is unavailable: {0}")]
    Unavailable(Fault),
    /// The store was written by a newer binary.
    #[error(
        "the store has format version {found}, written by a newer Caravan; this one reads up to version {supported}: run the newer binary, or restore a backup taken before the upgrade"
    )]
    Newer { found: u64, supported: u64 },
    /// The configuration names another engine than the one the store was created with.
    #[error(
        "the store in {} was created with store_engine = \"{found}\", not \"{configured}\": set store_engine = \"{found}\" (or remove the setting), or move the store with `store migrate` (see the runbook)",
        path.display()
    )]
    OtherEngine {
        path: PathBuf,
        found: EngineKind,
        configured: EngineKind,
    },
    /// A folder that must not hold a store (a copy's target) holds one.
    #[error("{} already holds a store", .0.display())]
    NotEmpty(PathBuf),
    /// A folder that must hold a store holds none.
    #[error("{} holds no store", .0.display())]
    NoStore(PathBuf),
    /// A write of a batch failed, so the batch was not kept: every write in it is answered
    /// as failed, whatever it returned.
    #[error("a write of the batch failed; the batch was not kept")]
    BatchFailed,
    /// An engine failed applying a transaction's writes half way; the transaction was dropped.
    #[error("a write failed half applied and was dropped")]
    HalfApplied,
    /// A write answered as failed because the batch it ran in was not kept.
    #[error("the write was not kept: {0}")]
    NotKept(#[source] Arc<StoreError>),
    /// The thread or task running store work ended without an answer (it panicked, or the
    /// process is stopping).
    #[error("store work stopped: {0}")]
    Stopped(&'static str),
    /// What this engine cannot do, and what to do instead (a backup of a database, which its
    /// own tools take).
    #[error("{0}")]
    Unsupported(&'static str),
    /// Another hub replica changed the record first: the change is not made; read it again
    /// and retry.
    #[error("{0} was changed by another hub replica meanwhile; try again")]
    Stale(&'static str),
    /// A table no store declared (a programming error).
    #[error("table {0} is not one of this store's tables")]
    UnknownTable(&'static str),
    /// Another transaction touched the same keys: the engine runs the transaction again.
    /// Transaction bodies pass it on with `?`; callers never see it.
    #[error("transaction conflict")]
    Conflict,
    /// A transaction body aborted with its own error ([`TxError::Abort`]); its caller gets
    /// that error, never this.
    #[error("transaction aborted")]
    Aborted,
}

impl StoreError {
    /// A record that does not decode.
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    /// An engine's error, kept as the source.
    pub fn engine(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Engine {
            context: String::new(),
            source: Arc::from(e.into()),
        }
    }

    /// An engine's error while doing `context`.
    pub fn engine_at(
        context: impl Into<String>,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Engine {
            context: context.into(),
            source: Arc::from(e.into()),
        }
    }

    /// An I/O error on `path`, for `map_err`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Self::Io {
            path: path.to_path_buf(),
            source: Arc::new(e),
        }
    }

    /// Whether the error is the engine's or the disk's own (which faults a store that
    /// recovers, `crate::recovery`), not a record's or a caller's.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            Self::Engine { .. } | Self::Io { .. } | Self::BatchFailed | Self::HalfApplied
        )
    }
}

impl From<SegmentError> for StoreError {
    fn from(e: SegmentError) -> Self {
        match e {
            SegmentError::Io(io) if crate::fd::is_exhaustion(&io) => Self::OutOfFiles(Arc::new(io)),
            other => Self::Engine {
                context: "payload segments".into(),
                source: Arc::new(other),
            },
        }
    }
}

/// A table of a store: its name, and its place in the list of tables the store opens with
/// (which is how an engine finds it). Stores declare theirs as constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table {
    slot: usize,
    name: &'static str,
}

impl Table {
    /// Table `name`, at place `slot` of its store's list (checked when the store opens).
    pub const fn new(slot: usize, name: &'static str) -> Self {
        Self { slot, name }
    }

    pub const fn name(self) -> &'static str {
        self.name
    }

    pub const fn slot(self) -> usize {
        self.slot
    }
}

impl From<Table> for String {
    /// Its name, as reports and logs show it.
    fn from(table: Table) -> Self {
        table.name.to_string()
    }
}

/// The view a transaction body has: its own writes, and the committed state.
pub trait Tx {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError>;
}

/// A transaction body as engines run it. It may run more than once (after a conflict).
pub type Body<'a> = dyn FnMut(&mut dyn Tx) -> Result<(), StoreError> + 'a;

/// Why a transaction did not commit: its body aborted with a reason of its own, or the store
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum TxError<E> {
    /// The body returned this; nothing it wrote was kept.
    #[error("{0}")]
    Abort(E),
    /// The store failed (or a record did not decode).
    #[error(transparent)]
    Db(#[from] StoreError),
}

/// What a transaction body returns.
pub type TxResult<R, E> = Result<R, TxError<E>>;

/// What a store needs of its engine. Reads see every committed transaction, durable or not.
pub trait Engine: Send + Sync + 'static {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` pairs with `from <= key` and `key < to` (`None`: to the end), in key
    /// order, or from the last when `reverse`.
    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError>;

    /// How many pairs `table` holds (sled counts them; redb keeps the count).
    fn len(&self, table: Table) -> Result<u64, StoreError>;

    /// Run `body` as one atomic transaction: all its writes are committed, or none (when it
    /// returns an error, which is then returned). Callers use [`Db::update`] and
    /// [`Db::transact`], which return the body's value.
    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError>;

    /// Run `ops`, whose transactions on this thread may then share one commit: each still
    /// applies all of its writes or none, reads on this thread see them, other threads see
    /// them when `ops` has returned, and a flush inside makes them durable so far. An error:
    /// the batch's writes since its last flush inside (all of them, without one) were not
    /// kept, whatever each transaction returned; callers treat every write of the batch as
    /// failed. (sled commits each transaction by itself: its batch only runs `ops`.)
    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        ops();
        Ok(())
    }

    /// Make every committed transaction durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the engine's files take on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// The largest document payload a store keeps in this engine, in its record's own
    /// transaction, rather than in a segment file beside it ([`segments`]). Inside, a
    /// flush is one sync instead of two (the segment's, then the engine's): most of the wait
    /// for a small document's receipt.
    fn inline_payload_limit(&self) -> usize;

    /// Copy every table, as of one moment between transactions, into a new store of the same
    /// engine in folder `dest` (which must not hold a store).
    fn copy_to(&self, dest: &Path) -> Result<Copied, StoreError>;

    /// The store's health, for an engine that recovers from faults (every store opened with
    /// [`Db::open`]).
    fn health(&self) -> Option<&Arc<StoreHealth>> {
        None
    }
}

impl dyn Engine {
    /// Run `body` as one transaction and return its value; an error from the body (a record
    /// that does not decode, say) leaves nothing behind and is returned.
    pub fn update<R>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        // The engine runs an object-safe body; the value comes back through this slot, set
        // by the run that committed (a body that runs again after a conflict overwrites it).
        let mut value = None;
        self.write(&mut |tx| {
            value = Some(body(tx)?);
            Ok(())
        })?;
        value.ok_or(StoreError::Stopped(
            "a transaction committed without its value",
        ))
    }

    /// Run `body` as one transaction: its value, or the reason it aborted with
    /// ([`TxError::Abort`]: nothing it wrote is kept), or the store's failure.
    pub fn transact<R, E>(
        &self,
        mut body: impl FnMut(&mut dyn Tx) -> TxResult<R, E>,
    ) -> Result<R, TxError<E>> {
        let mut value = None;
        let mut abort = None;
        let written = self.write(&mut |tx| match body(tx) {
            Ok(v) => {
                value = Some(v);
                Ok(())
            }
            Err(TxError::Abort(e)) => {
                abort = Some(e);
                Err(StoreError::Aborted)
            }
            Err(TxError::Db(e)) => Err(e),
        });
        match (written, value, abort) {
            (Ok(()), Some(v), _) => Ok(v),
            (Err(StoreError::Aborted), _, Some(e)) => Err(TxError::Abort(e)),
            (Err(e), _, _) => Err(TxError::Db(e)),
            (Ok(()), None, _) => Err(TxError::Db(StoreError::Stopped(
                "a transaction committed without its value",
            ))),
        }
    }
}

/// What [`Engine::copy_to`] did.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Key-value pairs copied.
    pub records: u64,
    /// How long transactions waited for the copy (sled: all of it; redb copies a snapshot while
    /// they go on).
    pub writes_paused: std::time::Duration,
}

/// Which engine a store runs on. A new store gets [`EngineKind::DEFAULT`] unless the
/// configuration names one; an existing store keeps the one it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Sled,
    Redb,
}

impl EngineKind {
    /// The engine of a new store when the configuration names none: redb, which fsyncs (see
    /// the module doc).
    pub const DEFAULT: Self = Self::Redb;

    /// The engine of the store in folder `path`, if there is one.
    pub fn detect(path: &Path) -> Option<Self> {
        if path.join(redb::FILE).is_file() {
            Some(Self::Redb)
        } else if path.join("conf").is_file() && path.join("db").is_file() {
            Some(Self::Sled)
        } else {
            None
        }
    }

    /// The engine a store in `path` runs on: the one found there, or for a new store the
    /// configured one (`None`: [`Self::DEFAULT`]). A configuration naming another engine than
    /// the store's is refused, so that a setting never silently points at a different store
    /// than the one the operator means.
    pub fn resolve(path: &Path, configured: Option<Self>) -> Result<Self, StoreError> {
        match (Self::detect(path), configured) {
            (Some(found), Some(configured)) if found != configured => {
                Err(StoreError::OtherEngine {
                    path: path.to_path_buf(),
                    found,
                    configured,
                })
            }
            (Some(found), _) => Ok(found),
            (None, configured) => Ok(configured.unwrap_or(Self::DEFAULT)),
        }
    }

    /// The other engine.
    pub fn other(self) -> Self {
        match self {
            Self::Sled => Self::Redb,
            Self::Redb => Self::Sled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Redb => "redb",
        }
    }
}

impl Default for EngineKind {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sled" => Ok(Self::Sled),
            "redb" => Ok(Self::Redb),
            other => Err(format!("unknown store engine {other:?}: sled or redb")),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The table the recovery probe writes to; every store opened with [`Db::open`] has it, after
/// its own tables.
fn probe_table(tables: &[Table]) -> Table {
    Table::new(tables.len(), crate::recovery::PROBE_TABLE)
}

/// Open `kind`'s engine in `path` with `tables` (each at its slot), wrapped so that it
/// recovers from storage faults by opening it again.
fn open_engine(
    path: &Path,
    kind: EngineKind,
    tables: &[Table],
    cache_bytes: u64,
) -> Result<Box<dyn Engine>, StoreError> {
    if let Some((at, t)) = tables.iter().enumerate().find(|(i, t)| t.slot() != *i) {
        tracing::error!(table = t.name(), slot = t.slot(), at, "tables out of order");
        return Err(StoreError::UnknownTable(t.name()));
    }
    let mut tables = tables.to_vec();
    let probe = probe_table(&tables);
    tables.push(probe);
    let folder = path.to_path_buf();
    let reopen = move || -> Result<Box<dyn Engine>, StoreError> {
        Ok(match kind {
            EngineKind::Sled => Box::new(sled::SledEngine::open(&folder, &tables, cache_bytes)?),
            EngineKind::Redb => Box::new(redb::RedbEngine::open(&folder, &tables, cache_bytes)?),
        })
    };
    let engine = reopen()?;
    let health = Arc::new(StoreHealth::new(path.display().to_string()));
    Ok(Box::new(Recovering::new(
        path,
        engine,
        Box::new(reopen),
        health,
        probe,
    )?))
}

/// A store's database: its engine (which recovers from faults) and its payload segments,
/// flushed in that order's reverse (segments first), so that a durable record never names
/// bytes that are not on disk.
pub struct Db {
    engine: Box<dyn Engine>,
    segments: Segments,
    path: PathBuf,
}

impl Db {
    /// Open (or create) the store in folder `path` with `tables`: the engine it was created
    /// with, or for a new store the configured one ([`EngineKind::resolve`]).
    pub fn open(
        path: &Path,
        configured: Option<EngineKind>,
        tables: &'static [Table],
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let kind = EngineKind::resolve(path, configured)?;
        Ok(Self {
            engine: open_engine(path, kind, tables, cache_bytes)?,
            segments: Segments::open(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Open the store in folder `path` with the engine found there (for tools that read a
    /// store or a backup whatever the configuration says); `None` if there is no store.
    pub fn open_found(
        path: &Path,
        tables: &'static [Table],
        cache_bytes: u64,
    ) -> Result<Option<Self>, StoreError> {
        match EngineKind::detect(path) {
            Some(kind) => Self::open(path, Some(kind), tables, cache_bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The engine, for walks over whole tables (`crate::check::scan`).
    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    pub fn kind(&self) -> EngineKind {
        self.engine.kind()
    }

    /// The store's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn segments(&self) -> &Segments {
        &self.segments
    }

    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine.get(table, key)
    }

    /// See [`Engine::range`].
    pub fn range(
        &self,
        table: Table,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError> {
        self.engine.range(table, from, to, limit, reverse)
    }

    pub fn len(&self, table: Table) -> Result<u64, StoreError> {
        self.engine.len(table)
    }

    /// See `<dyn Engine>::update`.
    pub fn update<R>(
        &self,
        body: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.engine.update(body)
    }

    /// See `<dyn Engine>::transact`.
    pub fn transact<R, E>(
        &self,
        body: impl FnMut(&mut dyn Tx) -> TxResult<R, E>,
    ) -> Result<R, TxError<E>> {
        self.engine.transact(body)
    }

    /// One write of one key.
    pub fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.update(|tx| tx.insert(table, key, value))
    }

    /// See [`Engine::batch`].
    pub fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.engine.batch(ops)
    }

    /// Append a payload to the segments (before the transaction that records where it is); a
    /// failure faults the store like an engine's.
    pub fn append_payload(&self, payload: &[u8]) -> Result<Placed, StoreError> {
        self.segments
            .append(payload)
            .map_err(|e| crate::recovery::storage_failed(self.engine.as_ref(), e))
    }

    /// Make every write so far durable: the segments first, then the engine, so that a record
    /// made durable never names bytes still in the page cache.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.segments
            .sync()
            .map_err(|e| crate::recovery::storage_failed(self.engine.as_ref(), e))?;
        self.engine.flush()
    }

    /// Bytes the engine's files and the segments take on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.engine.size_on_disk()? + self.segments.size()?)
    }

    pub fn inline_payload_limit(&self) -> usize {
        self.engine.inline_payload_limit()
    }

    pub fn health(&self) -> Option<&Arc<StoreHealth>> {
        self.engine.health()
    }

    /// Copy the store, as of one moment between transactions, into folder `dest` (which must
    /// not hold a store), on the same engine: the engine's tables, then the segments (so that
    /// they hold every payload the copied tables name). Returns what the engine copied and the
    /// bytes of segments.
    pub fn copy_to(&self, dest: &Path) -> Result<(Copied, u64), StoreError> {
        let copied = self.engine.copy_to(dest)?;
        let segment_bytes = self.segments.copy_to(dest)?;
        Ok((copied, segment_bytes))
    }
}

/// What [`migrate`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: EngineKind,
    pub to: EngineKind,
    /// Key-value pairs copied.
    pub records: u64,
    /// Bytes of payload segments copied.
    pub segment_bytes: u64,
}

/// A temporary folder, removed when dropped ([`scratch_copy`]).
pub use tempfile::TempDir as Scratch;

/// Copy folder `from` into `to` (made if missing), file for file: a stopped store or a backup.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A copy of the store (or backup) in folder `from`, file for file, in a temporary folder
/// removed when the returned guard drops: beside `from` (the same disk, where a backup has
/// room) or, where that folder cannot be written, in the system's temporary folder. Tools that
/// only read a backup (`store check --store`, `log verify --store`) open the copy, since opening
/// a store may write to it (an engine's recovery, a format upgrade): the backup stays exactly
/// as it was.
pub fn scratch_copy(from: &Path) -> std::io::Result<Scratch> {
    let scratch = from
        .parent()
        .and_then(|p| {
            tempfile::Builder::new()
                .prefix(".caravan-scratch-")
                .tempdir_in(p)
                .ok()
        })
        .map_or_else(
            || {
                tempfile::Builder::new()
                    .prefix("caravan-scratch-")
                    .tempdir()
            },
            Ok,
        )?;
    copy_dir(from, &scratch.path().join("store"))?;
    Ok(scratch)
}

/// Copy the stopped store in folder `from` into a new store in folder `to` on engine `kind`
/// (either engine), with `tables`: every pair of every table, a batch of keys per
/// transaction, then the payload segments, then one durable flush. The source is opened and
/// read only (its engine's lock refuses a store a running process holds); a `to` that holds a
/// store or any file is refused.
pub fn migrate(
    from: &Path,
    to: &Path,
    kind: EngineKind,
    tables: &'static [Table],
) -> Result<Migrated, StoreError> {
    let source = Db::open_found(from, tables, 64 << 20)?
        .ok_or_else(|| StoreError::NoStore(from.to_path_buf()))?;
    let occupied = match std::fs::read_dir(to) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(StoreError::io(to)(e)),
    };
    if occupied {
        return Err(StoreError::NotEmpty(to.to_path_buf()));
    }
    // The segments first, so that the new store's own segments go on after them; and the
    // counters noted beside the store (`crate::check`), which hold for the copy as well.
    let segment_bytes = source.segments.copy_to(to)?;
    let floors = from.join(crate::check::FLOORS_FILE);
    if floors.is_file() {
        std::fs::copy(&floors, to.join(crate::check::FLOORS_FILE))
            .map_err(StoreError::io(&floors))?;
    }
    let target = Db::open(to, Some(kind), tables, 64 << 20)?;
    const BATCH: usize = 1024;
    let mut records = 0u64;
    for table in tables {
        let mut from_key = Vec::new();
        loop {
            let pairs = source.range(*table, &from_key, None, BATCH, false)?;
            target.update(|tx| {
                for (k, v) in &pairs {
                    tx.insert(*table, k, v)?;
                }
                Ok(())
            })?;
            records += pairs.len() as u64;
            match pairs.last() {
                Some((key, _)) if pairs.len() == BATCH => {
                    from_key = key.clone();
                    from_key.push(0);
                }
                _ => break,
            }
        }
    }
    target.flush()?;
    Ok(Migrated {
        from: source.kind(),
        to: kind,
        records,
        segment_bytes,
    })
}

/// Run blocking store work off the async runtime's threads (a flush, a walk, a copy).
pub async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|_| StoreError::Stopped("a store task ended without an answer"))?
}

#[cfg(test)]
mod tests;
