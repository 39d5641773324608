//! The hub store's checks: the whole walk of `caravan-hub store check`, and the bounded one
//! the hub runs at start (see `caravan_common::check`).

use prost::Message;

use caravan_common::{
    MessageId, ParticipantId,
    check::{
        NEWEST, Report, check_floors, hex_key, newest, note_floors, read, read_both_ends, scan,
    },
    merkle,
    store::{
        Counter, Engine, StoreError, Table,
        keys::u64_value,
        record::Record,
        segments::{CHECK_BLOCK, Location},
    },
};

use super::{
    Embedded,
    tables::{
        CERTIFICATES, CONFORMANCE_REPORTS, DEDUP, EPOCH, EVENTS, FORMAT_KEY, FORMAT_VERSION, LOG,
        LOG_NODES, MESSAGES, META, NEXT_CONFORMANCE_REPORT, NEXT_EVENT, NEXT_LOG_INDEX,
        NEXT_SCORECARD_ENTRY, NEXT_SEQUENCE, PAYLOADS, QUEUE, REGISTRY, REGISTRY_FLOOR, SCORECARD,
        STATUS, TABLES, TREE_HEADS, chunk_key, dedup_key, node_key, node_value,
    },
};
use crate::store::records::{
    CertificateRecord, ConformanceRecord, LogEntry, MessageRecord, RegistryRecord, ScorecardRecord,
    StatusEvent, StatusRecord, TreeHead,
};

fn message_name(r: &MessageRecord, sequence: u64) -> String {
    format!(
        "message {}/{} (sequence {sequence})",
        r.sender, r.message_id
    )
}

/// The store's Merkle nodes, for roots.
struct EngineNodes<'a>(&'a dyn Engine);

impl merkle::Nodes for EngineNodes<'_> {
    type Error = StoreError;
    fn perfect(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
        node_value(
            self.0.get(LOG_NODES, &node_key(level, index))?,
            level,
            index,
        )
    }
}

impl Embedded {
    fn report(&self) -> Report {
        let engine = self.db.kind().as_str();
        Report::new(&self.path, engine)
    }

    /// A counter of `meta` (`None`: not set yet), or a problem.
    fn counter(&self, report: &mut Report, name: &[u8]) -> Option<u64> {
        let value = read(report, META, self.db.get(META, name))??;
        match u64_value(&value, "counter") {
            Ok(v) => Some(v),
            Err(e) => {
                report.problem(META, String::from_utf8_lossy(name), e.to_string());
                None
            }
        }
    }

    /// Where message `sequence`'s payload is, checked against its record: inside its
    /// segment (and, when `read`, its bytes against their checksums), or its chunks in the
    /// engine.
    fn check_payload(&self, report: &mut Report, sequence: u64, r: &MessageRecord, read: bool) {
        let name = message_name(r, sequence);
        if r.payload_segment == 0 {
            if r.payload_length == 0 {
                return;
            }
            report.payloads.in_engine += 1;
            let mut total = 0u64;
            for index in 0..r.payload_chunks.max(1) {
                match self.db.get(PAYLOADS, &chunk_key(sequence, index)) {
                    Ok(Some(chunk)) => total += chunk.len() as u64,
                    Ok(None) => {
                        report.problem(PAYLOADS, &name, format!("chunk {index} is missing"));
                        return;
                    }
                    Err(e) => {
                        report.problem(PAYLOADS, &name, format!("chunk {index}: {e}"));
                        return;
                    }
                }
            }
            if total != r.payload_length {
                report.problem(
                    PAYLOADS,
                    &name,
                    format!(
                        "its chunks hold {total} bytes, the record says {}",
                        r.payload_length
                    ),
                );
            }
            return;
        }
        let file = self.db.segments().segment_file(r.payload_segment);
        let place = file.display().to_string();
        let end = r.payload_offset.saturating_add(r.payload_length);
        match self.db.segments().segment_len(r.payload_segment) {
            Ok(Some(len)) if end <= len => {}
            Ok(Some(len)) => {
                report.problem(
                    &place,
                    &name,
                    format!(
                        "the payload (offset {}, {} bytes) ends past the segment's {len} bytes",
                        r.payload_offset, r.payload_length
                    ),
                );
                return;
            }
            Ok(None) => {
                report.problem(&place, &name, "the segment file is missing");
                return;
            }
            Err(e) => {
                report.problem(&place, &name, e.to_string());
                return;
            }
        }
        if r.payload_crc32.is_empty() {
            report.payloads.unchecked += 1;
            return;
        }
        if r.payload_crc32.len() as u64 != r.payload_length.div_ceil(CHECK_BLOCK as u64) {
            report.problem(
                &place,
                &name,
                format!(
                    "{} checksums for {} bytes",
                    r.payload_crc32.len(),
                    r.payload_length
                ),
            );
            return;
        }
        if !read {
            return;
        }
        let at = Location {
            segment: r.payload_segment,
            offset: r.payload_offset,
        };
        let mut skip = 0u64;
        while skip < r.payload_length {
            let len = (r.payload_length - skip).min(CHECK_BLOCK as u64) as usize;
            if let Err(e) = self.db.segments().read(at, skip, len, &r.payload_crc32) {
                report.problem(&place, &name, e.to_string());
                return;
            }
            report.payloads.segment_bytes += len as u64;
            skip += len as u64;
        }
        report.payloads.checked += 1;
    }

    /// Walk the whole store: every record of every table decodes, every reference lands,
    /// every payload with checksums matches them, the log's Merkle nodes are those of its
    /// entries and the kept tree heads' roots are the log's. For a stopped hub or a backup.
    pub fn check(&self) -> Report {
        let mut report = self.report();
        let next_sequence = self.counter(&mut report, NEXT_SEQUENCE.key()).unwrap_or(1);
        let log_size = self
            .counter(&mut report, NEXT_LOG_INDEX.key())
            .map_or(0, |n| n.saturating_sub(1));
        self.check_meta(&mut report);

        // Messages and their payloads.
        let walked = scan(
            self.db.engine(),
            MESSAGES,
            &mut report,
            |report, key, value| {
                let Some(sequence) = key.try_into().ok().map(u64::from_be_bytes) else {
                    report.problem(MESSAGES, hex_key(key), "key is not a sequence number");
                    return;
                };
                let record = match <MessageRecord as Record>::decode(value) {
                    Ok(r) => r,
                    Err(e) => {
                        report.problem(MESSAGES, format!("sequence {sequence}"), e.to_string());
                        return;
                    }
                };
                let name = message_name(&record, sequence);
                if sequence >= next_sequence {
                    report.problem(
                        MESSAGES,
                        &name,
                        format!("beyond the next sequence number {next_sequence}"),
                    );
                }
                if record.log_index > log_size {
                    report.problem(
                        MESSAGES,
                        &name,
                        format!(
                            "names log entry {} of a log of {log_size}",
                            record.log_index
                        ),
                    );
                }
                let parsed = record
                    .sender
                    .parse::<ParticipantId>()
                    .ok()
                    .zip(record.message_id.parse::<MessageId>().ok());
                match parsed {
                    None => report.problem(MESSAGES, &name, "sender or message id does not parse"),
                    Some((sender, id)) => match self.db.get(DEDUP, &dedup_key(sender, id)) {
                        Ok(Some(v)) if v == key => {}
                        Ok(_) => report.problem(DEDUP, &name, "the dedup index does not name it"),
                        Err(e) => report.problem(DEDUP, &name, e.to_string()),
                    },
                }
                match self.db.get(STATUS, key) {
                    Ok(Some(_)) => {}
                    Ok(None) => report.problem(STATUS, &name, "its status is missing"),
                    Err(e) => report.problem(STATUS, &name, e.to_string()),
                }
                self.check_payload(report, sequence, &record, true);
            },
        );
        read(&mut report, MESSAGES, walked);

        let message_exists =
            |report: &mut Report, table: Table, key: &[u8], sequence: &[u8]| match self
                .db
                .get(MESSAGES, sequence)
            {
                Ok(Some(_)) => {}
                Ok(None) => report.problem(
                    table,
                    hex_key(key),
                    format!("names message {}, which is missing", hex_key(sequence)),
                ),
                Err(e) => report.problem(table, hex_key(key), e.to_string()),
            };
        let walked = scan(
            self.db.engine(),
            PAYLOADS,
            &mut report,
            |report, key, _| match key.get(..8).filter(|_| key.len() == 12) {
                Some(sequence) => message_exists(report, PAYLOADS, key, sequence),
                None => report.problem(PAYLOADS, hex_key(key), "key is not sequence + chunk"),
            },
        );
        read(&mut report, PAYLOADS, walked);
        let walked = scan(
            self.db.engine(),
            DEDUP,
            &mut report,
            |report, key, value| {
                if key.len() != 18 || value.len() != 8 {
                    report.problem(DEDUP, hex_key(key), "not id + sender -> sequence");
                } else {
                    message_exists(report, DEDUP, key, value);
                }
            },
        );
        read(&mut report, DEDUP, walked);
        let walked = scan(
            self.db.engine(),
            QUEUE,
            &mut report,
            |report, key, _| match key.get(2..).filter(|_| key.len() == 10) {
                Some(sequence) => message_exists(report, QUEUE, key, sequence),
                None => report.problem(QUEUE, hex_key(key), "key is not recipient + sequence"),
            },
        );
        read(&mut report, QUEUE, walked);
        let walked = scan(
            self.db.engine(),
            STATUS,
            &mut report,
            |report, key, value| {
                if let Err(e) = <StatusRecord as Record>::decode(value) {
                    report.problem(STATUS, hex_key(key), e.to_string());
                }
            },
        );
        read(&mut report, STATUS, walked);
        let walked = scan(
            self.db.engine(),
            EVENTS,
            &mut report,
            |report, key, value| {
                if key.len() != 10 {
                    report.problem(EVENTS, hex_key(key), "key is not sender + cursor");
                } else if let Err(e) = <StatusEvent as Record>::decode(value) {
                    report.problem(EVENTS, hex_key(key), e.to_string());
                }
            },
        );
        read(&mut report, EVENTS, walked);
        let walked = scan(
            self.db.engine(),
            REGISTRY,
            &mut report,
            |report, key, value| {
                let decoded = <RegistryRecord as Record>::decode(value)
                    .map_err(|e| e.to_string())
                    .and_then(|r| {
                        caravan_proto::v1::SignedTrustList::decode(r.signed_trust_list.as_slice())
                            .map_err(|e| format!("its signed trust list: {e}"))
                    });
                if let Err(e) = decoded {
                    report.problem(REGISTRY, String::from_utf8_lossy(key), e);
                }
            },
        );
        read(&mut report, REGISTRY, walked);
        let walked = scan(
            self.db.engine(),
            CERTIFICATES,
            &mut report,
            |report, key, value| {
                if let Err(e) = <CertificateRecord as Record>::decode(value) {
                    report.problem(CERTIFICATES, String::from_utf8_lossy(key), e.to_string());
                }
            },
        );
        read(&mut report, CERTIFICATES, walked);
        self.check_signed_records(
            &mut report,
            log_size,
            (CONFORMANCE_REPORTS, NEXT_CONFORMANCE_REPORT, "report"),
            |value| {
                let r = <ConformanceRecord as Record>::decode(value)?;
                let complete = !r.report_json.is_empty() && r.signature.len() == 64;
                Ok((r.id, r.log_index, complete))
            },
        );
        self.check_signed_records(
            &mut report,
            log_size,
            (SCORECARD, NEXT_SCORECARD_ENTRY, "scorecard entry"),
            |value| {
                let r = <ScorecardRecord as Record>::decode(value)?;
                let complete = !r.entry_json.is_empty() && r.signature.len() == 64;
                Ok((r.id, r.log_index, complete))
            },
        );

        self.check_log(&mut report, log_size);
        report
    }

    /// Every record the hub signed and logged (conformance reports, scorecard entries)
    /// decodes, is kept under its own id, below the counter's next id, names a log entry the
    /// log holds, and carries its body and a signature (`admin conformance show` and the
    /// scorecard verify the signatures with the hub's keys). `read` gives a record's id, log
    /// index, and whether its body and signature are there.
    fn check_signed_records(
        &self,
        report: &mut Report,
        log_size: u64,
        (table, counter, what): (Table, Counter, &str),
        read_record: impl Fn(&[u8]) -> Result<(u64, u64, bool), StoreError>,
    ) {
        let next = self.counter(report, counter.key()).unwrap_or(1);
        let walked = scan(self.db.engine(), table, report, |report, key, value| {
            let Some(id) = key.try_into().ok().map(u64::from_be_bytes) else {
                report.problem(table, hex_key(key), format!("key is not a {what} id"));
                return;
            };
            let place = format!("{what} {id}");
            let (own, log_index, complete) = match read_record(value) {
                Ok(r) => r,
                Err(e) => {
                    report.problem(table, &place, e.to_string());
                    return;
                }
            };
            if own != id {
                report.problem(
                    table,
                    &place,
                    format!("kept under another id than its own {own}"),
                );
            }
            if id >= next {
                report.problem(table, &place, format!("beyond the next {what} id {next}"));
            }
            if log_index == 0 || log_index > log_size {
                report.problem(
                    table,
                    &place,
                    format!("names log entry {log_index} of a log of {log_size}"),
                );
            }
            if !complete {
                report.problem(
                    table,
                    &place,
                    format!("its {what} or the hub's signature is missing"),
                );
            }
        });
        read(report, table, walked);
    }

    /// The format version and the epoch.
    fn check_meta(&self, report: &mut Report) {
        // (A store of version 0 has none: the upgrade records it.)
        if let Some(v) = self
            .counter(report, FORMAT_KEY)
            .filter(|v| *v > FORMAT_VERSION)
        {
            report.problem(
                META,
                "format_version",
                format!("{v} is newer than this binary's {FORMAT_VERSION}"),
            );
        }
        self.counter(report, NEXT_EVENT.key());
        self.counter(report, NEXT_CONFORMANCE_REPORT.key());
        self.counter(report, NEXT_SCORECARD_ENTRY.key());
        self.counter(report, REGISTRY_FLOOR);
        // (A new store has none yet: the upgrade makes it.)
        if let Some(Some(epoch)) = read(report, META, self.db.get(META, EPOCH))
            && std::str::from_utf8(&epoch).is_err()
        {
            report.problem(META, "epoch", "not text");
        }
    }

    /// Every log entry decodes, in order from 1 without a gap, up to the log's size; the
    /// stored Merkle nodes are those the entries make (recomputed here), and each kept tree
    /// head's root is the root of the entries it covers.
    fn check_log(&self, report: &mut Report, log_size: u64) {
        // The newest node of each level: the left sibling the next node at that level needs.
        let mut frontier: Vec<Option<(u64, merkle::Hash)>> = Vec::new();
        let mut expected = 1u64;
        let mut nodes = 0u64;
        let walked = scan(self.db.engine(), LOG, report, |report, key, value| {
            let Some(index) = key.try_into().ok().map(u64::from_be_bytes) else {
                report.problem(LOG, hex_key(key), "key is not an index");
                return;
            };
            if index != expected {
                report.problem(
                    LOG,
                    format!("entry {expected}"),
                    format!("missing: the log jumps to {index}"),
                );
                // The nodes after a gap cannot be recomputed.
                expected = u64::MAX;
                return;
            }
            expected += 1;
            if let Err(e) = LogEntry::decode(value) {
                report.problem(LOG, format!("entry {index}"), e.to_string());
            }
            let appended =
                merkle::appended_nodes(index - 1, merkle::leaf_hash(value), |l, i| match frontier
                    .get(l as usize)
                    .copied()
                    .flatten()
                {
                    Some((at, hash)) if at == i => Ok(hash),
                    _ => Err(()),
                });
            let Ok(appended) = appended else { return };
            for (level, i, hash) in appended {
                if frontier.len() <= level as usize {
                    frontier.resize(level as usize + 1, None);
                }
                frontier[level as usize] = Some((i, hash));
                nodes += 1;
                match self.db.get(LOG_NODES, &node_key(level, i)) {
                    Ok(Some(stored)) if stored == hash => {}
                    Ok(Some(_)) => report.problem(
                        LOG_NODES,
                        format!("level {level} index {i}"),
                        format!("does not match the entries (entry {index} or an earlier one was changed)"),
                    ),
                    Ok(None) => report.problem(
                        LOG_NODES,
                        format!("level {level} index {i}"),
                        format!("missing (completed by entry {index})"),
                    ),
                    Err(e) => report.problem(LOG_NODES, format!("level {level} index {i}"), e.to_string()),
                }
            }
        });
        if read(report, LOG, walked).is_none() {
            return;
        }
        let entries = expected.saturating_sub(1);
        if expected != u64::MAX && entries != log_size {
            report.problem(
                LOG,
                format!(
                    "entries {}..{}",
                    entries.min(log_size) + 1,
                    entries.max(log_size)
                ),
                format!("the log holds {entries} entries, its counter says {log_size}"),
            );
        }
        let stored = read(report, LOG_NODES, self.db.len(LOG_NODES)).unwrap_or(nodes);
        if expected != u64::MAX && stored != nodes {
            report.problem(
                LOG_NODES,
                "",
                format!("{stored} stored, the entries make {nodes}"),
            );
        }
        *report.records.entry(LOG_NODES.name()).or_default() = stored;
        let walked = scan(
            self.db.engine(),
            TREE_HEADS,
            report,
            |report, key, value| {
                let head = match <TreeHead as Record>::decode(value) {
                    Ok(h) => h,
                    Err(e) => {
                        report.problem(TREE_HEADS, hex_key(key), e.to_string());
                        return;
                    }
                };
                let place = format!("head of size {}", head.tree_size);
                if key != head.tree_size.to_be_bytes() {
                    report.problem(TREE_HEADS, &place, "kept under another size");
                }
                if head.tree_size > log_size {
                    report.problem(
                        TREE_HEADS,
                        &place,
                        format!("the log holds only {log_size} entries"),
                    );
                    return;
                }
                match merkle::root_of(&EngineNodes(self.db.engine()), head.tree_size) {
                    Ok(root) if root.as_slice() == head.root_hash.as_slice() => {}
                    Ok(_) => report.problem(
                        TREE_HEADS,
                        &place,
                        "its root is not the log's: an entry it covers was changed",
                    ),
                    Err(e) => report.problem(TREE_HEADS, &place, e.to_string()),
                }
            },
        );
        read(report, TREE_HEADS, walked);
    }

    /// Note `log_entries` beside the store (`caravan_common::check::note_floors`), for
    /// [`Self::check_at_start`] to compare with next time ([`Backend::note_floors`]).
    pub(super) fn write_floors(&self, log_entries: u64) -> Result<(), StoreError> {
        note_floors(&self.path, &[("log_entries", log_entries)]).map_err(StoreError::io(&self.path))
    }

    /// The bounded check before the hub starts: every table reads at both ends, the format
    /// and counter records decode, and the newest messages, log entries and tree head hold
    /// (their payloads inside their segments, the entries' leaves stored, the head's root the
    /// log's). Not the whole walk: that is `store check`.
    pub fn check_at_start(&self) -> Report {
        let mut report = self.report();
        let next_sequence = self.counter(&mut report, NEXT_SEQUENCE.key()).unwrap_or(1);
        let log_size = self
            .counter(&mut report, NEXT_LOG_INDEX.key())
            .map_or(0, |n| n.saturating_sub(1));
        self.check_meta(&mut report);
        let engine = self.db.engine();
        read_both_ends(engine, TABLES, &mut report);
        for (key, value) in newest(engine, MESSAGES, NEWEST, &mut report) {
            let sequence = key
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            match <MessageRecord as Record>::decode(&value) {
                Ok(r) if sequence < next_sequence => {
                    self.check_payload(&mut report, sequence, &r, false)
                }
                Ok(r) => report.problem(
                    MESSAGES,
                    message_name(&r, sequence),
                    format!("beyond the next sequence number {next_sequence}"),
                ),
                Err(e) => report.problem(MESSAGES, format!("sequence {sequence}"), e.to_string()),
            }
        }
        check_floors(&self.path, &[("log_entries", log_size)], &mut report);
        let entries = newest(engine, LOG, NEWEST, &mut report);
        let last = entries
            .first()
            .and_then(|(k, _)| k.as_slice().try_into().ok())
            .map(u64::from_be_bytes);
        if last.unwrap_or(0) != log_size {
            report.problem(
                LOG,
                format!("entry {log_size}"),
                format!(
                    "the newest entry is {}, the log's counter says {log_size}",
                    last.unwrap_or(0)
                ),
            );
        }
        // A store of version 0 may have no Merkle nodes yet (the upgrade computes them).
        let has_nodes = self.counter(&mut report, FORMAT_KEY).is_some();
        for (key, value) in &entries {
            let index = key
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if let Err(e) = LogEntry::decode(value.as_slice()) {
                report.problem(LOG, format!("entry {index}"), e.to_string());
            }
            if !has_nodes {
                continue;
            }
            let leaf = self
                .db
                .get(LOG_NODES, &node_key(0, index.saturating_sub(1)));
            match read(&mut report, LOG_NODES, leaf) {
                Some(Some(hash)) if hash == merkle::leaf_hash(value) => {}
                Some(_) => report.problem(
                    LOG,
                    format!("entry {index}"),
                    "does not match its leaf in log_nodes: it was changed",
                ),
                None => {}
            }
        }
        let head = newest(engine, TREE_HEADS, 1, &mut report);
        if let Some((_, value)) = head.first().filter(|_| has_nodes) {
            match <TreeHead as Record>::decode(value) {
                Ok(h) if h.tree_size > log_size => report.problem(
                    TREE_HEADS,
                    format!("head of size {}", h.tree_size),
                    format!("the log holds only {log_size} entries"),
                ),
                Ok(h) => match merkle::root_of(&EngineNodes(engine), h.tree_size) {
                    Ok(root) if root.as_slice() == h.root_hash.as_slice() => {}
                    Ok(_) => report.problem(
                        TREE_HEADS,
                        format!("head of size {}", h.tree_size),
                        "its root is not the log's",
                    ),
                    Err(e) => report.problem(
                        TREE_HEADS,
                        format!("head of size {}", h.tree_size),
                        e.to_string(),
                    ),
                },
                Err(e) => report.problem(TREE_HEADS, "newest", e.to_string()),
            }
        }
        report
    }
}
