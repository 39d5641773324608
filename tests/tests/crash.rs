//! Crash safety under load: concurrent senders, the hub SIGKILLed in the middle. Every
//! document for which a sender holds a receipt reaches the recipient exactly once, and nothing
//! the hub refused appears anywhere.

use std::collections::{BTreeSet, HashSet};

use caravan_common::{DocumentType, RefusalCode};
use caravan_proto::v1;
use caravan_tests::{Net, envelope, sample};
use prost::Message;

const SENDERS: [&str; 2] = ["KZ", "UZ"];
const PER_SENDER: usize = 150;

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_killed_under_load_loses_nothing_it_receipted() {
    killed_under_load(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_on_sled_killed_under_load_loses_nothing_it_receipted() {
    killed_under_load(Some("sled")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_on_postgres_killed_under_load_loses_nothing_it_receipted() {
    killed_under_load(Some("postgres")).await;
}

async fn killed_under_load(engine: Option<&'static str>) {
    let mut net = Net::new(&["KZ", "UZ", "CN"]).await;
    if engine == Some("postgres") {
        if !net.on_postgres("a_hub_on_postgres_killed_under_load_loses_nothing_it_receipted") {
            return;
        }
    } else {
        net.store_engine = engine;
    }
    net.start_hub().await;
    let doc = sample("einvoice/ubl/peppol-base-example.xml");

    let mut tasks = Vec::new();
    for sender in SENDERS {
        let key = net.signing_key(sender, 0);
        let client = net.client(sender);
        let doc = doc.clone();
        tasks.push(tokio::spawn(async move {
            let (mut receipted, mut refused) = (Vec::new(), Vec::new());
            for i in 0..PER_SENDER {
                let mut env = envelope(&key, sender, "CN", DocumentType::Invoice, &doc);
                let id = <v1::Header as Message>::decode(env.header.as_slice())
                    .unwrap()
                    .message_id;
                // Every tenth document is forged: the hub must refuse it.
                let forged = i % 10 == 9;
                if forged {
                    env.signature.as_mut().unwrap().signature[0] ^= 1;
                }
                match client
                    .clone()
                    .submit(v1::SubmitRequest {
                        envelope: Some(env),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) => {
                        assert!(!forged, "a forged document was accepted");
                        assert!(r.into_inner().receipt.is_some());
                        receipted.push(id);
                    }
                    Err(status) => {
                        if let Some(r) = caravan_proto::status::from_status(&status) {
                            assert_eq!(r.code, RefusalCode::BadSignature);
                            refused.push(id);
                        }
                        // Otherwise the hub was down: no receipt, no promise.
                    }
                }
            }
            (receipted, refused)
        }));
    }
    // Kill the hub while the senders are at it, then bring it back.
    let start = std::time::Instant::now();
    while net.hub_log().matches("accepted message_id").count() < 60 {
        assert!(
            start.elapsed() < caravan_tests::PATIENCE,
            "no load reached the hub"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    net.kill_hub();
    net.start_hub().await;

    let (mut receipted, mut refused) = (Vec::new(), Vec::new());
    for task in tasks {
        let (r, f) = task.await.unwrap();
        receipted.extend(r);
        refused.extend(f);
    }
    assert!(receipted.len() >= 60, "only {} receipts", receipted.len());
    assert!(!refused.is_empty());

    net.start_spoke("CN").await;
    let start = std::time::Instant::now();
    let inbox = loop {
        let inbox = net.spoke_json("CN", &["inbox"]).await;
        let ids: HashSet<String> = inbox
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["message_id"].as_str().unwrap().to_owned())
            .collect();
        if receipted.iter().all(|id| ids.contains(id)) {
            break inbox;
        }
        assert!(
            start.elapsed() < caravan_tests::PATIENCE,
            "receipted documents missing from the inbox"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let items = inbox.as_array().unwrap();
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["message_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a document appeared twice");
    assert!(items.iter().all(|i| i["verified"] == true));
    for id in &refused {
        assert!(
            !unique.contains(id.as_str()),
            "refused document {id} appeared"
        );
    }
}
