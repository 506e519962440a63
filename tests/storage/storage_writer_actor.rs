//! The Writer actor: answers a leased partition's pages once buffered and its completion (and
//! unfenced pages) only after commit, refuses the completion of a lease that lost a page after
//! its acknowledgement, batches by size, age and Flush (filling batches past the pages in
//! flight), and survives its MySQL connection being killed mid-run (the same reconnect path a
//! server restart takes) without losing or duplicating a row.
use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::convs::{expected_rows, final_records};
use common::db::{conversation_counts, TestDb};
use sluice::actors::writer::{
    start_writer_with, Flush, PageRecords, PartitionCompletion, WritePage, WriterConfig,
    WriterSettings, WriterStats,
};
use sluice::storage::checkpoint::{self, Dataset, NewPartition, PartitionStatus};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{FaultHook, FaultPoint};
use sluice::storage::{DatabaseUrl, StorageError};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

fn unfenced(recs: &[ConversationRecord]) -> WritePage {
    WritePage {
        partition_id: 0,
        lease_token: String::new(),
        page: PageRecords::Conversations(recs.to_vec()),
        completion: None,
    }
}

fn counts_off_runtime(url: &DatabaseUrl) -> [usize; 5] {
    let url = url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).unwrap();
        conversation_counts(&mut c)
    })
    .join()
    .unwrap()
}

fn settings(max_conversations: usize, max_age_ms: u64) -> WriterSettings {
    WriterSettings {
        group_commit: false,
        batch_max_conversations: Some(max_conversations),
        batch_max_age_ms: max_age_ms,
        ..WriterSettings::default()
    }
}

#[test]
fn a_page_is_acknowledged_only_after_its_batch_commits() {
    let recs = final_records(60, t0(), Duration::seconds(30));
    for db in TestDb::both() {
        let url = db.url.clone();
        let want = expected_rows(&recs);
        let recs = recs.clone();
        actix_rt::System::new().block_on(async move {
            let cfg = WriterConfig {
                settings: settings(100_000, 3_600_000),
                ..WriterConfig::default()
            };
            let w = start_writer_with(url.clone(), cfg).unwrap();
            let pending = actix_rt::spawn(w.send(unfenced(&recs)));
            // Messages are handled in order: once Stats answers, the page is buffered.
            let stats = w.send(WriterStats).await.unwrap();
            assert_eq!(stats.queue_depth, 1);
            assert!(!pending.is_finished());
            assert_eq!(counts_off_runtime(&url), [0; 5], "nothing committed yet");

            w.send(Flush).await.unwrap().unwrap();
            pending.await.unwrap().unwrap().unwrap();
            assert_eq!(counts_off_runtime(&url), want);
            let stats = w.send(WriterStats).await.unwrap();
            assert_eq!((stats.queue_depth, stats.batches), (0, 1));
            assert_eq!(stats.conversations_written, 60);
        });
    }
}

/// Plans `n` two-hour blocks from `t0()` and leases each (off the runtime); (id, token) each.
fn leased_blocks(url: &DatabaseUrl, n: i64) -> Vec<(i64, String)> {
    let url = url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).unwrap();
        sluice::storage::run_migrations(&mut c).unwrap();
        (0..n)
            .map(|k| {
                let p = checkpoint::plan_partitions(
                    &mut c,
                    &[NewPartition {
                        dataset: Dataset::Conversations,
                        range_start: t0() + Duration::hours(2 * k),
                        range_end: t0() + Duration::hours(2 * k + 2),
                    }],
                    Utc::now(),
                )
                .unwrap();
                let token = checkpoint::lease_partition(
                    &mut c,
                    p[0].id,
                    "test",
                    StdDuration::from_secs(3600),
                    Utc::now(),
                )
                .unwrap()
                .unwrap();
                (p[0].id, token)
            })
            .collect()
    })
    .join()
    .unwrap()
}

fn fenced(part: &(i64, String), recs: &[ConversationRecord]) -> WritePage {
    WritePage {
        partition_id: part.0,
        lease_token: part.1.clone(),
        page: PageRecords::Conversations(recs.to_vec()),
        completion: None,
    }
}

fn completion(part: &(i64, String), received: i64) -> WritePage {
    WritePage {
        completion: Some(PartitionCompletion {
            total_hits: received,
            received,
            verified: true,
            is_final: true,
            settled: false,
        }),
        ..fenced(part, &[])
    }
}

fn status_off_runtime(url: &DatabaseUrl, id: i64) -> PartitionStatus {
    let url = url.clone();
    std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).unwrap();
        checkpoint::get_partition(&mut c, id)
            .unwrap()
            .unwrap()
            .status
    })
    .join()
    .unwrap()
}

#[test]
fn a_leased_page_is_acknowledged_once_buffered_and_its_completion_after_commit() {
    let recs = final_records(60, t0(), Duration::seconds(30));
    for db in TestDb::both() {
        let url = db.url.clone();
        let want = expected_rows(&recs);
        let part = leased_blocks(&url, 1).remove(0);
        let recs = recs.clone();
        actix_rt::System::new().block_on(async move {
            let cfg = WriterConfig {
                settings: settings(100_000, 3_600_000),
                ..WriterConfig::default()
            };
            let w = start_writer_with(url.clone(), cfg).unwrap();
            // The Fetcher may fetch on: the page is buffered, not committed.
            w.send(fenced(&part, &recs[..30])).await.unwrap().unwrap();
            w.send(fenced(&part, &recs[30..])).await.unwrap().unwrap();
            assert_eq!(counts_off_runtime(&url), [0; 5], "nothing committed yet");
            // The completion waits for its commit, with every row.
            let done = actix_rt::spawn(w.send(completion(&part, 60)));
            assert_eq!(w.send(WriterStats).await.unwrap().queue_depth, 3);
            assert!(!done.is_finished());
            assert_eq!(status_off_runtime(&url, part.0), PartitionStatus::Running);

            w.send(Flush).await.unwrap().unwrap();
            done.await.unwrap().unwrap().unwrap();
            assert_eq!(counts_off_runtime(&url), want);
            assert_eq!(status_off_runtime(&url, part.0), PartitionStatus::Done);
        });
    }
}

#[test]
fn a_page_lost_after_its_acknowledgement_refuses_its_lease_and_completion() {
    let recs = final_records(40, t0(), Duration::seconds(30));
    // Lost lease (both databases): its Fetcher is told the lease is lost.
    for db in TestDb::both() {
        let url = db.url.clone();
        let part = leased_blocks(&url, 1).remove(0);
        let recs = recs.clone();
        actix_rt::System::new().block_on(async move {
            let cfg = WriterConfig {
                settings: settings(100_000, 3_600_000),
                ..WriterConfig::default()
            };
            let w = start_writer_with(url.clone(), cfg).unwrap();
            w.send(fenced(&part, &recs[..20])).await.unwrap().unwrap();
            // Another holder takes the partition before the batch is written.
            let (u, (id, token)) = (url.clone(), part.clone());
            std::thread::spawn(move || {
                let mut c = sluice::storage::connect(&u).unwrap();
                assert!(checkpoint::release_partition(&mut c, id, &token, Utc::now()).unwrap());
            })
            .join()
            .unwrap();
            w.send(Flush).await.unwrap().unwrap();
            let lost = Err(StorageError::LeaseLost {
                partition_id: part.0,
            });
            // Answered at once (no Flush), and nothing more is written under the lease.
            assert_eq!(w.send(fenced(&part, &recs[20..])).await.unwrap(), lost);
            assert_eq!(w.send(completion(&part, 40)).await.unwrap(), lost);
            assert_eq!(w.send(WriterStats).await.unwrap().queue_depth, 0);
            assert_eq!(counts_off_runtime(&url), [0; 5]);
            assert_eq!(status_off_runtime(&url, part.0), PartitionStatus::Pending);
        });
    }

    // A permanent error: the partition fails with it, and so does its completion.
    let db = TestDb::sqlite();
    let url = db.url.clone();
    let part = leased_blocks(&url, 1).remove(0);
    let broken = part.0;
    let fault: FaultHook = Arc::new(move |p: FaultPoint| match p {
        FaultPoint::BeforeConversations { partitions } if partitions.contains(&broken) => {
            Err(StorageError::Database {
                message: "simulated constraint violation".into(),
                transient: false,
            })
        }
        _ => Ok(()),
    });
    actix_rt::System::new().block_on(async move {
        let cfg = WriterConfig {
            settings: settings(100_000, 3_600_000),
            fault: Some(fault),
            ..WriterConfig::default()
        };
        let w = start_writer_with(url.clone(), cfg).unwrap();
        w.send(fenced(&part, &recs[..20])).await.unwrap().unwrap();
        w.send(Flush).await.unwrap().unwrap();
        let failed = w.send(completion(&part, 20)).await.unwrap();
        assert!(
            matches!(&failed, Err(e @ StorageError::Database { .. }) if !e.is_transient()),
            "{failed:?}"
        );
        let stats = w.send(WriterStats).await.unwrap();
        assert_eq!((stats.failed_pages, stats.refused_completions), (1, 1));
        assert_eq!(stats.completions, 0);
        assert_eq!(status_off_runtime(&url, part.0), PartitionStatus::Failed);
        assert_eq!(counts_off_runtime(&url), [0; 5]);
    });
}

#[test]
fn batches_fill_past_the_pages_in_flight() {
    // 4 fetchers with one page of 10 outstanding each: before, a batch held at most those
    // 4 pages (40 conversations); now it fills towards its limit of 200.
    const PAGES: usize = 160;
    let recs = final_records((PAGES * 10) as u32, t0(), Duration::seconds(16));
    let db = TestDb::sqlite();
    let url = db.url.clone();
    let parts = leased_blocks(&url, 4);
    let stats = actix_rt::System::new().block_on({
        let (url, recs) = (url.clone(), recs.clone());
        async move {
            let cfg = WriterConfig {
                settings: WriterSettings {
                    batch_max_conversations: Some(200),
                    batch_max_age_ms: 3_600_000,
                    ..WriterSettings::default()
                },
                ..WriterConfig::default()
            };
            let w = start_writer_with(url, cfg).unwrap();
            let mut inflight = std::collections::VecDeque::new();
            for (i, chunk) in recs.chunks(10).enumerate() {
                inflight.push_back(w.send(fenced(&parts[i % 4], chunk)));
                if inflight.len() == 4 {
                    inflight.pop_front().unwrap().await.unwrap().unwrap();
                }
            }
            for r in inflight {
                r.await.unwrap().unwrap();
            }
            w.send(Flush).await.unwrap().unwrap();
            w.send(WriterStats).await.unwrap()
        }
    });
    assert_eq!(stats.conversations_written, recs.len() as u64);
    assert_eq!(counts_off_runtime(&url), expected_rows(&recs));
    eprintln!("{} batches for {PAGES} pages", stats.batches);
    assert!(
        stats.batches * 40 < recs.len() as u64,
        "batches hold more than the pages in flight: {stats:?}"
    );
}

#[test]
fn batches_flush_by_size_and_by_age() {
    let recs = final_records(90, t0(), Duration::seconds(30));
    let db = TestDb::sqlite();
    let url = db.url.clone();
    actix_rt::System::new().block_on(async move {
        // Size: 50 conversations per batch; pages of 30 → the second page triggers the flush.
        let cfg = WriterConfig {
            settings: settings(50, 3_600_000),
            ..WriterConfig::default()
        };
        let w = start_writer_with(url.clone(), cfg).unwrap();
        let a = w.send(unfenced(&recs[..30]));
        let b = w.send(unfenced(&recs[30..60]));
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(w.send(WriterStats).await.unwrap().batches, 1);

        // Age: a lone page is written once it is 20 ms old, with no Flush.
        let cfg = WriterConfig {
            settings: settings(50, 20),
            ..WriterConfig::default()
        };
        let w2 = start_writer_with(url.clone(), cfg).unwrap();
        tokio::time::timeout(StdDuration::from_secs(30), w2.send(unfenced(&recs[60..])))
            .await
            .expect("the age flush came")
            .unwrap()
            .unwrap();
        assert_eq!(counts_off_runtime(&url), expected_rows(&recs));
    });
}

#[test]
fn pages_queued_together_are_committed_together() {
    let recs = final_records(200, t0(), Duration::seconds(30));
    let db = TestDb::sqlite();
    let url = db.url.clone();
    actix_rt::System::new().block_on(async move {
        // Group commit, no size or age limit in play.
        let cfg = WriterConfig {
            settings: WriterSettings {
                batch_max_age_ms: 3_600_000,
                ..WriterSettings::default()
            },
            ..WriterConfig::default()
        };
        let w = start_writer_with(url.clone(), cfg).unwrap();
        // A lone page is written at once.
        w.send(unfenced(&recs[..10])).await.unwrap().unwrap();
        assert_eq!(w.send(WriterStats).await.unwrap().batches, 1);
        // Pages queued before the Writer gets to them share one transaction.
        let replies: Vec<_> = recs[10..].chunks(19).map(|c| w.send(unfenced(c))).collect();
        for r in replies {
            r.await.unwrap().unwrap();
        }
        let stats = w.send(WriterStats).await.unwrap();
        assert_eq!((stats.batches, stats.conversations_written), (2, 200));
        assert_eq!(counts_off_runtime(&url), expected_rows(&recs));
    });
}

#[test]
fn killed_connections_lose_and_duplicate_nothing() {
    let db = Arc::new(TestDb::mysql());
    let recs = final_records(1200, t0(), Duration::seconds(20));
    let url = db.url.clone();
    // Four partitions, each written as 12 pages of 25 conversations, completion on the last.
    let parts = leased_blocks(&url, 4);

    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut killed = 0;
            while !stop.load(Ordering::Relaxed) && killed < 6 {
                std::thread::sleep(StdDuration::from_millis(60));
                killed += db.kill_connections();
            }
            killed
        })
    };

    let pages: Vec<WritePage> = recs
        .chunks(25)
        .enumerate()
        .map(|(n, chunk)| {
            let (id, token) = &parts[n / 12];
            WritePage {
                partition_id: *id,
                lease_token: token.clone(),
                page: PageRecords::Conversations(chunk.to_vec()),
                completion: (n % 12 == 11).then_some(PartitionCompletion {
                    total_hits: 300,
                    received: 300,
                    verified: true,
                    is_final: true,
                    settled: true,
                }),
            }
        })
        .collect();
    let stats = actix_rt::System::new().block_on({
        let url = url.clone();
        async move {
            let cfg = WriterConfig {
                settings: WriterSettings {
                    // One connection: the kills must land mid-run (more connections finish
                    // the pages before the killer's cadence reaches them).
                    writer_connections: 1,
                    batch_max_conversations: Some(100),
                    batch_max_age_ms: 10,
                    retry_initial_delay_ms: 20,
                    retry_max_delay_ms: 200,
                    ..WriterSettings::default()
                },
                ..WriterConfig::default()
            };
            let w = start_writer_with(url, cfg).unwrap();
            // At most 4 pages outstanding, as a fetcher would.
            let mut inflight = std::collections::VecDeque::new();
            for p in pages {
                inflight.push_back(w.send(p));
                if inflight.len() == 4 {
                    inflight.pop_front().unwrap().await.unwrap().unwrap();
                }
            }
            for r in inflight {
                r.await.unwrap().unwrap();
            }
            w.send(WriterStats).await.unwrap()
        }
    });
    stop.store(true, Ordering::Relaxed);
    let killed = killer.join().unwrap();
    assert!(killed >= 1, "the test killed the writer's connection");
    assert!(
        stats.transient_errors >= 1 && stats.reconnects >= 1,
        "{stats:?}"
    );

    assert_eq!(counts_off_runtime(&url), expected_rows(&recs));
    let statuses = std::thread::spawn(move || {
        let mut c = sluice::storage::connect(&url).unwrap();
        parts
            .iter()
            .map(|(id, _)| {
                checkpoint::get_partition(&mut c, *id)
                    .unwrap()
                    .unwrap()
                    .status
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(statuses, vec![PartitionStatus::Done; 4]);
    eprintln!("killed {killed} connections; writer stats {stats:?}");
}
