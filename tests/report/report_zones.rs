//! Reports in a zone: America/New_York across the March and November daylight-saving changes
//! and Asia/Kathmandu (+05:45), on MariaDB and SQLite, against figures computed here from the
//! simulator's conversations and timelines with chrono-tz directly (no SQL, no report code).
use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use common::convs;
use common::db::TestDb;
use sluice::clock::ManualClock;
use sluice::genesys::model::{Conversation, UserDetail};
use sluice::report::{self, Interval, ReportSpec};
use sluice::storage::write::{BatchWriter, PageRecords, PageWrite, WriterConfig};

struct Fixture {
    convs: Vec<Conversation>,
    users: Vec<UserDetail>,
    now: DateTime<Utc>,
}

/// The simulator's org over the 3 days before `now`, written to `db`.
fn load(db: &TestDb, now: DateTime<Utc>) -> Fixture {
    drop(db.connect()); // migrated
    let ds = convs::sim_dataset(600, 3, 10, now);
    let from = ds.history_start();
    let records = convs::sim_records(&ds, from, now, now);
    let users = ds.user_details(sluice::genesys::model::Interval::new(from, now), now);
    let mut w = BatchWriter::new(
        db.url.clone(),
        WriterConfig {
            clock: Arc::new(ManualClock::new(now)),
            ..WriterConfig::default()
        },
    );
    for page in [
        PageRecords::Conversations(records.clone()),
        PageRecords::Users(users.clone()),
    ] {
        let p = PageWrite {
            partition_id: 0,
            lease_token: String::new(),
            page,
            completion: None,
        };
        w.write_pages(&[&p]).into_iter().for_each(|r| r.unwrap());
    }
    Fixture {
        convs: records
            .into_iter()
            .map(|r| r.received.conversation)
            .collect(),
        users,
        now,
    }
}

/// First instant of local day `d`, straight from chrono-tz.
fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// The 15-minute interval (its start, as RFC 3339 with offset) of instant `t` in `tz`.
fn quarter(tz: Tz, t: DateTime<Utc>) -> String {
    let l = t.with_timezone(&tz).fixed_offset();
    let into = Duration::seconds(i64::from(l.minute() % 15 * 60 + l.second()))
        + Duration::nanoseconds(i64::from(l.nanosecond()));
    (l - into).to_rfc3339()
}

/// The metrics queue-daily reads (a row exists where any of them was emitted).
const REPORTED: [&str; 7] = [
    "nOffered",
    "tAnswered",
    "tAbandon",
    "tHandle",
    "tTalk",
    "tHeld",
    "tAcw",
];

/// Keys whose values differ between two maps (for readable failures).
fn differences<K: Ord + Clone + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in got {
        if want.get(k) != Some(v) {
            out.push(format!("{k:?}: got {v:?}, want {:?}", want.get(k)));
        }
    }
    for (k, v) in want {
        if !got.contains_key(k) {
            out.push(format!("{k:?}: missing, want {v:?}"));
        }
    }
    out.truncate(10);
    out
}

/// (local day, queue) → [offered, answered, abandoned, tHandle count, tHandle sum].
fn queue_truth(
    fx: &Fixture,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    key: impl Fn(DateTime<Utc>) -> String,
) -> BTreeMap<(String, String), [i64; 5]> {
    let mut t: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
    for c in &fx.convs {
        for p in &c.participants {
            for s in &p.sessions {
                let Some(q) = s.segments.iter().find_map(|g| g.queue_id.clone()) else {
                    continue;
                };
                for m in &s.metrics {
                    if m.emit_date < from || m.emit_date >= to {
                        continue;
                    }
                    if !REPORTED.contains(&m.name.as_str()) {
                        continue;
                    }
                    let e = t.entry((key(m.emit_date), q.clone())).or_default();
                    match m.name.as_str() {
                        "nOffered" => e[0] += m.value,
                        "tAnswered" => e[1] += 1,
                        "tAbandon" => e[2] += 1,
                        "tHandle" => {
                            e[3] += 1;
                            e[4] += m.value;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    t
}

/// (local day, user, kind, status) → ms, cutting each record at local midnights found with
/// chrono-tz.
fn presence_truth(
    fx: &Fixture,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> BTreeMap<(NaiveDate, String, String, String), i64> {
    let mut t = BTreeMap::new();
    for u in &fx.users {
        let mut seen = std::collections::HashSet::new();
        let recs = u
            .primary_presence
            .iter()
            .map(|p| {
                (
                    "presence",
                    p.start_time,
                    p.end_time,
                    p.system_presence.clone(),
                )
            })
            .chain(u.routing_status.iter().map(|r| {
                (
                    "routing",
                    r.start_time,
                    r.end_time,
                    r.routing_status.clone(),
                )
            }));
        for (kind, start, end, status) in recs {
            if !seen.insert((kind, start)) {
                continue;
            }
            let (mut a, e) = (start.max(from), end.unwrap_or(fx.now).min(to));
            while a < e {
                let d = a.with_timezone(&tz).date_naive();
                let b = local_midnight(tz, d.succ_opt().unwrap()).min(e);
                *t.entry((
                    d,
                    u.user_id.clone(),
                    kind.to_string(),
                    status.clone().unwrap_or_else(|| "UNKNOWN".into()),
                ))
                .or_insert(0) += (b - a).num_milliseconds();
                a = b;
            }
        }
    }
    t
}

fn check_zone(db: &TestDb, now: DateTime<Utc>, zone: &str, days: [(i32, u32, u32); 2]) {
    let tz: Tz = zone.parse().unwrap();
    let fx = load(db, now);
    let mut conn = db.connect();
    let d = |(y, m, dd): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    let (from, to) = (
        local_midnight(tz, d(days[0])),
        local_midnight(tz, d(days[1])),
    );
    let spec = |interval| ReportSpec {
        from,
        to,
        tz,
        interval,
        queues: Vec::new(),
        agents: Vec::new(),
    };
    let backend = db.backend();

    // Days.
    let got = report::queue_report(&mut conn, &spec(Interval::D1)).unwrap();
    let want = queue_truth(&fx, from, to, |t| {
        t.with_timezone(&tz).date_naive().to_string()
    });
    assert!(want.len() >= 12, "{zone}: the fixture has queues' work");
    let got_map: BTreeMap<(String, String), [i64; 5]> = got
        .iter()
        .map(|r| {
            (
                (r.day.to_string(), r.queue_id.clone()),
                [
                    r.offered,
                    r.answered,
                    r.abandoned,
                    r.handle.count,
                    r.handle.total_ms,
                ],
            )
        })
        .collect();
    assert!(
        got_map == want,
        "{backend:?} {zone} days: {:?}",
        differences(&got_map, &want)
    );
    for r in &got {
        assert_eq!(
            r.interval_start.with_timezone(&Utc),
            local_midnight(tz, r.day),
            "{backend:?} {zone}: a day starts at its local midnight"
        );
    }

    // 15-minute intervals: match the independent cut, and sum to the day.
    let got15 = report::queue_report(&mut conn, &spec(Interval::M15)).unwrap();
    let want15 = queue_truth(&fx, from, to, |t| quarter(tz, t));
    let got15_map: BTreeMap<(String, String), [i64; 5]> = got15
        .iter()
        .map(|r| {
            (
                (r.interval_start.to_rfc3339(), r.queue_id.clone()),
                [
                    r.offered,
                    r.answered,
                    r.abandoned,
                    r.handle.count,
                    r.handle.total_ms,
                ],
            )
        })
        .collect();
    assert!(
        got15_map == want15,
        "{backend:?} {zone} 15 minutes: {:?}",
        differences(&got15_map, &want15)
    );
    let mut summed: BTreeMap<(String, String), [i64; 5]> = BTreeMap::new();
    for r in &got15 {
        let e = summed
            .entry((r.day.to_string(), r.queue_id.clone()))
            .or_default();
        for (a, b) in e.iter_mut().zip([
            r.offered,
            r.answered,
            r.abandoned,
            r.handle.count,
            r.handle.total_ms,
        ]) {
            *a += b;
        }
    }
    assert_eq!(
        summed, got_map,
        "{backend:?} {zone}: 15-minute intervals sum to the day"
    );

    // Presence, cut at local midnights.
    let got = report::presence_report(&mut conn, &spec(Interval::D1), fx.now).unwrap();
    let want = presence_truth(&fx, tz, from, to);
    assert!(want.len() >= 20, "{zone}: the fixture has timelines");
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
    assert!(
        got_map == want,
        "{backend:?} {zone} presence: {:?}",
        differences(&got_map, &want)
    );
    // 15-minute presence sums to the day too.
    let got15 = report::presence_report(&mut conn, &spec(Interval::M15), fx.now).unwrap();
    let mut summed: BTreeMap<_, i64> = BTreeMap::new();
    for r in &got15 {
        *summed
            .entry((
                r.day,
                r.user_id.clone(),
                r.kind.to_string(),
                r.status.clone(),
            ))
            .or_default() += r.ms;
    }
    assert_eq!(summed, got_map, "{backend:?} {zone} presence 15 minutes");
}

#[test]
fn new_york_across_the_march_change_has_a_23_hour_day() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let d = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
    assert_eq!(
        local_midnight(ny, d.succ_opt().unwrap()) - local_midnight(ny, d),
        Duration::hours(23)
    );
    for db in TestDb::both() {
        check_zone(
            &db,
            Utc.with_ymd_and_hms(2024, 3, 11, 12, 0, 0).unwrap(),
            "America/New_York",
            [(2024, 3, 9), (2024, 3, 11)],
        );
    }
}

#[test]
fn new_york_across_the_november_change_has_a_25_hour_day() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let d = NaiveDate::from_ymd_opt(2024, 11, 3).unwrap();
    assert_eq!(
        local_midnight(ny, d.succ_opt().unwrap()) - local_midnight(ny, d),
        Duration::hours(25)
    );
    for db in TestDb::both() {
        check_zone(
            &db,
            Utc.with_ymd_and_hms(2024, 11, 4, 12, 0, 0).unwrap(),
            "America/New_York",
            [(2024, 11, 2), (2024, 11, 4)],
        );
    }
}

#[test]
fn kathmandu_days_start_at_quarter_past_six_the_evening_before_in_utc() {
    for db in TestDb::both() {
        check_zone(
            &db,
            Utc.with_ymd_and_hms(2024, 3, 4, 12, 0, 0).unwrap(),
            "Asia/Kathmandu",
            [(2024, 3, 2), (2024, 3, 4)],
        );
    }
}
