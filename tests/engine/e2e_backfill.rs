//! End to end over HTTP: `sluice::sim` → the engine (RateLimiter, Coordinator, Fetchers,
//! Writer) → MariaDB or SQLite; the stored data is checked against the simulator's ground
//! truth (ids, child counts, finality, user records, content digests) and with raw SQL.
use crate::common;

use common::db::TestDb;
use common::engine::*;
use common::sim::{small_config, start};
use sluice::genesys::model::Interval;

fn backfill_matches_truth(db: TestDb) {
    let sim = start(small_config());
    let range = two_days(&sim);
    let cfg = config(&sim, &db, &[]);
    let report = backfill(&cfg, backfill_opts(&sim, range.start, range.end));
    assert!(report.complete(), "{report:?}");
    // 2 days × 2 datasets, one partition each (400 a day is far from busy).
    assert_eq!(report.summary.done, 4, "{report:?}");
    assert_matches_truth(&sim, &db, range, true);
    let (_, _, orphans) = raw_counts(&db);
    assert_eq!(orphans, 0, "segments without their conversation");
    assert!(partitions(&db).iter().all(|p| p.3 == "done"));
}

#[test]
fn backfill_matches_ground_truth_in_sqlite() {
    backfill_matches_truth(TestDb::sqlite());
}

#[test]
fn backfill_matches_ground_truth_in_mariadb() {
    backfill_matches_truth(TestDb::mysql());
}

#[test]
fn a_second_backfill_of_the_same_range_fetches_nothing_again() {
    let sim = start(small_config());
    let db = TestDb::sqlite();
    let range = two_days(&sim);
    let cfg = config(&sim, &db, &[]);
    assert!(backfill(&cfg, backfill_opts(&sim, range.start, range.end)).complete());
    let queries = |sim| {
        stat(sim, "/requests/byEndpoint/conversations.query")
            + stat(sim, "/requests/byEndpoint/users.query")
    };
    let before = queries(&sim);
    assert!(before > 0);
    let again = backfill(&cfg, backfill_opts(&sim, range.start, range.end));
    assert!(again.complete(), "{again:?}");
    assert_eq!(again.summary.done, 0, "done partitions were fetched again");
    assert_eq!(
        queries(&sim),
        before,
        "queries were sent for data already stored"
    );
    assert_matches_truth(&sim, &db, range, true);
}

#[test]
fn a_range_past_the_watermark_stops_there_and_says_so() {
    let sim = start(small_config());
    let db = TestDb::sqlite();
    // The test clock is 12:00: the watermark is 08:00, so the last day is cut there.
    let today = sluice::partition::day_start(sim.now());
    let range = Interval::new(today - chrono::Duration::days(1), sim.now());
    let cfg = config(&sim, &db, &[("SLUICE_DATASETS", "conversations")]);
    let report = backfill(&cfg, backfill_opts(&sim, range.start, range.end));
    assert!(report.complete(), "{report:?}");
    let wm = sim.now() - chrono::Duration::hours(4);
    assert_eq!(report.not_final_yet, Some(Interval::new(wm, range.end)));
    assert_matches_truth(&sim, &db, Interval::new(range.start, today), false);
    // Nothing that started after the watermark is stored.
    let late = stored(&db, Interval::new(wm, range.end));
    assert!(
        late.conversations.is_empty(),
        "{} stored after the watermark",
        late.conversations.len()
    );
}
