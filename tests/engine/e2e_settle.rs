//! Settle and resync end to end (issue #14), on the manual clock, MariaDB and SQLite: after
//! Genesys's nightly pipeline revises and deletes stored conversations, `sluice run` past
//! `settle_hours` and `sluice resync` both bring the copy back to the truth (content digests,
//! deleted conversations gone); a resync whose re-fetch cannot be verified deletes nothing.
use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::content::{assert_content_matches, content_diff};
use common::db::TestDb;
use common::engine::*;
use common::sim::{small_config, start};
use sluice::actors::coordinator::RunKind;
use sluice::clock::ManualClock;
use sluice::engine::EngineOptions;
use sluice::genesys::model::Interval;
use sluice::sim::pipeline::PipelineRequest;
use sluice::sim::{SimConfig, SimHandle};
use sluice::storage::checkpoint::{PartitionRow, PartitionStatus};
use sluice::storage::Dataset;

/// The ids the simulator holds for `range`.
fn upstream_ids(sim: &SimHandle, range: Interval) -> BTreeSet<String> {
    sim.dataset()
        .conversations_started_in(range)
        .into_iter()
        .map(|c| c.conversation_id)
        .collect()
}

/// Runs the pipeline at `now` over everything that ended 12 h before; returns the ids of
/// `range` it deleted.
fn pipeline(sim: &SimHandle, range: Interval, now: DateTime<Utc>) -> BTreeSet<String> {
    let before = upstream_ids(sim, range);
    let report = sim
        .dataset()
        .run_pipeline(
            PipelineRequest {
                change_fraction: 0.1,
                delete_fraction: 0.05,
                min_age_hours: 12.0,
            },
            now,
            true,
        )
        .expect("pipeline run");
    assert!(report.conversations_changed > 0 && report.conversations_deleted > 0);
    let after = upstream_ids(sim, range);
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert!(
        !deleted.is_empty(),
        "the pipeline deleted nothing of {range}"
    );
    deleted
}

/// The copy is stale: deleted conversations still stored (extra), revised ones different.
fn assert_stale(sim: &SimHandle, db: &TestDb, range: Interval, deleted: &BTreeSet<String>) {
    let (c, _) = content_diff(sim, db, range);
    let extra: BTreeSet<String> = c.extra.iter().cloned().collect();
    assert_eq!(&extra, deleted, "{}", c.summary());
    assert!(!c.different.is_empty(), "{}", c.summary());
}

fn partition_rows(db: &TestDb) -> Vec<PartitionRow> {
    let url = db.url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).expect("connect");
        sluice::storage::checkpoint::load_partitions(
            &mut c,
            &[Dataset::Conversations, Dataset::Users],
            day(2000, 1, 1),
            day(2100, 1, 1),
        )
        .expect("load partitions")
    })
    .join()
    .expect("checkpoint thread")
}

fn in_range(rows: &[PartitionRow], range: Interval) -> Vec<&PartitionRow> {
    rows.iter()
        .filter(|r| r.range_start >= range.start && r.range_end <= range.end)
        .collect()
}

/// Backfill two days (fetched young: not settled), the pipeline 97 h later, then `sluice run`
/// on a clock past settle_hours (96 h): its first round settles the two days.
fn settle_after_pipeline(db: TestDb) {
    let sim = start(small_config());
    let range = two_days(&sim);
    let cfg = config(&sim, &db, &[]);
    assert!(backfill(&cfg, backfill_opts(&sim, range.start, range.end)).complete());
    assert_content_matches(&sim, &db, range, true);
    let young = partition_rows(&db);
    assert!(
        in_range(&young, range)
            .iter()
            .all(|r| r.status == PartitionStatus::Done && !r.is_settled && r.fetched_at.is_some()),
        "{young:?}"
    );

    let later = sim.now() + Duration::hours(97);
    sim.set_now(later);
    let deleted = pipeline(&sim, range, later);
    assert_stale(&sim, &db, range, &deleted);

    let clock = Arc::new(ManualClock::new(later));
    let opts = EngineOptions::new(RunKind::Service { start: range.start }, clock);
    let fetched = |rows: Vec<PartitionRow>| -> Vec<_> {
        in_range(&rows, range)
            .iter()
            .map(|r| (r.id, r.fetched_at))
            .collect()
    };
    let (first, second) = with_engine(&cfg, opts, async |h| {
        let s = h.idle_after(1).await;
        assert!(s.summary.failed.is_empty(), "{s:?}");
        let first = fetched(partition_rows(&db));
        // A second round at the same instant finds nothing left to settle in the range.
        h.catch_up_now();
        let s = h.idle_after(2).await;
        assert!(s.summary.failed.is_empty(), "{s:?}");
        let second = fetched(partition_rows(&db));
        h.shutdown();
        h.finished().await;
        (first, second)
    });
    assert_eq!(first, second, "settled blocks were fetched again");
    let young = fetched(young);
    assert_eq!(young.len(), first.len());
    assert!(
        young
            .iter()
            .zip(&first)
            .all(|(y, f)| y.0 == f.0 && y.1 < f.1),
        "not every block of the range was fetched again: {young:?} then {first:?}"
    );
    assert_content_matches(&sim, &db, range, true);
    let stored = sluice_ids(&db, range);
    assert!(stored.is_disjoint(&deleted), "deleted conversations kept");
    let settled = partition_rows(&db);
    assert!(
        in_range(&settled, range)
            .iter()
            .all(|r| r.status == PartitionStatus::Done && r.is_settled),
        "{settled:?}"
    );
}

/// The conversation ids stored for `range` (raw SQL through the snapshot reader).
fn sluice_ids(db: &TestDb, range: Interval) -> BTreeSet<String> {
    stored(db, range).conversations.keys().cloned().collect()
}

/// Backfill, pipeline, then `sluice resync` of the range right away.
fn resync_after_pipeline(db: TestDb) {
    let sim = start(small_config());
    let range = two_days(&sim);
    let cfg = config(&sim, &db, &[]);
    assert!(backfill(&cfg, backfill_opts(&sim, range.start, range.end)).complete());
    let deleted = pipeline(&sim, range, sim.now());
    assert_stale(&sim, &db, range, &deleted);

    let mut opts = backfill_opts(&sim, range.start, range.end);
    opts.resync = true;
    opts.command = "resync".into();
    let report = backfill(&cfg, opts);
    assert!(report.complete(), "{report:?}");
    assert_content_matches(&sim, &db, range, true);
    assert!(sluice_ids(&db, range).is_disjoint(&deleted));
    let rows = partition_rows(&db);
    assert!(
        in_range(&rows, range).iter().all(|r| r.attempts >= 1),
        "{rows:?}"
    );
}

/// A resync against an API whose totalHits never match: every re-fetch is unverified, and the
/// conversations the pipeline deleted upstream stay stored (nothing deleted on an unverified
/// fetch). The drifting simulator serves the same org (same seed, same pipeline run).
fn unverified_resync_deletes_nothing(db: TestDb) {
    let sim = start(small_config());
    let drifting = start(SimConfig {
        total_hits_drift: 1.0,
        ..small_config()
    });
    let range = two_days(&sim);
    let cfg = config(&sim, &db, &[]);
    assert!(backfill(&cfg, backfill_opts(&sim, range.start, range.end)).complete());
    let deleted = pipeline(&sim, range, sim.now());
    assert_eq!(pipeline(&drifting, range, drifting.now()), deleted);
    let stored_before = sluice_ids(&db, range);

    let cfg = config(&drifting, &db, &[("SLUICE_MODE", "query")]);
    let mut opts = backfill_opts(&drifting, range.start, range.end);
    opts.resync = true;
    let report = backfill(&cfg, opts);
    assert!(
        !report.complete(),
        "a drifting totalHits verified: {report:?}"
    );
    assert!(!report.summary.unverified.is_empty(), "{report:?}");
    let stored_after = sluice_ids(&db, range);
    assert!(
        deleted.is_subset(&stored_after),
        "an unverified re-fetch deleted conversations"
    );
    assert_eq!(stored_before, stored_after);
}

#[test]
fn settle_after_the_pipeline_sqlite() {
    settle_after_pipeline(TestDb::sqlite());
}

#[test]
fn settle_after_the_pipeline_mysql() {
    settle_after_pipeline(TestDb::mysql());
}

#[test]
fn resync_after_the_pipeline_sqlite() {
    resync_after_pipeline(TestDb::sqlite());
}

#[test]
fn resync_after_the_pipeline_mysql() {
    resync_after_pipeline(TestDb::mysql());
}

#[test]
fn unverified_resync_deletes_nothing_sqlite() {
    unverified_resync_deletes_nothing(TestDb::sqlite());
}

#[test]
fn unverified_resync_deletes_nothing_mysql() {
    unverified_resync_deletes_nothing(TestDb::mysql());
}
