//! `caravan-spoke`: run a country's spoke, and talk to the running one.
//!
//! Thin: the command line (clap) and one module per command; each talks to the library
//! (`caravan_spoke::run`, the typed control-API client `caravan_spoke::client`) and prints.
//! Exit codes: 0 done, 1 failed, 64 bad usage or config (EX_USAGE), 65 damaged store
//! (EX_DATAERR), 69 the running spoke or the hub unreachable (EX_UNAVAILABLE), 75 `send --wait`
//! ran out of time (EX_TEMPFAIL).

mod answer;
mod evidence;
mod inbox;
mod info;
mod keys;
mod log;
mod run;
mod send;
mod status;
mod store;
mod trust_list;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use serde::Serialize;

use caravan_spoke::{
    client::{Client, ClientError},
    config::ControlConfig,
};

/// Exit code for a bad configuration or command line (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;
/// Exit code when the store is damaged and the spoke will not start on it (EX_DATAERR).
const EX_DATAERR: u8 = 65;
/// Exit code when the running spoke or the hub cannot be reached (sysexits EX_UNAVAILABLE).
const EX_UNAVAILABLE: u8 = 69;
/// Exit code when `send --wait` ran out of time: the document stays queued (EX_TEMPFAIL).
const EX_TEMPFAIL: u8 = 75;

#[derive(Parser)]
#[command(
    name = "caravan-spoke",
    version,
    about = "A Caravan spoke: a country's gateway to the hub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an ed25519 document-signing key (file mode 0600); prints its id and public key.
    Keygen(keys::Keygen),
    /// Create a bearer token for an NSW API client: the token goes to FILE (0600), the line
    /// for spoke.toml's [[nsw.tokens]] to standard output.
    Token(keys::Token),
    /// Hash an officer's password (read from standard input) for spoke.toml's
    /// [[console.officers]].
    OfficerPassword(keys::OfficerPassword),
    /// Where this spoke's interfaces are, from its config.
    Info(info::Info),
    /// Run the spoke.
    Run(run::Run),
    /// Sign a document and queue it in the running spoke's outbox, which submits it to the hub.
    Send(send::Send),
    /// Answer a received document with a decision (accepted or rejected, with a reason),
    /// sent back to its sender and linked to it.
    Answer(answer::Answer),
    /// Write an evidence bundle for a received document: envelope, payload, hub receipt,
    /// acknowledgement and the trust list in force, verifiable offline.
    Export(evidence::Export),
    /// Verify an evidence bundle with no network: exit 0 only when it is genuine.
    Verify(evidence::Verify),
    /// List received documents.
    Inbox(inbox::Inbox),
    /// Show a received document and its verification.
    Show(inbox::Show),
    /// The trust list this spoke holds.
    TrustList {
        #[command(subcommand)]
        command: trust_list::TrustListCommand,
    },
    /// What this spoke verified of the hub's exchange log, and its alarms. Exits 0 when no
    /// alarm was ever raised, 1 otherwise.
    Log(log::Log),
    /// Check the stopped spoke's store (it has one owner), or a backup (`--store`), whole:
    /// every table decodes, every payload matches its checksums, every reference lands. Exit 0
    /// with counts if all is well, 1 naming each problem.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Show the state of a sent document, as the hub reports it.
    Status(status::Status),
}

/// A command's failure, with the exit code it maps to.
struct Failure(u8, String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotRunning { .. } => EX_UNAVAILABLE,
            _ => 1,
        };
        Failure(code, e.to_string())
    }
}

fn main() -> ExitCode {
    match command(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("caravan-spoke: {message}");
            ExitCode::from(code)
        }
    }
}

fn command(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen(c) => c.run(),
        Command::Token(c) => c.run(),
        Command::OfficerPassword(c) => c.run(),
        Command::Info(c) => c.run(),
        Command::Run(c) => c.run(),
        Command::Send(c) => c.run(),
        Command::Answer(c) => c.run(),
        Command::Export(c) => c.run(),
        Command::Verify(c) => c.run(),
        Command::Inbox(c) => c.run(),
        Command::Show(c) => c.run(),
        Command::TrustList { command } => command.run(),
        Command::Log(c) => c.run(),
        Command::Store { command } => command.run(),
        Command::Status(c) => c.run(),
    }
}

/// The config file of the spoke to talk to: `--config`, or `CARAVAN_SPOKE_CONFIG`.
#[derive(clap::Args)]
struct ConfigArg {
    #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
    config: PathBuf,
}

/// Run `f` with a client of the running spoke that `config` names, on a small runtime.
fn with_client<T>(
    config: &std::path::Path,
    f: impl AsyncFnOnce(Client) -> Result<T, ClientError>,
) -> Result<T, Failure> {
    let control = ControlConfig::load(config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(1, e.to_string()))?;
    Ok(runtime.block_on(f(Client::new(control.control_socket)))?)
}

/// `value` as one line of JSON, its keys sorted, as the `--json` outputs have always been.
fn json_line<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .map_err(|e| Failure(1, e.to_string()))
}

/// An optional value as the human outputs show it: `-` when absent.
fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The wire name of an API enum (e.g. a state, `ACCEPTED`), as the outputs show it.
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
