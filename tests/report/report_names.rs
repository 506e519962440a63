//! Names in reports: the directory dataset synced from the simulator through the engine, on
//! MariaDB and SQLite. Every id in the reports has its name; a queue renamed at the simulator's
//! known time shows its new name; a deleted user that then disappears from the listing keeps
//! its name and the time it was last seen.
use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::db::TestDb;
use common::engine::{backfill, backfill_opts, config, two_days};
use common::limiter_sim::{client, limiter_for};
use common::sim::{small_config, start};
use diesel::RunQueryDsl;
use sluice::report::{self, Interval, ReportSpec};
use sluice::sim::directory::{changes_at, purged_user, RENAMED_QUEUE};

#[derive(diesel::QueryableByName)]
struct Seen {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    state: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    last_seen_at: chrono::NaiveDateTime,
}

fn user_row(db: &TestDb, id: &str) -> Seen {
    let mut conn = db.connect();
    let sql = format!("SELECT name, state, last_seen_at FROM users WHERE id = '{id}'");
    let mut rows: Vec<Seen> =
        sluice::dispatch!(&mut conn, |c| diesel::sql_query(&sql).load(c)).expect("read users");
    rows.pop().expect("the user has a row")
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
        let purged = purged_user(&ds)
            .expect("the org has a deleted user")
            .to_string();

        // Before the changes: queue 0 has its old name, the deleted user is still listed.
        let first = changes_at(&ds) - Duration::hours(1);
        refresh_at(&sim, &db, first);
        let before = user_row(&db, &purged);
        assert_eq!(before.state.as_deref(), Some("deleted"));
        let name = before.name.clone().expect("a name");

        // The engine's own refresh (directory is on by default), after the changes.
        sim.set_now(now);
        let interval = two_days(&sim);
        let cfg = config(&sim, &db, &[]);
        let r = backfill(&cfg, backfill_opts(&sim, interval.start, interval.end));
        assert!(r.error.is_none(), "{:?}", r.error);

        let after = user_row(&db, &purged);
        assert_eq!(after.name.as_deref(), Some(name.as_str()), "name kept");
        assert_eq!(
            sluice::storage::models::utc(after.last_seen_at),
            sluice::storage::models::utc(sluice::storage::models::db_time(first)),
            "a user no longer listed keeps the time it was last seen"
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
                .any(|r| r.user_id == purged && r.agent == name),
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
        assert!(!got.is_empty() && got.iter().all(|r| r.user_id == purged));
        let got = report::presence_report(&mut conn, &only(vec![], vec![&purged]), now).unwrap();
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
