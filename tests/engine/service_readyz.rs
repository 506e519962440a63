//! `/readyz` fails while the database is unreachable and recovers when it is back.
//!
//! The database is a fresh MariaDB database reached through a TCP proxy this test owns
//! (tests/common/proxy.rs): cutting the proxy refuses new connections and drops live ones, which
//! is what a database outage looks like to Sluice, without touching the shared MariaDB.
use crate::common;

use std::sync::Arc;

use chrono::Utc;
use common::db::TestDb;
use common::proxy::TcpProxy;
use common::scrape::{get, get_json};
use sluice::admin::{self, AdminState, RunInfo};
use sluice::metrics::Metrics;
use sluice::status::DatabaseCheckpoint;
use sluice::storage::{connect, run_migrations, DatabaseUrl};

const MARIADB: &str = "127.0.0.1:3306";

/// `db`'s URL with the host replaced by `via`.
fn through(db: &TestDb, via: std::net::SocketAddr) -> DatabaseUrl {
    let DatabaseUrl::Mysql(u) = &db.url else {
        panic!("a MySQL test database")
    };
    let name = u.rsplit('/').next().unwrap();
    DatabaseUrl::parse(&format!("mysql://root@{via}/{name}")).unwrap()
}

#[test]
fn readyz_fails_while_the_database_is_unreachable_and_recovers() {
    let db = TestDb::mysql();
    let proxy = TcpProxy::new(MARIADB.parse().unwrap());
    let url = through(&db, proxy.addr());
    let mut conn = connect(&url).expect("connect through the proxy");
    run_migrations(&mut conn).expect("migrations");
    drop(conn);

    let state = AdminState::new(
        Arc::new(Metrics::new().unwrap()),
        Arc::new(DatabaseCheckpoint::new(url)),
        None,
        Arc::new(RunInfo::new("run", Utc::now())),
    );
    let server = admin::start("127.0.0.1:0".parse().unwrap(), state).unwrap();
    let base = server.base_url();

    let (code, body) = get_json(&format!("{base}/readyz"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ready"], true);

    proxy.stop();
    let (code, body) = get_json(&format!("{base}/readyz"));
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("database unreachable"), "{reasons}");
    // Alive all the same, and /status says why instead of failing.
    assert_eq!(get(&format!("{base}/healthz")).0, 200);
    let (code, status) = get_json(&format!("{base}/status"));
    assert_eq!(code, 200);
    assert!(status["checkpoint"].is_null());
    assert!(status["checkpoint_error"].is_string(), "{status}");
    let (code, text) = get(&format!("{base}/metrics"));
    assert_eq!(code, 200, "/metrics keeps answering without the database");
    common::scrape::Scrape::parse(&text);

    proxy.start();
    let (code, body) = get_json(&format!("{base}/readyz"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["database"], "ok");
    server.stop();
}
