//! `run`: the spoke itself, until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::ValueEnum;

use caravan_common::process::{LogFormat, init_tracing, shutdown_signal};
use caravan_spoke::{Config, RunError};

use crate::{EX_DATAERR, EX_USAGE, Failure};

#[derive(clap::Args)]
pub struct Run {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
    #[arg(
        long,
        env = "CARAVAN_SPOKE_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Plain,
    Json,
}

impl Run {
    pub fn run(self) -> Result<(), Failure> {
        let format = match self.log_format {
            Format::Plain => LogFormat::Plain,
            Format::Json => LogFormat::Json,
        };
        init_tracing("CARAVAN_SPOKE_LOG", "info", format);
        let config = Config::load(&self.config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
        caravan_common::process::raise_fd_limit();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure(1, e.to_string()))?
            .block_on(caravan_spoke::run(config, shutdown_signal()))
            .map_err(|e| {
                let code = match e {
                    RunError::StoreDamaged { .. } => EX_DATAERR,
                    _ => 1,
                };
                Failure(code, e.to_string())
            })
    }
}
