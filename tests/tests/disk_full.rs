//! A full disk is a passing fault: the hub's or a spoke's store refuses writes while it lasts
//! (health NOT_SERVING, UNAVAILABLE or 503 with Retry-After, one log line), and recovers by
//! itself once space is freed, without a restart, losing and duplicating nothing.
//!
//! The data folder is a small tmpfs mounted by the test (root only); where mounting is not
//! allowed the test says so and is skipped.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use caravan_tests::{Net, sample, sample_path};

/// A tmpfs of a few MiB on a folder, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, mib: u32) -> Option<Self> {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs on {} (needs root); the full-disk test did not run",
                path.display()
            );
            return None;
        }
        Some(Self(path.to_path_buf()))
    }

    /// Write a file until the disk is full.
    fn fill(&self) {
        let mut file = std::fs::File::create(self.filler()).expect("filler");
        let chunk = vec![0u8; 256 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }

    fn filler(&self) -> PathBuf {
        self.0.join("filler")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const PATIENCE: Duration = Duration::from_secs(30);

/// Poll `check` until it returns `Some`, or fail naming `what` and showing `log`.
async fn eventually<T>(
    what: &str,
    log: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn hub_full_then_freed(engine: &'static str) {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.store_engine = Some(engine);
    let Some(disk) = SmallDisk::mount(&net.path().join("hub-data"), 24) else {
        return;
    };
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let doc = sample_path("ephyto/carec-KZ-CN-phytosanitary.xml");
    let before = net.send("KZ", "CN", "e-phyto", &doc).await;
    net.wait_state("KZ", before["message_id"].as_str().unwrap(), "ACKNOWLEDGED")
        .await;

    disk.fill();
    // Documents sent now wait in the sender's outbox: the hub cannot keep them.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let sent = net.send_queued("KZ", "CN", "e-phyto", &doc).await;
        ids.push(sent["message_id"].as_str().unwrap().to_owned());
    }
    let (status, body) = eventually(
        "the hub's /healthz to say NOT_SERVING",
        || net.hub_log(),
        async || {
            let answer = net.hub_http("/healthz").await;
            (answer.0 == 503).then_some(answer)
        },
    )
    .await;
    assert_eq!(status, 503);
    assert!(body.starts_with("NOT_SERVING store disk_full"), "{body}");
    let metrics = net.hub_metrics().await;
    for line in [
        "caravan_hub_store_healthy 0",
        "caravan_hub_store_fault{reason=\"disk_full\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    // The spoke keeps trying for a while; the documents stay queued, none is lost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        let status = net.spoke_json("KZ", &["status", id]).await;
        assert_eq!(status["state"], "QUEUED", "{status}");
    }

    disk.free();
    eventually(
        "the hub's /healthz to say SERVING again",
        || net.hub_log(),
        async || (net.hub_http("/healthz").await.0 == 200).then_some(()),
    )
    .await;
    for id in &ids {
        net.wait_state("KZ", id, "ACKNOWLEDGED").await;
    }
    for id in &ids {
        assert_eq!(net.inbox_copies("CN", id).await, 1, "{id} in CN's inbox");
    }
    // One line when the store faulted and one when it recovered, not one per request.
    let log = net.hub_log();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("store faulted"), 1, "{log}");
    assert_eq!(count("store recovered"), 1, "{log}");
    assert!(count("ERROR") <= 2, "too many error lines:\n{log}");
    let metrics = net.hub_metrics().await;
    for line in [
        "caravan_hub_store_healthy 1",
        "caravan_hub_store_faults_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_the_hub_on_sled_passes_without_a_restart() {
    hub_full_then_freed("sled").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_the_hub_on_redb_passes_without_a_restart() {
    hub_full_then_freed("redb").await;
}

/// The national single window is told to retry later (503, Retry-After, DISK_FULL) while the
/// spoke's disk is full, and its sends go through once space is freed.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_a_spoke_is_a_retry_later_for_its_nsw() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.nsw = true;
    let Some(disk) = SmallDisk::mount(&net.path().join("spoke-KZ-data"), 24) else {
        return;
    };
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let token = net.nsw_tokens["KZ"].clone();
    let doc = sample("ephyto/carec-KZ-CN-phytosanitary.xml");
    let path = "/api/v1/documents?to=CN&type=e-phyto";

    disk.fill();
    let (status, body) = eventually(
        "a send to be refused for the full disk",
        || net.spoke_log("KZ"),
        async || {
            let answer = net
                .nsw_call("KZ", "POST", path, Some(&token), doc.clone())
                .await;
            (answer.0 != 202).then_some(answer)
        },
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "DISK_FULL", "{body}");
    let (health, text) = net.spoke_http("KZ", "/healthz").await;
    assert_eq!(health, 503, "{text}");
    assert!(text.contains("disk_full"), "{text}");
    let retry = retry_after(&net, path, &token, &doc).await;
    assert_eq!(retry.as_deref(), Some("10"));

    disk.free();
    let sent = eventually(
        "a send to be taken again",
        || net.spoke_log("KZ"),
        async || {
            let (status, body) = net
                .nsw_call("KZ", "POST", path, Some(&token), doc.clone())
                .await;
            (status == 202).then_some(body)
        },
    )
    .await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
    assert_eq!(net.spoke_http("KZ", "/healthz").await.0, 200);
    let log = net.spoke_log("KZ");
    assert_eq!(
        log.lines().filter(|l| l.contains("store faulted")).count(),
        1,
        "{log}"
    );
}

/// The Retry-After header of a send refused while the disk is full.
async fn retry_after(net: &Net, path: &str, token: &str, doc: &[u8]) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(net.nsw_addr("KZ").await)
        .await
        .unwrap();
    let auth = format!("Bearer {token}");
    let (status, headers, _) = caravan_spoke::client::exchange_full(
        stream,
        "POST",
        path,
        &[("authorization", &auth)],
        doc.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(status.as_u16(), 503);
    headers
        .into_iter()
        .find(|(name, _)| name == "retry-after")
        .map(|(_, value)| value)
}
