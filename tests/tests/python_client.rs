//! The reference client in a second language (`clients/python`, written from
//! docs/protocol.md) against the real hub and a real spoke: it submits a document the spoke
//! receives verified, receives one the spoke sent, verifies it end to end and acknowledges it,
//! and the spoke verifies that acknowledgement. Proof that the contract is complete.
//!
//! Needs python3 with the packages of clients/python/requirements.txt (`.ci/run` installs
//! them); without them the test is skipped with a message, except under CI.

use std::{path::Path, process::Stdio};

use caravan_tests::Net;

/// Whether python3 has the client's packages; if not, `test` is skipped with a message,
/// except under CI, which must have them.
fn python_ready(test: &str) -> bool {
    let ready = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the Python client's packages: .ci/run installs them"
        );
        eprintln!("SKIPPED {test}: pip install -r clients/python/requirements.txt");
    }
    ready
}

/// Run the client as participant CN with `args` after the command; its JSON lines.
async fn client(net: &Net, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let pki = net.pki();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python");
    let hub = format!("localhost:{}", net.hub_port.expect("hub started"));
    let signing_key = net.parties["CN"].keys[0].file.clone();
    let out = tokio::process::Command::new("python3")
        .current_dir(&dir)
        .args(["-m", "caravan_client", "--hub", &hub, "--ca"])
        .arg(pki.join(&net.ca_file))
        .arg("--cert")
        .arg(pki.join("participants/CN.pem"))
        .arg("--key")
        .arg(pki.join("participants/CN.key"))
        .arg("--signing-key")
        .arg(&signing_key)
        .args(["--anchor", &net.anchor_public_key, "--me", "CN"])
        .args(args)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), lines, report)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_reference_client_exchanges_with_a_caravan_spoke() {
    if !python_ready("the_python_reference_client_exchanges_with_a_caravan_spoke") {
        return;
    }
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;

    // CN's own system sends an invoice; KZ's spoke receives it verified, its header
    // consistent with the document.
    let invoice = caravan_tests::sample_path("einvoice/ubl/carec-CN-UZ-invoice.xml");
    let (ok, lines, report) = client(
        &net,
        &[
            "send",
            "--to",
            "KZ",
            "--type",
            "e-invoice",
            "--document-id",
            "CN-INV-2026-118204",
            invoice.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{report}");
    let sent = &lines[0];
    assert!(sent["hub_sequence"].as_u64().unwrap() >= 1, "{report}");
    let id = sent["message_id"].as_str().unwrap();
    let item = net.wait_inbox("KZ", id).await;
    assert_eq!(item["verified"], true, "{item:#}");
    let header = item["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "header")
        .unwrap();
    assert_eq!(header["outcome"], "PASS", "{item:#}");

    // KZ's spoke sends a certificate of origin; the client verifies it end to end and
    // acknowledges it, and KZ's spoke verifies the acknowledgement.
    let eco = net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml");
    let sent = net.send("KZ", "CN", "e-co", &eco).await;
    let id = sent["message_id"].as_str().unwrap();
    let (ok, lines, report) = client(&net, &["receive", "--count", "1"]).await;
    assert!(ok, "{report}");
    let received = &lines[0];
    assert_eq!(received["message_id"], id, "{report}");
    assert_eq!(received["verified"], true, "{report}");
    assert_eq!(received["state"], "MESSAGE_STATE_ACKNOWLEDGED", "{report}");
    let status = net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    assert_eq!(status["acknowledgement"]["verified"], true, "{status:#}");

    // A header that breaks a rule is refused by the hub, and the client says so.
    let (ok, lines, report) = client(
        &net,
        &[
            "send",
            "--to",
            "KZ",
            "--type",
            "e-invoice",
            "--document-id",
            " padded ",
            invoice.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!ok, "{report}");
    assert_eq!(lines[0]["refused"], "INVALID_ARGUMENT", "{report}");
    assert!(
        lines[0]["detail"]
            .as_str()
            .unwrap()
            .contains("INVALID_HEADER"),
        "{report}"
    );
}

/// The client's protocol code computes the test vectors of docs/protocol.md section 13 with
/// Python's own libraries, and refuses each tampering of a delivery with the right code.
#[test]
fn the_python_client_agrees_with_the_protocol_vectors() {
    if !python_ready("the_python_client_agrees_with_the_protocol_vectors") {
        return;
    }
    let out = std::process::Command::new("python3")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python"))
        .args(["-m", "unittest", "discover", "-s", "tests", "-t", "."])
        .output()
        .expect("python3 runs");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && report.contains("Ran 4 tests"),
        "{report}"
    );
}
