//! `caravan-hub run`: serve the hub until a signal, on the config's store and listeners.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tracing::info;

use caravan_common::process::{LogFormat, init_tracing, shutdown_signal};
use caravan_hub::{Config, server::RunError};

use super::exit::{EX_DATAERR, EX_USAGE, report};

#[derive(Args)]
pub struct RunArgs {
    /// The hub's configuration file.
    #[arg(long, env = "CARAVAN_HUB_CONFIG")]
    config: PathBuf,
    /// Listen on this address instead of the config's `listen`.
    #[arg(long, env = "CARAVAN_HUB_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Log format.
    #[arg(
        long,
        env = "CARAVAN_HUB_LOG_FORMAT",
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

/// Run the hub: exit 64 on a bad config, 65 on a damaged store, 1 on any other failure.
pub fn command(args: RunArgs) -> ExitCode {
    let format = match args.log_format {
        Format::Plain => LogFormat::Plain,
        Format::Json => LogFormat::Json,
    };
    init_tracing("CARAVAN_HUB_LOG", "info", format);
    let mut config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    caravan_common::process::raise_fd_limit();
    let result = run(config);
    let damaged = result.as_ref().is_err_and(|e| {
        matches!(
            e.downcast_ref::<RunError>(),
            Some(RunError::StoreDamaged { .. })
        )
    });
    match report(result) {
        _ if damaged => ExitCode::from(EX_DATAERR),
        code => code,
    }
}

#[tokio::main]
async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    info!(version = env!("CARGO_PKG_VERSION"), "starting caravan-hub");
    caravan_hub::run(config, listener, shutdown_signal()).await?;
    Ok(())
}
