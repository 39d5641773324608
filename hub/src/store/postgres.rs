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
    Backend, ChunkReader, Exported, PAYLOAD_CHUNK, StoreError,
    ops::{Acceptance, AckResult, AckUpdate, BackupSummary, Incoming, Pending, Settled},
    records::{
        CertificateRecord, ConformanceRecord, LogEntry, LogKind, MessageRecord, MessageState,
        RegistryRecord, RevokedCertificate, StatusEvent, StatusRecord, Transition, TreeHead,
    },
};

/// The schema's migrations, in order: migration n brings the schema to version n. Each runs in
/// one transaction, under an advisory lock, when a hub opens the database.
const MIGRATIONS: &[&str] = &[include_str!("postgres/0001_initial.sql")];

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

/// How the hub reaches its database (`[store]` settings, checked by the configuration).
#[derive(Clone)]
pub struct PostgresSettings {
    /// The connection URL, without a password if one is given apart.
    pub url: String,
    /// The password, from `postgres_password_file` or `CARAVAN_POSTGRES_PASSWORD`; never logged.
    pub password: Option<String>,
    /// The CA that signed the database server's certificate: TLS is required when set.
    pub ca_file: Option<PathBuf>,
    /// Connections per replica.
    pub pool_size: usize,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The URL without a password written into it, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl PostgresSettings {
    /// The driver's configuration: the URL's, the password, and the session settings every
    /// connection runs with.
    pub fn driver_config(&self) -> Result<tokio_postgres::Config, String> {
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| format!("postgres_url: {e}"))?;
        if let Some(password) = &self.password {
            config.password(password);
        }
        if config.get_dbname().is_none() {
            return Err("postgres_url: names no database".into());
        }
        let require_tls = config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
        if require_tls && self.ca_file.is_none() {
            return Err(
                "postgres_url asks for sslmode=require: set postgres_ca_file to the CA that signed the database server's certificate"
                    .into(),
            );
        }
        if self.ca_file.is_some() {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("caravan-hub")
            .options(format!(
                "-c synchronous_commit=on -c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout=60000"
            ));
        Ok(config)
    }

    fn tls(&self) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, StoreError> {
        let Some(ca_file) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(ca_file).map_err(StoreError::io(ca_file))?;
        use rustls_pki_types::pem::PemObject;
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| StoreError::engine_at("postgres_ca_file", e))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::engine_at("postgres_ca_file", e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::engine_at("postgres TLS", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }
}

/// A change another replica (or this one) committed, as the notifications tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something new for this recipient to receive.
    Queue(ParticipantId),
    /// One of this sender's messages changed state.
    Status(ParticipantId),
    /// The registry changed.
    Registry,
    /// Notifications may have been missed (a reconnection, or the slow poll): look again at
    /// everything.
    Everything,
}

/// A map from an error of the driver or the pool to the store's: a connection that fails
/// faults the store (logged once); a statement the server refused is the engine's error.
#[derive(Clone)]
struct Errors(Arc<StoreHealth>);

impl Errors {
    fn driver(&self, e: tokio_postgres::Error) -> StoreError {
        let lost = match e.as_db_error() {
            // Connection exceptions, the server shutting down or not accepting connections.
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            }
            // No answer from the server at all: the connection is gone.
            None => true,
        };
        if lost {
            StoreError::Unavailable(self.0.report_as(FaultKind::Unreachable, &e.to_string()))
        } else {
            StoreError::engine_at("postgres", e)
        }
    }

    fn pool(&self, e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => self.driver(e),
            other => StoreError::Unavailable(
                self.0.report_as(FaultKind::Unreachable, &other.to_string()),
            ),
        }
    }
}

/// The counters, read under their row's lock once per transaction and written back at commit.
#[derive(Debug, Clone, Copy)]
struct Counters {
    log_size: u64,
    next_sequence: u64,
    next_event: u64,
    next_report: u64,
}

/// Rows written at commit, column by column (each column one array parameter of one
/// `INSERT ... SELECT * FROM unnest(...)`).
#[derive(Default)]
struct LogRows {
    index: Vec<i64>,
    kind: Vec<i32>,
    at_ms: Vec<i64>,
    entry: Vec<Vec<u8>>,
}

#[derive(Default)]
struct NodeRows {
    level: Vec<i16>,
    node: Vec<i64>,
    hash: Vec<Vec<u8>>,
}

#[derive(Default)]
struct EventRows {
    sender: Vec<String>,
    cursor: Vec<i64>,
    sequence: Vec<i64>,
    message_id: Vec<String>,
    state: Vec<i16>,
    at_ms: Vec<i64>,
    ack: Vec<Vec<u8>>,
    log_index: Vec<i64>,
}

#[derive(Default)]
struct TransitionRows {
    sequence: Vec<i64>,
    state: Vec<i16>,
    at_ms: Vec<i64>,
}

#[derive(Default)]
struct PayloadRows {
    sequence: Vec<i64>,
    chunk: Vec<i32>,
    bytes: Vec<Vec<u8>>,
}

/// An open transaction, and what it writes at commit.
struct Open {
    client: Object,
    errors: Errors,
    counters: Option<Counters>,
    /// The Merkle nodes this transaction may read to append: the tree's frontier when the
    /// counters were locked, and every node appended since.
    nodes: HashMap<(u32, u64), merkle::Hash>,
    log_rows: LogRows,
    node_rows: NodeRows,
    event_rows: EventRows,
    transition_rows: TransitionRows,
    payload_rows: PayloadRows,
    notifications: BTreeSet<(&'static str, String)>,
    /// A statement failed: the transaction is rolled back, whatever else succeeded.
    failed: bool,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(what, detail)
}

fn hash_of(bytes: &[u8], level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
    <merkle::Hash>::try_from(bytes).map_err(|_| {
        corrupt(
            "log node",
            format!("node {index} at level {level} is not 32 bytes"),
        )
    })
}

/// The perfect subtrees a tree of `size` leaves is made of, left to right: the nodes an
/// append reads.
fn frontier(size: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1 << level) != 0 {
            out.push((level, start >> level));
            start += 1 << level;
        }
    }
    out
}

fn state_of(n: i16) -> MessageState {
    MessageState::try_from(i32::from(n)).unwrap_or(MessageState::Unspecified)
}

impl Open {
    async fn begin(client: Object, errors: Errors) -> Result<Self, StoreError> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| errors.driver(e))?;
        Ok(Self {
            client,
            errors,
            counters: None,
            nodes: HashMap::new(),
            log_rows: Default::default(),
            node_rows: Default::default(),
            event_rows: Default::default(),
            transition_rows: Default::default(),
            payload_rows: Default::default(),
            notifications: BTreeSet::new(),
            failed: false,
        })
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.errors.driver(e))?;
        self.client
            .query(&statement, params)
            .await
            .map_err(|e| self.errors.driver(e))
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.errors.driver(e))?;
        self.client
            .execute(&statement, params)
            .await
            .map_err(|e| self.errors.driver(e))
    }

    /// The counters, locked for the rest of the transaction (and the frontier of the log's
    /// Merkle tree read with them).
    async fn counters(&mut self) -> Result<Counters, StoreError> {
        if let Some(counters) = self.counters {
            return Ok(counters);
        }
        let row = self
            .query_opt(
                "SELECT log_size, next_sequence, next_event, next_report FROM counters WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?
            .ok_or_else(|| corrupt("counters", "the row is missing"))?;
        let counters = Counters {
            log_size: to_u64(row.get(0)),
            next_sequence: to_u64(row.get(1)),
            next_event: to_u64(row.get(2)),
            next_report: to_u64(row.get(3)),
        };
        let wanted = frontier(counters.log_size);
        let (levels, nodes): (Vec<i16>, Vec<i64>) =
            wanted.iter().map(|&(l, i)| (l as i16, to_i64(i))).unzip();
        let rows = self
            .query(
                "SELECT n.level, n.node, n.hash FROM log_nodes n JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, node) ON n.level = w.level AND n.node = w.node",
                &[&levels, &nodes],
            )
            .await?;
        for row in rows {
            let (level, index) = (row.get::<_, i16>(0) as u32, to_u64(row.get(1)));
            let hash = hash_of(row.get(2), level, index)?;
            self.nodes.insert((level, index), hash);
        }
        self.counters = Some(counters);
        Ok(counters)
    }

    fn counters_mut(&mut self) -> &mut Counters {
        self.counters.as_mut().expect("counters are locked first")
    }

    /// Append `entry` to the log (written at commit); returns its index, from 1.
    async fn append_log(&mut self, entry: &LogEntry) -> Result<u64, StoreError> {
        self.append_log_bytes(entry.kind, entry.at_ms, entry.encode_to_vec())
            .await
    }

    /// [`Self::append_log`] for an entry encoded already (its leaf hashes these bytes).
    async fn append_log_bytes(
        &mut self,
        kind: i32,
        at_ms: i64,
        bytes: Vec<u8>,
    ) -> Result<u64, StoreError> {
        let size = self.counters().await?.log_size;
        let nodes = &self.nodes;
        let appended = merkle::appended_nodes(size, merkle::leaf_hash(&bytes), |level, i| {
            nodes
                .get(&(level, i))
                .copied()
                .ok_or_else(|| corrupt("log node", format!("node {i} at level {level} is missing")))
        })?;
        for (level, i, hash) in appended {
            self.nodes.insert((level, i), hash);
            self.node_rows.level.push(level as i16);
            self.node_rows.node.push(to_i64(i));
            self.node_rows.hash.push(hash.to_vec());
        }
        let index = size + 1;
        self.log_rows.index.push(to_i64(index));
        self.log_rows.kind.push(kind);
        self.log_rows.at_ms.push(at_ms);
        self.log_rows.entry.push(bytes);
        self.counters_mut().log_size = index;
        Ok(index)
    }

    async fn append_event(
        &mut self,
        sender: ParticipantId,
        event: StatusEvent,
    ) -> Result<(), StoreError> {
        let cursor = self.counters().await?.next_event;
        self.counters_mut().next_event = cursor + 1;
        let rows = &mut self.event_rows;
        rows.sender.push(sender.as_str().to_string());
        rows.cursor.push(to_i64(cursor));
        rows.sequence.push(to_i64(event.sequence));
        rows.message_id.push(event.message_id);
        rows.state.push(event.state as i16);
        rows.at_ms.push(event.at_ms);
        rows.ack.push(event.ack);
        rows.log_index.push(to_i64(event.log_index));
        self.notifications
            .insert((STATUS_CHANNEL, sender.as_str().to_string()));
        Ok(())
    }

    fn transition_row(&mut self, sequence: u64, state: MessageState, at: Timestamp) {
        self.transition_rows.sequence.push(to_i64(sequence));
        self.transition_rows.state.push(state as i16);
        self.transition_rows.at_ms.push(at.as_millis());
    }

    /// Write what was kept for the end, and COMMIT.
    async fn commit(mut self) -> Result<(), StoreError> {
        if self.failed {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(StoreError::BatchFailed);
        }
        let result = async {
            self.write_rows().await?;
            self.write_counters().await?;
            self.send_notifications().await
        }
        .await;
        match result {
            Ok(()) => self
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| self.errors.driver(e)),
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn rollback(self) {
        let _ = self.client.batch_execute("ROLLBACK").await;
    }

    /// Write the rows kept for the end, and forget them.
    async fn write_rows(&mut self) -> Result<(), StoreError> {
        let log = std::mem::take(&mut self.log_rows);
        if !log.index.is_empty() {
            self.execute(
                "INSERT INTO log_entries (log_index, kind, at_ms, entry) SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bytea[])",
                &[&log.index, &log.kind, &log.at_ms, &log.entry],
            )
            .await?;
            let nodes = std::mem::take(&mut self.node_rows);
            self.execute(
                "INSERT INTO log_nodes (level, node, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
                &[&nodes.level, &nodes.node, &nodes.hash],
            )
            .await?;
        }
        let payloads = std::mem::take(&mut self.payload_rows);
        if !payloads.sequence.is_empty() {
            self.execute(
                "INSERT INTO payload_chunks (sequence, chunk, bytes) SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bytea[])",
                &[&payloads.sequence, &payloads.chunk, &payloads.bytes],
            )
            .await?;
        }
        let transitions = std::mem::take(&mut self.transition_rows);
        if !transitions.sequence.is_empty() {
            self.execute(
                "INSERT INTO transitions (sequence, state, at_ms) SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[])",
                &[&transitions.sequence, &transitions.state, &transitions.at_ms],
            )
            .await?;
        }
        let e = std::mem::take(&mut self.event_rows);
        if !e.sender.is_empty() {
            self.execute(
                "INSERT INTO events (sender, cursor, sequence, message_id, state, at_ms, ack, log_index) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::smallint[], $6::bigint[], $7::bytea[], $8::bigint[])",
                &[&e.sender, &e.cursor, &e.sequence, &e.message_id, &e.state, &e.at_ms, &e.ack, &e.log_index],
            )
            .await?;
        }
        Ok(())
    }

    async fn write_counters(&self) -> Result<(), StoreError> {
        if let Some(c) = self.counters {
            self.execute(
                "UPDATE counters SET log_size = $1, next_sequence = $2, next_event = $3, next_report = $4 WHERE id = 1",
                &[
                    &to_i64(c.log_size),
                    &to_i64(c.next_sequence),
                    &to_i64(c.next_event),
                    &to_i64(c.next_report),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn send_notifications(&self) -> Result<(), StoreError> {
        if !self.notifications.is_empty() {
            let (channels, payloads): (Vec<&str>, Vec<&str>) = self
                .notifications
                .iter()
                .map(|(c, p)| (*c, p.as_str()))
                .unzip();
            self.query(
                "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)",
                &[&channels, &payloads],
            )
            .await?;
        }
        Ok(())
    }
}

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
    /// the other replicas' changes.
    pub fn open(settings: PostgresSettings) -> Result<Self, StoreError> {
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
            changes: broadcast::channel(1024).0,
            lease: tokio::sync::Mutex::new(None),
            settings,
            described,
        };
        store.block(store.migrate())?;
        store.spawn_listener();
        store.spawn_probe();
        Ok(store)
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
        self.runtime().spawn(async move {
            let mut poll = tokio::time::interval(POLL_INTERVAL);
            let mut backoff = Duration::from_millis(250);
            loop {
                let e = listen(&settings, &changes, &mut poll).await;
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
                    Open::begin(self.client().await?, self.errors.clone()).await
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
            let mut open = Open::begin(self.client().await?, self.errors.clone()).await?;
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

    /// Move message `sequence` (or the message (sender, id) addressed to `recipient` with
    /// this header digest) to `to` if it is in one of `from`; see the embedded store's
    /// `transition`.
    async fn transition(
        open: &mut Open,
        which: Which<'_>,
        from: &[MessageState],
        to: MessageState,
        at: Timestamp,
        ack: Option<&[u8]>,
    ) -> Result<Transitioned, StoreError> {
        let counters = open.counters().await?;
        let log_index = counters.log_size + 1;
        let from: Vec<i16> = from.iter().map(|s| *s as i16).collect();
        let (with_ack, ack_bytes) = (ack.is_some(), ack.unwrap_or_default());
        const RETURNING: &str = "RETURNING sequence, sender, recipient, message_id, header_sha256, document_type, accepted_at_ms";
        let row = match which {
            Which::Sequence(sequence) => {
                open.query_opt(
                    &format!("UPDATE messages SET state = $2, ack = CASE WHEN $4 THEN $5 ELSE ack END, ack_log_index = CASE WHEN $4 THEN $6 ELSE ack_log_index END WHERE sequence = $1 AND state = ANY($3) {RETURNING}"),
                    &[&to_i64(sequence), &(to as i16), &from, &with_ack, &ack_bytes, &to_i64(log_index)],
                )
                .await?
            }
            Which::Message(u) => {
                open.query_opt(
                    &format!("UPDATE messages SET state = $4, ack = CASE WHEN $6 THEN $7 ELSE ack END, ack_log_index = CASE WHEN $6 THEN $8 ELSE ack_log_index END WHERE sender = $1 AND message_id = $2 AND recipient = $3 AND header_sha256 = $9 AND state = ANY($5) {RETURNING}"),
                    &[&u.sender.as_str(), &u.message_id.to_string(), &u.recipient.as_str(), &(to as i16), &from, &with_ack, &ack_bytes, &to_i64(log_index), &u.header_sha256.as_slice()],
                )
                .await?
            }
        };
        let Some(row) = row else {
            return Ok(Transitioned::Unchanged);
        };
        let sequence = to_u64(row.get(0));
        let sender: ParticipantId = parse(row.get(1), "message")?;
        let recipient: ParticipantId = parse(row.get(2), "message")?;
        let message_id: String = row.get(3);
        let header_sha256: Vec<u8> = row.get(4);
        let kind = match to {
            MessageState::Delivered => LogKind::Delivered,
            MessageState::Acknowledged => LogKind::Acknowledged,
            MessageState::Rejected => LogKind::Rejected,
            _ => LogKind::Expired,
        };
        let appended = open
            .append_log(&LogEntry {
                kind: kind as i32,
                at_ms: at.as_millis(),
                sequence,
                sender: sender.to_string(),
                recipient: recipient.to_string(),
                message_id: message_id.clone(),
                header_sha256,
                evidence_sha256: ack
                    .map(|a| caravan_common::signing::sha256(a).to_vec())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .await?;
        debug_assert_eq!(appended, log_index);
        open.transition_row(sequence, to, at);
        open.append_event(
            sender,
            StatusEvent {
                sequence,
                message_id,
                state: to as i32,
                at_ms: at.as_millis(),
                ack: ack.map(<[u8]>::to_vec).unwrap_or_default(),
                log_index,
            },
        )
        .await?;
        Ok(Transitioned::Now {
            log_index,
            settled: Settled {
                sender,
                recipient,
                document_type: row.get(5),
                accepted_at: Timestamp::from_millis(row.get(6)),
            },
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
            let Ok(client) = connect(&self.settings, &config).await else {
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

/// What an import took.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Imported {
    pub log_entries: u64,
    pub messages: u64,
    pub payload_bytes: u64,
    pub events: u64,
    pub tree_heads: u64,
    pub certificates: u64,
    pub conformance_reports: u64,
}

impl Postgres {
    /// Take a whole store, record by record as `Embedded::export` gives them, into this
    /// database, which must hold no hub's store yet: one transaction, so that a failed import
    /// leaves the database as it was.
    pub fn import(
        &self,
        mut records: tokio::sync::mpsc::Receiver<Exported>,
    ) -> Result<Imported, StoreError> {
        /// Rows written to the database every so many records, not all held to the end.
        const WRITE_EVERY: u64 = 256;
        self.write(async |open: &mut Open| {
            let counters = open.counters().await?;
            let occupied = open
                .query_opt(
                    "SELECT 1 WHERE EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM registry)",
                    &[],
                )
                .await?
                .is_some();
            if counters.log_size > 0 || occupied {
                return Err(StoreError::NotEmpty(PathBuf::from(format!(
                    "the database {}",
                    self.described
                ))));
            }
            let mut done = Imported::default();
            let mut taken = 0u64;
            while let Some(record) = records.recv().await {
                taken += 1;
                match record {
                    Exported::LogEntry { index, entry } => {
                        let decoded =
                            LogEntry::decode(entry.as_slice()).map_err(|e| corrupt("log entry", e))?;
                        let appended = open
                            .append_log_bytes(decoded.kind, decoded.at_ms, entry)
                            .await?;
                        if appended != index {
                            return Err(corrupt(
                                "log entry",
                                format!("entry {index} came after entry {}", appended - 1),
                            ));
                        }
                        done.log_entries += 1;
                    }
                    Exported::Message {
                        sequence,
                        record,
                        status,
                        payload,
                    } => {
                        import_message(open, sequence, &record, &status, &payload).await?;
                        done.messages += 1;
                        done.payload_bytes += payload.len() as u64;
                    }
                    Exported::Event {
                        sender,
                        cursor,
                        event,
                    } => {
                        let rows = &mut open.event_rows;
                        rows.sender.push(sender);
                        rows.cursor.push(to_i64(cursor));
                        rows.sequence.push(to_i64(event.sequence));
                        rows.message_id.push(event.message_id);
                        rows.state.push(event.state as i16);
                        rows.at_ms.push(event.at_ms);
                        rows.ack.push(event.ack);
                        rows.log_index.push(to_i64(event.log_index));
                        done.events += 1;
                    }
                    Exported::TreeHead(head) => {
                        open.execute(
                            "INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, key_id, signature) VALUES ($1, $2, $3, $4, $5)",
                            &[&to_i64(head.tree_size), &head.root_hash, &head.timestamp_ms, &head.key_id, &head.signature],
                        )
                        .await?;
                        done.tree_heads += 1;
                    }
                    Exported::Registry(record) => {
                        write_registry(open, &record).await?;
                    }
                    Exported::Certificate(c) => {
                        open.execute(
                            "INSERT INTO certificates (serial, fingerprint, subject, not_before_ms, not_after_ms, first_seen_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                            &[&c.serial, &c.fingerprint, &c.subject, &c.not_before_ms, &c.not_after_ms, &c.first_seen_ms],
                        )
                        .await?;
                        done.certificates += 1;
                    }
                    Exported::Conformance(record) => {
                        insert_report(open, &record).await?;
                        done.conformance_reports += 1;
                    }
                    Exported::Counters {
                        next_sequence,
                        next_event,
                        next_report,
                        epoch,
                        registry_floor,
                    } => {
                        let c = open.counters_mut();
                        c.next_sequence = next_sequence;
                        c.next_event = next_event;
                        c.next_report = next_report;
                        open.execute(
                            "INSERT INTO meta (key, value) VALUES ('epoch', $1), ('registry_floor', $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                            &[&epoch, &registry_floor.to_string()],
                        )
                        .await?;
                    }
                }
                if taken.is_multiple_of(WRITE_EVERY) {
                    open.write_rows().await?;
                }
            }
            Ok(done)
        })
    }
}

/// A message as another store kept it: its state, acknowledgement, transitions and payload.
async fn import_message(
    open: &mut Open,
    sequence: u64,
    m: &MessageRecord,
    status: &StatusRecord,
    payload: &[u8],
) -> Result<(), StoreError> {
    let ack = (!status.ack.is_empty()).then_some(status.ack.as_slice());
    open.execute(
        "INSERT INTO messages (sequence, sender, message_id, recipient, document_type, header_sha256, header, key_id, signature, receipt, accepted_at_ms, payload_length, payload_chunks, log_index, state, ack, ack_log_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        &[
            &to_i64(sequence),
            &m.sender,
            &m.message_id,
            &m.recipient,
            &m.document_type,
            &m.header_sha256,
            &m.header,
            &m.key_id,
            &m.signature,
            &m.receipt,
            &m.accepted_at_ms,
            &to_i64(m.payload_length),
            &(m.payload_chunks as i32),
            &to_i64(m.log_index),
            &(status.state as i16),
            &ack,
            &to_i64(status.ack_log_index),
        ],
    )
    .await?;
    for t in &status.transitions {
        open.transition_rows.sequence.push(to_i64(sequence));
        open.transition_rows.state.push(t.state as i16);
        open.transition_rows.at_ms.push(t.at_ms);
    }
    for (i, chunk) in payload.chunks(PAYLOAD_CHUNK).enumerate() {
        open.payload_rows.sequence.push(to_i64(sequence));
        open.payload_rows.chunk.push(i as i32);
        open.payload_rows.bytes.push(chunk.to_vec());
    }
    Ok(())
}

/// Replace the registry: its list (at the version it carries) and the revoked certificates.
async fn write_registry(open: &mut Open, record: &RegistryRecord) -> Result<u64, StoreError> {
    let version = decode_list_version(&record.signed_trust_list)?;
    open.execute(
        "INSERT INTO registry (id, version, signed_trust_list) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET version = $1, signed_trust_list = $2",
        &[&to_i64(version), &record.signed_trust_list],
    )
    .await?;
    open.execute("DELETE FROM revoked_certificates", &[])
        .await?;
    for c in &record.revoked_certificates {
        open.execute(
            "INSERT INTO revoked_certificates (serial, at_ms, reason, revoked_by) VALUES ($1, $2, $3, $4)",
            &[&c.serial, &c.at_ms, &c.reason, &c.by],
        )
        .await?;
    }
    Ok(version)
}

async fn insert_report(open: &mut Open, record: &ConformanceRecord) -> Result<(), StoreError> {
    open.execute(
        "INSERT INTO conformance_reports (id, participant, passed, document_types, recorded_at_ms, recorded_by, report_json, key_id, signature, log_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &to_i64(record.id),
            &record.participant,
            &record.passed,
            &record.document_types,
            &record.recorded_at_ms,
            &record.recorded_by,
            &record.report_json,
            &record.key_id,
            &record.signature,
            &to_i64(record.log_index),
        ],
    )
    .await
    .map(drop)
}

/// Which message a transition moves.
enum Which<'a> {
    Sequence(u64),
    /// An acknowledgement's: (sender, id) addressed to its recipient, with its header digest.
    Message(&'a AckUpdate),
}

enum Transitioned {
    /// The message was not in a state it could move from (or is not there).
    Unchanged,
    Now {
        log_index: u64,
        settled: Settled,
    },
}

fn parse<T: FromStr>(text: String, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| corrupt(what, e))
}

/// A pooled connection for reads.
struct Reader {
    client: Object,
    errors: Errors,
}

impl Reader {
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self
            .client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.errors.driver(e))?;
        self.client
            .query(&statement, params)
            .await
            .map_err(|e| self.errors.driver(e))
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
}

async fn connect(
    settings: &PostgresSettings,
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, String> {
    match settings.tls().map_err(|e| e.to_string())? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// One session of listening: LISTEN on every channel, then pass notifications on until the
/// connection ends.
async fn listen(
    settings: &PostgresSettings,
    changes: &broadcast::Sender<Change>,
    poll: &mut tokio::time::Interval,
) -> String {
    match listen_once(settings, changes, poll).await {
        Err(e) => e,
    }
}

async fn listen_once(
    settings: &PostgresSettings,
    changes: &broadcast::Sender<Change>,
    poll: &mut tokio::time::Interval,
) -> Result<std::convert::Infallible, String> {
    let config = settings.driver_config()?;
    let (client, mut connection) = match settings.tls().map_err(|e| e.to_string())? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
            (client, futures::future::Either::Left(connection))
        }
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            (client, futures::future::Either::Right(connection))
        }
    };
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let driver = async move {
        loop {
            let message = std::future::poll_fn(|cx| match &mut connection {
                futures::future::Either::Left(c) => c.poll_message(cx),
                futures::future::Either::Right(c) => c.poll_message(cx),
            })
            .await;
            match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    let _ = tx.send(n);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the connection closed".to_string(),
            }
        }
    };
    let mut driver = std::pin::pin!(driver);
    let channels =
        format!("LISTEN {QUEUE_CHANNEL}; LISTEN {STATUS_CHANNEL}; LISTEN {REGISTRY_CHANNEL}");
    let subscribe = client.batch_execute(&channels);
    tokio::select! {
        done = subscribe => done.map_err(|e| e.to_string())?,
        ended = &mut driver => return Err(ended),
    }
    // Anything committed while this replica was not listening is looked at again.
    let _ = changes.send(Change::Everything);
    loop {
        let change = tokio::select! {
            ended = &mut driver => return Err(ended),
            _ = poll.tick() => Change::Everything,
            n = notifications.recv() => match n {
                None => return Err("the connection closed".into()),
                Some(n) => match n.channel() {
                    QUEUE_CHANNEL => match n.payload().parse() {
                        Ok(p) => Change::Queue(p),
                        Err(_) => continue,
                    },
                    STATUS_CHANNEL => match n.payload().parse() {
                        Ok(p) => Change::Status(p),
                        Err(_) => continue,
                    },
                    _ => Change::Registry,
                },
            },
        };
        // Nobody may be subscribed yet: the connection stays for later subscribers.
        let _ = changes.send(change);
    }
}

/// A payload read chunk after chunk, one query each.
struct Chunks<'a> {
    store: &'a Postgres,
    sequence: u64,
}

impl ChunkReader for Chunks<'_> {
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.payload_chunk(self.sequence, index)
    }
}

fn decode_list_version(signed: &[u8]) -> Result<u64, StoreError> {
    let signed =
        caravan_proto::v1::SignedTrustList::decode(signed).map_err(|e| corrupt("registry", e))?;
    let list = caravan_proto::v1::TrustList::decode(signed.body.as_slice())
        .map_err(|e| corrupt("registry", e))?;
    Ok(list.version)
}

impl Backend for Postgres {
    fn engine_name(&self) -> &'static str {
        "postgres"
    }

    fn reads_block(&self) -> bool {
        true
    }

    fn accept(
        &self,
        m: &Incoming,
        issue_receipt: &dyn Fn(u64) -> Vec<u8>,
    ) -> Result<Acceptance, StoreError> {
        self.write(async |open: &mut Open| {
            let counters = open.counters().await?;
            let sequence = counters.next_sequence;
            let log_index = counters.log_size + 1;
            let receipt = issue_receipt(sequence);
            let chunks = m.payload.len().div_ceil(PAYLOAD_CHUNK) as i32;
            let inserted = open
                .query_opt(
                    "INSERT INTO messages (sequence, sender, message_id, recipient, document_type, header_sha256, header, key_id, signature, receipt, accepted_at_ms, payload_length, payload_chunks, log_index, state) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1) \
                     ON CONFLICT (sender, message_id) DO NOTHING RETURNING sequence",
                    &[
                        &to_i64(sequence),
                        &m.sender.as_str(),
                        &m.message_id.to_string(),
                        &m.recipient.as_str(),
                        &m.document_type.to_string(),
                        &m.header_sha256.as_slice(),
                        &m.header,
                        &m.key_id,
                        &m.signature,
                        &receipt,
                        &m.accepted_at.as_millis(),
                        &(m.payload.len() as i64),
                        &chunks,
                        &to_i64(log_index),
                    ],
                )
                .await?;
            if inserted.is_none() {
                let row = open
                    .query_opt(
                        "SELECT sequence, header_sha256, receipt, log_index FROM messages WHERE sender = $1 AND message_id = $2",
                        &[&m.sender.as_str(), &m.message_id.to_string()],
                    )
                    .await?
                    .ok_or_else(|| corrupt("message", "a conflicting message is missing"))?;
                let header: Vec<u8> = row.get(1);
                return Ok(if header == m.header_sha256 {
                    Acceptance::Duplicate {
                        sequence: to_u64(row.get(0)),
                        receipt: row.get(2),
                        log_index: to_u64(row.get(3)),
                    }
                } else {
                    Acceptance::Conflict
                });
            }
            open.counters_mut().next_sequence = sequence + 1;
            let appended = open
                .append_log(&LogEntry {
                    kind: LogKind::Accepted as i32,
                    at_ms: m.accepted_at.as_millis(),
                    sequence,
                    sender: m.sender.to_string(),
                    recipient: m.recipient.to_string(),
                    message_id: m.message_id.to_string(),
                    header_sha256: m.header_sha256.to_vec(),
                    ..Default::default()
                })
                .await?;
            debug_assert_eq!(appended, log_index);
            for (i, chunk) in m.payload.chunks(PAYLOAD_CHUNK).enumerate() {
                open.payload_rows.sequence.push(to_i64(sequence));
                open.payload_rows.chunk.push(i as i32);
                open.payload_rows.bytes.push(chunk.to_vec());
            }
            open.transition_row(sequence, MessageState::Accepted, m.accepted_at);
            open.append_event(
                m.sender,
                StatusEvent {
                    sequence,
                    message_id: m.message_id.to_string(),
                    state: MessageState::Accepted as i32,
                    at_ms: m.accepted_at.as_millis(),
                    ack: Vec::new(),
                    log_index,
                },
            )
            .await?;
            open.notifications
                .insert((QUEUE_CHANNEL, m.recipient.as_str().to_string()));
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
        self.read(async |r: &Reader| {
            let rows = r
                .query(
                    "SELECT sequence, sender, message_id, header, key_id, signature, payload_length, payload_chunks, receipt, document_type, accepted_at_ms \
                     FROM messages WHERE recipient = $1 AND state IN (1, 2) AND sequence > $2 ORDER BY sequence LIMIT $3",
                    &[&recipient.as_str(), &to_i64(after), &(limit as i64)],
                )
                .await?;
            rows.into_iter()
                .map(|row| {
                    Ok(Pending {
                        sequence: to_u64(row.get(0)),
                        sender: parse(row.get(1), "message")?,
                        message_id: parse(row.get(2), "message")?,
                        header: row.get(3),
                        key_id: row.get(4),
                        signature: row.get(5),
                        payload_length: to_u64(row.get(6)),
                        payload_chunks: row.get::<_, i32>(7) as u32,
                        receipt: row.get(8),
                        document_type: row.get(9),
                        accepted_at: Timestamp::from_millis(row.get(10)),
                    })
                })
                .collect()
        })
    }

    fn mark_delivered(&self, sequence: u64, at: Timestamp) -> Result<bool, StoreError> {
        self.write(async |open: &mut Open| {
            let moved = Self::transition(
                open,
                Which::Sequence(sequence),
                &[MessageState::Accepted],
                MessageState::Delivered,
                at,
                None,
            )
            .await?;
            Ok(matches!(moved, Transitioned::Now { .. }))
        })
    }

    fn acknowledge(&self, u: &AckUpdate) -> Result<AckResult, StoreError> {
        self.write(async |open: &mut Open| {
            let open_states = [MessageState::Accepted, MessageState::Delivered];
            let moved = Self::transition(
                open,
                Which::Message(u),
                &open_states,
                u.state,
                u.at,
                Some(&u.ack),
            )
            .await?;
            if let Transitioned::Now {
                log_index,
                settled,
            } = moved
            {
                return Ok(AckResult::Recorded {
                    state: u.state,
                    log_index,
                    now: Some(settled),
                });
            }
            // Not moved: say why, as the embedded store does.
            let Some(row) = open
                .query_opt(
                    "SELECT recipient, header_sha256, state, ack_log_index FROM messages WHERE sender = $1 AND message_id = $2",
                    &[&u.sender.as_str(), &u.message_id.to_string()],
                )
                .await?
            else {
                return Ok(AckResult::UnknownMessage);
            };
            if row.get::<_, &str>(0) != u.recipient.as_str() {
                return Ok(AckResult::UnknownMessage);
            }
            if row.get::<_, &[u8]>(1) != u.header_sha256.as_slice() {
                return Ok(AckResult::DigestMismatch);
            }
            Ok(AckResult::Recorded {
                state: state_of(row.get(2)),
                log_index: to_u64(row.get(3)),
                now: None,
            })
        })
    }

    fn expire(
        &self,
        now: Timestamp,
        ttl: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Vec<Settled>, StoreError> {
        self.write(async |open: &mut Open| {
            let rows = open
                .query(
                    "SELECT sequence, document_type, accepted_at_ms FROM messages WHERE state IN (1, 2) ORDER BY sequence",
                    &[],
                )
                .await?;
            let mut expired = Vec::new();
            for row in rows {
                let Some(ttl_ms) = ttl(row.get(1)) else {
                    continue;
                };
                let accepted: i64 = row.get(2);
                if now.as_millis() < accepted.saturating_add(ttl_ms as i64) {
                    continue;
                }
                let open_states = [MessageState::Accepted, MessageState::Delivered];
                if let Transitioned::Now { settled, .. } = Self::transition(
                    open,
                    Which::Sequence(to_u64(row.get(0))),
                    &open_states,
                    MessageState::Expired,
                    now,
                    None,
                )
                .await?
                {
                    expired.push(settled);
                }
            }
            Ok(expired)
        })
    }

    fn queue_depths(&self) -> Result<Vec<(ParticipantId, u64)>, StoreError> {
        self.read(async |r: &Reader| {
            r.query(
                "SELECT recipient, count(*) FROM messages WHERE state IN (1, 2) GROUP BY recipient ORDER BY recipient",
                &[],
            )
            .await?
            .into_iter()
            .map(|row| Ok((parse(row.get(0), "message")?, to_u64(row.get(1)))))
            .collect()
        })
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.read(async |r: &Reader| {
            let row = r
                .query_opt("SELECT pg_database_size(current_database())", &[])
                .await?
                .ok_or_else(|| corrupt("database size", "no answer"))?;
            Ok(to_u64(row.get(0)))
        })
    }

    fn payload_chunk(&self, sequence: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query_opt(
                "SELECT bytes FROM payload_chunks WHERE sequence = $1 AND chunk = $2",
                &[&to_i64(sequence), &(index as i32)],
            )
            .await?
            .map(|row| row.get(0)))
        })
    }

    fn payload_reader(&self, sequence: u64) -> Result<Box<dyn ChunkReader + '_>, StoreError> {
        Ok(Box::new(Chunks {
            store: self,
            sequence,
        }))
    }

    // The database checks its own pages (`data_checksums`); a payload it returns is the one
    // stored.
    fn payload_damaged(&self, _sequence: u64) -> bool {
        false
    }

    fn damaged_payloads(&self) -> u64 {
        0
    }

    fn events(
        &self,
        sender: ParticipantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StatusEvent)>, StoreError> {
        self.read(async |r: &Reader| {
            r.query(
                "SELECT cursor, sequence, message_id, state, at_ms, ack, log_index FROM events WHERE sender = $1 AND cursor > $2 ORDER BY cursor LIMIT $3",
                &[&sender.as_str(), &to_i64(after), &(limit as i64)],
            )
            .await?
            .into_iter()
            .map(|row| {
                Ok((
                    to_u64(row.get(0)),
                    StatusEvent {
                        sequence: to_u64(row.get(1)),
                        message_id: row.get(2),
                        state: i32::from(row.get::<_, i16>(3)),
                        at_ms: row.get(4),
                        ack: row.get(5),
                        log_index: to_u64(row.get(6)),
                    },
                ))
            })
            .collect()
        })
    }

    fn holds(&self, sender: ParticipantId, id: MessageId) -> Result<bool, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query_opt(
                "SELECT 1 FROM messages WHERE sender = $1 AND message_id = $2",
                &[&sender.as_str(), &id.to_string()],
            )
            .await?
            .is_some())
        })
    }

    fn status(
        &self,
        sender: ParticipantId,
        message_id: MessageId,
    ) -> Result<Option<StatusRecord>, StoreError> {
        self.read(async |r: &Reader| {
            let Some(row) = r
                .query_opt(
                    "SELECT sequence, state, ack, receipt, ack_log_index FROM messages WHERE sender = $1 AND message_id = $2",
                    &[&sender.as_str(), &message_id.to_string()],
                )
                .await?
            else {
                return Ok(None);
            };
            let transitions = r
                .query(
                    "SELECT state, at_ms FROM transitions WHERE sequence = $1 ORDER BY id",
                    &[&row.get::<_, i64>(0)],
                )
                .await?
                .into_iter()
                .map(|t| Transition {
                    state: i32::from(t.get::<_, i16>(0)),
                    at_ms: t.get(1),
                })
                .collect();
            Ok(Some(StatusRecord {
                state: i32::from(row.get::<_, i16>(1)),
                transitions,
                ack: row.get::<_, Option<Vec<u8>>>(2).unwrap_or_default(),
                receipt: row.get(3),
                ack_log_index: to_u64(row.get(4)),
            }))
        })
    }

    fn registry(&self) -> Result<Option<RegistryRecord>, StoreError> {
        self.read(async |r: &Reader| {
            let Some(row) = r
                .query_opt("SELECT signed_trust_list FROM registry WHERE id = 1", &[])
                .await?
            else {
                return Ok(None);
            };
            let revoked_certificates = r
                .query(
                    "SELECT serial, at_ms, reason, revoked_by FROM revoked_certificates ORDER BY serial",
                    &[],
                )
                .await?
                .into_iter()
                .map(|c| RevokedCertificate {
                    serial: c.get(0),
                    at_ms: c.get(1),
                    reason: c.get(2),
                    by: c.get(3),
                })
                .collect();
            Ok(Some(RegistryRecord {
                signed_trust_list: row.get(0),
                revoked_certificates,
            }))
        })
    }

    fn save_registry(&self, record: &RegistryRecord, entry: &LogEntry) -> Result<(), StoreError> {
        let version = decode_list_version(&record.signed_trust_list)?;
        self.write(async |open: &mut Open| {
            // The counters first, as every write: one lock order for every transaction.
            open.counters().await?;
            let stored = open
                .query_opt("SELECT version FROM registry WHERE id = 1 FOR UPDATE", &[])
                .await?
                .map(|row| to_u64(row.get(0)));
            // Trust-list versions only go up: a replica that built this list on an older one
            // lost the race, and must read the registry again.
            if stored.is_some_and(|stored| stored >= version) {
                return Err(StoreError::Stale("the registry"));
            }
            write_registry(open, record).await?;
            open.append_log(entry).await?;
            open.notifications
                .insert((REGISTRY_CHANNEL, version.to_string()));
            Ok(())
        })
    }

    fn record_conformance(
        &self,
        make: &dyn Fn(u64) -> (ConformanceRecord, LogEntry),
    ) -> Result<ConformanceRecord, StoreError> {
        self.write(async |open: &mut Open| {
            let id = open.counters().await?.next_report;
            open.counters_mut().next_report = id + 1;
            let (mut record, entry) = make(id);
            record.log_index = open.append_log(&entry).await?;
            insert_report(open, &record).await?;
            Ok(record)
        })
    }

    fn conformance_reports(&self) -> Result<Vec<ConformanceRecord>, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query(
                "SELECT id, participant, passed, document_types, recorded_at_ms, recorded_by, report_json, key_id, signature, log_index FROM conformance_reports ORDER BY id",
                &[],
            )
            .await?
            .into_iter()
            .map(|row| ConformanceRecord {
                id: to_u64(row.get(0)),
                participant: row.get(1),
                passed: row.get(2),
                document_types: row.get(3),
                recorded_at_ms: row.get(4),
                recorded_by: row.get(5),
                report_json: row.get(6),
                key_id: row.get(7),
                signature: row.get(8),
                log_index: to_u64(row.get(9)),
            })
            .collect())
        })
    }

    fn record_certificate(&self, c: &CertificateRecord) -> Result<(), StoreError> {
        self.write(async |open: &mut Open| {
            open.execute(
                "INSERT INTO certificates (serial, fingerprint, subject, not_before_ms, not_after_ms, first_seen_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial) DO NOTHING",
                &[&c.serial, &c.fingerprint, &c.subject, &c.not_before_ms, &c.not_after_ms, &c.first_seen_ms],
            )
            .await
            .map(drop)
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query(
                "SELECT serial, fingerprint, subject, not_before_ms, not_after_ms, first_seen_ms FROM certificates ORDER BY serial",
                &[],
            )
            .await?
            .into_iter()
            .map(|row| CertificateRecord {
                serial: row.get(0),
                fingerprint: row.get(1),
                subject: row.get(2),
                not_before_ms: row.get(3),
                not_after_ms: row.get(4),
                first_seen_ms: row.get(5),
            })
            .collect())
        })
    }

    fn log_entries(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query(
                "SELECT log_index, entry FROM log_entries WHERE log_index >= $1 ORDER BY log_index LIMIT $2",
                &[&to_i64(from), &(limit.min(i64::MAX as usize) as i64)],
            )
            .await?
            .into_iter()
            .map(|row| (to_u64(row.get(0)), row.get(1)))
            .collect())
        })
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        // Inside the writer's batch: the size its transaction has reached (committed by the
        // flush that follows); elsewhere, the committed size.
        if self.owns_batch() {
            let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Slot::Open(open) = &*slot
                && let Some(counters) = open.counters
            {
                return Ok(counters.log_size);
            }
        }
        self.read(async |r: &Reader| {
            let row = r
                .query_opt("SELECT log_size FROM counters WHERE id = 1", &[])
                .await?
                .ok_or_else(|| corrupt("counters", "the row is missing"))?;
            Ok(to_u64(row.get(0)))
        })
    }

    fn log_node(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
        self.read(async |r: &Reader| {
            let row = r
                .query_opt(
                    "SELECT hash FROM log_nodes WHERE level = $1 AND node = $2",
                    &[&(level as i16), &to_i64(index)],
                )
                .await?
                .ok_or_else(|| {
                    corrupt(
                        "log node",
                        format!("node {index} at level {level} is missing"),
                    )
                })?;
            hash_of(row.get(0), level, index)
        })
    }

    fn save_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        self.write(async |open: &mut Open| {
            open.execute(
                "INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING",
                &[&to_i64(head.tree_size), &head.root_hash, &head.timestamp_ms, &head.key_id, &head.signature],
            )
            .await
            .map(drop)
        })
    }

    fn tree_heads(&self) -> Result<Vec<TreeHead>, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query(
                "SELECT tree_size, root_hash, timestamp_ms, key_id, signature FROM tree_heads ORDER BY tree_size",
                &[],
            )
            .await?
            .into_iter()
            .map(|row| TreeHead {
                tree_size: to_u64(row.get(0)),
                root_hash: row.get(1),
                timestamp_ms: row.get(2),
                key_id: row.get(3),
                signature: row.get(4),
            })
            .collect())
        })
    }

    fn epoch(&self) -> Result<String, StoreError> {
        self.read(async |r: &Reader| {
            Ok(
                r.query_opt("SELECT value FROM meta WHERE key = 'epoch'", &[])
                    .await?
                    .map(|row| row.get(0))
                    .unwrap_or_default(),
            )
        })
    }

    fn registry_version_floor(&self) -> Result<u64, StoreError> {
        self.read(async |r: &Reader| {
            Ok(
                r.query_opt("SELECT value FROM meta WHERE key = 'registry_floor'", &[])
                    .await?
                    .and_then(|row| row.get::<_, String>(0).parse().ok())
                    .unwrap_or(0),
            )
        })
    }

    fn backup(&self, _dest: &Path) -> Result<BackupSummary, StoreError> {
        Err(StoreError::Unsupported(
            "the hub's store is in PostgreSQL: back it up with the database's own tools (pg_basebackup and WAL archiving, see the runbook), not `admin backup`",
        ))
    }

    fn batch(&self, ops: &mut dyn FnMut()) -> Result<(), StoreError> {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current().id());
        ops();
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let slot = std::mem::replace(
            &mut *self.slot.lock().unwrap_or_else(|e| e.into_inner()),
            Slot::Idle,
        );
        match slot {
            Slot::Idle => Ok(()),
            Slot::Done(result) => result,
            Slot::Open(open) => self.block(open.commit()),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every write outside a batch was committed before it returned; a batch's writes are
        // committed now.
        if !self.owns_batch() {
            return Ok(());
        }
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *slot, Slot::Idle) {
            Slot::Idle => Ok(()),
            Slot::Done(result) => {
                *slot = Slot::Done(result.clone());
                result
            }
            Slot::Open(open) => {
                let result = self.block(open.commit());
                *slot = Slot::Done(result.clone());
                result
            }
        }
    }

    fn health(&self) -> Option<Arc<StoreHealth>> {
        Some(self.health.clone())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    fn keeps_tree_heads(&self) -> bool {
        self.hold_tree_head_lease()
    }
}
