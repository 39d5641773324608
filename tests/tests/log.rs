//! The exchange log as evidence: signed tree heads over its Merkle tree; an audit that finds
//! an edited entry; an export for auditors.

use std::process::Command;

use caravan_tests::{Net, binaries, sample_path};

fn hub(net: &Net, args: &[&str]) -> std::process::Output {
    Command::new(&binaries().hub)
        .args(args)
        .arg("--config")
        .arg(net.hub_config())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_matches_its_signed_tree_heads_until_someone_edits_it() {
    let mut net = Net::new(&["KZ", "CN"]);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    for (doc_type, file) in [
        ("e-co", "eco/carec-KZ-CN-certificate-of-origin.xml"),
        ("e-invoice", "einvoice/ubl/peppol-base-example.xml"),
    ] {
        let sent = net.send("KZ", "CN", doc_type, &sample_path(file));
        net.wait_state("KZ", sent["message_id"].as_str().unwrap(), "ACKNOWLEDGED");
    }
    // Wait for a tree head that covers the acknowledgements.
    let heads_before = net.hub_log().matches("tree head signed").count();
    let start = std::time::Instant::now();
    while net.hub_log().matches("tree head signed").count() == heads_before {
        assert!(
            start.elapsed() < caravan_tests::PATIENCE,
            "no tree head signed:\n{}",
            net.hub_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(net.terminate_hub(), "the hub stops cleanly");

    let out = hub(&net, &["log", "verify", "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(audit["problems"].as_array().unwrap().is_empty());
    let entries = audit["entries"].as_u64().unwrap();
    assert!(
        entries >= 6 && audit["tree_heads"].as_u64().unwrap() >= 1,
        "{audit}"
    );

    let out = hub(&net, &["log", "export"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, entries);
    assert_eq!(lines[0]["kind"], "registry_change");
    assert_eq!(lines[0]["actor"], "hub");
    assert!(
        lines.iter().any(|l| l["actor"] == "operator:ops"),
        "registry changes name the operator"
    );
    for kind in ["accepted", "delivered", "acknowledged"] {
        assert_eq!(
            lines.iter().filter(|l| l["kind"] == kind).count(),
            2,
            "{kind}"
        );
    }

    // Someone with access to the disk edits an old entry.
    {
        let db = sled::open(net.path().join("hub-data").join("store")).unwrap();
        let log = db.open_tree("log").unwrap();
        let key = 3u64.to_be_bytes();
        let mut entry = log.get(key).unwrap().unwrap().to_vec();
        let last = entry.len() - 1;
        entry[last] ^= 1;
        log.insert(key, entry).unwrap();
        db.flush().unwrap();
    }
    let out = hub(&net, &["log", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = audit["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    assert!(
        problems[0].as_str().unwrap().contains("was changed"),
        "{audit}"
    );
}
