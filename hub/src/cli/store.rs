//! `caravan-hub store ...`: commands on the stopped hub's store (it has one owner) or on a
//! backup; a new store command is one more variant of [`StoreCommand`] and one more arm of
//! [`command`].

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Subcommand;

use caravan_hub::{Config, store::kv::KvBackend};

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
}

pub fn command(command: StoreCommand) -> ExitCode {
    match command {
        StoreCommand::Check {
            config,
            store,
            json,
        } => verdict(check(config, store, json)),
    }
}

/// The hub's store (the hub must be stopped), or the backup at `backup`, opened directly.
pub fn open_store(config: &Config, backup: Option<&Path>) -> anyhow::Result<KvBackend> {
    match backup {
        Some(path) => KvBackend::open_found(path, config.store_cache_bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("{} is not a store backup", path.display())),
        None => KvBackend::open(
            &config.data_dir.join("store"),
            config.store_engine,
            config.store_cache_bytes,
        )
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
    let store = open_store(&config, backup.as_deref())?;
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
