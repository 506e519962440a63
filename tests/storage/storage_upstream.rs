//! Changes and deletions upstream, on MariaDB and SQLite: a re-fetched conversation whose
//! content digest is unchanged is not rewritten (its children stay as they are), a changed one
//! is replaced with its children, and what a block's *verified* re-fetch no longer holds is
//! deleted in the completing transaction — never on an unverified one. Databases made by the
//! previous migrations upgrade in place and back with their data.
use crate::common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::convs::{self, expected_rows};
use common::db::{conversation_counts, conversation_ids, count, dump, TestDb};
use serde_json::Value;
use sluice::clock::{Clock, ManualClock};
use sluice::genesys::model::UserDetail;
use sluice::storage::checkpoint::{self, Dataset, NewPartition, PartitionStatus};
use sluice::storage::migrations::{revert_migrations, run_migrations};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{
    BatchWriter, PageRecords, PageWrite, PartitionCompletion, WriterConfig,
};
use sluice::storage::{Connection, StorageError};

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

/// `rec` as received after `edit` of its JSON (re-serialized either way, so a digest differs
/// only when the content does).
fn edited(rec: &ConversationRecord, edit: impl FnOnce(&mut Value)) -> ConversationRecord {
    let mut v: Value = serde_json::from_str(&rec.received.raw_json).unwrap();
    edit(&mut v);
    let text = serde_json::to_string(&v).unwrap();
    ConversationRecord {
        received: serde_json::from_str(&text).unwrap(),
        is_final: rec.is_final,
    }
}

/// 300 of the simulator's final conversations of one day, re-serialized.
fn day_of_conversations() -> Vec<ConversationRecord> {
    let now = t0() + Duration::days(3);
    let ds = convs::sim_dataset(400, 4, 30, now);
    let mut recs = convs::sim_records(&ds, t0(), t0() + Duration::days(1), now);
    recs.truncate(300);
    assert_eq!(recs.len(), 300);
    recs.iter().map(|r| edited(r, |_| {})).collect()
}

fn page(id: i64, token: &str, recs: &[ConversationRecord]) -> PageWrite {
    PageWrite {
        partition_id: id,
        lease_token: token.to_owned(),
        page: PageRecords::Conversations(recs.to_vec()),
        completion: None,
    }
}

fn done(n: usize, verified: bool) -> PartitionCompletion {
    PartitionCompletion {
        total_hits: n as i64 + i64::from(!verified),
        received: n as i64,
        verified,
        // Not final: the test re-opens the block as a settle or resync would.
        is_final: false,
        settled: true,
    }
}

/// Re-opens finished block `id` (as settle or resync does) and leases it again.
fn relet(conn: &mut Connection, id: i64, now: DateTime<Utc>) -> String {
    let p = checkpoint::get_partition(conn, id).unwrap().unwrap();
    checkpoint::reopen_partitions(conn, p.dataset, p.range_start, p.range_end, now).unwrap();
    checkpoint::lease_partition(conn, id, "test", std::time::Duration::from_secs(600), now)
        .unwrap()
        .expect("re-opened block is leasable")
}

fn lease(conn: &mut Connection, dataset: Dataset, now: DateTime<Utc>) -> (i64, String) {
    let rows = checkpoint::plan_partitions(
        conn,
        &[NewPartition {
            dataset,
            range_start: t0(),
            range_end: t0() + Duration::days(1),
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

/// Writes `pages` then a completion page, all under one lease.
fn fetch_block(
    w: &mut BatchWriter,
    id: i64,
    token: &str,
    recs: &[ConversationRecord],
    verified: bool,
) -> Vec<Result<(), StorageError>> {
    let mut pages: Vec<PageWrite> = recs.chunks(100).map(|c| page(id, token, c)).collect();
    pages.push(PageWrite {
        completion: Some(done(recs.len(), verified)),
        ..page(id, token, &[])
    });
    let mut out = Vec::new();
    for p in &pages {
        out.extend(w.write_pages(&[p]));
    }
    out
}

/// The first session metric of a conversation's JSON.
fn first_metric(v: &mut Value) -> &mut Value {
    v["participants"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|p| p["sessions"].as_array_mut().unwrap().iter_mut())
        .find_map(|s| s.get_mut("metrics").and_then(|m| m.get_mut(0)))
        .expect("a conversation with a metric")
}

fn id_of(r: &ConversationRecord) -> String {
    r.received.conversation.conversation_id.clone()
}

#[test]
fn the_digest_skip_never_skips_a_change_and_rewrites_nothing_unchanged() {
    let recs = day_of_conversations();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(3));
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        for r in recs.chunks(100).map(|c| w.write_pages(&[&page(0, "", c)])) {
            r.into_iter().for_each(|r| r.unwrap());
        }
        assert_eq!(conversation_counts(&mut conn), expected_rows(&recs));
        assert_eq!(
            count(&mut conn, "conversations WHERE content_digest IS NULL"),
            0
        );
        // Mark every child row: a rewrite would wipe the mark.
        conn.batch_execute(
            "UPDATE segments SET error_code = 'mark'; UPDATE participants SET flagged_reason = 'mark'",
        )
        .unwrap();
        let segments = count(&mut conn, "segments") as usize;

        // Unchanged re-ingest: nothing rewritten, only last_ingested_at moves.
        clock.advance(Duration::hours(1));
        let before = w.counters();
        for r in recs.chunks(100).map(|c| w.write_pages(&[&page(0, "", c)])) {
            r.into_iter().for_each(|r| r.unwrap());
        }
        let c = w.counters();
        assert_eq!(
            c.conversations_unchanged - before.conversations_unchanged,
            300
        );
        assert_eq!(c.conversations_changed, 0);
        assert_eq!(c.rows_written, before.rows_written, "{:?}", db.backend());
        assert_eq!(
            count(&mut conn, "segments WHERE error_code = 'mark'") as usize,
            segments
        );
        assert_eq!(
            count(
                &mut conn,
                "conversations WHERE last_ingested_at = first_ingested_at"
            ),
            0,
            "last_ingested_at moved"
        );

        // One conversation with a single changed metric, one with an added wrap-up segment.
        let ia = (10..recs.len())
            .find(|&i| {
                recs[i]
                    .received
                    .conversation
                    .participants
                    .iter()
                    .flat_map(|p| &p.sessions)
                    .any(|s| !s.metrics.is_empty())
            })
            .unwrap();
        let (a, b) = (id_of(&recs[ia]), id_of(&recs[ia + 1]));
        let metric_changed = edited(&recs[ia], |v| {
            let m = first_metric(v);
            m["value"] = Value::from(m["value"].as_i64().unwrap_or(0) + 1);
        });
        let wrapup_added = edited(&recs[ia + 1], |v| {
            let s = &mut v["participants"][0]["sessions"][0];
            let at = s["segments"][0]["segmentStart"].clone();
            s["segments"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "segmentStart": at, "segmentType": "wrapup", "wrapUpCode": "late-wrapup"
                }));
        });
        let mut again = recs.clone();
        again[ia] = metric_changed.clone();
        again[ia + 1] = wrapup_added.clone();
        clock.advance(Duration::hours(1));
        for r in again.chunks(100).map(|c| w.write_pages(&[&page(0, "", c)])) {
            r.into_iter().for_each(|r| r.unwrap());
        }
        let c = w.counters();
        assert_eq!(c.conversations_changed, 2, "{:?}", db.backend());
        assert_eq!(conversation_counts(&mut conn), expected_rows(&again));
        // The two are rewritten (marks gone, new content in), the rest untouched.
        let unmarked = |conn: &mut Connection, id: &str| {
            count(
                conn,
                &format!("segments WHERE conversation_id = '{id}' AND error_code IS NULL"),
            )
        };
        assert!(unmarked(&mut conn, &a) > 0 && unmarked(&mut conn, &b) > 0);
        assert_eq!(
            count(&mut conn, "segments WHERE error_code IS NULL") as usize,
            expected_rows(&[metric_changed.clone(), wrapup_added.clone()])[3]
        );
        assert_eq!(
            count(
                &mut conn,
                &format!("segments WHERE conversation_id = '{b}' AND wrap_up_code = 'late-wrapup'")
            ),
            1
        );
        let m = metric_changed
            .received
            .conversation
            .participants
            .iter()
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.metrics)
            .next()
            .unwrap();
        assert_eq!(
            count(
                &mut conn,
                &format!(
                    "session_metrics WHERE conversation_id = '{a}' AND name = '{}' AND value = {}",
                    m.name, m.value
                )
            ),
            1
        );
    }
}

#[test]
fn a_verified_refetch_deletes_what_upstream_deleted_and_an_unverified_one_nothing() {
    let recs = day_of_conversations();
    // A conversation of the next day (another block) that this block's fetch never returns.
    let neighbour = edited(&recs[0], |v| {
        v["conversationId"] = Value::from("neighbour");
        v["conversationStart"] = Value::from("2024-03-02T00:00:00.000Z");
    });
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(3));
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        w.write_pages(&[&page(0, "", std::slice::from_ref(&neighbour))])[0]
            .clone()
            .unwrap();
        let (id, token) = lease(&mut conn, Dataset::Conversations, clock.now());
        for r in fetch_block(&mut w, id, &token, &recs, true) {
            r.unwrap();
        }
        assert_eq!(w.counters().conversations_deleted, 0);

        // Genesys deletes 3 conversations; an unverified re-fetch proves nothing.
        clock.advance(Duration::days(2));
        let kept: Vec<ConversationRecord> = recs
            .iter()
            .enumerate()
            .filter(|(i, _)| ![5, 150, 299].contains(i))
            .map(|(_, r)| r.clone())
            .collect();
        let token = relet(&mut conn, id, clock.now());
        for r in fetch_block(&mut w, id, &token, &kept, false) {
            r.unwrap();
        }
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Unverified);
        assert_eq!(count(&mut conn, "conversations"), 301, "{:?}", db.backend());
        assert_eq!(w.counters().conversations_deleted, 0);

        // The verified re-fetch deletes them with all their children, and nothing else.
        clock.advance(Duration::hours(1));
        let token = relet(&mut conn, id, clock.now());
        for r in fetch_block(&mut w, id, &token, &kept, true) {
            r.unwrap();
        }
        let p = checkpoint::get_partition(&mut conn, id).unwrap().unwrap();
        assert_eq!(p.status, PartitionStatus::Done);
        assert_eq!(w.counters().conversations_deleted, 3, "{:?}", db.backend());
        let mut truth = kept.clone();
        truth.push(neighbour.clone());
        assert_eq!(conversation_counts(&mut conn), expected_rows(&truth));
        let mut want: Vec<String> = truth.iter().map(id_of).collect();
        want.sort();
        assert_eq!(conversation_ids(&mut conn), want);
    }
}

fn users_page(id: i64, token: &str, users: Vec<UserDetail>) -> PageWrite {
    PageWrite {
        partition_id: id,
        lease_token: token.to_owned(),
        page: PageRecords::Users(users),
        completion: None,
    }
}

#[test]
fn user_records_deleted_upstream_go_with_the_verified_refetch() {
    let far = t0() + Duration::days(3);
    let users: Vec<UserDetail> = (0..4)
        .map(|k| convs::user_detail(&format!("u-{k}"), t0(), k * 7, far))
        .collect();
    let mut fewer = users.clone();
    fewer[1].primary_presence.remove(2);
    fewer[2].routing_status.remove(0);
    fewer.remove(3);
    let all_p: usize = users.iter().map(|u| u.primary_presence.len()).sum();
    let all_r: usize = users.iter().map(|u| u.routing_status.len()).sum();
    // Gone upstream: two records of the day, and u-3's records that start within the day (its
    // last one starts after midnight: the next block's, kept).
    let end = t0() + Duration::days(1);
    let gone = 2
        + users[3]
            .primary_presence
            .iter()
            .filter(|p| p.start_time < end)
            .count()
        + users[3]
            .routing_status
            .iter()
            .filter(|r| r.start_time < end)
            .count();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(far);
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        let (id, token) = lease(&mut conn, Dataset::Users, clock.now());
        let mut first = users_page(id, &token, users.clone());
        first.completion = Some(done(4, true));
        w.write_pages(&[&first])[0].clone().unwrap();
        assert_eq!(count(&mut conn, "user_presence") as usize, all_p);
        assert_eq!(
            count(&mut conn, "user_presence WHERE content_digest IS NULL"),
            0
        );

        clock.advance(Duration::hours(1));
        for verified in [false, true] {
            let token = relet(&mut conn, id, clock.now());
            let mut p = users_page(id, &token, fewer.clone());
            p.completion = Some(done(3, verified));
            w.write_pages(&[&p])[0].clone().unwrap();
            let deleted = if verified { gone } else { 0 };
            assert_eq!(
                (count(&mut conn, "user_presence") + count(&mut conn, "user_routing_status"))
                    as usize,
                all_p + all_r - deleted,
                "{:?} verified={verified}",
                db.backend()
            );
            assert_eq!(w.counters().user_records_deleted as usize, deleted);
        }
        let after_midnight = users[3]
            .primary_presence
            .iter()
            .filter(|p| p.start_time >= end)
            .count();
        assert_eq!(
            count(&mut conn, "user_presence WHERE user_id = 'u-3'") as usize,
            after_midnight
        );
    }
}

#[test]
fn an_unchanged_user_record_is_only_touched_and_a_changed_one_is_rewritten() {
    let far = t0() + Duration::days(3);
    let users: Vec<UserDetail> = (0..3)
        .map(|k| convs::user_detail(&format!("u-{k}"), t0(), k * 5, far))
        .collect();
    let mut revised = users.clone();
    revised[0].primary_presence[1].system_presence = Some("REVISED".into());
    revised[2].routing_status[0].routing_status = Some("REVISED".into());
    let records: usize = users
        .iter()
        .map(|u| u.primary_presence.len() + u.routing_status.len())
        .sum();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(far);
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        let (id, token) = lease(&mut conn, Dataset::Users, clock.now());
        w.write_pages(&[&users_page(id, &token, users.clone())])[0]
            .clone()
            .unwrap();
        // A mark the write path never sets: it survives only where a row is not rewritten.
        conn.batch_execute("UPDATE user_presence SET organization_presence_id = 'mark'")
            .unwrap();
        let before = w.counters();

        clock.advance(Duration::hours(2));
        let token = relet(&mut conn, id, clock.now());
        w.write_pages(&[&users_page(id, &token, revised.clone())])[0]
            .clone()
            .unwrap();
        let after = w.counters();
        let b = db.backend();
        assert_eq!(
            (after.user_records_unchanged - before.user_records_unchanged) as usize,
            records - 2,
            "{b:?}: every record but the two revised ones is unchanged"
        );
        assert_eq!(after.rows_written - before.rows_written, 2, "{b:?}");
        assert_eq!(
            count(
                &mut conn,
                "user_presence WHERE organization_presence_id = 'mark'"
            ) as usize,
            users
                .iter()
                .map(|u| u.primary_presence.len())
                .sum::<usize>()
                - 1,
            "{b:?}: the unchanged presence rows were not rewritten, the revised one was"
        );
        assert_eq!(
            count(&mut conn, "user_presence WHERE system_presence = 'REVISED'"),
            1
        );
        assert_eq!(
            count(
                &mut conn,
                "user_routing_status WHERE routing_status = 'REVISED'"
            ),
            1
        );
        // Stored at `far`, re-fetched at far + 2 h: none may be left before far + 1 h.
        let between = (far + Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
        for t in ["user_presence", "user_routing_status"] {
            let stale = count(
                &mut conn,
                &format!("{t} WHERE last_ingested_at < '{between}'"),
            );
            assert_eq!(
                stale, 0,
                "{b:?}: every re-fetched {t} record is marked received"
            );
        }
        assert_eq!(
            (count(&mut conn, "user_presence") + count(&mut conn, "user_routing_status")) as usize,
            records,
            "{b:?}: nothing duplicated"
        );
    }
}

#[test]
fn a_database_of_the_previous_schema_upgrades_in_place_and_back() {
    let recs = day_of_conversations();
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(3));
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        w.write_pages(&[&page(0, "", &recs)])[0].clone().unwrap();
        let run = checkpoint::start_run(&mut conn, "backfill", None, clock.now()).unwrap();
        let content = |conn: &mut Connection| {
            [
                "conversations",
                "segments",
                "session_metrics",
                "ingest_runs",
            ]
            .map(|t| {
                dump(
                    conn,
                    t,
                    &[
                        "content_digest",
                        "conversations_changed",
                        "conversations_deleted",
                        "user_records_deleted",
                        // The surrogate key of 2026-12-06-000005 (not in older schemas).
                        "id",
                    ],
                )
            })
        };
        let before = content(&mut conn);

        // Back to the previous schema: the digest columns go, the data stays.
        // (every migration added after it goes first)
        let later = migrations_since_digests(db.backend());
        let reverted = revert_migrations(&mut conn, later).unwrap();
        assert_eq!(reverted.len(), later);
        let last = reverted.last().map(String::as_str).unwrap_or_default();
        assert!(last.ends_with("000001"), "{reverted:?}");
        assert!(!common::db::column_names(&mut conn, "ingest_partitions")
            .contains(&"is_settled".to_string()));
        assert!(!common::db::column_names(&mut conn, "conversations")
            .contains(&"content_digest".to_string()));
        assert_eq!(content(&mut conn), before, "{:?}", db.backend());

        // Forward again: data intact, digests unknown (NULL).
        assert_eq!(run_migrations(&mut conn).unwrap().len(), later);
        assert!(common::db::column_names(&mut conn, "ingest_partitions")
            .contains(&"is_settled".to_string()));
        assert_eq!(content(&mut conn), before);
        assert_eq!(
            count(&mut conn, "conversations WHERE content_digest IS NULL"),
            300
        );
        assert_eq!(
            count(
                &mut conn,
                &format!("ingest_runs WHERE id = {run} AND conversations_deleted = 0")
            ),
            1
        );
        // Unknown digests are rewritten once (not counted as changes), then skipped.
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        w.write_pages(&[&page(0, "", &recs)])[0].clone().unwrap();
        assert_eq!(w.counters().conversations_unchanged, 0);
        assert_eq!(w.counters().conversations_changed, 0);
        assert_eq!(
            count(&mut conn, "conversations WHERE content_digest IS NULL"),
            0
        );
        w.write_pages(&[&page(0, "", &recs)])[0].clone().unwrap();
        assert_eq!(w.counters().conversations_unchanged, 300);
        assert_eq!(conversation_counts(&mut conn), expected_rows(&recs));
    }
}

#[test]
fn rows_another_fetch_stored_after_the_lease_began_are_never_deleted() {
    let recs = day_of_conversations();
    let (old, late) = (&recs[..100], &recs[100..110]);
    for db in TestDb::both() {
        let mut conn = db.connect();
        let clock = ManualClock::new(t0() + Duration::days(3));
        let mut w = BatchWriter::new(db.url.clone(), config(&clock));
        // Stored long ago; 5 of them are gone upstream since.
        w.write_pages(&[&page(0, "", old)])[0].clone().unwrap();
        clock.advance(Duration::days(1));
        // The block is leased through the Writer (as the engine does) ...
        let (id, token) = lease(&mut conn, Dataset::Conversations, clock.now());
        w.leased(id, &token);
        // ... then another fetch (a neighbouring block, a re-fetch by id) stores conversations
        // of this block's range that this fetch will not see (data that landed late).
        clock.advance(Duration::minutes(1));
        w.write_pages(&[&page(0, "", late)])[0].clone().unwrap();
        clock.advance(Duration::minutes(1));
        for r in fetch_block(&mut w, id, &token, &old[5..], true) {
            r.unwrap();
        }
        assert_eq!(w.counters().conversations_deleted, 5, "{:?}", db.backend());
        let mut want: Vec<String> = old[5..].iter().chain(late).map(id_of).collect();
        want.sort();
        assert_eq!(conversation_ids(&mut conn), want);
        assert!(w.ledger().is_empty(), "the completed lease is forgotten");
    }
}

/// The shipped migrations from the content-digest one on (it and every later one).
fn migrations_since_digests(backend: sluice::storage::Backend) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend.as_str());
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().as_ref() >= "2026-12-06-000001")
        .count()
}
