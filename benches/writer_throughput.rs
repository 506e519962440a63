//! Writer throughput: realistic simulator conversations written through the Writer actor
//! (SyncArbiter, batches, one transaction per batch, replies after commit) into MariaDB and
//! SQLite. Prints conversations/s and rows/s for a first ingest (inserts), a re-ingest of the
//! same conversations unchanged (content digests equal: only `last_ingested_at` moves), and a
//! re-ingest where every conversation changed (one metric each: the conversation row and the
//! differing child rewritten), and the process's peak RSS; then the database's own floor for the same rows
//! (INSERT … SELECT inside it, see [`floor_seconds`]), on the same server in the same run.
//! MariaDB runs on the shared test server and on a dedicated production-like one the bench
//! starts itself (`sluice::bench::mariadb`: buffer pool sized to the working set, large redo
//! log, `innodb_flush_log_at_trx_commit=1`, doublewrite on); each server's settings in effect
//! are printed before its figures.
//!
//!     cargo bench --bench writer_throughput
//!
//! Environment: `BENCH_CONVERSATIONS` (default 20000), `BENCH_PAGE` (conversations per page,
//! default 100 as the synchronous query returns), `BENCH_OUTSTANDING` (pages in flight in all;
//! default 8), `BENCH_FETCHERS` (default 8, at most `BENCH_OUTSTANDING`): independent senders
//! as the engine's Fetchers are, each writing its own partition's pages and awaiting its own
//! acknowledgements with `BENCH_OUTSTANDING / BENCH_FETCHERS` in flight. The jobs path's shape
//! is `BENCH_PAGE=1000 BENCH_OUTSTANDING=16` (results pages of 1,000; the engine's 8 fetchers
//! with `max_outstanding_pages` 2). `BENCH_BACKENDS`
//! (`mysql,sqlite`), `SLUICE_TEST_MYSQL` (server, default mysql://root@127.0.0.1:3306/test;
//! a database `sluice_bench_<pid>` is created there and dropped), `BENCH_SQLITE_DIR` (where
//! the SQLite file goes; default the temp dir), `BENCH_WRITER_CONNECTIONS` (the Writer's
//! `writer_connections`, default the engine's: 2; SQLite always 1). Each fetcher's partition
//! is leased, so the pages spread over the connections (and each batch fences its leases, as
//! the engine's do). `BENCH_PASSES`
//! (default `first,unchanged,changed,floor`) runs only the passes named, e.g. `first` to
//! profile the first ingest alone.

use std::collections::VecDeque;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use sluice::actors::writer::{
    start_writer_with, Flush, LeasePartition, PageRecords, PlanPartitions, WritePage, Writer,
    WriterConfig,
};
use sluice::bench::floor::floor_seconds;
use sluice::bench::mariadb::{server_settings, DedicatedMariadb, MariadbSettings};
use sluice::bench::stored::ScratchDb;
use sluice::genesys::model::{Interval, ReceivedConversation};
use sluice::storage::checkpoint::{Dataset, LeaseAnswer, NewPartition};
use sluice::storage::models::ConversationRecord;
use sluice::storage::DatabaseUrl;

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
        // Each fetcher writes its own leased partition, as the engine's do, so the pages
        // spread over the Writer's connections (BENCH_WRITER_CONNECTIONS, default the
        // engine's writer_connections).
        let mut config = WriterConfig::default();
        config.settings.writer_connections = writer_connections();
        let w = start_writer_with(url, config).expect("writer starts");
        let (fetchers, per_fetcher) = fetchers(outstanding);
        let parts = bench_partitions(&w, fetchers).await;
        let conversations: usize = pages.iter().map(|p| p.len()).sum();
        let rows: usize = pages
            .iter()
            .flat_map(|p| p.iter().map(|r| r.row_count()))
            .sum();
        // Pages dealt to the fetchers in turn, as the blocks of one period would be.
        let mut dealt: Vec<Vec<Vec<ConversationRecord>>> = vec![Vec::new(); fetchers];
        for (i, p) in pages.into_iter().enumerate() {
            dealt[i % fetchers].push(p);
        }
        let t = Instant::now();
        let cpu = cpu_seconds();
        // Each fetcher sends its own partition's pages and awaits its own replies, keeping
        // `per_fetcher` in flight (`max_outstanding_pages`), independently of the others.
        let tasks: Vec<_> = dealt
            .into_iter()
            .zip(parts)
            .map(|(mine, (partition_id, lease_token))| {
                let w = w.clone();
                actix_rt::spawn(async move {
                    let mut inflight = VecDeque::new();
                    for p in mine {
                        inflight.push_back(w.send(WritePage {
                            partition_id,
                            lease_token: lease_token.clone(),
                            page: PageRecords::Conversations(p),
                            completion: None,
                        }));
                        if inflight.len() >= per_fetcher {
                            if let Some(r) = inflight.pop_front() {
                                r.await.expect("writer alive").expect("page written");
                            }
                        }
                    }
                    for r in inflight {
                        r.await.expect("writer alive").expect("page written");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("fetcher task");
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

/// The fetchers and each one's pages in flight for `outstanding` pages in flight in all:
/// `BENCH_FETCHERS` (default 8, at most `outstanding`) independent senders, each with
/// `outstanding / fetchers` (rounded up).
fn fetchers(outstanding: usize) -> (usize, usize) {
    let fetchers = env_usize("BENCH_FETCHERS", 8).clamp(1, outstanding.max(1));
    (fetchers, outstanding.div_ceil(fetchers).max(1))
}

/// The Writer's connections for the runs: `BENCH_WRITER_CONNECTIONS`, else the default.
fn writer_connections() -> usize {
    std::env::var("BENCH_WRITER_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| WriterConfig::default().settings.writer_connections)
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

fn main() {
    let _ = env_logger::try_init();
    sluice::storage::connection::limit_mysql_driver_buffers();
    let n = env_usize("BENCH_CONVERSATIONS", 20_000);
    let page = env_usize("BENCH_PAGE", 100).max(1);
    let outstanding = env_usize("BENCH_OUTSTANDING", 8).max(1);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "mysql,sqlite".into());
    let servers = std::env::var("BENCH_SERVERS").unwrap_or_else(|_| "shared,dedicated".into());

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
        "data: {} simulator conversations ({} rows, {:.1} rows/conversation, raw JSON {:.1} MiB), {} pages of {page}; {} fetchers, each with its own partition and {} pages in flight; writer_connections {} (SQLite: 1); generated in {:.1}s; RSS after generating {:.0} MiB",
        recs.len(),
        rows,
        rows as f64 / recs.len().max(1) as f64,
        json_mib,
        pages.len(),
        fetchers(outstanding).0,
        fetchers(outstanding).1,
        writer_connections(),
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    drop(recs);

    let changed: Vec<Vec<ConversationRecord>> = pages
        .iter()
        .map(|p| p.iter().map(changed).collect())
        .collect();
    for backend in backends.split(',').map(str::trim) {
        match backend {
            "mysql" => {
                for server in servers.split(',').map(str::trim) {
                    match mysql_target(server) {
                        Ok(target) => {
                            let label = format!("mysql({server})");
                            run_passes(&label, &target.url, &pages, &changed, outstanding);
                        }
                        Err(e) => println!("mysql({server}): skipped: {e}"),
                    }
                }
            }
            "sqlite" => {
                let dir = match std::env::var("BENCH_SQLITE_DIR") {
                    Ok(d) => tempfile::tempdir_in(d),
                    Err(_) => tempfile::tempdir(),
                }
                .expect("temp dir");
                let url = DatabaseUrl::sqlite(dir.path().join("bench.db"));
                run_passes("sqlite", &url, &pages, &changed, outstanding);
            }
            other => eprintln!("unknown backend {other:?}"),
        }
    }
}

/// A fresh database on a MariaDB server, and the server when the bench started it (kept until
/// the database is dropped).
struct MysqlTarget {
    url: DatabaseUrl,
    // Field order is drop order: the database goes first, then the dedicated server.
    _db: ScratchDb,
    _server: Option<DedicatedMariadb>,
}

/// `shared`: a database on the server of `SLUICE_TEST_MYSQL`; `dedicated`: a MariaDB started
/// for the bench ([`MariadbSettings::from_env`]). Prints the server's settings in effect.
fn mysql_target(server: &str) -> Result<MysqlTarget, String> {
    let (admin, dedicated) = match server {
        "shared" => (
            std::env::var("SLUICE_TEST_MYSQL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
            None,
        ),
        "dedicated" => {
            let t = Instant::now();
            let s =
                DedicatedMariadb::start(&MariadbSettings::from_env()).map_err(|e| e.to_string())?;
            println!(
                "mysql({server}): started on port {} in {:.1}s, datadir in {}",
                s.port(),
                t.elapsed().as_secs_f64(),
                s.dir().display()
            );
            (s.admin_url().to_string(), Some(s))
        }
        other => return Err(format!("unknown server {other:?} (shared, dedicated)")),
    };
    let url = DatabaseUrl::parse(&admin).map_err(|e| e.to_string())?;
    match server_settings(&url) {
        Ok(s) => println!("mysql({server}): {s}"),
        Err(e) => println!("mysql({server}): settings unknown: {e}"),
    }
    let db = ScratchDb::mysql_on(&admin, "sluice_bench").map_err(|e| e.to_string())?;
    Ok(MysqlTarget {
        url: DatabaseUrl::parse(&db.url()).map_err(|e| e.to_string())?,
        _db: db,
        _server: dedicated,
    })
}

/// First ingest, re-ingest unchanged, re-ingest changed, then the floor of the same server.
fn run_passes(
    label: &str,
    url: &DatabaseUrl,
    pages: &[Vec<ConversationRecord>],
    changed: &[Vec<ConversationRecord>],
    outstanding: usize,
) {
    let passes =
        std::env::var("BENCH_PASSES").unwrap_or_else(|_| "first,unchanged,changed,floor".into());
    let wanted = |p: &str| passes.split(',').any(|w| w.trim() == p);
    for (key, pass, pages) in [
        ("first", "first ingest (insert)", pages),
        ("unchanged", "re-ingest unchanged (skip)", pages),
        ("changed", "re-ingest changed", changed),
    ] {
        if !wanted(key) {
            continue;
        }
        let r = write_all(url, pages, outstanding);
        println!(
            "{label:<16} {pass:<26} {:>8.0} conversations/s {:>9.0} rows/s  ({} conversations in {:.2}s; Sluice CPU {:.0} µs/conversation)  peak RSS {:.0} MiB",
            r.conversations as f64 / r.seconds,
            r.rows as f64 / r.seconds,
            r.conversations,
            r.seconds,
            r.cpu_seconds * 1e6 / r.conversations.max(1) as f64,
            peak_rss_mib()
        );
    }
    if !wanted("floor") {
        return;
    }
    let conversations = pages.iter().map(|p| p.len()).sum::<usize>();
    let rows: usize = pages
        .iter()
        .flat_map(|p| p.iter().map(|r| r.row_count()))
        .sum();
    match floor_seconds(url) {
        Ok(seconds) => println!(
            "{label:<16} {:<26} {:>8.0} conversations/s {:>9.0} rows/s  (the same rows copied by INSERT … SELECT inside the database in {seconds:.2}s: no client, no statements, no network)",
            "floor (database alone)",
            conversations as f64 / seconds,
            rows as f64 / seconds,
        ),
        Err(e) => println!("{label:<16} floor not measured: {e}"),
    }
}
