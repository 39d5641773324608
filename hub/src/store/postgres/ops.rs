//! The hub's store operations ([`Backend`]) in SQL.

use super::*;

/// Payloads up to this size are read with their documents by [`Backend::pending`], for the
/// delivery that follows: one round trip a batch instead of one a document.
const PREFETCH_BELOW: usize = 64 * 1024;
/// Prefetched payloads a replica holds at most (then it starts over): a stream that ended
/// before reading its payloads leaves them behind.
const PREFETCHED: usize = 1024;

/// A payload read chunk after chunk, one query each.
pub(super) struct Chunks<'a> {
    store: &'a Postgres,
    sequence: u64,
}

impl ChunkReader for Chunks<'_> {
    fn chunk(&mut self, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.payload_chunk(self.sequence, index)
    }
}

impl Postgres {
    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.shared.recent()
    }
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
        let accepting = [Accepting {
            message: m,
            issue_receipt,
        }];
        let mut accepted =
            self.write(async |open: &mut Open| Self::accept_all(open, &accepting).await)?;
        accepted
            .pop()
            .ok_or(StoreError::Stopped("a message was not judged"))
    }

    fn accept_many(&self, messages: &[Accepting<'_>]) -> Vec<Result<Acceptance, StoreError>> {
        match self.write(async |open: &mut Open| Self::accept_all(open, messages).await) {
            Ok(accepted) => accepted.into_iter().map(Ok).collect(),
            Err(e) => messages.iter().map(|_| Err(e.clone())).collect(),
        }
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
                    "SELECT m.sequence, m.sender, m.message_id, m.header, m.key_id, m.signature, m.payload_length, m.payload_chunks, m.receipt, m.document_type, m.accepted_at_ms, \
                     CASE WHEN m.payload_length <= $4 THEN (SELECT p.bytes FROM payload_chunks p WHERE p.sequence = m.sequence AND p.chunk = 0) END, m.log_index, s.state \
                     FROM message_states s JOIN messages m USING (sequence) WHERE s.recipient = $1 AND s.state IN (1, 2) AND s.sequence > $2 ORDER BY s.sequence LIMIT $3",
                    &[
                        &recipient.as_str(),
                        &to_i64(after),
                        &(limit as i64),
                        &(PREFETCH_BELOW as i64),
                    ],
                )
                .await?;
            // Small payloads come with their documents, for the delivery that reads them next.
            let mut prefetched = self.shared.prefetched();
            if prefetched.len() + rows.len() > PREFETCHED {
                prefetched.clear();
            }
            for row in &rows {
                if let Some(bytes) = row.get::<_, Option<Vec<u8>>>(11) {
                    prefetched.insert(to_u64(row.get(0)), bytes);
                }
            }
            drop(prefetched);
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
                        log_index: to_u64(row.get(12)),
                        delivered: row.get::<_, i16>(13) == MessageState::Delivered as i16,
                    })
                })
                .collect()
        })
    }

    fn mark_delivered(&self, sequence: u64, at: Timestamp) -> Result<bool, StoreError> {
        self.mark_delivered_many(&[sequence], at)
            .pop()
            .unwrap_or(Err(StoreError::Stopped("a delivery was not recorded")))
    }

    fn acknowledge(&self, u: &AckUpdate) -> Result<AckResult, StoreError> {
        self.acknowledge_many(std::slice::from_ref(u))
            .pop()
            .unwrap_or(Err(StoreError::Stopped(
                "an acknowledgement was not recorded",
            )))
    }

    fn mark_delivered_many(
        &self,
        sequences: &[u64],
        at: Timestamp,
    ) -> Vec<Result<bool, StoreError>> {
        // One transaction's statements: a failure fails them all.
        let accepted = [MessageState::Accepted];
        let moved = self.write(async |open: &mut Open| {
            Self::move_many(open, sequences, &accepted, MessageState::Delivered, at).await
        });
        match moved {
            Ok(moved) => moved.into_iter().map(|m| Ok(m.is_some())).collect(),
            Err(e) => sequences.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn acknowledge_many(&self, updates: &[AckUpdate]) -> Vec<Result<AckResult, StoreError>> {
        match self.write(async |open: &mut Open| Self::acknowledge_many(open, updates).await) {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(e) => updates.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn expire(
        &self,
        now: Timestamp,
        ttl: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Vec<Settled>, StoreError> {
        self.write(async |open: &mut Open| {
            let rows = open
                .query(
                    "SELECT s.sequence, m.document_type, m.accepted_at_ms FROM message_states s JOIN messages m USING (sequence) WHERE s.state IN (1, 2) ORDER BY s.sequence",
                    &[],
                )
                .await?;
            let due: Vec<u64> = rows
                .iter()
                .filter(|row| {
                    ttl(row.get(1)).is_some_and(|ttl_ms| {
                        now.as_millis() >= row.get::<_, i64>(2).saturating_add(ttl_ms as i64)
                    })
                })
                .map(|row| to_u64(row.get(0)))
                .collect();
            let open_states = [MessageState::Accepted, MessageState::Delivered];
            let expired: Vec<Settled> =
                Self::move_many(open, &due, &open_states, MessageState::Expired, now)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
            Ok(expired)
        })
    }

    fn queue_depths(&self) -> Result<Vec<(ParticipantId, u64)>, StoreError> {
        self.read(async |r: &Reader| {
            r.query(
                "SELECT recipient, count(*) FROM message_states WHERE state IN (1, 2) GROUP BY recipient ORDER BY recipient",
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
        if index == 0
            && let Some(bytes) = self.shared.prefetched().remove(&sequence)
        {
            return Ok(Some(bytes));
        }
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
                    "SELECT s.states, s.state_times, s.state, s.ack, m.receipt, s.ack_log_index, m.log_index FROM messages m JOIN message_states s USING (sequence) WHERE m.sender = $1 AND m.message_id = $2",
                    &[&sender.as_str(), &message_id.to_string()],
                )
                .await?
            else {
                return Ok(None);
            };
            let (states, times): (Vec<i16>, Vec<i64>) = (row.get(0), row.get(1));
            let transitions = states
                .into_iter()
                .zip(times)
                .map(|(state, at_ms)| Transition {
                    state: i32::from(state),
                    at_ms,
                })
                .collect();
            Ok(Some(StatusRecord {
                state: i32::from(row.get::<_, i16>(2)),
                transitions,
                ack: row.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
                receipt: row.get(4),
                ack_log_index: to_u64(row.get(5)),
                accepted_log_index: to_u64(row.get(6)),
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

    fn record_scorecard(
        &self,
        make: &dyn Fn(u64) -> (ScorecardRecord, LogEntry),
    ) -> Result<ScorecardRecord, StoreError> {
        self.write(async |open: &mut Open| {
            // Under the counters row's lock (taken first), so no other writer takes the same id.
            open.counters().await?;
            let last: Option<i64> = open
                .query_opt("SELECT max(id) FROM scorecard_entries", &[])
                .await?
                .and_then(|row| row.get(0));
            let (mut record, entry) = make(last.map_or(1, |n| to_u64(n) + 1));
            record.log_index = open.append_log(&entry).await?;
            insert_scorecard_entry(open, &record).await?;
            Ok(record)
        })
    }

    fn scorecard_entries(&self) -> Result<Vec<ScorecardRecord>, StoreError> {
        self.read(async |r: &Reader| {
            Ok(r.query(
                "SELECT id, recorded_at_ms, recorded_by, entry_json, key_id, signature, log_index FROM scorecard_entries ORDER BY id",
                &[],
            )
            .await?
            .into_iter()
            .map(|row| ScorecardRecord {
                id: to_u64(row.get(0)),
                recorded_at_ms: row.get(1),
                recorded_by: row.get(2),
                entry_json: row.get(3),
                key_id: row.get(4),
                signature: row.get(5),
                log_index: to_u64(row.get(6)),
            })
            .collect())
        })
    }

    fn exchange_facts(
        &self,
        since: Timestamp,
        visit: &mut dyn FnMut(ExchangeFact),
    ) -> Result<(), StoreError> {
        // A page at a time, in sequence order, so that a year of messages is never held at once.
        const PAGE: i64 = 5000;
        let mut after: i64 = 0;
        loop {
            let rows = self.read(async |r: &Reader| {
                r.query(
                    "SELECT m.sequence, m.sender, m.recipient, m.document_type, m.accepted_at_ms, s.state, s.states, s.state_times, \
                     CASE WHEN s.state = 4 THEN s.ack END \
                     FROM messages m JOIN message_states s USING (sequence) \
                     WHERE m.accepted_at_ms >= $1 AND m.sequence > $2 ORDER BY m.sequence LIMIT $3",
                    &[&since.as_millis(), &after, &PAGE],
                )
                .await
            })?;
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                after = row.get(0);
                let states: Vec<i16> = row.get(6);
                let times: Vec<i64> = row.get(7);
                let state = |s: i16| {
                    MessageState::try_from(i32::from(s)).unwrap_or(MessageState::Unspecified)
                };
                visit(ExchangeFact::of(
                    row.get(1),
                    row.get(2),
                    row.get(3),
                    row.get(4),
                    state(row.get(5)),
                    states.into_iter().map(state).zip(times),
                    row.get::<_, Option<Vec<u8>>>(8).unwrap_or_default(),
                ));
            }
            if !full {
                break;
            }
        }
        Ok(())
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
        // A proof reads one entry, most often a recent one.
        if limit == 1
            && let Some(entry) = self.recent().entry(from)
        {
            return Ok(vec![(from, entry)]);
        }
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

    fn cached_log_entry(&self, index: u64) -> Option<Vec<u8>> {
        self.recent().entry(index)
    }

    fn cached_log_node(&self, level: u32, index: u64) -> Option<merkle::Hash> {
        self.recent().node(level, index)
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
        if let Some(hash) = self.recent().node(level, index) {
            return Ok(hash);
        }
        if level == 0 {
            // A leaf is the hash of its entry.
            let Some((_, entry)) = self.log_entries(index + 1, 1)?.pop() else {
                return Err(corrupt(
                    "log entry",
                    format!("entry {} is missing", index + 1),
                ));
            };
            return Ok(merkle::leaf_hash(&entry));
        }
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
