//! Large documents: streamed in chunks both ways, refused before anything is stored when over
//! the limit, admitted within the hub's memory budget for payloads, and a transfer cut in the
//! middle restarts cleanly, exactly once.

use std::path::PathBuf;

use caravan_common::{DocumentType, RefusalCode, signing::sha256};
use caravan_proto::v1;
use caravan_tests::{Net, envelope, sample};
use prost::Message;

/// A UBL invoice carrying an embedded attachment of about `size` bytes (base64 text), as real
/// invoices with a PDF do.
fn large_invoice(net: &Net, size: usize) -> PathBuf {
    let base = String::from_utf8(sample("einvoice/ubl/peppol-base-example.xml")).unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let body: String = (0..size / 4 * 4)
        .map(|i| alphabet[(i * 7 + i / 64) % 64] as char)
        .collect();
    let attachment = format!(
        "<cac:AdditionalDocumentReference><cbc:ID>scan</cbc:ID><cac:Attachment><cbc:EmbeddedDocumentBinaryObject mimeCode=\"application/pdf\" filename=\"scan.pdf\">{body}</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>"
    );
    let document = base.replacen("</Invoice>", &format!("{attachment}</Invoice>"), 1);
    let path = net.path().join(format!("invoice-{size}.xml"));
    std::fs::write(&path, document).unwrap();
    path
}

async fn received_payload(net: &Net, id: &str) -> Vec<u8> {
    let out = net.path().join(format!("{id}.out"));
    net.spoke_json("CN", &["show", id, "--payload-out", out.to_str().unwrap()])
        .await;
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn large_documents_travel_in_chunks_and_arrive_identical() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    for size in [5 << 20, 20 << 20] {
        let path = large_invoice(&net, size);
        let sent = net.send("KZ", "CN", "e-invoice", &path).await;
        let id = sent["message_id"].as_str().unwrap().to_owned();
        assert_eq!(net.wait_inbox("CN", &id).await["verified"], true);
        assert_eq!(
            sha256(&received_payload(&net, &id).await),
            sha256(&std::fs::read(&path).unwrap())
        );
        net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_over_the_limit_is_refused_before_anything_is_stored() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.max_payload_bytes = 8 << 20;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    // At the spoke, before signing.
    let path = large_invoice(&net, 9 << 20);
    let out = net
        .spoke_cli(
            "KZ",
            &[
                "send",
                "--to",
                "CN",
                "--type",
                "e-invoice",
                path.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PAYLOAD_TOO_LARGE"));
    // At the hub, from the signed header alone: the stream carries only the envelope.
    let kz = net.signing_key("KZ", 0);
    let big = vec![b'x'; 9 << 20];
    let mut env = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &big);
    let id = <v1::Header as Message>::decode(env.header.as_slice())
        .unwrap()
        .message_id;
    env.payload.clear();
    let head = v1::SubmitChunk {
        envelope: Some(env),
        data: Vec::new(),
        ..Default::default()
    };
    let status = net
        .client("KZ")
        .submit_stream(futures_iter(vec![head]))
        .await
        .unwrap_err();
    let refusal = caravan_proto::status::from_status(&status).unwrap();
    assert_eq!(refusal.code, RefusalCode::PayloadTooLarge);
    assert_not_stored(&net, id).await;
    // A document of 2 MiB in one unary request, though within the limit: the hub does not read
    // a message that large (such a document streams), and stores nothing.
    let over = vec![b'x'; 2 * caravan_proto::MAX_PAYLOAD_PER_MESSAGE];
    let env = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &over);
    let id = <v1::Header as Message>::decode(env.header.as_slice())
        .unwrap()
        .message_id;
    let status = net
        .client("KZ")
        .submit(v1::SubmitRequest {
            envelope: Some(env),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert_not_stored(&net, id).await;
    // The same document streamed is accepted.
    let env = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &over);
    let mut head = env.clone();
    head.payload.clear();
    let (first, rest) = env.payload.split_at(caravan_proto::MAX_PAYLOAD_PER_MESSAGE);
    let chunks = vec![
        v1::SubmitChunk {
            envelope: Some(head),
            data: first.to_vec(),
            ..Default::default()
        },
        v1::SubmitChunk {
            envelope: None,
            data: rest.to_vec(),
            ..Default::default()
        },
    ];
    let accepted = net
        .client("KZ")
        .submit_stream(futures_iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert!(accepted.receipt.is_some() && !accepted.duplicate);
    // Only the first chunk carries an envelope.
    let env = envelope(&kz, "KZ", "CN", DocumentType::Invoice, &over);
    let mut head = env.clone();
    head.payload.clear();
    let chunks = vec![
        v1::SubmitChunk {
            envelope: Some(head.clone()),
            data: Vec::new(),
            ..Default::default()
        },
        v1::SubmitChunk {
            envelope: Some(head),
            data: env.payload[..caravan_proto::MAX_PAYLOAD_PER_MESSAGE].to_vec(),
            ..Default::default()
        },
    ];
    let status = net
        .client("KZ")
        .submit_stream(futures_iter(chunks))
        .await
        .unwrap_err();
    let refusal = caravan_proto::status::from_status(&status).unwrap();
    assert_eq!(refusal.code, RefusalCode::MalformedRequest);
    assert!(
        refusal.detail.contains("only the first chunk"),
        "{refusal:?}"
    );
}

/// The hub holds no message `id` from KZ.
async fn assert_not_stored(net: &Net, id: String) {
    let status = net
        .client("KZ")
        .status(v1::StatusRequest { message_id: id })
        .await
        .unwrap_err();
    assert_eq!(
        caravan_proto::status::from_status(&status).map(|r| r.code),
        Some(RefusalCode::UnknownMessage)
    );
}

fn futures_iter(chunks: Vec<v1::SubmitChunk>) -> impl tokio_stream::Stream<Item = v1::SubmitChunk> {
    tokio_stream::iter(chunks)
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_cut_in_the_middle_restart_cleanly_exactly_once() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let path = large_invoice(&net, 30 << 20);
    let expected = sha256(&std::fs::read(&path).unwrap());

    // The hub dies while the document is on its way in.
    let sent = net
        .spoke_json(
            "KZ",
            &[
                "send",
                "--to",
                "CN",
                "--type",
                "e-invoice",
                path.to_str().unwrap(),
            ],
        )
        .await;
    let first = sent["message_id"].as_str().unwrap().to_owned();
    net.kill_hub();
    net.start_hub().await;
    assert_eq!(net.wait_inbox("CN", &first).await["verified"], true);
    assert_eq!(sha256(&received_payload(&net, &first).await), expected);
    net.wait_state("KZ", &first, "ACKNOWLEDGED").await;

    // The receiving spoke dies while the document is on its way out.
    let sent = net.send("KZ", "CN", "e-invoice", &path).await;
    let second = sent["message_id"].as_str().unwrap().to_owned();
    net.kill_spoke("CN");
    net.start_spoke("CN").await;
    assert_eq!(net.wait_inbox("CN", &second).await["verified"], true);
    assert_eq!(sha256(&received_payload(&net, &second).await), expected);
    net.wait_state("KZ", &second, "ACKNOWLEDGED").await;
    let inbox = net.spoke_json("CN", &["inbox"]).await;
    assert_eq!(
        inbox.as_array().unwrap().len(),
        2,
        "each document once: {inbox}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_documents_beyond_the_payload_budget_are_retried_until_there_is_room() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.max_payload_bytes = 3 << 20;
    // Room for one document of 2.5 MiB at a time.
    net.payload_in_flight_mib = Some(3);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| large_invoice(&net, (5 << 19) + 4 * i))
        .collect();
    let sending = paths
        .iter()
        .map(|path| net.send("KZ", "CN", "e-invoice", path));
    let ids: Vec<String> = futures::future::join_all(sending)
        .await
        .iter()
        .map(|sent| sent["message_id"].as_str().unwrap().to_owned())
        .collect();
    for (id, path) in ids.iter().zip(&paths) {
        assert_eq!(net.wait_inbox("CN", id).await["verified"], true);
        assert_eq!(
            sha256(&received_payload(&net, id).await),
            sha256(&std::fs::read(path).unwrap())
        );
        net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    }
    // Some were turned away for a while (and retried by KZ's outbox), none was lost.
    let (_, metrics) = net.hub_http("/metrics").await;
    let busy: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("caravan_hub_submissions_busy_total "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(busy > 0, "{metrics}");
    assert_eq!(
        net.spoke_json("CN", &["inbox"])
            .await
            .as_array()
            .unwrap()
            .len(),
        4
    );
}
