//! The harness's own PostgreSQL cluster (for the hub's PostgreSQL engine, issue 16): it
//! starts on a temporary folder, answers on its Unix socket only, keeps what was committed
//! through an immediate stop (a crash), and is gone when dropped.

use caravan_tests::postgres::Postgres;

#[test]
fn a_cluster_of_the_tests_own_keeps_what_it_committed_through_a_crash() {
    let Some(pg) =
        Postgres::start("a_cluster_of_the_tests_own_keeps_what_it_committed_through_a_crash")
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
