//! `store ...`: work on a stopped spoke's store (it has one owner): `check` walks it whole.
//! Further store commands (e.g. moving a store between engines) belong here.

use std::path::{Path, PathBuf};

use caravan_spoke::{Config, store::SpokeStore};

use crate::{EX_USAGE, Failure};

#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Walk the whole store and report what is wrong, with exact locations.
    Check {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        /// A copy of a stopped spoke's store folder instead of this spoke's store.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

impl StoreCommand {
    pub fn run(self) -> Result<(), Failure> {
        match self {
            Self::Check {
                config,
                store,
                json,
            } => check(&config, store.as_deref(), json),
        }
    }
}

/// `store check`: the whole walk of the stopped spoke's store, or of a copy.
fn check(config: &Path, backup: Option<&Path>, json: bool) -> Result<(), Failure> {
    let config = Config::load(config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    // A small cache: the walk reads each record once.
    const CACHE: u64 = 8 << 20;
    let store = match backup {
        Some(path) => SpokeStore::open_found(path, CACHE)
            .map_err(|e| Failure(1, e.to_string()))?
            .ok_or_else(|| Failure(1, format!("{} holds no store", path.display())))?,
        None => SpokeStore::open(&config.data_dir.join("store"), config.store_engine, CACHE)
            .map_err(|e| {
                Failure(
                    1,
                    format!(
                        "{e} (is the spoke running? stop it first, or check a copy with --store: the store has one owner)"
                    ),
                )
            })?,
    };
    let report = store.check();
    if json {
        caravan_common::out!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure(1, e.to_string()))?
        );
    } else {
        for line in report.lines() {
            caravan_common::out!("{line}");
        }
    }
    if report.is_sound() {
        Ok(())
    } else {
        Err(Failure(
            1,
            format!("{} problem(s) in the store", report.problems.len()),
        ))
    }
}
