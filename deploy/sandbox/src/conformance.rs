//! The conformance kit run against each sandbox spoke before its corridors open, as a hub
//! operator would for a new country: the candidate's test instance (its own certificate and
//! signing key, a folder of its own, pointed at the kit's stand-in hub and pinning the kit's
//! anchor) is driven through every case, and sends the kit the documents it issues, addressed
//! to the conformance identity ZZ.

use std::{collections::BTreeSet, path::Path, time::Duration};

use anyhow::Context;

use caravan_common::{DocumentType, ParticipantId, Timestamp};
use caravan_hub::{
    conformance::{
        self, IDENTITY, KitKeys, Options,
        report::{Outcome, Recorded, Report},
    },
    operator::{Operator, OperatorError},
};
use caravan_proto::v1;

use crate::{documents::SAMPLES, spoke_config};

/// Run the kit against `id`, registered in the hub whose config is `hub_config` as
/// `registry` (the hub's trust list) records it; the report.
pub async fn run_kit(
    dir: &Path,
    hub_config: &Path,
    registry: &v1::TrustList,
    id: ParticipantId,
    run: u64,
) -> anyhow::Result<Report> {
    let hub = caravan_hub::Config::load(hub_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let kit_dir = conformance::default_dir(&hub);
    let keys = KitKeys::open_or_create(&kit_dir)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    // The candidate's test instance: beside its production spoke, never in its folder.
    let mut spoke =
        caravan_spoke::Config::load(&spoke_config(dir, id)).map_err(|e| anyhow::anyhow!("{e}"))?;
    spoke.hub_urls = vec![format!("https://127.0.0.1:{port}")];
    spoke.anchor = keys.anchor.public().clone();
    spoke.data_dir = dir.join(id.as_str()).join("conformance");
    spoke.control_socket = spoke.data_dir.join("control.sock");
    spoke.nsw = None;
    spoke.console = None;
    spoke.metrics_listen = None;
    let socket = spoke.control_socket.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let candidate = tokio::spawn(caravan_spoke::run(spoke, async move {
        let _ = stopped.await;
    }));
    // What it issues: the samples it sends in the sandbox, addressed to ZZ instead.
    let issued = Timestamp::from_millis(Timestamp::now().as_millis() - 60_000);
    let documents: Vec<(DocumentType, Vec<u8>)> = SAMPLES
        .iter()
        .filter(|s| s.from() == id)
        .map(|s| (s.document_type, s.addressed_to_conformance(issued, run)))
        .collect();
    let sends: BTreeSet<DocumentType> = documents.iter().map(|(t, _)| *t).collect();
    let refused = std::sync::Arc::new(std::sync::Mutex::new(None));
    let sender = tokio::spawn(send_when_connected(socket, documents, refused.clone()));
    let options = Options {
        types: DocumentType::ALL.into_iter().collect(),
        sends,
        connect_timeout: Duration::from_secs(60),
        case_timeout: Duration::from_secs(20),
        send_timeout: Duration::from_secs(60),
    };
    let failed = |line: &str| {
        if line.starts_with("FAIL") {
            println!("   {id} {line}");
        }
    };
    let report = conformance::run(hub, &kit_dir, listener, registry, id, options, &failed).await;
    sender.abort();
    if let Some(why) = refused.lock().unwrap_or_else(|e| e.into_inner()).take() {
        println!("   {id}: {why}");
    }
    let _ = stop.send(());
    candidate
        .await
        .context("the candidate's test spoke")?
        .with_context(|| format!("{id}'s test spoke"))?;
    Ok(report?)
}

/// Send the candidate's test spoke `documents` for ZZ, as its NSW would: each once the spoke
/// takes it (it refuses a recipient its trust list does not name yet, as just after it
/// connects), until the task is stopped. The last refusal of a document not sent is kept in
/// `refused`, for the report.
async fn send_when_connected(
    socket: std::path::PathBuf,
    documents: Vec<(DocumentType, Vec<u8>)>,
    refused: std::sync::Arc<std::sync::Mutex<Option<String>>>,
) {
    for (t, payload) in documents {
        let path = format!("/v1/documents?to={IDENTITY}&type={t}&wait=30");
        loop {
            match caravan_spoke::client::call(&socket, "POST", &path, payload.clone()).await {
                Ok(_) => {
                    *refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    break;
                }
                Err(e) => {
                    *refused.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("its test spoke did not take the {t}: {e}"));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// Run the kit against every spoke still in testing or pilot, and have the hub record each
/// report; print each verdict, and where its readable page is. True when every spoke is
/// admitted (passed now, or at production already).
pub async fn admit(
    dir: &Path,
    hub_config: &Path,
    spokes: &[ParticipantId],
    run: u64,
) -> anyhow::Result<bool> {
    let operator = Operator::connect(&dir.join("operator").join("admin.toml"))?;
    let hub = caravan_hub::Config::load(hub_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let signed = operator.signed_trust_list().await?;
    let (registry, trust) = caravan_proto::trust_list::open(&signed, hub.anchor_key.public())
        .map_err(|r| anyhow::anyhow!("the hub's trust list does not verify: {r}"))?;
    let pages = dir.join("conformance");
    let mut all = true;
    for id in spokes {
        if trust.participant(*id).map(|p| p.stage)
            == Some(caravan_common::trust::ParticipantStage::Production)
        {
            println!("conformance {id}: in production already (admitted on an earlier run)");
            continue;
        }
        println!(
            "conformance {id}: the kit drives {id}'s test instance through every case (its spoke logs the hostile ones it refuses)"
        );
        let report = run_kit(dir, hub_config, &registry, *id, run).await?;
        let json = report.to_json();
        let record = operator
            .admin()
            .record_conformance_report(v1::RecordConformanceReportRequest {
                report_json: json.clone(),
            })
            .await
            .map_err(OperatorError::from)?
            .into_inner();
        let signature = record
            .signature
            .as_ref()
            .map_or("not signed".to_owned(), |s| {
                format!("signed by the hub's receipt key {}", s.key_id)
            });
        std::fs::create_dir_all(&pages)?;
        let page = pages.join(format!("{id}.html"));
        std::fs::write(pages.join(format!("{id}.json")), &json)?;
        std::fs::write(
            &page,
            report.to_html(&Recorded {
                id: record.id,
                recorded_at: Timestamp::from_millis(record.recorded_at_ms),
                recorded_by: &record.recorded_by,
                signature: &signature,
            }),
        )?;
        let passed = report
            .cases
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .count();
        println!(
            "conformance {id}: {} ({passed} of {} cases passed; issues {}); the hub recorded it as report {}, {signature}; {}",
            if report.passed { "PASS" } else { "FAIL" },
            report.cases.len(),
            report
                .sends
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            record.id,
            page.display()
        );
        all &= report.passed;
    }
    Ok(all)
}
