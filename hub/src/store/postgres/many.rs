//! Many messages at once: the submissions of one batch of the writer, the deliveries a stream
//! sent, the acknowledgements of one `AcknowledgeMany`, the messages an expiry sweep settles.
//! Their rows are read (and locked) with one query, judged here in order as one message at a
//! time would be, and written with one more (new messages at commit), instead of a round trip
//! each. A single message goes the same way, as a batch of one.

use super::*;

/// A message's row as a group reads it, locked for the rest of the transaction; its state
/// follows the group's moves.
struct Current {
    sequence: u64,
    state: MessageState,
    ack_log_index: u64,
    sender: ParticipantId,
    recipient: ParticipantId,
    message_id: String,
    header_sha256: Vec<u8>,
    document_type: String,
    accepted_at_ms: i64,
}

const LOCKED: &str = "SELECT s.sequence, s.state, s.ack_log_index, m.sender, m.recipient, m.message_id, m.header_sha256, m.document_type, m.accepted_at_ms FROM message_states s JOIN messages m USING (sequence)";

fn current(row: &Row) -> Result<Current, StoreError> {
    Ok(Current {
        sequence: to_u64(row.get(0)),
        state: state_of(row.get(1)),
        ack_log_index: to_u64(row.get(2)),
        sender: parse(row.get(3), "message")?,
        recipient: parse(row.get(4), "message")?,
        message_id: row.get(5),
        header_sha256: row.get(6),
        document_type: row.get(7),
        accepted_at_ms: row.get(8),
    })
}

/// The changed rows, column by column, for one `UPDATE ... FROM unnest(...)`.
#[derive(Default)]
struct Changes {
    sequence: Vec<i64>,
    state: Vec<i16>,
    at_ms: Vec<i64>,
    ack: Vec<Option<Vec<u8>>>,
    ack_log_index: Vec<i64>,
}

impl Changes {
    async fn write(self, open: &Open) -> Result<(), StoreError> {
        if self.sequence.is_empty() {
            return Ok(());
        }
        open.execute(
            "UPDATE message_states s SET state = u.state, states = s.states || u.state, state_times = s.state_times || u.at_ms, ack = coalesce(u.ack, s.ack), ack_log_index = CASE WHEN u.ack IS NULL THEN s.ack_log_index ELSE u.ack_log_index END \
             FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bytea[], $5::bigint[]) AS u(sequence, state, at_ms, ack, ack_log_index) WHERE s.sequence = ANY($1) AND s.sequence = u.sequence",
            &[&self.sequence, &self.state, &self.at_ms, &self.ack, &self.ack_log_index],
        )
        .await
        .map(drop)
    }
}

/// Move `c` to `to` (it may: the caller checked): its log entry and its sender's event now,
/// its row in `changes`. Returns the entry's index and what settled.
async fn move_to(
    open: &mut Open,
    c: &mut Current,
    to: MessageState,
    at: Timestamp,
    ack: Option<&[u8]>,
    changes: &mut Changes,
) -> Result<(u64, Settled), StoreError> {
    let kind = match to {
        MessageState::Delivered => LogKind::Delivered,
        MessageState::Acknowledged => LogKind::Acknowledged,
        MessageState::Rejected => LogKind::Rejected,
        _ => LogKind::Expired,
    };
    let log_index = open
        .append_log(&LogEntry {
            kind: kind as i32,
            at_ms: at.as_millis(),
            sequence: c.sequence,
            sender: c.sender.to_string(),
            recipient: c.recipient.to_string(),
            message_id: c.message_id.clone(),
            header_sha256: c.header_sha256.clone(),
            evidence_sha256: ack
                .map(|a| caravan_common::signing::sha256(a).to_vec())
                .unwrap_or_default(),
            ..Default::default()
        })
        .await?;
    open.append_event(
        c.sender,
        StatusEvent {
            sequence: c.sequence,
            message_id: c.message_id.clone(),
            state: to as i32,
            at_ms: at.as_millis(),
            ack: ack.map(<[u8]>::to_vec).unwrap_or_default(),
            log_index,
        },
    )
    .await?;
    c.state = to;
    if ack.is_some() {
        c.ack_log_index = log_index;
    }
    changes.sequence.push(to_i64(c.sequence));
    changes.state.push(to as i16);
    changes.at_ms.push(at.as_millis());
    changes.ack.push(ack.map(<[u8]>::to_vec));
    changes.ack_log_index.push(to_i64(log_index));
    Ok((
        log_index,
        Settled {
            sender: c.sender,
            recipient: c.recipient,
            document_type: c.document_type.clone(),
            accepted_at: Timestamp::from_millis(c.accepted_at_ms),
        },
    ))
}

impl Postgres {
    /// Move each of `sequences` that is in one of `from` to `to` (a delivery, an expiry), in
    /// two round trips; what settled now, in order (`None`: not moved, or not there).
    pub(super) async fn move_many(
        open: &mut Open,
        sequences: &[u64],
        from: &[MessageState],
        to: MessageState,
        at: Timestamp,
    ) -> Result<Vec<Option<Settled>>, StoreError> {
        open.counters().await?;
        let wanted: Vec<i64> = sequences.iter().map(|s| to_i64(*s)).collect();
        let mut rows = HashMap::new();
        for row in open
            .query(
                // Both sides by their primary keys: never a scan of either table.
                &format!(
                    "{LOCKED} WHERE s.sequence = ANY($1) AND m.sequence = ANY($1) FOR UPDATE OF s"
                ),
                &[&wanted],
            )
            .await?
        {
            let c = current(&row)?;
            rows.insert(c.sequence, c);
        }
        let mut changes = Changes::default();
        let mut moved = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            match rows.get_mut(sequence) {
                Some(c) if from.contains(&c.state) => {
                    let (_, settled) = move_to(open, c, to, at, None, &mut changes).await?;
                    moved.push(Some(settled));
                }
                _ => moved.push(None),
            }
        }
        changes.write(open).await?;
        Ok(moved)
    }

    /// [`Backend::acknowledge`] for each of `updates`, in two round trips.
    pub(super) async fn acknowledge_many(
        open: &mut Open,
        updates: &[AckUpdate],
    ) -> Result<Vec<AckResult>, StoreError> {
        open.counters().await?;
        let ids: Vec<String> = updates.iter().map(|u| u.message_id.to_string()).collect();
        let mut rows = HashMap::new();
        for row in open
            .query(
                // Through the (message id, sender) index by ids; the pairs are checked here
                // (another sender's message of the same id is no match).
                &format!("{LOCKED} WHERE m.message_id = ANY($1) FOR UPDATE OF s"),
                &[&ids],
            )
            .await?
        {
            let c = current(&row)?;
            rows.insert((c.sender, c.message_id.clone()), c);
        }
        let mut changes = Changes::default();
        let mut results = Vec::with_capacity(updates.len());
        for u in updates {
            let Some(c) = rows.get_mut(&(u.sender, u.message_id.to_string())) else {
                results.push(AckResult::UnknownMessage);
                continue;
            };
            if c.recipient != u.recipient {
                results.push(AckResult::UnknownMessage);
                continue;
            }
            if c.header_sha256 != u.header_sha256 {
                results.push(AckResult::DigestMismatch);
                continue;
            }
            // Acknowledging twice is harmless: the first answer stands.
            if !matches!(c.state, MessageState::Accepted | MessageState::Delivered) {
                results.push(AckResult::Recorded {
                    state: c.state,
                    log_index: c.ack_log_index,
                    now: None,
                });
                continue;
            }
            let (log_index, settled) =
                move_to(open, c, u.state, u.at, Some(&u.ack), &mut changes).await?;
            results.push(AckResult::Recorded {
                state: u.state,
                log_index,
                now: Some(settled),
            });
        }
        changes.write(open).await?;
        Ok(results)
    }
}

/// A message the hub holds, by (sender, id): what a resend is answered with.
struct Held {
    sequence: u64,
    header_sha256: Vec<u8>,
    receipt: Vec<u8>,
    log_index: u64,
}

impl Postgres {
    /// [`Backend::accept`] for each of `messages`, in order: one query for the ones the hub
    /// holds already (under the counters' lock, so no other replica can add one meanwhile),
    /// the new ones written at commit, where the unique (sender, message id) constraint holds
    /// them to it.
    pub(super) async fn accept_all(
        open: &mut Open,
        messages: &[Accepting<'_>],
    ) -> Result<Vec<Acceptance>, StoreError> {
        open.counters().await?;
        let ids: Vec<String> = messages
            .iter()
            .map(|a| a.message.message_id.to_string())
            .collect();
        let mut held: HashMap<(String, String), Held> = HashMap::new();
        for row in open
            .query(
                "SELECT sender, message_id, sequence, header_sha256, receipt, log_index FROM messages WHERE message_id = ANY($1)",
                &[&ids],
            )
            .await?
        {
            held.insert(
                (row.get(0), row.get(1)),
                Held {
                    sequence: to_u64(row.get(2)),
                    header_sha256: row.get(3),
                    receipt: row.get(4),
                    log_index: to_u64(row.get(5)),
                },
            );
        }
        let mut out = Vec::with_capacity(messages.len());
        for (a, id) in messages.iter().zip(ids) {
            let m = a.message;
            let key = (m.sender.as_str().to_string(), id);
            if let Some(h) = held.get(&key) {
                out.push(if h.header_sha256 == m.header_sha256 {
                    Acceptance::Duplicate {
                        sequence: h.sequence,
                        receipt: h.receipt.clone(),
                        log_index: h.log_index,
                    }
                } else {
                    Acceptance::Conflict
                });
                continue;
            }
            let sequence = open.counters().await?.next_sequence;
            open.counters_mut().next_sequence = sequence + 1;
            let receipt = (a.issue_receipt)(sequence);
            let log_index = open
                .append_log(&LogEntry {
                    kind: LogKind::Accepted as i32,
                    at_ms: m.accepted_at.as_millis(),
                    sequence,
                    sender: m.sender.to_string(),
                    recipient: m.recipient.to_string(),
                    message_id: key.1.clone(),
                    header_sha256: m.header_sha256.to_vec(),
                    ..Default::default()
                })
                .await?;
            open.message_rows.push(m, sequence, &receipt, log_index);
            open.state_rows.sequence.push(to_i64(sequence));
            open.state_rows
                .recipient
                .push(m.recipient.as_str().to_string());
            open.state_rows
                .accepted_at_ms
                .push(m.accepted_at.as_millis());
            for (i, chunk) in m.payload.chunks(PAYLOAD_CHUNK).enumerate() {
                open.payload_rows.sequence.push(to_i64(sequence));
                open.payload_rows.chunk.push(i as i32);
                open.payload_rows.bytes.push(chunk.to_vec());
            }
            // No status event, as in the embedded store: the answer carries the acceptance.
            open.notifications
                .insert((QUEUE_CHANNEL, m.recipient.as_str().to_string()));
            held.insert(
                key,
                Held {
                    sequence,
                    header_sha256: m.header_sha256.to_vec(),
                    receipt: receipt.clone(),
                    log_index,
                },
            );
            out.push(Acceptance::Accepted {
                sequence,
                receipt,
                log_index,
            });
        }
        Ok(out)
    }
}
