//! `caravan-spoke`: run a country's spoke, and talk to the running one.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

use caravan_common::{
    DocumentType, MessageId, ParticipantId,
    process::{LogFormat, init_tracing, shutdown_signal},
    signing::SigningKey,
};
use caravan_spoke::{
    Config,
    api::views::InboxItem,
    client::{self as control, ClientError},
    config::ControlConfig,
};

/// Exit code for a bad configuration or command line (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;
/// Exit code when the running spoke or the hub cannot be reached (sysexits EX_UNAVAILABLE).
const EX_UNAVAILABLE: u8 = 69;
/// Exit code when `send --wait` ran out of time: the document stays queued (EX_TEMPFAIL).
const EX_TEMPFAIL: u8 = 75;
/// Exit code when the store is damaged and the spoke will not start on it (EX_DATAERR).
const EX_DATAERR: u8 = 65;

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
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Create a bearer token for an NSW API client: the token goes to FILE (0600), the line
    /// for spoke.toml's [[nsw.tokens]] to standard output.
    Token {
        /// The client's name, for the logs.
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Hash an officer's password (read from standard input) for spoke.toml's
    /// [[console.officers]].
    OfficerPassword {
        #[arg(long)]
        user: String,
    },
    /// Where this spoke's interfaces are, from its config.
    Info {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run the spoke.
    Run {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(
            long,
            env = "CARAVAN_SPOKE_LOG_FORMAT",
            value_enum,
            default_value = "plain"
        )]
        log_format: Format,
    },
    /// Sign a document and queue it in the running spoke's outbox, which submits it to the hub.
    Send {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        /// Recipient participant id, e.g. CN.
        #[arg(long)]
        to: ParticipantId,
        /// Document type: e-co, e-phyto or e-invoice.
        #[arg(long = "type")]
        document_type: DocumentType,
        /// Certificate or invoice number; read from the document when absent.
        #[arg(long)]
        document_id: Option<String>,
        /// Message id of an earlier document that this one replaces or withdraws.
        #[arg(long)]
        supersedes: Option<MessageId>,
        /// A received document (from the recipient) that this one answers.
        #[arg(long)]
        in_reply_to: Option<MessageId>,
        /// Wait for the hub's receipt (or refusal) instead of returning once queued.
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits, in seconds.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
        #[arg(long)]
        json: bool,
        /// The document (XML).
        file: PathBuf,
    },
    /// Answer a received document with a decision (accepted or rejected, with a reason),
    /// sent back to its sender and linked to it.
    Answer {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum)]
        decision: DecisionArg,
        #[arg(long)]
        reason: Option<String>,
        /// Wait for the hub's receipt.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
        message_id: MessageId,
    },
    /// Write an evidence bundle for a received document: envelope, payload, hub receipt,
    /// acknowledgement and the trust list in force, verifiable offline.
    Export {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The sender, if the id came from several.
        #[arg(long)]
        sender: Option<ParticipantId>,
        message_id: MessageId,
    },
    /// Verify an evidence bundle with no network: exit 0 only when it is genuine.
    Verify {
        /// Take the anchor public key from this spoke config.
        #[arg(
            long,
            required_unless_present = "anchor_key",
            conflicts_with = "anchor_key"
        )]
        config: Option<PathBuf>,
        /// A file with the hub's anchor public key (base64, as in hub-anchor.pub).
        #[arg(long)]
        anchor_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        file: PathBuf,
    },
    /// List received documents.
    Inbox {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show a received document and its verification.
    Show {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        /// Write the document's bytes to this file.
        #[arg(long)]
        payload_out: Option<PathBuf>,
        /// The sender, if the id came from several.
        #[arg(long)]
        sender: Option<ParticipantId>,
        #[arg(long)]
        json: bool,
        message_id: MessageId,
    },
    /// The trust list this spoke holds.
    TrustList {
        #[command(subcommand)]
        command: TrustListCommand,
    },
    /// What this spoke verified of the hub's exchange log, and its alarms. Exits 0 when no
    /// alarm was ever raised, 1 otherwise.
    Log {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check the stopped spoke's store (it has one owner), or a backup (`--store`), whole:
    /// every table decodes, every payload matches its checksums, every reference lands. Exit 0
    /// with counts if all is well, 1 naming each problem.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Show the state of a sent document, as the hub reports it.
    Status {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
        message_id: MessageId,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Walk the whole store and report what is wrong, with exact locations.
    Check {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        /// A copy of a stopped spoke's store folder instead of this spoke's store.
        #[arg(long)]
        store: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Copy the stopped spoke's store into the store another configuration describes (its
    /// `data_dir` and `store_engine`: the other engine, say), then check it whole. The old
    /// store is left untouched; a target folder that holds anything is refused.
    Migrate {
        /// The configuration the spoke runs with now.
        #[arg(long)]
        from: PathBuf,
        /// The configuration to run with after the move.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum TrustListCommand {
    /// Print the list held and whether it is fresh.
    Show {
        #[arg(long, env = "CARAVAN_SPOKE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DecisionArg {
    Accepted,
    Rejected,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Plain,
    Json,
}

/// A command's failure, with the exit code it maps to.
struct Failure(u8, String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotRunning { .. } => EX_UNAVAILABLE,
            ClientError::Api(error, _) if error.code == "HUB_UNAVAILABLE" => EX_UNAVAILABLE,
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
        Command::Keygen { out, json } => keygen(out, json),
        Command::Token { name, out } => {
            let (token, hash) = caravan_spoke::api::nsw::new_token();
            caravan_common::signing::write_secret_file(&out, format!("{token}\n").as_bytes())
                .map_err(|e| Failure(1, e.to_string()))?;
            caravan_common::out!("[[nsw.tokens]]\nname = {:?}\nsha256 = \"{hash}\"", name);
            Ok(())
        }
        Command::OfficerPassword { user } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Failure(1, e.to_string()))?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.len() < 8 {
                return Err(Failure(
                    EX_USAGE,
                    "the password must have at least 8 characters".into(),
                ));
            }
            let hash = caravan_spoke::api::console::hash_password(password);
            caravan_common::out!(
                "[[console.officers]]\nuser = {user:?}\npassword_hash = \"{hash}\""
            );
            Ok(())
        }
        Command::Store {
            command:
                StoreCommand::Check {
                    config,
                    store,
                    json,
                },
        } => store_check(&config, store.as_deref(), json),
        Command::Store {
            command: StoreCommand::Migrate { from, to },
        } => store_migrate(&from, &to),
        Command::Info { config, json } => {
            let path = config;
            let file: caravan_spoke::config::SpokeFile =
                caravan_common::config::read_toml(&path)
                    .map_err(|e| Failure(EX_USAGE, e.to_string()))?;
            let control =
                ControlConfig::load(&path).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
            let info = serde_json::json!({
                "participant": file.participant,
                "hub_url": file.hub_url,
                "api_url": file.nsw.as_ref().map(|n| format!("http://{}/api/v1", n.listen)),
                "openapi_url": file.nsw.as_ref().map(|n| format!("http://{}/api/v1/openapi.json", n.listen)),
                "console_url": file.console.as_ref().map(|c| format!("http://{}/console", c.listen)),
                "metrics_url": file.metrics_listen.as_ref().map(|a| format!("http://{a}/metrics")),
                "control_socket": control.control_socket.display().to_string(),
            });
            if json {
                caravan_common::out!("{info}");
            } else {
                for (k, v) in info.as_object().into_iter().flatten() {
                    caravan_common::out!("{k:<15} {}", text(v));
                }
            }
            Ok(())
        }
        Command::Run { config, log_format } => {
            let format = match log_format {
                Format::Plain => LogFormat::Plain,
                Format::Json => LogFormat::Json,
            };
            init_tracing("CARAVAN_SPOKE_LOG", "info", format);
            let config = Config::load(&config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
            caravan_common::process::raise_fd_limit();
            runtime()?
                .block_on(caravan_spoke::run(config, shutdown_signal()))
                .map_err(|e| {
                    let code = match e {
                        caravan_spoke::RunError::StoreDamaged { .. } => EX_DATAERR,
                        _ => 1,
                    };
                    Failure(code, e.to_string())
                })
        }
        Command::Send {
            config,
            to,
            document_type,
            document_id,
            supersedes,
            in_reply_to,
            json,
            wait,
            wait_secs,
            file,
        } => {
            let payload = std::fs::read(&file)
                .map_err(|e| Failure(EX_USAGE, format!("{}: {e}", file.display())))?;
            // Refused here rather than half-uploaded: the spoke would stop reading at its limit.
            let limit = ControlConfig::load(&config)
                .map_err(|e| Failure(EX_USAGE, e.to_string()))?
                .max_payload_bytes;
            if payload.len() > limit {
                return Err(Failure(
                    1,
                    format!(
                        "PAYLOAD_TOO_LARGE: {} is {} bytes; this spoke's limit (max_payload_bytes) is {limit}",
                        file.display(),
                        payload.len()
                    ),
                ));
            }
            let mut query = format!("/v1/documents?to={to}&type={document_type}");
            if let Some(id) = &document_id {
                query.push_str(&format!("&document_id={}", encode_query(id)));
            }
            if let Some(id) = supersedes {
                query.push_str(&format!("&supersedes={id}"));
            }
            if let Some(id) = in_reply_to {
                query.push_str(&format!("&in_reply_to={id}"));
            }
            if wait {
                query.push_str(&format!("&wait={wait_secs}"));
            }
            let sent = call(&config, "POST", &query, payload)?;
            let queued = sent["receipt"].is_null();
            if json {
                caravan_common::out!("{sent}");
            } else {
                caravan_common::out!(
                    "{} {} ({}) as message {}",
                    if queued { "queued" } else { "sent" },
                    text(&sent["document_id"]),
                    document_type,
                    text(&sent["message_id"])
                );
                let r = &sent["receipt"];
                if !queued {
                    caravan_common::out!(
                        "hub receipt: sequence {} accepted at {} (hub key {})",
                        r["hub_sequence"],
                        text(&r["accepted_at"]),
                        text(&r["key_id"])
                    );
                } else if !wait {
                    caravan_common::out!(
                        "the outbox submits it; follow it with `caravan-spoke status`"
                    );
                }
            }
            if wait && queued {
                return Err(Failure(
                    EX_TEMPFAIL,
                    format!(
                        "the hub has not answered within {wait_secs}s; message {} stays queued and will be sent",
                        text(&sent["message_id"])
                    ),
                ));
            }
            Ok(())
        }
        Command::Answer {
            config,
            decision,
            reason,
            wait,
            json,
            message_id,
        } => {
            let decision = match decision {
                DecisionArg::Accepted => "accepted",
                DecisionArg::Rejected => "rejected",
            };
            let mut body = serde_json::json!({ "decision": decision });
            if let Some(reason) = reason {
                body["reason"] = Value::String(reason);
            }
            if wait {
                body["wait"] = Value::from(60);
            }
            let sent = call(
                &config,
                "POST",
                &format!("/v1/inbox/{message_id}/answer"),
                body.to_string().into_bytes(),
            )?;
            if json {
                caravan_common::out!("{sent}");
            } else {
                caravan_common::out!(
                    "answered {message_id} ({decision}) with message {}",
                    text(&sent["message_id"])
                );
            }
            Ok(())
        }
        Command::Export {
            config,
            out,
            sender,
            message_id,
        } => {
            let query = sender.map(|s| format!("?sender={s}")).unwrap_or_default();
            let bundle = call(
                &config,
                "GET",
                &format!("/v1/inbox/{message_id}/evidence{query}"),
                Vec::new(),
            )?;
            let text =
                serde_json::to_string_pretty(&bundle).map_err(|e| Failure(1, e.to_string()))?;
            std::fs::write(&out, text)
                .map_err(|e| Failure(1, format!("{}: {e}", out.display())))?;
            caravan_common::out!("evidence for {message_id} written to {}", out.display());
            Ok(())
        }
        Command::Verify {
            config,
            anchor_key,
            json,
            file,
        } => verify(config, anchor_key, json, file),
        Command::Inbox { config, json } => {
            // The spoke answers a page at a time; the CLI reads them all, in arrival order.
            let mut items: Vec<InboxItem> = Vec::new();
            loop {
                let path = match items.last() {
                    Some(last) => format!("/v1/inbox?since={}", last.cursor),
                    None => "/v1/inbox".to_owned(),
                };
                let page: Vec<InboxItem> =
                    serde_json::from_value(call(&config, "GET", &path, Vec::new())?)
                        .map_err(|e| Failure(1, format!("unexpected answer: {e}")))?;
                let full = page.len() == caravan_spoke::api::control::INBOX_PAGE;
                items.extend(page);
                if !full {
                    break;
                }
            }
            if json {
                let list = serde_json::to_string(&items)
                    .map_err(|e| Failure(1, format!("cannot print the inbox: {e}")))?;
                caravan_common::out!("{list}");
                return Ok(());
            }
            if items.is_empty() {
                caravan_common::out!("the inbox is empty");
            }
            for i in items {
                let verdict = match &i.verification {
                    caravan_spoke::store::Verification::Verified { notes } if notes.is_empty() => {
                        "verified".to_owned()
                    }
                    caravan_spoke::store::Verification::Verified { notes } => {
                        let codes: Vec<&str> = notes.iter().map(|n| n.code.as_str()).collect();
                        format!("verified ({})", codes.join(", "))
                    }
                    caravan_spoke::store::Verification::Rejected { code, .. } => {
                        format!("REJECTED ({code})")
                    }
                };
                caravan_common::out!(
                    "{}  {}  {:<9}  {:<24}  {}  {}",
                    i.received_at,
                    i.message_id,
                    i.document_type.as_deref().unwrap_or("?"),
                    i.document_id.as_deref().unwrap_or("?"),
                    i.sender,
                    verdict
                );
            }
            Ok(())
        }
        Command::Show {
            config,
            payload_out,
            sender,
            json,
            message_id,
        } => {
            let query = sender.map(|s| format!("?sender={s}")).unwrap_or_default();
            let record = call(
                &config,
                "GET",
                &format!("/v1/inbox/{message_id}{query}"),
                Vec::new(),
            )?;
            if let Some(out) = &payload_out {
                let bytes = raw_call(
                    &config,
                    "GET",
                    &format!("/v1/inbox/{message_id}/payload{query}"),
                )?;
                std::fs::write(out, &bytes)
                    .map_err(|e| Failure(1, format!("{}: {e}", out.display())))?;
            }
            if json {
                caravan_common::out!("{record}");
            } else {
                for field in [
                    "message_id",
                    "sender",
                    "document_type",
                    "document_id",
                    "content_type",
                    "payload_length",
                    "payload_sha256",
                    "created_at",
                    "hub_sequence",
                    "accepted_at",
                    "received_at",
                    "supersedes",
                ] {
                    if !record[field].is_null() {
                        caravan_common::out!("{field:<15} {}", text(&record[field]));
                    }
                }
                caravan_common::out!(
                    "{:<15} {}",
                    "verification",
                    describe_verification(&record["verification"])
                );
                for f in record["fields"].as_array().into_iter().flatten() {
                    let language = f["language"]
                        .as_str()
                        .map(|l| format!(" [{l}]"))
                        .unwrap_or_default();
                    caravan_common::out!(
                        "  {:<22} {}{language}",
                        text(&f["label"]),
                        text(&f["value"])
                    );
                }
                if let Some(out) = payload_out {
                    caravan_common::out!("payload written to {}", out.display());
                }
            }
            Ok(())
        }
        Command::TrustList {
            command: TrustListCommand::Show { config, json },
        } => {
            let list = call(&config, "GET", "/v1/trust-list", Vec::new())?;
            if json {
                caravan_common::out!("{list}");
                return Ok(());
            }
            caravan_common::out!(
                "trust list version {} issued {} next update {} ({})",
                list["version"],
                text(&list["issued_at"]),
                text(&list["next_update"]),
                if list["fresh"] == Value::Bool(true) {
                    "fresh"
                } else {
                    "STALE"
                }
            );
            for p in list["participants"].as_array().into_iter().flatten() {
                caravan_common::out!(
                    "  participant {}  {:<9}  {}",
                    text(&p["id"]),
                    text(&p["status"]),
                    text(&p["name"])
                );
            }
            for k in list["keys"].as_array().into_iter().flatten() {
                caravan_common::out!(
                    "  key {}  {}  {}",
                    text(&k["key_id"]),
                    text(&k["participant"]),
                    text(&k["status"])
                );
            }
            for c in list["corridors"].as_array().into_iter().flatten() {
                caravan_common::out!(
                    "  corridor {} -> {}  {:<9}  {}",
                    text(&c["sender"]),
                    text(&c["recipient"]),
                    text(&c["document_type"]),
                    text(&c["state"])
                );
            }
            Ok(())
        }
        Command::Log { config, json } => {
            let log = call(&config, "GET", "/v1/log", Vec::new())?;
            let total = log["alarms_total"].as_u64().unwrap_or(0);
            if json {
                caravan_common::out!("{log}");
            } else {
                match log["last_verified_head"].as_object() {
                    Some(h) => caravan_common::out!(
                        "exchange log verified up to {} entries (root {}, signed {})",
                        h["size"],
                        text(&h["root"]),
                        text(&h["signed_at"])
                    ),
                    None => caravan_common::out!("no exchange-log head verified yet"),
                }
                caravan_common::out!("{total} alarm(s)");
                for a in log["alarms"].as_array().into_iter().flatten() {
                    caravan_common::out!(
                        "  {}  {}  {}",
                        text(&a["at"]),
                        text(&a["code"]),
                        text(&a["detail"])
                    );
                }
            }
            if total > 0 {
                return Err(Failure(
                    1,
                    format!("{total} exchange-log alarm(s): see above and docs/runbook.md"),
                ));
            }
            Ok(())
        }
        Command::Status {
            config,
            json,
            message_id,
        } => {
            let status = call(
                &config,
                "GET",
                &format!("/v1/sent/{message_id}/status"),
                Vec::new(),
            )?;
            if json {
                caravan_common::out!("{status}");
            } else {
                caravan_common::out!("{message_id}: {}", text(&status["state"]));
                for t in status["transitions"].as_array().into_iter().flatten() {
                    caravan_common::out!("  {:<13} {}", text(&t["state"]), text(&t["at"]));
                }
                let ack = &status["acknowledgement"];
                if !ack.is_null() {
                    let verified = if ack["verified"] == Value::Bool(true) {
                        "signature verified"
                    } else {
                        "SIGNATURE NOT VERIFIED"
                    };
                    caravan_common::out!(
                        "recipient's acknowledgement: {} ({verified})",
                        text(&ack["ack"]["outcome"])
                    );
                }
            }
            Ok(())
        }
    }
}

fn verify(
    config: Option<PathBuf>,
    anchor_key: Option<PathBuf>,
    json: bool,
    file: PathBuf,
) -> Result<(), Failure> {
    let usage = |e: String| Failure(EX_USAGE, e);
    let anchor_text = match (config, anchor_key) {
        (Some(config), _) => {
            let file: caravan_spoke::config::SpokeFile =
                caravan_common::config::read_toml(&config).map_err(|e| usage(e.to_string()))?;
            file.anchor_public_key
        }
        (None, Some(path)) => {
            std::fs::read_to_string(&path).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        (None, None) => return Err(usage("give --config or --anchor-key".into())),
    };
    let anchor = caravan_common::signing::PublicKey::from_base64(anchor_text.trim())
        .map_err(|e| usage(e.to_string()))?;
    let text =
        std::fs::read_to_string(&file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    let bundle: caravan_spoke::evidence::Bundle = serde_json::from_str(&text).map_err(|e| {
        Failure(
            1,
            format!("{} is not an evidence bundle: {e}", file.display()),
        )
    })?;
    let verdict = caravan_spoke::evidence::verify(&bundle, &anchor);
    if json {
        caravan_common::out!(
            "{}",
            serde_json::to_string(&verdict).map_err(|e| Failure(1, e.to_string()))?
        );
    } else {
        for c in &verdict.checks {
            caravan_common::out!(
                "{} {:<26} {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        caravan_common::out!(
            "{}",
            if verdict.genuine {
                "GENUINE"
            } else {
                "NOT GENUINE"
            }
        );
    }
    if verdict.genuine {
        Ok(())
    } else {
        Err(Failure(1, "the bundle is not genuine".into()))
    }
}

fn keygen(out: PathBuf, json: bool) -> Result<(), Failure> {
    let key = SigningKey::generate();
    key.save(&out).map_err(|e| Failure(1, e.to_string()))?;
    // The public half, for the hub operator (`caravan-hub admin key register --public-key`).
    let mut public = out.clone().into_os_string();
    public.push(".pub");
    let public = PathBuf::from(public);
    std::fs::write(&public, format!("{}\n", key.public().to_base64()))
        .map_err(|e| Failure(1, format!("{}: {e}", public.display())))?;
    if json {
        caravan_common::out!(
            "{}",
            serde_json::json!({
                "key_id": key.key_id().to_string(),
                "public_key": key.public().to_base64(),
                "file": out.display().to_string(),
            "public_key_file": public.display().to_string(),
            })
        );
    } else {
        caravan_common::out!("key id:     {}", key.key_id());
        caravan_common::out!("public key: {}", key.public().to_base64());
        caravan_common::out!(
            "written to: {} (mode 0600); public key in {}",
            out.display(),
            public.display()
        );
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(1, e.to_string()))
}

fn raw_call(config: &std::path::Path, method: &str, path: &str) -> Result<Vec<u8>, Failure> {
    raw_call_body(config, method, path, Vec::new())
}

fn raw_call_body(
    config: &std::path::Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, Failure> {
    let control = ControlConfig::load(config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(1, e.to_string()))?;
    let bytes = runtime.block_on(control::call(&control.control_socket, method, path, body))?;
    Ok(bytes.to_vec())
}

fn call(
    config: &std::path::Path,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Value, Failure> {
    let bytes = raw_call_body(config, method, path, body)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Failure(1, format!("unexpected answer from the spoke: {e}")))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn describe_verification(v: &Value) -> String {
    match v["status"].as_str() {
        Some("verified") => {
            "verified end to end (signature, signing key, sender, payload, hub receipt)".into()
        }
        _ => format!("REJECTED: {}: {}", text(&v["code"]), text(&v["reason"])),
    }
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass through).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `store check`: the whole walk of the stopped spoke's store, or of a copy.
fn store_migrate(from: &std::path::Path, to: &std::path::Path) -> Result<(), Failure> {
    let old = Config::load(from).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    let new = Config::load(to).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    let (source, target) = (old.data_dir.join("store"), new.data_dir.join("store"));
    let (moved, report) =
        caravan_spoke::store::SpokeStore::migrate(&source, &target, new.store_engine).map_err(
            |e| {
                Failure(
                    1,
                    format!(
                        "the store was not moved: {e} (is the spoke running? stop it first: the store has one owner)"
                    ),
                )
            },
        )?;
    for line in report.lines() {
        caravan_common::out!("{line}");
    }
    if !report.is_sound() {
        return Err(Failure(
            1,
            format!(
                "the moved store in {} does not hold ({} problem(s)); the old store is untouched",
                target.display(),
                report.problems.len()
            ),
        ));
    }
    caravan_common::out!(
        "moved the store in {} ({}) to {} ({}): {} records, {} bytes of payload segments; store check passed",
        source.display(),
        moved.from,
        target.display(),
        moved.to,
        moved.records,
        moved.segment_bytes
    );
    Ok(())
}

fn store_check(
    config: &std::path::Path,
    backup: Option<&std::path::Path>,
    json: bool,
) -> Result<(), Failure> {
    use caravan_spoke::store::SpokeStore;
    let config = Config::load(config).map_err(|e| Failure(EX_USAGE, e.to_string()))?;
    // A small cache: the walk reads each record once.
    const CACHE: u64 = 8 << 20;
    let store = match backup {
        Some(path) => SpokeStore::open_found(path, CACHE)
            .map_err(|e| Failure(1, e.to_string()))?
            .ok_or_else(|| Failure(1, format!("{} holds no store", path.display())))?,
        None => SpokeStore::open(&config.data_dir.join("store"), config.store_engine, CACHE)
            .map_err(|e| {
                Failure(
                    1,
                    format!(
                        "{e} (is the spoke running? stop it first, or check a copy with --store: the store has one owner)"
                    ),
                )
            })?,
    };
    let report = store.check();
    if json {
        caravan_common::out!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Failure(1, e.to_string()))?
        );
    } else {
        for line in report.lines() {
            caravan_common::out!("{line}");
        }
    }
    if report.is_sound() {
        Ok(())
    } else {
        Err(Failure(
            1,
            format!("{} problem(s) in the store", report.problems.len()),
        ))
    }
}
