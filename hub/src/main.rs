//! `caravan-hub`: the hub's command line, a thin binary over the `caravan_hub` library. This
//! file parses the command line and hands each command family to its module under `cli/`.

mod cli;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use cli::{
    admin::AdminCommand, conformance::ConformanceCommand, exit::report, info::InfoArgs,
    log::LogCommand, pki::PkiCommand, restore::RestoreArgs, run::RunArgs, store::StoreCommand,
};

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
    Run(RunArgs),
    /// Where this hub's interfaces are, from its config.
    Info(InfoArgs),
    /// Manage the hub's certificate authority.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Audit or export the exchange log: of the stopped hub's store (it has one owner), or of a
    /// backup (`--store`) while the hub runs.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Check the stopped hub's store (it has one owner), or a backup (`--store`), whole: every
    /// table decodes, every payload matches its checksums, every reference lands, the log's
    /// Merkle nodes are its entries'. Exit 0 with counts if all is well, 1 naming each problem.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Replace the hub's store with a backup (hub stopped). The backup is copied, upgraded and
    /// audited first; the store it replaces is kept aside. Exit 0 only if it was restored.
    Restore(RestoreArgs),
    /// The conformance kit: drive a candidate participant's test spoke through the protocol's
    /// cases from a stand-in hub, and record the report with the running hub.
    Conformance {
        #[command(subcommand)]
        command: ConformanceCommand,
    },
    /// Manage the registry of the running hub, as an operator.
    Admin {
        /// The operator's admin.toml: hub URL and operator certificate.
        #[arg(long, env = "CARAVAN_HUB_ADMIN_CONFIG")]
        config: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => cli::run::command(args),
        Command::Info(args) => report(cli::info::command(args)),
        Command::Pki { command } => report(cli::pki::command(command)),
        Command::Log { command } => cli::log::command(command),
        Command::Store { command } => cli::store::command(command),
        Command::Restore(args) => report(cli::restore::command(args)),
        Command::Conformance { command } => cli::conformance::command(command),
        Command::Admin { config, command } => report(cli::admin::command(config, command)),
    }
}
