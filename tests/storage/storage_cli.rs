//! `sluice migrate` and `sluice report` as a user runs them: the database from `DATABASE_URL`,
//! passwords never shown, reports printed in each format.
use crate::common;

use std::process::Command;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::convs;
use common::db::TestDb;
use sluice::clock::ManualClock;
use sluice::storage::write::{BatchWriter, PageRecords, PageWrite, WriterConfig};

fn sluice(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("sluice runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_creates_the_schema_and_hides_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let (ok, _, err) = sluice(&url, &["migrate"]);
    assert!(ok, "{err}");
    assert!(err.contains("applied migrations"), "{err}");
    let (ok, _, err) = sluice(&url, &["migrate"]);
    assert!(ok && err.contains("up to date"), "{err}");

    let _mariadb = common::db::mariadb_shared();
    let (ok, _, err) = sluice(
        "mysql://root:Sup3rSecret@127.0.0.1:3306/sluice_no_such_db",
        &["migrate"],
    );
    assert!(!ok);
    assert!(!err.contains("Sup3rSecret"), "{err}");
    assert!(err.contains("root:***@127.0.0.1"), "{err}");

    let (ok, _, err) = sluice("postgres://x/y", &["migrate"]);
    assert!(!ok && err.contains("unsupported scheme"), "{err}");
}

#[test]
fn report_prints_every_row_in_each_format() {
    for db in TestDb::both() {
        let now = Utc.with_ymd_and_hms(2024, 3, 2, 12, 0, 0).unwrap();
        let ds = convs::sim_dataset(1200, 2, 15, now);
        let recs = convs::sim_records(&ds, now - Duration::hours(20), now, now);
        let mut conn = db.connect();
        let clock = ManualClock::new(now);
        let mut w = BatchWriter::new(
            db.url.clone(),
            WriterConfig {
                clock: Arc::new(clock),
                ..WriterConfig::default()
            },
        );
        let page = PageWrite {
            partition_id: 0,
            lease_token: String::new(),
            page: PageRecords::Conversations(recs),
            completion: None,
        };
        w.write_pages(&[&page]).into_iter().for_each(|r| r.unwrap());
        let from = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
        let to = from + Duration::days(2);
        let want = sluice::report::queue_daily(&mut conn, from, to).unwrap();
        assert!(want.len() > 5);

        let url = match &db.url {
            sluice::storage::DatabaseUrl::Mysql(u) => u.clone(),
            sluice::storage::DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        };
        let range = ["--from", "2024-03-01", "--to", "2024-03-03"];
        let run = |name: &str, format: &str| {
            let mut args = vec!["report", name];
            args.extend(range);
            args.extend(["--format", format]);
            let (ok, out, err) = sluice(&url, &args);
            assert!(ok, "{name} {format}: {err}");
            out
        };
        let csv = run("queue-daily", "csv");
        assert_eq!(csv.lines().count(), want.len() + 1, "{csv}");
        assert!(csv.starts_with("day,interval_start,queue_id,queue,offered,answered,abandoned"));
        let json: serde_json::Value = serde_json::from_str(&run("queue-daily", "json")).unwrap();
        assert_eq!(json.as_array().unwrap().len(), want.len());
        assert_eq!(json[0]["offered"], serde_json::json!(want[0].offered));
        let table = run("agent-daily", "table");
        assert!(table.starts_with("day"), "{table}");
        let table = run("completeness", "table");
        assert_eq!(table.lines().count(), 2 + 2, "{table}");

        let (ok, _, err) = sluice(&url, &["report", "queue-daily", "--from", "soon"]);
        assert!(!ok && err.contains("invalid --from"), "{err}");
    }
}
