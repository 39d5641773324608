//! `caravan-hub store ...`: commands on the stopped hub's store (it has one owner) or on a
//! backup; a new store command is one more variant of [`StoreCommand`] and one more arm of
//! [`command`].

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Subcommand;

use caravan_hub::{
    Config,
    store::{Backend, Embedded, Postgres},
};

use super::exit::{load_config, verdict};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Walk the whole store and report what is wrong, with exact locations.
    Check {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        /// A backup folder (`admin backup`) instead of the hub's store.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Copy the stopped hub's store into the store another configuration describes (its
    /// `data_dir` and `store_engine`: the other engine, or a PostgreSQL database that holds no
    /// hub's store yet), then check it and verify its log. The old store is left untouched; a
    /// target folder that holds anything, or a database that holds a store, is refused. Exit
    /// 0 only if the moved store holds.
    Migrate {
        /// The configuration the hub runs with now.
        #[arg(long)]
        from: PathBuf,
        /// The configuration to run with after the move.
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// After the hub's PostgreSQL database was restored to an earlier point (a base backup and
    /// WAL, or a dump), before any replica starts on it: give the store a new epoch (spokes
    /// then resubmit what the hub no longer knows) and the trust-list version the registry
    /// must move beyond (the newest any spoke holds: `caravan-spoke trust-list show`), then
    /// audit its log. Not for an embedded store: `caravan-hub restore` does all of this.
    Restored {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        /// The newest trust-list version any spoke holds.
        #[arg(long)]
        trust_list_floor: u64,
        #[arg(long)]
        json: bool,
    },
}

pub fn command(command: StoreCommand) -> ExitCode {
    match command {
        StoreCommand::Check {
            config,
            store,
            json,
        } => verdict(check(config, store, json)),
        StoreCommand::Migrate { from, to, json } => verdict(migrate(from, to, json)),
        StoreCommand::Restored {
            config,
            trust_list_floor,
            json,
        } => verdict(restored(config, trust_list_floor, json)),
    }
}

/// A store opened by a command: the hub's embedded store (the hub must be stopped), a copy of
/// a backup (kept while this lives), or the hub's PostgreSQL database (the hub may run).
pub enum Opened {
    Embedded(Box<Embedded>, Option<caravan_common::store::Scratch>),
    Postgres(Box<Postgres>),
}

impl Opened {
    pub fn backend(&self) -> &dyn Backend {
        match self {
            Self::Embedded(store, _) => &**store,
            Self::Postgres(store) => &**store,
        }
    }
}

/// The store `config` names, or a copy of the backup at `backup`.
pub fn open_store(config: &Config, backup: Option<&Path>) -> anyhow::Result<Opened> {
    if let Some(settings) = &config.postgres {
        if backup.is_some() {
            anyhow::bail!(
                "the hub's store is in PostgreSQL: its backups are the database's own (restore one into a database, and name that database in a copy of the configuration)"
            );
        }
        return Ok(Opened::Postgres(Box::new(
            Postgres::open(settings.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
        )));
    }
    match backup {
        Some(path) => {
            if caravan_common::store::EngineKind::detect(path).is_none() {
                anyhow::bail!("{} is not a store backup", path.display());
            }
            // Opening a store may write to it (a format upgrade): the backup stays as it was,
            // and a copy of it is opened.
            let scratch = caravan_common::store::scratch_copy(path).map_err(|e| {
                anyhow::anyhow!("cannot copy {} to read it: {e}", path.display())
            })?;
            let store = Embedded::open_found(&scratch.path().join("store"), config.store_cache_bytes)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .ok_or_else(|| anyhow::anyhow!("{} is not a store backup", path.display()))?;
            Ok(Opened::Embedded(Box::new(store), Some(scratch)))
        }
        None => Embedded::open(
            &config.data_dir.join("store"),
            config.store_engine,
            config.store_cache_bytes,
        )
        .map(|store| Opened::Embedded(Box::new(store), None))
        .map_err(|e| {
            anyhow::anyhow!(
                "{e} (is the hub running? stop it first, or audit a backup with --store: the store has one owner)"
            )
        }),
    }
}

/// `store check`: whether the store is sound, every problem printed.
fn check(config: PathBuf, backup: Option<PathBuf>, json: bool) -> anyhow::Result<bool> {
    let config = load_config(&config)?;
    let Opened::Embedded(store, _copy) = open_store(&config, backup.as_deref())? else {
        anyhow::bail!(
            "store check walks an embedded store; a store in PostgreSQL is checked by `log verify` and the database's own tools (amcheck, data checksums)"
        );
    };
    let report = store.check();
    if json {
        caravan_common::out!("{}", serde_json::to_string(&report)?);
    } else {
        for line in report.lines() {
            caravan_common::out!("{line}");
        }
    }
    Ok(report.is_sound())
}

/// `store migrate`: the stopped store copied into the one `to` describes, checked and its log
/// verified.
fn migrate(from: PathBuf, to: PathBuf, json: bool) -> anyhow::Result<bool> {
    let old = load_config(&from)?;
    let new = load_config(&to)?;
    if old.postgres.is_some() {
        anyhow::bail!(
            "{} keeps its store in PostgreSQL: move a database with the database's own tools (pg_dump and pg_restore, or a replica), not `store migrate`",
            from.display()
        );
    }
    if let Some(settings) = new.postgres.clone() {
        let moved = caravan_hub::migrate::migrate_to_postgres(
            &old.data_dir.join("store"),
            settings,
            new.anchor_key.public(),
        )?;
        if json {
            caravan_common::out!("{}", serde_json::to_string(&moved)?);
        } else {
            let i = &moved.imported;
            caravan_common::out!(
                "moved the store in {} ({}) into the database {}: {} messages ({} bytes of payload), {} status events, {} certificates, {} conformance reports; log: {} entries, entries 1 to {} checked against {} signed tree heads",
                moved.from.display(),
                moved.from_engine,
                moved.to,
                i.messages,
                i.payload_bytes,
                i.events,
                i.certificates,
                i.conformance_reports,
                moved.log.entries,
                moved.log.covered,
                moved.log.tree_heads
            );
            if let Some(uncovered) = &moved.log.uncovered {
                caravan_common::out!("NOTE {uncovered}");
            }
        }
        return Ok(true);
    }
    let moved = caravan_hub::migrate::migrate(
        &old.data_dir.join("store"),
        &new.data_dir.join("store"),
        new.store_engine,
        new.anchor_key.public(),
    )?;
    if json {
        caravan_common::out!("{}", serde_json::to_string(&moved)?);
    } else {
        caravan_common::out!(
            "moved the store in {} ({}) to {} ({}): {} records, {} bytes of payload segments; store check passed; log: {} entries, entries 1 to {} checked against {} signed tree heads",
            moved.from.display(),
            moved.from_engine,
            moved.to.display(),
            moved.to_engine,
            moved.records,
            moved.segment_bytes,
            moved.log.entries,
            moved.log.covered,
            moved.log.tree_heads
        );
        if let Some(uncovered) = &moved.log.uncovered {
            caravan_common::out!("NOTE {uncovered}");
        }
    }
    Ok(true)
}

/// `store restored`: a restored database marked as such, and its log audited.
fn restored(config: PathBuf, floor: u64, json: bool) -> anyhow::Result<bool> {
    let config = load_config(&config)?;
    let Some(settings) = config.postgres.clone() else {
        anyhow::bail!(
            "store restored is for a store in PostgreSQL; an embedded store is restored with `caravan-hub restore`, which does this itself"
        );
    };
    let store = Postgres::open(settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let epoch = store
        .mark_restored(floor)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (audit, _) = caravan_hub::log::audit_stored(&store, config.anchor_key.public())?;
    if json {
        caravan_common::out!(
            "{}",
            serde_json::json!({ "epoch": epoch, "trust_list_floor": floor, "audit": audit })
        );
    } else {
        caravan_common::out!(
            "the store is marked restored: epoch {epoch}; the trust list will be re-issued beyond version {floor} when the first replica starts; log: {} entries, entries 1 to {} checked against {} signed tree heads",
            audit.entries,
            audit.covered,
            audit.tree_heads
        );
        for p in &audit.problems {
            caravan_common::out!("PROBLEM {p}");
        }
        if let Some(uncovered) = &audit.uncovered {
            caravan_common::out!(
                "NOTE {uncovered} (the first replica to start keeps a head over them)"
            );
        }
    }
    Ok(audit.problems.is_empty())
}
