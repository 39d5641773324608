//! Every refusal of the hub, over the wire: the right gRPC code, the stable reason in the
//! error details, and nothing stored. The raw clients here send what a spoke never would.

use tokio::process::Command;

use caravan_common::{
    DocumentType, RefusalCode, Timestamp,
    envelope::{Ack, AckOutcome},
    signing::{Purpose, SigningKey, sha256},
};
use caravan_proto::{envelope::seal, v1};
use caravan_tests::{Net, binaries, envelope, header, sample};
use prost::Message;
use tonic::{Code, transport::Identity};

const LIMIT: u64 = 256 * 1024;

/// Submit and expect a refusal with `code`; returns the refusal detail.
async fn refused(
    net: &Net,
    as_participant: &str,
    env: Option<v1::Envelope>,
    code: RefusalCode,
    grpc: Code,
) -> String {
    let result = net
        .client(as_participant)
        .submit(v1::SubmitRequest {
            envelope: env,
            ..Default::default()
        })
        .await;
    let status = result.expect_err(&format!("{code} expected"));
    let refusal = caravan_proto::status::from_status(&status)
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(refusal.code, code, "{status:?}");
    assert_eq!(status.code(), grpc, "{code}");
    assert!(
        status.message().starts_with(code.as_str()),
        "{}",
        status.message()
    );
    refusal.detail
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_refuses_every_broken_rule_and_stores_nothing() {
    the_hub_refuses_every_broken_rule_and_stores_nothing_on(Net::new(&["KZ", "CN"]).await).await;
}

async fn the_hub_refuses_every_broken_rule_and_stores_nothing_on(mut net: Net) {
    let phyto_only = net.add_key("KZ", &["e-phyto"], None, None).await;
    let expired = net
        .add_key(
            "KZ",
            &["e-co", "e-phyto", "e-invoice"],
            Some("2019-01-01T00:00:00Z"),
            Some("2020-01-01T00:00:00Z"),
        )
        .await;
    net.max_payload_bytes = LIMIT;
    net.start_hub().await;
    net.start_spoke("CN").await;
    let kz = net.signing_key("KZ", 0);
    let cn = net.signing_key("CN", 0);
    let doc = sample("eco/carec-KZ-CN-certificate-of-origin.xml");
    let eco = DocumentType::CertificateOfOrigin;
    let mut refused_ids = Vec::new();

    // Signed with a key nobody registered.
    let stranger = SigningKey::generate();
    let env = envelope(&stranger, "KZ", "CN", eco, &doc);
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::UnknownKey,
        Code::PermissionDenied,
    )
    .await;

    // A KZ spoke claiming to be CN in the header, signing with its own key.
    let h = header(&kz, "CN", "CN", eco, &doc);
    refused_ids.push(h.message_id);
    let detail = refused(
        &net,
        "KZ",
        Some(seal(&h, doc.clone(), &kz)),
        RefusalCode::SenderMismatch,
        Code::PermissionDenied,
    )
    .await;
    assert!(detail.contains("CN"), "{detail}");

    // A KZ spoke impersonating CN with CN's (stolen) key: its certificate says KZ.
    let h = header(&cn, "CN", "KZ", eco, &doc);
    refused_ids.push(h.message_id);
    refused(
        &net,
        "KZ",
        Some(seal(&h, doc.clone(), &cn)),
        RefusalCode::SenderMismatch,
        Code::PermissionDenied,
    )
    .await;

    // A tampered signature, and a tampered header.
    let mut env = envelope(&kz, "KZ", "CN", eco, &doc);
    env.signature.as_mut().unwrap().signature[5] ^= 1;
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::BadSignature,
        Code::InvalidArgument,
    )
    .await;
    let mut env = envelope(&kz, "KZ", "CN", eco, &doc);
    let last = env.header.len() - 1;
    env.header[last] ^= 1;
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::BadSignature,
        Code::InvalidArgument,
    )
    .await;

    // The payload changed after signing, in content or in length.
    let mut env = envelope(&kz, "KZ", "CN", eco, &doc);
    env.payload[100] ^= 1;
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::PayloadHashMismatch,
        Code::InvalidArgument,
    )
    .await;
    let mut env = envelope(&kz, "KZ", "CN", eco, &doc);
    env.payload.push(b'\n');
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::PayloadLengthMismatch,
        Code::InvalidArgument,
    )
    .await;

    // A recipient that is not a participant.
    let env = envelope(&kz, "KZ", "TM", eco, &doc);
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::UnknownRecipient,
        Code::FailedPrecondition,
    )
    .await;

    // Over the payload limit.
    let big = vec![b'x'; LIMIT as usize + 1];
    let env = envelope(&kz, "KZ", "CN", eco, &big);
    let detail = refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::PayloadTooLarge,
        Code::ResourceExhausted,
    )
    .await;
    assert!(detail.contains(&LIMIT.to_string()), "{detail}");

    // A key allowed only e-phyto signing an e-invoice; an expired key.
    let restricted = SigningKey::load(&phyto_only.file).unwrap();
    let env = envelope(&restricted, "KZ", "CN", DocumentType::Invoice, &doc);
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::DocumentTypeNotAllowed,
        Code::PermissionDenied,
    )
    .await;
    let old = SigningKey::load(&expired.file).unwrap();
    let env = envelope(&old, "KZ", "CN", eco, &doc);
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::KeyExpired,
        Code::PermissionDenied,
    )
    .await;

    // Signed bytes that are not a header, and a header field that breaks its rule.
    let garbage = vec![0xff; 16];
    let env = v1::Envelope {
        signature: Some(v1::Signature {
            key_id: kz.key_id().to_string(),
            signature: kz.sign(Purpose::Header, &garbage).to_vec(),
        }),
        header: garbage,
        payload: doc.clone(),
    };
    refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::MalformedHeader,
        Code::InvalidArgument,
    )
    .await;
    let mut h = v1::Header::from(&header(&kz, "KZ", "CN", eco, &doc));
    h.message_id = "0b1e4a4e-5a8c-4d3b-9f43-3f2b4e2a9f10".into(); // UUIDv4
    let bytes = h.encode_to_vec();
    let env = v1::Envelope {
        signature: Some(v1::Signature {
            key_id: kz.key_id().to_string(),
            signature: kz.sign(Purpose::Header, &bytes).to_vec(),
        }),
        header: bytes,
        payload: doc.clone(),
    };
    let detail = refused(
        &net,
        "KZ",
        Some(env),
        RefusalCode::InvalidHeader,
        Code::InvalidArgument,
    )
    .await;
    assert!(detail.contains("message_id"), "{detail}");

    // No envelope at all.
    refused(
        &net,
        "KZ",
        None,
        RefusalCode::MalformedRequest,
        Code::InvalidArgument,
    )
    .await;

    // Resending the same message returns the original receipt; reusing its id for another
    // header is refused.
    let h = header(&kz, "KZ", "CN", eco, &doc);
    let env = seal(&h, doc.clone(), &kz);
    let first = net
        .client("KZ")
        .submit(v1::SubmitRequest {
            envelope: Some(env.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let again = net
        .client("KZ")
        .submit(v1::SubmitRequest {
            envelope: Some(env),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(
        first.receipt, again.receipt,
        "the original receipt, byte for byte"
    );
    let mut other = h.clone();
    other.document_id = "TEST-2".into();
    refused(
        &net,
        "KZ",
        Some(seal(&other, doc.clone(), &kz)),
        RefusalCode::DuplicateMessageId,
        Code::AlreadyExists,
    )
    .await;

    // The recipient got the one accepted message, once, and nothing refused.
    let accepted = h.message_id.to_string();
    let item = net.wait_inbox("CN", &accepted).await;
    assert_eq!(item["verified"], true);
    let inbox = net.spoke_json("CN", &["inbox"]).await;
    assert_eq!(
        inbox.as_array().unwrap().len(),
        1,
        "only the accepted message reached CN: {inbox}"
    );
    // The hub knows nothing of the refused messages.
    for id in refused_ids {
        let status = net
            .client("KZ")
            .status(v1::StatusRequest {
                message_id: id.to_string(),
            })
            .await;
        let refusal = caravan_proto::status::from_status(&status.unwrap_err());
        assert!(matches!(refusal, Some(r) if r.code == RefusalCode::UnknownMessage));
    }
    // Each refusal was logged with its reason and counted.
    let log = net.hub_log();
    for code in [
        "UNKNOWN_KEY",
        "BAD_SIGNATURE",
        "PAYLOAD_HASH_MISMATCH",
        "UNKNOWN_RECIPIENT",
        "PAYLOAD_TOO_LARGE",
        "DUPLICATE_MESSAGE_ID",
    ] {
        assert!(log.contains(&format!("code={code}")), "{code} not logged");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("code=SENDER_MISMATCH") && l.contains("total=2")),
        "SENDER_MISMATCH counted twice"
    );
    // And exported to Prometheus, by reason; probes without mutual TLS see the hub serving.
    assert_eq!(net.hub_http("/healthz").await, (200, "SERVING\n".into()));
    let metrics = net.hub_metrics().await;
    for line in [
        "caravan_hub_requests_refused_total{reason=\"SENDER_MISMATCH\"} 2",
        "caravan_hub_requests_refused_total{reason=\"BAD_SIGNATURE\"} 2",
        "caravan_hub_requests_refused_total{reason=\"UNKNOWN_KEY\"} 1",
        "caravan_hub_documents_accepted_total{sender=\"KZ\",recipient=\"CN\",document_type=\"e-co\"} 1",
        "caravan_hub_documents_duplicate_total{sender=\"KZ\",recipient=\"CN\",document_type=\"e-co\"} 1",
        "caravan_hub_delivery_streams 1",
        "caravan_hub_spoke_connected{participant=\"CN\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledgements_are_checked() {
    acknowledgements_are_checked_on(Net::new(&["KZ", "CN", "UZ"]).await).await;
}

async fn acknowledgements_are_checked_on(mut net: Net) {
    net.start_hub().await;
    let kz = net.signing_key("KZ", 0);
    let uz = net.signing_key("UZ", 0);
    let doc = sample("einvoice/ubl/peppol-base-example.xml");
    let env = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &doc);
    let header_sha256 = sha256(&env.header);
    let h = v1::Header::decode(env.header.as_slice()).unwrap();
    net.client("KZ")
        .submit(v1::SubmitRequest {
            envelope: Some(env),
            ..Default::default()
        })
        .await
        .unwrap();
    let ack = |key: &SigningKey, recipient: &str, digest: [u8; 32]| Ack {
        message_id: h.message_id.parse().unwrap(),
        sender: "KZ".parse().unwrap(),
        recipient: recipient.parse().unwrap(),
        header_sha256: digest,
        outcome: AckOutcome::Accepted,
        acknowledged_at: Timestamp::now(),
        key_id: key.key_id(),
    };
    let send = |who: &'static str, a: Ack, key: SigningKey| {
        let client = net.client(who);
        async move {
            let mut client = client;
            client
                .acknowledge(v1::AcknowledgeRequest {
                    ack: Some(caravan_proto::ack::sign(&a, &key)),
                })
                .await
        }
    };
    let code = |r: Result<tonic::Response<v1::AcknowledgeResponse>, tonic::Status>| {
        caravan_proto::status::from_status(&r.unwrap_err()).map(|r| r.code)
    };
    // UZ acknowledging a message addressed to CN.
    assert_eq!(
        code(send("UZ", ack(&uz, "UZ", header_sha256), uz).await),
        Some(RefusalCode::UnknownMessage)
    );
    // UZ's connection presenting an acknowledgement that claims to be CN's.
    let cn = net.signing_key("CN", 0);
    assert_eq!(
        code(send("UZ", ack(&cn, "CN", header_sha256), cn).await),
        Some(RefusalCode::SenderMismatch)
    );
    // CN acknowledging another header than the one delivered.
    let cn = net.signing_key("CN", 0);
    assert_eq!(
        code(send("CN", ack(&cn, "CN", [0; 32]), cn).await),
        Some(RefusalCode::InvalidAck)
    );
    // The message is still waiting for CN.
    let status = net
        .client("KZ")
        .status(v1::StatusRequest {
            message_id: h.message_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, v1::MessageState::Accepted as i32);
    // Several at once: each is judged alone; a refused one leaves the others be, and
    // changes nothing.
    let cn = net.signing_key("CN", 0);
    let uz = net.signing_key("UZ", 0);
    let many = |acks: Vec<v1::SignedAck>| {
        let mut client = net.client("CN");
        async move {
            client
                .acknowledge_many(v1::AcknowledgeManyRequest { acks })
                .await
        }
    };
    let results = many(vec![
        caravan_proto::ack::sign(&ack(&cn, "CN", [0; 32]), &cn),
        caravan_proto::ack::sign(&ack(&uz, "UZ", header_sha256), &uz),
        caravan_proto::ack::sign(&ack(&cn, "CN", header_sha256), &cn),
    ])
    .await
    .unwrap()
    .into_inner()
    .results;
    let reasons: Vec<String> = results
        .iter()
        .map(|r| match &r.result {
            Some(v1::acknowledge_result::Result::Refused(r)) => r.reason.clone(),
            Some(v1::acknowledge_result::Result::Answer(a)) => format!("{:?}", a.state()),
            None => "nothing".into(),
        })
        .collect();
    assert_eq!(reasons, ["INVALID_ACK", "SENDER_MISMATCH", "Acknowledged"]);
    let Some(v1::acknowledge_result::Result::Answer(answer)) = &results[2].result else {
        unreachable!("checked above")
    };
    assert!(
        answer.log_proof.is_some(),
        "the answer carries its log proof"
    );
    // Too many in one request: refused whole.
    let too_many = vec![caravan_proto::ack::sign(&ack(&cn, "CN", header_sha256), &cn); 257];
    assert_eq!(
        caravan_proto::status::from_status(&many(too_many).await.unwrap_err()).map(|r| r.code),
        Some(RefusalCode::MalformedRequest)
    );
    // CN's acknowledgement sent alone again: the first answer stands.
    let settled = send("CN", ack(&cn, "CN", header_sha256), cn)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settled.state, v1::MessageState::Acknowledged as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_participant_certificate_are_refused() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    let kz = net.signing_key("KZ", 0);
    let doc = sample("eco/carec-KZ-CN-certificate-of-origin.xml");
    let env = envelope(&kz, "KZ", "CN", DocumentType::CertificateOfOrigin, &doc);
    let submit = |channel| {
        let env = env.clone();
        async move {
            v1::exchange_client::ExchangeClient::new(channel)
                .submit(v1::SubmitRequest {
                    envelope: Some(env),
                    ..Default::default()
                })
                .await
        }
    };
    let ca = net.pki().join("ca.pem");

    // No client certificate: the TLS handshake fails and the RPC with it.
    let status = submit(net.channel_with(None, &ca)).await.unwrap_err();
    assert!(
        caravan_proto::status::from_status(&status).is_none(),
        "refused before any rule: {status:?}"
    );

    // A certificate for KZ from another CA.
    let other = net.path().join("other-pki");
    let hub = &binaries().hub;
    assert!(
        Command::new(hub)
            .args(["pki", "init", "--dir"])
            .arg(&other)
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    assert!(
        Command::new(hub)
            .args(["pki", "issue", "--participant", "KZ", "--dir"])
            .arg(&other)
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    let identity = tls_identity(&other, "participants/KZ");
    let status = submit(net.channel_with(Some(identity), &ca))
        .await
        .unwrap_err();
    assert!(
        caravan_proto::status::from_status(&status).is_none(),
        "{status:?}"
    );

    // An operator's certificate (the harness made one) may not use the exchange.
    let identity = tls_identity(&net.pki(), "operators/ops");
    let status = submit(net.channel_with(Some(identity), &ca))
        .await
        .unwrap_err();
    assert_eq!(
        caravan_proto::status::from_status(&status).map(|r| r.code),
        Some(RefusalCode::WrongRole)
    );
    assert_eq!(status.code(), Code::PermissionDenied);

    // A certificate from the right CA for a participant the hub does not know.
    assert!(
        Command::new(hub)
            .args(["pki", "issue", "--participant", "TJ", "--dir"])
            .arg(net.pki())
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    let identity = tls_identity(&net.pki(), "participants/TJ");
    let status = submit(net.channel_with(Some(identity), &ca))
        .await
        .unwrap_err();
    assert_eq!(
        caravan_proto::status::from_status(&status).map(|r| r.code),
        Some(RefusalCode::UnknownParticipant)
    );

    // None of it was stored: the message id is unknown to the hub.
    let h = v1::Header::decode(env.header.as_slice()).unwrap();
    let status = net
        .client("KZ")
        .status(v1::StatusRequest {
            message_id: h.message_id,
        })
        .await
        .unwrap_err();
    assert_eq!(
        caravan_proto::status::from_status(&status).map(|r| r.code),
        Some(RefusalCode::UnknownMessage)
    );
}

/// The TLS identity `name` (`participants/KZ`, `operators/ops`) in the PKI folder `pki`.
fn tls_identity(pki: &std::path::Path, name: &str) -> Identity {
    let read = |ext: &str| std::fs::read(pki.join(format!("{name}.{ext}"))).unwrap();
    Identity::from_pem(read("pem"), read("key"))
}

/// The value of the hub's `caravan_hub_log_entries` gauge.
async fn hub_log_entries(net: &Net) -> u64 {
    let metrics = net.hub_metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("caravan_hub_log_entries "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no caravan_hub_log_entries in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_created_in_the_future_or_before_their_lifetime_are_refused() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    // e-co messages live 3 s here; e-phyto keep the default 7 days. The skew is the default
    // 300 s.
    net.eco_ttl_secs = Some(3);
    net.start_hub().await;
    let kz = net.signing_key("KZ", 0);
    let doc = sample("eco/carec-KZ-CN-certificate-of-origin.xml");
    let (eco, phyto) = (
        DocumentType::CertificateOfOrigin,
        DocumentType::Phytosanitary,
    );
    let created = |doc_type: DocumentType, at_ms: i64| {
        let mut h = header(&kz, "KZ", "CN", doc_type, &doc);
        h.created_at = Timestamp::from_millis(at_ms);
        h
    };
    let now = || Timestamp::now().as_millis();
    let entries_before = hub_log_entries(&net).await;
    let mut refused_ids = Vec::new();

    // Ahead of the hub's clock by more than the skew: an hour, and the year 2100.
    for at in [now() + 3_600_000, 4_102_444_800_000] {
        let h = created(eco, at);
        refused_ids.push(h.message_id);
        let detail = refused(
            &net,
            "KZ",
            Some(seal(&h, doc.clone(), &kz)),
            RefusalCode::CreatedAtFuture,
            Code::OutOfRange,
        )
        .await;
        assert!(
            detail.contains("ahead of the hub's clock") && detail.contains("5m of clock skew"),
            "{detail}"
        );
    }
    // Older than the e-co lifetime: a minute ago, and 1970.
    for at in [now() - 60_000, 0] {
        let h = created(eco, at);
        refused_ids.push(h.message_id);
        let detail = refused(
            &net,
            "KZ",
            Some(seal(&h, doc.clone(), &kz)),
            RefusalCode::CreatedAtExpired,
            Code::InvalidArgument,
        )
        .await;
        assert!(
            detail.contains("e-co messages live 3s") && detail.contains("message_ttl_secs"),
            "{detail}"
        );
    }
    // Streamed, the header is judged before the payload is read.
    let h = created(eco, now() + 3_600_000);
    refused_ids.push(h.message_id);
    let status = net
        .client("KZ")
        .submit_stream(tokio_stream::iter(vec![v1::SubmitChunk {
            envelope: Some(seal(&h, doc.clone(), &kz)),
            data: Vec::new(),
            ..Default::default()
        }]))
        .await
        .unwrap_err();
    assert_eq!(
        caravan_proto::status::from_status(&status).map(|r| r.code),
        Some(RefusalCode::CreatedAtFuture),
        "{status:?}"
    );

    // Nothing of them is stored: no message, no receipt, no log entry.
    for id in &refused_ids {
        let status = net
            .client("KZ")
            .status(v1::StatusRequest {
                message_id: id.to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            caravan_proto::status::from_status(&status).map(|r| r.code),
            Some(RefusalCode::UnknownMessage)
        );
    }
    assert_eq!(hub_log_entries(&net).await, entries_before);

    // Within the bounds: a minute ahead (clocks differ), and an e-phyto created an hour ago
    // (its type lives 7 days).
    let ahead = created(eco, now() + 60_000);
    let hour_old = created(phyto, now() - 3_600_000);
    for h in [&ahead, &hour_old] {
        let answer = net
            .client("KZ")
            .submit(v1::SubmitRequest {
                envelope: Some(seal(h, doc.clone(), &kz)),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{} refused: {s:?}", h.created_at))
            .into_inner();
        assert!(answer.receipt.is_some() && !answer.duplicate);
    }

    // A message the hub accepted is answered with its original receipt when resent after its
    // lifetime; a new one as old is refused.
    let fresh = created(eco, now());
    let env = seal(&fresh, doc.clone(), &kz);
    let first = net
        .client("KZ")
        .submit(v1::SubmitRequest {
            envelope: Some(env.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let again = net
        .client("KZ")
        .submit(v1::SubmitRequest {
            envelope: Some(env),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(first.receipt, again.receipt, "the original receipt");
    let as_old = created(eco, fresh.created_at.as_millis());
    refused(
        &net,
        "KZ",
        Some(seal(&as_old, doc.clone(), &kz)),
        RefusalCode::CreatedAtExpired,
        Code::InvalidArgument,
    )
    .await;

    // Logged and counted by reason.
    let log = net.hub_log();
    for code in ["CREATED_AT_FUTURE", "CREATED_AT_EXPIRED"] {
        assert!(log.contains(&format!("code={code}")), "{code} not logged");
    }
    let metrics = net.hub_metrics().await;
    for line in [
        "caravan_hub_requests_refused_total{reason=\"CREATED_AT_FUTURE\"} 3",
        "caravan_hub_requests_refused_total{reason=\"CREATED_AT_EXPIRED\"} 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
}

/// The same tests with the hub's store in PostgreSQL, on a cluster of each test's own (issue
/// 16).
mod on_postgres {
    caravan_tests::on_postgres! {
        the_hub_refuses_every_broken_rule_and_stores_nothing(super::the_hub_refuses_every_broken_rule_and_stores_nothing_on, &["KZ", "CN"]),
        acknowledgements_are_checked(super::acknowledgements_are_checked_on, &["KZ", "CN", "UZ"]),
    }
}

/// SubmitMany answers each document, in order: accepted, refused (another participant's
/// document: `SENDER_MISMATCH`) without touching the others, and a resend as a duplicate with
/// the original acceptance; more than 256 documents are refused as a whole.
#[tokio::test(flavor = "multi_thread")]
async fn submit_many_answers_each_document_and_refuses_only_the_broken_one() {
    use caravan_proto::receipt;
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    let trust = net.trust_set("KZ").await;
    let (kz_key, cn_key) = (net.signing_key("KZ", 0), net.signing_key("CN", 0));
    let payload = sample("eco/carec-KZ-CN-certificate-of-origin.xml");
    let sealed = |key: &SigningKey, from: &str, to: &str| {
        let h = header(key, from, to, DocumentType::CertificateOfOrigin, &payload);
        (h.message_id, seal(&h, payload.clone(), key))
    };
    let (first_id, first) = sealed(&kz_key, "KZ", "CN");
    let (_, not_ours) = sealed(&cn_key, "CN", "KZ");
    let (second_id, second) = sealed(&kz_key, "KZ", "CN");
    let mut kz = net.client("KZ");
    let many = async |client: &mut v1::exchange_client::ExchangeClient<_>, envelopes| {
        client
            .submit_many(v1::SubmitManyRequest {
                envelopes,
                proof_receipt: true,
            })
            .await
    };
    let answer = |result: &v1::SubmitResult| match &result.result {
        Some(v1::submit_result::Result::Answer(a)) => a.clone(),
        other => panic!("not accepted: {other:?}"),
    };
    let results = many(&mut kz, vec![first.clone(), not_ours, second])
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 3);
    for (result, id) in [(&results[0], first_id), (&results[2], second_id)] {
        let a = answer(result);
        assert!(!a.duplicate && a.receipt.is_none());
        let r = receipt::verify_proof(a.log_proof.as_ref().unwrap(), &trust).unwrap();
        assert_eq!(r.message_id, id);
    }
    match &results[1].result {
        Some(v1::submit_result::Result::Refused(r)) => {
            assert_eq!(r.reason, "SENDER_MISMATCH", "{r:?}")
        }
        other => panic!("not refused: {other:?}"),
    }
    // A resend: the original acceptance, as a duplicate.
    let again = many(&mut kz, vec![first.clone()])
        .await
        .unwrap()
        .into_inner();
    let a = answer(&again.results[0]);
    assert!(a.duplicate);
    assert_eq!(
        receipt::verify_proof(a.log_proof.as_ref().unwrap(), &trust)
            .unwrap()
            .message_id,
        first_id
    );
    // Too many at once (small ones, within the message size limit): refused as a whole.
    let tiny = b"<x/>".to_vec();
    let h = header(
        &kz_key,
        "KZ",
        "CN",
        DocumentType::CertificateOfOrigin,
        &tiny,
    );
    let status = many(&mut kz, vec![seal(&h, tiny, &kz_key); 257])
        .await
        .unwrap_err();
    let refusal = caravan_proto::status::from_status(&status).unwrap();
    assert_eq!(refusal.code, RefusalCode::MalformedRequest);
    assert!(refusal.detail.contains("at most 256"), "{refusal}");
}
