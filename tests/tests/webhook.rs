//! The spoke's NSW webhook end to end: the real hub and spokes push each received document to
//! an HTTP endpoint started here, and an endpoint that hangs holds up only the pushes, never
//! the inbox.

use std::collections::BTreeMap;

use caravan_tests::{Net, PATIENCE, sample_path};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};

/// One request the endpoint received.
#[derive(Debug)]
struct Pushed {
    method: String,
    path: String,
    /// Header names in lower case.
    headers: BTreeMap<String, String>,
    body: serde_json::Value,
}

/// An NSW endpoint on loopback. Each request is handed over as it arrives; it is answered 200
/// at once, or, while `hang` is true, only once it turns false (the connection held open,
/// unanswered, meanwhile).
struct Endpoint {
    url: String,
    pushed: mpsc::UnboundedReceiver<Pushed>,
    hang: watch::Sender<bool>,
}

impl Endpoint {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/caravan/received", listener.local_addr().unwrap());
        let (tx, pushed) = mpsc::unbounded_channel();
        let (hang, hanging) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (tx, mut hanging) = (tx.clone(), hanging.clone());
                tokio::spawn(async move {
                    let mut socket = socket;
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let _ = tx.send(request);
                    // Answer only once no longer told to hang (at once if not).
                    if hanging.wait_for(|hang| !*hang).await.is_err() {
                        return;
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self { url, pushed, hang }
    }

    /// The next request, within the harness's patience.
    async fn next(&mut self) -> Pushed {
        tokio::time::timeout(PATIENCE, self.pushed.recv())
            .await
            .expect("the spoke pushed to the webhook in time")
            .expect("the endpoint runs")
    }

    /// Wait for the push of `message_id`, passing over repeats of earlier ones (a push that
    /// timed out is tried again).
    async fn next_for(&mut self, message_id: &str) -> Pushed {
        loop {
            let pushed = self.next().await;
            if pushed.body["message_id"] == message_id {
                return pushed;
            }
        }
    }
}

/// Read one HTTP/1.1 request: its head, then its body by `content-length`.
async fn read_request(socket: &mut TcpStream) -> Option<Pushed> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
        let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.lines();
        let mut request_line = lines.next()?.split(' ');
        let (method, path) = (request_line.next()?, request_line.next()?);
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let length: usize = headers.get("content-length")?.parse().ok()?;
        let body = &bytes[end + 4..];
        if body.len() < length {
            continue;
        }
        return Some(Pushed {
            method: method.to_owned(),
            path: path.to_owned(),
            body: serde_json::from_slice(&body[..length]).ok()?,
            headers,
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_received_document_is_pushed_and_a_hanging_webhook_never_holds_the_inbox() {
    let mut endpoint = Endpoint::start().await;
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.nsw_webhook = Some(endpoint.url.clone());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let message_id = |sent: &serde_json::Value| sent["message_id"].as_str().unwrap().to_owned();

    // The notification names the document, as the inbox does.
    let first = message_id(&net.send("KZ", "CN", "e-co", &eco).await);
    let pushed = endpoint.next_for(&first).await;
    assert_eq!(pushed.method, "POST");
    assert_eq!(pushed.path, "/caravan/received");
    assert_eq!(pushed.headers["x-caravan-event"], "document.received");
    assert_eq!(pushed.headers["content-type"], "application/json");
    let item = &pushed.body;
    assert_eq!(item["sender"], "KZ");
    assert_eq!(item["document_type"], "e-co");
    assert_eq!(item["verified"], true);
    assert_eq!(item["summary"]["document_number"], "KZ-CO-2026-000123");
    let inbox = net.wait_inbox("CN", &first).await;
    assert_eq!(item["cursor"], inbox["cursor"], "{item}\n{inbox}");

    // The endpoint takes the next push and does not answer.
    endpoint.hang.send_replace(true);
    let second = message_id(&net.send("KZ", "CN", "e-co", &eco).await);
    assert_eq!(endpoint.next_for(&second).await.body["sender"], "KZ");
    // Meanwhile documents still arrive, are acknowledged, and are listed by both APIs.
    let third = message_id(&net.send("KZ", "CN", "e-co", &eco).await);
    net.wait_inbox("CN", &third).await;
    let status = net.wait_state("KZ", &third, "ACKNOWLEDGED").await;
    assert_eq!(status["state"], "ACKNOWLEDGED");
    let token = net.nsw_tokens["CN"].clone();
    let (code, listed) = net
        .nsw_call("CN", "GET", "/api/v1/inbox", Some(&token), Vec::new())
        .await;
    assert_eq!(code, 200, "{listed}");
    let listed: Vec<&serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["message_id"])
        .collect();
    for id in [&first, &second, &third] {
        assert!(
            listed.contains(&&serde_json::Value::from(id.as_str())),
            "{id}: {listed:?}"
        );
    }
    // Nothing is pushed past the document the endpoint holds (it may be tried again).
    while let Ok(pushed) = endpoint.pushed.try_recv() {
        assert_eq!(pushed.body["message_id"], second.as_str(), "{pushed:?}");
    }

    // Once the endpoint answers, the pushes go on in arrival order.
    endpoint.hang.send_replace(false);
    let pushed = endpoint.next_for(&third).await;
    assert_eq!(pushed.body["sender"], "KZ");
}
