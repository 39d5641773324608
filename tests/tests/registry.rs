//! The registry and the signed trust list, end to end: onboarding while running, forgery,
//! rollback and staleness of the list, key rotation and revocation, suspension and certificate
//! revocation cutting open streams, roles, and corridors.

use tokio::process::Command;

use caravan_common::{DocumentType, RefusalCode, Timestamp};
use caravan_proto::v1;
use caravan_tests::{HARNESS_OVERRIDE, Net, binaries, envelope, sample, sample_path};

fn code_of(status: tonic::Status) -> Option<RefusalCode> {
    caravan_proto::status::from_status(&status).map(|r| r.code)
}

async fn submit(
    net: &Net,
    who: &str,
    env: v1::Envelope,
) -> Result<v1::SubmitResponse, Option<RefusalCode>> {
    net.client(who)
        .submit(v1::SubmitRequest {
            envelope: Some(env),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
        .map_err(code_of)
}

fn message_id(env: &v1::Envelope) -> String {
    <v1::Header as prost::Message>::decode(env.header.as_slice())
        .unwrap()
        .message_id
}

fn in_secs(secs: i64) -> String {
    Timestamp::from_millis(Timestamp::now().as_millis() + secs * 1000).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_country_is_onboarded_while_the_hub_runs() {
    a_country_is_onboarded_while_the_hub_runs_on(Net::new(&["KZ", "CN"]).await).await;
}

async fn a_country_is_onboarded_while_the_hub_runs_on(mut net: Net) {
    net.start_hub().await;
    net.start_spoke("KZ").await;

    net.new_party("TJ").await;
    let key = format!("{}.pub", net.parties["TJ"].keys[0].file.display());
    net.admin_ok(&[
        "participant",
        "add",
        "TJ",
        "--name",
        "Tajikistan",
        "--contact",
        "ops@tj.example",
        "--stage",
        "production",
        "--override",
        HARNESS_OVERRIDE,
    ])
    .await;
    let registered = net
        .admin_ok(&[
            "key",
            "register",
            "--participant",
            "TJ",
            "--types",
            "e-phyto",
            "--public-key",
            &key,
            "--json",
        ])
        .await;
    let registered: serde_json::Value = serde_json::from_str(&registered).unwrap();
    assert_eq!(
        registered["key_id"],
        net.parties["TJ"].keys[0].key_id.as_str()
    );
    net.admin_ok(&[
        "corridor",
        "open",
        "KZ",
        "TJ",
        "e-phyto",
        "--override",
        HARNESS_OVERRIDE,
    ])
    .await;
    let keys: serde_json::Value = serde_json::from_str(
        &net.admin_ok(&["key", "list", "--participant", "TJ", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["participant"], "TJ");
    assert_eq!(keys[0]["status"], "active");

    net.start_spoke("TJ").await;
    let version = net.hub_trust_version().await;
    net.wait_trust_version("KZ", version).await;
    let path = sample_path("ephyto/carec-KZ-TJ-phytosanitary.xml");
    let sent = net.send("KZ", "TJ", "e-phyto", &path).await;
    let id = sent["message_id"].as_str().unwrap();
    assert_eq!(net.wait_inbox("TJ", id).await["verified"], true);
    net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    // Every change was logged with the operator who made it.
    assert!(
        net.hub_log().contains("actor=\"operator:ops\"")
            || net.hub_log().contains("actor=operator:ops"),
        "{}",
        net.hub_log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_rolled_back_and_stale_trust_lists() {
    let mut net = Net::new(&["KZ", "CN", "UZ"]).await;
    net.trust_list_validity_secs = 4;
    // UZ's spoke pins the anchor of another hub: it must believe nothing this hub signs.
    let other = net.path().join("other-pki");
    let init = Command::new(&binaries().hub)
        .args(["pki", "init", "--dir"])
        .arg(&other)
        .output()
        .await
        .unwrap();
    let init = String::from_utf8_lossy(&init.stdout).into_owned();
    let foreign = init
        .lines()
        .find_map(|l| l.strip_prefix("anchor public key:"))
        .unwrap()
        .trim()
        .to_owned();
    net.spoke_anchor_override.insert("UZ".into(), foreign);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.launch_spoke("UZ");
    net.wait_spoke_log("UZ", "the forged list refused", |log| {
        log.contains("INVALID_TRUST_LIST")
    })
    .await;
    let out = net.spoke_cli("UZ", &["trust-list", "show", "--json"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NO_TRUST_LIST"));
    // A document for UZ is accepted by the hub but never taken by a spoke that trusts no list.
    let path = sample_path("einvoice/ubl/peppol-base-example.xml");
    let sent = net.send("KZ", "UZ", "e-invoice", &path).await;
    assert_eq!(
        net.spoke_json("KZ", &["status", sent["message_id"].as_str().unwrap()])
            .await["state"],
        "ACCEPTED"
    );

    // Rollback: the hub comes back with its registry wiped, offering older versions.
    let held = net
        .wait_trust_version("KZ", net.hub_trust_version().await)
        .await["version"]
        .as_u64()
        .unwrap();
    net.kill_hub();
    std::fs::remove_dir_all(net.path().join("hub-data")).unwrap();
    net.start_hub().await;
    net.wait_spoke_log("KZ", "the rollback refused", |log| {
        log.contains("TRUST_LIST_ROLLBACK")
    })
    .await;
    let kept = net.spoke_json("KZ", &["trust-list", "show"]).await;
    assert!(
        kept["version"].as_u64().unwrap() >= held,
        "the spoke kept its newer list"
    );

    // Staleness: with the hub gone, the list passes its next-update time; the spoke says so.
    net.kill_hub();
    let start = std::time::Instant::now();
    loop {
        let list = net.spoke_json("KZ", &["trust-list", "show"]).await;
        if list["fresh"] == false {
            break;
        }
        assert!(
            start.elapsed() < caravan_tests::PATIENCE,
            "the list never went stale: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    net.wait_spoke_log("KZ", "a stale warning", |log| {
        log.contains("TRUST LIST STALE")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_with_an_overlap() {
    keys_rotate_with_an_overlap_on(Net::new(&["KZ", "CN"]).await).await;
}

async fn keys_rotate_with_an_overlap_on(mut net: Net) {
    let old = net
        .add_key(
            "KZ",
            &["e-co", "e-phyto", "e-invoice"],
            None,
            Some(&in_secs(6)),
        )
        .await;
    let new = net
        .add_key("KZ", &["e-co", "e-phyto", "e-invoice"], None, None)
        .await;
    net.start_hub().await;
    let (old_key, new_key) = (net.signing_key("KZ", 1), net.signing_key("KZ", 2));
    assert_eq!(
        (old_key.key_id().to_string(), new_key.key_id().to_string()),
        (old.key_id.clone(), new.key_id.clone())
    );
    let doc = sample("eco/carec-KZ-CN-certificate-of-origin.xml");
    let eco = DocumentType::CertificateOfOrigin;

    // During the overlap both keys are accepted.
    let early = envelope(&old_key, "KZ", "CN", eco, &doc);
    let early_id = message_id(&early);
    submit(&net, "KZ", early)
        .await
        .expect("old key inside its validity");
    submit(&net, "KZ", envelope(&new_key, "KZ", "CN", eco, &doc))
        .await
        .expect("new key");

    // After the old key's end only the new one is.
    let end = Timestamp::from_millis(Timestamp::now().as_millis() + 6_500);
    while Timestamp::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let late = submit(&net, "KZ", envelope(&old_key, "KZ", "CN", eco, &doc)).await;
    assert_eq!(late.unwrap_err(), Some(RefusalCode::KeyExpired));
    submit(&net, "KZ", envelope(&new_key, "KZ", "CN", eco, &doc))
        .await
        .expect("new key");

    // The spoke switches to the new key; the recipient verifies everything, the early document
    // by the old key's validity at the time the hub accepted it.
    net.spoke_key.insert("KZ".into(), 2);
    net.start_spoke("KZ").await;
    let path = sample_path("eco/carec-KZ-CN-certificate-of-origin-replacement.xml");
    let sent = net.send("KZ", "CN", "e-co", &path).await;
    net.start_spoke("CN").await;
    assert_eq!(net.wait_inbox("CN", &early_id).await["verified"], true);
    assert_eq!(
        net.wait_inbox("CN", sent["message_id"].as_str().unwrap())
            .await["verified"],
        true
    );
    let keys: serde_json::Value = serde_json::from_str(
        &net.admin_ok(&["key", "list", "--participant", "KZ", "--json"])
            .await,
    )
    .unwrap();
    let status = |id: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&old.key_id), "expired");
    assert_eq!(status(&new.key_id), "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_judged_by_the_time_of_acceptance() {
    revocation_judged_by_the_time_of_acceptance_on(Net::new(&["KZ", "CN"]).await).await;
}

async fn revocation_judged_by_the_time_of_acceptance_on(mut net: Net) {
    net.start_hub().await;
    let kz = net.signing_key("KZ", 0);
    let doc = sample("einvoice/cii/en16931-CII_example1.xml");
    let before = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &doc);
    let before_id = message_id(&before);
    submit(&net, "KZ", before)
        .await
        .expect("accepted before the revocation");

    let key_id = net.parties["KZ"].keys[0].key_id.clone();
    net.admin_ok(&["key", "revoke", &key_id, "--reason", "key compromise"])
        .await;
    let after = submit(
        &net,
        "KZ",
        envelope(&kz, "KZ", "CN", DocumentType::Invoice, &doc),
    )
    .await;
    assert_eq!(after.unwrap_err(), Some(RefusalCode::KeyRevoked));
    let out = net
        .admin(&["key", "revoke", &key_id, "--reason", "again"])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("KEY_REVOKED"),
        "revoking twice is refused"
    );

    net.start_spoke("CN").await;
    let item = net.wait_inbox("CN", &before_id).await;
    assert_eq!(
        item["verified"], true,
        "accepted before the revocation: valid"
    );
    let notes = item["verification"]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["code"] == "KEY_SINCE_REVOKED"),
        "{item}"
    );
    let keys: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["key", "list", "--json"]).await).unwrap();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == key_id.as_str() && k["status"] == "revoked")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn suspension_and_certificate_revocation_cut_open_streams() {
    suspension_and_certificate_revocation_cut_open_streams_on(Net::new(&["KZ", "CN"]).await).await;
}

async fn suspension_and_certificate_revocation_cut_open_streams_on(mut net: Net) {
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;

    net.admin_ok(&["participant", "suspend", "CN"]).await;
    net.wait_spoke_log("CN", "the stream cut", |log| {
        log.contains("PARTICIPANT_SUSPENDED")
    })
    .await;
    net.wait_hub_connected("CN", false).await;
    let kz = net.signing_key("KZ", 0);
    let doc = sample("einvoice/ubl/peppol-base-example.xml");
    let refused = submit(
        &net,
        "KZ",
        envelope(&kz, "KZ", "CN", DocumentType::Invoice, &doc),
    )
    .await;
    assert_eq!(
        refused.unwrap_err(),
        Some(RefusalCode::ParticipantSuspended)
    );
    let list: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["participant", "list", "--json"]).await).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "CN" && p["status"] == "suspended")
    );

    net.admin_ok(&["participant", "resume", "CN"]).await;
    net.wait_hub_connected("CN", true).await;
    let env = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &doc);
    let id = message_id(&env);
    submit(&net, "KZ", env).await.expect("resumed");
    assert_eq!(net.wait_inbox("CN", &id).await["verified"], true);

    // Revoking CN's TLS certificate ends its open stream and every request it makes.
    let serial = net.parties["CN"].serial.clone();
    net.admin_ok(&[
        "cert",
        "revoke",
        &serial,
        "--reason",
        "server decommissioned",
    ])
    .await;
    net.wait_spoke_log("CN", "the certificate refused", |log| {
        log.contains("CERTIFICATE_REVOKED")
    })
    .await;
    let status = net
        .client("CN")
        .status(v1::StatusRequest { message_id: id })
        .await
        .unwrap_err();
    assert_eq!(code_of(status), Some(RefusalCode::CertificateRevoked));
    // The registry lists the certificates seen, with the revocation.
    let certs: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["cert", "list", "--json"]).await).unwrap();
    let cn = certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["serial"] == serial.as_str())
        .expect("CN's certificate seen");
    assert_eq!(cn["subject"], "participant:CN");
    assert_eq!(cn["fingerprint"].as_str().unwrap().len(), 64);
    assert!(cn["revoked_at"].is_string(), "{cn}");
    assert!(
        certs
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["subject"] == "participant:KZ" && c["revoked_at"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_operators_administer_and_only_participants_exchange() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    // A spoke's certificate in an admin.toml.
    let pki = net.pki();
    let spoke_admin = net.path().join("spoke-admin.toml");
    net.write_admin_config_as(
        &spoke_admin,
        pki.join("participants/KZ.pem"),
        pki.join("participants/KZ.key"),
    );
    let out = Command::new(&binaries().hub)
        .args(["admin", "--config"])
        .arg(&spoke_admin)
        .args(["participant", "suspend", "CN"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WRONG_ROLE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["participant", "list", "--json"]).await).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "active"),
        "nothing changed"
    );
    // Bad administrative input names the rule.
    let out = net
        .admin(&["participant", "add", "KZ", "--name", "again"])
        .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("ALREADY_REGISTERED"));
    let out = net.admin(&["participant", "suspend", "TM"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT_REGISTERED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn corridors_close_open_and_close_again() {
    corridors_close_open_and_close_again_on(Net::new(&["KZ", "CN"]).await).await;
}

async fn corridors_close_open_and_close_again_on(mut net: Net) {
    net.open_corridors = false;
    net.start_hub().await;
    let kz = net.signing_key("KZ", 0);
    let doc = sample("eco/carec-KZ-CN-certificate-of-origin.xml");
    let eco = DocumentType::CertificateOfOrigin;
    let attempt = || envelope(&kz, "KZ", "CN", eco, &doc);
    assert_eq!(
        submit(&net, "KZ", attempt()).await.unwrap_err(),
        Some(RefusalCode::CorridorClosed)
    );
    net.admin_ok(&[
        "corridor",
        "open",
        "KZ",
        "CN",
        "e-co",
        "--override",
        HARNESS_OVERRIDE,
    ])
    .await;
    submit(&net, "KZ", attempt()).await.expect("open corridor");
    // Only that direction and type opened.
    let cn = net.signing_key("CN", 0);
    let back = envelope(&cn, "CN", "KZ", eco, &doc);
    assert_eq!(
        submit(&net, "CN", back).await.unwrap_err(),
        Some(RefusalCode::CorridorClosed)
    );
    net.admin_ok(&["corridor", "close", "KZ", "CN", "e-co"])
        .await;
    assert_eq!(
        submit(&net, "KZ", attempt()).await.unwrap_err(),
        Some(RefusalCode::CorridorClosed)
    );

    // A pilot corridor carries documents, marked as pilot traffic on the receiving side.
    net.admin_ok(&[
        "corridor",
        "pilot",
        "KZ",
        "CN",
        "e-co",
        "--override",
        HARNESS_OVERRIDE,
    ])
    .await;
    let env = attempt();
    let id = message_id(&env);
    submit(&net, "KZ", env).await.expect("pilot corridor");
    net.start_spoke("CN").await;
    let item = net.wait_inbox("CN", &id).await;
    let notes = item["verification"]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["code"] == "PILOT_CORRIDOR"),
        "{item}"
    );
    let corridors: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["corridor", "list", "--json"]).await).unwrap();
    assert_eq!(corridors[0]["state"], "pilot");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anchor_vouches_for_a_new_receipt_key() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let path = sample_path("einvoice/ubl/peppol-base-example.xml");
    let first = net.send("KZ", "CN", "e-invoice", &path).await;

    let new_key = net.path().join("hub-receipt-2.key");
    let out = Command::new(&binaries().hub)
        .args(["pki", "new-receipt-key", "--out"])
        .arg(&new_key)
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    net.receipt_key = Some(new_key);
    net.kill_hub();
    net.start_hub().await;
    let version = net.hub_trust_version().await;
    net.wait_trust_version("KZ", version).await;
    net.wait_trust_version("CN", version).await;
    let list = net.spoke_json("KZ", &["trust-list", "show"]).await;
    assert_eq!(list["hub_keys"].as_array().unwrap().len(), 2, "{list}");

    let second = net.send("KZ", "CN", "e-invoice", &path).await;
    assert_ne!(
        first["receipt"]["key_id"], second["receipt"]["key_id"],
        "signed with the new key"
    );
    for sent in [&first, &second] {
        assert_eq!(
            net.wait_inbox("CN", sent["message_id"].as_str().unwrap())
                .await["verified"],
            true
        );
    }
}

/// `caravan-hub admin ARGS`, which must fail; returns its standard error.
async fn admin_refused(net: &Net, args: &[&str]) -> String {
    let out = net.admin(args).await;
    assert!(
        !out.status.success(),
        "caravan-hub admin {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_records_countries_and_issuing_authorities_that_spokes_then_hold() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("CN").await;
    const NPPO: &str = "State Inspection of Plant Quarantine";

    let start = net.hub_trust_version().await;
    net.admin_ok(&["participant", "set-country", "KZ", "KZ"])
        .await;
    net.admin_ok(&[
        "authority",
        "add",
        "--participant",
        "KZ",
        "--name",
        &format!("  {NPPO} "),
        "--identifier",
        "IPPC=KZ-NPPO",
        "--identifier",
        "kz-bin=123456789012",
    ])
    .await;
    net.admin_ok(&[
        "authority",
        "add",
        "--participant",
        "KZ",
        "--name",
        "Chamber of Commerce and Industry of Kazakhstan",
    ])
    .await;
    let version = net.hub_trust_version().await;
    assert_eq!(version, start + 3, "one version per change");

    // The spoke holds them once the new list is published, in its CLI and its control API.
    let list = net.wait_trust_version("CN", version).await;
    let kz = list["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "KZ")
        .unwrap()
        .clone();
    assert_eq!(kz["country"], "KZ", "{kz}");
    assert_eq!(
        kz["issuing_authorities"],
        serde_json::json!([
            {"name": NPPO, "identifiers": [
                {"scheme": "ippc", "value": "KZ-NPPO"},
                {"scheme": "kz-bin", "value": "123456789012"},
            ]},
            {"name": "Chamber of Commerce and Industry of Kazakhstan", "identifiers": []},
        ]),
        "{kz}"
    );
    let cn = list["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "CN")
        .unwrap();
    assert!(cn["country"].is_null() && cn["issuing_authorities"] == serde_json::json!([]));
    let out = net.spoke_cli("CN", &["trust-list", "show"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("participant KZ  active     stage production  country KZ")
            && text.contains(&format!(
                "issuing authority \"{NPPO}\"  ippc=KZ-NPPO, kz-bin=123456789012"
            )),
        "{text}"
    );
    let listed: serde_json::Value = serde_json::from_str(
        &net.admin_ok(&["authority", "list", "--participant", "KZ", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["participant"], "KZ");

    // Bad input is refused with the rule it breaks, and changes nothing.
    for (args, code, words) in [
        (
            vec!["participant", "set-country", "CN", "XK"],
            "MALFORMED_REQUEST",
            "not an officially assigned ISO 3166-1 alpha-2 code",
        ),
        (
            vec!["participant", "set-country", "CN", "cn"],
            "MALFORMED_REQUEST",
            "two capital letters",
        ),
        (
            vec!["participant", "set-country", "KZ", "KZ"],
            "ALREADY_REGISTERED",
            "records country KZ already",
        ),
        (
            vec!["participant", "set-country", "UZ", "UZ"],
            "NOT_REGISTERED",
            "participant UZ is not registered",
        ),
        (
            vec!["authority", "add", "--participant", "CN", "--name", "  "],
            "MALFORMED_REQUEST",
            "needs a name",
        ),
        (
            vec![
                "authority",
                "add",
                "--participant",
                "KZ",
                "--name",
                "state INSPECTION of plant quarantine",
            ],
            "ALREADY_REGISTERED",
            "records issuing authority",
        ),
        (
            vec![
                "authority",
                "add",
                "--participant",
                "CN",
                "--name",
                "General Administration of Customs",
                "--identifier",
                "ippc=KZ-NPPO",
            ],
            "ALREADY_REGISTERED",
            "identifier ippc=KZ-NPPO is recorded already",
        ),
        (
            vec![
                "authority",
                "add",
                "--participant",
                "CN",
                "--name",
                "GACC",
                "--identifier",
                "has space=1",
            ],
            "MALFORMED_REQUEST",
            "identifier scheme",
        ),
        (
            vec!["authority", "remove", "--participant", "CN", "--name", NPPO],
            "NOT_REGISTERED",
            "records no issuing authority named",
        ),
    ] {
        let err = admin_refused(&net, &args).await;
        assert!(err.contains(code) && err.contains(words), "{args:?}: {err}");
    }
    let long = "x".repeat(201);
    let err = admin_refused(
        &net,
        &["authority", "add", "--participant", "CN", "--name", &long],
    )
    .await;
    assert!(
        err.contains("MALFORMED_REQUEST") && err.contains("201 characters long; at most 200"),
        "{err}"
    );
    let err = admin_refused(
        &net,
        &[
            "authority",
            "add",
            "--participant",
            "CN",
            "--name",
            "A",
            "--identifier",
            "ippc",
        ],
    )
    .await;
    assert!(err.contains("is not SCHEME=VALUE"), "{err}");
    assert_eq!(net.hub_trust_version().await, version, "nothing changed");

    // Removing works, by name whatever its case and spacing.
    net.admin_ok(&[
        "authority",
        "remove",
        "--participant",
        "KZ",
        "--name",
        "state inspection of  PLANT quarantine",
    ])
    .await;
    let list = net.wait_trust_version("CN", version + 1).await;
    let kz = list["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "KZ")
        .unwrap()
        .clone();
    let names: Vec<&str> = kz["issuing_authorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Chamber of Commerce and Industry of Kazakhstan"]);
    // Its identifier is free again.
    net.admin_ok(&[
        "authority",
        "add",
        "--participant",
        "KZ",
        "--name",
        NPPO,
        "--identifier",
        "ippc=KZ-NPPO",
    ])
    .await;

    // Each change is in the exchange log, naming the operator.
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let out = net.hub_cli(&["log", "export"]).await;
    assert!(out.status.success());
    let details: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "registry_change" && e["actor"] == "operator:ops")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "participant KZ country set to KZ".to_owned(),
        format!(
            "issuing authority \"{NPPO}\" (ippc=KZ-NPPO, kz-bin=123456789012) added for participant KZ"
        ),
        format!("issuing authority \"{NPPO}\" removed from participant KZ"),
    ] {
        assert!(
            details.contains(&expected),
            "{expected} not in {details:#?}"
        );
    }
}

/// A conformance report as the kit writes it, for `participant`, covering `types`; its cases
/// pass or one fails.
fn conformance_report(participant: &str, types: &[&str], passed: bool) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "format": "caravan.conformance-report.v1",
        "participant": participant,
        "conformance_identity": "ZZ",
        "document_types": types,
        "sends": types,
        "started_at_ms": Timestamp::now().as_millis() - 60_000,
        "finished_at_ms": Timestamp::now().as_millis(),
        "kit_version": "e2e",
        "passed": passed,
        "cases": [
            {"id": "receive-valid", "title": "A valid document is acknowledged", "rule": "§7",
             "outcome": "PASS", "evidence": "ACCEPTED"},
            {"id": "tampered-payload", "title": "A tampered payload is rejected", "rule": "§7",
             "outcome": if passed { "PASS" } else { "FAIL" },
             "evidence": "<acknowledged> & stored"},
        ],
    }))
    .unwrap()
}

/// Record `json` with `admin conformance record`; the output (or the refusal on stderr).
async fn record(net: &Net, json: &str) -> std::process::Output {
    let file = net.path().join(format!("report-{}.json", rand_suffix()));
    std::fs::write(&file, json).unwrap();
    net.admin(&["conformance", "record", file.to_str().unwrap(), "--json"])
        .await
}

fn rand_suffix() -> String {
    caravan_common::MessageId::generate().to_string()
}

/// The refusal code an admin command failed with (its stderr names it).
fn refused(out: &std::process::Output, code: RefusalCode) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "refused with {code}, yet it succeeded"
    );
    assert!(stderr.contains(code.as_str()), "{code} expected: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_stages_are_earned_with_conformance_reports() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let stage_of = |list: &serde_json::Value, id: &str| {
        list["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["stage"].as_str().unwrap().to_owned())
    };

    // A new participant starts in testing, and the spokes see it so.
    net.admin_ok(&["participant", "add", "TJ", "--name", "Tajikistan"])
        .await;
    let version = net.hub_trust_version().await;
    let held = net.wait_trust_version("KZ", version).await;
    assert_eq!(stage_of(&held, "TJ").as_deref(), Some("testing"), "{held}");
    assert_eq!(stage_of(&held, "KZ").as_deref(), Some("production"));
    let out = net.spoke_cli("KZ", &["trust-list", "show"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stage testing"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // No corridor to a testing participant; nothing changes.
    let out = net
        .admin(&["corridor", "open", "KZ", "TJ", "e-phyto"])
        .await;
    let why = refused(&out, RefusalCode::StageTooLow);
    assert!(
        why.contains("TJ is at stage testing; an open corridor needs both ends at production"),
        "{why}"
    );
    let out = net
        .admin(&["corridor", "pilot", "KZ", "TJ", "e-phyto"])
        .await;
    refused(&out, RefusalCode::StageTooLow);
    // Nor a promotion without a passing report.
    let out = net.admin(&["participant", "stage", "TJ", "pilot"]).await;
    let why = refused(&out, RefusalCode::ConformanceRequired);
    assert!(
        why.contains("TJ has no recorded conformance report"),
        "{why}"
    );
    // Nor starting above testing without a reason.
    let out = net
        .admin(&[
            "participant",
            "add",
            "UZ",
            "--name",
            "Uzbekistan",
            "--stage",
            "pilot",
        ])
        .await;
    refused(&out, RefusalCode::ConformanceRequired);
    assert_eq!(net.hub_trust_version().await, version, "nothing changed");

    // Reports: a malformed one, and one for a participant not registered, are refused and
    // not recorded.
    let out = record(&net, "{\"format\": \"caravan.conformance-report.v1\"}").await;
    let why = refused(&out, RefusalCode::InvalidConformanceReport);
    assert!(
        why.contains("not JSON of the conformance report format"),
        "{why}"
    );
    let lie = conformance_report("TJ", &["e-phyto"], false).replacen(
        "\"passed\": false",
        "\"passed\": true",
        1,
    );
    let why = refused(
        &record(&net, &lie).await,
        RefusalCode::InvalidConformanceReport,
    );
    assert!(
        why.contains("says passed=true but 1 of its cases failed"),
        "{why}"
    );
    refused(
        &record(&net, &conformance_report("TM", &["e-phyto"], true)).await,
        RefusalCode::NotRegistered,
    );
    let listed = net.admin_ok(&["conformance", "list", "--json"]).await;
    assert_eq!(listed.trim(), "[]", "nothing recorded");

    // A failing report is recorded, and does not promote.
    let failing = conformance_report("TJ", &["e-phyto"], false);
    let out = record(&net, &failing).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (first["id"].as_u64(), &first["passed"]),
        (Some(1), &false.into())
    );
    let why = refused(
        &net.admin(&["participant", "stage", "TJ", "pilot"]).await,
        RefusalCode::ConformanceRequired,
    );
    assert!(
        why.contains("TJ's newest conformance report (report 1) failed"),
        "{why}"
    );
    assert_eq!(net.hub_trust_version().await, version, "nothing changed");

    // A passing one for e-phyto promotes TJ to pilot.
    let passing = conformance_report("TJ", &["e-phyto"], true);
    let out = record(&net, &passing).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    net.admin_ok(&["participant", "stage", "TJ", "pilot"]).await;
    // KZ has no report yet: a pilot corridor needs one at both ends.
    let why = refused(
        &net.admin(&["corridor", "pilot", "KZ", "TJ", "e-phyto"])
            .await,
        RefusalCode::ConformanceRequired,
    );
    assert!(
        why.contains("KZ has no recorded conformance report covering e-phyto"),
        "{why}"
    );
    let kz = conformance_report("KZ", &["e-co", "e-phyto"], true);
    assert!(record(&net, &kz).await.status.success());
    // TJ's report does not cover e-co.
    let why = refused(
        &net.admin(&["corridor", "pilot", "KZ", "TJ", "e-co"]).await,
        RefusalCode::ConformanceRequired,
    );
    assert!(
        why.contains("TJ has no recorded conformance report covering e-co"),
        "{why}"
    );
    net.admin_ok(&["corridor", "pilot", "KZ", "TJ", "e-phyto"])
        .await;
    // Open needs production: TJ is at pilot.
    let why = refused(
        &net.admin(&["corridor", "open", "KZ", "TJ", "e-phyto"])
            .await,
        RefusalCode::StageTooLow,
    );
    assert!(why.contains("TJ is at stage pilot"), "{why}");

    // Demotion is refused while a corridor needs more, named; closed, it goes through.
    let why = refused(
        &net.admin(&["participant", "stage", "TJ", "testing"]).await,
        RefusalCode::CorridorsAboveStage,
    );
    assert!(why.contains("KZ -> TJ e-phyto (pilot)"), "{why}");
    net.admin_ok(&["corridor", "close", "KZ", "TJ", "e-phyto"])
        .await;
    net.admin_ok(&["participant", "stage", "TJ", "testing"])
        .await;

    // An override promotes without a report, and an override opens a corridor the rules
    // would refuse; both reasons go into the exchange log.
    net.admin_ok(&["participant", "add", "UZ", "--name", "Uzbekistan"])
        .await;
    net.admin_ok(&[
        "participant",
        "stage",
        "UZ",
        "pilot",
        "--override",
        "bilateral pilot agreed by the ministries",
    ])
    .await;
    net.admin_ok(&[
        "corridor",
        "pilot",
        "KZ",
        "UZ",
        "e-co",
        "--override",
        "UZ's kit run is scheduled",
    ])
    .await;
    let version = net.hub_trust_version().await;
    let held = net.wait_trust_version("KZ", version).await;
    assert_eq!(stage_of(&held, "UZ").as_deref(), Some("pilot"), "{held}");
    assert_eq!(stage_of(&held, "TJ").as_deref(), Some("testing"), "{held}");

    // The list, newest first, and one participant's.
    let all: serde_json::Value =
        serde_json::from_str(&net.admin_ok(&["conformance", "list", "--json"]).await).unwrap();
    let ids: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1]);
    let text = net
        .admin_ok(&["conformance", "list", "--participant", "TJ"])
        .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("2  TJ  ")
            && lines[0].contains("  PASS  e-phyto  2/2 cases  operator:ops"),
        "{text}"
    );
    assert!(lines[1].contains("  FAIL  e-phyto  1/2 cases"), "{text}");

    // Show: each case, the hub's signature verified, the signed JSON and a page written.
    let json_file = net.path().join("shown.json");
    let html_file = net.path().join("shown.html");
    let shown = net
        .admin_ok(&[
            "conformance",
            "show",
            "2",
            "--json",
            json_file.to_str().unwrap(),
            "--html",
            html_file.to_str().unwrap(),
        ])
        .await;
    for text in [
        "conformance report 2 for TJ",
        "hub signature: verified with hub receipt key",
        "PASS  tampered-payload  A tampered payload is rejected [§7]",
    ] {
        assert!(shown.contains(text), "{text} missing: {shown}");
    }
    let signed = std::fs::read(&json_file).unwrap();
    assert_eq!(signed, passing.as_bytes(), "the exact bytes recorded");
    let page = std::fs::read_to_string(&html_file).unwrap();
    assert!(page.contains("&lt;acknowledged&gt; &amp; stored"), "{page}");
    assert!(page.contains("tampered-payload"), "{page}");
    // The signature verifies with the hub's receipt key, over the report's payload type.
    let receipt =
        caravan_common::signing::SigningKey::load(&net.pki().join("hub-receipt.key")).unwrap();
    let second = &all[1];
    assert_eq!(second["key_id"], receipt.key_id().to_string().as_str());
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(second["signature"].as_str().unwrap())
            .unwrap()
    };
    receipt
        .public()
        .verify(
            caravan_common::signing::Purpose::ConformanceReport,
            &signed,
            &signature,
        )
        .expect("the hub's signature over PAE(report payload type, JSON)");

    // The exchange log holds each report and each override with its reason.
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let out = net.hub_cli(&["log", "export"]).await;
    assert!(out.status.success());
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reports: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["kind"] == "conformance_report")
        .collect();
    assert_eq!(reports.len(), 3);
    assert_eq!(
        reports[1]["detail"],
        "conformance report 2 for TJ: PASS (e-phyto), 2/2 cases"
    );
    assert_eq!(reports[1]["actor"], "operator:ops");
    assert_eq!(reports[1]["sender"], "TJ");
    assert_eq!(
        reports[1]["evidence_sha256"],
        caravan_common::signing::sha256(passing.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .as_str()
    );
    let overrides: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "registry_change" && e["actor"] == "operator:ops (override)")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        overrides
            .iter()
            .any(|d| d.contains("participant UZ stage testing -> pilot")
                && d.contains("UZ has no recorded conformance report")
                && d.ends_with(": bilateral pilot agreed by the ministries")),
        "{overrides:#?}"
    );
    assert!(
        overrides
            .iter()
            .any(|d| d.contains("corridor KZ -> UZ e-co set to PILOT")
                && d.ends_with(": UZ's kit run is scheduled")),
        "{overrides:#?}"
    );
    assert!(
        entries.iter().any(|e| e["detail"]
            .as_str()
            .unwrap()
            .contains("participant TJ stage testing -> pilot, on conformance report 2 (PASS)")),
        "the promotion names its report"
    );
}

/// The same tests with the hub's store in PostgreSQL, on a cluster of each test's own (issue
/// 16).
mod on_postgres {
    caravan_tests::on_postgres! {
        a_country_is_onboarded_while_the_hub_runs(super::a_country_is_onboarded_while_the_hub_runs_on, &["KZ", "CN"]),
        keys_rotate_with_an_overlap(super::keys_rotate_with_an_overlap_on, &["KZ", "CN"]),
        revocation_judged_by_the_time_of_acceptance(super::revocation_judged_by_the_time_of_acceptance_on, &["KZ", "CN"]),
        suspension_and_certificate_revocation_cut_open_streams(super::suspension_and_certificate_revocation_cut_open_streams_on, &["KZ", "CN"]),
        corridors_close_open_and_close_again(super::corridors_close_open_and_close_again_on, &["KZ", "CN"]),
    }
}
