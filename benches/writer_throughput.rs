//! Writer throughput: realistic simulator conversations written through the Writer actor
//! (SyncArbiter, batches, one transaction per batch, replies after commit) into MariaDB and
//! SQLite. Prints conversations/s and rows/s for a first ingest (inserts), a re-ingest of the
//! same conversations unchanged (content digests equal: only `last_ingested_at` moves), and a
//! re-ingest where every conversation changed (one metric each: delete + insert with
//! children), and the process's peak RSS; then the database's own floor for the same rows
//! (INSERT … SELECT inside it, see [`floor_seconds`]).
//!
//!     cargo bench --bench writer_throughput
//!
//! Environment: `BENCH_CONVERSATIONS` (default 20000), `BENCH_PAGE` (conversations per page,
//! default 100 as the synchronous query returns), `BENCH_OUTSTANDING` (pages in flight, like
//! that many fetchers each awaiting its acknowledgement; default 8), `BENCH_BACKENDS`
//! (`mysql,sqlite`), `SLUICE_TEST_MYSQL` (server, default mysql://root@127.0.0.1:3306/test;
//! a database `sluice_bench_<pid>` is created there and dropped), `BENCH_SQLITE_DIR` (where
//! the SQLite file goes; default the temp dir), `BENCH_WRITER_CONNECTIONS` (the Writer's
//! `writer_connections`; when set, each page belongs to one of `BENCH_OUTSTANDING` leased
//! partitions, as a fetcher's does, so the pages spread over the connections).

use std::collections::VecDeque;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use sluice::actors::writer::{
    start_writer_with, Flush, LeasePartition, PageRecords, PlanPartitions, WritePage, Writer,
    WriterConfig,
};
use sluice::genesys::model::{Interval, ReceivedConversation};
use sluice::storage::checkpoint::{Dataset, LeaseAnswer, NewPartition};
use sluice::storage::models::ConversationRecord;
use sluice::storage::{connect, run_migrations, DatabaseUrl};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process, MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system) this process has used so far, seconds, from /proc/self/stat
/// (clock ticks of 1/100 s, the Linux default).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may contain spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn records(n: usize) -> Vec<ConversationRecord> {
    let day = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let now = day + Duration::days(3);
    let per_day = (n as u32).max(1000) * 11 / 10;
    let cfg = sluice::sim::SimConfig {
        seed: 3,
        days: 4,
        per_day,
        users: 200,
        now: Some(now),
        ..sluice::sim::SimConfig::default()
    };
    let ds = sluice::sim::data::Dataset::new(&cfg);
    let mut out: Vec<ConversationRecord> = ds
        .conversations_started_in(Interval::new(day, day + Duration::days(1)))
        .into_iter()
        .map(|c| ConversationRecord {
            is_final: c.conversation_end.is_some(),
            received: ReceivedConversation {
                raw_json: serde_json::to_string(&c).unwrap_or_default(),
                conversation: c,
            },
        })
        .collect();
    out.truncate(n);
    out
}

/// `r` as the nightly pipeline revises it: its first metric's value changed (or, without
/// metrics, its initiator), raw JSON re-serialized.
fn changed(r: &ConversationRecord) -> ConversationRecord {
    let mut c = r.received.conversation.clone();
    match c
        .participants
        .iter_mut()
        .flat_map(|p| p.sessions.iter_mut())
        .flat_map(|s| s.metrics.iter_mut())
        .next()
    {
        Some(m) => m.value += 1,
        None => c.conversation_initiator = Some("revised".into()),
    }
    ConversationRecord {
        is_final: r.is_final,
        received: ReceivedConversation {
            raw_json: serde_json::to_string(&c).unwrap_or_default(),
            conversation: c,
        },
    }
}

struct Run {
    seconds: f64,
    cpu_seconds: f64,
    conversations: usize,
    rows: usize,
}

fn write_all(url: &DatabaseUrl, pages: &[Vec<ConversationRecord>], outstanding: usize) -> Run {
    let url = url.clone();
    let pages = pages.to_vec();
    actix_rt::System::new().block_on(async move {
        // BENCH_WRITER_CONNECTIONS: the Writer's connections; the pages then belong to
        // `outstanding` leased partitions (as fetchers' pages do), spread over the lanes.
        let lanes = std::env::var("BENCH_WRITER_CONNECTIONS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        let mut config = WriterConfig::default();
        if let Some(n) = lanes {
            config.settings.writer_connections = n;
        }
        let w = start_writer_with(url, config).expect("writer starts");
        let parts = match lanes {
            Some(_) => bench_partitions(&w, outstanding).await,
            None => vec![(0, String::new())],
        };
        let conversations: usize = pages.iter().map(|p| p.len()).sum();
        let rows: usize = pages
            .iter()
            .flat_map(|p| p.iter().map(|r| r.row_count()))
            .sum();
        let t = Instant::now();
        let cpu = cpu_seconds();
        let mut inflight = VecDeque::new();
        for (i, p) in pages.into_iter().enumerate() {
            let (partition_id, lease_token) = parts[i % parts.len()].clone();
            inflight.push_back(w.send(WritePage {
                partition_id,
                lease_token,
                page: PageRecords::Conversations(p),
                completion: None,
            }));
            if inflight.len() >= outstanding {
                if let Some(r) = inflight.pop_front() {
                    r.await.expect("writer alive").expect("page written");
                }
            }
        }
        for r in inflight {
            r.await.expect("writer alive").expect("page written");
        }
        w.send(Flush).await.expect("writer alive").expect("flushed");
        Run {
            seconds: t.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu,
            conversations,
            rows,
        }
    })
}

/// `n` new leased partitions (days of a past year, so no completion ever touches the data).
async fn bench_partitions(w: &actix::Addr<Writer>, n: usize) -> Vec<(i64, String)> {
    static NEXT_DAY: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let first = NEXT_DAY.fetch_add(n.max(1) as i64, std::sync::atomic::Ordering::Relaxed);
    let day = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap() + Duration::days(first);
    let new: Vec<NewPartition> = (0..n.max(1) as i64)
        .map(|k| NewPartition {
            dataset: Dataset::Conversations,
            range_start: day + Duration::days(k),
            range_end: day + Duration::days(k + 1),
        })
        .collect();
    let rows = w.send(PlanPartitions(new)).await.expect("writer alive");
    let mut out = Vec::new();
    for r in rows.expect("planned") {
        let lease = LeasePartition {
            id: r.id,
            owner: "bench".into(),
            lease_for: std::time::Duration::from_secs(86_400),
        };
        match w.send(lease).await.expect("writer alive").expect("leased") {
            LeaseAnswer::Leased { token } => out.push((r.id, token)),
            other => panic!("partition {} not leased: {other:?}", r.id),
        }
    }
    out
}

const TABLES: [&str; 5] = [
    "conversations",
    "participants",
    "sessions",
    "segments",
    "session_metrics",
];

/// The database's own cost for the rows in `url`: seconds to copy them into an empty schema
/// with INSERT … SELECT in one transaction, in primary-key order (the friendliest order for
/// the B-trees). A writer that sends the rows from outside cannot be faster than this.
fn floor_seconds(url: &DatabaseUrl) -> f64 {
    let copy = |target: &str, source: &str| {
        TABLES
            .iter()
            // The WHERE keeps SQLite from copying whole B-tree records (its transfer
            // optimization for `INSERT INTO empty SELECT * FROM same-shaped table`).
            .map(|t| format!("INSERT INTO {target}.{t} SELECT * FROM {source}.{t} WHERE 1 = 1;"))
            .collect::<String>()
    };
    match url {
        DatabaseUrl::Mysql(u) => {
            let (base, source) = u.rsplit_once('/').expect("database name");
            let target = format!("{source}_floor");
            admin(&format!(
                "DROP DATABASE IF EXISTS `{target}`; CREATE DATABASE `{target}`"
            ));
            let turl = DatabaseUrl::parse(&format!("{base}/{target}")).expect("url");
            let mut c = connect(&turl).expect("MariaDB");
            run_migrations(&mut c).expect("migrations");
            let t = Instant::now();
            c.batch_execute(&format!("BEGIN; {} COMMIT;", copy(&target, source)))
                .expect("floor copy");
            let secs = t.elapsed().as_secs_f64();
            admin(&format!("DROP DATABASE IF EXISTS `{target}`"));
            secs
        }
        DatabaseUrl::Sqlite(path) => {
            let target = path.with_extension("floor.db");
            let mut c = connect(&DatabaseUrl::sqlite(&target)).expect("SQLite");
            run_migrations(&mut c).expect("migrations");
            c.batch_execute(&format!("ATTACH '{}' AS src;", path.display()))
                .expect("attach");
            let t = Instant::now();
            c.batch_execute(&format!("BEGIN; {} COMMIT;", copy("main", "src")))
                .expect("floor copy");
            t.elapsed().as_secs_f64()
        }
    }
}

fn admin(sql: &str) {
    let server = std::env::var("SLUICE_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let mut c = connect(&DatabaseUrl::parse(&server).expect("server URL")).expect("MariaDB");
    c.batch_execute(sql).expect(sql);
}

fn main() {
    let _ = env_logger::try_init();
    sluice::storage::connection::limit_mysql_driver_buffers();
    let n = env_usize("BENCH_CONVERSATIONS", 20_000);
    let page = env_usize("BENCH_PAGE", 100).max(1);
    let outstanding = env_usize("BENCH_OUTSTANDING", 8).max(1);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "mysql,sqlite".into());

    let t = Instant::now();
    let recs = records(n);
    let pages: Vec<Vec<ConversationRecord>> = recs.chunks(page).map(|c| c.to_vec()).collect();
    let rows: usize = recs.iter().map(|r| r.row_count()).sum();
    let json_mib = recs
        .iter()
        .map(|r| r.received.raw_json.len())
        .sum::<usize>() as f64
        / 1048576.0;
    println!(
        "data: {} simulator conversations ({} rows, {:.1} rows/conversation, raw JSON {:.1} MiB), {} pages of {page}, {outstanding} in flight; generated in {:.1}s; RSS after generating {:.0} MiB",
        recs.len(),
        rows,
        rows as f64 / recs.len().max(1) as f64,
        json_mib,
        pages.len(),
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    drop(recs);

    for backend in backends.split(',').map(str::trim) {
        let (url, _guard): (DatabaseUrl, Option<tempfile::TempDir>) = match backend {
            "mysql" => {
                let name = format!("sluice_bench_{}", std::process::id());
                admin(&format!(
                    "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
                ));
                let server = std::env::var("SLUICE_TEST_MYSQL")
                    .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
                let base = server
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(server);
                (
                    DatabaseUrl::parse(&format!("{base}/{name}")).expect("url"),
                    None,
                )
            }
            "sqlite" => {
                let dir = match std::env::var("BENCH_SQLITE_DIR") {
                    Ok(d) => tempfile::tempdir_in(d),
                    Err(_) => tempfile::tempdir(),
                }
                .expect("temp dir");
                (DatabaseUrl::sqlite(dir.path().join("bench.db")), Some(dir))
            }
            other => {
                eprintln!("unknown backend {other:?}");
                continue;
            }
        };
        let changed: Vec<Vec<ConversationRecord>> = pages
            .iter()
            .map(|p| p.iter().map(changed).collect())
            .collect();
        for (label, pages) in [
            ("first ingest (insert)", &pages),
            ("re-ingest unchanged (skip)", &pages),
            ("re-ingest changed", &changed),
        ] {
            let r = write_all(&url, pages, outstanding);
            println!(
                "{backend:<6} {label:<26} {:>8.0} conversations/s {:>9.0} rows/s  ({} conversations in {:.2}s; Sluice CPU {:.0} µs/conversation)  peak RSS {:.0} MiB",
                r.conversations as f64 / r.seconds,
                r.rows as f64 / r.seconds,
                r.conversations,
                r.seconds,
                r.cpu_seconds * 1e6 / r.conversations.max(1) as f64,
                peak_rss_mib()
            );
        }
        let conversations = pages.iter().map(|p| p.len()).sum::<usize>();
        let seconds = floor_seconds(&url);
        println!(
            "{backend:<6} {:<26} {:>8.0} conversations/s {:>9.0} rows/s  (the same rows copied by INSERT … SELECT inside the database in {seconds:.2}s: no client, no statements, no network)",
            "floor (database alone)",
            conversations as f64 / seconds,
            rows as f64 / seconds,
        );
        if backend == "mysql" {
            admin(&format!(
                "DROP DATABASE IF EXISTS `sluice_bench_{}`",
                std::process::id()
            ));
        }
    }
}
