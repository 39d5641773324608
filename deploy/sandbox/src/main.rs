//! `caravan-sandbox`: a whole Caravan network on this machine, for trying it out.
//!
//! It creates (or reuses) a folder with a fresh PKI, a hub config and one config per spoke,
//! starts the hub and the spokes on loopback with real mutual TLS and their stores (redb by
//! default), sends real sample documents between them (an e-CO, an e-Phyto and an e-invoice),
//! records a sample assessment round for the Readiness Scorecard (marked as sample data), and
//! reports what happened. The config files it writes are the ones a user would run by hand with
//! `caravan-hub run --config DIR/hub/hub.toml` and `caravan-spoke run --config DIR/KZ/spoke.toml`.

#![forbid(unsafe_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::Value;
use tokio::task::JoinHandle;

use caravan_common::{
    DocumentType, ParticipantId,
    process::{LogFormat, init_tracing, shutdown_signal},
    store::EngineKind,
};
use caravan_sandbox::{
    check_spokes_exist, create,
    documents::{INCONSISTENT_EPHYTO, SAMPLES},
    open_corridors, register_when_up,
    scorecard::Seeding,
    spoke_config,
};
use caravan_spoke::{
    api::views::{CheckView, VerdictView},
    client::ClientError,
    i18n::Lang,
};

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
    /// Participant ids of the spokes: KZ, CN and UZ, between which the sample documents
    /// travel, and any others.
    #[arg(long, value_delimiter = ',', default_value = "KZ,CN,UZ")]
    spokes: Vec<ParticipantId>,
    /// Send the sample documents, seed the sample scorecard, report, and exit: 0 only if every
    /// document was delivered and verified and the scorecard was seeded (or held entries
    /// already).
    #[arg(long)]
    once: bool,
    /// The storage engine of new stores (hub and spokes): redb, the default, or sled (see the
    /// README's performance section). An existing sandbox keeps its own.
    #[arg(long, default_value = "redb")]
    store_engine: EngineKind,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing("CARAVAN_SANDBOX_LOG", "warn", LogFormat::Plain);
    caravan_common::process::raise_fd_limit();
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
    for sample in &SAMPLES {
        if !spokes.contains(&sample.from()) || !spokes.contains(&sample.to()) {
            bail!(
                "the sample documents travel KZ -> CN, UZ -> KZ and CN -> UZ (each consistent with its sender): --spokes must include KZ, CN and UZ"
            );
        }
    }
    let dir = std::path::absolute(&cli.dir)?;
    let hub_config = dir.join("hub").join("hub.toml");
    if hub_config.exists() {
        println!("reusing {}", dir.display());
        check_spokes_exist(&dir, &spokes)?;
    } else {
        create(&dir, &spokes, cli.store_engine)?;
        println!("created {}: PKI, hub and spoke configs", dir.display());
    }

    // Start the hub and the spokes, as `caravan-hub run` and `caravan-spoke run` would.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let hub = caravan_hub::Config::load(&hub_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dashboard = hub.dashboard_listen;
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
    // Numbers this run's documents, those the conformance kit is sent too.
    let run = caravan_sandbox::documents::next_run(&dir)
        .with_context(|| format!("counting this run in {}", dir.display()))?;
    // Registered in testing; the conformance kit admits each spoke before its corridors open.
    let onboarded = tokio::select! {
        onboarded = onboard(&dir, &hub_config, &spokes, run) => onboarded,
        () = any_ended(&tasks) => Err(anyhow::anyhow!("the hub stopped")),
    };
    if let Err(e) = onboarded {
        // The hub's own error, if it stopped, says more than the wait for it.
        let _ = stop_tx.send(true);
        for task in tasks {
            task.await??;
        }
        return Err(e);
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
            if console.officers.iter().any(|o| o.user == "issuer")
                && let Some(to) = spokes.iter().find(|s| *s != id)
            {
                println!(
                    "         issue a certificate there: log in as `issuer`, Certificates, New e-Phyto for {to}, fill it in and Submit for approval; then log in as `approver` and Approve and send: {to} receives it verified; its printout's QR code leads to the public page http://{}/verify/<code>",
                    console.listen
                );
            }
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

    let outcome = tokio::select! {
        outcome = exchange(&dir, &spokes, run) => outcome,
        () = any_ended(&tasks) => Err(anyhow::anyhow!("the hub or a spoke stopped; its error follows")),
    };
    let all_good = match &outcome {
        Ok(ok) => *ok,
        Err(e) => {
            eprintln!("caravan-sandbox: {e:#}");
            false
        }
    };
    // A sample assessment round for the scorecard, once the corridors are open and the
    // documents have travelled (not tried when the network did not come up: that error stands).
    let mut seeded = true;
    if outcome.is_ok() {
        let seeding = tokio::select! {
            seeding = seed_scorecard(&dir, dashboard) => seeding,
            () = any_ended(&tasks) => Err(anyhow::anyhow!("the hub or a spoke stopped; its error follows")),
        };
        if let Err(e) = seeding {
            eprintln!("caravan-sandbox: {e:#}");
            seeded = false;
        }
    }
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
            "all documents delivered and verified; every consistent one judged consistent, the inconsistent ones refused or marked FAIL"
        } else {
            "SOME DOCUMENTS FAILED"
        }
    );
    if !seeded {
        println!("THE SAMPLE SCORECARD WAS NOT SEEDED");
    }
    Ok(all_good && seeded)
}

// === the scorecard ===

/// Record the sample assessment round (`caravan_sandbox::scorecard`) unless the hub holds
/// scorecard entries already, and say where to look at it.
async fn seed_scorecard(dir: &Path, dashboard: Option<SocketAddr>) -> anyhow::Result<()> {
    let seeding = caravan_sandbox::scorecard::seed(&dir.join("operator").join("admin.toml"))
        .await
        .context("seeding the sample scorecard")?;
    let look = format!(
        "{}`caravan-hub admin --config {} scorecard show`",
        dashboard
            .map(|a| format!(
                "https://localhost:{}/scorecard on the hub's dashboard, or ",
                a.port()
            ))
            .unwrap_or_default(),
        dir.join("operator").join("admin.toml").display()
    );
    match seeding {
        Seeding::Seeded {
            round,
            countries,
            kpis,
            assessments,
            overrides,
        } => println!(
            "\noperator seeded the scorecard with sample data, not official scores: round {round}, {assessments} assessments ({countries} countries x {kpis} assessed KPIs) and {overrides} override of a measured KPI; see {look}"
        ),
        Seeding::Held { entries } => println!(
            "\nthe scorecard holds {entries} entries already, so no sample round was seeded; see {look}"
        ),
    }
    Ok(())
}

// === exchanging documents ===

/// One document sent, and what its recipient must conclude of it.
struct Trip {
    from: ParticipantId,
    to: ParticipantId,
    document_type: DocumentType,
    payload: Vec<u8>,
    sample: &'static str,
    /// `GENUINE_AND_CONSISTENT`, or the rule the recipient must FAIL it on.
    expected: Expected,
}

#[derive(Clone, Copy, PartialEq)]
enum Expected {
    Consistent,
    Fails(&'static str),
}

async fn control(
    dir: &Path,
    id: ParticipantId,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Value> {
    let socket = dir.join(id.as_str()).join("data").join("control.sock");
    let bytes = caravan_spoke::client::call(&socket, method, path, body).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Completes when any of `tasks` has ended: a hub or spoke that stops (a port taken, say) ends
/// a wait for it at once, and its error is shown.
async fn any_ended(tasks: &[JoinHandle<anyhow::Result<()>>]) {
    while !tasks.iter().any(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// Register the spokes, run the conformance kit against each one still in testing, and
/// admit them to production with their corridors open once every one passed.
async fn onboard(
    dir: &Path,
    hub_config: &Path,
    spokes: &[ParticipantId],
    run: u64,
) -> anyhow::Result<()> {
    register_when_up(dir, spokes, None, PATIENCE).await?;
    if !caravan_sandbox::conformance::admit(dir, hub_config, spokes, run).await? {
        bail!(
            "a spoke failed the conformance kit, so its corridors stay closed (the reports are in {})",
            dir.join("conformance").display()
        );
    }
    open_corridors(dir, spokes, None).await?;
    println!();
    Ok(())
}

async fn exchange(dir: &Path, spokes: &[ParticipantId], run: u64) -> anyhow::Result<bool> {
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
    // Issued a minute ago, under numbers of this run's own: the recipients' date and
    // duplicate checks pass however often the sandbox runs.
    let issued = caravan_common::Timestamp::from_millis(
        caravan_common::Timestamp::now().as_millis() - 60_000,
    );
    let mut trips: Vec<Trip> = SAMPLES
        .iter()
        .map(|s| Trip {
            from: s.from(),
            to: s.to(),
            document_type: s.document_type,
            payload: s.issued_at(issued, run),
            sample: s.path,
            expected: Expected::Consistent,
        })
        .collect();
    // Deliberately inconsistent: the certificate of origin sent again under a new message id,
    // without superseding the first. Its signature is genuine; the recipient marks it FAIL.
    let first = &trips[0];
    let again = Trip {
        from: first.from,
        to: first.to,
        document_type: first.document_type,
        payload: first.payload.clone(),
        sample: first.sample,
        expected: Expected::Fails("DUPLICATE_NUMBER"),
    };
    trips.push(again);
    let mut all_good = refuses_before_signing(dir).await?;

    let mut sent = Vec::new();
    for trip in &trips {
        let path = format!(
            "/v1/documents?to={}&type={}&wait=30",
            trip.to, trip.document_type
        );
        match control(dir, trip.from, "POST", &path, trip.payload.clone()).await {
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
                if trip.expected != Expected::Consistent {
                    println!(
                        "              the same certificate again, under a new message id: deliberately inconsistent"
                    );
                }
                sent.push((text(&answer["message_id"]), trip));
            }
            Err(e) => {
                all_good = false;
                println!(
                    "{} -> {}  {:<9} NOT SENT ({}): {e:#}",
                    trip.from, trip.to, trip.document_type, trip.sample
                );
            }
        }
    }
    println!();
    for (message_id, trip) in &sent {
        all_good &= received(dir, message_id, trip).await?;
    }
    Ok(all_good)
}

/// A KZ-signed e-Phyto for CN whose authority, export and import countries are another
/// continent's: KZ's spoke must refuse it before signing, saying why.
async fn refuses_before_signing(dir: &Path) -> anyhow::Result<bool> {
    let (sample, payload) = INCONSISTENT_EPHYTO;
    let from: ParticipantId = "KZ".parse()?;
    let answer = control(
        dir,
        from,
        "POST",
        "/v1/documents?to=CN&type=e-phyto&wait=30",
        payload.to_vec(),
    )
    .await;
    let refused = match &answer {
        Err(e) => match e.downcast_ref::<ClientError>() {
            Some(ClientError::Api(error, _)) => {
                (error.code == "CONTENT_CHECK_FAILED").then(|| error.message.clone())
            }
            _ => None,
        },
        Ok(_) => None,
    };
    match &refused {
        Some(why) => println!(
            "KZ -> CN  e-phyto   refused by KZ before signing ({sample}, an Argentine certificate):\n              {}\n",
            why.replace(") ", ")\n              ")
        ),
        None => println!(
            "KZ -> CN  e-phyto   NOT REFUSED ({sample}): {}\n",
            match answer {
                Ok(a) => format!("sent as message {}", text(&a["message_id"])),
                Err(e) => format!("{e:#}"),
            }
        ),
    }
    Ok(refused.is_some())
}

/// Wait for `trip` in its recipient's inbox and its acknowledgement at its sender, and report
/// both: whether it arrived intact and verified, and what the recipient's content checks
/// concluded. True when all is as expected.
async fn received(dir: &Path, message_id: &str, trip: &Trip) -> anyhow::Result<bool> {
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
    let payload = caravan_spoke::client::call(
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
    let judged = judged(&received, trip.expected);
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
    Ok(verified && identical && ack_verified && state["state"] == "ACKNOWLEDGED" && judged)
}

/// Print the recipient's verdict on what the document says, each check that did not pass
/// with its reason in words; true when it is the one expected.
fn judged(item: &Value, expected: Expected) -> bool {
    let verdict: Option<VerdictView> = serde_json::from_value(item["verdict"].clone()).ok();
    let checks: Vec<CheckView> = serde_json::from_value(item["checks"].clone()).unwrap_or_default();
    let english = Lang::default();
    let Some(verdict) = verdict else {
        println!("   content checks: NONE (the document was not verified or not understood)");
        return false;
    };
    let passed: Vec<&str> = checks
        .iter()
        .filter(|c| c.outcome == caravan_spoke::checks::Outcome::Pass)
        .map(|c| c.check.as_str())
        .collect();
    println!(
        "   content checks: {} (passed: {})",
        verdict.status,
        passed.join(", ")
    );
    for c in checks
        .iter()
        .filter(|c| c.outcome != caravan_spoke::checks::Outcome::Pass)
    {
        println!(
            "     {} {} {}: {}",
            c.outcome.as_str(),
            c.check,
            c.rule,
            english.message(&c.message_key, &c.params)
        );
    }
    match expected {
        Expected::Consistent => verdict.status == "GENUINE_AND_CONSISTENT",
        Expected::Fails(rule) => {
            let fails = verdict.status == "GENUINE_BUT_INCONSISTENT"
                && verdict.headline.is_some_and(|h| h.rule == rule);
            if fails {
                println!("     (sent deliberately: the recipient marks it FAIL, as it should)");
            }
            fails
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
