//! `caravan-hub`: run the hub, and manage its PKI.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing::info;

use caravan_common::{
    ParticipantId,
    process::{LogFormat, init_tracing, shutdown_signal},
};
use caravan_hub::{
    Config,
    pki::{self, PkiLayout, Subject},
};

/// Exit code for a bad configuration or command line (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "caravan-hub",
    version,
    about = "The Caravan regional hub: trust anchor and router"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Run {
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
    },
    /// Manage the hub's certificate authority.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create the CA, the hub's TLS certificate and key, and the hub's receipt-signing key.
    Init {
        /// Folder for the PKI files (created).
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address the hub is reached at (repeatable).
        #[arg(long = "hub-name", default_values = ["localhost", "127.0.0.1"])]
        hub_names: Vec<String>,
        /// Validity of the hub certificate in days (the CA gets five times as long).
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Issue a TLS client certificate for a participant or an operator.
    Issue(IssueArgs),
}

#[derive(Args)]
struct IssueArgs {
    /// The PKI folder made by `pki init`.
    #[arg(long)]
    dir: PathBuf,
    /// Participant id (ISO 3166-1 alpha-2), e.g. KZ.
    #[arg(
        long,
        required_unless_present = "operator",
        conflicts_with = "operator"
    )]
    participant: Option<ParticipantId>,
    /// Operator name (lowercase letters, digits, '.', '_', '-').
    #[arg(long)]
    operator: Option<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 825)]
    days: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Plain,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            listen,
            log_format,
        } => {
            let format = match log_format {
                Format::Plain => LogFormat::Plain,
                Format::Json => LogFormat::Json,
            };
            init_tracing("CARAVAN_HUB_LOG", "info", format);
            let mut config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EX_USAGE);
                }
            };
            if let Some(listen) = listen {
                config.listen = listen;
            }
            report(run(config))
        }
        Command::Pki { command } => report(pki_command(command)),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caravan-hub: {e:#}");
            ExitCode::FAILURE
        }
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

fn pki_command(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            hub_names,
            days,
        } => {
            let layout = PkiLayout::new(&dir);
            let out = pki::init(&layout, &hub_names, days)?;
            println!("CA certificate:       {}", layout.ca_cert().display());
            println!(
                "hub TLS certificate:  {} (names: {})",
                layout.hub_cert().display(),
                hub_names.join(", ")
            );
            println!(
                "hub receipt key:      {} (id {})",
                layout.receipt_key().display(),
                out.receipt_key_id
            );
            println!("receipt public key:   {}", out.receipt_public_key);
        }
        PkiCommand::Issue(args) => {
            let layout = PkiLayout::new(&args.dir);
            let subject = match (args.participant, args.operator) {
                (Some(p), _) => Subject::Participant(p),
                (None, Some(op)) => Subject::Operator(op),
                (None, None) => anyhow::bail!("name a --participant or an --operator"),
            };
            let (cert, key) = pki::issue(&layout, &subject, args.days)?;
            println!("certificate: {}", cert.display());
            println!("key:         {}", key.display());
        }
    }
    Ok(())
}
