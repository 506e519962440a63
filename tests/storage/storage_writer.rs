//! The batch writer on real MariaDB (a fresh database per test) and SQLite: re-ingest replaces
//! without duplicates or stale children, completion commits with the rows or not at all,
//! lost leases and permanent errors stay confined to their partition.
use crate::common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::convs::{self, expected_rows, final_records};
use common::db::{conversation_counts, count, dump, TestDb};
use sluice::clock::{Clock, ManualClock};
use sluice::storage::checkpoint::{self, Dataset, NewPartition, PartitionStatus};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{
    BatchWriter, FaultHook, FaultPoint, PageRecords, PageWrite, PartitionCompletion, WriterConfig,
};
use sluice::storage::{Backend, Connection, StorageError};

const TABLES: [&str; 5] = [
    "conversations",
    "participants",
    "sessions",
    "segments",
    "session_metrics",
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

fn config(clock: &ManualClock) -> WriterConfig {
    WriterConfig {
        clock: Arc::new(clock.clone()),
        sleeper: Arc::new(|_| {}),
        ..WriterConfig::default()
    }
}

fn page(recs: &[ConversationRecord]) -> PageWrite {
    PageWrite {
        partition_id: 0,
        lease_token: String::new(),
        page: PageRecords::Conversations(recs.to_vec()),
        completion: None,
    }
}

fn snapshot(conn: &mut Connection) -> Vec<Vec<String>> {
    TABLES
        .iter()
        .map(|t| dump(conn, t, &["last_ingested_at"]))
        .collect()
}

fn all_ok(results: Vec<Result<(), StorageError>>) {
    for r in results {
        r.unwrap();
    }
}

/// 1,000 of the simulator's conversations (final), and its clock.
fn sim_thousand() -> (Vec<ConversationRecord>, DateTime<Utc>) {
    let now = t0() + Duration::days(2);
    let ds = convs::sim_dataset(2000, 3, 40, now);
    let mut recs = convs::sim_records(&ds, t0(), t0() + Duration::days(1), now);
    recs.truncate(1000);
    assert_eq!(recs.len(), 1000);
    assert!(recs.iter().all(|r| r.is_final));
    (recs, now)
}

#[test]
fn writing_the_same_conversations_twice_leaves_identical_tables() {
    let (recs, _) = sim_thousand();
    let want = expected_rows(&recs);
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(2));
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        let pages: Vec<PageWrite> = recs.chunks(100).map(page).collect();
        for batch in pages.chunks(5) {
            all_ok(w.write_pages(&batch.iter().collect::<Vec<_>>()));
        }
        assert_eq!(conversation_counts(&mut conn), want, "{:?}", db.backend());
        let before = snapshot(&mut conn);

        // Again, an hour later, grouped differently, newest first, and every conversation
        // twice within the same batch (adjacent partitions overlap).
        clock.advance(Duration::hours(1));
        let mut rev = recs.clone();
        rev.reverse();
        let mut pages: Vec<PageWrite> = rev.chunks(250).map(page).collect();
        pages.extend(recs.chunks(400).map(page));
        all_ok(w.write_pages(&pages.iter().collect::<Vec<_>>()));

        assert_eq!(conversation_counts(&mut conn), want, "{:?}", db.backend());
        let after = snapshot(&mut conn);
        for (i, t) in TABLES.iter().enumerate() {
            assert!(
                before[i] == after[i],
                "{:?}: table {t} changed on re-ingest",
                db.backend()
            );
        }
        // first_ingested_at is part of the comparison above; last_ingested_at moved.
        let lines = dump(&mut conn, "conversations", &[]);
        assert!(lines.iter().all(|l| l.contains("2024-03-03 01:00:00")));
        assert!(lines.iter().all(|l| l.contains("2024-03-03 00:00:00")));
        assert_eq!(w.counters().conversations_written, 2000);
    }
}

/// `rec` with a participant (session, segment, metric) the final version will not have.
fn with_extra_child(rec: &ConversationRecord) -> ConversationRecord {
    let mut v: serde_json::Value = serde_json::from_str(&rec.received.raw_json).unwrap();
    let id = v["conversationId"].as_str().unwrap().to_string();
    let at = v["conversationStart"].clone();
    v["participants"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "participantId": format!("{id}-p-extra"), "purpose": "external",
            "sessions": [{"sessionId": format!("{id}-s-extra"), "mediaType": "voice",
              "segments": [{"segmentStart": at, "segmentType": "dialing"}],
              "metrics": [{"name": "nOutbound", "value": 1, "emitDate": at}]}]
        }));
    let text = serde_json::to_string(&v).unwrap();
    ConversationRecord {
        received: serde_json::from_str(&text).unwrap(),
        is_final: false,
    }
}

#[test]
fn in_progress_conversation_replaced_by_final_leaves_no_stale_children() {
    // The simulator's conversations of the hour before `now`, seen at `now` (many still in
    // progress: open segments, metrics missing), then their final versions.
    let now = t0() + Duration::hours(12) + Duration::minutes(5);
    let ds = convs::sim_dataset(3000, 2, 40, now);
    let from = now - Duration::minutes(30);
    let live: Vec<ConversationRecord> = convs::sim_records(&ds, from, now, now)
        .iter()
        .map(with_extra_child)
        .collect();
    let fin = convs::sim_records(&ds, from, now, now + Duration::days(2));
    assert_eq!(live.len(), fin.len());
    assert!(fin.iter().all(|r| r.is_final));
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(now);
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        all_ok(w.write_pages(&[&page(&live)]));
        assert_eq!(conversation_counts(&mut conn), expected_rows(&live));
        let open = live
            .iter()
            .filter(|r| r.received.conversation.conversation_end.is_none())
            .count();
        assert!(open > 10, "{open} in progress");
        assert_eq!(
            count(&mut conn, "conversations WHERE conversation_end IS NULL") as usize,
            open
        );
        assert!(count(&mut conn, "segments WHERE segment_end IS NULL") > 0);

        clock.advance(Duration::days(2));
        all_ok(w.write_pages(&[&page(&fin)]));
        assert_eq!(
            conversation_counts(&mut conn),
            expected_rows(&fin),
            "{:?}",
            db.backend()
        );
        for t in ["participants", "sessions", "segments", "session_metrics"] {
            assert!(
                dump(&mut conn, t, &[]).iter().all(|l| !l.contains("extra")),
                "{:?}: stale rows left in {t}",
                db.backend()
            );
        }
        assert_eq!(count(&mut conn, "segments WHERE segment_end IS NULL"), 0);
        assert_eq!(count(&mut conn, "conversations WHERE is_final = 0"), 0);
    }
}

fn lease_partition(
    conn: &mut Connection,
    range: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> (i64, String) {
    let rows = checkpoint::plan_partitions(
        conn,
        &[NewPartition {
            dataset: Dataset::Conversations,
            range_start: range.0,
            range_end: range.1,
        }],
        now,
    )
    .unwrap();
    let id = rows[0].id;
    let token =
        checkpoint::lease_partition(conn, id, "test", std::time::Duration::from_secs(600), now)
            .unwrap()
            .expect("partition is free");
    (id, token)
}

fn completion(n: usize) -> PartitionCompletion {
    PartitionCompletion {
        total_hits: n as i64,
        received: n as i64,
        verified: true,
        is_final: true,
        settled: true,
    }
}

#[test]
fn completion_commits_with_the_last_rows_or_not_at_all() {
    let recs = final_records(40, t0(), Duration::seconds(90));
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(1));
        let (id, token) =
            lease_partition(&mut conn, (t0(), t0() + Duration::hours(1)), clock.now());
        let pages = [
            PageWrite {
                partition_id: id,
                lease_token: token.clone(),
                page: PageRecords::Conversations(recs[..20].to_vec()),
                completion: None,
            },
            PageWrite {
                partition_id: id,
                lease_token: token.clone(),
                page: PageRecords::Conversations(recs[20..].to_vec()),
                completion: Some(completion(40)),
            },
        ];

        // A crash between the rows and the completion (the writer dies mid-transaction).
        let crashing = WriterConfig {
            fault: Some(Arc::new(|_: FaultPoint| -> Result<(), StorageError> {
                panic!("simulated crash between rows and completion")
            }) as FaultHook),
            ..config(&clock)
        };
        let url = db.url.clone();
        let pages2 = pages.clone();
        let crashed = std::thread::spawn(move || {
            let mut w = BatchWriter::new(url, crashing);
            w.write_pages(&pages2.iter().collect::<Vec<_>>())
        })
        .join();
        assert!(crashed.is_err(), "the writer thread crashed");
        assert_eq!(conversation_counts(&mut conn), [0; 5], "{:?}", db.backend());
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Running);
        assert_eq!(p.received, None);

        // A database error at the same point: nothing written, the partition fails with it.
        let failing = WriterConfig {
            fault: Some(Arc::new(|_: FaultPoint| {
                Err(StorageError::Injected("before completion".into()))
            }) as FaultHook),
            ..config(&clock)
        };
        let mut w = BatchWriter::new(db.url.clone(), failing);
        let r = w.write_pages(&pages.iter().collect::<Vec<_>>());
        assert!(r.iter().all(|r| r.is_err()), "{r:?}");
        assert_eq!(conversation_counts(&mut conn), [0; 5]);
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Failed);
        assert!(p.last_error.unwrap().contains("before completion"));

        // Leased again and written without a fault: rows and completion together.
        let token = checkpoint::lease_partition(
            &mut conn,
            id,
            "test",
            std::time::Duration::from_secs(60),
            clock.now(),
        )
        .unwrap()
        .unwrap();
        let pages: Vec<PageWrite> = pages
            .into_iter()
            .map(|p| PageWrite {
                lease_token: token.clone(),
                ..p
            })
            .collect();
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        all_ok(w.write_pages(&pages.iter().collect::<Vec<_>>()));
        assert_eq!(conversation_counts(&mut conn), expected_rows(&recs));
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Done);
        assert_eq!((p.total_hits, p.received), (Some(40), Some(40)));
        assert_eq!(p.verified_at, Some(clock.now()));
        assert_eq!(p.attempts, 2);
        assert!(p.is_final);
        assert_eq!(p.last_error, None);
    }
}

#[test]
fn pages_under_a_lost_lease_are_refused_and_the_rest_written() {
    let recs = final_records(30, t0(), Duration::seconds(100));
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(1));
        let now = clock.now();
        let (a, old_token) = lease_partition(&mut conn, (t0(), t0() + Duration::hours(1)), now);
        let (b, token_b) = lease_partition(
            &mut conn,
            (t0() + Duration::hours(1), t0() + Duration::hours(2)),
            now,
        );
        // A's lease expires and another worker takes it over.
        clock.advance(Duration::minutes(11));
        let new_token = checkpoint::lease_partition(
            &mut conn,
            a,
            "other",
            std::time::Duration::from_secs(600),
            clock.now(),
        )
        .unwrap()
        .expect("expired lease can be taken over");
        assert_ne!(new_token, old_token);
        let pages = [
            PageWrite {
                partition_id: a,
                lease_token: old_token,
                page: PageRecords::Conversations(recs[..15].to_vec()),
                completion: Some(completion(15)),
            },
            PageWrite {
                partition_id: b,
                lease_token: token_b,
                page: PageRecords::Conversations(recs[15..].to_vec()),
                completion: Some(completion(15)),
            },
        ];
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        let r = w.write_pages(&pages.iter().collect::<Vec<_>>());
        assert_eq!(r[0], Err(StorageError::LeaseLost { partition_id: a }));
        assert_eq!(r[1], Ok(()));
        assert_eq!(conversation_counts(&mut conn), expected_rows(&recs[15..]));
        let pa = checkpoint::get_partition(&mut conn, a).unwrap().unwrap();
        assert_eq!(pa.status, PartitionStatus::Running);
        assert_eq!(pa.lease_token.as_deref(), Some(new_token.as_str()));
        let pb = checkpoint::get_partition(&mut conn, b).unwrap().unwrap();
        assert_eq!(pb.status, PartitionStatus::Done);
    }
}

#[test]
fn a_permanent_error_fails_only_its_partition() {
    let recs = final_records(30, t0(), Duration::seconds(100));
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(1));
        let now = clock.now();
        let parts: Vec<(i64, String)> = (0..3)
            .map(|k| {
                lease_partition(
                    &mut conn,
                    (t0() + Duration::hours(k), t0() + Duration::hours(k + 1)),
                    now,
                )
            })
            .collect();
        let bad = parts[1].0;
        let mut pages: Vec<PageWrite> = parts
            .iter()
            .zip(recs.chunks(10))
            .map(|((id, token), chunk)| PageWrite {
                partition_id: *id,
                lease_token: token.clone(),
                page: PageRecords::Conversations(chunk.to_vec()),
                completion: Some(completion(10)),
            })
            .collect();
        let fault: Option<FaultHook> = if db.backend() == Backend::Mysql {
            // A real permanent error: a queue id longer than its column.
            let PageRecords::Conversations(v) = &mut pages[1].page else {
                unreachable!()
            };
            let mut json: serde_json::Value =
                serde_json::from_str(&v[3].received.raw_json).unwrap();
            json["participants"][1]["sessions"][0]["segments"][0]["queueId"] =
                serde_json::json!("q".repeat(300));
            v[3].received = serde_json::from_str(&json.to_string()).unwrap();
            None
        } else {
            // SQLite accepts any length: inject the failure for the batch holding `bad`.
            Some(Arc::new(move |p: FaultPoint| match p {
                FaultPoint::BeforeCompletion { partitions, .. } if partitions.contains(&bad) => {
                    Err(StorageError::Database {
                        message: "simulated constraint violation".into(),
                        transient: false,
                    })
                }
                _ => Ok(()),
            }))
        };
        let mut w = BatchWriter::new(
            db.url.clone(),
            WriterConfig {
                fault,
                ..config(&clock)
            },
        );
        let r = w.write_pages(&pages.iter().collect::<Vec<_>>());
        assert!(r[0].is_ok() && r[2].is_ok(), "{:?}: {r:?}", db.backend());
        assert!(matches!(&r[1], Err(e) if !e.is_transient()), "{r:?}");
        let mut want = expected_rows(&recs[..10]);
        let more = expected_rows(&recs[20..]);
        for (a, b) in want.iter_mut().zip(more) {
            *a += b;
        }
        assert_eq!(conversation_counts(&mut conn), want);
        let statuses: Vec<PartitionStatus> = parts
            .iter()
            .map(|(id, _)| {
                checkpoint::get_partition(&mut conn, *id)
                    .unwrap()
                    .unwrap()
                    .status
            })
            .collect();
        assert_eq!(
            statuses,
            [
                PartitionStatus::Done,
                PartitionStatus::Failed,
                PartitionStatus::Done
            ]
        );
        let err = checkpoint::get_partition(&mut conn, bad)
            .unwrap()
            .unwrap()
            .last_error
            .unwrap();
        let expect = if db.backend() == Backend::Mysql {
            "too long"
        } else {
            "simulated"
        };
        assert!(err.contains(expect), "{err}");
        assert_eq!(w.counters().failed_pages, 1);
    }
}

#[test]
fn user_statuses_are_replaced_by_user_and_start_time() {
    let day = t0();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(day + Duration::days(3));
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        // First seen mid-day (current records open), then final; a duplicate copy of the
        // user (as when a status spans midnight) in the same page.
        let mid = day + Duration::hours(12);
        let early: Vec<_> = (0..4)
            .map(|k| convs::user_detail(&format!("u-{k}"), day, k * 7, mid))
            .collect();
        let late: Vec<_> = (0..4)
            .map(|k| convs::user_detail(&format!("u-{k}"), day, k * 7, day + Duration::days(2)))
            .collect();
        let mut dup = late.clone();
        dup.push(late[0].clone());
        let users = |v: Vec<sluice::genesys::model::UserDetail>| PageWrite {
            partition_id: 0,
            lease_token: String::new(),
            page: PageRecords::Users(v),
            completion: None,
        };
        all_ok(w.write_pages(&[&users(early)]));
        assert_eq!(count(&mut conn, "user_presence WHERE end_time IS NULL"), 4);
        all_ok(w.write_pages(&[&users(dup)]));
        let want_p: usize = late.iter().map(|u| u.primary_presence.len()).sum();
        let want_r: usize = late.iter().map(|u| u.routing_status.len()).sum();
        assert_eq!(count(&mut conn, "user_presence") as usize, want_p);
        assert_eq!(count(&mut conn, "user_routing_status") as usize, want_r);
        assert_eq!(count(&mut conn, "user_presence WHERE end_time IS NULL"), 0);
        assert_eq!(
            count(&mut conn, "user_routing_status WHERE end_time IS NULL"),
            0
        );
    }
}

/// `Com_stmt_prepare` of the connection itself (MariaDB's session status).
fn session_prepares(conn: &mut Connection) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[diesel(column_name = Value)]
        value: String,
    }
    let Connection::Mysql(c) = conn else {
        panic!("MariaDB only")
    };
    let rows: Vec<Status> = diesel::RunQueryDsl::load(
        diesel::sql_query("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'"),
        c,
    )
    .unwrap();
    rows[0].value.parse().unwrap()
}

#[test]
fn inserts_are_prepared_once_per_connection() {
    // Preparing a multi-row INSERT cost more than running it: batches of any size must reuse
    // the few statements of fixed row counts prepared by the first batches.
    let (recs, now) = sim_thousand();
    let db = TestDb::mysql();
    let mut conn = db.connect();
    let limits = sluice::storage::write::StatementLimits {
        rows_per_statement: 1000,
        max_statement_bytes: 4 << 20,
    };
    let write = |conn: &mut Connection, recs: &[ConversationRecord]| {
        let p = page(recs);
        sluice::storage::write::write_batch(conn, &[&p], now, limits, None, &Default::default())
            .unwrap()
    };
    // Warm up: every statement size of every table.
    write(&mut conn, &recs[..700]);
    let before = session_prepares(&mut conn);
    for chunk in recs[700..].chunks(37) {
        write(&mut conn, chunk);
    }
    let prepared = session_prepares(&mut conn) - before;
    let batches = recs[700..].chunks(37).count() as i64;
    // Per batch only the id lookup (an IN list of varying length) is prepared anew.
    assert!(
        prepared <= batches * 2,
        "{prepared} statements prepared for {batches} batches"
    );
    assert_eq!(conversation_counts(&mut conn), expected_rows(&recs));
}
