//! Everything an embedded store holds, as typed records in the order a new store takes them
//! (`store migrate` into PostgreSQL, see `crate::migrate`): the log first, so that the records
//! naming its entries find them. And the other whole walk of the messages, the scorecard's.

use caravan_common::{
    Timestamp,
    store::{Counter, StoreError, keys::u64_value, record::Record},
};

use super::{
    Embedded, MessageRecord, StatusEvent, StatusRecord,
    tables::{
        EVENTS, MESSAGES, NEXT_CONFORMANCE_REPORT, NEXT_EVENT, NEXT_SCORECARD_ENTRY, NEXT_SEQUENCE,
        REGISTRY_FLOOR, STATUS,
    },
};
use crate::store::{
    Backend, CertificateRecord, ConformanceRecord, ExchangeFact, MessageState, RegistryRecord,
    ScorecardRecord, TreeHead,
};

/// One record of an exported store.
pub enum Exported {
    /// An entry of the exchange log, encoded, in order from index 1.
    LogEntry {
        index: u64,
        entry: Vec<u8>,
    },
    /// A message with its status and its payload.
    Message {
        sequence: u64,
        record: Box<MessageRecord>,
        status: StatusRecord,
        payload: Vec<u8>,
    },
    /// A sender's status event, by cursor.
    Event {
        sender: String,
        cursor: u64,
        event: StatusEvent,
    },
    TreeHead(TreeHead),
    Registry(RegistryRecord),
    Certificate(CertificateRecord),
    Conformance(ConformanceRecord),
    Scorecard(ScorecardRecord),
    /// The numbers the store hands out next, its epoch and its registry version floor.
    Counters {
        next_sequence: u64,
        next_event: u64,
        next_report: u64,
        next_scorecard_entry: u64,
        epoch: String,
        registry_floor: u64,
    },
}

const BATCH: usize = 512;

/// What is done with each key and value of a table.
type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

impl Embedded {
    /// Pass every record of the store to `into`, in the order of [`Exported`]'s variants.
    pub fn export(
        &self,
        into: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut from = 1;
        loop {
            let entries = self.log_entries(from, BATCH)?;
            let done = entries.len() < BATCH;
            for (index, entry) in entries {
                from = index + 1;
                into(Exported::LogEntry { index, entry })?;
            }
            if done {
                break;
            }
        }
        self.each(MESSAGES, &mut |key, value| {
            let sequence = u64_value(key, "message")?;
            let record = <MessageRecord as Record>::decode(value)?;
            let status = self
                .db
                .get(STATUS, key)?
                .map(|b| <StatusRecord as Record>::decode(&b))
                .transpose()?
                .unwrap_or_default();
            let mut payload = Vec::with_capacity(record.payload_length as usize);
            let mut reader = self.payload_reader(sequence)?;
            for index in 0..record.payload_chunks {
                let chunk = reader.chunk(index)?.ok_or_else(|| {
                    StoreError::corrupt(
                        "payload",
                        format!("chunk {index} of {sequence} is missing"),
                    )
                })?;
                payload.extend_from_slice(&chunk);
            }
            drop(reader);
            into(Exported::Message {
                sequence,
                record: Box::new(record),
                status,
                payload,
            })
        })?;
        self.each(EVENTS, &mut |key, value| {
            into(Exported::Event {
                sender: String::from_utf8_lossy(&key[..2]).into_owned(),
                cursor: u64_value(&key[2..], "event")?,
                event: <StatusEvent as Record>::decode(value)?,
            })
        })?;
        for head in self.tree_heads()? {
            into(Exported::TreeHead(head))?;
        }
        if let Some(registry) = self.registry()? {
            into(Exported::Registry(registry))?;
        }
        for certificate in self.certificates()? {
            into(Exported::Certificate(certificate))?;
        }
        for report in self.conformance_reports()? {
            into(Exported::Conformance(report))?;
        }
        for entry in self.scorecard_entries()? {
            into(Exported::Scorecard(entry))?;
        }
        let next = |c: Counter| -> Result<u64, StoreError> {
            Ok(c.next(&self.db)?.unwrap_or(Counter::FIRST))
        };
        into(Exported::Counters {
            next_sequence: next(NEXT_SEQUENCE)?,
            next_event: next(NEXT_EVENT)?,
            next_report: next(NEXT_CONFORMANCE_REPORT)?,
            next_scorecard_entry: next(NEXT_SCORECARD_ENTRY)?,
            epoch: self.epoch()?,
            registry_floor: self
                .meta_u64(REGISTRY_FLOOR, "registry version floor")?
                .unwrap_or(0),
        })
    }

    /// What the scorecard measures of every message accepted at or after `since`
    /// (`Backend::exchange_facts`): the messages walked, each with its status.
    pub(super) fn walk_facts(
        &self,
        since: Timestamp,
        visit: &mut dyn FnMut(ExchangeFact),
    ) -> Result<(), StoreError> {
        let since = since.as_millis();
        self.each(MESSAGES, &mut |key, value| {
            let m = <MessageRecord as Record>::decode(value)?;
            if m.accepted_at_ms < since {
                return Ok(());
            }
            let status = self
                .db
                .get(STATUS, key)?
                .map(|b| <StatusRecord as Record>::decode(&b))
                .transpose()?
                .unwrap_or_default();
            visit(ExchangeFact::of(
                m.sender,
                m.recipient,
                m.document_type,
                m.accepted_at_ms,
                status.current(),
                status.transitions.iter().map(|t| {
                    (
                        MessageState::try_from(t.state).unwrap_or(MessageState::Unspecified),
                        t.at_ms,
                    )
                }),
                status.ack,
            ));
            Ok(())
        })
    }

    /// Every pair of `table`, in key order, a batch at a time.
    pub(super) fn each(
        &self,
        table: caravan_common::store::Table,
        f: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let mut from = Vec::new();
        loop {
            let pairs = self.db.range(table, &from, None, BATCH, false)?;
            for (key, value) in &pairs {
                f(key, value)?;
            }
            match pairs.last() {
                Some((key, _)) if pairs.len() == BATCH => {
                    from = key.clone();
                    from.push(0);
                }
                _ => return Ok(()),
            }
        }
    }
}
