//! `caravan-hub log ...`: audit or export the exchange log, of the stopped hub's store or of a
//! backup.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;

use caravan_common::time::parse_rfc3339;

use super::{
    exit::{load_config, verdict},
    store::open_store,
};

#[derive(Subcommand)]
pub enum LogCommand {
    /// Recompute the log's Merkle tree and check every signed tree head; exit 0 only if all hold.
    Verify {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        /// A backup folder (`admin backup`) instead of the hub's store.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write the log entries (one JSON object per line) for auditors.
    Export {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        /// A backup folder (`admin backup`) instead of the hub's store.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Only entries at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
}

pub fn command(command: LogCommand) -> ExitCode {
    verdict(audit_or_export(command))
}

fn audit_or_export(command: LogCommand) -> anyhow::Result<bool> {
    match command {
        LogCommand::Verify {
            config,
            store,
            json,
        } => {
            let config = load_config(&config)?;
            let store = open_store(&config, store.as_deref())?;
            let (audit, _) =
                caravan_hub::log::audit_stored(store.backend(), config.anchor_key.public())?;
            if json {
                caravan_common::out!("{}", serde_json::to_string(&audit)?);
            } else {
                caravan_common::out!(
                    "{} entries, {} signed tree heads, entries 1 to {} checked against them",
                    audit.entries,
                    audit.tree_heads,
                    audit.covered
                );
                for p in &audit.problems {
                    caravan_common::out!("PROBLEM {p}");
                }
                if let Some(uncovered) = &audit.uncovered {
                    caravan_common::out!("PROBLEM {uncovered}");
                }
                caravan_common::out!(
                    "{}",
                    if !audit.problems.is_empty() {
                        "THE LOG WAS ALTERED"
                    } else if audit.uncovered.is_some() {
                        "THE NEWEST ENTRIES ARE NOT COVERED BY A SIGNED TREE HEAD"
                    } else {
                        "the log matches every signed tree head"
                    }
                );
            }
            Ok(audit.passed())
        }
        LogCommand::Export {
            config,
            store,
            since,
        } => {
            let config = load_config(&config)?;
            let since = match since {
                Some(t) => {
                    parse_rfc3339(&t).with_context(|| format!("{t:?} is not an RFC 3339 time"))?
                }
                None => caravan_common::Timestamp::from_millis(0),
            };
            let store = open_store(&config, store.as_deref())?;
            for entry in caravan_hub::log::export(store.backend(), since)? {
                caravan_common::out!("{}", serde_json::to_string(&entry)?);
            }
            Ok(true)
        }
    }
}
