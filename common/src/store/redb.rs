//! The redb 4 adapter: one redb table per table, in one file. redb types never leave this
//! file.
//!
//! Transactions commit in memory (`Durability::None`) and a flush is one durable commit,
//! written with `fdatasync`; no background threads. A batch ([`Engine::batch`]) shares one
//! write transaction between the transactions it runs; it belongs to the thread that runs it,
//! and is kept in the engine ([`RedbEngine::batch`]), not in a thread-local. The batch keeps
//! the tables it opened open until it commits ([`OpenTxn`]): opening a table looks it up in
//! redb's table of tables and closing it stages its root again, which, once per write of
//! every table a write touches, cost the hub's writer thread a seventh of its time.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::ThreadId,
};

use super::{Body, Copied, Engine, EngineKind, Pairs, StoreError, Table, Tx};

/// The file a redb store keeps in its folder.
pub(crate) const FILE: &str = "store.redb";
/// redb keeps payloads up to this size itself (its cache is bounded, and its flush is the
/// only sync then); larger ones go to segments, where a delivery streams them by the chunk.
const INLINE_PAYLOAD: usize = 8 * 1024;

type Definition = ::redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
type OpenTable<'t> = ::redb::Table<'t, &'static [u8], &'static [u8]>;
/// The tables opened in a write transaction, by slot.
type OpenTables<'t> = HashMap<usize, OpenTable<'t>>;

self_cell::self_cell!(
    /// A batch's write transaction with the tables opened in it so far, each opened once for
    /// the whole batch. Committing it closes them first ([`OpenTxn::into_owner`]).
    struct OpenTxn {
        owner: ::redb::WriteTransaction,
        #[not_covariant]
        dependent: OpenTables,
    }
);

impl OpenTxn {
    fn begin(txn: ::redb::WriteTransaction) -> Self {
        Self::new(txn, |_| HashMap::new())
    }
}

fn definition(table: Table) -> Definition {
    Definition::new(table.name())
}

/// The redb engine.
pub(crate) struct RedbEngine {
    db: ::redb::Database,
    file: PathBuf,
    tables: Vec<Table>,
    /// The batch under way, if any: the thread running it, and its transaction.
    batch: Mutex<Option<Batch>>,
    /// Whether `batch` holds one: reads on other threads skip its lock while none is.
    batching: AtomicBool,
}

/// A batch (see [`Engine::batch`]): the transaction its writes share, opened at the first write
/// and again after a flush.
struct Batch {
    /// Only this thread's reads and writes take part in the batch.
    thread: ThreadId,
    txn: Option<OpenTxn>,
    /// A write failed half applied: the batch can only be rolled back.
    broken: bool,
}

/// Whether redb refused to open its file because of what the file holds.
fn damaged(e: &::redb::DatabaseError) -> bool {
    match e {
        ::redb::DatabaseError::Storage(::redb::StorageError::Corrupted(_)) => true,
        ::redb::DatabaseError::Storage(::redb::StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        _ => false,
    }
}

impl RedbEngine {
    pub(crate) fn open(
        path: &Path,
        tables: &[Table],
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(StoreError::io(path))?;
        let file = path.join(FILE);
        // redb 4.6 panics (`unreachable`) on some garbled files instead of answering an error:
        // caught here, so that a damaged store is reported as such, not as a crash.
        let opened = std::panic::catch_unwind(|| {
            ::redb::Database::builder()
                .set_cache_size(cache_bytes as usize)
                .create(&file)
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            // Damaged pages, or a file that is no redb database (a garbled header).
            Ok(Err(e)) if damaged(&e) => {
                return Err(StoreError::corrupt(
                    "database file",
                    format!("{}: {e}", file.display()),
                ));
            }
            Ok(Err(e)) => {
                return Err(StoreError::engine_at(
                    format!("cannot open {}", file.display()),
                    e,
                ));
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Err(StoreError::corrupt(
                    "database file",
                    format!("{}: redb failed reading it ({why})", file.display()),
                ));
            }
        };
        let engine = Self {
            db,
            file,
            tables: tables.to_vec(),
            batch: Mutex::new(None),
            batching: AtomicBool::new(false),
        };
        // Every table exists from the start, so that reads never meet a missing one.
        let txn = engine.db.begin_write().map_err(StoreError::engine)?;
        for t in tables {
            txn.open_table(definition(*t)).map_err(StoreError::engine)?;
        }
        txn.commit().map_err(StoreError::engine)?;
        Ok(engine)
    }

    fn known(&self, table: Table) -> Result<Table, StoreError> {
        match self.tables.get(table.slot()) {
            Some(t) if *t == table => Ok(table),
            _ => Err(StoreError::UnknownTable(table.name())),
        }
    }

    /// A write transaction that commits in memory; a flush makes it durable.
    fn begin_write(&self) -> Result<::redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(StoreError::engine)?;
        txn.set_durability(::redb::Durability::None)
            .map_err(StoreError::engine)?;
        Ok(txn)
    }

    /// Call `f` with the batch this thread runs, if any.
    fn in_batch<T>(&self, f: impl FnOnce(Option<&mut Batch>) -> T) -> T {
        if !self.batching.load(Ordering::Acquire) {
            return f(None);
        }
        let me = std::thread::current().id();
        let mut slot = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        f(slot.as_mut().filter(|b| b.thread == me))
    }

    /// Run `read` in the transaction of the batch this thread runs, if it has writes not yet
    /// committed; otherwise in a read transaction of the committed state.
    fn read<T>(
        &self,
        table: Table,
        read: impl Fn(&dyn ReadTable) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use ::redb::ReadableDatabase;
        let table = self.known(table)?;
        let in_batch = self.in_batch(|batch| match batch {
            Some(Batch { txn: Some(txn), .. }) => Some(txn.with_dependent_mut(|txn, open| {
                let t = open_table(txn, open, &self.tables, table.slot())?;
                read(t)
            })),
            _ => None,
        });
        if let Some(result) = in_batch {
            return result;
        }
        let txn = self.db.begin_read().map_err(StoreError::engine)?;
        let t = txn
            .open_table(definition(table))
            .map_err(StoreError::engine)?;
        read(&t)
    }
}

/// What reads need of a redb table, open for reading or for writing.
trait ReadTable {
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn pairs(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError>;
    fn count(&self) -> Result<u64, StoreError>;
}

impl<T: ::redb::ReadableTable<&'static [u8], &'static [u8]>> ReadTable for T {
    fn value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .get(key)
            .map_err(StoreError::engine)?
            .map(|v| v.value().to_vec()))
    }

    fn pairs(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError> {
        let iter = match to {
            Some(to) => self.range::<&[u8]>(from..to),
            None => self.range::<&[u8]>(from..),
        }
        .map_err(StoreError::engine)?;
        let pair = |e: Result<_, ::redb::StorageError>| {
            e.map(
                |(k, v): (::redb::AccessGuard<&[u8]>, ::redb::AccessGuard<&[u8]>)| {
                    (k.value().to_vec(), v.value().to_vec())
                },
            )
            .map_err(StoreError::engine)
        };
        if reverse {
            iter.rev().take(limit).map(pair).collect()
        } else {
            iter.take(limit).map(pair).collect()
        }
    }

    fn count(&self) -> Result<u64, StoreError> {
        self.len().map_err(StoreError::engine)
    }
}

/// A transaction body's view in redb: its writes are held apart until it returns `Ok`, then
/// applied to the write transaction, so that a body that fails leaves nothing behind even
/// when it shares the transaction with others (a batch).
struct RedbTx<'t, 'o> {
    txn: &'t ::redb::WriteTransaction,
    tables: &'o [Table],
    /// The tables open in `txn` (a batch's, kept between its writes).
    open: &'o mut OpenTables<'t>,
    writes: HashMap<(usize, Vec<u8>), Option<Vec<u8>>>,
}

/// Table `slot` of `txn`, opened now unless `open` holds it.
fn open_table<'o, 't>(
    txn: &'t ::redb::WriteTransaction,
    open: &'o mut OpenTables<'t>,
    tables: &[Table],
    slot: usize,
) -> Result<&'o mut OpenTable<'t>, StoreError> {
    use std::collections::hash_map::Entry;
    Ok(match open.entry(slot) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(
            txn.open_table(definition(tables[slot]))
                .map_err(StoreError::engine)?,
        ),
    })
}

impl<'t, 'o> RedbTx<'t, 'o> {
    fn new(
        txn: &'t ::redb::WriteTransaction,
        open: &'o mut OpenTables<'t>,
        tables: &'o [Table],
    ) -> Self {
        Self {
            txn,
            tables,
            open,
            writes: HashMap::new(),
        }
    }

    fn slot(&self, table: Table) -> Result<usize, StoreError> {
        match self.tables.get(table.slot()) {
            Some(t) if *t == table => Ok(table.slot()),
            _ => Err(StoreError::UnknownTable(table.name())),
        }
    }

    fn table(&mut self, slot: usize) -> Result<&mut OpenTable<'t>, StoreError> {
        open_table(self.txn, self.open, self.tables, slot)
    }

    /// Run `body`, then apply its writes. `Err(Some(e))`: the body failed, nothing was
    /// written; `Err(None)`: applying failed half way, and the transaction must be dropped.
    fn run(mut self, body: &mut Body<'_>) -> Result<(), Option<StoreError>> {
        body(&mut self).map_err(Some)?;
        let writes = std::mem::take(&mut self.writes);
        for ((slot, key), value) in writes {
            let t = self.table(slot).map_err(|_| None)?;
            let applied = match value {
                Some(v) => t.insert(key.as_slice(), v.as_slice()).map(drop),
                None => t.remove(key.as_slice()).map(drop),
            };
            applied.map_err(|_| None)?;
        }
        Ok(())
    }
}

impl Tx for RedbTx<'_, '_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let slot = self.slot(table)?;
        if let Some(written) = self.writes.get(&(slot, key.to_vec())) {
            return Ok(written.clone());
        }
        self.table(slot)?.value(key)
    }
    fn insert(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let slot = self.slot(table)?;
        self.writes
            .insert((slot, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        let slot = self.slot(table)?;
        self.writes.insert((slot, key.to_vec()), None);
        Ok(())
    }
}

impl Engine for RedbEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Redb
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(table, |t| t.value(key))
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError> {
        self.read(table, |t| t.pairs(from, to, limit, reverse))
    }

    fn len(&self, table: Table) -> Result<u64, StoreError> {
        self.read(table, |t| t.count())
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        // In a batch: the batch's transaction is taken out while the body runs (so that the
        // body's own reads of the engine do not wait for the batch's lock), then put back.
        let taken = self.in_batch(|batch| {
            let batch = batch?;
            if batch.broken {
                return Some(Err(StoreError::BatchFailed));
            }
            Some(Ok(batch.txn.take()))
        });
        // A new transaction is begun outside the batch's lock: it may wait for another
        // thread's transaction, whose body may read.
        let taken = match taken {
            Some(Ok(Some(txn))) => Some(Ok(txn)),
            Some(Ok(None)) => Some(self.begin_write().map(OpenTxn::begin)),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        };
        if let Some(txn) = taken {
            let mut txn = txn?;
            let result =
                txn.with_dependent_mut(|txn, open| RedbTx::new(txn, open, &self.tables).run(body));
            let broken = matches!(result, Err(None));
            self.in_batch(|batch| {
                if let Some(batch) = batch {
                    batch.txn = Some(txn);
                    batch.broken |= broken;
                }
            });
            return match result {
                Ok(()) => Ok(()),
                Err(Some(e)) => Err(e),
                Err(None) => Err(StoreError::BatchFailed),
            };
        }
        let txn = self.begin_write()?;
        let mut open = HashMap::new();
        let result = RedbTx::new(&txn, &mut open, &self.tables).run(body);
        drop(open);
        match result {
            Ok(()) => txn.commit().map_err(StoreError::engine),
            Err(e) => {
                txn.abort().map_err(StoreError::engine)?;
                Err(e.unwrap_or(StoreError::HalfApplied))
            }
        }
    }

    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        if self.in_batch(|b| b.is_some()) {
            // Already in one: this is part of it.
            ops();
            return Ok(());
        }
        {
            let mut slot = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_some() {
                // Another thread's batch: this one runs by itself (each write commits alone).
                drop(slot);
                ops();
                return Ok(());
            }
            *slot = Some(Batch {
                thread: std::thread::current().id(),
                txn: None,
                broken: false,
            });
            self.batching.store(true, Ordering::Release);
        }
        ops();
        let batch = {
            let mut slot = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            self.batching.store(false, Ordering::Release);
            slot.take()
        };
        let Some(batch) = batch else { return Ok(()) };
        match (batch.txn, batch.broken) {
            (None, false) => Ok(()),
            (Some(txn), false) => txn.into_owner().commit().map_err(StoreError::engine),
            (txn, true) => {
                if let Some(txn) = txn {
                    txn.into_owner().abort().map_err(StoreError::engine)?;
                }
                Err(StoreError::BatchFailed)
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        // A durable commit persists every non-durable one before it; in a batch, it is the
        // batch's own transaction so far.
        let open = self.in_batch(|batch| match batch {
            Some(batch) if batch.broken => Err(StoreError::BatchFailed),
            Some(batch) => Ok(batch.txn.take()),
            None => Ok(None),
        })?;
        let mut txn = match open {
            Some(txn) => txn.into_owner(),
            None => self.db.begin_write().map_err(StoreError::engine)?,
        };
        let committed = txn
            .set_durability(::redb::Durability::Immediate)
            .map_err(StoreError::engine)
            .and_then(|()| txn.commit().map_err(StoreError::engine));
        if committed.is_err() {
            // The batch's writes so far went with the failed commit: none of it may be
            // answered as kept.
            self.in_batch(|batch| batch.map(|b| b.broken = true));
        }
        committed
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.file)
            .map(|m| m.len())
            .map_err(StoreError::io(&self.file))
    }

    fn inline_payload_limit(&self) -> usize {
        INLINE_PAYLOAD
    }

    fn copy_to(&self, dest: &Path) -> Result<Copied, StoreError> {
        use ::redb::{ReadableDatabase, ReadableTable};
        if EngineKind::detect(dest).is_some() {
            return Err(StoreError::NotEmpty(dest.to_path_buf()));
        }
        let copy = RedbEngine::open(dest, &self.tables, 16 << 20)?;
        // A read transaction is a snapshot: writers go on while it is copied.
        let snapshot = self.db.begin_read().map_err(StoreError::engine)?;
        let txn = copy.db.begin_write().map_err(StoreError::engine)?;
        let mut records = 0u64;
        for table in &self.tables {
            let from = snapshot
                .open_table(definition(*table))
                .map_err(StoreError::engine)?;
            let mut to = txn
                .open_table(definition(*table))
                .map_err(StoreError::engine)?;
            for entry in from.iter().map_err(StoreError::engine)? {
                let (k, v) = entry.map_err(StoreError::engine)?;
                to.insert(k.value(), v.value())
                    .map_err(StoreError::engine)?;
                records += 1;
            }
        }
        txn.commit().map_err(StoreError::engine)?;
        Ok(Copied {
            records,
            writes_paused: std::time::Duration::ZERO,
        })
    }
}
