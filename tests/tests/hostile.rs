//! Hostile clients: connection floods on the hub's gRPC port and on a spoke's NSW API, slow
//! uploads, and a full send room. Nobody who behaves is locked out, and what the hostile ones
//! hold is bounded and given back.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use caravan_tests::{Net, metric, sample, sample_path};

/// Connections a flood opens.
const FLOOD: usize = 1100;
/// Connections that send a TLS record header, then nothing.
const HALF_SPOKEN: usize = 20;
/// What a client that behaves may wait for, flood or not.
const ANSWER: Duration = Duration::from_secs(10);
/// The first five bytes of a TLS record (a handshake record of 512 bytes that never comes).
const TLS_RECORD_HEADER: [u8; 5] = [0x16, 0x03, 0x01, 0x02, 0x00];

/// The descriptors the test itself needs for a flood (and its own files).
fn enough_descriptors() {
    let limit = caravan_common::process::raise_fd_limit();
    assert!(
        limit >= (FLOOD + HALF_SPOKEN) as u64 + 500,
        "this test needs more open files than RLIMIT_NOFILE allows ({limit})"
    );
}

async fn flood(addr: SocketAddr, header: Option<&[u8]>, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        if let Some(bytes) = header {
            stream.write_all(bytes).await.expect("write");
        }
        streams.push(stream);
    }
    streams
}

/// Wait until the server has closed every one of `streams`, before `deadline`.
async fn all_closed(streams: Vec<TcpStream>, deadline: Instant, what: &str) {
    let total = streams.len();
    let mut open = 0;
    for mut stream in streams {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 64];
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(_)) => {
                // An alert, then the close.
                let left = deadline.saturating_duration_since(Instant::now());
                if !matches!(
                    tokio::time::timeout(left, stream.read(&mut buf)).await,
                    Ok(Ok(0)) | Ok(Err(_))
                ) {
                    open += 1;
                }
            }
            Err(_) => open += 1,
        }
    }
    assert_eq!(open, 0, "{open} of {total} {what} were still open");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_silent_connections_on_the_hub_locks_nobody_out() {
    enough_descriptors();
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.hub_net.handshake_timeout_secs = 2;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let addr: SocketAddr = ([127, 0, 0, 1], net.hub_port.unwrap()).into();

    let mut silent = flood(addr, None, FLOOD).await;
    silent.extend(flood(addr, Some(&TLS_RECORD_HEADER), HALF_SPOKEN).await);
    let flooded = Instant::now();

    // The operator's CLI gets its answer.
    let started = Instant::now();
    let list = net.admin_ok(&["participant", "list"]).await;
    assert!(list.contains("KZ"), "{list}");
    eprintln!("admin CLI under the flood: {:?}", started.elapsed());
    assert!(
        started.elapsed() < ANSWER,
        "admin CLI took {:?} under the flood",
        started.elapsed()
    );
    // A spoke that connects now gets in, and one connected before still sends and receives.
    let started = Instant::now();
    net.start_spoke("CN").await;
    assert!(
        started.elapsed() < ANSWER,
        "a new spoke took {:?} to connect under the flood",
        started.elapsed()
    );
    let started = Instant::now();
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &sample_path("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let id = sent["message_id"].as_str().expect("message id").to_owned();
    net.wait_inbox("CN", &id).await;
    assert!(
        started.elapsed() < ANSWER,
        "a document took {:?} from KZ to CN under the flood",
        started.elapsed()
    );

    // Every silent connection is closed: the oldest gave way to newer ones, the rest ran out
    // of their 2 s handshake time.
    all_closed(
        silent,
        flooded + Duration::from_secs(10),
        "silent connections",
    )
    .await;
    let metrics = net.hub_metrics().await;
    let evicted = metric(
        &metrics,
        "caravan_hub_handshakes_evicted_total{listener=\"grpc\"}",
    );
    let timed_out = metric(
        &metrics,
        "caravan_hub_handshakes_failed_total{listener=\"grpc\",reason=\"timeout\"}",
    );
    assert!(
        evicted + timed_out >= (FLOOD + HALF_SPOKEN) as f64,
        "evicted {evicted} + timed out {timed_out}:\n{metrics}"
    );
    eprintln!("grpc flood: {evicted} handshakes evicted, {timed_out} timed out");
    assert!(timed_out >= 1.0, "{metrics}");
    assert!(
        metric(&metrics, "caravan_hub_fd_limit") >= 1024.0,
        "{metrics}"
    );
    // One line when the port saturated, one when it calmed down; none per connection.
    let log = net.hub_log();
    let saturated = log.matches("listener saturated").count();
    assert_eq!(saturated, 1, "{log}");
    assert!(log.contains("listener no longer saturated"), "{log}");
    assert!(log.contains("file descriptor limit"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_file_descriptors_is_reported_and_survived() {
    enough_descriptors();
    let mut net = Net::new(&["KZ", "CN"]).await;
    // Far fewer descriptors than the flood needs (soft = hard: nothing to raise).
    net.hub_nofile = Some(256);
    net.hub_net.handshake_timeout_secs = 2;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let addr: SocketAddr = ([127, 0, 0, 1], net.hub_port.unwrap()).into();
    assert!(
        net.hub_log().contains("file descriptor limit limit=256"),
        "{}",
        net.hub_log()
    );

    let silent = flood(addr, None, 600).await;
    let flooded = Instant::now();
    let deadline = flooded + ANSWER;
    while !net.hub_log().contains("out of file descriptors") {
        assert!(
            Instant::now() < deadline,
            "no exhaustion logged:\n{}",
            net.hub_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The hub backs off instead of spinning, the silent connections time out, and the
    // operator and the spokes get through.
    let started = Instant::now();
    let list = net.admin_ok(&["participant", "list"]).await;
    assert!(list.contains("KZ"), "{list}");
    assert!(
        started.elapsed() < ANSWER,
        "admin CLI took {:?} while descriptors ran out",
        started.elapsed()
    );
    all_closed(
        silent,
        flooded + Duration::from_secs(20),
        "silent connections",
    )
    .await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &sample_path("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    net.wait_inbox("CN", sent["message_id"].as_str().expect("message id"))
        .await;
    let metrics = net.hub_metrics().await;
    let failures = metric(
        &metrics,
        "caravan_hub_fd_exhaustion_failures_total{during=\"accept\"}",
    );
    let episodes = metric(&metrics, "caravan_hub_fd_exhaustion_episodes_total");
    eprintln!("fd exhaustion: {episodes} episodes, {failures} failed accepts");
    assert!(episodes >= 1.0, "{metrics}");
    assert_eq!(
        metric(&metrics, "caravan_hub_fd_exhausted"),
        0.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "caravan_hub_fd_limit"), 256.0, "{metrics}");
    // One warning and one all-clear per episode, not one line per failed accept.
    let log = net.hub_log();
    let warnings = log.matches("out of file descriptors:").count() as f64;
    assert_eq!(warnings, episodes, "{log}");
    assert!(failures >= episodes, "{metrics}");
    assert_eq!(
        log.matches("file descriptors available again").count() as f64,
        episodes,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_on_the_nsw_api_leaves_room_for_the_single_window() {
    enough_descriptors();
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.spoke_net.handshake_timeout_secs = 2;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let token = net.nsw_tokens["KZ"].clone();

    let silent = flood(net.nsw_addr("KZ").await, None, FLOOD).await;
    let flooded = Instant::now();
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        ANSWER,
        net.nsw_call(
            "KZ",
            "POST",
            "/api/v1/documents?to=CN&type=e-co",
            Some(&token),
            sample("eco/carec-KZ-CN-certificate-of-origin.xml"),
        ),
    )
    .await
    .expect("the NSW API answers under the flood");
    assert_eq!(status, 202, "{body}");
    assert!(started.elapsed() < ANSWER);
    all_closed(
        silent,
        flooded + Duration::from_secs(10),
        "silent connections",
    )
    .await;
    let metrics = net.spoke_metrics("KZ").await;
    let evicted = metric(
        &metrics,
        "caravan_spoke_handshakes_evicted_total{listener=\"nsw\"}",
    );
    let timed_out = metric(
        &metrics,
        "caravan_spoke_handshakes_failed_total{listener=\"nsw\",reason=\"timeout\"}",
    );
    assert!(
        evicted + timed_out >= FLOOD as f64,
        "evicted {evicted} + timed out {timed_out}:\n{metrics}"
    );
}

/// A raw upload to the NSW API: headers declaring `length` bytes, then `first` at once.
async fn start_upload(addr: SocketAddr, token: &str, length: usize, first: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/documents?to=CN&type=e-co HTTP/1.1\r\nhost: caravan\r\nauthorization: Bearer {token}\r\ncontent-type: application/xml\r\ncontent-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(first).await.expect("write");
    stream
}

/// Send a byte a second on `stream` until the server answers and closes; returns the answer
/// and when it came.
async fn trickle(mut stream: TcpStream) -> (String, Instant) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                // The server may have stopped reading: a failed write is not the end yet.
                let _ = stream.write_all(b"<").await;
            }
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        Instant::now(),
    )
}

async fn room_taken(net: &Net) -> f64 {
    metric(
        &net.spoke_metrics("KZ").await,
        "caravan_spoke_upload_room_taken_kib",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_uploads_hold_only_what_they_sent_and_are_cut() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    // A room of 1 MiB: one upload declaring 64 MiB took all of it, before anything arrived.
    let grace = Duration::from_secs(6);
    net.spoke_payload_in_flight_mib = Some(1);
    net.spoke_upload.grace_secs = grace.as_secs();
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let token = net.nsw_tokens["KZ"].clone();
    let addr = net.nsw_addr("KZ").await;

    let began = Instant::now();
    let slow = [
        tokio::spawn(trickle(start_upload(addr, &token, 64 << 20, b"<").await)),
        tokio::spawn(trickle(start_upload(addr, &token, 64 << 20, b"<").await)),
    ];
    // Each holds the KiB it sent, not the 64 MiB it declared.
    let deadline = Instant::now() + ANSWER;
    while room_taken(&net).await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the slow uploads never took their room"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(room_taken(&net).await, 2.0);

    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        ANSWER,
        net.nsw_call(
            "KZ",
            "POST",
            "/api/v1/documents?to=CN&type=e-co",
            Some(&token),
            sample("eco/carec-KZ-CN-certificate-of-origin.xml"),
        ),
    )
    .await
    .expect("a send is not held up by slow uploads");
    assert_eq!(status, 202, "{body}");
    eprintln!("send beside two slow uploads: {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a send beside two slow uploads took {:?}",
        started.elapsed()
    );

    for upload in slow {
        let (answer, at) = upload.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"BODY_TIMEOUT\""), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        let after = at - began;
        assert!(
            after >= grace && after < grace + ANSWER,
            "cut after {after:?} (grace {grace:?})"
        );
    }
    // What they held is back.
    assert_eq!(room_taken(&net).await, 0.0);
    let metrics = net.spoke_metrics("KZ").await;
    assert_eq!(
        metric(
            &metrics,
            "caravan_spoke_uploads_refused_total{reason=\"slow\"}"
        ),
        2.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_room_answers_503_and_an_idle_body_is_cut() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    net.spoke_payload_in_flight_mib = Some(1);
    net.spoke_upload.room_wait_secs = 2;
    net.spoke_net.idle_timeout_secs = 5;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let token = net.nsw_tokens["KZ"].clone();
    let addr = net.nsw_addr("KZ").await;

    // A client sends 1 MiB of its 2 MiB quickly, then nothing: it holds the whole room.
    let mut holder = start_upload(addr, &token, 2 << 20, &vec![b' '; (1 << 20) + 10]).await;
    let deadline = Instant::now() + ANSWER;
    while room_taken(&net).await < 1024.0 {
        assert!(Instant::now() < deadline, "the upload never took the room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Another send waits for room a bounded time, then is told to come back.
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let auth = format!("Bearer {token}");
    let (status, headers, body) = caravan_spoke::client::exchange_full(
        stream,
        "POST",
        "/api/v1/documents?to=CN&type=e-co",
        &[("authorization", &auth)],
        sample("eco/carec-KZ-CN-certificate-of-origin.xml"),
    )
    .await
    .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status.as_u16(), 503, "{body}");
    assert!(body.contains("\"NO_ROOM_TO_SEND\""), "{body}");
    assert!(body.contains("payload_in_flight_mib"), "{body}");
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "5"),
        "{headers:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < ANSWER,
        "answered after {waited:?}"
    );

    // The silent body is cut by the idle timeout, and its room given back.
    let mut answer = Vec::new();
    tokio::time::timeout(ANSWER, holder.read_to_end(&mut answer))
        .await
        .expect("the idle upload is cut")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"BODY_TIMEOUT\""), "{answer}");
    assert!(answer.contains("idle_timeout"), "{answer}");
    assert_eq!(room_taken(&net).await, 0.0);
    let (status, body) = net
        .nsw_call(
            "KZ",
            "POST",
            "/api/v1/documents?to=CN&type=e-co",
            Some(&token),
            sample("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let log = net.spoke_log("KZ");
    assert_eq!(log.matches("send room full").count(), 1, "{log}");
    assert!(log.contains("send room available again"), "{log}");
}
