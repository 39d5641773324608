//! Content checks through the real binaries: what a received document says is judged against
//! its signer, its header and the inbox, and the lines reach the recipient's inbox list.

use caravan_common::DocumentType;
use caravan_tests::{Net, binaries, sample, sample_path};

/// `(check, outcome, rule)` of an inbox item's content checks.
fn lines(item: &serde_json::Value) -> Vec<(String, String, String)> {
    item["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["check"].as_str().unwrap_or("").to_owned(),
                        c["outcome"].as_str().unwrap_or("").to_owned(),
                        c["rule"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has(item: &serde_json::Value, check: &str, outcome: &str, rule: &str) -> bool {
    lines(item)
        .iter()
        .any(|(c, o, r)| c == check && o == outcome && r == rule)
}

/// The recipient's current inbox item for `message_id`.
async fn item(net: &Net, spoke: &str, message_id: &str) -> serde_json::Value {
    net.spoke_json(spoke, &["inbox"])
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["message_id"] == message_id)
        .cloned()
        .unwrap_or_else(|| panic!("{message_id} not in {spoke}'s inbox"))
}

async fn send(net: &Net, args: &[&str]) -> String {
    let mut all = vec!["send", "--wait", "--to", "CN"];
    all.extend_from_slice(args);
    let sent = net.spoke_json("KZ", &all).await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.wait_inbox("CN", &id).await;
    id
}

/// Submit `payload` signed by KZ straight to CN's hub, skipping the sending checks.
async fn submit_unchecked(
    net: &Net,
    doc: DocumentType,
    document_id: &str,
    content_type: &str,
    payload: &[u8],
) -> String {
    net.submit_unchecked("KZ", "CN", doc, document_id, content_type, payload)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_recipient_judges_what_each_document_says() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml");
    let eco = eco.to_str().unwrap();

    // A consistent KZ e-CO to CN: every check passes.
    let first = send(&net, &["--type", "e-co", eco]).await;
    let it = item(&net, "CN", &first).await;
    assert_eq!(it["verified"], true);
    assert_eq!(it["verdict"]["status"], "GENUINE_AND_CONSISTENT", "{it:#}");
    assert!(
        lines(&it).iter().all(|(_, o, _)| o == "PASS"),
        "{:?}",
        lines(&it)
    );

    // The same certificate number again under a new message id: a duplicate.
    let again = send(&net, &["--type", "e-co", eco]).await;
    let it = item(&net, "CN", &again).await;
    assert_eq!(it["verified"], true, "the signature verdict stands");
    assert!(has(&it, "duplicate", "FAIL", "DUPLICATE_NUMBER"), "{it:#}");
    assert_eq!(it["verdict"]["status"], "GENUINE_BUT_INCONSISTENT");
    assert_eq!(it["verdict"]["headline"]["rule"], "DUPLICATE_NUMBER");
    let dup = it["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "DUPLICATE_NUMBER")
        .unwrap();
    assert_eq!(dup["params"]["earlier"], first.as_str());
    assert_eq!(dup["message_key"], "content_check.duplicate_number");

    // The replacement certificate supersedes the first: the first shows REPLACED, naming it.
    let replacement =
        net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin-replacement.xml");
    let replacement = send(
        &net,
        &[
            "--type",
            "e-co",
            "--supersedes",
            &first,
            replacement.to_str().unwrap(),
        ],
    )
    .await;
    let it = item(&net, "CN", &first).await;
    assert!(has(&it, "replaced", "WARN", "REPLACED"), "{it:#}");
    assert_eq!(it["replaced_by"], replacement.as_str());
    assert_eq!(it["verdict"]["status"], "GENUINE_WITH_WARNINGS");
    let it = item(&net, "CN", &replacement).await;
    assert_eq!(it["verdict"]["status"], "GENUINE_AND_CONSISTENT", "{it:#}");

    // A header whose document_id is not the document's number (a sending spoke refuses to
    // send it; a foreign implementation might).
    let mismatch = submit_unchecked(
        &net,
        DocumentType::CertificateOfOrigin,
        "KZ-CO-NOT-THIS-ONE",
        "application/json",
        &sample("eco/carec-KZ-CN-certificate-of-origin.json"),
    )
    .await;
    let it = item(&net, "CN", &mismatch).await;
    assert!(has(&it, "header", "FAIL", "DOCUMENT_ID_MISMATCH"), "{it:#}");
    assert_eq!(
        it["verdict"]["headline"]["params"]["header"],
        "KZ-CO-NOT-THIS-ONE"
    );

    // A KZ-signed e-Phyto naming Argentina's authority, export AR and import EC.
    let phyto = submit_unchecked(
        &net,
        DocumentType::Phytosanitary,
        "123ABC",
        "application/xml",
        &sample("ephyto/mattilsynet-SPSCertificateContent.xml"),
    )
    .await;
    let it = item(&net, "CN", &phyto).await;
    assert_eq!(it["verified"], true);
    assert!(
        has(&it, "issuer", "FAIL", "EXPORT_COUNTRY_MISMATCH"),
        "{it:#}"
    );
    assert!(
        has(&it, "issuer", "FAIL", "IMPORT_COUNTRY_MISMATCH"),
        "{it:#}"
    );
    assert_eq!(it["verdict"]["headline"]["check"], "issuer");
    assert_eq!(it["verdict"]["headline"]["params"]["found"], "AR");
    // Issued in 2016: old for an e-Phyto.
    assert!(has(&it, "dates", "WARN", "ISSUE_DATE_OLD"), "{it:#}");

    // The offline verifier says the same from the evidence bundle: genuine, not consistent.
    let bundle = net.path().join("phyto-evidence.json");
    let out = net
        .spoke_cli("CN", &["export", &phyto, "--out", bundle.to_str().unwrap()])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anchor = net.pki().join("hub-anchor.pub");
    let out = tokio::process::Command::new(&binaries().spoke)
        .args(["verify", "--anchor-key", anchor.to_str().unwrap(), "--json"])
        .arg(&bundle)
        .output()
        .await
        .unwrap();
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["genuine"], true, "{verdict:#}");
    assert_eq!(verdict["consistent"], false, "{verdict:#}");
    assert!(
        verdict["content_checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rule"] == "EXPORT_COUNTRY_MISMATCH" && c["outcome"] == "FAIL"),
        "{verdict:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sender_runs_the_same_checks_before_it_signs() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;

    // A FAIL refuses the send, naming each failing check; nothing is queued.
    let argentine = sample_path("ephyto/mattilsynet-SPSCertificateContent.xml");
    let out = net
        .spoke_cli(
            "KZ",
            &[
                "send",
                "--to",
                "CN",
                "--type",
                "e-phyto",
                argentine.to_str().unwrap(),
            ],
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("CONTENT_CHECK_FAILED")
            && stderr.contains("(EXPORT_COUNTRY_MISMATCH)")
            && stderr.contains("(IMPORT_COUNTRY_MISMATCH)")
            && stderr.contains("The import country is EC, but the document was sent to CN."),
        "{stderr}"
    );
    let eco = net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml");
    let out = net
        .spoke_cli(
            "KZ",
            &[
                "send",
                "--to",
                "CN",
                "--type",
                "e-co",
                "--document-id",
                "KZ-CO-NOT-THIS-ONE",
                eco.to_str().unwrap(),
            ],
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("(DOCUMENT_ID_MISMATCH)"),
        "{stderr}"
    );

    // A WARN is reported and the document sent: a consistent e-Phyto issued in 2016.
    let old = String::from_utf8(sample("ephyto/carec-KZ-CN-phytosanitary.xml"))
        .unwrap()
        .replacen("2026-11-27T10:15:00+05:00", "2016-04-22T13:53:08+05:00", 1);
    let old_file = net.path().join("old-phyto.xml");
    std::fs::write(&old_file, old).unwrap();
    let sent = net.send("KZ", "CN", "e-phyto", &old_file).await;
    let warned: Vec<&serde_json::Value> = sent["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] != "PASS")
        .collect();
    assert_eq!(warned.len(), 1, "{sent:#}");
    assert_eq!(warned[0]["rule"], "ISSUE_DATE_OLD");
    assert_eq!(warned[0]["outcome"], "WARN");
    let it = net
        .wait_inbox("CN", sent["message_id"].as_str().unwrap())
        .await;
    assert_eq!(it["verdict"]["status"], "GENUINE_WITH_WARNINGS", "{it:#}");
    // The human form of the answer says so too.
    let out = net
        .spoke_cli(
            "KZ",
            &[
                "send",
                "--to",
                "CN",
                "--type",
                "e-phyto",
                old_file.to_str().unwrap(),
            ],
        )
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("warning: dates ISSUE_DATE_OLD: Issued 2016-04-22"),
        "{stdout}"
    );
    // The same certificate sent again arrives, and the recipient sees the
    // second copy for what it is.
    let again = stdout
        .lines()
        .find_map(|l| l.split(" as message ").nth(1))
        .expect("the answer names its message id");
    let it = net.wait_inbox("CN", again.trim()).await;
    assert_eq!(
        it["verdict"]["status"], "GENUINE_BUT_INCONSISTENT",
        "{it:#}"
    );
    // Only the documents that passed (or warned) reached CN.
    let inbox = net.spoke_json("CN", &["inbox"]).await;
    assert_eq!(inbox.as_array().unwrap().len(), 2, "{inbox:#}");
}
