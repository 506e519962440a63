//! The reliability suite's helpers: the real `sluice` binary run as separate processes (`sluice
//! sim` for the API, `sluice backfill` for the engine), scratch databases, and the check that
//! what was stored equals the simulator's ground truth. The orchestration itself lives in
//! `sluice::bench::harness` (shared with `sluice bench`); this file adds the test conventions.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
pub use sluice::bench::harness::*;
pub use sluice::bench::stored::*;
pub use sluice::bench::{SIM_CLIENT_ID, SIM_CLIENT_SECRET};

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sluice"))
}

/// Something a test does to the simulator in the background (move its clock, revoke tokens):
/// `f` runs every `period` on its own thread until [`Every::stop`] or drop.
pub struct Every {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Every {
    pub fn start(period: Duration, mut f: impl FnMut() + Send + 'static) -> Every {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || loop {
            std::thread::sleep(period);
            if flag.load(Ordering::Relaxed) {
                break;
            }
            f();
        });
        Every {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread and waits for it (what drop does; this names the moment).
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for Every {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Long versions of the reliability tests run with SLUICE_LONG_TESTS=1.
pub fn long_tests() -> bool {
    matches!(
        std::env::var("SLUICE_LONG_TESTS").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// A simulated org: the simulator's fixed clock and the range the engine backfills (whole UTC
/// days well before the watermark, so every conversation in it is final).
#[derive(Clone, Copy, Debug)]
pub struct Org {
    pub now: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: u32,
    pub per_day: u32,
    pub users: u32,
}

impl Org {
    pub fn new(days: u32, per_day: u32, users: u32) -> Self {
        let now = Utc.with_ymd_and_hms(2026, 3, 20, 13, 0, 0).unwrap();
        let today = Utc.from_utc_datetime(&now.date_naive().and_time(NaiveTime::MIN));
        let to = today - ChronoDuration::days(2);
        let from = to - ChronoDuration::days(days as i64);
        Org {
            now,
            from,
            to,
            days,
            per_day,
            users,
        }
    }
    pub fn start_arg(&self) -> String {
        rfc(self.from)
    }
    pub fn end_arg(&self) -> String {
        rfc(self.to)
    }
    pub fn interval(&self) -> String {
        format!("{}/{}", rfc(self.from), rfc(self.to))
    }
    /// `sluice sim` flags for this org (history reaching well before `from`).
    pub fn sim_args(&self, seed: u64, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--seed",
            &seed.to_string(),
            "--days",
            &(self.days + 10).to_string(),
            "--per-day",
            &self.per_day.to_string(),
            "--users",
            &self.users.to_string(),
            "--now",
            &rfc(self.now),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Starts `sluice sim` for `org`, panicking with the sim's log if it does not come up.
pub fn start_sim(dir: &ScratchDir, org: &Org, seed: u64, extra: &[&str]) -> SimProcess {
    match SimProcess::start(bin(), dir.path(), &org.sim_args(seed, extra)) {
        Ok(s) => s,
        Err(e) => panic!("could not start the simulator: {e}"),
    }
}

/// `sluice backfill` of the org's range (both datasets) against `sim`, into `db`.
pub fn backfill_cmd(
    dir: &ScratchDir,
    sim: &SimProcess,
    db: &ScratchDb,
    org: &Org,
) -> SluiceCommand {
    SluiceCommand::new(bin(), dir.path())
        .args([
            "backfill",
            "--from",
            &org.start_arg(),
            "--to",
            &org.end_arg(),
            "--datasets",
            "conversations,users",
        ])
        .against_sim(&sim.base_url(), SIM_CLIENT_ID, SIM_CLIENT_SECRET)
        .env("DATABASE_URL", db.url())
}

/// Every difference between what `db` holds for the org's range and the simulator's ground
/// truth: conversations (each once, with the right child counts), user presence and routing
/// status records, and partitions not done. Empty when the ingestion is complete and exact.
pub fn differences(sim: &SimProcess, db: &ScratchDb, org: &Org) -> Vec<String> {
    let expected = sim
        .expected(&org.interval())
        .unwrap_or_else(|e| panic!("/__sim/expected: {e}"));
    let want = expected_conversations(&expected).unwrap_or_else(|e| panic!("{e}"));
    let mut probe = db.probe().unwrap_or_else(|e| panic!("{e}"));
    let stored = probe.conversations().unwrap_or_else(|e| panic!("{e}"));
    let mut diffs = compare_conversations(&want, &stored);
    if want.is_empty() {
        diffs.push("the simulator expects no conversations: the test checks nothing".into());
    }
    for (table, key) in [
        ("user_presence", "presence"),
        ("user_routing_status", "routingStatus"),
    ] {
        let got = probe
            .table_rows(table)
            .unwrap_or_else(|e| panic!("count {table}: {e}"));
        let exp = json_u64(&expected, &["users", key]) as i64;
        if got != exp {
            diffs.push(format!("{table}: {got} rows stored, {exp} expected"));
        }
    }
    diffs.extend(content_differences(sim, db, org));
    for p in probe.partitions().unwrap_or_else(|e| panic!("{e}")) {
        let s = p.status.to_ascii_lowercase();
        if s != "done" && s != "split" {
            diffs.push(format!(
                "partition {} {} {}..{} is {} after {} attempts",
                p.id, p.dataset, p.range_start, p.range_end, p.status, p.attempts
            ));
        }
    }
    diffs
}

/// Conversations and user records of the org's range whose stored content (read back and
/// digested by `sluice::digest`) differs from the simulator's digests.
fn content_differences(sim: &SimProcess, db: &ScratchDb, org: &Org) -> Vec<String> {
    let truth = get_json(&format!(
        "{}/__sim/expected/digests?interval={}",
        sim.base_url(),
        org.interval()
    ))
    .unwrap_or_else(|e| panic!("/__sim/expected/digests: {e}"));
    let truth: sluice::digest::ContentDigests =
        serde_json::from_value(truth).unwrap_or_else(|e| panic!("digests: {e}"));
    let url = sluice::storage::DatabaseUrl::parse(&db.url()).unwrap_or_else(|e| panic!("{e}"));
    let interval =
        sluice::genesys::model::Interval::parse(&org.interval()).unwrap_or_else(|e| panic!("{e}"));
    let stored = sluice::digest::load_stored_digests(&url, interval)
        .unwrap_or_else(|e| panic!("stored digests: {e}"));
    let (conversations, users) = sluice::digest::compare_digests(&truth, &stored);
    let mut out = Vec::new();
    if !conversations.is_empty() {
        out.push(format!("conversation content: {}", conversations.summary()));
    }
    if !users.is_empty() {
        out.push(format!("user record content: {}", users.summary()));
    }
    out
}

/// Panics with the differences (and the tail of the engine's log) unless the data is exact.
pub fn assert_exact(sim: &SimProcess, db: &ScratchDb, org: &Org, log: &str) {
    let diffs = differences(sim, db, org);
    assert!(
        diffs.is_empty(),
        "stored data differs from the simulator's ground truth:\n  {}\nengine log tail:\n{}",
        diffs.join("\n  "),
        tail(log, 4000)
    );
}

/// Partitions marked done (or verified) in `db`, if its checkpoint table exists at all.
pub fn partitions_done(db: &ScratchDb) -> usize {
    let Ok(mut probe) = db.probe() else { return 0 };
    if !probe.has_table("ingest_partitions") {
        return 0;
    }
    probe
        .partitions()
        .map(|ps| {
            ps.iter()
                .filter(|p| p.status.eq_ignore_ascii_case("done"))
                .count()
        })
        .unwrap_or(0)
}

pub fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs `cmd` to the end (panics after `limit`).
pub fn run(cmd: &SluiceCommand, label: &str, limit: Duration) -> Finished {
    cmd.run(label, limit)
        .unwrap_or_else(|e| panic!("{}: {e}", cmd.display()))
}

/// A seed for the test's random choices: SLUICE_TEST_SEED, else the clock; printed so that a
/// failure can be replayed.
pub fn test_seed(name: &str) -> u64 {
    let seed = std::env::var("SLUICE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{name}: SLUICE_TEST_SEED={seed}");
    seed
}
