//! What restarts and restores must not lose: documents the hub gave receipts for before it was
//! restored from an older backup, and the trust list a restarted spoke judges by; and what a
//! restart must not leave behind: the previous process's `listening.json`.

use caravan_common::process::Listening;
use caravan_tests::{Net, PATIENCE, sample_path};

/// A hub restored from a backup no longer knows the documents it accepted after the backup.
/// Their sender holds receipts for them: it finds them, resubmits them under their message
/// ids, and raises one alarm naming them; the recipient gets each exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn documents_receipted_after_the_backup_are_resubmitted_after_a_restore() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let first = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &first, "ACKNOWLEDGED").await;
    let backup: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["backup", "--json"]).await).unwrap();
    let path = backup["path"].as_str().unwrap().to_owned();

    // CN is away: three documents are receipted by the hub and wait there.
    net.kill_spoke("CN");
    let mut stranded: Vec<String> = Vec::new();
    for _ in 0..3 {
        let sent = net.send("KZ", "CN", "e-co", &eco).await;
        assert_eq!(sent["state"], "ACCEPTED", "{sent}");
        stranded.push(sent["message_id"].as_str().unwrap().to_owned());
    }

    assert!(net.terminate_hub().await);
    let out = net.hub_cli(&["restore", "--json", "--from", &path]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    net.start_hub().await;
    net.start_spoke("CN").await;
    for id in &stranded {
        net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    }
    for id in stranded.iter().chain([&first]) {
        assert_eq!(net.inbox_copies("CN", id).await, 1, "{id} in CN's inbox");
    }
    // One alarm for the incident, naming every document.
    let out = net.spoke_cli("KZ", &["log", "--json"]).await;
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost: Vec<&serde_json::Value> = view["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["code"] == "HUB_LOST_DOCUMENTS")
        .collect();
    assert_eq!(lost.len(), 1, "{view}");
    // The rewound log is one incident too: one alarm, not one per proof that fails.
    let log_alarms = view["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["code"] != "HUB_LOST_DOCUMENTS")
        .count();
    assert!(
        log_alarms <= 1,
        "{log_alarms} log alarms for one restore: {view}"
    );
    let detail = lost[0]["detail"].as_str().unwrap();
    for id in &stranded {
        assert!(detail.contains(id.as_str()), "{id} not named: {detail}");
    }
    assert!(!detail.contains(first.as_str()), "{detail}");
    let status = net.spoke_json("KZ", &["status", &stranded[0]]).await;
    assert!(
        status["sent"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("resubmitted under the same message id")),
        "{status}"
    );
}

/// A spoke restarted with an old trust list asks the hub for the current one before it judges
/// any delivery: a key registered while it was down verifies.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_spoke_judges_deliveries_with_the_current_trust_list() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("CN").await;
    let held = net.hub_trust_version().await;
    net.wait_trust_version("CN", held).await;
    net.kill_spoke("CN");

    // While CN is down, KZ gets a new key (a new trust list) and signs with it.
    net.add_key("KZ", &["e-co", "e-phyto", "e-invoice"], None, None)
        .await;
    assert!(net.hub_trust_version().await > held);
    net.spoke_key.insert("KZ".into(), 1);
    net.start_spoke("KZ").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let id = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let start = std::time::Instant::now();
    net.start_spoke("CN").await;
    let item = net.wait_inbox("CN", &id).await;
    assert_eq!(item["verified"], true, "{item}");
    net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
    assert!(start.elapsed() < PATIENCE);
}

/// `listening.json` names every listener a config serves, on the port really bound (all but
/// the hub's first gRPC port were asked for as port 0), and nothing else; a clean stop removes
/// it; a killed process leaves it, and the next one replaces it before anyone reads it as its
/// own.
#[tokio::test(flavor = "multi_thread")]
async fn listening_json_names_the_bound_ports_and_leaves_with_the_process() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let hub = net.hub_listening.clone().expect("the hub's listening.json");
    assert_eq!(hub.grpc.map(|a| a.port()), net.hub_port);
    for addr in [hub.grpc, hub.metrics, hub.dashboard] {
        let addr = addr.expect("each of the hub's listeners named");
        tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{addr} of {hub:?}: {e}"));
    }
    assert_eq!(
        (hub.nsw, hub.console, &hub.control_socket),
        (None, None, &None)
    );

    let spoke = net.spoke_listening("KZ").await;
    assert_ne!(spoke.pid, hub.pid);
    assert_eq!(spoke.control_socket, Some(net.control_socket("KZ")));
    for addr in [spoke.nsw, spoke.metrics] {
        let addr = addr.expect("each of the spoke's listeners named");
        tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{addr} of {spoke:?}: {e}"));
    }
    assert_eq!(
        (spoke.grpc, spoke.dashboard, spoke.console),
        (None, None, None)
    );

    // A clean stop takes the file away.
    assert!(net.terminate_spoke("KZ").await);
    assert_eq!(Listening::read(&net.spoke_data("KZ")).unwrap(), None);

    // A killed hub leaves its file; the next hub's replaces it.
    net.kill_hub();
    assert_eq!(Listening::read(&net.hub_data()).unwrap(), Some(hub.clone()));
    net.start_hub().await;
    let again = net
        .hub_listening
        .clone()
        .expect("the new hub's listening.json");
    assert_ne!(again.pid, hub.pid);
    assert_eq!(
        again.grpc, hub.grpc,
        "a restarted hub keeps its configured port"
    );
    assert_eq!(Listening::read(&net.hub_data()).unwrap(), Some(again));
    assert!(net.terminate_hub().await);
    assert_eq!(Listening::read(&net.hub_data()).unwrap(), None);
}
