//! Parallel writes on MariaDB (`writer_connections` > 1): a partition's pages and its
//! completion stay ordered on one connection, so no partition is ever stored done without all
//! its rows; partitions on two connections that return the same conversations (overlapping
//! blocks) write them without a failure or a duplicate; and a verified completion never
//! deletes a conversation another connection is writing at that moment.
use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::convs::{expected_rows, final_records};
use common::db::{conversation_counts, conversation_ids, TestDb};
use serde_json::Value;
use sluice::actors::writer::{
    start_writer_with, Flush, LeasePartition, PageRecords, PartitionCompletion, PlanPartitions,
    ReopenForResync, WritePage, Writer, WriterConfig, WriterSettings, WriterStats,
};
use sluice::clock::ManualClock;
use sluice::storage::checkpoint::{self, Dataset, LeaseAnswer, NewPartition, PartitionStatus};
use sluice::storage::lanes::lane_of;
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{FaultHook, FaultPoint};
use sluice::storage::{Connection, DatabaseUrl};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

fn off_runtime<T: Send + 'static>(
    url: &DatabaseUrl,
    f: impl FnOnce(&mut Connection) -> T + Send + 'static,
) -> T {
    let url = url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).unwrap();
        f(&mut c)
    })
    .join()
    .unwrap()
}

fn config(lanes: usize, fault: Option<FaultHook>) -> WriterConfig {
    WriterConfig {
        settings: WriterSettings {
            writer_connections: lanes,
            batch_max_conversations: Some(60),
            retry_initial_delay_ms: 5,
            retry_max_delay_ms: 50,
            ..WriterSettings::default()
        },
        sleeper: Arc::new(|_| {}),
        fault,
        ..WriterConfig::default()
    }
}

/// Plans `[from, to)` blocks through the Writer and leases each; returns (id, token).
async fn plan_and_lease(
    w: &actix::Addr<Writer>,
    ranges: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(i64, String)> {
    let rows = w
        .send(PlanPartitions(
            ranges
                .iter()
                .map(|&(a, b)| NewPartition {
                    dataset: Dataset::Conversations,
                    range_start: a,
                    range_end: b,
                })
                .collect(),
        ))
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    for r in rows {
        out.push((r.id, lease(w, r.id).await));
    }
    out
}

async fn lease(w: &actix::Addr<Writer>, id: i64) -> String {
    match w
        .send(LeasePartition {
            id,
            owner: "test".into(),
            lease_for: StdDuration::from_secs(3600),
        })
        .await
        .unwrap()
        .unwrap()
    {
        LeaseAnswer::Leased { token } => token,
        other => panic!("partition {id} not leased: {other:?}"),
    }
}

fn page(
    (id, token): &(i64, String),
    recs: &[ConversationRecord],
    completion: Option<i64>,
) -> WritePage {
    WritePage {
        partition_id: *id,
        lease_token: token.clone(),
        page: PageRecords::Conversations(recs.to_vec()),
        completion: completion.map(|n| PartitionCompletion {
            total_hits: n,
            received: n,
            verified: true,
            is_final: true,
            settled: true,
        }),
    }
}

/// Every partition stored done holds all its conversations, read in one statement (one
/// snapshot); returns the partitions seen done.
fn check_done_means_complete(c: &mut Connection, per_partition: i64) -> Result<usize, String> {
    use diesel::sql_types::{BigInt, Text};
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let Connection::Mysql(m) = c else {
        return Ok(0);
    };
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT CAST(p.id AS SIGNED) AS id, p.status AS status, CAST((SELECT COUNT(*) FROM \
         conversations c WHERE c.conversation_start >= p.range_start AND c.conversation_start \
         < p.range_end) AS SIGNED) AS n FROM ingest_partitions p",
    )
    .load(m)
    .map_err(|e| e.to_string())?;
    let mut done = 0;
    for r in rows.iter().filter(|r| r.status == "done") {
        if r.n != per_partition {
            return Err(format!(
                "partition {} stored done with {} of its {per_partition} conversations",
                r.id, r.n
            ));
        }
        done += 1;
    }
    Ok(done)
}

#[test]
fn a_partitions_completion_never_commits_before_its_pages_on_several_connections() {
    const LANES: usize = 3;
    const PARTS: usize = 9;
    const PAGES: usize = 4;
    const PER_PAGE: usize = 20;
    let db = TestDb::mysql();
    let url = db.url.clone();
    // 90 s apart: each 2-hour block holds exactly 80 of them.
    let recs = final_records(
        (PARTS * PAGES * PER_PAGE) as u32,
        t0(),
        Duration::seconds(90),
    );
    let ranges: Vec<_> = (0..PARTS as i64)
        .map(|k| {
            (
                t0() + Duration::hours(2 * k),
                t0() + Duration::hours(2 * k + 2),
            )
        })
        .collect();
    // One lane is slow: its transactions take 30 ms more, so the other lanes race ahead.
    let slow: FaultHook = Arc::new(|p: FaultPoint| {
        let FaultPoint::BeforeCompletion { partitions, .. } = p else {
            return Ok(());
        };
        if partitions.iter().any(|&id| lane_of(id, LANES) == 1) {
            std::thread::sleep(StdDuration::from_millis(30));
        }
        Ok(())
    });

    // Watches the stored state while the Writer works.
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = sluice::storage::connect(&url).unwrap();
            let (mut polls, mut done_seen) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                match check_done_means_complete(&mut c, (PAGES * PER_PAGE) as i64) {
                    Ok(n) => done_seen = done_seen.max(n),
                    // The tables may not exist yet.
                    Err(e) if e.contains("doesn't exist") => {}
                    Err(e) => return Err(e),
                }
                polls += 1;
            }
            Ok((polls, done_seen))
        })
    };

    let (parts, stats) = actix_rt::System::new().block_on({
        let url = url.clone();
        let recs = recs.clone();
        async move {
            let w = start_writer_with(url, config(LANES, Some(slow))).unwrap();
            let parts = plan_and_lease(&w, &ranges).await;
            let lanes: std::collections::HashSet<usize> =
                parts.iter().map(|(id, _)| lane_of(*id, LANES)).collect();
            assert_eq!(lanes.len(), LANES, "the partitions use every lane");
            // Interleaved as concurrent fetchers send them: page j of every partition, then
            // page j + 1; at most 12 pages in flight.
            let mut inflight = std::collections::VecDeque::new();
            for j in 0..PAGES {
                for (k, part) in parts.iter().enumerate() {
                    let from = (k * PAGES + j) * PER_PAGE;
                    let last = (j == PAGES - 1).then_some((PAGES * PER_PAGE) as i64);
                    inflight.push_back(w.send(page(part, &recs[from..from + PER_PAGE], last)));
                    if inflight.len() == 12 {
                        inflight.pop_front().unwrap().await.unwrap().unwrap();
                    }
                }
            }
            for r in inflight {
                r.await.unwrap().unwrap();
            }
            w.send(Flush).await.unwrap().unwrap();
            (parts, w.send(WriterStats).await.unwrap())
        }
    });
    stop.store(true, Ordering::Relaxed);
    let (polls, _) = checker
        .join()
        .unwrap()
        .expect("done only with all its rows");
    assert!(polls > 0);

    assert_eq!(stats.completions, PARTS as u64, "{stats:?}");
    assert_eq!(stats.conversations_written, recs.len() as u64);
    assert_eq!(stats.failed_pages + stats.refused_completions, 0);
    let want = expected_rows(&recs);
    let (counts, statuses, done) = off_runtime(&url, move |c| {
        let statuses: Vec<PartitionStatus> = parts
            .iter()
            .map(|(id, _)| checkpoint::get_partition(c, *id).unwrap().unwrap().status)
            .collect();
        let done = check_done_means_complete(c, (PAGES * PER_PAGE) as i64);
        (conversation_counts(c), statuses, done)
    });
    assert_eq!(counts, want, "every row exactly once");
    assert_eq!(statuses, vec![PartitionStatus::Done; PARTS]);
    assert_eq!(done, Ok(PARTS));
}

/// `rec` with a revised initiator (a change upstream), re-serialized.
fn revised(rec: &ConversationRecord) -> ConversationRecord {
    let mut v: Value = serde_json::from_str(&rec.received.raw_json).unwrap();
    v["conversationInitiator"] = Value::String("revised".into());
    let text = serde_json::to_string(&v).unwrap();
    ConversationRecord {
        received: serde_json::from_str(&text).unwrap(),
        is_final: rec.is_final,
    }
}

#[test]
fn overlapping_partitions_on_two_connections_write_the_same_conversations_once() {
    let db = TestDb::mysql();
    let url = db.url.clone();
    // 120 conversations over 3 hours; A = [0 h, 2 h) holds 0..80, B = [1 h, 3 h) holds
    // 40..120: both return 40..80.
    let recs = final_records(120, t0(), Duration::seconds(90));
    let ranges = [
        (t0(), t0() + Duration::hours(2)),
        (t0() + Duration::hours(1), t0() + Duration::hours(3)),
    ];
    // The first two batches (one per connection) meet before their lookups, so both find
    // the shared conversations absent and both insert them: the second insert waits for the
    // first's row locks, then meets a duplicate key. Every transaction also stays open 20 ms
    // after writing its rows.
    let arrived = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let hold: FaultHook = Arc::new(move |p: FaultPoint| {
        match p {
            FaultPoint::BeforeConversations { .. } => {
                let (n, cv) = &*arrived;
                let mut n = n.lock().unwrap();
                *n += 1;
                let _ = cv
                    .wait_timeout_while(n, StdDuration::from_secs(5), |n| *n < 2)
                    .unwrap();
                cv.notify_all();
            }
            _ => std::thread::sleep(StdDuration::from_millis(20)),
        }
        Ok(())
    });
    let stats = actix_rt::System::new().block_on({
        let url = url.clone();
        let recs = recs.clone();
        async move {
            let w = start_writer_with(url, config(2, Some(hold))).unwrap();
            let mut parts = plan_and_lease(&w, &ranges).await;
            assert_ne!(lane_of(parts[0].0, 2), lane_of(parts[1].0, 2));
            for round in 0..2 {
                if round == 1 {
                    // Re-fetched after a change upstream: every shared conversation revised.
                    w.send(ReopenForResync {
                        datasets: vec![Dataset::Conversations],
                        from: ranges[0].0,
                        to: ranges[1].1,
                    })
                    .await
                    .unwrap()
                    .unwrap();
                    for p in parts.iter_mut() {
                        p.1 = lease(&w, p.0).await;
                    }
                }
                let v: Vec<ConversationRecord> = recs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        if round == 1 && (40..80).contains(&i) {
                            revised(r)
                        } else {
                            r.clone()
                        }
                    })
                    .collect();
                // Both begin with the shared conversations, page for page.
                let a = [&v[40..60], &v[60..80], &v[0..20], &v[20..40]];
                let b = [&v[40..60], &v[60..80], &v[80..100], &v[100..120]];
                // The completions come after the data pages are written: a batch holding a
                // verified completion waits for the other lanes (see `storage::lanes`), and the
                // data pages must meet.
                let mut replies = Vec::new();
                for j in 0..4 {
                    replies.push(w.send(page(&parts[0], a[j], None)));
                    replies.push(w.send(page(&parts[1], b[j], None)));
                }
                for r in replies {
                    r.await.unwrap().expect("no page fails");
                }
                for p in &parts {
                    w.send(page(p, &[], Some(80)))
                        .await
                        .unwrap()
                        .expect("completed");
                }
            }
            w.send(WriterStats).await.unwrap()
        }
    });
    eprintln!("writer stats {stats:?}");
    assert_eq!(stats.completions, 4, "{stats:?}");
    assert!(stats.conflict_retries >= 1, "the inserts met: {stats:?}");
    assert_eq!(stats.failed_pages + stats.refused_completions, 0);
    assert_eq!(
        stats.conversations_deleted, 0,
        "nothing received was deleted"
    );
    let mut want: Vec<ConversationRecord> = recs.clone();
    for r in &mut want[40..80] {
        *r = revised(r);
    }
    let want_rows = expected_rows(&want);
    let (counts, ids, revised_n) = off_runtime(&url, |c| {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use sluice::storage::schema::conversations as cv;
        let Connection::Mysql(m) = c else {
            unreachable!()
        };
        let revised_n: i64 = cv::table
            .filter(cv::conversation_initiator.eq("revised"))
            .count()
            .get_result(m)
            .unwrap();
        (conversation_counts(c), conversation_ids(c), revised_n)
    });
    assert_eq!(counts, want_rows, "no duplicate, no stale child");
    assert_eq!(ids.len(), 120);
    assert_eq!(revised_n, 40, "the last content written");
}

#[test]
fn a_verified_completion_never_deletes_what_another_connection_is_writing() {
    let db = TestDb::mysql();
    let url = db.url.clone();
    let now = t0() + Duration::days(3);
    // A = [0 h, 2 h) and B = [1 h, 3 h) overlap; X (at 1.5 h) is stored from an earlier
    // fetch. A's verified re-fetch does not return X; B's does, and B is writing X while A
    // completes: X must stay (B stored it after A's fetch began). Note: with the lane gate
    // switched off this test still passed once (06:35 UTC, 2026-12-06), so it checks the
    // outcome but has not been shown to catch the race the gate closes.
    let recs = final_records(3, t0() + Duration::minutes(80), Duration::minutes(10));
    let (others, x) = (recs[..2].to_vec(), revised(&recs[2]));
    {
        let url = url.clone();
        let old = recs[2].clone();
        off_runtime(&url.clone(), move |c| {
            sluice::storage::run_migrations(c).unwrap();
            let clock = ManualClock::new(now - Duration::days(1));
            let mut bw = sluice::storage::write::BatchWriter::new(
                url,
                WriterConfig {
                    clock: Arc::new(clock),
                    ..WriterConfig::default()
                },
            );
            let p = sluice::storage::write::PageWrite {
                partition_id: 0,
                lease_token: String::new(),
                page: PageRecords::Conversations(vec![old]),
                completion: None,
            };
            assert_eq!(bw.write_pages(&[&p]), vec![Ok(())]);
        });
    }

    // The writing partition's transaction signals once its rows are written, then stays
    // open for a second: the completing partition's page is sent meanwhile.
    let (in_tx, in_rx) = mpsc::channel::<()>();
    let writing = Arc::new(Mutex::new(0i64));
    let hook: FaultHook = {
        let (in_tx, writing) = (Mutex::new(in_tx), writing.clone());
        Arc::new(move |p: FaultPoint| {
            let FaultPoint::BeforeCompletion { partitions, .. } = p else {
                return Ok(());
            };
            if partitions.contains(&*writing.lock().unwrap()) {
                let _ = in_tx.lock().unwrap().send(());
                std::thread::sleep(StdDuration::from_secs(1));
            }
            Ok(())
        })
    };
    let stats = actix_rt::System::new().block_on({
        let url = url.clone();
        async move {
            let cfg = WriterConfig {
                clock: Arc::new(ManualClock::new(now)),
                ..config(2, Some(hook))
            };
            let w = start_writer_with(url, cfg).unwrap();
            let mut parts = plan_and_lease(
                &w,
                &[
                    (t0(), t0() + Duration::hours(2)),
                    (t0() + Duration::hours(1), t0() + Duration::hours(3)),
                ],
            )
            .await;
            // Both ranges hold X. The completing one is on lane 0, which receives every
            // message: it must be free while the other lane's transaction is open.
            parts.sort_by_key(|(id, _)| lane_of(*id, 2));
            let (completing, writing_part) = (parts[0].clone(), parts[1].clone());
            assert_eq!(lane_of(writing_part.0, 2), 1);
            *writing.lock().unwrap() = writing_part.0;
            let b = actix_rt::spawn(w.send(page(&writing_part, std::slice::from_ref(&x), Some(1))));
            // X rewritten and locked inside the other lane's open transaction.
            tokio::task::spawn_blocking(move || in_rx.recv().unwrap())
                .await
                .unwrap();
            let a = w.send(page(&completing, &others, Some(2)));
            a.await.unwrap().expect("the completion commits");
            b.await.unwrap().unwrap().expect("X is written");
            w.send(WriterStats).await.unwrap()
        }
    });
    assert_eq!(stats.completions, 2, "{stats:?}");
    let ids = off_runtime(&url, conversation_ids);
    let mut want: Vec<String> = recs
        .iter()
        .map(|r| r.received.conversation.conversation_id.clone())
        .collect();
    want.sort();
    assert_eq!(ids, want, "X is kept");
    assert_eq!(stats.conversations_deleted, 0);
}
