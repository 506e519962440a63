//! Content comparison end to end: after a backfill the database equals the simulator's truth
//! record by record (`sluice::digest`), and the comparison sees what counts cannot — a changed
//! metric, a lost conversation, an altered user record, and the drift the nightly analytics
//! pipeline causes upstream (revised and deleted conversations).
use crate::common;

use std::collections::BTreeSet;

use chrono::Duration;
use common::content::content_diff;
use common::db::TestDb;
use common::engine::*;
use common::sim::{small_config, start};
use sluice::sim::pipeline::PipelineRequest;

/// Runs one SQL statement on the test database (off the async runtime).
fn exec(db: &TestDb, sql: &str) {
    use diesel::RunQueryDsl;
    let url = db.url.clone();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).expect("connect");
        sluice::dispatch!(&mut c, |x| diesel::sql_query(&sql).execute(x))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .join()
    .expect("sql thread");
}

#[test]
fn content_digests_catch_changes_that_counts_miss_and_upstream_drift() {
    let sim = start(small_config());
    let db = TestDb::sqlite();
    let range = two_days(&sim);
    let cfg = config(&sim, &db, &[]);
    assert!(backfill(&cfg, backfill_opts(&sim, range.start, range.end)).complete());
    let (c, u) = content_diff(&sim, &db, range);
    assert!(
        c.is_empty() && u.is_empty(),
        "{} / {}",
        c.summary(),
        u.summary()
    );

    // Three conversations: one metric changed, one conversation row lost, and one untouched.
    let ids: Vec<String> = sim
        .dataset()
        .conversations_started_in(range)
        .into_iter()
        .filter(|c| c.participants.len() >= 3)
        .map(|c| c.conversation_id)
        .take(2)
        .collect();
    exec(
        &db,
        &format!(
            "UPDATE session_metrics SET value = value + 1 WHERE conversation_id = '{}' AND name = 'tAcd'",
            ids[0]
        ),
    );
    exec(
        &db,
        &format!(
            "DELETE FROM conversations WHERE conversation_id = '{}'",
            ids[1]
        ),
    );
    exec(
        &db,
        "UPDATE user_routing_status SET routing_status = 'IDLE' WHERE routing_status = 'INTERACTING' \
         AND start_time = (SELECT MIN(start_time) FROM user_routing_status WHERE routing_status = 'INTERACTING')",
    );
    let (c, u) = content_diff(&sim, &db, range);
    assert_eq!(c.different, vec![ids[0].clone()], "{}", c.summary());
    assert_eq!(c.missing, vec![ids[1].clone()], "{}", c.summary());
    assert!(c.extra.is_empty(), "{}", c.summary());
    assert_eq!(u.different.len(), 1, "{}", u.summary());
    assert!(u.different[0].starts_with("routing/"), "{}", u.summary());

    // Upstream drift: the pipeline revises and deletes conversations of the stored days. The
    // copy now holds deleted conversations (extra) and stale ones (different).
    let before: BTreeSet<String> = sim
        .dataset()
        .conversations_started_in(range)
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    let report = sim
        .dataset()
        .run_pipeline(
            PipelineRequest {
                change_fraction: 0.1,
                delete_fraction: 0.05,
                min_age_hours: 12.0,
            },
            sim.now(),
            true,
        )
        .expect("pipeline run");
    assert!(report.conversations_deleted > 0 && report.conversations_changed > 0);
    let after: BTreeSet<String> = sim
        .dataset()
        .conversations_started_in(range)
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    let deleted: Vec<String> = before.difference(&after).cloned().collect();
    let (c, _) = content_diff(&sim, &db, range);
    let extra: Vec<String> = c.extra.iter().filter(|i| **i != ids[1]).cloned().collect();
    assert_eq!(
        extra,
        deleted
            .into_iter()
            .filter(|i| *i != ids[1])
            .collect::<Vec<_>>(),
        "{}",
        c.summary()
    );
    assert!(c.different.len() > 1, "{}", c.summary());
    assert!(sim.now() - Duration::hours(12) > range.start);
}
