//! Completion after all rows, on MariaDB and SQLite: a partition whose page was lost — to a
//! database outage longer than the Writer's retry budget, or to a permanent error — is never
//! marked done; its completion is refused (`IncompletePartition` after an outage, the page's
//! own error after a permanent one), and after the retry under a new lease the tables equal
//! the simulator's ground truth.
use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::convs::{self, expected_rows};
use common::db::{conversation_counts, conversation_ids, TestDb};
use sluice::clock::{Clock, ManualClock};
use sluice::storage::checkpoint::{self, Dataset, NewPartition, PartitionStatus};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{
    BatchWriter, FaultHook, FaultPoint, PageRecords, PageWrite, PartitionCompletion, WriterConfig,
    WriterSettings,
};
use sluice::storage::{Backend, Connection, StorageError};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

/// The simulator's conversations of one day (the ground truth of the block), 300 of them.
fn truth() -> Vec<ConversationRecord> {
    let now = t0() + Duration::days(3);
    let ds = convs::sim_dataset(400, 4, 30, now);
    let mut recs = convs::sim_records(&ds, t0(), t0() + Duration::days(1), now);
    recs.truncate(300);
    assert_eq!(recs.len(), 300);
    recs
}

fn config(clock: &ManualClock, fault: Option<FaultHook>) -> WriterConfig {
    WriterConfig {
        clock: Arc::new(clock.clone()),
        sleeper: Arc::new(|_| {}),
        fault,
        settings: WriterSettings {
            retry_max_attempts: 2,
            ..WriterSettings::default()
        },
    }
}

fn lease(conn: &mut Connection, id: Option<i64>, now: DateTime<Utc>) -> (i64, String) {
    let id = id.unwrap_or_else(|| {
        checkpoint::plan_partitions(
            conn,
            &[NewPartition {
                dataset: Dataset::Conversations,
                range_start: t0(),
                range_end: t0() + Duration::days(1),
            }],
            now,
        )
        .unwrap()[0]
            .id
    });
    let token =
        checkpoint::lease_partition(conn, id, "test", std::time::Duration::from_secs(600), now)
            .unwrap()
            .expect("partition is leasable");
    (id, token)
}

/// The block as the fetcher sends it: three pages of 100, then the completion.
fn block(id: i64, token: &str, recs: &[ConversationRecord]) -> Vec<PageWrite> {
    let mut pages: Vec<PageWrite> = recs
        .chunks(100)
        .map(|c| PageWrite {
            partition_id: id,
            lease_token: token.to_owned(),
            page: PageRecords::Conversations(c.to_vec()),
            completion: None,
        })
        .collect();
    pages.push(PageWrite {
        partition_id: id,
        lease_token: token.to_owned(),
        page: PageRecords::Conversations(Vec::new()),
        completion: Some(PartitionCompletion {
            total_hits: recs.len() as i64,
            received: recs.len() as i64,
            verified: true,
            is_final: true,
            settled: true,
        }),
    });
    pages
}

/// After the retry: the partition is done and the tables hold exactly the truth.
fn assert_truth(conn: &mut Connection, id: i64, recs: &[ConversationRecord], backend: Backend) {
    let p = checkpoint::get_partition(conn, id).unwrap().unwrap();
    assert_eq!(p.status, PartitionStatus::Done, "{backend:?}");
    assert_eq!(
        conversation_counts(conn),
        expected_rows(recs),
        "{backend:?}"
    );
    let mut want: Vec<String> = recs
        .iter()
        .map(|r| r.received.conversation.conversation_id.clone())
        .collect();
    want.sort();
    assert_eq!(conversation_ids(conn), want);
}

#[test]
fn an_outage_longer_than_the_retry_budget_mid_partition_never_completes_it() {
    let recs = truth();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(3));
        let down = Arc::new(AtomicBool::new(false));
        let d = down.clone();
        let fault: FaultHook = Arc::new(move |_: FaultPoint| {
            if d.load(Ordering::SeqCst) {
                Err(StorageError::Database {
                    message: "Lost connection to server during query".into(),
                    transient: true,
                })
            } else {
                Ok(())
            }
        });
        let mut w = BatchWriter::new(db.url.clone(), config(&clock, Some(fault)));
        let (id, token) = lease(&mut conn, None, clock.now());
        let pages = block(id, &token, &recs);

        w.write_pages(&[&pages[0]])[0].clone().unwrap();
        down.store(true, Ordering::SeqCst);
        let r = w.write_pages(&[&pages[1]]);
        assert!(
            matches!(r[0], Err(StorageError::Unavailable { .. })),
            "{r:?}"
        );
        // The database is back before the rest of the partition arrives: the lease is over,
        // its later pages are refused as its completion is (the Fetcher stops early).
        down.store(false, Ordering::SeqCst);
        assert_eq!(
            w.write_pages(&[&pages[2]])[0],
            Err(StorageError::IncompletePartition { partition_id: id })
        );
        let r = w.write_pages(&[&pages[3]]);
        assert_eq!(
            r[0],
            Err(StorageError::IncompletePartition { partition_id: id })
        );
        assert!(
            r[0].as_ref().unwrap_err().is_transient(),
            "retried, not failed"
        );
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Running, "{:?}", db.backend());
        assert_eq!(p.received, None);
        assert_eq!(
            conversation_ids(&mut conn).len(),
            100,
            "only the first page's rows"
        );
        assert_eq!(w.counters().refused_completions, 1);

        // The fetcher gives it back and fetches it again under a new lease.
        checkpoint::release_partition(&mut conn, id, &token, clock.now()).unwrap();
        w.forget_partition(id);
        let (_, token) = lease(&mut conn, Some(id), clock.now());
        for p in block(id, &token, &recs) {
            w.write_pages(&[&p])[0].clone().unwrap();
        }
        assert_truth(&mut conn, id, &recs, db.backend());
    }
}

#[test]
fn a_page_that_fails_for_good_refuses_the_completion_batched_behind_it() {
    let recs = truth();
    let poisoned = recs[150].received.conversation.conversation_id.clone();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(3));
        let mut bad = recs.clone();
        let fault: Option<FaultHook> = if db.backend() == Backend::Mysql {
            // A real permanent error: a queue id longer than its column.
            let mut json: serde_json::Value =
                serde_json::from_str(&bad[150].received.raw_json).unwrap();
            json["participants"][0]["sessions"][0]["segments"][0]["queueId"] =
                serde_json::json!("q".repeat(300));
            bad[150].received = serde_json::from_str(&json.to_string()).unwrap();
            None
        } else {
            // SQLite takes any length: fail every transaction holding that conversation.
            let p = poisoned.clone();
            Some(Arc::new(move |f: FaultPoint| match f {
                FaultPoint::BeforeCompletion { conversations, .. }
                    if conversations.contains(&p) =>
                {
                    Err(StorageError::Database {
                        message: "simulated constraint violation".into(),
                        transient: false,
                    })
                }
                _ => Ok(()),
            }))
        };
        let mut w = BatchWriter::new(db.url.clone(), config(&clock, fault));
        let (id, token) = lease(&mut conn, None, clock.now());
        // Every page and the completion in one batch (as group commit gathers them).
        let pages = block(id, &token, &bad);
        let r = w.write_pages(&pages.iter().collect::<Vec<_>>());
        assert!(r[0].is_ok(), "{:?}: {r:?}", db.backend());
        assert!(matches!(&r[1], Err(e) if !e.is_transient()), "{r:?}");
        // The rest of the lease is refused with the page's own error: the partition failed
        // (a retry would not help until the data changes upstream).
        assert_eq!((&r[2], &r[3]), (&r[1], &r[1]), "{:?}", db.backend());
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Failed, "{:?}", db.backend());
        assert_eq!(
            conversation_ids(&mut conn).len(),
            100,
            "only the first page's rows"
        );

        // Retried (a failed partition is leasable again) with the data fixed upstream.
        let (_, token) = lease(&mut conn, Some(id), clock.now());
        let mut w = BatchWriter::new(db.url.clone(), config(&clock, None));
        for p in block(id, &token, &recs) {
            w.write_pages(&[&p])[0].clone().unwrap();
        }
        assert_truth(&mut conn, id, &recs, db.backend());
    }
}
