//! Report speed over a year of data: the time of each `sluice report` (UTC days, a DST zone's
//! days, 15-minute intervals, a name filter) over `BENCH_CONVERSATIONS` conversations
//! (default 1,000,000) spread evenly over 365 days.
//!
//!     cargo bench --bench report_speed
//!
//! The data: one day of the simulator's org (`per_day` = conversations / 365, final
//! conversations with their sessions, segments and metrics, the users' presence and routing
//! timelines, and the directory) written through the storage layer's `BatchWriter`, then copied
//! inside the database to the other 364 days (ids suffixed, instants shifted by whole days) with
//! `INSERT … SELECT`: the rows the reports read are the simulator's own, at a year's volume,
//! without spending an hour writing them through the Writer. The copies keep `raw_json` as
//! `{}` (no report reads it; it would add 3 GB).
//!
//! Environment: `BENCH_CONVERSATIONS` (1000000), `BENCH_BACKENDS` (`sqlite`; `mysql,sqlite` for
//! both), `SLUICE_TEST_MYSQL` (server, default mysql://root@127.0.0.1:3306/test; a database
//! `sluice_reports_<pid>` is created there and dropped), `BENCH_SQLITE_DIR` (temp dir).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::RunQueryDsl;
use sluice::clock::ManualClock;
use sluice::genesys::model::{Interval as Range, ReceivedConversation};
use sluice::report::{self, Interval, ReportSpec};
use sluice::sim::directory::{entities, SimListing};
use sluice::sim::SimConfig;
use sluice::storage::directory::{upsert, DirectoryRow, DirectoryTable};
use sluice::storage::models::ConversationRecord;
use sluice::storage::write::{BatchWriter, PageRecords, PageWrite, WriterConfig};
use sluice::storage::{connect, run_migrations, Backend, Connection, DatabaseUrl};

const DAYS: i64 = 365;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn exec(conn: &mut Connection, sql: &str) {
    sluice::dispatch!(conn, |c| diesel::sql_query(sql).execute(c))
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// Copies of day 0's rows shifted by `k` days, for every table a report reads.
fn copy_day(conn: &mut Connection, backend: Backend, k: i64) {
    let ignore = match backend {
        Backend::Sqlite => "OR IGNORE",
        Backend::Mysql => "IGNORE",
    };
    let t = |col: &str| match backend {
        Backend::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', {col}, '+{k} days')"),
        Backend::Mysql => format!("DATE_ADD({col}, INTERVAL {k} DAY)"),
    };
    let id = |col: &str| match backend {
        Backend::Sqlite => format!("{col} || '-{k}'"),
        Backend::Mysql => format!("CONCAT({col}, '-{k}')"),
    };
    let stmts = [
        format!(
            "INSERT INTO conversations SELECT {}, {}, {}, conversation_initiator, \
             originating_direction, division_ids, media_stats_min_conversation_mos, is_final, '{{}}', \
             first_ingested_at, last_ingested_at, NULL FROM d0_conversations",
            id("conversation_id"),
            t("conversation_start"),
            t("conversation_end")
        ),
        format!(
            "INSERT INTO sessions SELECT {}, session_id, participant_id, purpose, user_id, media_type, \
             direction, queue_id, {}, {}, ani, dnis, address_from, address_to, edge_id, provider, \
             remote, recording, used_routing, selected_agent_id, peer_id, flow_in_type, flow_out_type, \
             acw_skipped, flow_id, flow_name, flow_type FROM d0_sessions",
            id("conversation_id"),
            t("session_start"),
            t("session_end")
        ),
        format!(
            "INSERT INTO segments (conversation_id, session_id, segment_start, segment_type, \
             participant_id, segment_end, queue_id, group_id, wrap_up_code, wrap_up_note, \
             disconnect_type, error_code, conference) \
             SELECT {}, session_id, {}, segment_type, participant_id, {}, queue_id, \
             group_id, wrap_up_code, wrap_up_note, disconnect_type, error_code, conference \
             FROM d0_segments",
            id("conversation_id"),
            t("segment_start"),
            t("segment_end")
        ),
        format!(
            "INSERT INTO session_metrics (conversation_id, session_id, name, emit_date, value) \
             SELECT {}, session_id, name, {}, value FROM d0_session_metrics",
            id("conversation_id"),
            t("emit_date")
        ),
        format!(
            "INSERT {ignore} INTO user_presence SELECT user_id, {}, {}, system_presence, organization_presence_id, \
             last_ingested_at, NULL FROM d0_user_presence",
            t("start_time"),
            t("end_time"),
        ),
        format!(
            "INSERT {ignore} INTO user_routing_status SELECT user_id, {}, {}, routing_status, last_ingested_at, \
             NULL FROM d0_user_routing_status",
            t("start_time"),
            t("end_time"),
        ),
    ];
    for s in stmts {
        exec(conn, &s);
    }
}

fn prepare(url: &DatabaseUrl, conversations: usize) -> (DateTime<Utc>, DateTime<Utc>) {
    let per_day = (conversations as i64 / DAYS).max(1) as u32;
    let day0 = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let now = day0 + Duration::days(2);
    let ds = sluice::sim::data::Dataset::new(&SimConfig {
        seed: 3,
        days: 2,
        per_day,
        users: 100,
        now: Some(now),
        ..SimConfig::default()
    });
    let day = Range::new(day0, day0 + Duration::days(1));
    let started = Instant::now();
    let records: Vec<ConversationRecord> = ds
        .conversations_started_in(day)
        .into_iter()
        .filter_map(|c| ds.view_at(&c, now))
        .filter(|c| c.conversation_end.is_some_and(|e| e < day.end))
        .map(|c| ConversationRecord {
            is_final: true,
            received: ReceivedConversation {
                raw_json: serde_json::to_string(&c).unwrap_or_default(),
                conversation: c,
            },
        })
        .collect();
    let users = ds.user_details(day, now);
    let mut conn = connect(url).expect("connect");
    run_migrations(&mut conn).expect("migrate");
    let mut w = BatchWriter::new(
        url.clone(),
        WriterConfig {
            clock: Arc::new(ManualClock::new(now)),
            ..WriterConfig::default()
        },
    );
    let n0 = records.len();
    for page in [
        PageRecords::Conversations(records),
        PageRecords::Users(users),
    ] {
        let p = PageWrite {
            partition_id: 0,
            lease_token: String::new(),
            page,
            completion: None,
        };
        w.write_pages(&[&p])
            .into_iter()
            .for_each(|r| r.expect("write"));
    }
    for (listing, table) in [
        (SimListing::Users, DirectoryTable::Users),
        (SimListing::Queues, DirectoryTable::Queues),
        (SimListing::WrapupCodes, DirectoryTable::WrapupCodes),
        (SimListing::Divisions, DirectoryTable::Divisions),
    ] {
        let rows: Vec<DirectoryRow> = entities(&ds, listing, "any", now)
            .into_iter()
            .map(|v| DirectoryRow {
                id: v["id"].as_str().unwrap_or_default().to_string(),
                name: v["name"].as_str().map(String::from),
                email: v["email"].as_str().map(String::from),
                state: v["state"].as_str().map(String::from),
                division_id: v["division"]["id"].as_str().map(String::from),
                raw_json: v.to_string(),
            })
            .collect();
        upsert(&mut conn, table, &rows, now).expect("directory");
    }
    let backend = conn.backend();
    for t in [
        "conversations",
        "sessions",
        "segments",
        "session_metrics",
        "user_presence",
        "user_routing_status",
    ] {
        exec(
            &mut conn,
            &format!("CREATE TEMPORARY TABLE d0_{t} AS SELECT * FROM {t}"),
        );
    }
    exec(&mut conn, "BEGIN");
    for k in 1..DAYS {
        copy_day(&mut conn, backend, k);
    }
    exec(&mut conn, "COMMIT");
    let total: i64 = {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let r: Vec<N> = sluice::dispatch!(&mut conn, |c| diesel::sql_query(
            "SELECT COUNT(*) AS n FROM conversations"
        )
        .load(c))
        .expect("count");
        r.first().map_or(0, |r| r.n)
    };
    println!(
        "data: {total} conversations over {DAYS} days ({n0} a day from the simulator, copied), {} users; prepared in {:.1}s",
        100,
        started.elapsed().as_secs_f64()
    );
    if backend == Backend::Sqlite {
        exec(&mut conn, "ANALYZE");
    }
    (day0, day0 + Duration::days(DAYS))
}

fn time<T>(label: &str, f: impl FnOnce() -> Vec<T>) {
    let started = Instant::now();
    let rows = f();
    println!(
        "  {label:<58} {:>8.2}s  {:>7} rows",
        started.elapsed().as_secs_f64(),
        rows.len()
    );
}

fn run(url: &DatabaseUrl, name: &str, conversations: usize) {
    let (from, to) = prepare(url, conversations);
    let mut conn = connect(url).expect("connect");
    let ny: chrono_tz::Tz = "America/New_York".parse().expect("zone");
    let utc = ReportSpec::utc_days(from, to);
    let spec = |tz, interval| ReportSpec {
        tz,
        interval,
        ..ReportSpec::utc_days(from, to)
    };
    println!("{name}: one year, each report once");
    time("queue-daily (UTC days)", || {
        report::queue_report(&mut conn, &utc).expect("report")
    });
    time("queue-daily --tz America/New_York", || {
        report::queue_report(&mut conn, &spec(ny, Interval::D1)).expect("report")
    });
    time("queue-daily --tz America/New_York --interval 15m", || {
        report::queue_report(&mut conn, &spec(ny, Interval::M15)).expect("report")
    });
    time("queue-daily --queue 'Queue 2'", || {
        report::queue_report(
            &mut conn,
            &ReportSpec {
                queues: vec!["Queue 2".into()],
                ..ReportSpec::utc_days(from, to)
            },
        )
        .expect("report")
    });
    time("agent-daily --tz America/New_York", || {
        report::agent_report(&mut conn, &spec(ny, Interval::D1)).expect("report")
    });
    time("agent-daily --tz America/New_York --interval 1h", || {
        report::agent_report(&mut conn, &spec(ny, Interval::H1)).expect("report")
    });
    time("presence-daily --tz America/New_York", || {
        report::presence_report(&mut conn, &spec(ny, Interval::D1), to).expect("report")
    });
    time(
        "presence-daily --tz America/New_York --interval 15m (one month)",
        || {
            // A year of 15-minute presence is ~8 million rows (users × intervals × statuses):
            // time a month of it, as a workforce team would ask for.
            let month = ReportSpec {
                to: from + Duration::days(31),
                ..spec(ny, Interval::M15)
            };
            report::presence_report(&mut conn, &month, to).expect("report")
        },
    );
    time("wrapup-daily --tz America/New_York", || {
        report::wrapup_report(&mut conn, &spec(ny, Interval::D1)).expect("report")
    });
    time("completeness", || {
        report::completeness(&mut conn, from, to).expect("report")
    });
}

fn main() {
    let conversations = env_usize("BENCH_CONVERSATIONS", 1_000_000);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    for b in backends.split(',').map(str::trim) {
        match b {
            "sqlite" => {
                let dir = std::env::var("BENCH_SQLITE_DIR")
                    .map(std::path::PathBuf::from)
                    .unwrap_or_else(|_| std::env::temp_dir());
                let path = dir.join(format!("sluice_reports_{}.db", std::process::id()));
                let url = DatabaseUrl::sqlite(&path);
                run(&url, "sqlite", conversations);
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            "mysql" => {
                let server = std::env::var("SLUICE_TEST_MYSQL")
                    .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
                let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
                let db = format!("sluice_reports_{}", std::process::id());
                let admin = DatabaseUrl::parse(&server).expect("server url");
                let mut c = connect(&admin).expect("server");
                exec(&mut c, &format!("CREATE DATABASE {db}"));
                let url = DatabaseUrl::parse(&format!("{base}/{db}")).expect("url");
                run(&url, "mysql", conversations);
                exec(&mut c, &format!("DROP DATABASE {db}"));
            }
            other => eprintln!("unknown backend {other:?}"),
        }
    }
}
