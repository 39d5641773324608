//! `caravan-sandbox`: a whole Caravan network on this machine, for trying it out.
//!
//! It creates (or reuses) a folder with a fresh PKI, a hub config and one config per spoke,
//! starts the hub and the spokes on loopback with real mutual TLS and the sled store, sends
//! real sample documents between them (an e-CO, an e-Phyto and an e-invoice), and reports what
//! happened. The config files it writes are the ones a user would run by hand with
//! `caravan-hub run --config DIR/hub/hub.toml` and `caravan-spoke run --config DIR/KZ/spoke.toml`.

#![forbid(unsafe_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::Value;
use tokio::task::JoinHandle;

use caravan_common::{
    DocumentType, ParticipantId,
    config::TlsFiles,
    process::{LogFormat, init_tracing, shutdown_signal},
    signing::SigningKey,
    trust::CorridorState,
};
use caravan_hub::{
    config::HubFile,
    operator::{AdminFile, Operator, OperatorError, read_public_key},
    pki::{self, PkiLayout, Subject},
};
use caravan_proto::v1;
use caravan_spoke::config::{ConsoleFile, NswFile, NswTokenFile, OfficerFile, SpokeFile};

/// The sample documents sent, shipped in the repository (see samples/SOURCES.md).
const ECO: &[u8] = include_bytes!("../../../samples/eco/carec-KZ-CN-certificate-of-origin.xml");
const EPHYTO: &[u8] =
    include_bytes!("../../../samples/ephyto/mattilsynet-SPSCertificateContent.xml");
const EINVOICE: &[u8] = include_bytes!("../../../samples/einvoice/ubl/peppol-base-example.xml");

/// How long to wait for the network to come up and for documents to be acknowledged.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    name = "caravan-sandbox",
    about = "A local Caravan network: a hub and spokes over real mutual TLS"
)]
struct Cli {
    /// Folder for PKI, configs and data; reused if it exists.
    #[arg(long, default_value = "sandbox")]
    dir: PathBuf,
    /// Participant ids of the spokes (at least two).
    #[arg(long, value_delimiter = ',', default_value = "KZ,CN,UZ")]
    spokes: Vec<ParticipantId>,
    /// Send the sample documents, report, and exit: 0 only if every one was delivered and
    /// verified.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing("CARAVAN_SANDBOX_LOG", "warn", LogFormat::Plain);
    match sandbox(Cli::parse()).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("caravan-sandbox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn sandbox(cli: Cli) -> anyhow::Result<bool> {
    let mut spokes = cli.spokes.clone();
    spokes.dedup();
    if spokes.len() < 2 {
        bail!("--spokes needs at least two participants");
    }
    let dir = std::path::absolute(&cli.dir)?;
    let hub_config = dir.join("hub").join("hub.toml");
    if hub_config.exists() {
        println!("reusing {}", dir.display());
        check_spokes_exist(&dir, &spokes)?;
    } else {
        create(&dir, &spokes)?;
        println!("created {}: PKI, hub and spoke configs", dir.display());
    }

    // Start the hub and the spokes, as `caravan-hub run` and `caravan-spoke run` would.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let hub = caravan_hub::Config::load(&hub_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(hub.listen)
        .await
        .with_context(|| format!("hub cannot listen on {}", hub.listen))?;
    println!("hub      listening on https://{} (mutual TLS)", hub.listen);
    if let Some(addr) = hub.dashboard_listen {
        println!(
            "         dashboard https://localhost:{}/dashboard (operator certificate: {}/operator/)",
            addr.port(),
            dir.display()
        );
    }
    let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();
    let rx = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        Ok(caravan_hub::run(hub, listener, stopped(rx)).await?)
    }));
    let start = Instant::now();
    loop {
        match onboard(&dir, &spokes).await {
            Ok(()) => break,
            Err(e)
                if start.elapsed() < PATIENCE
                    && e.downcast_ref::<OperatorError>()
                        .is_some_and(|e| matches!(e, OperatorError::Unavailable(_))) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.context("onboarding the spokes")),
        }
    }
    for id in &spokes {
        let config = caravan_spoke::Config::load(&spoke_config(&dir, *id))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "spoke {id} control socket {}",
            config.control_socket.display()
        );
        if let Some(console) = &config.console {
            println!(
                "         officer console http://{}/console (login in {})",
                console.listen,
                dir.join(id.as_str()).join("officer.txt").display()
            );
        }
        if let Some(nsw) = &config.nsw {
            println!(
                "         NSW API http://{}/api/v1 (token in {})",
                nsw.listen,
                dir.join(id.as_str()).join("nsw-token").display()
            );
        }
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            Ok(caravan_spoke::run(config, stopped(rx)).await?)
        }));
    }

    let outcome = exchange(&dir, &spokes).await;
    let all_good = match &outcome {
        Ok(ok) => *ok,
        Err(e) => {
            eprintln!("caravan-sandbox: {e:#}");
            false
        }
    };
    if !cli.once {
        println!("\nthe network keeps running; try, in another terminal:");
        println!(
            "  cargo run --release -p caravan-spoke -- inbox --config {}",
            spoke_config(&dir, spokes[1]).display()
        );
        println!("press Ctrl-C to stop");
        shutdown_signal().await;
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await??;
    }
    println!(
        "{}",
        if all_good {
            "all documents delivered and verified"
        } else {
            "SOME DOCUMENTS FAILED"
        }
    );
    Ok(all_good)
}

// === creating the sandbox ===

fn spoke_config(dir: &Path, id: ParticipantId) -> PathBuf {
    dir.join(id.as_str()).join("spoke.toml")
}

fn check_spokes_exist(dir: &Path, spokes: &[ParticipantId]) -> anyhow::Result<()> {
    for id in spokes {
        if !spoke_config(dir, *id).exists() {
            bail!(
                "{} was created without spoke {id}; remove the folder or use the same --spokes",
                dir.display()
            );
        }
    }
    Ok(())
}

fn country_name(id: ParticipantId) -> &'static str {
    match id.as_str() {
        "AF" => "Afghanistan",
        "AZ" => "Azerbaijan",
        "CN" => "China",
        "GE" => "Georgia",
        "KZ" => "Kazakhstan",
        "KG" => "Kyrgyz Republic",
        "MN" => "Mongolia",
        "PK" => "Pakistan",
        "TJ" => "Tajikistan",
        "TM" => "Turkmenistan",
        "UZ" => "Uzbekistan",
        _ => "Participant",
    }
}

/// A loopback port that is free now, kept in the configs.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn create(dir: &Path, spokes: &[ParticipantId]) -> anyhow::Result<()> {
    let hub_dir = dir.join("hub");
    let layout = PkiLayout::new(hub_dir.join("pki"));
    let init = pki::init(&layout, &["localhost".into(), "127.0.0.1".into()], 825)?;
    let port = free_port()?;
    let hub = HubFile {
        listen: format!("127.0.0.1:{port}"),
        data_dir: "data".into(),
        max_payload_bytes: caravan_hub::config::DEFAULT_MAX_PAYLOAD_BYTES,
        store_cache_mib: caravan_hub::config::DEFAULT_STORE_CACHE_MIB,
        receipt_key: "pki/hub-receipt.key".into(),
        anchor_key: "pki/hub-anchor.key".into(),
        trust_list_validity_secs: caravan_hub::config::DEFAULT_TRUST_LIST_VALIDITY_SECS,
        message_ttl_secs: Default::default(),
        metrics_listen: Some(format!("127.0.0.1:{}", free_port()?)),
        dashboard_listen: Some(format!("127.0.0.1:{}", free_port()?)),
        backup_dir: None,
        tree_head_interval_secs: 60,
        tls: TlsFiles {
            ca_cert: "pki/ca.pem".into(),
            cert: "pki/hub.pem".into(),
            key: "pki/hub.key".into(),
        },
    };
    write_toml(
        &hub_dir.join("hub.toml"),
        "the Caravan hub (caravan-hub run --config hub.toml)",
        &hub,
    )?;

    // The operator who onboards the spokes (caravan-hub admin --config operator/admin.toml ...).
    let operator_dir = dir.join("operator");
    std::fs::create_dir_all(&operator_dir)?;
    let issued = pki::issue(&layout, &Subject::Operator("sandbox".into()), 825, false)?;
    std::fs::copy(&issued.cert, operator_dir.join("operator.pem"))?;
    copy_secret(&issued.key, &operator_dir.join("operator.key"))?;
    std::fs::copy(layout.ca_cert(), operator_dir.join("ca.pem"))?;
    let admin = AdminFile {
        hub_url: format!("https://127.0.0.1:{port}"),
        hub_tls_name: None,
        tls: TlsFiles {
            ca_cert: "ca.pem".into(),
            cert: "operator.pem".into(),
            key: "operator.key".into(),
        },
    };
    write_toml(
        &operator_dir.join("admin.toml"),
        "the sandbox operator (caravan-hub admin --config admin.toml)",
        &admin,
    )?;

    for id in spokes {
        let spoke_dir = dir.join(id.as_str());
        let tls_dir = spoke_dir.join("tls");
        std::fs::create_dir_all(&tls_dir)?;
        let issued = pki::issue(&layout, &Subject::Participant(*id), 825, false)?;
        std::fs::copy(&issued.cert, tls_dir.join("client.pem"))?;
        copy_secret(&issued.key, &tls_dir.join("client.key"))?;
        std::fs::copy(layout.ca_cert(), tls_dir.join("ca.pem"))?;
        let signing = SigningKey::generate();
        signing.save(&spoke_dir.join("signing.key"))?;
        std::fs::write(
            spoke_dir.join("signing.key.pub"),
            format!("{}\n", signing.public().to_base64()),
        )?;
        // The national single window's bearer token; the config keeps only its SHA-256.
        let (token, token_sha256) = caravan_spoke::nsw::new_token();
        caravan_common::signing::write_secret_file(
            &spoke_dir.join("nsw-token"),
            format!("{token}\n").as_bytes(),
        )?;
        // An officer login for the console: user `officer`, a random password.
        let (password, _) = caravan_spoke::nsw::new_token();
        let password = &password[..20];
        caravan_common::signing::write_secret_file(
            &spoke_dir.join("officer.txt"),
            format!("officer:{password}\n").as_bytes(),
        )?;
        let spoke = SpokeFile {
            participant: id.to_string(),
            hub_url: format!("https://127.0.0.1:{port}"),
            hub_tls_name: None,
            data_dir: "data".into(),
            signing_key: "signing.key".into(),
            control_socket: None,
            max_payload_bytes: caravan_spoke::config::DEFAULT_MAX_PAYLOAD_BYTES,
            anchor_public_key: init.anchor_public_key.clone(),
            nsw: Some(NswFile {
                listen: format!("127.0.0.1:{}", free_port()?),
                tokens: vec![NswTokenFile {
                    name: format!("{}-single-window", id.as_str().to_lowercase()),
                    sha256: token_sha256,
                }],
                webhook_url: None,
            }),
            metrics_listen: Some(format!("127.0.0.1:{}", free_port()?)),
            console: Some(ConsoleFile {
                listen: format!("127.0.0.1:{}", free_port()?),
                officers: vec![OfficerFile {
                    user: "officer".into(),
                    password_hash: caravan_spoke::console::hash_password(password),
                }],
            }),
            tls: TlsFiles {
                ca_cert: "tls/ca.pem".into(),
                cert: "tls/client.pem".into(),
                key: "tls/client.key".into(),
            },
        };
        write_toml(
            &spoke_config(dir, *id),
            &format!("the {id} spoke (caravan-spoke run --config spoke.toml)"),
            &spoke,
        )?;
    }
    Ok(())
}

/// As the sandbox operator: register each spoke, its signing key, and open every corridor
/// between the spokes for all document types. Skips what the registry already holds.
async fn onboard(dir: &Path, spokes: &[ParticipantId]) -> anyhow::Result<()> {
    let operator = Operator::connect(&dir.join("operator").join("admin.toml"))?;
    let trust = operator.trust_list().await?;
    let mut admin = operator.admin();
    let mut changes = 0;
    for id in spokes {
        if trust.participant(*id).is_none() {
            let request = v1::AddParticipantRequest {
                id: id.to_string(),
                name: country_name(*id).into(),
                contact: format!("operations@{}.sandbox.invalid", id.as_str().to_lowercase()),
            };
            admin
                .add_participant(request)
                .await
                .map_err(OperatorError::from)?;
            changes += 1;
        }
        let key = read_public_key(&dir.join(id.as_str()).join("signing.key.pub"))?;
        if trust.key(key.key_id()).is_none() {
            let request = v1::RegisterKeyRequest {
                participant: id.to_string(),
                public_key: key.raw().to_vec(),
                document_types: DocumentType::ALL.iter().map(|t| t.to_string()).collect(),
                not_before_ms: 0,
                not_after_ms: 0,
            };
            admin
                .register_key(request)
                .await
                .map_err(OperatorError::from)?;
            changes += 1;
        }
    }
    for from in spokes {
        for to in spokes.iter().filter(|to| *to != from) {
            for doc in DocumentType::ALL {
                if trust.corridor(*from, *to, doc) != CorridorState::Open {
                    let request = v1::SetCorridorRequest {
                        sender: from.to_string(),
                        recipient: to.to_string(),
                        document_type: doc.to_string(),
                        state: v1::CorridorState::Open as i32,
                    };
                    admin
                        .set_corridor(request)
                        .await
                        .map_err(OperatorError::from)?;
                    changes += 1;
                }
            }
        }
    }
    if changes > 0 {
        println!(
            "operator onboarded {} spokes and opened their corridors ({changes} registry changes)",
            spokes.len()
        );
    }
    Ok(())
}

fn copy_secret(from: &Path, to: &Path) -> anyhow::Result<()> {
    caravan_common::signing::write_secret_file(to, &std::fs::read(from)?)?;
    Ok(())
}

fn write_toml(path: &Path, what: &str, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let body = toml::to_string_pretty(value)?;
    std::fs::write(
        path,
        format!(
            "# Configuration of {what}, written by caravan-sandbox.\n# Every option is described in docs/configuration.md.\n\n{body}"
        ),
    )?;
    Ok(())
}

// === exchanging documents ===

struct Trip {
    from: ParticipantId,
    to: ParticipantId,
    document_type: DocumentType,
    payload: &'static [u8],
    sample: &'static str,
}

async fn control(
    dir: &Path,
    id: ParticipantId,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Value> {
    let socket = dir.join(id.as_str()).join("data").join("control.sock");
    let bytes = caravan_spoke::control::call(&socket, method, path, body).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Poll `check` until it yields a value or `PATIENCE` runs out.
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > PATIENCE {
            bail!("timed out after {}s waiting for {what}", PATIENCE.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn exchange(dir: &Path, spokes: &[ParticipantId]) -> anyhow::Result<bool> {
    for id in spokes {
        wait_for(&format!("spoke {id} to connect to the hub"), async || {
            let health = control(dir, *id, "GET", "/v1/health", Vec::new())
                .await
                .ok()?;
            (health["hub_connected"] == Value::Bool(true)).then_some(())
        })
        .await?;
    }
    println!("all {} spokes connected to the hub\n", spokes.len());
    let n = spokes.len();
    let trips = [
        Trip {
            from: spokes[0],
            to: spokes[1],
            document_type: DocumentType::CertificateOfOrigin,
            payload: ECO,
            sample: "eco/carec-KZ-CN-certificate-of-origin.xml",
        },
        Trip {
            from: spokes[2 % n],
            to: spokes[0],
            document_type: DocumentType::Phytosanitary,
            payload: EPHYTO,
            sample: "ephyto/mattilsynet-SPSCertificateContent.xml",
        },
        Trip {
            from: spokes[1],
            to: spokes[2 % n],
            document_type: DocumentType::Invoice,
            payload: EINVOICE,
            sample: "einvoice/ubl/peppol-base-example.xml",
        },
    ];
    let mut sent = BTreeMap::new();
    for trip in &trips {
        let path = format!(
            "/v1/documents?to={}&type={}&wait=30",
            trip.to, trip.document_type
        );
        match control(dir, trip.from, "POST", &path, trip.payload.to_vec()).await {
            Ok(answer) => {
                println!(
                    "{} -> {}  {:<9} {:<20} message {}\n              hub receipt: sequence {}, accepted {}",
                    trip.from,
                    trip.to,
                    trip.document_type,
                    text(&answer["document_id"]),
                    text(&answer["message_id"]),
                    answer["receipt"]["hub_sequence"],
                    text(&answer["receipt"]["accepted_at"])
                );
                sent.insert(text(&answer["message_id"]), trip);
            }
            Err(e) => println!(
                "{} -> {}  {:<9} NOT SENT ({}): {e:#}",
                trip.from, trip.to, trip.document_type, trip.sample
            ),
        }
    }
    println!();
    let mut all_good = sent.len() == trips.len();
    for (message_id, trip) in &sent {
        let received = wait_for(
            &format!("{message_id} in {}'s inbox", trip.to),
            async || {
                control(
                    dir,
                    trip.to,
                    "GET",
                    &format!("/v1/inbox/{message_id}"),
                    Vec::new(),
                )
                .await
                .ok()
            },
        )
        .await?;
        let payload = caravan_spoke::control::call(
            &dir.join(trip.to.as_str()).join("data").join("control.sock"),
            "GET",
            &format!("/v1/inbox/{message_id}/payload"),
            Vec::new(),
        )
        .await?;
        let verified = received["verification"]["status"] == "verified";
        let identical = payload.as_ref() == trip.payload;
        let state = wait_for(&format!("{message_id} to be acknowledged"), async || {
            let status = control(
                dir,
                trip.from,
                "GET",
                &format!("/v1/sent/{message_id}/status"),
                Vec::new(),
            )
            .await
            .ok()?;
            matches!(status["state"].as_str(), Some("ACKNOWLEDGED" | "REJECTED")).then_some(status)
        })
        .await?;
        let ack_verified = state["acknowledgement"]["verified"] == Value::Bool(true);
        println!(
            "{} received {} {} from {}: {}; payload {} ({} bytes)",
            trip.to,
            text(&received["document_type"]),
            text(&received["document_id"]),
            trip.from,
            if verified {
                "verified end to end".to_owned()
            } else {
                format!("REJECTED {}", received["verification"])
            },
            if identical {
                "byte-identical"
            } else {
                "DIFFERS"
            },
            payload.len()
        );
        println!(
            "   {} sees {}: {} (recipient's signed acknowledgement {})",
            trip.from,
            message_id,
            text(&state["state"]),
            if ack_verified {
                "verified"
            } else {
                "NOT VERIFIED"
            }
        );
        all_good &= verified && identical && ack_verified && state["state"] == "ACKNOWLEDGED";
    }
    Ok(all_good)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
