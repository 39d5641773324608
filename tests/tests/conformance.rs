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
}
