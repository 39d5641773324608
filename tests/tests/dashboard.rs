//! The operators' dashboard: served over TLS to operator certificates only, with the
//! participants online, the corridor matrix, queue depths and recent refusals.

use caravan_proto::v1;
use caravan_tests::{Net, sample_path};

#[tokio::test(flavor = "multi_thread")]
async fn operators_see_the_network_and_nobody_else_does() {
    let mut net = Net::new(&["KZ", "CN", "UZ"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &sample_path("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    net.wait_state("KZ", sent["message_id"].as_str().unwrap(), "ACKNOWLEDGED")
        .await;
    // A refusal for the list of recent ones.
    let refused = net.client("KZ").submit(v1::SubmitRequest::default()).await;
    assert!(refused.is_err());

    // A client that connects and never starts its TLS handshake holds nobody up: the operator
    // is answered long before that handshake's time limit (10 s) runs out.
    let _silent = tokio::net::TcpStream::connect(net.dashboard_addr())
        .await
        .unwrap();

    let pki = net.pki();
    let ops = (pki.join("operators/ops.pem"), pki.join("operators/ops.key"));
    let operator = Some((ops.0.as_path(), ops.1.as_path()));
    let (status, body) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        net.dashboard_get(operator, "/dashboard.json"),
    )
    .await
    .expect("the dashboard answers while another client stalls its handshake")
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["operator"], "ops");
    let online = |id: &str| {
        d["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed: {d}"))["online"]
            .clone()
    };
    assert_eq!(online("KZ"), true, "{d}");
    assert_eq!(online("CN"), true, "{d}");
    assert_eq!(online("UZ"), false, "UZ's spoke is not running: {d}");
    let corridor = &d["corridors"][0];
    assert_eq!(
        (
            &corridor["sender"],
            &corridor["recipient"],
            &corridor["document_type"]
        ),
        (&"KZ".into(), &"CN".into(), &"e-co".into()),
        "{d}"
    );
    assert_eq!(corridor["accepted"], 1, "{d}");
    assert_eq!(corridor["acknowledged"], 1, "{d}");
    assert_eq!(corridor["state"], "open", "{d}");
    assert!(corridor["ack_p50_ms"].as_f64().unwrap() > 0.0, "{d}");
    assert_eq!(d["queued_total"], 0, "{d}");
    assert!(d["log_entries"].as_u64().unwrap() >= 3, "{d}");
    let refusal = &d["recent_refusals"][0];
    assert_eq!(refusal["code"], "MALFORMED_REQUEST", "{d}");
    assert_eq!(refusal["caller"], "KZ", "{d}");

    let (status, page) = net.dashboard_get(operator, "/dashboard").await.unwrap();
    assert_eq!(status, 200);
    for text in [
        "Signed in as operator <b>ops</b>",
        "<h3>e-co</h3>",
        "1 / 1 (0, 0)",
        "MALFORMED_REQUEST",
    ] {
        assert!(page.contains(text), "{text} missing:\n{page}");
    }

    // A participant's certificate is the wrong role; no certificate gets no connection.
    let kz = (
        pki.join("participants/KZ.pem"),
        pki.join("participants/KZ.key"),
    );
    let (status, body) = net
        .dashboard_get(Some((kz.0.as_path(), kz.1.as_path())), "/dashboard.json")
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(body.starts_with("WRONG_ROLE"), "{body}");
    assert!(
        net.dashboard_get(None, "/dashboard.json").await.is_err(),
        "no client certificate, no dashboard"
    );

    // `info` tells where the dashboard is.
    let out = net.hub_cli(&["info", "--json"]).await;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        info["dashboard_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://127.0.0.1:") && u.ends_with("/dashboard")),
        "{info}"
    );
}
