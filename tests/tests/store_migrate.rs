//! `store migrate`: a stopped hub's and a stopped spoke's stores moved to the other engine, both
//! ways, with documents in them; the old stores untouched, the hub's log verified after the
//! move, and the network going on from the moved stores.

use std::path::{Path, PathBuf};

use caravan_proto::v1;
use caravan_tests::{Net, binaries, sample_path};

/// Larger than redb's inline limit: kept in a payload segment on both engines.
const LARGE: (&str, &str) = ("e-co", "eco/carec-KZ-CN-certificate-of-origin.xml");
/// Smaller: kept inside a redb store, in a segment on sled.
const SMALL: (&str, &str) = (
    "e-invoice",
    "einvoice/ubl/en16931-ubl-tc434-creditnote1.xml",
);

#[tokio::test(flavor = "multi_thread")]
async fn stores_move_from_sled_to_redb_with_their_documents() {
    moved("sled", "redb").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_move_from_redb_to_sled_with_their_documents() {
    moved("redb", "sled").await;
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of the config at `config`, its store in `data_dir` on `engine`.
fn moved_config(config: &Path, from: &str, to: &str, data_dir: &str) -> PathBuf {
    let old = std::fs::read_to_string(config).unwrap();
    let line = |engine: &str| format!("store_engine = \"{engine}\"");
    assert!(old.contains(&line(from)), "{old}");
    let data_line = old
        .lines()
        .find(|l| l.starts_with("data_dir = "))
        .unwrap()
        .to_owned();
    let new = old
        .replace(&line(from), &line(to))
        .replace(&data_line, &format!("data_dir = \"{data_dir}\""));
    let path = config.with_file_name(format!("moved-{data_dir}.toml"));
    std::fs::write(&path, new).unwrap();
    path
}

async fn migrate(binary: &Path, from: &Path, to: &Path) -> std::process::Output {
    tokio::process::Command::new(binary)
        .args(["store", "migrate", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .output()
        .await
        .unwrap()
}

/// The engine whose files are in `store`.
fn engine_of(store: &Path) -> &'static str {
    if store.join("store.redb").is_file() {
        "redb"
    } else if store.join("conf").is_file() && store.join("db").is_file() {
        "sled"
    } else {
        "none"
    }
}

/// What "untouched" means for a store: the records of every table (as `store check` counts
/// them; opening an engine writes its own bookkeeping), and the payload segments and noted
/// counters byte for byte.
async fn state(binary: &Path, config: &Path, store: &Path) -> (serde_json::Value, Vec<Vec<u8>>) {
    let out = tokio::process::Command::new(binary)
        .args(["store", "check", "--json", "--config"])
        .arg(config)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut files = vec![std::fs::read(store.join("counter-floors")).unwrap_or_default()];
    let mut segments: Vec<PathBuf> = std::fs::read_dir(store.join("payload-segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    files.extend(segments.iter().map(|p| std::fs::read(p).unwrap()));
    (report["records"].clone(), files)
}

/// Put the store in `moved` where the harness's configs look (`data_dir/store`), keeping the
/// old one aside.
fn swap_in(data_dir: &Path, moved: &Path) {
    std::fs::rename(data_dir.join("store"), data_dir.join("store-before-move")).unwrap();
    std::fs::rename(moved.join("store"), data_dir.join("store")).unwrap();
}

async fn moved(from: &'static str, to: &'static str) {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.store_engine = Some(from);
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let mut sent = Vec::new();
    for (kind, file) in [LARGE, SMALL] {
        let id = net.send("KZ", "CN", kind, &sample_path(file)).await["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
        sent.push(id);
    }

    let hub_config = net.hub_config();
    let new_hub_config = moved_config(&hub_config, from, to, "moved-hub-data");
    // A running hub's store is refused.
    let out = migrate(&binaries().hub, &hub_config, &new_hub_config).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("stop it first"), "{}", text(&out));

    for id in ["KZ", "CN"] {
        assert!(net.terminate_spoke(id).await, "{id} stops cleanly");
    }
    assert!(net.terminate_hub().await, "the hub stops cleanly");

    // The hub's store.
    let hub_data = net.path().join("hub-data");
    let moved_hub = net.path().join("moved-hub-data");
    let before = state(&binaries().hub, &hub_config, &hub_data.join("store")).await;
    assert!(
        before.0.as_object().is_some_and(|r| !r.is_empty()),
        "{:?}",
        before.0
    );
    let out = migrate(&binaries().hub, &hub_config, &new_hub_config).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("({to})")), "{}", text(&out));
    assert_eq!(engine_of(&moved_hub.join("store")), to);
    assert!(
        state(&binaries().hub, &hub_config, &hub_data.join("store")).await == before,
        "the old store is untouched"
    );
    // The moved store holds the same records.
    assert_eq!(
        state(&binaries().hub, &new_hub_config, &moved_hub.join("store"))
            .await
            .0,
        before.0
    );
    // The log of the moved store verifies.
    let out = tokio::process::Command::new(&binaries().hub)
        .args(["log", "verify", "--config"])
        .arg(&new_hub_config)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the log matches every signed tree head"),
        "{}",
        text(&out)
    );
    // A target that holds a store is refused.
    let out = migrate(&binaries().hub, &hub_config, &new_hub_config).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already holds"), "{}", text(&out));

    // The spokes' stores.
    for id in ["KZ", "CN"] {
        let config = net.spoke_config(id);
        let data = format!("moved-spoke-{id}-data");
        let new_config = moved_config(&config, from, to, &data);
        let old_store = net.path().join(format!("spoke-{id}-data")).join("store");
        let before = state(&binaries().spoke, &config, &old_store).await;
        let out = migrate(&binaries().spoke, &config, &new_config).await;
        assert!(out.status.success(), "{id}: {}", text(&out));
        // The move checked the copy whole: every record, every payload against its checksums.
        assert!(
            text(&out).contains("store check passed"),
            "{id}: {}",
            text(&out)
        );
        assert_eq!(engine_of(&net.path().join(&data).join("store")), to);
        assert!(
            state(&binaries().spoke, &config, &old_store).await == before,
            "{id}: the old store is untouched"
        );
        let moved = net.path().join(&data).join("store");
        assert_eq!(
            state(&binaries().spoke, &new_config, &moved).await.0,
            before.0
        );
        let out = migrate(&binaries().spoke, &config, &new_config).await;
        assert!(!out.status.success(), "{id}: a second move is refused");
    }

    // The network goes on from the moved stores, on the other engine.
    swap_in(&hub_data, &moved_hub);
    for id in ["KZ", "CN"] {
        swap_in(
            &net.path().join(format!("spoke-{id}-data")),
            &net.path().join(format!("moved-spoke-{id}-data")),
        );
    }
    net.store_engine = Some(to);
    net.start_hub().await;
    let info: serde_json::Value =
        serde_json::from_slice(&net.hub_cli(&["info", "--json"]).await.stdout).unwrap();
    assert_eq!(info["store_engine"], to, "{info}");
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    for id in &sent {
        net.wait_state("KZ", id, "ACKNOWLEDGED").await;
        assert_eq!(
            net.inbox_copies("CN", id).await,
            1,
            "{id} is in CN's inbox once"
        );
    }
    let later = net.send("KZ", "CN", LARGE.0, &sample_path(LARGE.1)).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    net.wait_state("KZ", &later, "ACKNOWLEDGED").await;
    assert!(net.terminate_hub().await, "the hub stops cleanly");
    let out = net.hub_cli(&["log", "verify"]).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_store_moves_into_postgres_with_its_documents() {
    let Some(pg) = caravan_tests::postgres::Postgres::start(
        "a_hub_store_moves_into_postgres_with_its_documents",
    ) else {
        return;
    };
    pg.sql("postgres", "CREATE DATABASE hub");
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let mut delivered = Vec::new();
    for (kind, file) in [LARGE, SMALL] {
        let id = net.send("KZ", "CN", kind, &sample_path(file)).await["message_id"]
            .as_str()
            .unwrap()
            .to_owned();
        net.wait_state("KZ", &id, "ACKNOWLEDGED").await;
        delivered.push(id);
    }
    // A scorecard entry, signed and logged by the hub.
    let operator = caravan_hub::operator::Operator::connect(&net.admin_config()).unwrap();
    let assessed = operator
        .admin()
        .record_scorecard_entry(v1::RecordScorecardEntryRequest {
            kind: v1::ScorecardEntryKind::Assessment as i32,
            round: "2026-H2".into(),
            country: "KZ".into(),
            kpi: "legal-coverage".into(),
            score: 4,
            note: "the law on electronic documents and signatures".into(),
            assessor: "CAREC secretariat".into(),
            assessed_on: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    // One more waits at the hub for CN, which is away.
    assert!(net.terminate_spoke("CN").await);
    let (kind, file) = LARGE;
    let waiting = net.send("KZ", "CN", kind, &sample_path(file)).await["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(net.terminate_spoke("KZ").await);
    assert!(net.terminate_hub().await, "the hub stops cleanly");

    let hub_config = net.hub_config();
    let old = std::fs::read_to_string(&hub_config).unwrap();
    let new_hub_config = hub_config.with_file_name("hub-postgres.toml");
    std::fs::write(
        &new_hub_config,
        format!(
            "store_engine = \"postgres\"\npostgres_url = \"{}\"\n{}",
            pg.url("hub"),
            old.lines()
                .filter(|l| !l.starts_with("store_engine"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .unwrap();
    let out = migrate(&binaries().hub, &hub_config, &new_hub_config).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("into the database"), "{}", text(&out));
    assert!(text(&out).contains("3 messages"), "{}", text(&out));
    let out = tokio::process::Command::new(&binaries().hub)
        .args(["log", "verify", "--config"])
        .arg(&new_hub_config)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the log matches every signed tree head"),
        "{}",
        text(&out)
    );
    // A database that holds a store is refused, and left as it is.
    let count = pg.sql("hub", "SELECT count(*) FROM log_entries");
    let out = migrate(&binaries().hub, &hub_config, &new_hub_config).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already holds"), "{}", text(&out));
    assert_eq!(pg.sql("hub", "SELECT count(*) FROM log_entries"), count);
    // The scorecard entry moved as it was recorded: its JSON and the hub's signature.
    assert_eq!(pg.sql("hub", "SELECT count(*) FROM scorecard_entries"), "1");
    assert_eq!(
        pg.sql(
            "hub",
            "SELECT encode(entry_json, 'hex') || ' ' || encode(signature, 'hex') || ' ' || log_index FROM scorecard_entries"
        ),
        format!(
            "{} {} {}",
            hex(&assessed.entry_json),
            hex(&assessed.signature.as_ref().unwrap().signature),
            assessed.log_index
        )
    );

    // The hub runs on the database: the waiting document reaches CN, and the earlier ones
    // keep their state.
    net.postgres_url = Some(pg.url("hub"));
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    net.wait_inbox("CN", &waiting).await;
    net.wait_state("KZ", &waiting, "ACKNOWLEDGED").await;
    for id in &delivered {
        assert_eq!(net.inbox_copies("CN", id).await, 1, "not delivered again");
    }
    // And the hub answers it from the database as it answered it when recorded.
    let listed = caravan_hub::operator::Operator::connect(&net.admin_config())
        .unwrap()
        .admin()
        .list_scorecard_entries(v1::ListScorecardEntriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(listed, vec![assessed]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
