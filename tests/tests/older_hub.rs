//! A spoke and a hub from before `AcknowledgeMany` and receipts as log proofs (protocol v1): the
//! spoke, told UNIMPLEMENTED, sends its acknowledgements one request each; it takes signed
//! receipts where it asked for log proofs; and everything still goes through, both ways, with
//! a spoke of the current protocol on the other side. The older hub is the real one behind a
//! proxy (with the hub's certificate towards the spoke and the spoke's towards the hub) that
//! forwards every call but `AcknowledgeMany`, dropping the requests' v2 fields as a v1 hub's
//! decoder would. The proxy also counts the spoke's `WatchStatus` calls: a spoke that only
//! receives follows no status stream.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use caravan_proto::v1::{
    self,
    exchange_client::ExchangeClient,
    exchange_server::{Exchange, ExchangeServer},
    trust_anchor_client::TrustAnchorClient,
    trust_anchor_server::{TrustAnchor, TrustAnchorServer},
};
use caravan_tests::{Net, sample_path};
use tonic::{
    Request, Response, Status, Streaming,
    transport::{Certificate, Channel, Identity, Server, ServerTlsConfig, server::TcpIncoming},
};

#[derive(Clone)]
struct OlderHub {
    exchange: ExchangeClient<Channel>,
    anchor: TrustAnchorClient<Channel>,
    /// Calls of AcknowledgeMany (refused) and of Acknowledge (forwarded).
    many: Arc<AtomicUsize>,
    single: Arc<AtomicUsize>,
    /// Calls of WatchStatus (forwarded).
    watching: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Exchange for OlderHub {
    async fn submit(
        &self,
        r: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let request = v1::SubmitRequest {
            proof_receipt: false,
            ..r.into_inner()
        };
        self.exchange.clone().submit(request).await
    }

    async fn submit_many(
        &self,
        _: Request<v1::SubmitManyRequest>,
    ) -> Result<Response<v1::SubmitManyResponse>, Status> {
        Err(Status::unimplemented("a hub from before SubmitMany"))
    }

    async fn submit_stream(
        &self,
        _: Request<Streaming<v1::SubmitChunk>>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        Err(Status::unimplemented("not needed by this test"))
    }

    type DeliveriesStream = Streaming<v1::Delivery>;

    async fn deliveries(
        &self,
        r: Request<v1::DeliveriesRequest>,
    ) -> Result<Response<Self::DeliveriesStream>, Status> {
        let request = v1::DeliveriesRequest {
            proof_receipts: false,
            ..r.into_inner()
        };
        self.exchange.clone().deliveries(request).await
    }

    async fn acknowledge(
        &self,
        r: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::AcknowledgeResponse>, Status> {
        self.single.fetch_add(1, Ordering::SeqCst);
        self.exchange.clone().acknowledge(r.into_inner()).await
    }

    async fn acknowledge_many(
        &self,
        _: Request<v1::AcknowledgeManyRequest>,
    ) -> Result<Response<v1::AcknowledgeManyResponse>, Status> {
        self.many.fetch_add(1, Ordering::SeqCst);
        Err(Status::unimplemented("a hub from before AcknowledgeMany"))
    }

    async fn status(
        &self,
        r: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        self.exchange.clone().status(r.into_inner()).await
    }

    type WatchStatusStream = Streaming<v1::StatusEvent>;

    async fn watch_status(
        &self,
        r: Request<v1::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        self.watching.fetch_add(1, Ordering::SeqCst);
        self.exchange.clone().watch_status(r.into_inner()).await
    }

    async fn log_consistency(
        &self,
        r: Request<v1::LogConsistencyRequest>,
    ) -> Result<Response<v1::LogConsistencyResponse>, Status> {
        self.exchange.clone().log_consistency(r.into_inner()).await
    }
}

#[tonic::async_trait]
impl TrustAnchor for OlderHub {
    async fn current(
        &self,
        r: Request<v1::CurrentTrustListRequest>,
    ) -> Result<Response<v1::SignedTrustList>, Status> {
        self.anchor.clone().current(r.into_inner()).await
    }

    type WatchStream = Streaming<v1::SignedTrustList>;

    async fn watch(
        &self,
        r: Request<v1::WatchTrustListRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.anchor.clone().watch(r.into_inner()).await
    }
}

/// Serve `hub` on a free loopback port as the hub would (its certificate, client certificates
/// from its CA); the port.
async fn serve(net: &Net, hub: OlderHub) -> u16 {
    let pki = net.pki();
    let read = |name: &str| std::fs::read(pki.join(name)).unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("hub.pem"), read("hub.key")))
        .client_ca_root(Certificate::from_pem(read(&net.ca_file)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(ExchangeServer::new(hub.clone()))
        .add_service(TrustAnchorServer::new(hub));
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoke_of_an_older_hub_acknowledges_one_by_one_and_takes_signed_receipts() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    let pki = net.pki();
    let cn = Identity::from_pem(
        std::fs::read(pki.join("participants/CN.pem")).unwrap(),
        std::fs::read(pki.join("participants/CN.key")).unwrap(),
    );
    let channel = net.channel_with(Some(cn), &pki.join(&net.ca_file));
    let hub = OlderHub {
        exchange: ExchangeClient::new(channel.clone()),
        anchor: TrustAnchorClient::new(channel),
        many: Arc::default(),
        single: Arc::default(),
        watching: Arc::default(),
    };
    let port = serve(&net, hub.clone()).await;
    net.spoke_hub_port.insert("CN".into(), port);
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;

    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..3 {
        let sent = net.send("KZ", "CN", "e-co", &eco).await;
        ids.push(sent["message_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let status = net.wait_state("KZ", id, "ACKNOWLEDGED").await;
        assert_eq!(status["acknowledgement"]["verified"], true, "{status}");
        // The recipient keeps the acknowledgement the hub took as evidence.
        let start = Instant::now();
        loop {
            let shown = net.spoke_json("CN", &["show", id]).await;
            if shown["evidence"]["ack"].is_string() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "CN never kept its acknowledgement of {id}: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        hub.many.load(Ordering::SeqCst) >= 1,
        "AcknowledgeMany was tried"
    );
    assert!(
        hub.single.load(Ordering::SeqCst) >= ids.len(),
        "then one Acknowledge each"
    );

    // CN has only received so far: it follows no status stream (it has nothing in flight).
    assert_eq!(
        hub.watching.load(Ordering::SeqCst),
        0,
        "a spoke that only receives opened a status stream"
    );

    // KZ took log proofs as receipts; CN, behind the v1 hub, got for the same documents
    // receipts the hub signed when it delivered them, and judged them genuine.
    for id in &ids {
        let sent = net.spoke_json("KZ", &["status", id]).await;
        assert!(sent["sent"]["receipt"]["log_proof"].is_string(), "{sent}");
        assert!(sent["sent"]["receipt"].get("signed").is_none(), "{sent}");
        let received = net.spoke_json("CN", &["show", id]).await;
        assert_eq!(received["verification"]["status"], "verified", "{received}");
        assert!(
            !received["evidence"]["receipt"].as_str().unwrap().is_empty(),
            "{received}"
        );
        assert!(
            received["evidence"].get("accepted_proof").is_none(),
            "{received}"
        );
    }
    // Its evidence bundle is of the signed-receipt form, and verifies offline.
    let (bundle, verdict) = net.export_and_verify("CN", &ids[0]).await;
    assert_eq!(bundle["format"], "caravan-evidence/1", "{bundle}");
    assert_eq!(verdict["genuine"], true, "{verdict}");
    // The other way (CN's business answer to KZ): CN's v1 submission has a signed receipt; KZ
    // takes its delivery with the log proof of its acceptance.
    let back = net
        .spoke_json(
            "CN",
            &["answer", &ids[0], "--decision", "accepted", "--wait"],
        )
        .await;
    let back = back["message_id"].as_str().unwrap().to_owned();
    let sent = net.wait_state("CN", &back, "ACKNOWLEDGED").await;
    // Its first document in flight opened its status stream, which brought the acknowledgement.
    assert!(hub.watching.load(Ordering::SeqCst) >= 1);
    assert!(sent["sent"]["receipt"]["signed"].is_string(), "{sent}");
    assert!(sent["sent"]["receipt"].get("log_proof").is_none(), "{sent}");
    let received = net.spoke_json("KZ", &["show", &back]).await;
    assert_eq!(received["verification"]["status"], "verified", "{received}");
    assert!(
        received["evidence"]["accepted_proof"].is_string(),
        "{received}"
    );
    assert_eq!(received["evidence"]["receipt"], "", "{received}");
}
