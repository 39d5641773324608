//! What a store check found, for the hub's and the spokes' `store check` and their checks at
//! start: counts of what was read, and each problem with its exact place.
//!
//! A store check reads a stopped process's store (or a backup) whole: every record of every
//! table decodes, every reference (a payload's place in its segment) lands inside what exists,
//! every payload kept with checksums matches them. The check at start is the bounded part of
//! it: tables open, the format and counter records decode, the newest records hold.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{Engine, Pairs, StoreError, Table};

/// One thing wrong, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The table, or the segment file.
    pub place: String,
    /// The record's key, or the document it belongs to, as an operator would look it up.
    pub record: String,
    pub detail: String,
}

/// Payloads by how they are guarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Payloads {
    /// In segments, with checksums, all read and checked.
    pub checked: u64,
    /// In segments, written before checksums: read (they are there), not checked.
    pub unchecked: u64,
    /// Kept in the engine, guarded by the engine's own checksums (redb checksums its pages).
    pub in_engine: u64,
    /// Bytes read from segments.
    pub segment_bytes: u64,
}

/// The outcome of a store check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub store: String,
    pub engine: String,
    /// Records read, by table.
    pub records: BTreeMap<&'static str, u64>,
    pub payloads: Payloads,
    /// Empty when all is well.
    pub problems: Vec<Problem>,
}

/// A check stops recording problems past this many (a store broken throughout would otherwise
/// print millions of lines); it still counts them.
const PROBLEMS_KEPT: usize = 1000;

impl Report {
    pub fn new(store: &std::path::Path, engine: &str) -> Self {
        Self {
            store: store.display().to_string(),
            engine: engine.to_owned(),
            ..Self::default()
        }
    }

    pub fn problem(
        &mut self,
        place: impl Into<String>,
        record: impl Into<String>,
        detail: impl Into<String>,
    ) {
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(Problem {
                place: place.into(),
                record: record.into(),
                detail: detail.into(),
            });
        }
    }

    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems on one line, for a refusal to start.
    pub fn summary(&self) -> String {
        self.problems
            .iter()
            .map(|p| format!("{} {}: {}", p.place, p.record, p.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The report as lines of text: one per problem, then the counts.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.problems {
            out.push(format!("PROBLEM {} {}: {}", p.place, p.record, p.detail));
        }
        let records: Vec<String> = self
            .records
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        out.push(format!(
            "{} store {}: records read: {}",
            self.engine,
            self.store,
            records.join(", ")
        ));
        let p = &self.payloads;
        out.push(format!(
            "payloads: {} checked against their checksums ({} bytes), {} unchecked (written before checksums), {} kept in the engine (its own checksums)",
            p.checked, p.segment_bytes, p.unchecked, p.in_engine
        ));
        out.push(if self.is_sound() {
            "the store is sound".to_owned()
        } else {
            format!(
                "THE STORE IS DAMAGED: {} problem(s); restore it from a backup (see the runbook)",
                self.problems.len()
            )
        });
        out
    }
}

/// The file, beside a store's engine files, that keeps [`note_floors`]'s counters.
pub const FLOORS_FILE: &str = "counter-floors";

/// Note counters of a store that only ever grow (the hub's log size, a spoke's arrival and
/// outbox numbers), at start once the store is checked and after the final flush at a clean
/// stop, for [`check_floors`] next time. sled reads a database file whose middle or tail is
/// garbled as an older, shorter store, without an error (measured: a hub store of 12 log entries
/// came back with 7, and with 0); a store whose counters went back lost committed data.
pub fn note_floors(store: &std::path::Path, counters: &[(&str, u64)]) -> std::io::Result<()> {
    let text: String = counters
        .iter()
        .map(|(name, value)| format!("{name} {value}\n"))
        .collect();
    let file = store.join(FLOORS_FILE);
    let temporary = store.join(format!("{FLOORS_FILE}.new"));
    std::fs::write(&temporary, text)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, &file)
}

/// A problem in `report` for each counter below what [`note_floors`] noted (none without the
/// file: a new store, or one restored from a backup).
pub fn check_floors(store: &std::path::Path, counters: &[(&str, u64)], report: &mut Report) {
    let Ok(text) = std::fs::read_to_string(store.join(FLOORS_FILE)) else {
        return;
    };
    for line in text.lines() {
        let Some((name, floor)) = line
            .split_once(' ')
            .and_then(|(n, v)| Some((n, v.trim().parse::<u64>().ok()?)))
        else {
            continue;
        };
        if let Some((_, now)) = counters.iter().find(|(n, _)| *n == name)
            && *now < floor
        {
            report.problem(
                FLOORS_FILE,
                name,
                format!(
                    "the store is at {now} but was at {floor} when the process last started or stopped: the database lost committed data (a damaged file the engine read as an older one)"
                ),
            );
        }
    }
}

/// Keys read per range request while walking a table.
const SCAN_BATCH: usize = 1024;

/// Call `each` with every pair of `table`, in key order, a batch at a time (never the whole
/// table in memory); a pair is counted in `report` under `table`.
pub fn scan(
    engine: &dyn Engine,
    table: Table,
    report: &mut Report,
    mut each: impl FnMut(&mut Report, &[u8], &[u8]),
) -> Result<(), StoreError> {
    let mut from = Vec::new();
    loop {
        let batch = engine.range(table, &from, None, SCAN_BATCH, false)?;
        for (key, value) in &batch {
            *report.records.entry(table.name()).or_default() += 1;
            each(report, key, value);
        }
        match batch.last() {
            Some((key, _)) if batch.len() == SCAN_BATCH => {
                // The smallest key after `key`.
                from = key.clone();
                from.push(0);
            }
            _ => return Ok(()),
        }
    }
}

/// `value`, or a problem in `place` (an engine error reading it).
pub fn read<T>(
    report: &mut Report,
    place: impl Into<String>,
    value: Result<T, StoreError>,
) -> Option<T> {
    match value {
        Ok(v) => Some(v),
        Err(e) => {
            report.problem(place, "", format!("cannot be read: {e}"));
            None
        }
    }
}

/// Records a check at start reads from the newest end of the tables that grow.
pub const NEWEST: usize = 16;

/// The first step of every check at start: each of `tables` reads at both ends (its first and
/// its last record), so that a table the engine cannot read stops the start, not a request
/// later; each failure is a problem in that table.
pub fn read_both_ends(engine: &dyn Engine, tables: &[Table], report: &mut Report) {
    for &table in tables {
        for reverse in [false, true] {
            read(report, table, engine.range(table, &[], None, 1, reverse));
        }
    }
}

/// The newest `n` records of `table`, newest first, for a check at start to look at closely
/// (none, and a problem in the table, when they cannot be read).
pub fn newest(engine: &dyn Engine, table: Table, n: usize, report: &mut Report) -> Pairs {
    read(report, table, engine.range(table, &[], None, n, true)).unwrap_or_default()
}

/// Keys as an operator reads them: hex.
pub fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, EngineKind};

    const GROWS: Table = Table::new(0, "grows");
    const EMPTY: Table = Table::new(1, "empty");
    const TABLES: &[Table] = &[GROWS, EMPTY];

    #[test]
    fn the_start_check_reads_every_table_and_the_newest_records_first() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [EngineKind::Sled, EngineKind::Redb] {
            let db =
                Db::open(&dir.path().join(kind.as_str()), Some(kind), TABLES, 8 << 20).unwrap();
            for i in 0u8..20 {
                db.put(GROWS, &[i], &[i]).unwrap();
            }
            let mut report = Report::new(dir.path(), kind.as_str());
            read_both_ends(db.engine(), TABLES, &mut report);
            let records = newest(db.engine(), GROWS, NEWEST, &mut report);
            let keys: Vec<u8> = records.iter().map(|(k, _)| k[0]).collect();
            assert_eq!(keys, (4u8..20).rev().collect::<Vec<_>>());
            assert!(newest(db.engine(), EMPTY, NEWEST, &mut report).is_empty());
            assert!(report.is_sound(), "{:?}", report.problems);
        }
    }

    #[test]
    fn an_engine_error_is_a_problem_in_its_table() {
        let mut report = Report::default();
        let value: Result<u8, StoreError> = Err(StoreError::engine(std::io::Error::other("EIO")));
        assert_eq!(read(&mut report, GROWS, value), None);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].place, "grows");
        assert!(report.problems[0].detail.starts_with("cannot be read: "));
        assert_eq!(read(&mut report, GROWS, Ok(7)), Some(7));
        assert_eq!(report.problems.len(), 1);
    }
}
