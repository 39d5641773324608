//! The hub's store in PostgreSQL (`store_engine = "postgres"`), for a hub that runs as several
//! replicas, all active, on one database.
//!
//! Why PostgreSQL and not a home-made replication: the region's central services run their
//! databases this way already, and a database that thousands of operators run is better tested
//! than anything Caravan could add. The hub keeps its rules; the database keeps the data, its
//! durability (`synchronous_commit = on`, set on every connection) and its order.
//!
//! **One order for the region.** Every write transaction first locks the one row of
//! `counters`, and takes its sequence numbers, event cursors and log indexes from it. Replicas
//! therefore commit in the order they took numbers: the exchange log is gap-free, and a reader
//! that sees sequence n has seen every sequence before it (a delivery stream's cursor never
//! skips a document that commits late). A replica's writer thread holds the lock for one
//! batch of writes (`crate::commit`), so replicas share the database's commits as one writer
//! shares them among its callers.
//!
//! **Duplicates** are judged by the unique constraint on (sender, message id), with
//! `ON CONFLICT DO NOTHING`, so that a resend never aborts the batch it is in.
//!
//! **Durability.** A batch is one transaction; [`Backend::flush`] commits it, so that the tree
//! head the writer signs next covers only committed entries, and no receipt is answered before
//! its COMMIT returned.
//!
//! **Other replicas' changes.** Each transaction sends `NOTIFY` on `caravan_queue` (recipient),
//! `caravan_status` (sender) and `caravan_registry`; every replica listens
//! ([`Backend::changes`]: from `LISTEN`, and [`Change::Everything`] after a reconnection and at
//! every [`POLL_INTERVAL`]) and wakes its streams. Notifications can be lost while a replica is disconnected, so a
//! reconnection, and a slow poll, wake every stream too.
//!
//! **Failures.** A connection that fails marks the store faulted (`StoreHealth`, reason
//! `database_unreachable`: one log line, `/healthz` and health NOT_SERVING, requests answered
//! UNAVAILABLE); a probe reconnects with backoff and the store recovers by itself.
//!
//! The operations are synchronous, as [`Backend`]'s are: they run on the hub's writer thread
//! or on blocking threads, and wait here for the driver, which runs on a small runtime of this
//! store's own.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex},
    thread::ThreadId,
    time::Duration,
};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use prost::Message;
use tokio::sync::broadcast;
use tokio_postgres::{Row, types::ToSql};

use caravan_common::{
    MessageId, ParticipantId, Timestamp, merkle,
    recovery::{FaultKind, StoreHealth},
};

use super::{
    Accepting, Backend, ChunkReader, Exported, PAYLOAD_CHUNK, StoreError,
    ops::{
        Acceptance, AckResult, AckUpdate, BackupSummary, ExchangeFact, Incoming, Pending, Settled,
    },
    records::{
        CertificateRecord, ConformanceRecord, LogEntry, LogKind, MessageRecord, MessageState,
        RegistryRecord, RevokedCertificate, ScorecardRecord, StatusEvent, StatusRecord, Transition,
        TreeHead,
    },
};

mod import;
mod listen;
mod many;
mod ops;
mod settings;
mod tx;

pub use import::Imported;
pub use listen::Change;
use listen::listen;
use settings::{Connected, connect};
pub use settings::{PostgresSettings, redact};
use tx::*;

/// The schema's migrations, in order: migration n brings the schema to version n. Each runs in
/// one transaction, under an advisory lock, when a hub opens the database.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_initial.sql"),
    include_str!("postgres/0002_scorecard.sql"),
];

/// Advisory lock keys (one namespace for the hub: "CARAVAN" in ASCII, then a number).
const MIGRATION_LOCK: i64 = 0x4341_5241_5641_4e01;
const TREE_HEAD_LEASE: i64 = 0x4341_5241_5641_4e02;

/// Channels of the notifications replicas send each other.
const QUEUE_CHANNEL: &str = "caravan_queue";
const STATUS_CHANNEL: &str = "caravan_status";
const REGISTRY_CHANNEL: &str = "caravan_registry";

/// How long a connection attempt may take, and how long a statement or a lock may wait.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// The slowest wake-up of every stream, in case a notification was lost.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What the writer thread's batch holds: nothing written yet, a transaction, or the outcome
/// of its commit (a flush inside the batch commits it).
enum Slot {
    Idle,
    Open(Box<Open>),
    Done(Result<(), StoreError>),
}

/// The store in PostgreSQL.
pub struct Postgres {
    /// The driver's runtime: its connections' tasks run there. Shut down without waiting
    /// when the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    errors: Errors,
    health: Arc<StoreHealth>,
    /// The thread running a batch, and its transaction.
    owner: Mutex<Option<ThreadId>>,
    slot: Mutex<Slot>,
    /// What this replica's transactions share.
    shared: Arc<Shared>,
    /// Notifications of committed changes, from this replica and the others.
    changes: broadcast::Sender<Change>,
    /// Holds the lease on keeping tree heads while this replica has it.
    lease: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    settings: PostgresSettings,
    described: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Postgres {
    /// Connect, bring the schema up to date (one replica at a time), and start listening for
    /// the other replicas' changes. An unreachable database fails the open at once (for
    /// commands); see [`Self::open_waiting`].
    pub fn open(settings: PostgresSettings) -> Result<Self, StoreError> {
        Self::open_with(settings, false)
    }

    /// [`Self::open`] that waits for an unreachable database, trying again with backoff (a hub
    /// starting before its database, or while it restarts): the store is faulted meanwhile,
    /// which is logged once, and recovered when the database answers.
    pub fn open_waiting(settings: PostgresSettings) -> Result<Self, StoreError> {
        Self::open_with(settings, true)
    }

    fn open_with(settings: PostgresSettings, wait: bool) -> Result<Self, StoreError> {
        let described = redact(&settings.url);
        let config = settings
            .driver_config()
            .map_err(|e| StoreError::engine_at("postgres", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(StoreError::io(Path::new("postgres runtime")))?;
        let tls = settings.tls()?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(STATEMENT_TIMEOUT_MS / 1000)))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::engine_at("postgres pool", e))?;
        let health = Arc::new(StoreHealth::new(format!("postgres {described}")));
        let store = Self {
            runtime: Some(runtime),
            pool,
            errors: Errors(health.clone()),
            health,
            owner: Mutex::new(None),
            slot: Mutex::new(Slot::Idle),
            shared: Arc::new(Shared::new()),
            changes: broadcast::channel(1024).0,
            lease: tokio::sync::Mutex::new(None),
            settings,
            described,
        };
        store.block(store.reach(wait))?;
        store.spawn_listener();
        store.spawn_probe();
        Ok(store)
    }

    /// Mark the database restored to an earlier point ([`Backend::epoch`] anew, and the
    /// trust-list version the registry must move beyond raised to `floor`), with no replica
    /// running on it. Returns the new epoch.
    pub fn mark_restored(&self, floor: u64) -> Result<String, StoreError> {
        let epoch = MessageId::generate().to_string();
        self.write(async |open: &mut Open| {
            open.execute(
                "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&epoch],
            )
            .await?;
            open.execute(
                "INSERT INTO meta (key, value) VALUES ('registry_floor', $1) ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value::bigint, EXCLUDED.value::bigint)::text",
                &[&floor.to_string()],
            )
            .await
            .map(drop)
        })?;
        tracing::info!(store = %self.described, epoch = %epoch, floor, "store marked restored");
        Ok(epoch)
    }

    /// Where the store is, for logs (the URL without its password).
    pub fn describe(&self) -> &str {
        &self.described
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    /// Run a driver future to its end on this thread (never a runtime's own thread: see the
    /// module doc).
    fn block<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime().block_on(work)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| self.errors.pool(e))
    }

    /// [`Self::migrate`], tried again while the database cannot be reached if `wait`.
    async fn reach(&self, wait: bool) -> Result<(), StoreError> {
        let mut pause = Duration::from_millis(250);
        loop {
            match self.migrate().await {
                Err(StoreError::Unavailable(_)) if wait => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    if self.health.fault().is_some() {
                        self.health.recovered();
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Bring the schema to the newest version this binary knows, or refuse a newer one.
    async fn migrate(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let d = |e| self.errors.driver(e);
        client.batch_execute("BEGIN").await.map_err(d)?;
        let result = async {
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(d)?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS caravan_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(d)?;
            let found: i32 = client
                .query_one("SELECT coalesce(max(version), 0) FROM caravan_schema", &[])
                .await
                .map_err(d)?
                .get(0);
            let known = MIGRATIONS.len() as i32;
            if found > known {
                return Err(StoreError::Newer {
                    found: found as u64,
                    supported: known as u64,
                });
            }
            for (n, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                client.batch_execute(sql).await.map_err(d)?;
                client
                    .execute(
                        "INSERT INTO caravan_schema (version) VALUES ($1)",
                        &[&(n as i32 + 1)],
                    )
                    .await
                    .map_err(d)?;
                tracing::info!(store = %self.described, version = n + 1, "database schema migrated");
            }
            // A new database gets its epoch.
            client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT DO NOTHING",
                    &[&MessageId::generate().to_string()],
                )
                .await
                .map_err(d)?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => client.batch_execute("COMMIT").await.map_err(d),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// Listen for notifications on a connection of its own, reconnecting with backoff.
    fn spawn_listener(&self) {
        let changes = self.changes.clone();
        let settings = self.settings.clone();
        let own = self.shared.replica.clone();
        self.runtime().spawn(async move {
            let mut poll = tokio::time::interval(POLL_INTERVAL);
            let mut backoff = Duration::from_millis(250);
            loop {
                let e = listen(&settings, &own, &changes, &mut poll).await;
                tracing::debug!(cause = %e, "notifications connection ended; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// While the store is faulted, try the database with backoff; recover once it answers.
    fn spawn_probe(&self) {
        let pool = self.pool.clone();
        let health = self.health.clone();
        self.runtime().spawn(async move {
            let mut condition = health.subscribe();
            loop {
                if condition.borrow_and_update().fault.is_none() {
                    if condition.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let mut wait = Duration::from_millis(250);
                loop {
                    tokio::time::sleep(wait).await;
                    let answered = match pool.get().await {
                        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
                        Err(_) => false,
                    };
                    if answered {
                        health.recovered();
                        break;
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        });
    }

    fn refuse_while_faulted(&self) -> Result<(), StoreError> {
        match self.health.fault() {
            Some(fault) => Err(StoreError::Unavailable(fault)),
            None => Ok(()),
        }
    }

    fn owns_batch(&self) -> bool {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) == Some(std::thread::current().id())
    }

    /// Run `op` in a write transaction: the writer thread's batch if this is that thread,
    /// else a transaction of its own, committed before this returns.
    fn write<T>(
        &self,
        op: impl AsyncFnOnce(&mut Open) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.owns_batch() {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(*slot, Slot::Idle) {
                self.refuse_while_faulted()?;
                let open = self.block(async {
                    Open::begin(
                        self.client().await?,
                        self.errors.clone(),
                        self.shared.clone(),
                    )
                    .await
                })?;
                *slot = Slot::Open(Box::new(open));
            }
            let Slot::Open(open) = &mut *slot else {
                // Written after the batch's commit: not part of it (`crate::commit` never does).
                return Err(StoreError::BatchFailed);
            };
            if open.failed {
                return Err(StoreError::BatchFailed);
            }
            let result = self.block(op(open));
            if result.is_err() {
                open.failed = true;
            }
            return result;
        }
        self.refuse_while_faulted()?;
        self.block(async {
            let mut open = Open::begin(
                self.client().await?,
                self.errors.clone(),
                self.shared.clone(),
            )
            .await?;
            match op(&mut open).await {
                Ok(value) => open.commit().await.map(|()| value),
                Err(e) => {
                    open.rollback().await;
                    Err(e)
                }
            }
        })
    }

    /// Run a read on a pooled connection.
    fn read<T>(
        &self,
        op: impl AsyncFnOnce(&Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.block(async {
            let reader = Reader {
                client: self.client().await?,
                errors: self.errors.clone(),
            };
            op(&reader).await
        })
    }

    /// Whether this replica holds the lease on keeping tree heads (taken if free): the
    /// holder of a session advisory lock on a connection of its own. When the replica dies,
    /// its connection closes and another takes the lease at its next try.
    fn hold_tree_head_lease(&self) -> bool {
        self.block(async {
            let mut lease = self.lease.lock().await;
            if let Some(client) = lease.as_ref() {
                if !client.is_closed() && client.simple_query("SELECT 1").await.is_ok() {
                    return true;
                }
                *lease = None;
            }
            let Ok(config) = self.settings.driver_config() else {
                return false;
            };
            let Ok(Connected { client, .. }) = connect(&self.settings, &config).await else {
                return false;
            };
            let taken = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&TREE_HEAD_LEASE])
                .await
                .is_ok_and(|row| row.get::<_, bool>(0));
            if taken {
                tracing::info!(store = %self.described, "this replica now keeps the signed tree heads");
                *lease = Some(client);
            }
            taken
        })
    }
}
