//! Content checks through the real binaries: what a received document says is judged against
//! its signer, its header and the inbox, and the lines reach the recipient's inbox list.

use caravan_tests::{Net, binaries, sample_path};

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

#[tokio::test(flavor = "multi_thread")]
async fn the_recipient_judges_what_each_document_says() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
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
    let replacement = sample_path("eco/carec-KZ-CN-certificate-of-origin-replacement.xml");
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

    // A header whose document_id is not the document's number.
    let json = sample_path("eco/carec-KZ-CN-certificate-of-origin.json");
    let mismatch = send(
        &net,
        &[
            "--type",
            "e-co",
            "--document-id",
            "KZ-CO-NOT-THIS-ONE",
            json.to_str().unwrap(),
        ],
    )
    .await;
    let it = item(&net, "CN", &mismatch).await;
    assert!(has(&it, "header", "FAIL", "DOCUMENT_ID_MISMATCH"), "{it:#}");
    assert_eq!(
        it["verdict"]["headline"]["params"]["header"],
        "KZ-CO-NOT-THIS-ONE"
    );

    // A KZ-signed e-Phyto naming Argentina's authority, export AR and import EC.
    let phyto = sample_path("ephyto/mattilsynet-SPSCertificateContent.xml");
    let phyto = send(&net, &["--type", "e-phyto", phyto.to_str().unwrap()]).await;
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
