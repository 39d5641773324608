//! `caravan-hub info`: where this hub's interfaces are, read from its config alone.

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long, env = "CARAVAN_HUB_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn command(InfoArgs { config, json }: InfoArgs) -> anyhow::Result<()> {
    let file: caravan_hub::config::HubFile =
        caravan_common::config::read_toml(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let data_dir = caravan_common::config::resolve(&config, &file.data_dir);
    // The engine the store is on: the one it was made with, or the setting for a new one.
    use caravan_hub::config::StoreEngine;
    let engine = match file.store_engine {
        Some(StoreEngine::Postgres) => StoreEngine::Postgres,
        configured => caravan_common::store::EngineKind::detect(&data_dir.join("store"))
            .map(StoreEngine::from)
            .or(configured)
            .unwrap_or(StoreEngine::Redb),
    };
    let mut info = serde_json::json!({
        "listen": file.listen,
        "metrics_url": file.metrics_listen.as_ref().map(|a| format!("http://{a}/metrics")),
        "dashboard_url": file.dashboard_listen.as_ref().map(|a| format!("https://{a}/dashboard")),
        "data_dir": data_dir.display().to_string(),
        "store_engine": engine.as_str(),
    });
    // Without its password: the URL never carries one (the configuration refuses it).
    if let Some(url) = &file.postgres_url {
        info["postgres_url"] = url.as_str().into();
    }
    if json {
        caravan_common::out!("{info}");
    } else {
        for (k, v) in info.as_object().into_iter().flatten() {
            caravan_common::out!(
                "{k:<14} {}",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            );
        }
    }
    Ok(())
}
