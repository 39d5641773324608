//! The storage engines under the hub's and the spokes' stores, behind one narrow trait.
//!
//! A store is a set of named tables of byte keys and values, read one key or one key range at a
//! time and written by atomic transactions; [`Engine::flush`] makes every committed transaction
//! durable. That is all the hub's and the spokes' records need, so their logic (what a message
//! or an inbox entry is, which keys change together) is written once, over [`Engine`], and the
//! engine is a setting:
//!
//! - **sled** 0.34 ([`SledEngine`]), the embedded default. Its flush syncs with
//!   `sync_file_range`: it survives a killed process, not necessarily a power cut on a disk
//!   with a volatile write cache. Each flush hands the write to a thread pool that wakes all
//!   its idle threads, which costs most of a busy node's CPU (see the README's performance
//!   section).
//! - **redb** 4 ([`RedbEngine`]): transactions commit in memory (`Durability::None`) and a
//!   flush is one durable commit, written with `fdatasync`; no background threads.
//!
//! The engine of an existing store is found from its files ([`EngineKind::detect`]); a store
//! is never converted from one engine to another in place.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use crate::recovery::{Fault, Recovering, StoreHealth};

/// Key-value pairs, in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Failures of an engine.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The engine reported an I/O or corruption error.
    #[error("storage engine: {0}")]
    Engine(String),
    /// A stored record failed to decode: the database is corrupt or from an unknown version.
    #[error("stored record {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The store is faulted (a full disk, an I/O error): writes are refused until it recovers
    /// by itself (`crate::recovery`). Callers answer "retry later", and log nothing more: the
    /// fault was logged once.
    #[error("the store is unavailable: {0}")]
    Unavailable(Fault),
    /// Another transaction touched the same keys: the engine runs the transaction again.
    /// Transaction bodies pass it on with `?`; callers never see it.
    #[error("transaction conflict")]
    Conflict,
}

impl KvError {
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }

    fn engine(e: impl std::fmt::Display) -> Self {
        Self::Engine(e.to_string())
    }
}

/// The view a transaction body has: its own writes, and the committed state.
pub trait Tx {
    fn get(&mut self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    fn insert(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), KvError>;
    fn remove(&mut self, table: &'static str, key: &[u8]) -> Result<(), KvError>;
}

/// A transaction body. It may run more than once (after a conflict), so it keeps its results
/// by overwriting, never by appending.
pub type Body<'a> = dyn FnMut(&mut dyn Tx) -> Result<(), KvError> + 'a;

/// What a store needs of its engine. Reads see every committed transaction, durable or not.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Up to `limit` pairs with `from <= key` and `key < to` (`None`: to the end), in key
    /// order, or from the last when `reverse`.
    fn range(
        &self,
        table: &'static str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, KvError>;

    /// How many pairs `table` holds (sled counts them; redb keeps the count).
    fn len(&self, table: &'static str) -> Result<u64, KvError>;

    /// Run `body` as one atomic transaction: all its writes are committed, or none (when it
    /// returns an error, which is then returned).
    fn write(&self, body: &mut Body<'_>) -> Result<(), KvError>;

    /// Run `ops`, whose transactions on this thread may then share one commit: each still
    /// applies all of its writes or none, reads on this thread see them, other threads see
    /// them when `ops` has returned, and a flush inside makes them durable so far. An error:
    /// the batch's writes since its last flush inside (all of them, without one) were not
    /// kept, whatever each transaction returned; callers treat every write of the batch as
    /// failed. (sled commits each transaction by itself: its batch only runs `ops`.)
    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), KvError> {
        ops();
        Ok(())
    }

    /// Make every committed transaction durable.
    fn flush(&self) -> Result<(), KvError>;

    /// Bytes the engine's files take on disk.
    fn size_on_disk(&self) -> Result<u64, KvError>;

    /// The largest document payload a store keeps in this engine, in its record's own
    /// transaction, rather than in a segment file beside it (`crate::segments`). Inside, a
    /// flush is one sync instead of two (the segment's, then the engine's): most of the wait
    /// for a small document's receipt.
    fn inline_payload_limit(&self) -> usize;

    /// Copy every table, as of one moment between transactions, into a new store of the same
    /// engine in folder `dest` (which must not hold a store).
    fn copy_to(&self, dest: &Path) -> Result<Copied, KvError>;

    /// The store's health, for an engine that recovers from faults (every store opened with
    /// [`open`] or [`open_found`]).
    fn health(&self) -> Option<&Arc<StoreHealth>> {
        None
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

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Sled,
    Redb,
}

/// The file a redb store keeps in its folder.
const REDB_FILE: &str = "store.redb";
/// redb keeps payloads up to this size itself (its cache is bounded, and its flush is the
/// only sync then); larger ones go to segments, where a delivery streams them by the chunk.
const REDB_INLINE_PAYLOAD: usize = 8 * 1024;

impl EngineKind {
    /// The engine of the store in folder `path`, if there is one.
    pub fn detect(path: &Path) -> Option<Self> {
        if path.join(REDB_FILE).is_file() {
            Some(Self::Redb)
        } else if path.join("conf").is_file() && path.join("db").is_file() {
            Some(Self::Sled)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sled => "sled",
            Self::Redb => "redb",
        }
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

/// Open the store in folder `path` with `tables`: the engine it was created with, or, for a
/// new store, `kind`. A store of another engine than `kind` is refused, so that a setting
/// never silently points at a different store than the one the operator means.
pub fn open(
    path: &Path,
    kind: EngineKind,
    tables: &[&'static str],
    cache_bytes: u64,
) -> Result<Box<dyn Engine>, KvError> {
    match EngineKind::detect(path) {
        Some(found) if found != kind => Err(KvError::Engine(format!(
            "the store in {} was created with store_engine = \"{}\", not \"{}\": set it back (stores are not converted between engines)",
            path.display(),
            found.as_str(),
            kind.as_str()
        ))),
        _ => open_as(path, kind, tables, cache_bytes),
    }
}

/// Open the store in folder `path` with the engine found there (for tools that read a store or
/// a backup whatever the configuration says); `None` if there is no store.
pub fn open_found(
    path: &Path,
    tables: &[&'static str],
    cache_bytes: u64,
) -> Result<Option<Box<dyn Engine>>, KvError> {
    EngineKind::detect(path)
        .map(|kind| open_as(path, kind, tables, cache_bytes))
        .transpose()
}

/// Open the engine, wrapped so that it recovers from storage faults by opening it again.
fn open_as(
    path: &Path,
    kind: EngineKind,
    tables: &[&'static str],
    cache_bytes: u64,
) -> Result<Box<dyn Engine>, KvError> {
    let mut tables = tables.to_vec();
    tables.push(crate::recovery::PROBE_TABLE);
    let folder = path.to_path_buf();
    let path = path.to_path_buf();
    let reopen = move || -> Result<Box<dyn Engine>, KvError> {
        Ok(match kind {
            EngineKind::Sled => Box::new(SledEngine::open(&path, &tables, cache_bytes)?),
            EngineKind::Redb => Box::new(RedbEngine::open(&path, &tables, cache_bytes)?),
        })
    };
    let engine = reopen()?;
    let health = Arc::new(StoreHealth::new(folder.display().to_string()));
    Ok(Box::new(Recovering::new(
        &folder,
        engine,
        Box::new(reopen),
        health,
    )?))
}

/// The sled engine: one tree per table.
pub struct SledEngine {
    db: sled::Db,
    names: Vec<&'static str>,
    trees: Vec<sled::Tree>,
    /// Transactions run one at a time: sled would otherwise detect their conflicts late and
    /// run them again, which costs more than the wait.
    writer: Mutex<()>,
}

impl SledEngine {
    pub fn open(path: &Path, tables: &[&'static str], cache_bytes: u64) -> Result<Self, KvError> {
        // A store closed a moment ago in this process can hold its lock a little longer (sled's
        // I/O threads finish their writes first; sled's own tests wait for it too): a lock
        // held for longer than this is another owner's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes)
                .open()
            {
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e @ sled::Error::Corruption { .. }) => {
                    return Err(KvError::corrupt(
                        "database file",
                        format!("{}: {e}", path.join("db").display()),
                    ));
                }
                other => {
                    break other.map_err(|e| {
                        KvError::Engine(format!("cannot open {}: {e}", path.display()))
                    })?;
                }
            }
        };
        let trees = tables
            .iter()
            .map(|t| db.open_tree(t).map_err(KvError::engine))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            db,
            names: tables.to_vec(),
            trees,
            writer: Mutex::new(()),
        })
    }

    fn tree(&self, table: &str) -> &sled::Tree {
        let i = self.names.iter().position(|n| *n == table);
        &self.trees[i.unwrap_or_else(|| panic!("table {table} was not opened"))]
    }
}

struct SledTx<'a> {
    names: &'a [&'static str],
    trees: &'a [sled::transaction::TransactionalTree],
}

impl SledTx<'_> {
    fn tree(&self, table: &str) -> &sled::transaction::TransactionalTree {
        let i = self.names.iter().position(|n| *n == table);
        &self.trees[i.unwrap_or_else(|| panic!("table {table} was not opened"))]
    }
}

fn sled_tx_error(e: sled::transaction::UnabortableTransactionError) -> KvError {
    match e {
        sled::transaction::UnabortableTransactionError::Conflict => KvError::Conflict,
        other => KvError::engine(other),
    }
}

impl Tx for SledTx<'_> {
    fn get(&mut self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .tree(table)
            .get(key)
            .map_err(sled_tx_error)?
            .map(|v| v.to_vec()))
    }
    fn insert(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.tree(table)
            .insert(key, value)
            .map(drop)
            .map_err(sled_tx_error)
    }
    fn remove(&mut self, table: &'static str, key: &[u8]) -> Result<(), KvError> {
        self.tree(table)
            .remove(key)
            .map(drop)
            .map_err(sled_tx_error)
    }
}

impl Engine for SledEngine {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .tree(table)
            .get(key)
            .map_err(KvError::engine)?
            .map(|v| v.to_vec()))
    }

    fn range(
        &self,
        table: &'static str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, KvError> {
        let tree = self.tree(table);
        let iter = match to {
            Some(to) => tree.range(from..to),
            None => tree.range(from..),
        };
        let pair = |e: sled::Result<(sled::IVec, sled::IVec)>| {
            e.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(KvError::engine)
        };
        if reverse {
            iter.rev().take(limit).map(pair).collect()
        } else {
            iter.take(limit).map(pair).collect()
        }
    }

    fn len(&self, table: &'static str) -> Result<u64, KvError> {
        Ok(self.tree(table).len() as u64)
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), KvError> {
        use sled::{
            Transactional,
            transaction::{ConflictableTransactionError, TransactionError},
        };
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // sled wants an `Fn`; the body runs once at a time all the same.
        let body = std::cell::RefCell::new(body);
        let result = self.trees.as_slice().transaction(|trees| {
            let mut tx = SledTx {
                names: &self.names,
                trees,
            };
            (body.borrow_mut())(&mut tx).map_err(|e| match e {
                KvError::Conflict => ConflictableTransactionError::Conflict,
                other => ConflictableTransactionError::Abort(other),
            })
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(KvError::engine(e)),
        }
    }

    fn flush(&self) -> Result<(), KvError> {
        self.db.flush().map(drop).map_err(KvError::engine)
    }

    fn size_on_disk(&self) -> Result<u64, KvError> {
        self.db.size_on_disk().map_err(KvError::engine)
    }

    fn inline_payload_limit(&self) -> usize {
        // None: sled 0.34 keeps every value it has written in memory (see `crate::segments`).
        0
    }

    fn copy_to(&self, dest: &Path) -> Result<Copied, KvError> {
        let started = std::time::Instant::now();
        // Writers wait (this holds the transaction lock), so the copy is one state.
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let copy = sled::Config::new()
            .path(dest)
            .create_new(true)
            .open()
            .map_err(|e| KvError::Engine(format!("cannot create {}: {e}", dest.display())))?;
        let mut records = 0u64;
        for name in self.db.tree_names() {
            let from = self.db.open_tree(&name).map_err(KvError::engine)?;
            let to = copy.open_tree(&name).map_err(KvError::engine)?;
            for entry in from.iter() {
                let (k, v) = entry.map_err(KvError::engine)?;
                to.insert(k, v).map_err(KvError::engine)?;
                records += 1;
            }
        }
        copy.flush().map_err(KvError::engine)?;
        Ok(Copied {
            records,
            writes_paused: started.elapsed(),
        })
    }
}

type RedbTable = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
type OpenTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// The redb engine: one table per table, in one file.
pub struct RedbEngine {
    db: redb::Database,
    file: std::path::PathBuf,
    tables: Vec<&'static str>,
}

/// A batch (see [`Engine::batch`]): the transaction its writes share, opened at the first write
/// and again after a flush.
#[derive(Default)]
struct Batch {
    txn: Option<redb::WriteTransaction>,
    /// A write failed half applied: the batch can only be rolled back.
    broken: bool,
}

std::thread_local! {
    /// The batches this thread runs, by engine (its address): a batch is its thread's alone,
    /// and no other thread ever looks at it.
    static BATCHES: std::cell::RefCell<Vec<(usize, Batch)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether redb refused to open its file because of what the file holds.
fn redb_damaged(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        _ => false,
    }
}

impl RedbEngine {
    pub fn open(path: &Path, tables: &[&'static str], cache_bytes: u64) -> Result<Self, KvError> {
        std::fs::create_dir_all(path)
            .map_err(|e| KvError::Engine(format!("cannot create {}: {e}", path.display())))?;
        let file = path.join(REDB_FILE);
        // redb 4.6 panics (`unreachable`) on some garbled files instead of answering an error:
        // caught here, so that a damaged store is reported as such, not as a crash.
        let opened = std::panic::catch_unwind(|| {
            redb::Database::builder()
                .set_cache_size(cache_bytes as usize)
                .create(&file)
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            // Damaged pages, or a file that is no redb database (a garbled header).
            Ok(Err(e)) if redb_damaged(&e) => {
                return Err(KvError::corrupt(
                    "database file",
                    format!("{}: {e}", file.display()),
                ));
            }
            Ok(Err(e)) => {
                return Err(KvError::Engine(format!(
                    "cannot open {}: {e}",
                    file.display()
                )));
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Err(KvError::corrupt(
                    "database file",
                    format!("{}: redb failed reading it ({why})", file.display()),
                ));
            }
        };
        let engine = Self {
            db,
            file,
            tables: tables.to_vec(),
        };
        // Every table exists from the start, so that reads never meet a missing one.
        let txn = engine.db.begin_write().map_err(KvError::engine)?;
        for t in tables {
            txn.open_table(RedbTable::new(t)).map_err(KvError::engine)?;
        }
        txn.commit().map_err(KvError::engine)?;
        Ok(engine)
    }

    /// A write transaction that commits in memory; a flush makes it durable.
    fn begin_write(&self) -> Result<redb::WriteTransaction, KvError> {
        let mut txn = self.db.begin_write().map_err(KvError::engine)?;
        txn.set_durability(redb::Durability::None)
            .map_err(KvError::engine)?;
        Ok(txn)
    }

    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// Call `f` with the batch this thread runs on this engine, if any.
    fn in_batch<T>(&self, f: impl FnOnce(Option<&mut Batch>) -> T) -> T {
        BATCHES.with_borrow_mut(|batches| {
            f(batches
                .iter_mut()
                .find(|(id, _)| *id == self.id())
                .map(|(_, b)| b))
        })
    }

    /// Run `read` in the transaction of the batch this thread runs, if it has writes not yet
    /// committed; otherwise in a read transaction of the committed state.
    fn read<T>(
        &self,
        table: &'static str,
        read: impl Fn(&dyn ReadTable) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        use redb::ReadableDatabase;
        let in_batch = self.in_batch(|batch| match batch {
            Some(Batch { txn: Some(txn), .. }) => Some(
                txn.open_table(RedbTable::new(table))
                    .map_err(KvError::engine)
                    .and_then(|t| read(&t)),
            ),
            _ => None,
        });
        if let Some(result) = in_batch {
            return result;
        }
        let txn = self.db.begin_read().map_err(KvError::engine)?;
        let t = txn
            .open_table(RedbTable::new(table))
            .map_err(KvError::engine)?;
        read(&t)
    }
}

/// What reads need of a redb table, open for reading or for writing.
trait ReadTable {
    fn get_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    fn pairs(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, KvError>;
    fn count(&self) -> Result<u64, KvError>;
}

impl<T: redb::ReadableTable<&'static [u8], &'static [u8]>> ReadTable for T {
    fn get_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .get(key)
            .map_err(KvError::engine)?
            .map(|v| v.value().to_vec()))
    }

    fn pairs(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, KvError> {
        let iter = match to {
            Some(to) => self.range::<&[u8]>(from..to),
            None => self.range::<&[u8]>(from..),
        }
        .map_err(KvError::engine)?;
        let pair = |e: Result<_, redb::StorageError>| {
            e.map(
                |(k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>)| {
                    (k.value().to_vec(), v.value().to_vec())
                },
            )
            .map_err(KvError::engine)
        };
        if reverse {
            iter.rev().take(limit).map(pair).collect()
        } else {
            iter.take(limit).map(pair).collect()
        }
    }

    fn count(&self) -> Result<u64, KvError> {
        self.len().map_err(KvError::engine)
    }
}

/// A transaction body's view in redb: its writes are held apart until it returns `Ok`, then
/// applied to the write transaction, so that a body that fails leaves nothing behind even
/// when it shares the transaction with others (a batch).
struct RedbTx<'t> {
    txn: &'t redb::WriteTransaction,
    open: HashMap<&'static str, OpenTable<'t>>,
    writes: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl<'t> RedbTx<'t> {
    fn new(txn: &'t redb::WriteTransaction) -> Self {
        Self {
            txn,
            open: HashMap::new(),
            writes: HashMap::new(),
        }
    }

    fn table(&mut self, name: &'static str) -> Result<&mut OpenTable<'t>, KvError> {
        use std::collections::hash_map::Entry;
        Ok(match self.open.entry(name) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(
                self.txn
                    .open_table(RedbTable::new(name))
                    .map_err(KvError::engine)?,
            ),
        })
    }

    /// Run `body`, then apply its writes. `Err(Some(e))`: the body failed, nothing was
    /// written; `Err(None)`: applying failed half way, and the transaction must be dropped.
    fn run(mut self, body: &mut Body<'_>) -> Result<(), Option<KvError>> {
        body(&mut self).map_err(Some)?;
        let writes = std::mem::take(&mut self.writes);
        for ((table, key), value) in writes {
            let t = self.table(table).map_err(|_| None)?;
            let applied = match value {
                Some(v) => t.insert(key.as_slice(), v.as_slice()).map(drop),
                None => t.remove(key.as_slice()).map(drop),
            };
            applied.map_err(|_| None)?;
        }
        Ok(())
    }
}

impl Tx for RedbTx<'_> {
    fn get(&mut self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(written) = self.writes.get(&(table, key.to_vec())) {
            return Ok(written.clone());
        }
        self.table(table)?.get_value(key)
    }
    fn insert(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.writes
            .insert((table, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }
    fn remove(&mut self, table: &'static str, key: &[u8]) -> Result<(), KvError> {
        self.writes.insert((table, key.to_vec()), None);
        Ok(())
    }
}

impl Engine for RedbEngine {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.read(table, |t| t.get_value(key))
    }

    fn range(
        &self,
        table: &'static str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, KvError> {
        self.read(table, |t| t.pairs(from, to, limit, reverse))
    }

    fn len(&self, table: &'static str) -> Result<u64, KvError> {
        self.read(table, |t| t.count())
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), KvError> {
        let batched = self.in_batch(|batch| {
            let batch = batch?;
            if batch.broken {
                return Some(Err(KvError::Engine(
                    "an earlier write of this batch failed".into(),
                )));
            }
            let txn = match &mut batch.txn {
                Some(txn) => txn,
                slot => match self.begin_write() {
                    Ok(txn) => slot.insert(txn),
                    Err(e) => return Some(Err(e)),
                },
            };
            Some(match RedbTx::new(txn).run(body) {
                Ok(()) => Ok(()),
                Err(Some(e)) => Err(e),
                Err(None) => {
                    batch.broken = true;
                    Err(KvError::Engine(
                        "a write failed half applied; the batch is dropped".into(),
                    ))
                }
            })
        });
        if let Some(result) = batched {
            return result;
        }
        let txn = self.begin_write()?;
        match RedbTx::new(&txn).run(body) {
            Ok(()) => txn.commit().map_err(KvError::engine),
            Err(e) => {
                txn.abort().map_err(KvError::engine)?;
                Err(e.unwrap_or_else(|| KvError::Engine("a write failed half applied".into())))
            }
        }
    }

    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), KvError> {
        if self.in_batch(|b| b.is_some()) {
            // Already in one: this is part of it.
            ops();
            return Ok(());
        }
        BATCHES.with_borrow_mut(|b| b.push((self.id(), Batch::default())));
        ops();
        let batch = BATCHES.with_borrow_mut(|batches| {
            let at = batches.iter().position(|(id, _)| *id == self.id());
            batches.swap_remove(at.expect("the batch pushed above")).1
        });
        match (batch.txn, batch.broken) {
            (None, false) => Ok(()),
            (Some(txn), false) => txn.commit().map_err(KvError::engine),
            (txn, true) => {
                if let Some(txn) = txn {
                    txn.abort().map_err(KvError::engine)?;
                }
                Err(KvError::Engine(
                    "a write of the batch failed; it was not kept".into(),
                ))
            }
        }
    }

    fn flush(&self) -> Result<(), KvError> {
        // A durable commit persists every non-durable one before it; in a batch, it is the
        // batch's own transaction so far.
        let open = self.in_batch(|batch| match batch {
            Some(batch) if batch.broken => Err(KvError::Engine(
                "a write of this batch failed; nothing to make durable".into(),
            )),
            Some(batch) => Ok(batch.txn.take()),
            None => Ok(None),
        })?;
        let mut txn = match open {
            Some(txn) => txn,
            None => self.db.begin_write().map_err(KvError::engine)?,
        };
        let committed = txn
            .set_durability(redb::Durability::Immediate)
            .map_err(KvError::engine)
            .and_then(|()| txn.commit().map_err(KvError::engine));
        if committed.is_err() {
            // The batch's writes so far went with the failed commit: none of it may be
            // answered as kept.
            self.in_batch(|batch| batch.map(|b| b.broken = true));
        }
        committed
    }

    fn size_on_disk(&self) -> Result<u64, KvError> {
        std::fs::metadata(&self.file)
            .map(|m| m.len())
            .map_err(KvError::engine)
    }

    fn inline_payload_limit(&self) -> usize {
        REDB_INLINE_PAYLOAD
    }

    fn copy_to(&self, dest: &Path) -> Result<Copied, KvError> {
        use redb::{ReadableDatabase, ReadableTable};
        if EngineKind::detect(dest).is_some() {
            return Err(KvError::Engine(format!(
                "{} already holds a store",
                dest.display()
            )));
        }
        let copy = RedbEngine::open(dest, &self.tables, 16 << 20)?;
        // A read transaction is a snapshot: writers go on while it is copied.
        let snapshot = self.db.begin_read().map_err(KvError::engine)?;
        let txn = copy.db.begin_write().map_err(KvError::engine)?;
        let mut records = 0u64;
        for name in &self.tables {
            let from = snapshot
                .open_table(RedbTable::new(name))
                .map_err(KvError::engine)?;
            let mut to = txn
                .open_table(RedbTable::new(name))
                .map_err(KvError::engine)?;
            for entry in from.iter().map_err(KvError::engine)? {
                let (k, v) = entry.map_err(KvError::engine)?;
                to.insert(k.value(), v.value()).map_err(KvError::engine)?;
                records += 1;
            }
        }
        txn.commit().map_err(KvError::engine)?;
        Ok(Copied {
            records,
            writes_paused: std::time::Duration::ZERO,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &[&str] = &["a", "b"];

    fn engines(dir: &Path) -> Vec<Box<dyn Engine>> {
        [EngineKind::Sled, EngineKind::Redb]
            .into_iter()
            .map(|k| open(&dir.join(k.as_str()), k, TABLES, 8 << 20).unwrap())
            .collect()
    }

    #[test]
    fn transactions_are_atomic_and_ranges_ordered() {
        let dir = tempfile::tempdir().unwrap();
        for e in engines(dir.path()) {
            e.write(&mut |tx| {
                for i in 0u8..5 {
                    tx.insert("a", &[i], &[i * 2])?;
                }
                tx.insert("b", b"k", b"v")
            })
            .unwrap();
            // A failed body leaves nothing behind, even the writes it made first.
            let err = e
                .write(&mut |tx| {
                    tx.insert("b", b"k", b"changed")?;
                    tx.remove("a", &[0])?;
                    assert_eq!(tx.get("b", b"k")?.as_deref(), Some(&b"changed"[..]));
                    Err(KvError::corrupt("test", "refused"))
                })
                .unwrap_err();
            assert!(matches!(err, KvError::Corrupt { what: "test", .. }));
            assert_eq!(e.get("b", b"k").unwrap().as_deref(), Some(&b"v"[..]));
            assert_eq!(e.get("a", &[0]).unwrap().as_deref(), Some(&[0u8][..]));
            let keys = |p: Pairs| p.into_iter().map(|(k, _)| k[0]).collect::<Vec<_>>();
            assert_eq!(
                keys(e.range("a", &[1], Some(&[4]), 10, false).unwrap()),
                [1, 2, 3]
            );
            assert_eq!(keys(e.range("a", &[1], None, 2, true).unwrap()), [4, 3]);
            assert_eq!(keys(e.range("a", &[], None, 2, false).unwrap()), [0, 1]);
            assert_eq!(e.len("a").unwrap(), 5);
            e.flush().unwrap();
            assert!(e.size_on_disk().unwrap() > 0);
        }
    }

    #[test]
    fn a_batch_keeps_each_transaction_whole_and_shows_its_writes_when_done() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, e) in [EngineKind::Sled, EngineKind::Redb]
            .into_iter()
            .zip(engines(dir.path()))
        {
            let e: std::sync::Arc<dyn Engine> = e.into();
            let mut seen_inside = None;
            let mut seen_elsewhere = None;
            e.batch(&mut || {
                e.write(&mut |tx| tx.insert("a", b"1", b"one")).unwrap();
                let failed = e.write(&mut |tx| {
                    tx.insert("a", b"2", b"two")?;
                    Err(KvError::corrupt("test", "refused"))
                });
                assert!(failed.is_err());
                e.write(&mut |tx| {
                    // A transaction sees the batch's earlier writes.
                    let one = tx.get("a", b"1")?.unwrap();
                    tx.insert("b", b"copy", &one)
                })
                .unwrap();
                seen_inside = Some(e.range("a", &[], None, 10, false).unwrap().len());
                let other = e.clone();
                seen_elsewhere = Some(
                    std::thread::spawn(move || other.get("a", b"1").unwrap())
                        .join()
                        .unwrap(),
                );
                e.flush().unwrap();
                e.write(&mut |tx| tx.insert("a", b"3", b"three")).unwrap();
            })
            .unwrap();
            assert_eq!(seen_inside, Some(1), "the failed transaction left nothing");
            // redb holds a batch's writes back from other threads until it ends; sled commits
            // each transaction by itself.
            let expected = (kind == EngineKind::Sled).then(|| b"one".to_vec());
            assert_eq!(seen_elsewhere, Some(expected));
            let keys: Vec<Vec<u8>> = e
                .range("a", &[], None, 10, false)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(keys, [b"1".to_vec(), b"3".to_vec()]);
            assert_eq!(e.get("b", b"copy").unwrap().as_deref(), Some(&b"one"[..]));
        }
    }

    #[test]
    fn a_store_keeps_its_engine_and_copies_itself() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [EngineKind::Sled, EngineKind::Redb] {
            let path = dir.path().join(kind.as_str());
            {
                let e = open(&path, kind, TABLES, 8 << 20).unwrap();
                e.write(&mut |tx| tx.insert("a", b"x", b"1")).unwrap();
                e.flush().unwrap();
                let copy = dir.path().join(format!("{}-copy", kind.as_str()));
                assert_eq!(e.copy_to(&copy).unwrap().records, 1);
                let copied = open_found(&copy, TABLES, 8 << 20).unwrap().unwrap();
                assert_eq!(copied.get("a", b"x").unwrap().as_deref(), Some(&b"1"[..]));
            }
            assert_eq!(EngineKind::detect(&path), Some(kind));
            let other = match kind {
                EngineKind::Sled => EngineKind::Redb,
                EngineKind::Redb => EngineKind::Sled,
            };
            let err = open(&path, other, TABLES, 8 << 20).err().unwrap();
            assert!(err.to_string().contains("not converted"), "{err}");
            let reopened = open(&path, kind, TABLES, 8 << 20).unwrap();
            assert_eq!(reopened.get("a", b"x").unwrap().as_deref(), Some(&b"1"[..]));
        }
        assert!(
            open_found(&dir.path().join("none"), TABLES, 8 << 20)
                .unwrap()
                .is_none()
        );
    }
}
