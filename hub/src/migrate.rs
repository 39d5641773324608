//! Moving a stopped hub's store to another engine (`caravan-hub store migrate`): copy, check,
//! audit.
//!
//! A store is never converted in place: every record of every table and the payload segments
//! are copied into a new store, in the folder and on the engine a second configuration names,
//! and the old store is left as it was (the operator switches configurations, and removes the
//! old folder when satisfied). The copy is then walked whole (`store check`) and its exchange
//! log audited against its signed tree heads (`log verify`), so that a move that lost or
//! changed anything is reported before the hub runs on it.
//!
//! Into PostgreSQL ([`migrate_to_postgres`]) the records go typed, in one transaction, into a
//! database that holds no hub's store yet; the Merkle nodes are computed anew from the log's
//! entries as they are taken, so the audit that follows checks the copied log against the
//! signed heads copied with it, and the counts against the source's.

use std::path::{Path, PathBuf};

use serde::Serialize;

use caravan_common::{
    check::Report,
    signing::PublicKey,
    store::{self, EngineKind, Migrated},
};

use crate::{
    log::{self, Audit, AuditError},
    store::{Backend, Embedded, Postgres, PostgresSettings, StoreError, TABLES},
};

/// Why a move did not happen, or did not hold.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source could not be opened: no store there, or a running hub holds it.
    #[error("cannot open the store in {}: {source} (is the hub running? stop it first: the store has one owner)", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// The copy failed (the target holds something already, the disk is full, ...).
    #[error("the store was not moved: {0}")]
    Copy(#[source] StoreError),
    /// The copy fails its check or its audit: the old store is untouched, the new one is left
    /// for inspection.
    #[error("the moved store in {} does not hold: {}; the old store is untouched", path.display(), problems.join("; "))]
    Unsound {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// What a move did.
#[derive(Debug, Serialize)]
pub struct Moved {
    pub from: PathBuf,
    pub to: PathBuf,
    pub from_engine: EngineKind,
    pub to_engine: EngineKind,
    /// Key-value records copied.
    pub records: u64,
    /// Bytes of payload segments copied.
    pub segment_bytes: u64,
    /// The exchange log of the new store, audited.
    pub log: Audit,
}

/// Copy the stopped store in folder `from` into a new store in folder `to` on `engine`
/// (`None`: the default for a new store), then check the copy whole and audit its log with
/// `anchor` (the key that signed its trust list).
pub fn migrate(
    from: &Path,
    to: &Path,
    engine: Option<EngineKind>,
    anchor: &PublicKey,
) -> Result<Moved, MigrateError> {
    let source = |e| MigrateError::Source {
        path: from.to_path_buf(),
        source: e,
    };
    if EngineKind::detect(from).is_none() {
        return Err(source(StoreError::NoStore(from.to_path_buf())));
    }
    let Migrated {
        from: from_engine,
        to: to_engine,
        records,
        segment_bytes,
    } = match store::migrate(from, to, engine.unwrap_or_default(), TABLES) {
        Ok(done) => done,
        Err(e @ StoreError::NotEmpty(_)) => return Err(MigrateError::Copy(e)),
        Err(e) if EngineKind::detect(to).is_none() => return Err(source(e)),
        Err(e) => return Err(MigrateError::Copy(e)),
    };
    let unsound = |problems| MigrateError::Unsound {
        path: to.to_path_buf(),
        problems,
    };
    let moved = Embedded::open_found(to, 64 << 20)
        .map_err(MigrateError::Copy)?
        .ok_or_else(|| MigrateError::Copy(StoreError::NoStore(to.to_path_buf())))?;
    let report: Report = moved.check();
    if !report.is_sound() {
        return Err(unsound(vec![report.summary()]));
    }
    let (audit, _) = match log::audit_stored(&moved, anchor) {
        Ok(audited) => audited,
        Err(AuditError::Store(e)) => return Err(MigrateError::Copy(e)),
        Err(e @ AuditError::TrustList { .. }) => return Err(unsound(vec![e.to_string()])),
    };
    if !audit.problems.is_empty() {
        return Err(unsound(audit.problems));
    }
    Ok(Moved {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        from_engine,
        to_engine,
        records,
        segment_bytes,
        log: audit,
    })
}

/// What a move into PostgreSQL did.
#[derive(Debug, Serialize)]
pub struct MovedToDatabase {
    pub from: PathBuf,
    pub from_engine: EngineKind,
    /// The database, without a password.
    pub to: String,
    pub imported: crate::store::postgres::Imported,
    /// The exchange log in the database, audited.
    pub log: Audit,
}

/// Copy the stopped store in folder `from` into the empty PostgreSQL database `settings`
/// names, then audit the log there with `anchor` and compare what arrived with the source.
pub fn migrate_to_postgres(
    from: &Path,
    settings: PostgresSettings,
    anchor: &PublicKey,
) -> Result<MovedToDatabase, MigrateError> {
    let source_error = |e| MigrateError::Source {
        path: from.to_path_buf(),
        source: e,
    };
    let source = Embedded::open_found(from, 64 << 20)
        .map_err(source_error)?
        .ok_or_else(|| source_error(StoreError::NoStore(from.to_path_buf())))?;
    let to = crate::store::postgres::redact(&settings.url);
    let target = Postgres::open(settings).map_err(MigrateError::Copy)?;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let (exported, imported) = std::thread::scope(|scope| {
        let exporter = scope.spawn(move || {
            source.export(&mut |record| {
                tx.blocking_send(record)
                    .map_err(|_| StoreError::Stopped("the import ended early"))
            })
        });
        let imported = target.import(rx);
        (exporter.join(), imported)
    });
    let exported = exported.map_err(|_| MigrateError::Copy(StoreError::Stopped("the export")))?;
    // The import's own error says why it stopped; the export's follows from it then.
    let imported = imported.map_err(MigrateError::Copy)?;
    exported.map_err(MigrateError::Copy)?;
    let unsound = |problems| MigrateError::Unsound {
        path: PathBuf::from(&to),
        problems,
    };
    let source = Embedded::open_found(from, 64 << 20)
        .map_err(source_error)?
        .ok_or_else(|| source_error(StoreError::NoStore(from.to_path_buf())))?;
    let mut problems = Vec::new();
    let expect = |what: &str, here: u64, there: u64, problems: &mut Vec<String>| {
        if here != there {
            problems.push(format!(
                "{what}: {here} in the store, {there} in the database"
            ));
        }
    };
    expect(
        "log entries",
        source.log_size().map_err(source_error)?,
        target.log_size().map_err(MigrateError::Copy)?,
        &mut problems,
    );
    expect(
        "tree heads",
        source.tree_heads().map_err(source_error)?.len() as u64,
        imported.tree_heads,
        &mut problems,
    );
    expect(
        "scorecard entries",
        source.scorecard_entries().map_err(source_error)?.len() as u64,
        imported.scorecard_entries,
        &mut problems,
    );
    if source.registry().map_err(source_error)? != target.registry().map_err(MigrateError::Copy)? {
        problems.push("the registry differs".into());
    }
    let (audit, _) = match log::audit_stored(&target, anchor) {
        Ok(audited) => audited,
        Err(AuditError::Store(e)) => return Err(MigrateError::Copy(e)),
        Err(e @ AuditError::TrustList { .. }) => return Err(unsound(vec![e.to_string()])),
    };
    problems.extend(audit.problems.iter().cloned());
    if !problems.is_empty() {
        return Err(unsound(problems));
    }
    Ok(MovedToDatabase {
        from: from.to_path_buf(),
        from_engine: source.engine_kind(),
        to,
        imported,
        log: audit,
    })
}
