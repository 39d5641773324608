//! `info`: where this spoke's interfaces are, read from its config.

use std::path::PathBuf;

use serde::Serialize;

use caravan_spoke::config::{ControlConfig, SpokeFile};

use crate::{EX_USAGE, Failure, json_line, or_dash};

#[derive(clap::Args)]
pub struct Info {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    json: bool,
}

/// The interfaces, in the order the human output lists them.
#[derive(Serialize)]
struct Interfaces {
    participant: String,
    /// The first (or only) address.
    hub_url: String,
    /// Every address, in order (one, or the hub's replicas').
    hub_urls: Vec<String>,
    api_url: Option<String>,
    openapi_url: Option<String>,
    console_url: Option<String>,
    metrics_url: Option<String>,
    control_socket: String,
}

impl Info {
    pub fn run(self) -> Result<(), Failure> {
        let path = self.config;
        let file: SpokeFile = caravan_common::config::read_toml(&path)
            .map_err(|e| Failure(EX_USAGE, e.to_string()))?;
        let control = ControlConfig::load(&path).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
        let hub_urls = match &file.hub_url {
            Some(url) => vec![url.clone()],
            None => file.hub_urls.clone(),
        };
        let info = Interfaces {
            participant: file.participant,
            hub_url: hub_urls.first().cloned().unwrap_or_default(),
            hub_urls,
            api_url: file
                .nsw
                .as_ref()
                .map(|n| format!("http://{}/api/v1", n.listen)),
            openapi_url: file
                .nsw
                .as_ref()
                .map(|n| format!("http://{}/api/v1/openapi.json", n.listen)),
            // Where officers reach it: its public address, if configured.
            console_url: file.console.as_ref().map(|c| match &c.public_url {
                Some(url) => format!("{}/console", url.trim_end_matches('/')),
                None => format!("http://{}/console", c.listen),
            }),
            metrics_url: file
                .metrics_listen
                .as_ref()
                .map(|a| format!("http://{a}/metrics")),
            control_socket: control.control_socket.display().to_string(),
        };
        if self.json {
            caravan_common::out!("{}", json_line(&info)?);
            return Ok(());
        }
        // Sorted by name, as this output has always been.
        let mut lines = [
            ("api_url", or_dash(info.api_url)),
            ("console_url", or_dash(info.console_url)),
            ("control_socket", info.control_socket),
            ("hub_url", info.hub_urls.join(", ")),
            ("metrics_url", or_dash(info.metrics_url)),
            ("openapi_url", or_dash(info.openapi_url)),
            ("participant", info.participant),
        ];
        lines.sort_by_key(|(k, _)| *k);
        for (k, v) in lines {
            caravan_common::out!("{k:<15} {v}");
        }
        Ok(())
    }
}
