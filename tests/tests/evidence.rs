//! The offline verifier: an exported evidence bundle verifies with the anchor key alone, and
//! every tampering is named.

use std::process::Output;

use tokio::process::Command;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use caravan_proto::v1;
use caravan_tests::{Net, binaries, sample_path};
use prost::Message;

async fn verify(args: &[&str], file: &std::path::Path) -> (Output, serde_json::Value) {
    let out = Command::new(&binaries().spoke)
        .arg("verify")
        .args(args)
        .arg("--json")
        .arg(file)
        .output()
        .await
        .unwrap();
    let verdict = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, verdict)
}

fn failed(verdict: &serde_json::Value) -> Vec<String> {
    verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_bundle_verifies_offline_and_tampering_is_named() {
    let mut net = Net::new(&["KZ", "CN"]).await;
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
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
    let bundle_path = net.path().join("evidence.json");
    let out = net
        .spoke_cli(
            "CN",
            &["export", &id, "--out", bundle_path.to_str().unwrap()],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Genuine, with the anchor key file, or with a spoke's config.
    let anchor = net.pki().join("hub-anchor.pub");
    let (out, verdict) = verify(&["--anchor-key", anchor.to_str().unwrap()], &bundle_path).await;
    assert!(out.status.success(), "{verdict}");
    assert_eq!(verdict["genuine"], true);
    let names: Vec<&str> = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "trust list",
            "hub receipt",
            "signature",
            "receipt matches document",
            "acknowledgement"
        ]
    );
    assert_eq!(verdict["document"]["document_id"], "KZ-CO-2026-000123");
    let config = net.spoke_config("CN");
    let (out, _) = verify(&["--config", config.to_str().unwrap()], &bundle_path).await;
    assert!(out.status.success());

    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle_path).unwrap()).unwrap();
    // The spokes take log proofs as receipts (protocol v2): the bundle keeps the proof.
    assert_eq!(original["format"], "caravan-evidence/2", "{original}");
    assert!(original["accepted_proof"].is_string(), "{original}");
    assert!(original.get("receipt").is_none(), "{original}");
    // The bundle edited by `edit`, written to a file, and verified with the anchor key.
    let tampered = async |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut bundle = original.clone();
        edit(&mut bundle);
        let path = net.path().join("tampered.json");
        std::fs::write(&path, bundle.to_string()).unwrap();
        verify(&["--anchor-key", anchor.to_str().unwrap()], &path).await
    };
    // A payload changed after signing.
    let (out, verdict) = tampered(&|b| {
        let mut env = v1::Envelope::decode(
            BASE64
                .decode(b["envelope"].as_str().unwrap())
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        env.payload[200] ^= 1;
        b["envelope"] = BASE64.encode(env.encode_to_vec()).into();
    })
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(verdict["genuine"], false);
    assert!(
        failed(&verdict).contains(&"signature".to_owned()),
        "{verdict}"
    );
    let detail = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signature")
        .unwrap()["detail"]
        .clone();
    assert!(
        detail.as_str().unwrap().contains("PAYLOAD_HASH_MISMATCH"),
        "{detail}"
    );
    // A trust list edited by someone without the anchor key.
    let (out, verdict) = tampered(&|b| {
        let mut list = BASE64.decode(b["trust_list"].as_str().unwrap()).unwrap();
        let n = list.len() / 2;
        list[n] ^= 1;
        b["trust_list"] = BASE64.encode(list).into();
    })
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        failed(&verdict).contains(&"trust list".to_owned()),
        "{verdict}"
    );
    // A receipt that is no proof: an edited log entry, another format's receipt field, or no
    // receipt at all.
    let proof = |b: &serde_json::Value| {
        v1::LogProof::decode(
            BASE64
                .decode(b["accepted_proof"].as_str().unwrap())
                .unwrap()
                .as_slice(),
        )
        .unwrap()
    };
    let edited_entry = |b: &mut serde_json::Value| {
        let mut p = proof(b);
        let n = p.entry.len() - 1;
        p.entry[n] ^= 1;
        b["accepted_proof"] = BASE64.encode(p.encode_to_vec()).into();
    };
    let as_v1 = |b: &mut serde_json::Value| b["format"] = "caravan-evidence/1".into();
    let without = |b: &mut serde_json::Value| {
        b.as_object_mut().unwrap().remove("accepted_proof");
    };
    for (edit, says) in [
        (
            &edited_entry as &dyn Fn(&mut serde_json::Value),
            "inclusion path",
        ),
        (&as_v1, "receipt"),
        (&without, "has no accepted_proof"),
    ] {
        let (out, verdict) = tampered(edit).await;
        assert_eq!(out.status.code(), Some(1));
        let receipt = verdict["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "hub receipt")
            .unwrap()
            .clone();
        assert_eq!(receipt["ok"], false, "{verdict}");
        assert!(
            receipt["detail"].as_str().unwrap().contains(says),
            "{says}: {receipt}"
        );
    }

    // Another anchor key believes nothing in the bundle.
    let other = net.path().join("other-pki");
    assert!(
        Command::new(&binaries().hub)
            .args(["pki", "init", "--dir"])
            .arg(&other)
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    let (out, verdict) = verify(
        &[
            "--anchor-key",
            other.join("hub-anchor.pub").to_str().unwrap(),
        ],
        &bundle_path,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed(&verdict)[0], "trust list");
}
