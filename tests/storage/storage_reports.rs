//! Each report's numbers, on MariaDB and SQLite, against figures computed here directly from
//! the conversations and user timelines that were written (no SQL involved), with data that
//! crosses midnight.
use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::convs;
use common::db::TestDb;
use sluice::clock::ManualClock;
use sluice::genesys::model::{Conversation, UserDetail};
use sluice::report::{self, Tally};
use sluice::storage::checkpoint::{self, Dataset, NewPartition};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{
    BatchWriter, PageRecords, PageWrite, PartitionCompletion, WriterConfig,
};

fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

/// (queue, day) → [offered, answered, abandoned] and tallies of tHandle, tTalk, tHeld, tAcw.
type QueueTruth = BTreeMap<(NaiveDate, String), ([i64; 3], [Tally; 4])>;

fn queue_truth(convs: &[Conversation], from: DateTime<Utc>, to: DateTime<Utc>) -> QueueTruth {
    let mut t = QueueTruth::new();
    for c in convs {
        for p in &c.participants {
            for s in &p.sessions {
                let Some(q) = s.segments.iter().find_map(|g| g.queue_id.clone()) else {
                    continue;
                };
                for m in &s.metrics {
                    if m.emit_date < from || m.emit_date >= to {
                        continue;
                    }
                    let e = t.entry((day(m.emit_date), q.clone())).or_default();
                    let tally = |x: &mut Tally| {
                        x.count += 1;
                        x.total_ms += m.value;
                    };
                    match m.name.as_str() {
                        "nOffered" => e.0[0] += m.value,
                        "tAnswered" => e.0[1] += 1,
                        "tAbandon" => e.0[2] += 1,
                        "tHandle" => tally(&mut e.1[0]),
                        "tTalk" => tally(&mut e.1[1]),
                        "tHeld" => tally(&mut e.1[2]),
                        "tAcw" => tally(&mut e.1[3]),
                        _ => {}
                    }
                }
            }
        }
    }
    t
}

/// (user, day) → [handled, handle, talk, hold, acw].
fn agent_truth(
    convs: &[Conversation],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeMap<(NaiveDate, String), [i64; 5]> {
    let mut t = BTreeMap::new();
    for c in convs {
        for p in &c.participants {
            let (Some(user), Some("agent" | "user")) = (&p.user_id, p.purpose.as_deref()) else {
                continue;
            };
            for s in &p.sessions {
                for m in &s.metrics {
                    if m.emit_date < from || m.emit_date >= to {
                        continue;
                    }
                    let k = match m.name.as_str() {
                        "tHandle" => 1,
                        "tTalk" => 2,
                        "tHeld" => 3,
                        "tAcw" => 4,
                        _ => continue,
                    };
                    let e: &mut [i64; 5] = t.entry((day(m.emit_date), user.clone())).or_default();
                    e[k] += m.value;
                    if k == 1 {
                        e[0] += 1;
                    }
                }
            }
        }
    }
    t
}

/// (day, user, kind, status) → ms: each record clipped to the range (an open one to `now`)
/// and cut at midnights, without the library's helper.
fn presence_truth(
    users: &[UserDetail],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> BTreeMap<(NaiveDate, String, String, String), i64> {
    let mut t = BTreeMap::new();
    let mut add = |d: NaiveDate, u: &str, k: &str, s: &str, ms: i64| {
        *t.entry((d, u.to_string(), k.to_string(), s.to_string()))
            .or_insert(0) += ms;
    };
    for u in users {
        let mut seen = std::collections::HashSet::new();
        for p in &u.primary_presence {
            if !seen.insert(("p", p.start_time)) {
                continue;
            }
            let (s, e) = (p.start_time.max(from), p.end_time.unwrap_or(now).min(to));
            // Independent midnight cut: step through whole days.
            let mut a = s;
            while a < e {
                let b = (Utc.from_utc_datetime(&day(a).and_hms_opt(0, 0, 0).unwrap())
                    + Duration::days(1))
                .min(e);
                add(
                    day(a),
                    &u.user_id,
                    "presence",
                    p.system_presence.as_deref().unwrap(),
                    (b - a).num_milliseconds(),
                );
                a = b;
            }
        }
        for r in &u.routing_status {
            if !seen.insert(("r", r.start_time)) {
                continue;
            }
            let (s, e) = (r.start_time.max(from), r.end_time.unwrap_or(now).min(to));
            let mut a = s;
            while a < e {
                let b = (Utc.from_utc_datetime(&day(a).and_hms_opt(0, 0, 0).unwrap())
                    + Duration::days(1))
                .min(e);
                add(
                    day(a),
                    &u.user_id,
                    "routing",
                    r.routing_status.as_deref().unwrap(),
                    (b - a).num_milliseconds(),
                );
                a = b;
            }
        }
    }
    t
}

struct Fixture {
    records: Vec<ConversationRecord>,
    users: Vec<UserDetail>,
    now: DateTime<Utc>,
}

/// 400 conversations from 22:00 on 1 March, one every 37 s (many cross midnight), the last
/// ones still in progress at `now`; 6 users over two days.
fn hand_made() -> Fixture {
    let base = Utc.with_ymd_and_hms(2024, 3, 1, 22, 0, 0).unwrap();
    let now = base + Duration::seconds(37 * 395);
    let records = (0..400)
        .map(|i| convs::record(i, base + Duration::seconds(37 * i as i64), now))
        .filter(|r| r.received.conversation.conversation_start <= now)
        .collect();
    let d0 = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let mut users = Vec::new();
    for k in 0..6u32 {
        let mut u = convs::user_detail(&format!("u-{k}"), d0, k * 11, now);
        let u2 = convs::user_detail(&format!("u-{k}"), d0 + Duration::days(1), k * 5, now);
        // Day 2's timeline starts after day 1's ends.
        let last_end = u.primary_presence.last().and_then(|p| p.end_time);
        u.primary_presence.extend(
            u2.primary_presence
                .into_iter()
                .filter(|p| Some(p.start_time) >= last_end),
        );
        u.routing_status.extend(
            u2.routing_status
                .into_iter()
                .filter(|p| Some(p.start_time) >= last_end),
        );
        users.push(u);
    }
    Fixture {
        records,
        users,
        now,
    }
}

fn check_reports(db: &TestDb, fx: &Fixture) {
    let mut conn = db.connect();
    let clock = ManualClock::new(fx.now);
    let cfg = WriterConfig {
        clock: Arc::new(clock.clone()),
        ..WriterConfig::default()
    };
    // Two partitions per day of the data: one verified, one not (its numbers kept).
    let from = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let to = from + Duration::days(3);
    let parts = checkpoint::plan_partitions(
        &mut conn,
        &[
            NewPartition {
                dataset: Dataset::Conversations,
                range_start: from,
                range_end: from + Duration::days(1),
            },
            NewPartition {
                dataset: Dataset::Conversations,
                range_start: from + Duration::days(1),
                range_end: from + Duration::days(2),
            },
            NewPartition {
                dataset: Dataset::Users,
                range_start: from,
                range_end: from + Duration::days(2),
            },
        ],
        fx.now,
    )
    .unwrap();
    let lease = |conn: &mut _, id| {
        checkpoint::lease_partition(conn, id, "t", std::time::Duration::from_secs(60), fx.now)
            .unwrap()
            .unwrap()
    };
    let (a, b, u) = (parts[0].id, parts[1].id, parts[2].id);
    let (ta, tb, tu) = (
        lease(&mut conn, a),
        lease(&mut conn, b),
        lease(&mut conn, u),
    );
    let split = fx
        .records
        .iter()
        .position(|r| r.received.conversation.conversation_start >= from + Duration::days(1))
        .unwrap();
    let pages = [
        PageWrite {
            partition_id: a,
            lease_token: ta,
            page: PageRecords::Conversations(fx.records[..split].to_vec()),
            completion: Some(PartitionCompletion {
                total_hits: split as i64,
                received: split as i64,
                verified: true,
                is_final: true,
                settled: true,
            }),
        },
        PageWrite {
            partition_id: b,
            lease_token: tb,
            page: PageRecords::Conversations(fx.records[split..].to_vec()),
            completion: Some(PartitionCompletion {
                total_hits: (fx.records.len() - split) as i64 + 3,
                received: (fx.records.len() - split) as i64,
                verified: false,
                is_final: false,
                settled: true,
            }),
        },
        PageWrite {
            partition_id: u,
            lease_token: tu,
            page: PageRecords::Users(fx.users.clone()),
            completion: Some(PartitionCompletion {
                total_hits: 6,
                received: 6,
                verified: true,
                is_final: false,
                settled: true,
            }),
        },
    ];
    let mut w = BatchWriter::new(db.url.clone(), cfg);
    for r in w.write_pages(&pages.iter().collect::<Vec<_>>()) {
        r.unwrap();
    }

    let convs: Vec<Conversation> = fx
        .records
        .iter()
        .map(|r| r.received.conversation.clone())
        .collect();
    let backend = db.backend();

    // queue-daily
    let got = report::queue_daily(&mut conn, from, to).unwrap();
    let want = queue_truth(&convs, from, to);
    assert_eq!(got.len(), want.len(), "{backend:?}");
    assert!(
        got.iter()
            .map(|r| r.day)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2
    );
    for r in &got {
        let (n, t) = &want[&(r.day, r.queue_id.clone())];
        assert_eq!(
            [r.offered, r.answered, r.abandoned],
            *n,
            "{backend:?} {r:?}"
        );
        assert_eq!([r.handle, r.talk, r.hold, r.acw], *t, "{backend:?} {r:?}");
    }
    // A narrower range counts only what was emitted inside it.
    let mid = Utc.with_ymd_and_hms(2024, 3, 2, 0, 0, 0).unwrap();
    let got2 = report::queue_daily(&mut conn, mid, to).unwrap();
    assert_eq!(got2.len(), queue_truth(&convs, mid, to).len());
    assert!(got2.iter().all(|r| r.day == mid.date_naive()));

    // agent-daily
    let got = report::agent_daily(&mut conn, from, to).unwrap();
    let want = agent_truth(&convs, from, to);
    assert!(want.len() >= 2, "the fixture has agents' work");
    assert_eq!(got.len(), want.len(), "{backend:?}");
    for r in &got {
        let w = want[&(r.day, r.user_id.clone())];
        assert_eq!(
            [r.handled, r.handle_ms, r.talk_ms, r.hold_ms, r.acw_ms],
            w,
            "{backend:?} {r:?}"
        );
    }

    // presence-daily
    let got = report::presence_daily(&mut conn, from, to, fx.now).unwrap();
    let want = presence_truth(&fx.users, from, to, fx.now);
    assert!(want.len() >= 10, "the fixture has user timelines");
    let got_map: BTreeMap<_, _> = got
        .iter()
        .map(|r| {
            (
                (
                    r.day,
                    r.user_id.clone(),
                    r.kind.to_string(),
                    r.status.clone(),
                ),
                r.ms,
            )
        })
        .collect();
    assert_eq!(got_map, want, "{backend:?}");
    // Every user's time on day 1 is within 24 h per kind.
    for k in ["presence", "routing"] {
        let mut per_user: BTreeMap<&str, i64> = BTreeMap::new();
        for r in got
            .iter()
            .filter(|r| r.kind == k && r.day == from.date_naive())
        {
            *per_user.entry(&r.user_id).or_default() += r.ms;
        }
        assert!(per_user.values().all(|ms| *ms <= 86_400_000));
    }

    // completeness
    let got = report::completeness(&mut conn, from, to).unwrap();
    assert_eq!(got.len(), 3);
    let started = |d: NaiveDate| convs.iter().filter(move |c| day(c.conversation_start) == d);
    for r in &got {
        assert_eq!(r.conversations as usize, started(r.day).count(), "{r:?}");
        assert_eq!(
            r.in_progress as usize,
            started(r.day)
                .filter(|c| c.conversation_end.is_none())
                .count()
        );
    }
    assert_eq!(
        (got[0].partitions, got[0].verified, got[0].unverified),
        (1, 1, 0)
    );
    assert_eq!(
        (got[1].partitions, got[1].verified, got[1].unverified),
        (1, 0, 1)
    );
    assert!(got[1].unverified_partitions[0].contains(&format!(
        "received {} of {}",
        fx.records.len() - split,
        fx.records.len() - split + 3
    )));
    assert_eq!((got[0].user_partitions, got[1].user_partitions), (1, 1));
    assert_eq!(got[2].partitions + got[2].conversations, 0);
    assert!(
        got[1].in_progress > 0,
        "the fixture has conversations in progress"
    );

    // The CLI's renderings carry every row.
    let table = report::build(&mut conn, report::ReportName::QueueDaily, from, to, fx.now).unwrap();
    let mut out = Vec::new();
    table.write(&mut out, report::OutputFormat::Csv).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap().lines().count(),
        1 + report::queue_daily(&mut conn, from, to).unwrap().len()
    );
}

/// The simulator's org seen at 02:30 on 2 March: conversations started from 18:00 on
/// 1 March (those around midnight cross it; the latest are in progress), and every user's
/// presence and routing timeline over both days.
fn simulator() -> Fixture {
    let now = Utc.with_ymd_and_hms(2024, 3, 2, 2, 30, 0).unwrap();
    let ds = convs::sim_dataset(2400, 2, 25, now);
    let records = convs::sim_records(
        &ds,
        now - Duration::hours(8) - Duration::minutes(30),
        now,
        now,
    );
    let d0 = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let users = ds.user_details(sluice::genesys::model::Interval::new(d0, now), now);
    assert!(
        users.len() >= 10 && records.len() > 300,
        "{} {}",
        users.len(),
        records.len()
    );
    Fixture {
        records,
        users,
        now,
    }
}

#[test]
fn reports_match_numbers_computed_from_the_simulator_data() {
    let fx = simulator();
    for db in TestDb::both() {
        check_reports(&db, &fx);
    }
}

#[test]
fn reports_match_numbers_computed_from_hand_made_data() {
    let fx = hand_made();
    for db in TestDb::both() {
        check_reports(&db, &fx);
    }
}
