//! A spoke given the addresses of a hub's replicas (`hub_urls`) uses one at a time and moves
//! to the next when the hub cannot be reached there (issue 16): here one address has nothing
//! listening, first in one spoke's list and last in the other's, and documents still travel.

use caravan_tests::{Net, binaries, sample_path};

/// A loopback port with nothing listening on it (bound, then released).
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoke_moves_to_the_hubs_next_address_when_one_cannot_be_reached() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    let (dead, hub) = (dead_port(), net.hub_port.expect("the hub's port"));
    let (dead, hub) = (
        format!("https://localhost:{dead}"),
        format!("https://localhost:{hub}"),
    );
    net.spoke_hub_urls
        .insert("KZ".into(), vec![dead.clone(), hub.clone()]);
    net.spoke_hub_urls
        .insert("CN".into(), vec![hub, dead.clone()]);
    // Each connects (start_spoke waits for its delivery stream), KZ after moving once.
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
    let id = sent["message_id"].as_str().expect("a message id");
    net.wait_inbox("CN", id).await;
    net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    let log = net.spoke_log("KZ");
    assert!(
        log.contains("moving to the next") && log.contains(&dead),
        "KZ says it moved from the dead address: {log}"
    );
    assert!(
        !net.spoke_log("CN").contains("moving to the next"),
        "CN never had to move"
    );
    // `info` lists every address.
    let info = net.spoke_json("KZ", &["info"]).await;
    assert_eq!(info["hub_urls"].as_array().map(Vec::len), Some(2), "{info}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_reaches_the_hub_at_the_first_address_that_answers() {
    let mut net = Net::new(&["KZ"]).await;
    net.start_hub().await;
    let hub = net.hub_port.expect("the hub's port");
    // The harness's admin.toml, with the hub's address after one where nothing listens.
    let text = std::fs::read_to_string(net.admin_config()).expect("admin.toml");
    let mut file: toml::Table = toml::from_str(&text).expect("TOML");
    file.remove("hub_url").expect("hub_url");
    file.insert(
        "hub_urls".into(),
        toml::Value::Array(vec![
            format!("https://localhost:{}", dead_port()).into(),
            format!("https://localhost:{hub}").into(),
        ]),
    );
    let path = net.admin_config().with_file_name("admin-replicas.toml");
    std::fs::write(&path, toml::to_string(&file).expect("TOML")).expect("write");
    let out = tokio::process::Command::new(&binaries().hub)
        .args(["admin", "--config"])
        .arg(&path)
        .args(["participant", "list"])
        .output()
        .await
        .expect("caravan-hub runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("KZ"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Both hub_url and hub_urls: refused, naming the rule.
    file.insert("hub_url".into(), format!("https://localhost:{hub}").into());
    std::fs::write(&path, toml::to_string(&file).expect("TOML")).expect("write");
    let out = tokio::process::Command::new(&binaries().hub)
        .args(["admin", "--config"])
        .arg(&path)
        .args(["participant", "list"])
        .output()
        .await
        .expect("caravan-hub runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("hub_url and hub_urls"),
        "{stderr}"
    );
}
