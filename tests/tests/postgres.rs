//! The harness's own PostgreSQL cluster (for the hub's PostgreSQL engine, issue 16): it
//! starts on a temporary folder, answers on its Unix socket only, keeps what was committed
//! through an immediate stop (a crash), and is gone when dropped.

use caravan_common::merkle;
use caravan_hub::store::{
    Acceptance, Backend, Change, Postgres as PgStore, PostgresSettings, StoreError, suite,
};
use caravan_tests::postgres::Postgres as Cluster;

#[test]
fn a_cluster_of_the_tests_own_keeps_what_it_committed_through_a_crash() {
    let Some(pg) =
        Cluster::start("a_cluster_of_the_tests_own_keeps_what_it_committed_through_a_crash")
    else {
        return;
    };
    pg.sql("postgres", "CREATE DATABASE caravan");
    pg.sql(
        "caravan",
        "CREATE TABLE t (id bigint PRIMARY KEY, body text NOT NULL); INSERT INTO t VALUES (1, 'kept')",
    );
    assert_eq!(pg.sql("caravan", "SHOW listen_addresses"), "");
    assert!(
        pg.url("caravan")
            .starts_with("postgresql://postgres@/caravan?host=/")
    );
    pg.stop();
    pg.restart();
    assert_eq!(pg.sql("caravan", "SELECT body FROM t WHERE id = 1"), "kept");
    let socket = pg.socket_dir().to_owned();
    drop(pg);
    assert!(!socket.exists(), "the cluster's folder is removed");
}

/// The hub's store on a database of `pg`'s, made for the test.
fn store(pg: &Cluster, db: &str) -> PgStore {
    pg.sql("postgres", &format!("CREATE DATABASE {db}"));
    open(pg, db)
}

/// Another hub replica's store on the same database.
fn open(pg: &Cluster, db: &str) -> PgStore {
    PgStore::open(PostgresSettings {
        url: pg.url(db),
        password: None,
        ca_file: None,
        pool_size: 4,
    })
    .unwrap()
}

#[test]
fn the_postgres_engine_keeps_every_rule_of_the_store() {
    let Some(pg) = Cluster::start("the_postgres_engine_keeps_every_rule_of_the_store") else {
        return;
    };
    suite::exchange(&store(&pg, "exchange"));
    suite::records(&store(&pg, "records"));
    suite::many(&store(&pg, "many"));
    suite::scorecard(&store(&pg, "scorecard"));
    // The schema is versioned: a second replica opening the database migrates nothing.
    let _replica = open(&pg, "records");
    assert_eq!(
        pg.sql(
            "records",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM caravan_schema"
        ),
        "1,2",
        "0001_initial and 0002_scorecard, each once"
    );
}

#[test]
fn a_batch_is_one_transaction_committed_by_its_flush() {
    let Some(pg) = Cluster::start("a_batch_is_one_transaction_committed_by_its_flush") else {
        return;
    };
    let b = store(&pg, "batch");
    let (first, second) = (
        suite::incoming("KZ", "CN", b"h1"),
        suite::incoming("UZ", "CN", b"h2"),
    );
    // Two writes and a flush in one batch: both committed by the flush, and the log size the
    // writer signs a head over (read inside the batch) covers both.
    let mut size_in_batch = 0;
    b.batch(&mut || {
        suite::accept(&b, &first);
        suite::accept(&b, &second);
        size_in_batch = b.log_size().unwrap();
        b.flush().unwrap();
    })
    .unwrap();
    assert_eq!(size_in_batch, 2);
    assert_eq!(pg.sql("batch", "SELECT count(*) FROM messages"), "2");
    assert_eq!(pg.sql("batch", "SELECT log_size FROM counters"), "2");

    // A statement the server refuses fails the whole batch: nothing of it is kept, and the
    // writes before it are answered as failed too.
    let third = suite::incoming("TJ", "CN", b"h3");
    let outcome = b.batch(&mut || {
        suite::accept(&b, &third);
        let nul = caravan_hub::store::CertificateRecord {
            serial: "0a\0".into(),
            ..Default::default()
        };
        assert!(
            b.record_certificate(&nul).is_err(),
            "text with a NUL byte is refused"
        );
        assert!(b.flush().is_err(), "the batch is not committed");
    });
    assert!(outcome.is_err());
    assert_eq!(
        pg.sql("batch", "SELECT count(*) FROM messages WHERE sender = 'TJ'"),
        "0"
    );
    assert_eq!(pg.sql("batch", "SELECT log_size FROM counters"), "2");
    // The next batch starts clean.
    b.batch(&mut || {
        suite::accept(&b, &third);
        b.flush().unwrap();
    })
    .unwrap();
    assert_eq!(pg.sql("batch", "SELECT log_size FROM counters"), "3");
}

#[test]
fn replicas_share_one_gap_free_order_and_tell_each_other() {
    let Some(pg) = Cluster::start("replicas_share_one_gap_free_order_and_tell_each_other") else {
        return;
    };
    let a = store(&pg, "replicas");
    let b = open(&pg, "replicas");
    let mut changes = b.changes().expect("replicas hear of each other");
    // Two writers at once, one per replica, each in batches as the hub's writer makes them.
    std::thread::scope(|scope| {
        for (replica, sender) in [(&a, "KZ"), (&b, "UZ")] {
            scope.spawn(move || {
                for round in 0..20 {
                    replica
                        .batch(&mut || {
                            for n in 0..5 {
                                let header = format!("{sender}-{round}-{n}");
                                let m = suite::incoming(sender, "CN", header.as_bytes());
                                assert!(matches!(
                                    suite::accept(replica, &m),
                                    Acceptance::Accepted { .. }
                                ));
                            }
                            replica.flush().unwrap();
                        })
                        .unwrap();
                }
            });
        }
    });
    // Sequences and log indexes: 1..=200, no gaps, no repeats.
    assert_eq!(
        pg.sql(
            "replicas",
            "SELECT count(*), min(sequence), max(sequence), count(DISTINCT log_index) FROM messages"
        ),
        "200|1|200|200"
    );
    let pending = a.pending(suite::pid("CN"), 0, 1000).unwrap();
    let sequences: Vec<u64> = pending.iter().map(|p| p.sequence).collect();
    assert_eq!(sequences, (1..=200).collect::<Vec<u64>>());
    // The Merkle nodes both replicas appended make one tree: every root recomputes.
    let entries = b.log_entries(1, 1000).unwrap();
    let leaves: Vec<merkle::Hash> = entries.iter().map(|(_, e)| merkle::leaf_hash(e)).collect();
    struct Stored<'a>(&'a PgStore);
    impl merkle::Nodes for Stored<'_> {
        type Error = StoreError;
        fn perfect(&self, level: u32, index: u64) -> Result<merkle::Hash, StoreError> {
            self.0.log_node(level, index)
        }
    }
    for size in [1, 2, 3, 64, 99, 100, 101, 200] {
        assert_eq!(
            merkle::root_of(&Stored(&a), size).unwrap(),
            merkle::root(&leaves[..size as usize])
        );
    }
    // Replica B heard of the documents replica A accepted for CN, and of a state change
    // replica A recorded for one of KZ's (an acceptance adds nothing to its sender's status
    // stream: the sender has it in its answer).
    let kz = pending
        .iter()
        .find(|p| p.sender == suite::pid("KZ"))
        .expect("a document of KZ's")
        .sequence;
    assert!(
        a.mark_delivered(kz, caravan_common::Timestamp::now())
            .unwrap()
    );
    let wanted = [
        Change::Queue(suite::pid("CN")),
        Change::Status(suite::pid("KZ")),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut heard = Vec::new();
    while std::time::Instant::now() < deadline {
        match changes.try_recv() {
            Ok(change) => heard.push(change),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                if wanted.iter().all(|w| heard.contains(w)) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        heard.contains(&Change::Queue(suite::pid("CN"))),
        "{heard:?}"
    );
    assert!(
        heard.contains(&Change::Status(suite::pid("KZ"))),
        "{heard:?}"
    );

    // Trust-list versions only go up: a replica that built on an older list loses.
    let anchor = caravan_common::signing::SigningKey::generate();
    let entry = caravan_hub::store::LogEntry::default();
    a.save_registry(&suite::registry_record(3, &anchor), &entry)
        .unwrap();
    assert!(matches!(
        b.save_registry(&suite::registry_record(3, &anchor), &entry),
        Err(StoreError::Stale(_))
    ));
    b.save_registry(&suite::registry_record(4, &anchor), &entry)
        .unwrap();
}

#[test]
fn a_database_that_goes_away_faults_the_store_until_it_returns() {
    let Some(pg) = Cluster::start("a_database_that_goes_away_faults_the_store_until_it_returns")
    else {
        return;
    };
    let b = store(&pg, "faults");
    let health = b.health().unwrap();
    suite::accept(&b, &suite::incoming("KZ", "CN", b"before"));
    pg.stop();
    let refused = b.accept(&suite::incoming("KZ", "CN", b"during"), &suite::receipt_for);
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(health.fault().is_some());
    // Refused at once while faulted, without waiting on the database.
    assert!(matches!(
        b.accept(&suite::incoming("KZ", "CN", b"again"), &suite::receipt_for),
        Err(StoreError::Unavailable(_))
    ));
    pg.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while health.fault().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store recovers by itself"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(health.condition().generation >= 1);
    assert!(matches!(
        suite::accept(&b, &suite::incoming("KZ", "CN", b"after")),
        Acceptance::Accepted { sequence: 2, .. }
    ));
}
