//! The schema sized for ingest (migration 2026-12-06-000005) and re-ingest in place (issue
//! #17): a changed conversation is rewritten by natural key with exactly its new content (the
//! digest skip never skips a change), an identical one is not rewritten, and a database made
//! by the earlier migrations upgrades in place — and back — with its data and its reports
//! unchanged. MariaDB and SQLite.
use crate::common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::convs::{self, expected_rows};
use common::db::{column_names, conversation_counts, dump, TestDb};
use serde_json::Value;
use sluice::genesys::model::{ReceivedConversation, UserDetail};
use sluice::report::{self, ReportName, ReportTable};
use sluice::storage::migrations::{migrate, migrate_cli, revert_migrations, MigrateArgs};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{write_batch, BatchOutcome, PageRecords, PageWrite, StatementLimits};
use sluice::storage::{run_migrations, Connection};

const TABLES: [&str; 5] = [
    "conversations",
    "participants",
    "sessions",
    "segments",
    "session_metrics",
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap()
}

fn limits() -> StatementLimits {
    StatementLimits {
        rows_per_statement: 1000,
        max_statement_bytes: 4 << 20,
    }
}

fn write(
    conn: &mut Connection,
    recs: &[ConversationRecord],
    users: &[UserDetail],
    now: DateTime<Utc>,
) -> BatchOutcome {
    let mut pages = vec![PageWrite {
        partition_id: 0,
        lease_token: String::new(),
        page: PageRecords::Conversations(recs.to_vec()),
        completion: None,
    }];
    if !users.is_empty() {
        pages.push(PageWrite {
            partition_id: 0,
            lease_token: String::new(),
            page: PageRecords::Users(users.to_vec()),
            completion: None,
        });
    }
    let refs: Vec<&PageWrite> = pages.iter().collect();
    write_batch(conn, &refs, now, limits(), None, &Default::default()).unwrap()
}

/// `rec` with its JSON changed by `f` (the raw JSON re-serialized, so its digest changes).
fn edited(rec: &ConversationRecord, f: impl FnOnce(&mut Value)) -> ConversationRecord {
    let mut v: Value = serde_json::from_str(&rec.received.raw_json).unwrap();
    f(&mut v);
    let text = serde_json::to_string(&v).unwrap();
    let received: ReceivedConversation = serde_json::from_str(&text).unwrap();
    ConversationRecord {
        is_final: rec.is_final,
        received,
    }
}

fn sessions_mut(v: &mut Value) -> Vec<&mut Value> {
    v["participants"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|p| array(p, "sessions").into_iter().flatten())
        .collect()
}

/// The array `v[key]`, if present (indexing a `&mut Value` would insert a null).
fn array<'v>(v: &'v mut Value, key: &str) -> Option<&'v mut Vec<Value>> {
    v.get_mut(key).and_then(Value::as_array_mut)
}

fn id_of(rec: &ConversationRecord) -> String {
    rec.received.conversation.conversation_id.clone()
}

/// Lines of `table` (see [`dump`]) that belong to conversation `id`.
fn lines_of(conn: &mut Connection, table: &str, id: &str, exclude: &[&str]) -> Vec<String> {
    dump(conn, table, exclude)
        .into_iter()
        .filter(|l| l.starts_with(&format!("{id}|")))
        .collect()
}

#[test]
fn the_digest_skip_never_skips_a_change_and_rewrites_only_what_changed() {
    let base = t0();
    let v1 = convs::final_records(30, base, Duration::minutes(3));
    let mut v2 = v1.clone();
    // 0: one metric's value. 1: one segment's end. 2: one wrap-up code. 3: a segment removed.
    // 4: a session added. 5: a participant removed. The other 24: identical.
    v2[0] = edited(&v1[0], |v| {
        let mut s = sessions_mut(v);
        let m = s
            .iter_mut()
            .find_map(|s| array(s, "metrics").filter(|m| !m.is_empty()))
            .unwrap();
        m[0]["value"] = Value::from(m[0]["value"].as_i64().unwrap() + 1);
    });
    v2[1] = edited(&v1[1], |v| {
        let mut s = sessions_mut(v);
        let g = s
            .iter_mut()
            .flat_map(|s| array(s, "segments").into_iter().flatten())
            .find(|g| g.get("segmentEnd").is_some())
            .unwrap();
        let end = sluice::genesys::model::parse_instant(g["segmentEnd"].as_str().unwrap()).unwrap();
        g["segmentEnd"] = Value::from(sluice::genesys::model::instant::format(
            &(end + Duration::seconds(1)),
        ));
    });
    v2[2] = edited(&v1[2], |v| {
        let mut s = sessions_mut(v);
        let segs: Vec<&mut Value> = s
            .iter_mut()
            .flat_map(|s| array(s, "segments").into_iter().flatten())
            .collect();
        let g = segs.into_iter().last().unwrap();
        g["wrapUpCode"] = Value::from("wrap-revised");
    });
    v2[3] = edited(&v1[3], |v| {
        let mut s = sessions_mut(v);
        let segs = s
            .iter_mut()
            .find_map(|s| array(s, "segments").filter(|g| g.len() >= 2))
            .unwrap();
        segs.pop();
    });
    v2[4] = edited(&v1[4], |v| {
        let at = v["conversationStart"].clone();
        v["participants"][0]["sessions"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "sessionId": "s-added", "mediaType": "callback",
                "segments": [{"segmentStart": at, "segmentType": "alert"}],
                "metrics": [{"name": "nOffered", "value": 1, "emitDate": at}]
            }));
    });
    v2[5] = edited(&v1[5], |v| {
        v["participants"].as_array_mut().unwrap().pop();
    });
    let changed = 6;
    let changed_rows: usize = expected_rows(&v2[..changed]).iter().sum();

    for db in TestDb::both() {
        let backend = db.backend();
        let mut conn = db.connect();
        let first = write(&mut conn, &v1, &[], base + Duration::days(2));
        assert_eq!(first.conversations_changed, 0);
        let before: Vec<Vec<String>> = TABLES
            .iter()
            .map(|t| dump(&mut conn, t, &["last_ingested_at"]))
            .collect();

        let skip = ["id", "first_ingested_at", "last_ingested_at"];
        let before_rows: Vec<Vec<String>> =
            TABLES.iter().map(|t| dump(&mut conn, t, &skip)).collect();

        let later = base + Duration::days(3);
        let out = write(&mut conn, &v2, &[], later);
        assert_eq!(out.conversations_changed, changed as u64, "{backend:?}");
        assert_eq!(
            out.conversations_unchanged,
            (v2.len() - changed) as u64,
            "{backend:?}"
        );
        // Rows written = rows of the new content that were not stored before (by value, ids
        // aside): the changed conversations' own rows and their differing children only.
        let new_or_differing: usize = TABLES
            .iter()
            .zip(&before_rows)
            .map(|(t, before)| {
                let mut left: Vec<&String> = before.iter().collect();
                dump(&mut conn, t, &skip)
                    .iter()
                    .filter(|line| match left.iter().position(|b| *b == *line) {
                        Some(i) => {
                            left.swap_remove(i);
                            false
                        }
                        None => true,
                    })
                    .count()
            })
            .sum();
        assert!(new_or_differing >= changed, "{backend:?}");
        assert_eq!(
            out.rows_written, new_or_differing as u64,
            "{backend:?}: only the changed conversations' differing rows are written"
        );
        assert!(
            (out.rows_written as usize) < changed_rows,
            "{backend:?}: children left as they were are not counted as written"
        );

        // Exactly the new content: the same tables as a database that only ever saw v2.
        let fresh = same_backend(&db);
        let mut fconn = fresh.connect();
        write(&mut fconn, &v2, &[], later);
        for t in TABLES {
            assert_eq!(
                dump(&mut conn, t, &skip),
                dump(&mut fconn, t, &skip),
                "{backend:?}: {t} differs from the new content"
            );
        }
        assert_eq!(conversation_counts(&mut conn), expected_rows(&v2));

        // first_ingested_at kept on the rewritten ones.
        for rec in &v2[..changed] {
            let l = lines_of(&mut conn, "conversations", &id_of(rec), &[]);
            assert!(
                l[0].contains("2024-03-03 08:00:00") && l[0].contains("2024-03-04 08:00:00"),
                "{backend:?}: {l:?}"
            );
        }

        // The changed metric is one row rewritten in place (same id, new value); the
        // conversation's other metrics are untouched.
        let m_before: Vec<&String> = before[4]
            .iter()
            .filter(|l| l.starts_with(&format!("{}|", id_of(&v1[0]))))
            .collect();
        let m_after = lines_of(&mut conn, "session_metrics", &id_of(&v1[0]), &[]);
        assert_eq!(m_before.len(), m_after.len());
        let differing = m_after.iter().filter(|l| !m_before.contains(l)).count();
        assert_eq!(differing, 1, "{backend:?}: {m_before:?} -> {m_after:?}");
        // The changed segment end and wrap-up code: one segment row each, same id.
        for (k, what) in [(1, "segment end"), (2, "wrap-up code")] {
            let g_before: Vec<&String> = before[3]
                .iter()
                .filter(|l| l.starts_with(&format!("{}|", id_of(&v1[k]))))
                .collect();
            let g_after = lines_of(&mut conn, "segments", &id_of(&v1[k]), &[]);
            assert_eq!(g_before.len(), g_after.len());
            assert_eq!(
                g_after.iter().filter(|l| !g_before.contains(l)).count(),
                1,
                "{backend:?}: {what}"
            );
        }
        assert!(
            lines_of(&mut conn, "segments", &id_of(&v1[2]), &[])
                .iter()
                .any(|l| l.contains("wrap-revised")),
            "{backend:?}"
        );
        // Identical conversations: not rewritten (children with the same ids and values, the
        // row with the same content; only last_ingested_at moved).
        for rec in &v1[changed..] {
            for (i, t) in TABLES.iter().enumerate() {
                let was: Vec<&String> = before[i]
                    .iter()
                    .filter(|l| l.starts_with(&format!("{}|", id_of(rec))))
                    .collect();
                let now: Vec<String> = lines_of(&mut conn, t, &id_of(rec), &["last_ingested_at"]);
                assert_eq!(was, now.iter().collect::<Vec<_>>(), "{backend:?}: {t}");
            }
        }
    }
}

/// Every report over the data's days, and what the tables hold.
struct Observed {
    reports: Vec<ReportTable>,
    tables: Vec<Vec<String>>,
    counts: [usize; 5],
}

fn observe(conn: &mut Connection, now: DateTime<Utc>) -> Observed {
    let from = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let to = from + Duration::days(3);
    let reports = [
        ReportName::QueueDaily,
        ReportName::AgentDaily,
        ReportName::WrapupDaily,
        ReportName::PresenceDaily,
        ReportName::Completeness,
    ]
    .iter()
    .map(|n| report::build(conn, *n, from, to, now).unwrap())
    .collect();
    let tables = TABLES
        .iter()
        .chain(&["user_presence", "user_routing_status"])
        .map(|t| dump(conn, t, &["id"]))
        .collect();
    Observed {
        reports,
        tables,
        counts: conversation_counts(conn),
    }
}

#[test]
fn a_database_of_the_earlier_migrations_upgrades_in_place_and_back() {
    let now = Utc.with_ymd_and_hms(2024, 3, 2, 2, 30, 0).unwrap();
    let ds = convs::sim_dataset(1200, 2, 12, now);
    let recs = convs::sim_records(&ds, now - Duration::hours(10), now, now);
    let d0 = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let users = ds.user_details(sluice::genesys::model::Interval::new(d0, now), now);
    assert!(recs.len() > 100 && users.len() >= 5);
    for db in TestDb::both() {
        let backend = db.backend();
        // Today's schema: the migrations up to 2026-12-06-000004.
        let mut conn = db.connect_raw();
        run_migrations(&mut conn).unwrap();
        let reverted = revert_migrations(&mut conn, 1).unwrap();
        assert!(reverted[0].contains("000005"), "{reverted:?}");
        assert!(!column_names(&mut conn, "session_metrics").contains(&"id".to_string()));
        write(&mut conn, &recs, &users, now);
        let old = observe(&mut conn, now);
        assert_eq!(old.counts, expected_rows(&recs), "{backend:?}");
        assert!(!old.reports[0].rows.is_empty() && !old.reports[2].rows.is_empty());

        // `sluice migrate`: in place, data and reports unchanged.
        drop(conn);
        let applied = migrate(&db.url).unwrap();
        assert_eq!(applied.len(), 1, "{backend:?}: {applied:?}");
        let mut conn = db.connect_raw();
        for t in ["participants", "segments", "session_metrics"] {
            assert!(
                column_names(&mut conn, t).contains(&"id".to_string()),
                "{backend:?}: {t}"
            );
        }
        let new = observe(&mut conn, now);
        assert_eq!(old.counts, new.counts, "{backend:?}");
        assert!(
            old.tables == new.tables,
            "{backend:?}: data changed by the upgrade"
        );
        assert!(
            old.reports == new.reports,
            "{backend:?}: reports changed by the upgrade"
        );

        // `sluice migrate --revert 1`: back, data and reports unchanged.
        drop(conn);
        let back = migrate_cli(&db.url, &MigrateArgs { revert: Some(1) }).unwrap();
        assert_eq!(back.len(), 1);
        let mut conn = db.connect_raw();
        assert!(!column_names(&mut conn, "participants").contains(&"id".to_string()));
        let reverted = observe(&mut conn, now);
        assert!(
            old.tables == reverted.tables,
            "{backend:?}: data changed by the revert"
        );
        assert!(
            old.reports == reverted.reports,
            "{backend:?}: reports changed by the revert"
        );

        // Upgraded again, the Writer rewrites the migrated rows in place (their ids assigned
        // by the migration) and appends new ones after them.
        drop(conn);
        migrate(&db.url).unwrap();
        let mut conn = db.connect_raw();
        let later = now + Duration::days(2);
        let fin = convs::sim_records(&ds, now - Duration::hours(10), now, later);
        let out = write(&mut conn, &fin, &[], later);
        assert!(out.conversations_changed > 0, "{backend:?}");
        assert_eq!(
            conversation_counts(&mut conn),
            expected_rows(&fin),
            "{backend:?}"
        );
    }
}

/// A fresh database of `db`'s backend.
fn same_backend(db: &TestDb) -> TestDb {
    match db.backend() {
        sluice::storage::Backend::Mysql => TestDb::mysql(),
        sluice::storage::Backend::Sqlite => TestDb::sqlite(),
    }
}
