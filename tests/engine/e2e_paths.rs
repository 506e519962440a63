//! End to end, the two fetch paths at their limits (issue #13): a busy day taken whole by one
//! job, a day over the paging cap split into the fewest pieces, the pages of one block fetched
//! at once within the concurrency cap, jobs that expire mid-read or FAIL resubmitted, and 429s
//! on job submit waited out. Each runs on SQLite and MariaDB and ends exact against the
//! simulator's ground truth.
use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::Duration;
use common::db::TestDb;
use common::engine::*;
use common::sim::{small_config, start};
use sluice::genesys::model::Interval;
use sluice::sim::{SimConfig, SimHandle};

/// One test per database.
macro_rules! on_both_databases {
    ($case:ident: $sqlite:ident, $mariadb:ident) => {
        #[test]
        fn $sqlite() {
            $case(TestDb::sqlite());
        }
        #[test]
        fn $mariadb() {
            $case(TestDb::mysql());
        }
    };
}

/// The day before yesterday (whole, well behind the watermark and the jobs' availability).
fn old_day(sim: &SimHandle) -> Interval {
    let start = two_days(sim).start;
    Interval::new(start, start + Duration::days(1))
}

fn assert_exact(sim: &SimHandle, db: &TestDb, range: Interval) {
    assert_matches_truth(sim, db, range, false);
    let (rows, distinct, orphans) = raw_counts(db);
    assert_eq!(rows, distinct, "duplicate conversation rows");
    assert_eq!(orphans, 0, "segments without their conversation");
}

fn endpoint(sim: &SimHandle, name: &str) -> i64 {
    stat(sim, &format!("/requests/byEndpoint/{name}"))
}

fn busy_day_taken_whole_by_one_job(db: TestDb) {
    // Far over the synchronous query's paging cap (150 here): the job path is not split.
    let sim = start(SimConfig {
        paging_cap: 150,
        ..small_config()
    });
    let day = old_day(&sim);
    let cfg = config(
        &sim,
        &db,
        &[
            ("SLUICE_DATASETS", "conversations"),
            ("SLUICE_PAGING_CAP", "150"),
        ],
    );
    let report = backfill(&cfg, backfill_opts(&sim, day.start, day.end));
    assert!(report.complete(), "{report:?}");
    assert_exact(&sim, &db, day);
    let parts = partitions(&db);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].1, parts[0].2), (day.start, day.end));
    assert_eq!(endpoint(&sim, "conversations.jobs.submit"), 1);
    // The verification's count: the only synchronous query.
    assert_eq!(endpoint(&sim, "conversations.query"), 1);
}
on_both_databases!(busy_day_taken_whole_by_one_job:
    a_busy_day_is_taken_whole_by_one_job_sqlite, a_busy_day_is_taken_whole_by_one_job_mariadb);

fn day_over_the_cap_split_into_fewest_pieces(db: TestDb) {
    // 400 a day, 300 reachable by paging: two pieces, not 24 hours.
    let sim = start(SimConfig {
        paging_cap: 300,
        ..small_config()
    });
    let day = old_day(&sim);
    let cfg = config(
        &sim,
        &db,
        &[
            ("SLUICE_DATASETS", "conversations"),
            ("SLUICE_MODE", "query"),
            ("SLUICE_PAGING_CAP", "300"),
        ],
    );
    let report = backfill(&cfg, backfill_opts(&sim, day.start, day.end));
    assert!(report.complete(), "{report:?}");
    assert_exact(&sim, &db, day);
    let parts = partitions(&db);
    let noon = day.start + Duration::hours(12);
    let tiles: Vec<_> = parts.iter().map(|p| (p.1, p.2, p.3.as_str())).collect();
    assert_eq!(
        tiles,
        vec![(day.start, noon, "done"), (noon, day.end, "done")],
        "{parts:?}"
    );
    // Page 1 of the day, then each half's pages: 2 or 3 each for ~200, and nothing else.
    let queries = endpoint(&sim, "conversations.query");
    assert!((5..=7).contains(&queries), "{queries} queries");
}
on_both_databases!(day_over_the_cap_split_into_fewest_pieces:
    a_day_over_the_paging_cap_is_split_into_the_fewest_pieces_sqlite,
    a_day_over_the_paging_cap_is_split_into_the_fewest_pieces_mariadb);

fn pages_of_one_block_fetched_at_once(db: TestDb) {
    // Limits on, latency on: 20 pages of one block, one Fetcher, so any concurrency comes from
    // the block's own pages. The engine's cap is 10 − 2 = 8. The rate is high enough that the
    // concurrency cap, not the pacing, is what binds (at 300/min and 50 ms, pacing alone keeps
    // fewer than one request in flight).
    let sim = start(SimConfig {
        per_day: 2000,
        no_limits: false,
        rate_per_minute: 6000,
        latency_ms: Some((40, 60)),
        ..small_config()
    });
    let day = old_day(&sim);
    let cfg = config(
        &sim,
        &db,
        &[
            ("SLUICE_DATASETS", "conversations"),
            ("SLUICE_MODE", "query"),
            ("SLUICE_FETCHERS", "1"),
            ("SLUICE_RATE_PER_MINUTE", "6000"),
        ],
    );
    let report = backfill(&cfg, backfill_opts(&sim, day.start, day.end));
    assert!(report.complete(), "{report:?}");
    assert_exact(&sim, &db, day);
    let peak = stat(&sim, "/peakConcurrency");
    assert!(
        (4..=8).contains(&peak),
        "peak in flight {peak}: not concurrent, or over the cap"
    );
    assert_eq!(stat(&sim, "/concurrencyBreaches"), 0);
    assert_eq!(stat(&sim, "/rateLimited/total"), 0);
    // One block, no split: page 1 and the 19 others.
    assert_eq!(endpoint(&sim, "conversations.query"), 20);
}
on_both_databases!(pages_of_one_block_fetched_at_once:
    pages_of_one_block_are_fetched_at_once_within_the_cap_sqlite,
    pages_of_one_block_are_fetched_at_once_within_the_cap_mariadb);

fn job_expiring_mid_read_resubmitted(db: TestDb) {
    // Results live 2 simulated seconds. Pages of 25 with some latency make the read take a
    // while; after its second page the simulator's clock jumps an hour: the rest is 404.
    let sim = start(SimConfig {
        job_expiry: StdDuration::from_secs(2),
        latency_ms: Some((20, 30)),
        ..small_config()
    });
    let day = old_day(&sim);
    let cfg = config(
        &sim,
        &db,
        &[
            ("SLUICE_DATASETS", "conversations"),
            ("SLUICE_MODE", "jobs"),
            ("SLUICE_JOB_PAGE_SIZE", "25"),
        ],
    );
    let jumped = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if endpoint(&sim, "conversations.jobs.results") >= 2 {
                    sim.set_now(sim.now() + Duration::hours(1));
                    jumped.store(true, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(StdDuration::from_millis(5));
            }
        });
        let r = backfill(&cfg, backfill_opts(&sim, day.start, day.end));
        done.store(true, Ordering::Relaxed);
        r
    });
    assert!(jumped.load(Ordering::Relaxed), "the clock never jumped");
    assert!(report.complete(), "{report:?}");
    assert_exact(&sim, &db, day);
    assert_eq!(
        endpoint(&sim, "conversations.jobs.submit"),
        2,
        "not resubmitted"
    );
    assert!(stat(&sim, "/faults/jobsExpired") > 0);
}
on_both_databases!(job_expiring_mid_read_resubmitted:
    a_job_whose_results_expire_mid_read_is_resubmitted_sqlite,
    a_job_whose_results_expire_mid_read_is_resubmitted_mariadb);

fn failed_jobs_resubmitted(db: TestDb) {
    let sim = start(SimConfig {
        fault_job_failed: 0.5,
        ..small_config()
    });
    let range = two_days(&sim);
    let cfg = config(
        &sim,
        &db,
        &[
            ("SLUICE_DATASETS", "conversations"),
            ("SLUICE_MODE", "jobs"),
            ("SLUICE_JOB_ATTEMPTS", "6"),
        ],
    );
    let report = backfill(&cfg, backfill_opts(&sim, range.start, range.end));
    assert!(report.complete(), "{report:?}");
    assert_exact(&sim, &db, range);
    let failed = stat(&sim, "/faults/jobsFailed");
    assert!(failed > 0, "no job FAILED: the test proved nothing");
    assert_eq!(
        endpoint(&sim, "conversations.jobs.submit"),
        2 + failed,
        "each FAILED job resubmitted once"
    );
}
on_both_databases!(failed_jobs_resubmitted:
    a_job_that_fails_is_resubmitted_sqlite, a_job_that_fails_is_resubmitted_mariadb);

fn job_submit_429_waited_out(db: TestDb) {
    // The org runs one job at a time; the engine would run 4: submits meet 429s.
    let sim = start(SimConfig {
        no_limits: false,
        job_concurrency: 1,
        days: 5,
        ..small_config()
    });
    let today = sluice::plan::day_start(sim.now());
    let range = Interval::new(today - Duration::days(3), today);
    let cfg = config(
        &sim,
        &db,
        &[
            ("SLUICE_DATASETS", "conversations"),
            ("SLUICE_MODE", "jobs"),
        ],
    );
    let report = backfill(&cfg, backfill_opts(&sim, range.start, range.end));
    assert!(report.complete(), "{report:?}");
    assert_exact(&sim, &db, range);
    assert!(
        stat(&sim, "/rateLimited/byCause/jobs") > 0,
        "no submit met a 429: the test proved nothing"
    );
    assert!(partitions(&db).iter().all(|p| p.3 == "done"));
}
on_both_databases!(job_submit_429_waited_out:
    a_429_on_job_submit_is_waited_out_sqlite, a_429_on_job_submit_is_waited_out_mariadb);
