//! Online backup of the hub's store while documents flow, and restoring it with the hub
//! stopped: what the backup held comes back, what came after is gone (and the spokes notice).

use caravan_proto::v1;
use caravan_tests::{Net, sample_path};

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_load_restores_to_a_hub_that_works() {
    backup_and_restore(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sled_store_backs_up_under_load_and_restores() {
    backup_and_restore(Some("sled")).await;
}

async fn backup_and_restore(engine: Option<&'static str>) {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.store_engine = engine;
    net.start_hub().await;
    // `info` tells which engine the store is on.
    let info: serde_json::Value =
        serde_json::from_slice(&net.hub_cli(&["info", "--json"]).await.stdout).unwrap();
    // A new store without a setting is on redb.
    assert_eq!(info["store_engine"], engine.unwrap_or("redb"), "{info}");
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let before = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &before, "ACKNOWLEDGED").await;

    // Back up while KZ keeps sending.
    let sending = async {
        for _ in 0..4 {
            let sent = net.send("KZ", "CN", "e-co", &eco).await;
            assert!(sent["message_id"].is_string(), "{sent}");
        }
    };
    let ((), backup) = tokio::join!(sending, net.admin_ok(&["backup", "--json"]));
    let backup: serde_json::Value = serde_json::from_str(&backup).unwrap();
    let path = backup["path"].as_str().unwrap().to_owned();
    assert!(
        path.starts_with(
            net.path()
                .join("hub-data")
                .join("backups")
                .to_str()
                .unwrap()
        ),
        "{backup}"
    );
    assert!(backup["log_entries"].as_u64().unwrap() >= 3, "{backup}");
    // Auditors work on the backup while the hub runs, and leave it exactly as it was (they
    // open a copy: opening a store may write to it).
    let untouched = folder_digest(std::path::Path::new(&path));
    let checked = net.hub_cli(&["store", "check", "--store", &path]).await;
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let verified = net
        .hub_cli(&["log", "verify", "--json", "--store", &path])
        .await;
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let exported = net.hub_cli(&["log", "export", "--store", &path]).await;
    assert!(exported.status.success());
    assert_eq!(
        String::from_utf8_lossy(&exported.stdout).lines().count() as u64,
        backup["log_entries"].as_u64().unwrap(),
        "one line per entry of the backup"
    );
    assert_eq!(
        folder_digest(std::path::Path::new(&path)),
        untouched,
        "the backup changed"
    );
    let after = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &after, "ACKNOWLEDGED").await;
    // A registry change after the backup: the spokes hold a newer trust list than the backup.
    net.admin_ok(&[
        "corridor",
        "pilot",
        "CN",
        "KZ",
        "e-phyto",
        "--override",
        caravan_tests::HARNESS_OVERRIDE,
    ])
    .await;
    let newest = net.hub_trust_version().await;
    net.wait_trust_version("KZ", newest).await;

    // Refusals first: a running hub's store is not replaced, and a folder that is no backup
    // is not taken; neither changes anything.
    let out = net.hub_cli(&["restore", "--json", "--from", &path]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the hub first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let pki = net.pki();
    let out = net
        .hub_cli(&["restore", "--json", "--from", pki.to_str().unwrap()])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a store backup"));

    let out = net.hub_cli(&["restore", "--json", "--from", &path]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        restored["audit"]["problems"].as_array().unwrap().is_empty(),
        "{restored}"
    );
    let aside = restored["set_aside"].as_str().unwrap();
    let aside = std::path::Path::new(aside);
    assert!(
        aside.join("conf").exists() || aside.join("store.redb").exists(),
        "the old store is kept"
    );

    // The restored hub re-issues its trust list beyond the version the spokes hold, so they
    // take it (they refuse an older one).
    net.start_hub().await;
    assert!(net.hub_trust_version().await > newest);
    net.wait_trust_version("KZ", newest + 1).await;
    // It knows what the backup held, and not what came after it.
    let mut kz = net.client("KZ");
    let known = kz
        .status(v1::StatusRequest { message_id: before })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(known.state(), v1::MessageState::Acknowledged);
    let lost = kz
        .status(v1::StatusRequest { message_id: after })
        .await
        .unwrap_err();
    assert!(lost.message().starts_with("UNKNOWN_MESSAGE"), "{lost:?}");
    // And it works: a new document goes through.
    net.wait_hub_connected("KZ", true).await;
    let new = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &new, "ACKNOWLEDGED").await;
    // KZ had seen tree heads over the entries the backup lacks: the rewind is visible.
    let start = std::time::Instant::now();
    loop {
        let out = net.spoke_cli("KZ", &["log", "--json"]).await;
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if view["alarms_total"].as_u64() > Some(0) {
            assert_eq!(view["alarms"][0]["code"], "LOG_INCONSISTENT", "{view}");
            break;
        }
        assert!(
            start.elapsed() < caravan_tests::PATIENCE,
            "no alarm: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The audit of the restored log holds.
    let out = net.hub_cli(&["log", "verify"]).await;
    assert!(net.terminate_hub().await);
    let out2 = net.hub_cli(&["log", "verify", "--json"]).await;
    assert!(!out.status.success(), "log verify needs the hub stopped");
    assert!(
        out2.status.success(),
        "{}",
        String::from_utf8_lossy(&out2.stdout)
    );
}

/// Every file under `dir` with the SHA-256 of its bytes, in path order.
fn folder_digest(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let digest = Sha256::digest(std::fs::read(&path).unwrap()).to_vec();
                files.push((path, digest));
            }
        }
    }
    files.sort();
    files
}

/// The hub's store in PostgreSQL is backed up with the database's own tools (here `pg_dump`,
/// taken while a sender is at it) and restored into a new database; `store restored` marks it
/// so, and the hub comes back on it as from a backup: a trust list beyond the spokes', what
/// the dump held and not what came after, a visible rewind, a log that verifies.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_store_restored_from_a_dump_comes_back_as_a_restore() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    if !net.on_postgres("a_postgres_store_restored_from_a_dump_comes_back_as_a_restore") {
        return;
    }
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = sample_path("eco/carec-KZ-CN-certificate-of-origin.xml");
    let before = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &before, "ACKNOWLEDGED").await;
    // `admin backup` says what to do instead.
    let refused = net.admin(&["backup"]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pg_basebackup"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // A dump while KZ keeps sending.
    let pg = net.postgres().expect("the network's cluster");
    let dump = pg.socket_dir().join("hub.dump");
    let dump_arg = dump.to_str().unwrap().to_owned();
    let host = pg.socket_dir().to_str().unwrap().to_owned();
    let sending = async {
        for _ in 0..3 {
            let sent = net.send("KZ", "CN", "e-co", &eco).await;
            assert!(sent["message_id"].is_string(), "{sent}");
        }
    };
    let dumping = async {
        let out = pg.run(
            "pg_dump",
            &[
                "--host",
                &host,
                "--username",
                "postgres",
                "--format",
                "custom",
                "--file",
                &dump_arg,
                "hub",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    tokio::join!(sending, dumping);
    let after = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &after, "ACKNOWLEDGED").await;
    net.admin_ok(&[
        "corridor",
        "pilot",
        "CN",
        "KZ",
        "e-phyto",
        "--override",
        caravan_tests::HARNESS_OVERRIDE,
    ])
    .await;
    let newest = net.hub_trust_version().await;
    net.wait_trust_version("KZ", newest).await;

    // The restore: the hub stopped, the dump into a new database, marked restored.
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let pg = net.postgres().expect("the network's cluster");
    pg.sql("postgres", "CREATE DATABASE restored");
    let out = pg.run(
        "pg_restore",
        &[
            "--host",
            &host,
            "--username",
            "postgres",
            "--dbname",
            "restored",
            &dump_arg,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = pg.url("restored");
    net.postgres_url = Some(restored);
    net.rewrite_hub_config();
    let floor = newest.to_string();
    let out = net
        .hub_cli(&["store", "restored", "--json", "--trust-list-floor", &floor])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        marked["audit"]["problems"].as_array().unwrap().is_empty(),
        "{marked}"
    );

    net.start_hub().await;
    assert!(net.hub_trust_version().await > newest);
    net.wait_trust_version("KZ", newest + 1).await;
    let mut kz = net.client("KZ");
    let known = kz
        .status(v1::StatusRequest { message_id: before })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(known.state(), v1::MessageState::Acknowledged);
    let lost = kz
        .status(v1::StatusRequest {
            message_id: after.clone(),
        })
        .await
        .unwrap_err();
    assert!(lost.message().starts_with("UNKNOWN_MESSAGE"), "{lost:?}");
    // The spoke sends again what the restored hub lost, and a new document goes through.
    net.wait_hub_connected("KZ", true).await;
    net.wait_inbox("CN", &after).await;
    let new = net.send("KZ", "CN", "e-co", &eco).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &new, "ACKNOWLEDGED").await;
    assert!(net.terminate_hub().await);
    let out = net.hub_cli(&["log", "verify", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
