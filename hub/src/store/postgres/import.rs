//! A whole store taken into an empty database (`store migrate`), in one transaction.

use super::*;

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
    pub scorecard_entries: u64,
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
                    Exported::Scorecard(record) => {
                        insert_scorecard_entry(open, &record).await?;
                        done.scorecard_entries += 1;
                    }
                    Exported::Counters {
                        next_sequence,
                        next_event,
                        next_report,
                        next_scorecard_entry: _,
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
pub(super) async fn import_message(
    open: &mut Open,
    sequence: u64,
    m: &MessageRecord,
    status: &StatusRecord,
    payload: &[u8],
) -> Result<(), StoreError> {
    open.execute(
        "INSERT INTO messages (sequence, sender, message_id, recipient, document_type, header_sha256, header, key_id, signature, receipt, accepted_at_ms, payload_length, payload_chunks, log_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        ],
    )
    .await?;
    let ack = (!status.ack.is_empty()).then_some(status.ack.as_slice());
    let states: Vec<i16> = status.transitions.iter().map(|t| t.state as i16).collect();
    let times: Vec<i64> = status.transitions.iter().map(|t| t.at_ms).collect();
    open.execute(
        "INSERT INTO message_states (sequence, recipient, state, states, state_times, ack, ack_log_index) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &to_i64(sequence),
            &m.recipient,
            &(status.state as i16),
            &states,
            &times,
            &ack,
            &to_i64(status.ack_log_index),
        ],
    )
    .await?;
    for (i, chunk) in payload.chunks(PAYLOAD_CHUNK).enumerate() {
        open.payload_rows.sequence.push(to_i64(sequence));
        open.payload_rows.chunk.push(i as i32);
        open.payload_rows.bytes.push(chunk.to_vec());
    }
    Ok(())
}
