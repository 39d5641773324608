//! `caravan-hub restore`: replace the stopped hub's store with a backup, copied, upgraded and
//! audited first; the store it replaces is kept aside.

use std::path::PathBuf;

use clap::Args;

use super::exit::load_config;

#[derive(Args)]
pub struct RestoreArgs {
    #[arg(long, env = "CARAVAN_HUB_CONFIG")]
    config: PathBuf,
    /// The backup: a folder from `admin backup`, or a copy of a stopped hub's store.
    #[arg(long)]
    from: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn command(RestoreArgs { config, from, json }: RestoreArgs) -> anyhow::Result<()> {
    let config = load_config(&config)?;
    let restored = caravan_hub::restore::restore(
        &config.data_dir,
        &from,
        config.store_cache_bytes,
        config.anchor_key.public(),
    )?;
    if json {
        caravan_common::out!("{}", serde_json::to_string(&restored)?);
    } else {
        caravan_common::out!(
            "restored {} into {}: {} log entries, {} signed tree heads, all hold; trust list version {}",
            from.display(),
            restored.store.display(),
            restored.audit.entries,
            restored.audit.tree_heads,
            restored.trust_list_version
        );
        if let Some(aside) = &restored.set_aside {
            caravan_common::out!("the store it replaced is kept in {}", aside.display());
        }
        caravan_common::out!(
            "what the hub accepted after the backup is not in it: spokes that saw later tree heads will raise LOG_INCONSISTENT (see the runbook)"
        );
    }
    Ok(())
}
