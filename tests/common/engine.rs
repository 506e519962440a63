//! Running the real engine in-process against a simulator over HTTP, and checking what it
//! stored against the simulator's ground truth (`/__sim/expected`) and with raw SQL.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use sluice::actors::coordinator::{RunKind, RunReport};
use sluice::clock::ManualClock;
use sluice::config::{env_from, Config};
use sluice::demo::{compare, fetch_expected, Comparison, Expected, StoredSnapshot};
use sluice::engine::{self, EngineHandle, EngineOptions};
use sluice::genesys::model::Interval;
use sluice::sim::{SimHandle, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use sluice::storage::DatabaseUrl;

use super::db::TestDb;

pub fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

/// Engine configuration for `sim` and `db`: the simulator's default client, fast job polling,
/// short leases. `extra` adds environment settings (e.g. `SLUICE_RATE_PER_MINUTE`).
pub fn config(sim: &SimHandle, db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let url = db_url_string(&db.url);
    let base = sim.base_url();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("GENESYS_API_URL", base.as_str()),
        ("GENESYS_CLIENT_ID", DEFAULT_CLIENT_ID),
        ("GENESYS_CLIENT_SECRET", DEFAULT_CLIENT_SECRET),
        ("DATABASE_URL", url.as_str()),
        ("SLUICE_LEASE_SECS", "6"),
    ];
    pairs.extend_from_slice(extra);
    let env = env_from(&pairs);
    let mut cfg = Config::default();
    cfg.apply_env(&env).expect("test configuration is valid");
    cfg.fetch.job_poll_secs = 0.1;
    cfg.fetch.job_poll_max_secs = 0.5;
    cfg
}

/// `DATABASE_URL` text for a test database.
pub fn db_url_string(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Mysql(u) => u.clone(),
    }
}

/// Options for a backfill of `[from, to)` on the simulator's clock.
pub fn backfill_opts(sim: &SimHandle, from: DateTime<Utc>, to: DateTime<Utc>) -> EngineOptions {
    EngineOptions::new(
        RunKind::Backfill { from, to },
        Arc::new(ManualClock::new(sim.now())),
    )
}

/// Runs the engine in a fresh actix System on this thread until `drive` returns (it gets the
/// handle; `finished` waits for the end of the run).
pub fn with_engine<T>(
    cfg: &Config,
    opts: EngineOptions,
    drive: impl AsyncFnOnce(&EngineHandle) -> T,
) -> T {
    let system = actix_rt::System::new();
    system.block_on(async {
        let handle = engine::start(cfg, opts).await.expect("engine starts");
        drive(&handle).await
    })
}

/// Runs a backfill to its end.
pub fn backfill(cfg: &Config, opts: EngineOptions) -> RunReport {
    with_engine(cfg, opts, async |h| h.finished().await)
}

/// The simulator's ground truth for `interval`.
pub fn expected(sim: &SimHandle, interval: Interval) -> Expected {
    let base = sim.base_url();
    std::thread::spawn(move || {
        actix_rt::System::new()
            .block_on(fetch_expected(&base, interval))
            .expect("ground truth")
    })
    .join()
    .expect("ground-truth thread")
}

/// What the database holds for `interval` (read off any runtime: MySQL needs that).
pub fn stored(db: &TestDb, interval: Interval) -> StoredSnapshot {
    let url = db.url.clone();
    std::thread::spawn(move || StoredSnapshot::load(&url, interval).expect("read the database"))
        .join()
        .expect("snapshot thread")
}

/// Stored against expected for `interval`.
pub fn check(sim: &SimHandle, db: &TestDb, interval: Interval, users: bool) -> Comparison {
    let e = expected(sim, interval);
    let s = stored(db, interval);
    compare(&e, &s, users)
}

/// Asserts the stored data equals the ground truth (ids, counts, finality, then content by
/// digest), naming what differs.
pub fn assert_matches_truth(sim: &SimHandle, db: &TestDb, interval: Interval, users: bool) {
    let c = check(sim, db, interval, users);
    assert!(
        c.expected > 0,
        "the simulator has no conversations in {interval}"
    );
    assert!(
        if users {
            c.matches()
        } else {
            c.conversations_match()
        },
        "stored data differs from the ground truth for {interval}: {}",
        c.problems()
    );
    super::content::assert_content_matches(sim, db, interval, users);
}

/// Raw SQL counts (independent of the comparison code): conversation rows, distinct ids, and
/// child rows whose conversation is missing.
pub fn raw_counts(db: &TestDb) -> (i64, i64, i64) {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let url = db.url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).expect("connect");
        let q = |c: &mut sluice::storage::Connection, sql: &str| -> i64 {
            let v: Vec<N> = sluice::dispatch!(c, |x| diesel::sql_query(sql).load(x))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            v[0].n
        };
        let rows = q(
            &mut c,
            "SELECT CAST(COUNT(*) AS SIGNED) AS n FROM conversations",
        );
        let distinct = q(
            &mut c,
            "SELECT CAST(COUNT(DISTINCT conversation_id) AS SIGNED) AS n FROM conversations",
        );
        let orphans = q(
            &mut c,
            "SELECT CAST(COUNT(*) AS SIGNED) AS n FROM segments s WHERE NOT EXISTS \
             (SELECT 1 FROM conversations c WHERE c.conversation_id = s.conversation_id)",
        );
        (rows, distinct, orphans)
    })
    .join()
    .expect("sql thread")
}

/// A partition as the tests see it: dataset, start, end, status, attempts.
pub type PartitionInfo = (String, DateTime<Utc>, DateTime<Utc>, String, i32);

/// Every partition of the checkpoint (split ones excluded), ordered by start.
pub fn partitions(db: &TestDb) -> Vec<PartitionInfo> {
    let url = db.url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).expect("connect");
        let rows = sluice::storage::checkpoint::load_partitions(
            &mut c,
            &[
                sluice::storage::Dataset::Conversations,
                sluice::storage::Dataset::Users,
            ],
            day(2000, 1, 1),
            day(2100, 1, 1),
        )
        .expect("load partitions");
        rows.into_iter()
            .map(|r| {
                (
                    r.dataset.to_string(),
                    r.range_start,
                    r.range_end,
                    r.status.to_string(),
                    r.attempts,
                )
            })
            .collect()
    })
    .join()
    .expect("checkpoint thread")
}

/// A number from `/__sim/stats` (JSON pointer).
pub fn stat(sim: &SimHandle, pointer: &str) -> i64 {
    let v: Value = sim.stats();
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Two full days before the test clock's watermark day.
pub fn two_days(sim: &SimHandle) -> Interval {
    let today = sluice::partition::day_start(sim.now());
    Interval::new(today - Duration::days(2), today)
}
