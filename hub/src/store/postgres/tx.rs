//! A write transaction and what it keeps for its commit (rows written column by column with
//! `unnest`, the counters under their row lock, the notifications), and a pooled reader.

use super::*;

/// A map from an error of the driver or the pool to the store's: a connection that fails
/// faults the store (logged once); a statement the server refused is the engine's error.
#[derive(Clone)]
pub(super) struct Errors(pub(super) Arc<StoreHealth>);

impl Errors {
    pub(super) fn driver(&self, e: tokio_postgres::Error) -> StoreError {
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

    pub(super) fn pool(&self, e: deadpool_postgres::PoolError) -> StoreError {
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
pub(super) struct Counters {
    pub(super) log_size: u64,
    pub(super) next_sequence: u64,
    pub(super) next_event: u64,
    pub(super) next_report: u64,
}

/// Rows written at commit, column by column (each column one array parameter of one
/// `INSERT ... SELECT * FROM unnest(...)`).
#[derive(Default)]
pub(super) struct LogRows {
    pub(super) index: Vec<i64>,
    pub(super) kind: Vec<i32>,
    pub(super) at_ms: Vec<i64>,
    pub(super) entry: Vec<Vec<u8>>,
}

#[derive(Default)]
pub(super) struct NodeRows {
    pub(super) level: Vec<i16>,
    pub(super) node: Vec<i64>,
    pub(super) hash: Vec<Vec<u8>>,
}

#[derive(Default)]
pub(super) struct EventRows {
    pub(super) sender: Vec<String>,
    pub(super) cursor: Vec<i64>,
    pub(super) sequence: Vec<i64>,
    pub(super) message_id: Vec<String>,
    pub(super) state: Vec<i16>,
    pub(super) at_ms: Vec<i64>,
    pub(super) ack: Vec<Vec<u8>>,
    pub(super) log_index: Vec<i64>,
}

/// Messages accepted now, as `messages` rows.
#[derive(Default)]
pub(super) struct MessageRows {
    sequence: Vec<i64>,
    sender: Vec<String>,
    message_id: Vec<String>,
    recipient: Vec<String>,
    document_type: Vec<String>,
    header_sha256: Vec<Vec<u8>>,
    header: Vec<Vec<u8>>,
    key_id: Vec<String>,
    signature: Vec<Vec<u8>>,
    receipt: Vec<Vec<u8>>,
    accepted_at_ms: Vec<i64>,
    payload_length: Vec<i64>,
    payload_chunks: Vec<i32>,
    log_index: Vec<i64>,
}

impl MessageRows {
    pub(super) fn push(&mut self, m: &Incoming, sequence: u64, receipt: &[u8], log_index: u64) {
        self.sequence.push(to_i64(sequence));
        self.sender.push(m.sender.as_str().to_string());
        self.message_id.push(m.message_id.to_string());
        self.recipient.push(m.recipient.as_str().to_string());
        self.document_type.push(m.document_type.to_string());
        self.header_sha256.push(m.header_sha256.to_vec());
        self.header.push(m.header.clone());
        self.key_id.push(m.key_id.clone());
        self.signature.push(m.signature.clone());
        self.receipt.push(receipt.to_vec());
        self.accepted_at_ms.push(m.accepted_at.as_millis());
        self.payload_length.push(m.payload.len() as i64);
        self.payload_chunks
            .push(m.payload.len().div_ceil(PAYLOAD_CHUNK) as i32);
        self.log_index.push(to_i64(log_index));
    }
}

/// The state rows of messages accepted now (ACCEPTED, since their acceptance).
#[derive(Default)]
pub(super) struct StateRows {
    pub(super) sequence: Vec<i64>,
    pub(super) recipient: Vec<String>,
    pub(super) accepted_at_ms: Vec<i64>,
}

#[derive(Default)]
pub(super) struct PayloadRows {
    pub(super) sequence: Vec<i64>,
    pub(super) chunk: Vec<i32>,
    pub(super) bytes: Vec<Vec<u8>>,
}

/// Log entries and Merkle nodes committed lately, kept in memory: they never change once
/// committed, and the proofs of receipts, acknowledgements and status events read the newest
/// ones again and again (a round trip to the database each, otherwise). Starts over when full.
#[derive(Default)]
pub(super) struct Recent {
    entries: HashMap<u64, Vec<u8>>,
    nodes: HashMap<(u32, u64), merkle::Hash>,
}

/// What a replica's transactions share: what they committed lately, and the replica's name in
/// the notifications it sends (so that it does not wake its own streams twice).
pub(super) struct Shared {
    pub(super) recent: Mutex<Recent>,
    pub(super) replica: String,
    /// Small payloads read with pending documents, by sequence, until their delivery reads them.
    prefetched: Mutex<HashMap<u64, Vec<u8>>>,
}

impl Shared {
    pub(super) fn new() -> Self {
        Self {
            recent: Mutex::default(),
            replica: MessageId::generate().to_string(),
            prefetched: Mutex::default(),
        }
    }

    pub(super) fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn prefetched(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<u8>>> {
        self.prefetched.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The most entries (and nodes) [`Recent`] holds.
const RECENT: usize = 1 << 16;

impl Recent {
    pub(super) fn entry(&self, index: u64) -> Option<Vec<u8>> {
        self.entries.get(&index).cloned()
    }

    pub(super) fn node(&self, level: u32, index: u64) -> Option<merkle::Hash> {
        self.nodes.get(&(level, index)).copied()
    }

    fn keep(&mut self, fresh: Fresh) {
        if self.entries.len() + fresh.entries.len() > RECENT {
            self.entries.clear();
        }
        if self.nodes.len() + fresh.nodes.len() > RECENT {
            self.nodes.clear();
        }
        self.entries.extend(fresh.entries);
        self.nodes.extend(fresh.nodes);
    }
}

/// What a transaction appends to the log, for [`Recent`] once it is committed (up to
/// [`RECENT`]: an import's whole log is not kept).
#[derive(Default)]
struct Fresh {
    entries: Vec<(u64, Vec<u8>)>,
    nodes: Vec<((u32, u64), merkle::Hash)>,
}

/// An open transaction, and what it writes at commit.
pub(super) struct Open {
    session: Reader,
    pub(super) counters: Option<Counters>,
    /// The Merkle nodes this transaction may read to append: the tree's frontier when the
    /// counters were locked, and every node appended since.
    pub(super) nodes: HashMap<(u32, u64), merkle::Hash>,
    pub(super) log_rows: LogRows,
    pub(super) node_rows: NodeRows,
    pub(super) event_rows: EventRows,
    pub(super) payload_rows: PayloadRows,
    pub(super) message_rows: MessageRows,
    pub(super) state_rows: StateRows,
    pub(super) notifications: BTreeSet<(&'static str, String)>,
    /// A statement failed: the transaction is rolled back, whatever else succeeded.
    pub(super) failed: bool,
    shared: Arc<Shared>,
    fresh: Fresh,
}

pub(super) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(what, detail)
}

pub(super) fn hash_of(bytes: &[u8], level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
    <merkle::Hash>::try_from(bytes).map_err(|_| {
        corrupt(
            "log node",
            format!("node {index} at level {level} is not 32 bytes"),
        )
    })
}

/// The perfect subtrees a tree of `size` leaves is made of, left to right: the nodes an
/// append reads.
pub(super) fn frontier(size: u64) -> Vec<(u32, u64)> {
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

pub(super) fn state_of(n: i16) -> MessageState {
    MessageState::try_from(i32::from(n)).unwrap_or(MessageState::Unspecified)
}

impl Open {
    pub(super) async fn begin(
        client: Object,
        errors: Errors,
        shared: Arc<Shared>,
    ) -> Result<Self, StoreError> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| errors.driver(e))?;
        Ok(Self {
            session: Reader { client, errors },
            counters: None,
            nodes: HashMap::new(),
            log_rows: Default::default(),
            node_rows: Default::default(),
            event_rows: Default::default(),
            payload_rows: Default::default(),
            message_rows: Default::default(),
            state_rows: Default::default(),
            notifications: BTreeSet::new(),
            failed: false,
            shared,
            fresh: Fresh::default(),
        })
    }

    /// The counters, locked for the rest of the transaction (and the frontier of the log's
    /// Merkle tree read with them).
    pub(super) async fn counters(&mut self) -> Result<Counters, StoreError> {
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
        let mut wanted = frontier(counters.log_size);
        {
            let recent = self.shared.recent();
            wanted.retain(|&(level, i)| match recent.node(level, i) {
                Some(hash) => {
                    self.nodes.insert((level, i), hash);
                    false
                }
                None => true,
            });
        }
        // A leaf is not stored as a node: it is the hash of its entry.
        if let Some(&(_, leaf)) = wanted.iter().find(|(level, _)| *level == 0) {
            let row = self
                .query_opt(
                    "SELECT entry FROM log_entries WHERE log_index = $1",
                    &[&to_i64(leaf + 1)],
                )
                .await?
                .ok_or_else(|| corrupt("log entry", format!("entry {} is missing", leaf + 1)))?;
            self.nodes
                .insert((0, leaf), merkle::leaf_hash(row.get::<_, &[u8]>(0)));
            wanted.retain(|(level, _)| *level > 0);
        }
        if !wanted.is_empty() {
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
        }
        self.counters = Some(counters);
        Ok(counters)
    }

    pub(super) fn counters_mut(&mut self) -> &mut Counters {
        self.counters.as_mut().expect("counters are locked first")
    }

    /// Append `entry` to the log (written at commit); returns its index, from 1.
    pub(super) async fn append_log(&mut self, entry: &LogEntry) -> Result<u64, StoreError> {
        self.append_log_bytes(entry.kind, entry.at_ms, entry.encode_to_vec())
            .await
    }

    /// [`Self::append_log`] for an entry encoded already (its leaf hashes these bytes).
    pub(super) async fn append_log_bytes(
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
        let keep = self.fresh.entries.len() < RECENT;
        if keep {
            self.fresh.entries.push((size + 1, bytes.clone()));
        }
        for (level, i, hash) in appended {
            self.nodes.insert((level, i), hash);
            if keep {
                self.fresh.nodes.push(((level, i), hash));
            }
            // Leaves are the entries' hashes, not stored twice.
            if level > 0 {
                self.node_rows.level.push(level as i16);
                self.node_rows.node.push(to_i64(i));
                self.node_rows.hash.push(hash.to_vec());
            }
        }
        let index = size + 1;
        self.log_rows.index.push(to_i64(index));
        self.log_rows.kind.push(kind);
        self.log_rows.at_ms.push(at_ms);
        self.log_rows.entry.push(bytes);
        self.counters_mut().log_size = index;
        Ok(index)
    }

    pub(super) async fn append_event(
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

    /// Write what was kept for the end, and COMMIT.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        if self.failed {
            let _ = self.session.client.batch_execute("ROLLBACK").await;
            return Err(StoreError::BatchFailed);
        }
        let result = async {
            self.write_rows().await?;
            self.write_counters().await?;
            self.send_notifications().await
        }
        .await;
        match result {
            Ok(()) => {
                self.session
                    .client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| self.session.errors.driver(e))?;
                let fresh = std::mem::take(&mut self.fresh);
                self.shared.recent().keep(fresh);
                Ok(())
            }
            Err(e) => {
                let _ = self.session.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    pub(super) async fn rollback(self) {
        let _ = self.session.client.batch_execute("ROLLBACK").await;
    }

    /// Write the rows kept for the end, and forget them.
    pub(super) async fn write_rows(&mut self) -> Result<(), StoreError> {
        let log = std::mem::take(&mut self.log_rows);
        if !log.index.is_empty() {
            self.execute(
                "INSERT INTO log_entries (log_index, kind, at_ms, entry) SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bytea[])",
                &[&log.index, &log.kind, &log.at_ms, &log.entry],
            )
            .await?;
            let nodes = std::mem::take(&mut self.node_rows);
            if !nodes.level.is_empty() {
                self.execute(
                    "INSERT INTO log_nodes (level, node, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
                    &[&nodes.level, &nodes.node, &nodes.hash],
                )
                .await?;
            }
        }
        // Messages first: their states and payloads name them.
        let m = std::mem::take(&mut self.message_rows);
        if !m.sequence.is_empty() {
            self.execute(
                "INSERT INTO messages (sequence, sender, message_id, recipient, document_type, header_sha256, header, key_id, signature, receipt, accepted_at_ms, payload_length, payload_chunks, log_index) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::text[], $9::bytea[], $10::bytea[], $11::bigint[], $12::bigint[], $13::integer[], $14::bigint[])",
                &[
                    &m.sequence,
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
                    &m.payload_length,
                    &m.payload_chunks,
                    &m.log_index,
                ],
            )
            .await?;
        }
        let states = std::mem::take(&mut self.state_rows);
        if !states.sequence.is_empty() {
            self.execute(
                "INSERT INTO message_states (sequence, recipient, state, states, state_times) SELECT s, r, 1, ARRAY[1::smallint], ARRAY[t] FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS x(s, r, t)",
                &[&states.sequence, &states.recipient, &states.accepted_at_ms],
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

    pub(super) async fn write_counters(&self) -> Result<(), StoreError> {
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

    pub(super) async fn send_notifications(&self) -> Result<(), StoreError> {
        if !self.notifications.is_empty() {
            // "<replica> <what>": the sending replica's own listener skips it.
            let (channels, payloads): (Vec<&str>, Vec<String>) = self
                .notifications
                .iter()
                .map(|(c, p)| (*c, format!("{} {p}", self.shared.replica)))
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

/// Replace the registry: its list (at the version it carries) and the revoked certificates.
pub(super) async fn write_registry(
    open: &mut Open,
    record: &RegistryRecord,
) -> Result<u64, StoreError> {
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

pub(super) async fn insert_scorecard_entry(
    open: &mut Open,
    record: &ScorecardRecord,
) -> Result<(), StoreError> {
    open.execute(
        "INSERT INTO scorecard_entries (id, recorded_at_ms, recorded_by, entry_json, key_id, signature, log_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &to_i64(record.id),
            &record.recorded_at_ms,
            &record.recorded_by,
            &record.entry_json,
            &record.key_id,
            &record.signature,
            &to_i64(record.log_index),
        ],
    )
    .await
    .map(drop)
}

pub(super) async fn insert_report(
    open: &mut Open,
    record: &ConformanceRecord,
) -> Result<(), StoreError> {
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

pub(super) fn parse<T: FromStr>(text: String, what: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| corrupt(what, e))
}

/// A pooled connection, and how its errors read: reads on their own, or a transaction's
/// statements ([`Open`] derefs to one).
pub(super) struct Reader {
    pub(super) client: Object,
    pub(super) errors: Errors,
}

impl Reader {
    pub(super) async fn query(
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

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
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
}

pub(super) fn decode_list_version(signed: &[u8]) -> Result<u64, StoreError> {
    let signed =
        caravan_proto::v1::SignedTrustList::decode(signed).map_err(|e| corrupt("registry", e))?;
    let list = caravan_proto::v1::TrustList::decode(signed.body.as_slice())
        .map_err(|e| corrupt("registry", e))?;
    Ok(list.version)
}

impl std::ops::Deref for Open {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.session
    }
}
