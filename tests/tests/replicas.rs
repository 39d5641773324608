//! A hub that runs as several replicas on one PostgreSQL database (issue 16): documents
//! cross between spokes connected to different replicas; a replica SIGKILLed under load
//! loses and duplicates nothing that was receipted; a spoke fails over while a replica is
//! stopped; the database stopped and started under load costs no document; and the log
//! verifies afterwards. Each test runs a PostgreSQL cluster of its own.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use caravan_common::DocumentType;
use caravan_proto::v1::{self, exchange_client::ExchangeClient};
use caravan_tests::{Net, PATIENCE, envelope, postgres::Postgres, sample, sample_path};
use prost::Message;

/// A network whose hub keeps its store in a database of `pg`'s.
async fn net_on(pg: &Postgres, ids: &[&str]) -> Net {
    pg.sql("postgres", "CREATE DATABASE hub");
    let mut net = Net::new(ids).await;
    net.postgres_url = Some(pg.url("hub"));
    net
}

fn url(port: u16) -> String {
    format!("https://localhost:{port}")
}

/// Wait until `id`'s inbox holds every one of `ids`; returns the inbox.
async fn wait_all(net: &Net, id: &str, ids: &[String]) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let inbox = net.spoke_json(id, &["inbox"]).await;
        let items = inbox.as_array().expect("array").clone();
        let held: HashSet<&str> = items
            .iter()
            .filter_map(|i| i["message_id"].as_str())
            .collect();
        if ids.iter().all(|m| held.contains(m.as_str())) {
            return items;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{} of {} documents reached {id}; log:\n{}",
            ids.iter().filter(|m| held.contains(m.as_str())).count(),
            ids.len(),
            net.spoke_log(id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every document once, and each verified.
fn exactly_once(items: &[serde_json::Value]) {
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["message_id"].as_str().expect("an id"))
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a document appeared twice");
    assert!(items.iter().all(|i| i["verified"] == true));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_one_killed_under_load_lose_and_duplicate_nothing() {
    let Some(pg) = Postgres::start("two_replicas_one_killed_under_load_lose_and_duplicate_nothing")
    else {
        return;
    };
    let mut net = net_on(&pg, &["KZ", "UZ", "CN"]).await;
    net.start_hub().await;
    let (second, second_port) = net.start_replica(2).await;
    let first_port = net.hub_port.expect("the first replica's port");
    // CN takes its deliveries from the second replica: documents accepted by the first reach
    // it through the database and its notifications.
    net.spoke_hub_urls
        .insert("CN".into(), vec![url(second_port), url(first_port)]);

    // Two senders submit to the first replica; when it cannot answer, the same envelope (the
    // same message id) goes to the second, as a spoke's outbox does.
    const PER_SENDER: usize = 120;
    let doc = sample("einvoice/ubl/peppol-base-example.xml");
    let mut tasks = Vec::new();
    for sender in ["KZ", "UZ"] {
        let key = net.signing_key(sender, 0);
        let replicas = [
            net.channel_to(sender, first_port).expect("a certificate"),
            net.channel_to(sender, second_port).expect("a certificate"),
        ];
        let doc = doc.clone();
        tasks.push(tokio::spawn(async move {
            let mut receipted = Vec::new();
            for _ in 0..PER_SENDER {
                let env = envelope(&key, sender, "CN", DocumentType::Invoice, &doc);
                let id = v1::Header::decode(env.header.as_slice())
                    .expect("a header")
                    .message_id;
                let mut attempts = 0;
                'replicas: loop {
                    for channel in &replicas {
                        let mut client = ExchangeClient::new(channel.clone());
                        let request = v1::SubmitRequest {
                            envelope: Some(env.clone()),
                            ..Default::default()
                        };
                        match client.submit(request).await {
                            Ok(answer) => {
                                assert!(answer.into_inner().receipt.is_some());
                                receipted.push(id.clone());
                                break 'replicas;
                            }
                            Err(status) => {
                                // A refusal would be a bug: every document here is good.
                                assert!(
                                    caravan_proto::status::from_status(&status).is_none(),
                                    "refused: {status:?}"
                                );
                                attempts += 1;
                                assert!(attempts < 200, "no replica answered: {status:?}");
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            receipted
        }));
    }
    // Kill the first replica while the senders are at it.
    let start = Instant::now();
    while net.hub_log().matches("accepted message_id").count() < 60 {
        assert!(start.elapsed() < PATIENCE, "no load reached the hub");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    net.kill_hub();
    let mut receipted = Vec::new();
    for task in tasks {
        receipted.extend(task.await.expect("a sender"));
    }
    assert_eq!(
        receipted.len(),
        2 * PER_SENDER,
        "every document was receipted"
    );
    assert!(
        second.log_text().contains("accepted message_id"),
        "the second replica took over the senders"
    );

    net.start_spoke("CN").await;
    let items = wait_all(&net, "CN", &receipted).await;
    exactly_once(&items);
    assert_eq!(items.len(), receipted.len(), "nothing else arrived");
    // One gap-free log for both replicas, in the database.
    assert_eq!(
        pg.sql("hub", "SELECT count(*) = max(log_index) FROM log_entries"),
        "t"
    );
    assert!(second.terminate().await, "the second replica stops cleanly");
    let out = net.hub_cli(&["log", "verify"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "log verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("the log matches every signed tree head"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_crosses_while_one_replica_is_stopped() {
    let Some(pg) = Postgres::start("a_document_crosses_while_one_replica_is_stopped") else {
        return;
    };
    let mut net = net_on(&pg, &["KZ", "CN"]).await;
    net.start_hub().await;
    let (second, second_port) = net.start_replica(2).await;
    let first_port = net.hub_port.expect("the first replica's port");
    net.spoke_hub_urls
        .insert("KZ".into(), vec![url(first_port), url(second_port)]);
    net.spoke_hub_urls
        .insert("CN".into(), vec![url(second_port), url(first_port)]);
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let sent = net.send("KZ", "CN", "e-co", &eco).await;
    let before = sent["message_id"].as_str().expect("an id").to_owned();
    net.wait_inbox("CN", &before).await;
    net.wait_state("KZ", &before, "ACKNOWLEDGED").await;

    // The replica KZ talks to stops; KZ moves to the other, and the next document crosses.
    assert!(net.terminate_hub().await, "the first replica stops cleanly");
    let sent = net.send_queued("KZ", "CN", "e-co", &eco).await;
    let during = sent["message_id"].as_str().expect("an id").to_owned();
    net.wait_inbox("CN", &during).await;
    net.wait_state("KZ", &during, "ACKNOWLEDGED").await;
    assert!(
        net.spoke_log("KZ").contains("moving to the next"),
        "KZ moved to the second replica"
    );
    assert_eq!(net.inbox_copies("CN", &during).await, 1);
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_stopped_and_started_under_load_costs_no_document() {
    let Some(pg) = Postgres::start("the_database_stopped_and_started_under_load_costs_no_document")
    else {
        return;
    };
    let mut net = net_on(&pg, &["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let mut ids = Vec::new();
    for _ in 0..10 {
        let sent = net.send_queued("KZ", "CN", "e-co", &eco).await;
        ids.push(sent["message_id"].as_str().expect("an id").to_owned());
    }
    pg.stop();
    // The hub says so: NOT_SERVING, and the store's fault in its metrics.
    let start = Instant::now();
    while !net
        .hub_metrics()
        .await
        .contains("caravan_hub_store_fault{reason=\"database_unreachable\"} 1")
    {
        assert!(start.elapsed() < PATIENCE, "the hub never noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let sent = net.send_queued("KZ", "CN", "e-co", &eco).await;
        ids.push(sent["message_id"].as_str().expect("an id").to_owned());
    }
    pg.restart();
    let items = wait_all(&net, "CN", &ids).await;
    exactly_once(&items);
    for id in &ids {
        net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    }
    let log = net.hub_log();
    assert_eq!(
        log.matches("store faulted").count(),
        1,
        "one line when the database went away: {log}"
    );
    assert!(log.contains("store recovered"), "{log}");
}
