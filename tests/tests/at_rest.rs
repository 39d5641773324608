//! Data at rest: a payload byte flipped on disk is found by `store check` and never delivered
//! or served as good (hub and spoke, on both engines); `log verify` checks a head over the
//! newest entries even for a hub that ran a few seconds, and fails once an entry is edited;
//! a hub refuses to start on a store whose structure is broken.

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use caravan_tests::{Net, PATIENCE, binaries, sample_path};

/// Larger than redb's inline limit (8 KiB): kept in a payload segment on both engines.
const ECO: &str = "eco/carec-KZ-CN-certificate-of-origin.xml";
const INVOICE: &str = "einvoice/ubl/peppol-base-example.xml";

async fn net(engine: &'static str) -> Net {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.store_engine = Some(engine);
    net
}

/// The one segment file of the store in `store` (it holds the payloads written so far).
fn segment(store: &Path) -> PathBuf {
    let file = store.join("payload-segments").join("seg-000001.bin");
    assert!(file.is_file(), "{} is missing", file.display());
    file
}

/// Flip one bit in the middle of `file`, as a failing disk would.
fn flip_byte(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    assert!(!bytes.is_empty(), "{} is empty", file.display());
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(file, bytes).unwrap();
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `store check --json`: exit code and report.
fn store_check(out: Output) -> (Option<i32>, serde_json::Value) {
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("store check printed no JSON report ({e}): {}", text(&out)));
    (out.status.code(), report)
}

fn problems_naming(report: &serde_json::Value, what: &str) -> usize {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.to_string().contains(what))
        .count()
}

/// Run `caravan-hub run` on `config`, expecting it to stop by itself; its output.
async fn run_hub_expecting_exit(config: &Path) -> Output {
    run_expecting_exit(&binaries().hub, config).await
}

/// Run `<binary> run --config <config>`, expecting it to stop by itself; its output.
async fn run_expecting_exit(binary: &Path, config: &Path) -> Output {
    let mut child = tokio::process::Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > PATIENCE {
            let _ = child.kill().await;
            panic!(
                "started on a damaged store: {}",
                text(&child.wait_with_output().await.unwrap())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.wait_with_output().await.unwrap()
}

async fn a_flipped_byte_in_a_hub_segment_is_found_and_the_document_held_back(engine: &'static str) {
    let mut net = net(engine).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    // CN is not running: the document waits in the hub's queue.
    let sent = net.send("KZ", "CN", "e-co", &sample_path(ECO)).await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let out = net.hub_cli(&["store", "check", "--json"]).await;
    let (code, report) = store_check(out);
    assert_eq!(code, Some(0), "a sound store passes: {report}");
    assert_eq!(report["payloads"]["checked"], 1, "{report}");

    flip_byte(&segment(&net.path().join("hub-data").join("store")));
    let (code, report) = store_check(net.hub_cli(&["store", "check", "--json"]).await);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        problems_naming(&report, &id),
        1,
        "names the message: {report}"
    );
    assert_eq!(problems_naming(&report, "seg-000001.bin"), 1, "{report}");
    assert!(
        problems_naming(&report, "fails its checksum") == 1,
        "says what is wrong: {report}"
    );
    let out = net.hub_cli(&["store", "check"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("THE STORE IS DAMAGED"),
        "{}",
        text(&out)
    );

    // The structure is sound: the hub starts, and holds the document back.
    net.start_hub().await;
    net.start_spoke("CN").await;
    // A later document from the same sender goes through: the damaged one, queued before it,
    // was passed over, not sent, and does not block the queue.
    let later = net
        .send("KZ", "CN", "e-invoice", &sample_path(INVOICE))
        .await;
    let later = later["message_id"].as_str().unwrap().to_owned();
    net.wait_inbox("CN", &later).await;
    net.wait_state("KZ", &later, "ACKNOWLEDGED").await;
    let inbox = net.spoke_json("CN", &["inbox"]).await;
    assert!(
        !inbox.to_string().contains(&id),
        "the corrupt document never reaches the recipient: {inbox}"
    );
    let status = net.spoke_json("KZ", &["status", &id]).await;
    assert_eq!(
        status["state"], "ACCEPTED",
        "held at the hub, not lost: {status}"
    );
    let metrics = net.hub_metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "caravan_hub_payloads_corrupt_total 1"),
        "{metrics}"
    );
    // The recipient reconnects: the document is passed over again, and not logged again.
    net.kill_spoke("CN");
    net.start_spoke("CN").await;
    let third = net
        .send("KZ", "CN", "e-invoice", &sample_path(INVOICE))
        .await;
    net.wait_inbox("CN", third["message_id"].as_str().unwrap())
        .await;
    let log = net.hub_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fails its checksum"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once per document:\n{log}");
    assert!(
        lines[0].contains(&id) && lines[0].contains("seg-000001.bin"),
        "{}",
        lines[0]
    );
    assert_eq!(
        net.spoke_json("KZ", &["status", &id]).await["state"],
        "ACCEPTED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_hub_segment_is_found_and_the_document_held_back_sled() {
    a_flipped_byte_in_a_hub_segment_is_found_and_the_document_held_back("sled").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_hub_segment_is_found_and_the_document_held_back_redb() {
    a_flipped_byte_in_a_hub_segment_is_found_and_the_document_held_back("redb").await;
}

async fn a_flipped_byte_in_a_spoke_segment_is_found_and_never_served(engine: &'static str) {
    let mut net = net(engine).await;
    net.nsw = true;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net.send("KZ", "CN", "e-co", &sample_path(ECO)).await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.wait_inbox("CN", &id).await;
    net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
    let token = net.nsw_tokens["CN"].clone();
    let path = format!("/api/v1/inbox/{id}/payload");
    let (status, _) = net
        .nsw_call("CN", "GET", &path, Some(&token), Vec::new())
        .await;
    assert_eq!(status, 200, "served while intact");
    net.kill_spoke("CN");
    let (code, report) = store_check(net.spoke_cli("CN", &["store", "check", "--json"]).await);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["payloads"]["checked"], 1, "{report}");
    // A copy is checked as it is, and left as it was (the check opens a copy of it).
    let copy = net.path().join("CN-store-copy");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(net.path().join("spoke-CN-data").join("store"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let bytes = |dir: &std::path::Path| -> Vec<(std::ffi::OsString, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                (
                    p.file_name().unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = bytes(&copy);
    let (code, report) = store_check(
        net.spoke_cli(
            "CN",
            &[
                "store",
                "check",
                "--json",
                "--store",
                copy.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert_eq!(
        (code, &report["payloads"]["checked"]),
        (Some(0), &serde_json::json!(1)),
        "{report}"
    );
    assert!(
        bytes(&copy) == before,
        "store check changed the copy it checked"
    );

    flip_byte(&segment(&net.path().join("spoke-CN-data").join("store")));
    let (code, report) = store_check(net.spoke_cli("CN", &["store", "check", "--json"]).await);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        problems_naming(&report, &id),
        1,
        "names the message: {report}"
    );
    assert_eq!(
        problems_naming(&report, "fails its checksum"),
        1,
        "{report}"
    );

    net.start_spoke("CN").await;
    let (health, _) = net.spoke_http("CN", "/healthz").await;
    assert_eq!(health, 200, "nothing read the damage yet");
    for _ in 0..3 {
        let (status, body) = net
            .nsw_call("CN", "GET", &path, Some(&token), Vec::new())
            .await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], "STORE_CORRUPT", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(&id),
            "{body}"
        );
    }
    let (status, body) = net
        .nsw_call(
            "CN",
            "GET",
            &format!("/api/v1/inbox/{id}/evidence"),
            Some(&token),
            Vec::new(),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (500, &"STORE_CORRUPT".into()),
        "{body}"
    );
    let (health, body) = net.spoke_http("CN", "/healthz").await;
    assert_eq!(health, 503, "{body}");
    assert!(
        body.starts_with("NOT_SERVING STORE_CORRUPT") && body.contains(&id),
        "{body}"
    );
    let metrics = net.spoke_metrics("CN").await;
    for line in [
        "caravan_spoke_store_damaged 1",
        "caravan_spoke_payloads_corrupt 1",
        // Damage is no passing fault: the store still takes writes.
        "caravan_spoke_store_healthy 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    let log = net.spoke_log("CN");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("fails its checksum"))
            .count(),
        1,
        "logged once per document:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_spoke_segment_is_found_and_never_served_sled() {
    a_flipped_byte_in_a_spoke_segment_is_found_and_never_served("sled").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_a_spoke_segment_is_found_and_never_served_redb() {
    a_flipped_byte_in_a_spoke_segment_is_found_and_never_served("redb").await;
}

/// `log verify --json`: exit code and audit.
async fn log_verify(net: &Net) -> (Option<i32>, serde_json::Value) {
    let out = net.hub_cli(&["log", "verify", "--json"]).await;
    let audit = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("log verify printed no JSON ({e}): {}", text(&out)));
    (out.status.code(), audit)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_hub_keeps_a_head_over_its_newest_entries_and_an_edit_is_caught() {
    let mut net = net("sled").await;
    // Far longer than the hub runs: only the heads kept at start and at shutdown count.
    net.tree_head_interval_secs = 3600;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net.send("KZ", "CN", "e-co", &sample_path(ECO)).await;
    net.wait_state("KZ", sent["message_id"].as_str().unwrap(), "ACKNOWLEDGED")
        .await;
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let (code, audit) = log_verify(&net).await;
    assert_eq!(code, Some(0), "{audit}");
    let entries = audit["entries"].as_u64().unwrap();
    assert!(
        entries >= 4,
        "registry changes, accepted, delivered, acknowledged: {audit}"
    );
    assert!(audit["tree_heads"].as_u64().unwrap() >= 1, "{audit}");
    assert_eq!(
        audit["covered"].as_u64(),
        Some(entries),
        "the newest entry is covered: {audit}"
    );

    // A killed hub keeps no head at shutdown: what it logged since is covered by none.
    net.start_hub().await;
    // A registry change: committed with its log entry before the command returns.
    net.admin_ok(&[
        "corridor",
        "pilot",
        "CN",
        "KZ",
        "e-phyto",
        "--override",
        caravan_tests::HARNESS_OVERRIDE,
    ])
    .await;
    net.kill_hub();
    let (code, audit) = log_verify(&net).await;
    assert_eq!(code, Some(1), "{audit}");
    let uncovered = audit["uncovered"].as_str().unwrap_or_default();
    assert!(
        uncovered.contains("covered by no kept signed tree head"),
        "{audit}"
    );
    let out = net.hub_cli(&["log", "verify"]).await;
    assert!(
        text(&out).contains("THE NEWEST ENTRIES ARE NOT COVERED"),
        "{}",
        text(&out)
    );
    // Started again, the hub covers them at once; stopped, the log verifies.
    net.start_hub().await;
    assert!(net.terminate_hub().await);
    let (code, audit) = log_verify(&net).await;
    assert_eq!(code, Some(0), "{audit}");

    // Someone with access to the disk edits the newest entry (the engine's own checksums pass:
    // it is written through the engine).
    let entries = audit["entries"].as_u64().unwrap();
    {
        let db = sled::open(net.path().join("hub-data").join("store")).unwrap();
        let log = db.open_tree("log").unwrap();
        let key = entries.to_be_bytes();
        let mut entry = log.get(key).unwrap().unwrap().to_vec();
        let last = entry.len() - 1;
        entry[last] ^= 1;
        log.insert(key, entry).unwrap();
        db.flush().unwrap();
    }
    let (code, audit) = log_verify(&net).await;
    assert_eq!(code, Some(1), "{audit}");
    assert!(
        audit["problems"].to_string().contains("was changed"),
        "{audit}"
    );
    let (code, report) = store_check(net.hub_cli(&["store", "check", "--json"]).await);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report["problems"].to_string().contains("log_nodes"),
        "{report}"
    );
    // ... and the hub will not start on it.
    let out = run_hub_expecting_exit(&net.hub_config()).await;
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("is damaged, so the hub will not start on it")
            && said.contains(&format!("entry {entries}"))
            && said.contains("restore"),
        "{said}"
    );
}

/// Overwrite `file`'s first or second half with garbage (a torn copy, a bad disk block).
fn garble(file: &Path, second_half: bool) {
    let mut bytes = std::fs::read(file).unwrap();
    let half = bytes.len() / 2;
    let range = if second_half {
        half..bytes.len()
    } else {
        0..half
    };
    for (i, b) in bytes[range].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    std::fs::write(file, bytes).unwrap();
}

fn assert_refused(out: &Output, case: &str) {
    let said = text(out);
    assert_eq!(out.status.code(), Some(65), "{case}: {said}");
    assert!(
        said.contains("is damaged, so the hub will not start on it")
            && said.contains("caravan-hub restore"),
        "{case}: {said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_refuses_to_start_on_a_garbled_database_file() {
    for engine in ["sled", "redb"] {
        let mut net = net(engine).await;
        net.start_hub().await;
        net.start_spoke("KZ").await;
        let sent = net.send("KZ", "CN", "e-co", &sample_path(ECO)).await;
        assert!(sent["message_id"].is_string());
        assert!(net.terminate_hub().await);
        let store = net.path().join("hub-data").join("store");
        let file = match engine {
            "sled" => store.join("db"),
            _ => store.join("store.redb"),
        };
        let intact = std::fs::read(&file).unwrap();
        // The head of the file. sled reads what it can as a shorter (here: empty) store, without
        // an error: the log's size noted at the last stop shows what was lost. redb fails
        // reading its file (it panics inside; caught).
        garble(&file, false);
        let out = run_hub_expecting_exit(&net.hub_config()).await;
        assert_refused(&out, &format!("{engine}, first half"));
        let said = text(&out);
        match engine {
            "sled" => assert!(
                said.contains("counter-floors log_entries") && said.contains("lost committed data"),
                "{said}"
            ),
            _ => assert!(
                said.contains("database file") && said.contains("store.redb"),
                "{said}"
            ),
        }
        // The tail.
        std::fs::write(&file, &intact).unwrap();
        garble(&file, true);
        let out = run_hub_expecting_exit(&net.hub_config()).await;
        assert_refused(&out, &format!("{engine}, second half"));

        // A spoke likewise (its outbox number went back, or redb cannot read its file).
        assert!(net.terminate_spoke("KZ").await, "the spoke stops cleanly");
        let store = net.path().join("spoke-KZ-data").join("store");
        garble(
            &match engine {
                "sled" => store.join("db"),
                _ => store.join("store.redb"),
            },
            false,
        );
        let out = run_expecting_exit(&binaries().spoke, &net.spoke_config("KZ")).await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(65), "{engine}: {said}");
        assert!(
            said.contains("is damaged, so the spoke will not start on it"),
            "{engine}: {said}"
        );
    }
}
