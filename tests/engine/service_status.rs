//! `sluice status` and the admin server's `/status` agree with the checkpoint table, on MariaDB
//! and SQLite. The checkpoint is put into every state through the storage layer's own functions
//! (plan, lease, complete, fail, split, runs), and the expectations are computed from the rows
//! the storage layer reads back, not from the status code under test.
use crate::common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::db::TestDb;
use common::scrape::get_json;
use serde_json::Value;
use sluice::admin::{self, AdminState, RunInfo};
use sluice::metrics::Metrics;
use sluice::status::DatabaseCheckpoint;
use sluice::storage::checkpoint::{self, PartitionCompletion};
use sluice::storage::{Connection, DatabaseUrl, Dataset, NewPartition, PartitionStatus};

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 0, 0, 0).unwrap()
}

fn lease(conn: &mut Connection, id: i64, now: DateTime<Utc>) -> String {
    checkpoint::lease_partition(conn, id, "test", Duration::from_secs(60), now)
        .unwrap()
        .expect("lease")
}

/// Puts the checkpoint in every interesting state; returns the split parent's id.
fn populate(conn: &mut Connection) -> i64 {
    let now = day(10);
    let mut wanted: Vec<NewPartition> = (1..=4)
        .map(|d| NewPartition {
            dataset: Dataset::Conversations,
            range_start: day(d),
            range_end: day(d + 1),
        })
        .collect();
    wanted.extend((1..=2).map(|d| NewPartition {
        dataset: Dataset::Users,
        range_start: day(d),
        range_end: day(d + 1),
    }));
    let rows = checkpoint::plan_partitions(conn, &wanted, now).unwrap();
    let id = |ds: Dataset, d: u32| {
        rows.iter()
            .find(|r| r.dataset == ds && r.range_start == day(d))
            .unwrap()
            .id
    };
    let complete = |conn: &mut Connection, id: i64, hits: i64, received: i64| {
        let t = lease(conn, id, now);
        let done = PartitionCompletion {
            total_hits: hits,
            received,
            verified: hits == received,
            is_final: true,
            settled: true,
        };
        assert!(checkpoint::complete_partition(conn, id, &t, &done, now).unwrap());
    };
    complete(conn, id(Dataset::Conversations, 1), 120, 120);
    complete(conn, id(Dataset::Conversations, 2), 100, 98);
    let t = lease(conn, id(Dataset::Conversations, 3), now);
    checkpoint::fail_partition(
        conn,
        id(Dataset::Conversations, 3),
        &t,
        "HTTP 400 bad.request: interval too long",
        now,
    )
    .unwrap();
    let parent = id(Dataset::Conversations, 4);
    let t = lease(conn, parent, now);
    let children = checkpoint::split_partition(
        conn,
        parent,
        &t,
        &[
            (day(4), day(4) + chrono::Duration::hours(12)),
            (day(4) + chrono::Duration::hours(12), day(5)),
        ],
        now,
    )
    .unwrap();
    complete(conn, children[0].id, 7, 7);
    complete(conn, id(Dataset::Users, 1), 40, 40);
    let run = checkpoint::start_run(conn, "backfill", Some((day(1), day(5))), day(9)).unwrap();
    checkpoint::end_run(conn, run, 321, 4, 5000, day(9) + chrono::Duration::hours(1)).unwrap();
    let second = checkpoint::start_run(conn, "run", None, now).unwrap();
    assert!(second > run);
    parent
}

/// Counts by (dataset, status) and the failed/unverified ids, read through the storage layer.
fn expected(
    conn: &mut Connection,
    split_parent: i64,
) -> (BTreeMap<(String, String), i64>, Vec<i64>) {
    let mut rows = checkpoint::load_partitions(
        conn,
        &[Dataset::Conversations, Dataset::Users],
        day(1),
        day(30),
    )
    .unwrap();
    rows.push(
        checkpoint::get_partition(conn, split_parent)
            .unwrap()
            .unwrap(),
    );
    let mut counts = BTreeMap::new();
    let mut problems = Vec::new();
    for r in &rows {
        *counts
            .entry((
                r.dataset.as_str().to_string(),
                r.status.as_str().to_string(),
            ))
            .or_insert(0) += 1;
        if matches!(
            r.status,
            PartitionStatus::Failed | PartitionStatus::Unverified
        ) {
            problems.push(r.id);
        }
    }
    problems.sort();
    (counts, problems)
}

fn counts_of(report: &Value) -> BTreeMap<(String, String), i64> {
    report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    c["dataset"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                ),
                c["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn problem_ids(report: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

fn database_url_string(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Mysql(u) => u.clone(),
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
    }
}

fn sluice_status(url: &DatabaseUrl, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["status", "--format", format])
        .env("DATABASE_URL", database_url_string(url))
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run sluice status");
    assert!(
        out.status.success(),
        "sluice status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cli_and_admin_status_agree_with_the_checkpoint_table() {
    for db in TestDb::both() {
        let backend = db.backend();
        let mut conn = db.connect();
        let parent = populate(&mut conn);
        let (counts, problems) = expected(&mut conn, parent);
        assert_eq!(problems.len(), 2, "{backend:?}: one failed, one unverified");

        // The command line, JSON.
        let cli: Value = serde_json::from_str(&sluice_status(&db.url, "json")).unwrap();
        assert_eq!(counts_of(&cli), counts, "{backend:?}: sluice status counts");
        assert_eq!(problem_ids(&cli), problems, "{backend:?}");
        assert_eq!(
            cli["last_run"]["requests"], 0,
            "{backend:?}: the newest run"
        );
        let failed = cli["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"] == "failed")
            .unwrap();
        assert_eq!(
            failed["last_error"],
            "HTTP 400 bad.request: interval too long"
        );
        let unverified = cli["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"] == "unverified")
            .unwrap();
        assert_eq!(
            (
                unverified["received"].as_i64(),
                unverified["total_hits"].as_i64()
            ),
            (Some(98), Some(100))
        );
        // Per-day completeness: only 1 March is complete for conversations (4 March has a
        // pending half, 2 March is unverified, 3 March failed).
        let complete_days: Vec<(String, String)> = cli["days"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["complete"] == true)
            .map(|d| {
                (
                    d["day"].as_str().unwrap().to_string(),
                    d["dataset"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            complete_days,
            vec![
                ("2026-03-01".to_string(), "conversations".to_string()),
                ("2026-03-01".to_string(), "users".to_string())
            ],
            "{backend:?}"
        );

        // The command line, table: the errors and numbers are there for a person.
        let table = sluice_status(&db.url, "table");
        assert!(
            table.contains("HTTP 400 bad.request: interval too long"),
            "{table}"
        );
        assert!(table.contains("received 98 of totalHits 100"), "{table}");

        // The admin server reads the same rows.
        let state = AdminState::new(
            Arc::new(Metrics::new().unwrap()),
            Arc::new(DatabaseCheckpoint::new(db.url.clone())),
            None,
            Arc::new(RunInfo::new("run", Utc::now())),
        );
        let server = admin::start("127.0.0.1:0".parse().unwrap(), state).unwrap();
        let (code, doc) = get_json(&format!("{}/status", server.base_url()));
        assert_eq!(code, 200);
        let mut from_admin = doc["checkpoint"].clone();
        let mut from_cli = cli.clone();
        from_admin["generated_at"] = Value::Null;
        from_cli["generated_at"] = Value::Null;
        assert_eq!(
            from_admin, from_cli,
            "{backend:?}: /status and sluice status differ"
        );
        server.stop();
    }
}

#[test]
fn status_of_a_missing_sqlite_database_says_so_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("status")
        .env("DATABASE_URL", format!("sqlite://{}", path.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(!path.exists(), "sluice status must not create a database");
}
