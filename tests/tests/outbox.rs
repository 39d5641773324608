//! The spoke's durable outbox: documents queued while the hub is away are sent when it comes
//! back, under the same message id, exactly once, across restarts of the spoke.

use caravan_tests::{Net, PATIENCE, metric, sample_path};

const FILES: [(&str, &str); 3] = [
    ("e-co", "eco/carec-KZ-CN-certificate-of-origin.xml"),
    ("e-phyto", "ephyto/carec-KZ-CN-phytosanitary.xml"),
    ("e-invoice", "einvoice/ubl/peppol-base-example.xml"),
];

async fn queue_all(net: &Net) -> Vec<String> {
    let mut ids = Vec::new();
    for (doc_type, file) in FILES {
        let path = sample_path(file);
        let sent = net
            .spoke_json(
                "KZ",
                &[
                    "send",
                    "--to",
                    "CN",
                    "--type",
                    doc_type,
                    path.to_str().unwrap(),
                ],
            )
            .await;
        assert_eq!(sent["state"], "QUEUED");
        assert!(sent["receipt"].is_null());
        ids.push(sent["message_id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_documents_survive_a_spoke_restart_and_go_when_the_hub_returns() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.kill_hub();
    net.wait_hub_connected("KZ", false).await;

    let ids = queue_all(&net).await;
    // --wait gives up after its time, says so, and leaves the document queued.
    let path = sample_path("einvoice/ubl/oasis-UBL-Invoice-2.1-Example.xml");
    let out = net
        .spoke_cli(
            "KZ",
            &[
                "send",
                "--wait",
                "--wait-secs",
                "1",
                "--to",
                "CN",
                "--type",
                "e-invoice",
                path.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stays queued"));

    // The spoke dies with a full outbox and comes back, still without a hub.
    net.kill_spoke("KZ");
    net.launch_spoke("KZ");
    net.wait_control("KZ").await;
    for id in &ids {
        assert_eq!(
            net.spoke_json("KZ", &["status", id]).await["state"],
            "QUEUED"
        );
    }

    net.start_hub().await;
    net.start_spoke("CN").await;
    for id in &ids {
        assert_eq!(net.wait_inbox("CN", id).await["verified"], true);
        let status = net.wait_state("KZ", id, "ACKNOWLEDGED").await;
        assert!(status["sent"]["attempts"].as_u64().unwrap() >= 1);
    }
    let inbox = net.spoke_json("CN", &["inbox"]).await;
    assert_eq!(
        inbox.as_array().unwrap().len(),
        4,
        "the four queued documents, once each: {inbox}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_document_the_hub_refuses_is_settled_with_the_reason() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.kill_hub();
    net.wait_hub_connected("KZ", false).await;
    let ids = queue_all(&net).await;
    // The hub returns with an empty registry: KZ is no participant of it.
    std::fs::remove_dir_all(net.path().join("hub-data")).unwrap();
    net.start_hub().await;
    for id in &ids {
        let status = net.wait_state("KZ", id, "REFUSED").await;
        assert_eq!(
            status["sent"]["refusal"]["code"], "UNKNOWN_PARTICIPANT",
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_not_settled_in_time_expires() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.eco_ttl_secs = Some(2);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let path = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let sent = net.send("KZ", "CN", "e-co", &path).await;
    let id = sent["message_id"].as_str().unwrap();
    let status = net.wait_state("KZ", id, "EXPIRED").await;
    let states: Vec<&str> = status["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["QUEUED", "ACCEPTED", "EXPIRED"]);
    // The recipient, arriving late, is not given the expired document.
    net.start_spoke("CN").await;
    let other = sample_path("ephyto/carec-KZ-CN-phytosanitary.xml");
    let later = net.send("KZ", "CN", "e-phyto", &other).await;
    net.wait_inbox("CN", later["message_id"].as_str().unwrap())
        .await;
    let inbox = net.spoke_json("CN", &["inbox"]).await;
    assert_eq!(
        inbox.as_array().unwrap().len(),
        1,
        "only the unexpired document: {inbox}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_queued_longer_than_its_lifetime_is_refused_once_and_for_good() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.eco_ttl_secs = Some(2);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.kill_hub();
    net.wait_hub_connected("KZ", false).await;
    let path = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let sent = net
        .spoke_json(
            "KZ",
            &[
                "send",
                "--to",
                "CN",
                "--type",
                "e-co",
                path.to_str().unwrap(),
            ],
        )
        .await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    // The hub is away longer than an e-co lives; its header is then too old to accept.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    net.start_hub().await;
    let status = net.wait_state("KZ", &id, "REFUSED").await;
    assert_eq!(
        status["sent"]["refusal"]["code"], "CREATED_AT_EXPIRED",
        "{status}"
    );
    let attempts = status["sent"]["attempts"].as_u64().unwrap();
    // Final: the outbox does not send it again.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let later = net.spoke_json("KZ", &["status", &id]).await;
    assert_eq!(later["state"], "REFUSED", "{later}");
    assert_eq!(later["sent"]["attempts"].as_u64().unwrap(), attempts);
    let refusals = net
        .hub_log()
        .lines()
        .filter(|l| l.contains("code=CREATED_AT_EXPIRED"))
        .count();
    assert_eq!(refusals, 1, "refused once:\n{}", net.hub_log());
}

/// The receipts of documents the hub takes together are kept in one batch of the sending
/// spoke's store, made durable by one flush for the request, not one flush each.
#[tokio::test(flavor = "multi_thread")]
async fn receipts_taken_together_are_kept_with_one_flush() {
    const DOCUMENTS: usize = 20;
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.kill_hub();
    net.wait_hub_connected("KZ", false).await;
    // Small documents (up to 32 KiB go together; a larger one is a request, and a flush, of
    // its own).
    let (doc_type, file) = FILES[0];
    for _ in 0..DOCUMENTS {
        let sent = net
            .send_queued("KZ", "CN", doc_type, &sample_path(file))
            .await;
        assert_eq!(sent["state"], "QUEUED", "{sent}");
    }
    let before = metric(
        &net.spoke_metrics("KZ").await,
        "caravan_spoke_store_flushes_total",
    );

    // CN is not running: the documents stay ACCEPTED once receipted, and the only status
    // events are their acceptances.
    net.start_hub().await;
    let started = std::time::Instant::now();
    let metrics = loop {
        let metrics = net.spoke_metrics("KZ").await;
        if metric(&metrics, "caravan_spoke_outbox_documents") == 0.0 {
            break metrics;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the outbox never drained:\n{metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let flushes = metric(&metrics, "caravan_spoke_store_flushes_total") - before;
    // One for the request's receipts, and the odd one for the log head verified; one per
    // receipt would be at least DOCUMENTS.
    assert!(
        flushes <= 4.0,
        "{flushes} flushes to keep {DOCUMENTS} receipts taken together"
    );
}
