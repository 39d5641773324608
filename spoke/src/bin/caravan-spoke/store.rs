//! `store ...`: work on a stopped spoke's store (it has one owner): `check` walks it whole,
//! `migrate` copies it into the store another configuration describes.

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
    /// Copy the stopped spoke's store into the store another configuration describes (its
    /// `data_dir` and `store_engine`: the other engine, say), then check it whole. The old
    /// store is left untouched; a target folder that holds anything is refused.
    Migrate {
        /// The configuration the spoke runs with now.
        #[arg(long)]
        from: PathBuf,
        /// The configuration to run with after the move.
        #[arg(long)]
        to: PathBuf,
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
            Self::Migrate { from, to } => migrate(&from, &to),
        }
    }
}

/// `store migrate`: the stopped store copied into the one `to` describes, and checked whole.
fn migrate(from: &Path, to: &Path) -> Result<(), Failure> {
    let old = Config::load(from).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    let new = Config::load(to).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    let (source, target) = (old.data_dir.join("store"), new.data_dir.join("store"));
    let (moved, report) =
        SpokeStore::migrate(&source, &target, new.store_engine).map_err(|e| {
            Failure(
                1,
                format!(
                    "the store was not moved: {e} (is the spoke running? stop it first: the store has one owner)"
                ),
            )
        })?;
    for line in report.lines() {
        caravan_common::out!("{line}");
    }
    if !report.is_sound() {
        return Err(Failure(
            1,
            format!(
                "the moved store in {} does not hold ({} problem(s)); the old store is untouched",
                target.display(),
                report.problems.len()
            ),
        ));
    }
    caravan_common::out!(
        "moved the store in {} ({}) to {} ({}): {} records, {} bytes of payload segments; store check passed",
        source.display(),
        moved.from,
        target.display(),
        moved.to,
        moved.records,
        moved.segment_bytes
    );
    Ok(())
}

/// `store check`: the whole walk of the stopped spoke's store, or of a copy.
fn check(config: &Path, backup: Option<&Path>, json: bool) -> Result<(), Failure> {
    let config = Config::load(config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    // A small cache: the walk reads each record once.
    const CACHE: u64 = 8 << 20;
    // A copy is walked (opening a store may upgrade it): the backup stays as it was.
    let mut _copy = None;
    let store = match backup {
        Some(path) => {
            if caravan_common::store::EngineKind::detect(path).is_none() {
                return Err(Failure(1, format!("{} holds no store", path.display())));
            }
            let copy = caravan_common::store::scratch_copy(path).map_err(|e| {
                Failure(1, format!("cannot copy {} to check it: {e}", path.display()))
            })?;
            let store = SpokeStore::open_found(&copy.path().join("store"), CACHE)
                .map_err(|e| Failure(1, e.to_string()))?
                .ok_or_else(|| Failure(1, format!("{} holds no store", path.display())))?;
            _copy = Some(copy);
            store
        }
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
