//! Names in reports: the directory dataset synced from the simulator through the engine, on
//! MariaDB and SQLite. Every id in the reports has its name; a queue renamed at the simulator's
//! known time shows its new name; a deleted user's name stays; an entity that disappears from
//! the API keeps its last name and the time it was last seen.
use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::db::TestDb;
use common::engine::{backfill, backfill_opts, config, two_days};
use common::limiter_sim::{client, limiter_for};
use common::sim::{small_config, start};
use diesel::RunQueryDsl;
use sluice::report::{self, Interval, ReportSpec};
use sluice::sim::directory::{changes_at, deleted_user, RENAMED_QUEUE};
use sluice::storage::directory::{upsert, DirectoryRow, DirectoryTable};
use sluice::storage::models::{db_time, utc};

#[derive(diesel::QueryableByName)]
struct Seen {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    state: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    last_seen_at: chrono::NaiveDateTime,
}

fn row(db: &TestDb, table: &str, id: &str) -> Seen {
    let mut conn = db.connect();
    let state = if table == "users" { "state" } else { "NULL" };
    let sql = format!("SELECT name, {state} AS state, last_seen_at FROM {table} WHERE id = '{id}'");
    let mut rows: Vec<Seen> =
        sluice::dispatch!(&mut conn, |c| diesel::sql_query(&sql).load(c)).expect("read");
    rows.pop().expect("the entity has a row")
}

/// One directory refresh at `at` on the simulator's clock, outside the engine.
fn refresh_at(sim: &sluice::sim::SimHandle, db: &TestDb, at: DateTime<Utc>) {
    sim.set_now(at);
    let url = db.url.clone();
    actix_rt::System::new().block_on(async {
        let limiter = limiter_for(1000, 60, 10);
        let c = client(sim, &limiter, 3);
        let s = sluice::directory::refresh(&c, &url, at)
            .await
            .expect("refresh");
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(s.written.len(), 4);
    });
}

#[test]
fn reports_name_every_id_follow_a_rename_and_keep_a_deleted_users_name() {
    for db in TestDb::both() {
        let sim = start(small_config());
        let now = sim.now();
        let ds = sim.dataset().clone();
        let deleted = deleted_user(&ds)
            .expect("the org has a deleted user")
            .to_string();
        drop(db.connect()); // migrated

        // Before the rename: queue 0 has its old name; the deleted user is listed as such.
        let first = changes_at(&ds) - Duration::hours(1);
        refresh_at(&sim, &db, first);
        let before = row(&db, "users", &deleted);
        assert_eq!(before.state.as_deref(), Some("deleted"));
        let name = before.name.clone().expect("a name");
        assert_eq!(
            row(&db, "queues", &ds.queue_ids()[0]).name.as_deref(),
            Some("Queue 1")
        );
        // A queue the API no longer lists (deleted since that refresh).
        let gone = DirectoryRow {
            id: "gone-queue".into(),
            name: Some("Old Queue".into()),
            raw_json: "{}".into(),
            ..Default::default()
        };
        upsert(&mut db.connect(), DirectoryTable::Queues, &[gone], first).unwrap();

        // The engine's own refresh (directory is on by default), after the rename.
        sim.set_now(now);
        let interval = two_days(&sim);
        let cfg = config(&sim, &db, &[]);
        let r = backfill(&cfg, backfill_opts(&sim, interval.start, interval.end));
        assert!(r.error.is_none(), "{:?}", r.error);

        let after = row(&db, "users", &deleted);
        assert_eq!(after.name.as_deref(), Some(name.as_str()), "name kept");
        assert!(after.last_seen_at > before.last_seen_at, "seen again");
        assert_eq!(
            row(&db, "queues", &ds.queue_ids()[0]).name.as_deref(),
            Some(RENAMED_QUEUE)
        );
        let kept = row(&db, "queues", "gone-queue");
        assert_eq!(kept.name.as_deref(), Some("Old Queue"));
        assert_eq!(
            utc(kept.last_seen_at),
            utc(db_time(first)),
            "an entity no longer listed keeps the time it was last seen"
        );

        let spec = ReportSpec::utc_days(interval.start, interval.end);
        let mut conn = db.connect();
        let queues = report::queue_report(&mut conn, &spec).unwrap();
        assert!(queues.len() >= 12);
        for r in &queues {
            assert_ne!(r.queue, r.queue_id, "queue {} has a name", r.queue_id);
        }
        let renamed = &ds.queue_ids()[0];
        assert!(queues
            .iter()
            .filter(|r| &r.queue_id == renamed)
            .all(|r| r.queue == RENAMED_QUEUE));
        let agents = report::agent_report(&mut conn, &spec).unwrap();
        assert!(agents.iter().all(|r| r.agent != r.user_id));
        assert!(
            agents
                .iter()
                .any(|r| r.user_id == deleted && r.agent == name),
            "the deleted user's work is shown under its name"
        );
        let wrapups = report::wrapup_report(&mut conn, &spec).unwrap();
        assert!(!wrapups.is_empty());
        assert!(wrapups
            .iter()
            .all(|r| r.queue != r.queue_id && r.wrap_up != r.wrap_up_code));
        let presence = report::presence_report(&mut conn, &spec, now).unwrap();
        assert!(!presence.is_empty());
        assert!(presence.iter().all(|r| r.agent != r.user_id));

        // Filters by name (any case) or id, repeatable.
        let only = |queues: Vec<&str>, agents: Vec<&str>| ReportSpec {
            queues: queues.into_iter().map(String::from).collect(),
            agents: agents.into_iter().map(String::from).collect(),
            ..ReportSpec::utc_days(interval.start, interval.end)
        };
        let got = report::queue_report(
            &mut conn,
            &only(vec!["priority CARE", &ds.queue_ids()[1]], vec![]),
        )
        .unwrap();
        let ids: std::collections::BTreeSet<_> = got.iter().map(|r| r.queue_id.clone()).collect();
        assert_eq!(
            ids,
            [ds.queue_ids()[0].clone(), ds.queue_ids()[1].clone()].into()
        );
        let got = report::agent_report(&mut conn, &only(vec![], vec![&name])).unwrap();
        assert!(!got.is_empty() && got.iter().all(|r| r.user_id == deleted));
        let got = report::presence_report(&mut conn, &only(vec![], vec![&deleted]), now).unwrap();
        assert!(!got.is_empty() && got.iter().all(|r| r.agent == name));

        // Wrap-up shares of a queue and interval add up to one.
        let mut shares: std::collections::BTreeMap<_, f64> = Default::default();
        for r in &wrapups {
            *shares.entry((r.day, r.queue_id.clone())).or_default() += r.share;
        }
        assert!(shares.values().all(|s| (s - 1.0).abs() < 1e-9));

        // An interval report names the same queues.
        let spec15 = ReportSpec {
            interval: Interval::H1,
            ..ReportSpec::utc_days(interval.start, interval.end)
        };
        let hourly = report::queue_report(&mut conn, &spec15).unwrap();
        assert!(hourly.iter().all(|r| r.queue != r.queue_id));
        sim.stop();
    }
}
