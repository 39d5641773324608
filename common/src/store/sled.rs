//! The sled 0.34 adapter: one tree per table. sled types never leave this file.
//!
//! Its flush syncs with `sync_file_range`, not `fsync`: it survives a killed process, not
//! necessarily a power cut on a disk with a volatile write cache. Each flush hands the write to
//! a thread pool that wakes all its idle threads, which costs most of a busy node's CPU (see the
//! README's performance section). It keeps every value it has written in memory for the life of
//! the process, so a store on sled keeps no payload inside (`inline_payload_limit` 0).

use std::{path::Path, sync::Mutex};

use super::{Body, Copied, Engine, EngineKind, Pairs, StoreError, Table, Tx};

/// The sled engine: one tree per table, found by the table's slot.
pub(crate) struct SledEngine {
    db: ::sled::Db,
    tables: Vec<Table>,
    trees: Vec<::sled::Tree>,
    /// Transactions run one at a time: sled would otherwise detect their conflicts late and
    /// run them again, which costs more than the wait.
    writer: Mutex<()>,
}

impl SledEngine {
    pub(crate) fn open(
        path: &Path,
        tables: &[Table],
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        // A store closed a moment ago in this process can hold its lock a little longer (sled's
        // I/O threads finish their writes first; sled's own tests wait for it too): a lock
        // held for longer than this is another owner's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match ::sled::Config::new()
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
                Err(e @ ::sled::Error::Corruption { .. }) => {
                    return Err(StoreError::corrupt(
                        "database file",
                        format!("{}: {e}", path.join("db").display()),
                    ));
                }
                other => {
                    break other.map_err(|e| {
                        StoreError::engine_at(format!("cannot open {}", path.display()), e)
                    })?;
                }
            }
        };
        let trees = tables
            .iter()
            .map(|t| db.open_tree(t.name()).map_err(StoreError::engine))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            db,
            tables: tables.to_vec(),
            trees,
            writer: Mutex::new(()),
        })
    }

    /// The slot of `table`, if it is one of this store's.
    fn slot(&self, table: Table) -> Result<usize, StoreError> {
        match self.tables.get(table.slot()) {
            Some(t) if *t == table => Ok(table.slot()),
            _ => Err(StoreError::UnknownTable(table.name())),
        }
    }

    fn tree(&self, table: Table) -> Result<&::sled::Tree, StoreError> {
        Ok(&self.trees[self.slot(table)?])
    }
}

struct SledTx<'a> {
    engine: &'a SledEngine,
    trees: &'a [::sled::transaction::TransactionalTree],
}

impl SledTx<'_> {
    fn tree(&self, table: Table) -> Result<&::sled::transaction::TransactionalTree, StoreError> {
        Ok(&self.trees[self.engine.slot(table)?])
    }
}

fn tx_error(e: ::sled::transaction::UnabortableTransactionError) -> StoreError {
    match e {
        ::sled::transaction::UnabortableTransactionError::Conflict => StoreError::Conflict,
        other => StoreError::engine(other),
    }
}

impl Tx for SledTx<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(table)?
            .get(key)
            .map_err(tx_error)?
            .map(|v| v.to_vec()))
    }
    fn insert(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree(table)?
            .insert(key, value)
            .map(drop)
            .map_err(tx_error)
    }
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.tree(table)?.remove(key).map(drop).map_err(tx_error)
    }
}

impl Engine for SledEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Sled
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(table)?
            .get(key)
            .map_err(StoreError::engine)?
            .map(|v| v.to_vec()))
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Pairs, StoreError> {
        let tree = self.tree(table)?;
        let iter = match to {
            Some(to) => tree.range(from..to),
            None => tree.range(from..),
        };
        let pair = |e: ::sled::Result<(::sled::IVec, ::sled::IVec)>| {
            e.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(StoreError::engine)
        };
        if reverse {
            iter.rev().take(limit).map(pair).collect()
        } else {
            iter.take(limit).map(pair).collect()
        }
    }

    fn len(&self, table: Table) -> Result<u64, StoreError> {
        Ok(self.tree(table)?.len() as u64)
    }

    fn write(&self, body: &mut Body<'_>) -> Result<(), StoreError> {
        use ::sled::{
            Transactional,
            transaction::{ConflictableTransactionError, TransactionError},
        };
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // sled wants an `Fn`; the body runs once at a time all the same.
        let body = std::cell::RefCell::new(body);
        let result = self.trees.as_slice().transaction(|trees| {
            let mut tx = SledTx {
                engine: self,
                trees,
            };
            (body.borrow_mut())(&mut tx).map_err(|e| match e {
                StoreError::Conflict => ConflictableTransactionError::Conflict,
                other => ConflictableTransactionError::Abort(other),
            })
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(StoreError::engine(e)),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(StoreError::engine)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(StoreError::engine)
    }

    fn inline_payload_limit(&self) -> usize {
        // None: sled 0.34 keeps every value it has written in memory (see `super::segments`).
        0
    }

    fn copy_to(&self, dest: &Path) -> Result<Copied, StoreError> {
        let started = std::time::Instant::now();
        // Writers wait (this holds the transaction lock), so the copy is one state.
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let copy = ::sled::Config::new()
            .path(dest)
            .create_new(true)
            .open()
            .map_err(|e| StoreError::engine_at(format!("cannot create {}", dest.display()), e))?;
        let mut records = 0u64;
        for name in self.db.tree_names() {
            let from = self.db.open_tree(&name).map_err(StoreError::engine)?;
            let to = copy.open_tree(&name).map_err(StoreError::engine)?;
            for entry in from.iter() {
                let (k, v) = entry.map_err(StoreError::engine)?;
                to.insert(k, v).map_err(StoreError::engine)?;
                records += 1;
            }
        }
        copy.flush().map_err(StoreError::engine)?;
        Ok(Copied {
            records,
            writes_paused: started.elapsed(),
        })
    }
}
