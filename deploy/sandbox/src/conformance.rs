//! The conformance kit run against each sandbox spoke before its corridors open, as a hub
//! operator would for a new country: the candidate's test instance (its own certificate and
//! signing key, a folder of its own, pointed at the kit's stand-in hub and pinning the kit's
//! anchor) is driven through every case, and sends the kit the documents it issues, addressed
//! to the conformance identity ZZ.

use std::{collections::BTreeSet, path::Path, time::Duration};

use anyhow::Context;
use serde_json::Value;

use caravan_common::{DocumentType, ParticipantId, Timestamp};
use caravan_hub::conformance::{self, IDENTITY, KitKeys, Options, report::Report};
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
    spoke.hub_url = format!("https://127.0.0.1:{port}");
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
    let sender = tokio::spawn(send_when_connected(socket, documents));
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
    let _ = stop.send(());
    candidate
        .await
        .context("the candidate's test spoke")?
        .with_context(|| format!("{id}'s test spoke"))?;
    Ok(report?)
}

/// Once the candidate's test spoke is connected, send it `documents` for ZZ.
async fn send_when_connected(
    socket: std::path::PathBuf,
    documents: Vec<(DocumentType, Vec<u8>)>,
) -> anyhow::Result<()> {
    loop {
        let health = caravan_spoke::client::call(&socket, "GET", "/v1/health", Vec::new()).await;
        let connected = health
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|h| h["hub_connected"] == Value::Bool(true));
        if connected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (t, payload) in documents {
        let path = format!("/v1/documents?to={IDENTITY}&type={t}&wait=30");
        caravan_spoke::client::call(&socket, "POST", &path, payload).await?;
    }
    Ok(())
}
