//! The national single window's REST API, as an NSW system uses it: bearer tokens, submission
//! with precise refusals, the inbox since a cursor, document summaries, answers.

use caravan_tests::{Net, sample};

#[tokio::test(flavor = "multi_thread")]
async fn a_single_window_submits_follows_and_receives_over_the_rest_api() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.max_payload_bytes = 1 << 20;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let kz = net.nsw_tokens["KZ"].clone();
    let cn = net.nsw_tokens["CN"].clone();

    // The API describes itself, without a token.
    let (status, doc) = net
        .nsw_call("KZ", "GET", "/api/v1/openapi.json", None, Vec::new())
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/documents"]["post"].is_object());
    // Everything else needs a valid token.
    let (status, body) = net
        .nsw_call("KZ", "GET", "/api/v1/inbox", None, Vec::new())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (status, _) = net
        .nsw_call("KZ", "GET", "/api/v1/inbox", Some(&cn), Vec::new())
        .await;
    assert_eq!(status, 401, "CN's token is not KZ's");

    // Refusals name the field and the rule, and queue nothing.
    let path = "/api/v1/documents?to=CN&type=e-phyto";
    let (status, body) = net
        .nsw_call("KZ", "POST", path, Some(&kz), b"<unclosed".to_vec())
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["field"], "document");
    assert_eq!(body["problems"][0]["rule"], "well-formed-xml");
    let invoice = sample("einvoice/ubl/peppol-base-example.xml");
    let (status, body) = net.nsw_call("KZ", "POST", path, Some(&kz), invoice).await;
    assert_eq!(status, 422);
    assert_eq!(body["problems"][0]["rule"], "matches-document", "{body}");
    // Over max_payload_bytes: refused from the length the request declares, and, when it
    // declares none (chunked), once the body passes the limit.
    // The declared length alone is refused: no body follows it, so an answer proves the
    // spoke did not wait for one.
    let addr = net.nsw_addr("KZ").await;
    let (status, body) = oversized_post(addr, path, &kz, (1 << 20) + 1, Framing::Declared).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"PAYLOAD_TOO_LARGE\""), "{body}");
    let (status, body) = oversized_post(addr, path, &kz, (1 << 20) + 1, Framing::Chunked).await;
    assert_eq!(status, 413, "{body}");

    // What a certificate says is checked before it is signed: an Argentine e-Phyto for
    // Ecuador, sent by KZ, is refused with each failing check, and nothing is queued.
    let argentine = sample("ephyto/mattilsynet-SPSCertificateContent.xml");
    let (status, body) = net.nsw_call("KZ", "POST", path, Some(&kz), argentine).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "CONTENT_CHECK_FAILED", "{body}");
    let problems: Vec<(&str, &str)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["field"].as_str().unwrap(), p["rule"].as_str().unwrap()))
        .collect();
    assert!(
        problems.contains(&("content_check.issuer", "EXPORT_COUNTRY_MISMATCH"))
            && problems.contains(&("content_check.issuer", "IMPORT_COUNTRY_MISMATCH")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The export country is AR, but the document was signed by KZ."),
        "{body}"
    );

    // A certificate consistent with KZ and CN, accepted by the hub, with its checks.
    let phyto = sample("ephyto/carec-KZ-CN-phytosanitary.xml");
    let (status, sent) = net
        .nsw_call("KZ", "POST", &format!("{path}&wait=30"), Some(&kz), phyto)
        .await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["message_id"].as_str().unwrap().to_owned();
    assert!(sent["receipt"]["log_proof"].is_string(), "{sent}");
    let checks = sent["checks"].as_array().expect("checks in the answer");
    assert!(
        checks
            .iter()
            .any(|c| c["rule"] == "ISSUER_COUNTRY_CONSISTENT")
            && checks.iter().all(|c| c["outcome"] != "FAIL"),
        "{sent}"
    );

    // CN's single window finds it in its inbox, with the certificate's key fields.
    let item = net.wait_inbox("CN", &id).await;
    let cursor = item["cursor"].as_u64().unwrap();
    let (status, list) = net
        .nsw_call("CN", "GET", "/api/v1/inbox", Some(&cn), Vec::new())
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the refused certificate never left KZ"
    );
    let (_, after) = net
        .nsw_call(
            "CN",
            "GET",
            &format!("/api/v1/inbox?since={cursor}"),
            Some(&cn),
            Vec::new(),
        )
        .await;
    assert_eq!(
        after.as_array().unwrap().len(),
        0,
        "nothing after the last cursor"
    );
    let (status, record) = net
        .nsw_call(
            "CN",
            "GET",
            &format!("/api/v1/inbox/{id}"),
            Some(&cn),
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["message_id"], id.as_str());
    assert_eq!(record["sender"], "KZ");
    assert_eq!(record["document_type"], "e-phyto");
    assert_eq!(record["verification"]["status"], "verified");
    assert_eq!(record["summary"]["document_number"], "KZ-PHY-2026-004512");
    assert_eq!(record["summary"]["issue_date"], "2026-11-27");
    let (status, _) = net
        .nsw_call(
            "CN",
            "GET",
            &format!("/api/v1/inbox/{id}/payload"),
            Some(&cn),
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200);

    // It answers; KZ follows the certificate to ACKNOWLEDGED and sees the answer.
    let answer = br#"{"decision": "accepted"}"#.to_vec();
    let (status, _) = net
        .nsw_call(
            "CN",
            "POST",
            &format!("/api/v1/inbox/{id}/answer"),
            Some(&cn),
            answer,
        )
        .await;
    assert_eq!(status, 202);
    let start = std::time::Instant::now();
    loop {
        let (status, doc) = net
            .nsw_call(
                "KZ",
                "GET",
                &format!("/api/v1/documents/{id}"),
                Some(&kz),
                Vec::new(),
            )
            .await;
        assert_eq!(status, 200);
        if doc["state"] == "ACKNOWLEDGED" && doc["responses"][0]["decision"] == "accepted" {
            break;
        }
        assert!(start.elapsed() < caravan_tests::PATIENCE, "{doc}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Every request was logged with its caller.
    assert!(
        net.spoke_log("CN").contains("caller=\"CN-nsw\"")
            || net.spoke_log("CN").contains("caller=CN-nsw")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_lacking_required_fields_is_refused_with_each_problem() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let kz = net.nsw_tokens["KZ"].clone();
    let bare = br#"<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"><cbc:ID>INV-9</cbc:ID></Invoice>"#;
    let (status, body) = net
        .nsw_call(
            "KZ",
            "POST",
            "/api/v1/documents?to=CN&type=e-invoice",
            Some(&kz),
            bare.to_vec(),
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["issue_date", "seller", "buyer"], "{body}");
    assert!(
        body["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["rule"] == "required")
    );
}

/// How [`oversized_post`] frames its body.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// A `content-length` header and no body bytes at all.
    Declared,
    /// The whole body in chunks (no length declared).
    Chunked,
}

/// POST `len` bytes of spaces over a raw connection; returns the status and body of the
/// answer. The spoke may answer and close before reading the rest, so write errors are not
/// failures and the answer is read beside the writing.
async fn oversized_post(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    len: usize,
    framing: Framing,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let length = match framing {
        Framing::Declared => format!("content-length: {len}"),
        Framing::Chunked => "transfer-encoding: chunked".to_owned(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n{length}\r\nconnection: close\r\n\r\n"
    );
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        if framing == Framing::Chunked {
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < len {
                let n = chunk.len().min(len - sent);
                let mut frame = format!("{n:x}\r\n").into_bytes();
                frame.extend_from_slice(&chunk[..n]);
                frame.extend_from_slice(b"\r\n");
                writer.write_all(&frame).await?;
                sent += n;
            }
            writer.write_all(b"0\r\n\r\n").await?;
        }
        // Keep the writing half open until the spoke closes: the answer comes first.
        std::future::pending::<()>().await;
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    // A reset after the answer loses nothing already read.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.read_to_end(&mut answer),
    )
    .await;
    writing.abort();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A webhook receiver on loopback: answers 500 to the first request, then 200; hands over
/// each request body.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<(u16, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/caravan/received", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut answered = 0;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 65536];
            // Read the head, then the body by its Content-Length.
            let body = loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(body.to_owned());
                    }
                }
            };
            let Some(body) = body else { continue };
            let status = if answered == 0 { 500 } else { 200 };
            answered += 1;
            let _ = socket
                .write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await;
            let _ = tx.send((status, body));
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_received_document_is_pushed_to_the_webhook_until_it_answers() {
    let (url, mut received) = webhook_receiver().await;
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.nsw_webhook = Some(url);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &caravan_tests::sample_path("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let id = sent["message_id"].as_str().unwrap();
    // Refused once, then delivered: the same document both times.
    for expected in [500, 200] {
        let (status, body) = tokio::time::timeout(caravan_tests::PATIENCE, received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, expected);
        let item: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(item["message_id"], id);
        assert_eq!(item["verified"], true);
        assert_eq!(item["summary"]["document_number"], "KZ-CO-2026-000123");
    }
}

/// The OpenAPI document is a valid OpenAPI 3.1 document (parsed by an OpenAPI library), states
/// that every operation but itself needs a token, and describes every answer the API really
/// gives: each status below is one the document lists for its operation, and each JSON body
/// validates against the schema the document gives for it. Framework errors (a query that does
/// not parse, an unknown path, a wrong method) are JSON in the same shape.
#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_valid_and_describes_every_answer() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.max_payload_bytes = 1 << 20;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let kz = net.nsw_tokens["KZ"].clone();
    let cn = net.nsw_tokens["CN"].clone();

    let (status, doc) = net
        .nsw_call("KZ", "GET", "/api/v1/openapi.json", None, Vec::new())
        .await;
    assert_eq!(status, 200);
    let spec = oas3::from_json(doc.to_string()).expect("a valid OpenAPI 3.1 document");
    assert_eq!(spec.openapi, "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"] == serde_json::json!([]);
            assert_eq!(public, path == "/api/v1/openapi.json", "{method} {path}");
            assert!(
                public || op["responses"]["401"].is_object(),
                "{method} {path} does not list 401"
            );
        }
    }

    // Each answer: the operation (as the document names it), the status, the body.
    let mut answers: Vec<(&str, &str, u16, serde_json::Value)> = Vec::new();
    let eco = net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml");
    let eco = std::fs::read(eco).unwrap();
    let docs = "/api/v1/documents";
    let send = "/api/v1/documents?to=CN&type=e-co";
    let mut call = async |id: &str,
                          method: &'static str,
                          path: &str,
                          template: &'static str,
                          token: Option<&str>,
                          body: Vec<u8>| {
        let (status, answer) = net.nsw_call(id, method, path, token, body).await;
        answers.push((template, method, status, answer.clone()));
        (status, answer)
    };
    let (s, queued) = call("KZ", "POST", send, docs, Some(&kz), eco.clone()).await;
    assert_eq!(s, 202, "{queued}");
    let (s, sent) = call(
        "KZ",
        "POST",
        &format!("{send}&wait=30"),
        docs,
        Some(&kz),
        eco,
    )
    .await;
    assert_eq!(s, 200, "{sent}");
    let id = sent["message_id"].as_str().unwrap().to_owned();
    for (path, expected) in [
        ("/api/v1/documents?to=CN&type=e-nothing", 400),
        ("/api/v1/documents?to=CN&type=e-co&wait=soon", 400),
        ("/api/v1/documents?to=CN&type=e-phyto", 422),
    ] {
        let (s, body) = call("KZ", "POST", path, docs, Some(&kz), b"<unclosed".to_vec()).await;
        assert_eq!(s, expected, "{path}: {body}");
    }
    let (s, _) = call("KZ", "POST", send, docs, None, Vec::new()).await;
    assert_eq!(s, 401);
    net.wait_inbox("CN", &id).await;
    let unknown = "01a24cee-5329-73d5-8f60-908477aed561";
    let (answer_no, answer_yes) = (r#"{"decision": "maybe"}"#, r#"{"decision": "accepted"}"#);
    // KZ about what it sent, CN about what it received: (caller, method, the operation as the
    // document names it, what fills its `{id}` (else is appended), body, status).
    for (who, method, template, arg, body, expected) in [
        ("KZ", "GET", "/api/v1/documents/{id}", id.as_str(), "", 200),
        ("KZ", "GET", "/api/v1/sent/{id}/status", &id, "", 200),
        ("KZ", "GET", "/api/v1/documents/{id}", unknown, "", 404),
        ("KZ", "GET", "/api/v1/documents/{id}", "not-an-id", "", 400),
        ("CN", "GET", "/api/v1/inbox", "", "", 200),
        ("CN", "GET", "/api/v1/inbox", "?since=yesterday", "", 400),
        ("CN", "GET", "/api/v1/inbox/{id}", &id, "", 200),
        ("CN", "GET", "/api/v1/inbox/{id}", unknown, "", 404),
        ("CN", "GET", "/api/v1/inbox/{id}/payload", &id, "", 200),
        ("CN", "GET", "/api/v1/inbox/{id}/evidence", &id, "", 200),
        (
            "CN",
            "POST",
            "/api/v1/inbox/{id}/answer",
            &id,
            answer_no,
            400,
        ),
        (
            "CN",
            "POST",
            "/api/v1/inbox/{id}/answer",
            &id,
            answer_yes,
            202,
        ),
        ("CN", "GET", "/api/v1/trust-list", "", "", 200),
        ("CN", "GET", "/api/v1/log", "", "", 200),
        ("CN", "GET", "/api/v1/health", "", "", 200),
    ] {
        let path = if template.contains("{id}") {
            template.replace("{id}", arg)
        } else {
            format!("{template}{arg}")
        };
        let token = if who == "KZ" { &kz } else { &cn };
        let (s, answer) = call(who, method, &path, template, Some(token), body.into()).await;
        assert_eq!(s, expected, "{method} {path}: {answer}");
    }

    for (template, method, status, body) in &answers {
        let described =
            &doc["paths"][template][method.to_lowercase()]["responses"][status.to_string()];
        assert!(
            described.is_object(),
            "{method} {template} answered {status}, which the document does not list: {body}"
        );
        let Some(schema) = described["content"]["application/json"]["schema"].as_object() else {
            continue;
        };
        let mut schema = serde_json::Value::Object(schema.clone());
        schema["components"] = doc["components"].clone();
        let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
        let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {errors:?}\n{body:#}"
        );
    }

    // What the framework answers before the API's handlers, in the same error shape.
    for (method, path, expected, code) in [
        ("GET", "/api/v1/nothing-here", 404, "NOT_FOUND"),
        ("DELETE", "/api/v1/inbox", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/api/v1/inbox?limit=-1", 400, "BAD_REQUEST"),
    ] {
        let (s, body) = net
            .nsw_call("CN", method, path, Some(&cn), Vec::new())
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (expected, Some(code)),
            "{method} {path}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}
