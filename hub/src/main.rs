//! `caravan-hub`: run the hub, and manage its PKI.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing::info;

use caravan_common::{
    DocumentType, ParticipantId,
    process::{LogFormat, init_tracing, shutdown_signal},
    time::parse_rfc3339,
};
use caravan_hub::{
    Config,
    operator::{Operator, OperatorError, read_public_key},
    pki::{self, PkiLayout, Subject},
};
use caravan_proto::v1;

/// Exit code for a bad configuration or command line (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;
/// Exit code when the store is damaged and the hub will not start on it (EX_DATAERR).
const EX_DATAERR: u8 = 65;

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
    /// Where this hub's interfaces are, from its config.
    Info {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
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
    Restore {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        /// The backup: a folder from `admin backup`, or a copy of a stopped hub's store.
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        json: bool,
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

#[derive(Subcommand)]
enum StoreCommand {
    /// Walk the whole store and report what is wrong, with exact locations.
    Check {
        #[arg(long, env = "CARAVAN_HUB_CONFIG")]
        config: PathBuf,
        /// A backup folder (`admin backup`) instead of the hub's store.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Copy the stopped hub's store into the store another configuration describes (its
    /// `data_dir` and `store_engine`: the other engine, say), then check it whole and verify
    /// its log. The old store is left untouched; a target folder that holds anything is
    /// refused. Exit 0 only if the moved store holds.
    Migrate {
        /// The configuration the hub runs with now.
        #[arg(long)]
        from: PathBuf,
        /// The configuration to run with after the move.
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LogCommand {
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

#[derive(Subcommand)]
enum AdminCommand {
    /// Participants (countries).
    Participant {
        #[command(subcommand)]
        command: ParticipantCommand,
    },
    /// Document-signing keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Which documents may flow between which participants.
    Corridor {
        #[command(subcommand)]
        command: CorridorCommand,
    },
    /// TLS client certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// The signed trust list.
    TrustList {
        #[command(subcommand)]
        command: TrustListCommand,
    },
    /// Copy the running hub's store into a new folder under its `backup_dir` (on the hub's
    /// machine); writes wait for the copy, reads go on.
    Backup {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ParticipantCommand {
    /// Register a participant.
    Add {
        id: ParticipantId,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        contact: String,
    },
    /// Refuse the participant as sender and recipient, and close its open streams.
    Suspend { id: ParticipantId },
    /// Lift a suspension.
    Resume { id: ParticipantId },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Register a document-signing key for a participant.
    Register {
        #[arg(long)]
        participant: ParticipantId,
        /// Document types the key may sign, comma-separated: e-co,e-phyto,e-invoice.
        #[arg(long, value_delimiter = ',')]
        types: Vec<DocumentType>,
        /// File with the base64 public key (`caravan-spoke keygen` writes it as <key>.pub).
        #[arg(long)]
        public_key: PathBuf,
        /// Start of validity, RFC 3339 (default: now).
        #[arg(long)]
        not_before: Option<String>,
        /// End of validity, RFC 3339 (default: none).
        #[arg(long)]
        not_after: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key from now on (key compromise).
    Revoke {
        key_id: String,
        #[arg(long)]
        reason: String,
    },
    List {
        #[arg(long)]
        participant: Option<ParticipantId>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CorridorAction {
    Open,
    Pilot,
    Close,
}

#[derive(Subcommand)]
enum CorridorCommand {
    /// Open a corridor.
    Open(CorridorArgs),
    /// Open a corridor for trials; receivers mark its traffic as pilot.
    Pilot(CorridorArgs),
    /// Close a corridor.
    Close(CorridorArgs),
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct CorridorArgs {
    from: ParticipantId,
    to: ParticipantId,
    /// Document types, comma-separated, or `all`.
    types: String,
}

#[derive(Subcommand)]
enum CertCommand {
    /// The client certificates the hub has seen, with validity and revocation.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Refuse a TLS client certificate from now on, by serial (as `pki issue` printed it).
    Revoke {
        serial: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum TrustListCommand {
    Show {
        #[arg(long)]
        json: bool,
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
    /// Renew the hub's TLS certificate from the current CA (the old one is kept); restart the
    /// hub to use it.
    RenewHubCert {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address the hub is reached at (repeatable): all of them.
        #[arg(long = "hub-name", required = true)]
        hub_names: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Replace the CA: the old one is kept, a new one is made, `ca-bundle.pem` holds both for
    /// the changeover, and the hub's certificate is renewed from the new CA (runbook: "Renew
    /// the CA").
    RolloverCa {
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address the hub is reached at (repeatable): all of them.
        #[arg(long = "hub-name", required = true)]
        hub_names: Vec<String>,
        /// Validity of the hub certificate in days (the CA gets five times as long).
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Create a new receipt-signing key (rotation): point `receipt_key` at it and restart the
    /// hub; the anchor vouches for it in the next trust list, so spokes need no change.
    NewReceiptKey {
        /// Where to write the key (0600); its public key goes to <out>.pub.
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Replace a certificate issued before (renewal, or after a CA rollover); the old
    /// certificate and key are kept as <name>-<ms>.pem / .key.
    #[arg(long)]
    renew: bool,
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
            caravan_common::process::raise_fd_limit();
            let result = run(config);
            let damaged = result.as_ref().is_err_and(|e| {
                matches!(
                    e.downcast_ref::<caravan_hub::server::RunError>(),
                    Some(caravan_hub::server::RunError::StoreDamaged { .. })
                )
            });
            match report(result) {
                _ if damaged => ExitCode::from(EX_DATAERR),
                code => code,
            }
        }
        Command::Pki { command } => report(pki_command(command)),
        Command::Info { config, json } => report(info(config, json)),
        Command::Log { command } => match log_command(command) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("caravan-hub: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Store {
            command:
                StoreCommand::Check {
                    config,
                    store,
                    json,
                },
        } => match store_check(config, store, json) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("caravan-hub: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Store {
            command: StoreCommand::Migrate { from, to, json },
        } => match store_migrate(from, to, json) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("caravan-hub: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Admin { config, command } => report(admin(config, command)),
        Command::Restore { config, from, json } => report(restore(config, from, json)),
    }
}

fn restore(config: PathBuf, from: PathBuf, json: bool) -> anyhow::Result<()> {
    let config = Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
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

#[tokio::main(flavor = "current_thread")]
async fn admin(config: PathBuf, command: AdminCommand) -> anyhow::Result<()> {
    let operator = Operator::connect(&config)?;
    let mut admin = operator.admin();
    let done = |r: tonic::Response<v1::AdminResponse>| {
        caravan_common::out!(
            "done; trust list version {}",
            r.into_inner().trust_list_version
        );
    };
    match command {
        AdminCommand::Participant { command } => match command {
            ParticipantCommand::Add { id, name, contact } => {
                let request = v1::AddParticipantRequest {
                    id: id.to_string(),
                    name,
                    contact,
                };
                done(
                    admin
                        .add_participant(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            ParticipantCommand::Suspend { id } => {
                done(set_status(&mut admin, id, v1::ParticipantStatus::Suspended).await?)
            }
            ParticipantCommand::Resume { id } => {
                done(set_status(&mut admin, id, v1::ParticipantStatus::Active).await?)
            }
            ParticipantCommand::List { json } => {
                let list = operator.trust_list_view().await?;
                if json {
                    caravan_common::out!("{}", serde_json::to_string(&list.participants)?);
                } else {
                    for p in list.participants {
                        caravan_common::out!(
                            "{}  {:<9}  {}  {}",
                            p.id,
                            p.status,
                            p.name,
                            p.contact
                        );
                    }
                }
            }
        },
        AdminCommand::Key { command } => match command {
            KeyCommand::Register {
                participant,
                types,
                public_key,
                not_before,
                not_after,
                json,
            } => {
                let key = read_public_key(&public_key)?;
                let time = |t: Option<String>| -> anyhow::Result<i64> {
                    Ok(match t {
                        None => 0,
                        Some(text) => parse_rfc3339(&text)
                            .with_context(|| format!("{text:?} is not an RFC 3339 time"))?
                            .as_millis(),
                    })
                };
                let request = v1::RegisterKeyRequest {
                    participant: participant.to_string(),
                    public_key: key.raw().to_vec(),
                    document_types: types.iter().map(|t| t.to_string()).collect(),
                    not_before_ms: time(not_before)?,
                    not_after_ms: time(not_after)?,
                };
                let version = admin
                    .register_key(request)
                    .await
                    .map_err(OperatorError::from)?
                    .into_inner()
                    .trust_list_version;
                if json {
                    caravan_common::out!(
                        "{}",
                        serde_json::json!({ "key_id": key.key_id().to_string(), "participant": participant.to_string(), "trust_list_version": version })
                    );
                } else {
                    caravan_common::out!(
                        "registered key {} for {participant}; trust list version {version}",
                        key.key_id()
                    );
                }
            }
            KeyCommand::Revoke { key_id, reason } => {
                done(
                    admin
                        .revoke_key(v1::RevokeKeyRequest { key_id, reason })
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
            KeyCommand::List { participant, json } => {
                let mut keys = operator.trust_list_view().await?.keys;
                if let Some(p) = participant {
                    keys.retain(|k| k.participant == p.as_str());
                }
                if json {
                    caravan_common::out!("{}", serde_json::to_string(&keys)?);
                } else {
                    for k in keys {
                        caravan_common::out!(
                            "{}  {}  {:<13}  {}",
                            k.key_id,
                            k.participant,
                            k.status,
                            k.document_types.join(",")
                        );
                    }
                }
            }
        },
        AdminCommand::Corridor { command } => {
            let (action, args) = match command {
                CorridorCommand::Open(a) => (CorridorAction::Open, a),
                CorridorCommand::Pilot(a) => (CorridorAction::Pilot, a),
                CorridorCommand::Close(a) => (CorridorAction::Close, a),
                CorridorCommand::List { json } => {
                    let corridors = operator.trust_list_view().await?.corridors;
                    if json {
                        caravan_common::out!("{}", serde_json::to_string(&corridors)?);
                    } else {
                        for c in corridors {
                            caravan_common::out!(
                                "{} -> {}  {:<9}  {}",
                                c.sender,
                                c.recipient,
                                c.document_type,
                                c.state
                            );
                        }
                    }
                    return Ok(());
                }
            };
            let state = match action {
                CorridorAction::Open => v1::CorridorState::Open,
                CorridorAction::Pilot => v1::CorridorState::Pilot,
                CorridorAction::Close => v1::CorridorState::Closed,
            };
            let types: Vec<DocumentType> = if args.types == "all" {
                DocumentType::ALL.to_vec()
            } else {
                args.types
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            };
            for t in types {
                let request = v1::SetCorridorRequest {
                    sender: args.from.to_string(),
                    recipient: args.to.to_string(),
                    document_type: t.to_string(),
                    state: state as i32,
                };
                done(
                    admin
                        .set_corridor(request)
                        .await
                        .map_err(OperatorError::from)?,
                );
            }
        }
        AdminCommand::Backup { json } => {
            let b = admin
                .backup(v1::BackupRequest {})
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            if json {
                caravan_common::out!(
                    "{}",
                    serde_json::json!({
                        "path": b.path,
                        "records": b.records,
                        "bytes": b.bytes,
                        "log_entries": b.log_entries,
                        "pause_ms": b.pause_ms,
                        "taken_at": caravan_common::Timestamp::from_millis(b.taken_at_ms),
                    })
                );
            } else {
                caravan_common::out!(
                    "backup in {} (on the hub's machine): {} records, {} bytes, {} log entries; writes waited {} ms",
                    b.path,
                    b.records,
                    b.bytes,
                    b.log_entries,
                    b.pause_ms
                );
            }
        }
        AdminCommand::Cert {
            command: CertCommand::List { json },
        } => {
            let list = admin
                .list_certificates(v1::ListCertificatesRequest {})
                .await
                .map_err(OperatorError::from)?
                .into_inner();
            let time = |ms: i64| (ms != 0).then(|| caravan_common::Timestamp::from_millis(ms));
            let rows: Vec<serde_json::Value> = list
                .certificates
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "serial": c.serial,
                        "fingerprint": c.fingerprint,
                        "subject": c.subject,
                        "not_before": time(c.not_before_ms),
                        "not_after": time(c.not_after_ms),
                        "first_seen": time(c.first_seen_ms),
                        "revoked_at": time(c.revoked_at_ms),
                        "revocation_reason": (c.revoked_at_ms != 0).then(|| c.revocation_reason.clone()),
                    })
                })
                .collect();
            if json {
                caravan_common::out!("{}", serde_json::to_string(&rows)?);
            } else {
                for (c, row) in list.certificates.iter().zip(&rows) {
                    let state = if c.revoked_at_ms != 0 {
                        "REVOKED"
                    } else {
                        "valid"
                    };
                    let until = row["not_after"].as_str().unwrap_or("-");
                    caravan_common::out!("{}  {:<20}  {state}  until {until}", c.serial, c.subject);
                }
            }
        }
        AdminCommand::Cert {
            command: CertCommand::Revoke { serial, reason },
        } => {
            done(
                admin
                    .revoke_certificate(v1::RevokeCertificateRequest { serial, reason })
                    .await
                    .map_err(OperatorError::from)?,
            );
        }
        AdminCommand::TrustList {
            command: TrustListCommand::Show { json },
        } => {
            let list = operator.trust_list_view().await?;
            if json {
                caravan_common::out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_trust_list(&list);
            }
        }
    }
    Ok(())
}

async fn set_status(
    admin: &mut caravan_proto::v1::admin_client::AdminClient<tonic::transport::Channel>,
    id: ParticipantId,
    status: v1::ParticipantStatus,
) -> Result<tonic::Response<v1::AdminResponse>, OperatorError> {
    let request = v1::SetParticipantStatusRequest {
        id: id.to_string(),
        status: status as i32,
    };
    Ok(admin.set_participant_status(request).await?)
}

fn print_trust_list(list: &caravan_common::trust::view::TrustListView) {
    let time = |t: Option<caravan_common::Timestamp>| {
        t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
    };
    caravan_common::out!(
        "trust list version {} issued {} next update {} ({})",
        list.version,
        time(list.issued_at),
        time(list.next_update),
        if list.fresh { "fresh" } else { "STALE" }
    );
    caravan_common::out!("participants:");
    for p in &list.participants {
        caravan_common::out!("  {}  {:<9}  {}", p.id, p.status, p.name);
    }
    caravan_common::out!("keys:");
    for k in &list.keys {
        caravan_common::out!(
            "  {}  {}  {:<13}  {}",
            k.key_id,
            k.participant,
            k.status,
            k.document_types.join(",")
        );
    }
    caravan_common::out!("corridors:");
    for c in &list.corridors {
        caravan_common::out!(
            "  {} -> {}  {:<9}  {}",
            c.sender,
            c.recipient,
            c.document_type,
            c.state
        );
    }
    caravan_common::out!("hub receipt keys:");
    for k in &list.hub_keys {
        caravan_common::out!("  {}", k.key_id);
    }
}

/// The hub's store (the hub must be stopped), or the backup at `backup`, opened directly.
fn open_store(
    config: &Config,
    backup: Option<&Path>,
) -> anyhow::Result<caravan_hub::store::Backend> {
    use caravan_hub::store::Backend;
    match backup {
        Some(path) => Backend::open_found(path, config.store_cache_bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("{} is not a store backup", path.display())),
        None => Backend::open(
            &config.data_dir.join("store"),
            config.store_engine,
            config.store_cache_bytes,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "{e} (is the hub running? stop it first, or audit a backup with --store: the store has one owner)"
            )
        }),
    }
}

fn log_command(command: LogCommand) -> anyhow::Result<bool> {
    match command {
        LogCommand::Verify {
            config,
            store,
            json,
        } => {
            let config = Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = open_store(&config, store.as_deref())?;
            let (audit, _) = caravan_hub::log::audit_stored(&store, config.anchor_key.public())?;
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
            let config = Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let since = match since {
                Some(t) => {
                    parse_rfc3339(&t).with_context(|| format!("{t:?} is not an RFC 3339 time"))?
                }
                None => caravan_common::Timestamp::from_millis(0),
            };
            let store = open_store(&config, store.as_deref())?;
            for entry in caravan_hub::log::export(&store, since)? {
                caravan_common::out!("{}", serde_json::to_string(&entry)?);
            }
            Ok(true)
        }
    }
}

fn store_check(config: PathBuf, backup: Option<PathBuf>, json: bool) -> anyhow::Result<bool> {
    let config = Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(&config, backup.as_deref())?;
    let report = store.check();
    if json {
        caravan_common::out!("{}", serde_json::to_string(&report)?);
    } else {
        for line in report.lines() {
            caravan_common::out!("{line}");
        }
    }
    Ok(report.is_sound())
}

fn store_migrate(from: PathBuf, to: PathBuf, json: bool) -> anyhow::Result<bool> {
    let old = Config::load(&from).map_err(|e| anyhow::anyhow!("{e}"))?;
    let new = Config::load(&to).map_err(|e| anyhow::anyhow!("{e}"))?;
    let moved = caravan_hub::migrate::migrate(
        &old.data_dir.join("store"),
        &new.data_dir.join("store"),
        new.store_engine,
        new.anchor_key.public(),
    )?;
    if json {
        caravan_common::out!("{}", serde_json::to_string(&moved)?);
    } else {
        caravan_common::out!(
            "moved the store in {} ({}) to {} ({}): {} records, {} bytes of payload segments; store check passed; log: {} entries, entries 1 to {} checked against {} signed tree heads",
            moved.from.display(),
            moved.from_engine,
            moved.to.display(),
            moved.to_engine,
            moved.records,
            moved.segment_bytes,
            moved.log.entries,
            moved.log.covered,
            moved.log.tree_heads
        );
        if let Some(uncovered) = &moved.log.uncovered {
            caravan_common::out!("NOTE {uncovered}");
        }
    }
    Ok(true)
}

fn info(config: PathBuf, json: bool) -> anyhow::Result<()> {
    let file: caravan_hub::config::HubFile =
        caravan_common::config::read_toml(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let data_dir = caravan_common::config::resolve(&config, &file.data_dir);
    // The engine the store is on: the one it was made with, or the setting for a new one.
    let engine = caravan_common::store::EngineKind::detect(&data_dir.join("store"))
        .or(file.store_engine)
        .unwrap_or_default();
    let info = serde_json::json!({
        "listen": file.listen,
        "metrics_url": file.metrics_listen.as_ref().map(|a| format!("http://{a}/metrics")),
        "dashboard_url": file.dashboard_listen.as_ref().map(|a| format!("https://{a}/dashboard")),
        "data_dir": data_dir.display().to_string(),
        "store_engine": engine.as_str(),
    });
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
            caravan_common::out!("CA certificate:       {}", layout.ca_cert().display());
            caravan_common::out!(
                "hub TLS certificate:  {} (names: {})",
                layout.hub_cert().display(),
                hub_names.join(", ")
            );
            caravan_common::out!(
                "hub receipt key:      {} (id {})",
                layout.receipt_key().display(),
                out.receipt_key_id
            );
            caravan_common::out!("receipt public key:   {}", out.receipt_public_key);
            caravan_common::out!(
                "anchor key:           {} (id {})",
                layout.anchor_key().display(),
                out.anchor_key_id
            );
            caravan_common::out!("anchor public key:    {}", out.anchor_public_key);
        }
        PkiCommand::NewReceiptKey { out } => {
            let mut public = out.clone().into_os_string();
            public.push(".pub");
            let public = PathBuf::from(public);
            let key = pki::new_key(&out, &public)?;
            caravan_common::out!(
                "receipt key {} written to {} (public key in {})",
                key.key_id(),
                out.display(),
                public.display()
            );
        }
        PkiCommand::RenewHubCert {
            dir,
            hub_names,
            days,
        } => {
            let layout = PkiLayout::new(&dir);
            pki::renew_hub_cert(&layout, &hub_names, days)?;
            caravan_common::out!(
                "hub TLS certificate renewed: {} (names: {}); restart the hub to use it",
                layout.hub_cert().display(),
                hub_names.join(", ")
            );
        }
        PkiCommand::RolloverCa {
            dir,
            hub_names,
            days,
        } => {
            let layout = PkiLayout::new(&dir);
            let r = pki::rollover_ca(&layout, &hub_names, days)?;
            caravan_common::out!("new CA certificate:   {}", layout.ca_cert().display());
            caravan_common::out!(
                "old CA kept:          {} and {}",
                r.old_ca_cert.display(),
                r.old_ca_key.display()
            );
            caravan_common::out!(
                "both, for the change: {} (hub and spokes: tls.ca_cert)",
                r.bundle.display()
            );
            caravan_common::out!(
                "hub TLS certificate:  {} (from the new CA)",
                layout.hub_cert().display()
            );
        }
        PkiCommand::Issue(args) => {
            let layout = PkiLayout::new(&args.dir);
            let subject = match (args.participant, args.operator) {
                (Some(p), _) => Subject::Participant(p),
                (None, Some(op)) => Subject::Operator(op),
                (None, None) => anyhow::bail!("name a --participant or an --operator"),
            };
            let issued = pki::issue(&layout, &subject, args.days, args.renew)?;
            caravan_common::out!("certificate: {}", issued.cert.display());
            caravan_common::out!("key:         {}", issued.key.display());
            caravan_common::out!("serial:      {}", issued.serial);
            caravan_common::out!("sha256:      {}", issued.fingerprint);
        }
    }
    Ok(())
}
