//! The conformance kit end to end: `caravan-hub conformance run` against a real hub, its
//! stand-in hub on loopback with mutual TLS, and a candidate: Caravan's own spoke, which
//! passes every case.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use caravan_hub::conformance::report::{Outcome, Report};
use caravan_tests::{Net, Proc, binaries, sample_issued_now};

/// How long a whole kit run may take here (its own timeouts are shorter).
const RUN_PATIENCE: Duration = Duration::from_secs(240);

/// Start `caravan-hub conformance run` for `participant` on a free port; the process and the
/// stand-in's port.
async fn start_kit(net: &Net, participant: &str, types: &str, out: &Path) -> (Proc, u16) {
    let mut command = Command::new(&binaries().hub);
    command
        .args(["conformance", "run", "--config"])
        .arg(net.hub_config())
        .arg("--admin")
        .arg(net.admin_config())
        .args([
            "--participant",
            participant,
            "--types",
            types,
            "--listen",
            "127.0.0.1:0",
            "--connect-timeout-secs",
            "60",
            "--case-timeout-secs",
            "20",
            "--send-timeout-secs",
            "90",
            "--out",
        ])
        .arg(out)
        .env("CARAVAN_HUB_LOG", "warn");
    let kit = Proc::spawn(command, net.path().join(format!("kit-{participant}.log")));
    let stand_in = net.hub_data().join("conformance").join("standin");
    let listening = kit.listening(&stand_in).await;
    let port = listening.grpc.expect("the stand-in's address").port();
    (kit, port)
}

/// Wait for the kit to finish; its exit code.
async fn finish(kit: &Proc) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = kit.exited() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < RUN_PATIENCE,
            "the kit did not finish; log:\n{}",
            kit.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The one report the kit wrote into `out`.
fn report(out: &Path) -> Report {
    let files: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("the report folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    Report::from_json(&std::fs::read(&files[0]).expect("report")).expect("a valid report")
}

/// A KZ sample addressed to the conformance identity: issued an hour ago, its importing
/// country ZZ, so that the sending spoke's own checks pass.
fn addressed_to_zz(net: &Net, path: &str, cn: &str, zz: &str) -> PathBuf {
    let text = String::from_utf8(sample_issued_now(path)).expect("UTF-8");
    assert!(text.contains(cn), "{path} names CN as {cn}");
    let file = net.path().join(path.replace('/', "-"));
    std::fs::write(&file, text.replace(cn, zz)).expect("write");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caravan_spoke_passes_the_conformance_kit() {
    let mut net = Net::new(&["KZ"]).await;
    net.start_hub().await;
    // A new country: testing until its report says otherwise.
    net.admin_ok(&["participant", "stage", "KZ", "testing"])
        .await;
    let out = net.path().join("reports");
    let (kit, port) = start_kit(&net, "KZ", "e-co,e-phyto", &out).await;
    // The candidate's test spoke: its own certificate and key, the stand-in's address and
    // anchor.
    let anchor = std::fs::read_to_string(net.hub_data().join("conformance").join("anchor.pub"))
        .expect("the kit's anchor public key");
    net.spoke_hub_port.insert("KZ".into(), port);
    net.spoke_anchor_override
        .insert("KZ".into(), anchor.trim().to_owned());
    net.start_spoke("KZ").await;
    // Until it holds the list the kit prepared, naming ZZ, it refuses to send ZZ anything.
    net.wait_trust_list("KZ", "a trust list naming ZZ", |list| {
        list["participants"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["id"] == "ZZ"))
    })
    .await;
    let eco = addressed_to_zz(
        &net,
        "eco/carec-KZ-CN-certificate-of-origin.xml",
        ">CN</cbc:IdentificationCode>",
        ">ZZ</cbc:IdentificationCode>",
    );
    let phyto = addressed_to_zz(
        &net,
        "ephyto/carec-KZ-CN-phytosanitary.xml",
        "<ns1:ID>CN</ns1:ID>",
        "<ns1:ID>ZZ</ns1:ID>",
    );
    for (t, file) in [("e-co", &eco), ("e-phyto", &phyto)] {
        let sent = net.send("KZ", "ZZ", t, file).await;
        assert!(sent.get("message_id").is_some(), "{sent}");
    }
    let code = finish(&kit).await;
    let report = report(&out);
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| format!("{}: {}", c.id, c.evidence))
        .collect();
    assert!(
        failed.is_empty(),
        "failed: {failed:#?}\nkit log:\n{}",
        kit.log_text()
    );
    assert_eq!(code, 0, "{}", kit.log_text());
    assert!(report.passed);
    let ids: Vec<&str> = report.cases.iter().map(|c| c.id.as_str()).collect();
    for id in [
        "connect",
        "receive-valid-e-co",
        "receive-valid-e-phyto",
        "tampered-payload",
        "forged-header-signature",
        "forged-delivery-receipt",
        "redelivery",
        "supersession",
        "restart-mid-delivery",
        "trust-list-followed",
        "rolled-back-trust-list",
        "stale-trust-list",
        "send-valid-e-co",
        "send-valid-e-phyto",
        "forged-submit-receipt",
    ] {
        assert!(ids.contains(&id), "no case {id} in {ids:?}");
    }
    assert_eq!(report.participant.as_str(), "KZ");
    // The hub recorded and signed it, and the readable page was written beside it.
    let listed: serde_json::Value = serde_json::from_str(
        &net.admin_ok(&["conformance", "list", "--participant", "KZ", "--json"])
            .await,
    )
    .expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["passed"], true, "{listed}");
    let html = std::fs::read_dir(&out)
        .expect("the report folder")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .expect("the report's page");
    let page = std::fs::read_to_string(html).expect("page");
    assert!(page.contains("PASS") && page.contains("forged-submit-receipt"));
    // The passing report is what lets the participant leave testing, without an override.
    net.admin_ok(&["participant", "stage", "KZ", "pilot"]).await;
}

/// A candidate written for the test that breaks one rule: it acknowledges what it is given
/// without verifying it (`verify = false`), takes any receipt as proof (`check_receipts =
/// false`), or refuses a key its list does not know without looking for a newer list
/// (`looks_for_newer_list = false`). Otherwise it keeps the protocol: it holds the newest trust
/// list it is offered, assembles frames, and answers every delivery.
struct Double {
    verify: bool,
    check_receipts: bool,
    looks_for_newer_list: bool,
}

mod double {
    use std::sync::{Arc, Mutex};

    use prost::Message;
    use tokio_stream::StreamExt;

    use caravan_common::{
        DocumentType, MessageId, Timestamp,
        envelope::{Ack, AckOutcome, Header},
        refusal::RejectCode,
        signing::{PublicKey, SigningKey, sha256},
        trust::TrustSet,
    };
    use caravan_proto::{
        ack, envelope, receipt, trust_list,
        v1::{self, exchange_client::ExchangeClient, trust_anchor_client::TrustAnchorClient},
    };
    use tonic::transport::Channel;

    use super::Double;

    type Held = Arc<Mutex<(u64, Option<TrustSet>)>>;

    /// Adopt `signed` if it verifies with `anchor` and is newer than the list held.
    fn adopt(held: &Held, signed: &v1::SignedTrustList, anchor: &PublicKey) {
        if let Ok((list, set)) = trust_list::open(signed, anchor) {
            let mut held = held.lock().unwrap();
            if list.version > held.0 {
                *held = (list.version, Some(set));
            }
        }
    }

    fn trust(held: &Held) -> TrustSet {
        held.lock().unwrap().1.clone().expect("a trust list held")
    }

    /// Play the candidate until the task is dropped.
    pub async fn play(
        double: Double,
        channel: Channel,
        anchor: PublicKey,
        key: SigningKey,
        documents: Vec<(DocumentType, Vec<u8>)>,
    ) {
        let held: Held = Arc::new(Mutex::new((0, None)));
        let mut anchor_client = TrustAnchorClient::new(channel.clone());
        let current = anchor_client
            .current(v1::CurrentTrustListRequest {})
            .await
            .expect("the stand-in's trust list")
            .into_inner();
        adopt(&held, &current, &anchor);
        let watching = {
            let (held, anchor) = (held.clone(), anchor.clone());
            tokio::spawn(async move {
                let mut stream = anchor_client
                    .watch(v1::WatchTrustListRequest { after_version: 0 })
                    .await
                    .expect("watch")
                    .into_inner();
                while let Some(Ok(list)) = stream.next().await {
                    adopt(&held, &list, &anchor);
                }
            })
        };
        let exchange = ExchangeClient::new(channel.clone());
        let sending = {
            let (mut exchange, held, key) = (exchange.clone(), held.clone(), key.clone());
            let check = double.check_receipts;
            tokio::spawn(async move {
                for (t, payload) in documents {
                    let header = Header {
                        message_id: MessageId::generate(),
                        sender: "KZ".parse().unwrap(),
                        recipient: "ZZ".parse().unwrap(),
                        document_type: t,
                        document_id: format!("DOUBLE-{t}"),
                        content_type: "application/xml".into(),
                        payload_sha256: sha256(&payload),
                        payload_length: payload.len() as u64,
                        created_at: Timestamp::now(),
                        key_id: key.key_id(),
                        supersedes: None,
                        in_reply_to: None,
                    };
                    let envelope = envelope::seal(&header, payload, &key);
                    loop {
                        let answer = exchange
                            .submit(v1::SubmitRequest {
                                envelope: Some(envelope.clone()),
                                ..Default::default()
                            })
                            .await;
                        let proof = answer.ok().and_then(|a| a.into_inner().receipt);
                        let good = proof
                            .as_ref()
                            .is_some_and(|r| receipt::verify(r, &trust(&held)).is_ok());
                        if good || (!check && proof.is_some()) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    }
                }
            })
        };
        let mut exchange = exchange;
        loop {
            let Ok(stream) = exchange
                .deliveries(v1::DeliveriesRequest {
                    resume_after: 0,
                    ..Default::default()
                })
                .await
            else {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            };
            let mut stream = stream.into_inner();
            let mut current: Option<(v1::Envelope, Option<v1::SignedReceipt>)> = None;
            while let Some(Ok(frame)) = stream.next().await {
                if let Some(envelope) = frame.envelope {
                    current = Some((envelope, frame.receipt));
                } else if let Some((envelope, _)) = current.as_mut() {
                    envelope.payload.extend_from_slice(&frame.continuation);
                }
                if !frame.complete {
                    continue;
                }
                let Some((envelope, signed_receipt)) = current.take() else {
                    continue;
                };
                let header = v1::Header::decode(envelope.header.as_slice()).expect("a header");
                let outcome = match double.verify {
                    false => AckOutcome::Accepted,
                    true => {
                        let judge = |set: &TrustSet| {
                            signed_receipt
                                .clone()
                                .ok_or_else(|| {
                                    caravan_common::Refusal::new(
                                        caravan_common::RefusalCode::BadReceipt,
                                        "no receipt",
                                    )
                                })
                                .and_then(|r| receipt::verify(&r, set))
                                .and_then(|r| envelope::open(&envelope, set, None, r.accepted_at))
                        };
                        let mut verdict = judge(&trust(&held));
                        // A key the list held does not know yet: look for a newer list first
                        // (docs/protocol.md section 7).
                        if double.looks_for_newer_list
                            && verdict
                                .as_ref()
                                .is_err_and(|r| r.code == caravan_common::RefusalCode::UnknownKey)
                            && let Ok(current) = TrustAnchorClient::new(channel.clone())
                                .current(v1::CurrentTrustListRequest {})
                                .await
                        {
                            adopt(&held, &current.into_inner(), &anchor);
                            verdict = judge(&trust(&held));
                        }
                        match verdict {
                            Ok(_) => AckOutcome::Accepted,
                            Err(refusal) => AckOutcome::Rejected {
                                code: RejectCode::Caravan(refusal.code),
                                reason: refusal.detail,
                            },
                        }
                    }
                };
                let ack = Ack {
                    message_id: header.message_id.parse().expect("an id"),
                    sender: header.sender.parse().expect("a sender"),
                    recipient: "KZ".parse().unwrap(),
                    header_sha256: sha256(&envelope.header),
                    outcome,
                    acknowledged_at: Timestamp::now(),
                    key_id: key.key_id(),
                };
                let _ = exchange
                    .acknowledge_many(v1::AcknowledgeManyRequest {
                        acks: vec![ack::sign(&ack, &key)],
                    })
                    .await;
            }
            if sending.is_finished() && watching.is_finished() {
                return;
            }
        }
    }
}

/// Run the kit against `double`; the ids of the cases that failed.
async fn failed_cases(net: &Net, double: Double, name: &str) -> Vec<String> {
    let out = net.path().join(format!("reports-{name}"));
    let (kit, port) = start_kit(net, "KZ", "e-co", &out).await;
    let anchor = std::fs::read_to_string(net.hub_data().join("conformance").join("anchor.pub"))
        .expect("the kit's anchor public key");
    let anchor = caravan_common::signing::PublicKey::from_base64(anchor.trim()).expect("a key");
    let eco = addressed_to_zz(
        net,
        "eco/carec-KZ-CN-certificate-of-origin.xml",
        ">CN</cbc:IdentificationCode>",
        ">ZZ</cbc:IdentificationCode>",
    );
    let candidate = tokio::spawn(double::play(
        double,
        net.channel_to("KZ", port).expect("KZ's certificate"),
        anchor,
        net.signing_key("KZ", 0),
        vec![(
            caravan_common::DocumentType::CertificateOfOrigin,
            std::fs::read(eco).expect("document"),
        )],
    ));
    let code = finish(&kit).await;
    candidate.abort();
    let report = report(&out);
    assert_eq!(code, 1, "a failed run exits 1; log:\n{}", kit.log_text());
    assert!(!report.passed);
    report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_that_break_a_rule_fail_on_that_rule_alone() {
    let mut net = Net::new(&["KZ"]).await;
    net.start_hub().await;
    net.admin_ok(&["participant", "stage", "KZ", "testing"])
        .await;
    let trusting = failed_cases(
        &net,
        Double {
            verify: false,
            check_receipts: true,
            looks_for_newer_list: true,
        },
        "acks-without-verifying",
    )
    .await;
    assert_eq!(
        trusting,
        [
            "tampered-payload",
            "forged-header-signature",
            "forged-delivery-receipt"
        ],
        "a candidate that acknowledges without verifying"
    );
    let credulous = failed_cases(
        &net,
        Double {
            verify: true,
            check_receipts: false,
            looks_for_newer_list: true,
        },
        "takes-any-receipt",
    )
    .await;
    assert_eq!(
        credulous,
        ["forged-submit-receipt"],
        "a candidate that takes a forged receipt"
    );
    let hasty = failed_cases(
        &net,
        Double {
            verify: true,
            check_receipts: true,
            looks_for_newer_list: false,
        },
        "refuses-a-key-it-does-not-know-yet",
    )
    .await;
    assert_eq!(
        hasty,
        ["trust-list-followed", "rolled-back-trust-list"],
        "a candidate that refuses a new key before looking for the list naming it (the rollback case needs the new key, so it is not run)"
    );
    // Every report is kept, and a failed one promotes nobody.
    let listed: serde_json::Value = serde_json::from_str(
        &net.admin_ok(&["conformance", "list", "--participant", "KZ", "--json"])
            .await,
    )
    .expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    let refused = net.admin(&["participant", "stage", "KZ", "pilot"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("CONFORMANCE_REQUIRED"), "{stderr}");
}
