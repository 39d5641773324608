//! Renewing the CA without a flag day: the hub and the spokes trust the old and the new CA
//! together while certificates are re-issued, then only the new one.

use tokio::process::Command;

use caravan_proto::v1;
use caravan_tests::{Net, binaries, sample_path};

async fn pki(net: &Net, args: &[&str]) {
    let out = Command::new(&binaries().hub)
        .arg("pki")
        .args(args)
        .arg("--dir")
        .arg(net.pki())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "pki {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ca_rolls_over_while_countries_move_one_by_one() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let send = async |net: &Net| {
        let id = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
    };
    send(&net).await;

    // A new CA; the hub's certificate comes from it, and hub and spokes trust both CAs.
    assert!(net.terminate_hub().await);
    pki(
        &net,
        &[
            "rollover-ca",
            "--hub-name",
            "localhost",
            "--hub-name",
            "127.0.0.1",
        ],
    )
    .await;
    let old_cas = std::fs::read_dir(net.pki())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("ca-") && name.ends_with(".key")
        })
        .count();
    assert_eq!(old_cas, 1, "the old CA is kept");
    net.ca_file = "ca-bundle.pem".into();
    net.start_hub().await;
    for id in ["KZ", "CN"] {
        net.kill_spoke(id);
    }
    // CN moves to a certificate from the new CA; KZ still has its old one. Both work.
    pki(&net, &["issue", "--participant", "CN", "--renew"]).await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    send(&net).await;

    // Once every country moved, the old CA goes: KZ's old certificate no longer connects...
    assert!(net.terminate_hub().await);
    net.ca_file = "ca.pem".into();
    net.start_hub().await;
    let status = |id: &str| {
        let mut client = net.client(id);
        async move {
            client
                .status(v1::StatusRequest {
                    message_id: caravan_common::MessageId::generate().to_string(),
                })
                .await
        }
    };
    // The hub ends the TLS handshake: the connection closes before any answer.
    let refused = status("KZ").await.unwrap_err();
    assert!(
        matches!(
            refused.code(),
            tonic::Code::Cancelled | tonic::Code::Unavailable | tonic::Code::Unknown
        ),
        "KZ's old certificate got through: {refused:?}"
    );
    // (CN, on the new CA, is answered: no such message.)
    assert_eq!(
        status("CN").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    // ...until it gets one from the new CA.
    net.kill_spoke("KZ");
    pki(&net, &["issue", "--participant", "KZ", "--renew"]).await;
    net.start_spoke("KZ").await;
    send(&net).await;
}
