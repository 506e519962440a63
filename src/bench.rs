//! `sluice bench`: the benchmarks of BENCHMARKS.md, runnable by any user with the release binary.
//!
//! Each benchmark runs the real pieces as separate processes — `sluice sim` for the API and
//! `sluice backfill` for the engine — and takes its figures from outside the engine: requests and
//! 429s from the simulator's own counters (`/__sim/stats`), CPU time and peak RSS from the kernel
//! (`wait4` on the engine process), and what was stored from the database. So the numbers do not
//! depend on the engine reporting on itself.
//!
//! - `budget`: how much of the org's request budget a backfill uses, with a background
//!   integration sharing the org, and what that costs the org (429s, collateral 429s).
//! - `paths`: a naive sequential SDK loop and the engine's auto, query and jobs paths over the
//!   same simulated org (busy, quiet, huge), with the targets as ratios of one run.
//! - `overhead`: the engine's own cost with the simulator's limits off (conversations/s, CPU
//!   seconds per 100,000 conversations, peak RSS) into MariaDB — the shared server and/or a
//!   dedicated production-like one (`mariadb.rs`) — and SQLite, with each server's floor
//!   (`floor.rs`); see `overhead.rs`.
pub mod floor;
pub mod harness;
pub mod mariadb;
pub mod naive;
pub mod overhead;
pub mod paths;
pub mod stored;

pub use overhead::{overhead, OverheadArgs, OverheadRun, ServerChoice};

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use harness::{json_u64, machine_description, HarnessError, ScratchDir, SimProcess, SluiceCommand};
use stored::ScratchDb;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("{0}")]
    Failed(String),
}

/// `sluice bench <budget|paths|overhead>`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchKind {
    /// Budget utilization, 429 ratio and collateral 429s with a background integration.
    Budget(BudgetArgs),
    /// The naive SDK loop vs `--mode auto|query|jobs`: wall time, requests, duplicates, slots.
    Paths(PathsArgs),
    /// Engine overhead with the simulator's limits off: conversations/s, CPU, peak RSS.
    Overhead(OverheadArgs),
}

/// Where the engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbChoice {
    Sqlite,
    /// MariaDB (or MySQL); `--db mysql` is the same.
    #[value(alias = "mysql")]
    Mariadb,
    Both,
}

/// The simulator's limits, scaled in time: the platform's 300 requests per 60 s become 50 per
/// 10 s (the same rate, six times as many windows to look at).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Requests per window per OAuth client (the simulator's limit).
    #[arg(long, default_value_t = 50)]
    pub window_limit: u32,
    /// Length of the simulator's fixed rate-limit window, in seconds.
    #[arg(long, default_value_t = 10)]
    pub window_secs: u32,
    /// Org analytics concurrency (simulator), also given to the engine.
    #[arg(long, default_value_t = 10)]
    pub concurrency: u32,
}

impl LimitArgs {
    fn rate_per_minute(&self) -> f64 {
        self.window_limit as f64 * 60.0 / self.window_secs as f64
    }
    fn per_second(&self) -> f64 {
        self.window_limit as f64 / self.window_secs as f64
    }
    /// The simulator's flags for these limits (the same rate per minute the engine is given,
    /// enforced in windows of `window_secs`).
    fn sim_args(&self) -> Vec<String> {
        vec![
            "--rate-per-minute".into(),
            format!("{}", self.rate_per_minute().round() as u64),
            "--window-secs".into(),
            self.window_secs.to_string(),
            "--concurrency".into(),
            self.concurrency.to_string(),
        ]
    }
    /// The engine's settings for the same limits.
    fn engine_env(&self, cmd: SluiceCommand) -> SluiceCommand {
        cmd.env(
            "SLUICE_RATE_PER_MINUTE",
            format!("{}", self.rate_per_minute().round() as u64),
        )
        .env("SLUICE_RATE_WINDOW_SECS", self.window_secs.to_string())
        .env("SLUICE_ORG_CONCURRENCY", self.concurrency.to_string())
    }
}

/// Flags shared by the benchmarks that shape the simulated org.
#[derive(Debug, Clone, Args)]
pub struct OrgArgs {
    /// Simulator seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Conversations per day in the simulated org.
    #[arg(long, default_value_t = 2000)]
    pub per_day: u32,
    /// The simulator's clock (fixed). The range ends at midnight of the day before.
    #[arg(long, default_value = "2026-06-01T13:00:00Z")]
    pub now: String,
    /// Datasets to backfill (default: the engine's default).
    #[arg(long)]
    pub datasets: Option<String>,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub org: OrgArgs,
    /// Days of history to backfill.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Background integration: requests per second (its own OAuth client, same org).
    #[arg(long, default_value_t = 1.0)]
    pub bg_rps: f64,
    /// Background integration: concurrent requests.
    #[arg(long, default_value_t = 2)]
    pub bg_concurrency: u32,
    /// Background integration: business hours HH-HH (simulated time).
    #[arg(long, default_value = "09-17")]
    pub bg_hours: String,
    /// Every this many seconds of wall time the bench moves the simulator's clock 12 hours on,
    /// alternating between business hours (background on) and night (background off).
    #[arg(long, default_value_t = 60)]
    pub phase_secs: u64,
    /// Path mode given to the engine (`query` keeps the run bound by the request budget).
    #[arg(long, default_value = "query")]
    pub mode: String,
    #[arg(long, value_enum, default_value_t = DbChoice::Sqlite)]
    pub db: DbChoice,
}

#[derive(Debug, Clone, Args)]
pub struct PathsArgs {
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub org: OrgArgs,
    /// The simulated org: busy, quiet, huge, all three, or custom (--days, --per-day).
    #[arg(long, value_enum, default_value_t = paths::ScenarioChoice::Busy)]
    pub scenario: paths::ScenarioChoice,
    /// Clients to run, in this order: naive, auto, query, jobs.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "naive,auto,query,jobs"
    )]
    pub paths: Vec<paths::PathKind>,
    /// Days of history (custom scenario).
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// API latency `MIN,MAX` ms (custom scenario).
    #[arg(long, value_parser = crate::sim::config::parse_latency)]
    pub latency_ms: Option<(u64, u64)>,
    /// Users (agents) of the simulated org.
    #[arg(long, default_value_t = 50)]
    pub users: u32,
    /// Shortest simulated job run time before the per-result part, in milliseconds.
    #[arg(long)]
    pub job_delay_ms: Option<u64>,
    /// Longest simulated job run time before the per-result part, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub job_delay_max_ms: u64,
    /// Simulated job run time per 10,000 results, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub job_run_per_10k_ms: u64,
    /// Running jobs per org (the simulator's limit).
    #[arg(long, default_value_t = 5)]
    pub job_concurrency: u32,
}

/// Entry point of `sluice bench`.
pub fn run_cli(args: BenchArgs) -> Result<(), BenchError> {
    let bin =
        std::env::current_exe().map_err(|e| BenchError::Failed(format!("current_exe: {e}")))?;
    println!("machine: {}", machine_description());
    println!(
        "command: sluice {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    match args.kind {
        BenchKind::Budget(a) => budget(&bin, &a).map(|_| ()),
        BenchKind::Paths(a) => paths::run(&bin, &a).map(|_| ()),
        BenchKind::Overhead(a) => overhead(&bin, &a).map(|_| ()),
    }
}

// ---------------------------------------------------------------------------------------------

/// The sim's fixed clock, and the backfill range [from, to): `days` whole days ending at
/// midnight of the day before `now`.
/// The simulator's clock and the range a benchmark backfills.
#[derive(Clone, Copy, Debug)]
pub struct BenchRange {
    pub now: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn range_for(org: &OrgArgs, days: u32) -> Result<BenchRange, BenchError> {
    let now = DateTime::parse_from_rfc3339(&org.now)
        .map_err(|e| BenchError::Failed(format!("--now {}: {e}", org.now)))?
        .with_timezone(&Utc);
    let today = Utc.from_utc_datetime(&now.date_naive().and_time(NaiveTime::MIN));
    let to = today - ChronoDuration::days(1);
    let from = to - ChronoDuration::days(days as i64);
    Ok(BenchRange { now, from, to })
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn databases(choice: DbChoice, dir: &Path) -> Result<Vec<ScratchDb>, BenchError> {
    let mut v = Vec::new();
    if matches!(choice, DbChoice::Mariadb | DbChoice::Both) {
        v.push(ScratchDb::mysql("sluice_bench")?);
    }
    if matches!(choice, DbChoice::Sqlite | DbChoice::Both) {
        v.push(ScratchDb::sqlite(dir, &format!("bench-{}.db", v.len())));
    }
    Ok(v)
}

fn backfill_command(
    bin: &Path,
    dir: &Path,
    sim: &SimProcess,
    db: &ScratchDb,
    range: &BenchRange,
    datasets: &Option<String>,
    mode: &str,
) -> SluiceCommand {
    let (from, to) = (rfc(range.from), rfc(range.to));
    let mut cmd = SluiceCommand::new(bin, dir)
        .args(["backfill", "--from", &from, "--to", &to, "--mode", mode])
        .against_sim(
            &sim.base_url(),
            crate::bench::SIM_CLIENT_ID,
            crate::bench::SIM_CLIENT_SECRET,
        )
        .env("DATABASE_URL", db.url());
    if let Some(d) = datasets {
        cmd = cmd.args(["--datasets", d.as_str()]);
    }
    cmd
}

/// The simulator's default OAuth client (`sluice sim` without `--clients`).
pub const SIM_CLIENT_ID: &str = "sluice-sim";
/// The simulator's default client secret.
pub const SIM_CLIENT_SECRET: &str = "sluice-sim-secret";
/// The simulator's background integration's OAuth client.
pub const BACKGROUND_CLIENT_ID: &str = "background-integration";

/// Requests and 429s of one OAuth client, from `/__sim/stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCounts {
    pub requests: u64,
    pub rate_limited: u64,
    pub background_requests: u64,
    pub background_rate_limited: u64,
    pub collateral: u64,
}

impl ClientCounts {
    pub fn from_stats(stats: &Value, client: &str) -> Self {
        ClientCounts {
            requests: json_u64(stats, &["requests", "byClient", client]),
            rate_limited: json_u64(stats, &["rateLimited", "byClient", client]),
            background_requests: json_u64(stats, &["background", "requests"]),
            background_rate_limited: json_u64(stats, &["background", "rateLimited"]),
            collateral: json_u64(stats, &["collateral429s"]),
        }
    }
    pub fn accepted(&self) -> u64 {
        self.requests.saturating_sub(self.rate_limited)
    }
    pub fn ratio_429(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.rate_limited as f64 / self.requests as f64
        }
    }
    fn minus(&self, o: &ClientCounts) -> ClientCounts {
        ClientCounts {
            requests: self.requests.saturating_sub(o.requests),
            rate_limited: self.rate_limited.saturating_sub(o.rate_limited),
            background_requests: self
                .background_requests
                .saturating_sub(o.background_requests),
            background_rate_limited: self
                .background_rate_limited
                .saturating_sub(o.background_rate_limited),
            collateral: self.collateral.saturating_sub(o.collateral),
        }
    }
}

/// Total of `conversationCount` over the range, asked one day at a time.
fn expected_count(
    sim: &SimProcess,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u64, BenchError> {
    let mut total = 0;
    let mut t = from;
    while t < to {
        let next = (t + ChronoDuration::days(1)).min(to);
        let e = sim.expected(&format!("{}/{}", rfc(t), rfc(next)))?;
        total += json_u64(&e, &["conversationCount"]);
        t = next;
    }
    Ok(total)
}

fn stored_count(db: &ScratchDb) -> Result<u64, BenchError> {
    let mut p = db.probe()?;
    Ok(p.table_rows("conversations")?.max(0) as u64)
}

// ---------------------------------------------------------------------------------------------
// 1. Budget utilization

/// The figures of one budget run.
#[derive(Clone, Debug)]
pub struct BudgetReport {
    pub windows: Vec<WindowSample>,
    pub steady_mean_utilization: f64,
    pub steady_min_utilization: f64,
    pub overall_utilization: f64,
    pub ratio_429: f64,
    pub collateral: u64,
    pub wall_secs: f64,
    pub minimum_secs: f64,
    pub totals: ClientCounts,
    pub exit_code: Option<i32>,
    pub stored: u64,
    pub expected: u64,
}

/// Requests in one of the simulator's rate windows (`requestsPerWindow` of `/__sim/stats`).
#[derive(Clone, Debug)]
pub struct WindowSample {
    /// Window start, seconds after the backfill started (negative: it began before).
    pub start_secs: f64,
    /// The window lies entirely within the backfill's run.
    pub full: bool,
    pub background_phase: bool,
    pub counts: ClientCounts,
    pub utilization: f64,
}

fn business_instants(
    now: DateTime<Utc>,
    bg_hours: &str,
) -> Result<(DateTime<Utc>, i64), BenchError> {
    let bad = || BenchError::Failed(format!("--bg-hours {bg_hours}: expected HH-HH"));
    let (a, b) = bg_hours.split_once('-').ok_or_else(bad)?;
    let a: i64 = a.trim().parse().map_err(|_| bad())?;
    let b: i64 = b.trim().parse().map_err(|_| bad())?;
    let width = if b > a { b - a } else { b + 24 - a };
    // Middle of business hours on the sim's day; 12 h later is night as long as the business
    // window is shorter than 12 h.
    let day = Utc.from_utc_datetime(&now.date_naive().and_time(NaiveTime::MIN));
    let mid_minutes = a * 60 + width * 30;
    Ok((day + ChronoDuration::minutes(mid_minutes), width))
}

pub fn budget(bin: &Path, a: &BudgetArgs) -> Result<BudgetReport, BenchError> {
    let dir = ScratchDir::new("sluice-bench-budget")?;
    let range = range_for(&a.org, a.days)?;
    let BenchRange { now, from, to } = range;
    let (business_at, width) = business_instants(now, &a.bg_hours)?;
    if width >= 12 {
        return Err(BenchError::Failed(
            "--bg-hours must be shorter than 12 hours (the bench alternates day and night by 12 h)"
                .into(),
        ));
    }
    let mut sim_args = vec![
        "--seed".to_string(),
        a.org.seed.to_string(),
        "--days".into(),
        (a.days + 10).to_string(),
        "--per-day".into(),
        a.org.per_day.to_string(),
        "--now".into(),
        rfc(business_at),
        "--bg-rps".into(),
        a.bg_rps.to_string(),
        "--bg-concurrency".into(),
        a.bg_concurrency.to_string(),
        "--bg-hours".into(),
        a.bg_hours.clone(),
    ];
    sim_args.extend(a.limits.sim_args());
    let sim_epoch = Instant::now();
    let sim = SimProcess::start(bin, dir.path(), &sim_args)?;
    let dbs = databases(a.db, dir.path())?;
    let db = dbs
        .first()
        .ok_or_else(|| BenchError::Failed("no database chosen".into()))?;
    let cmd = a.limits.engine_env(backfill_command(
        bin,
        dir.path(),
        &sim,
        db,
        &range,
        &a.org.datasets,
        &a.mode,
    ));
    println!("sim: sluice sim {}", sim_args.join(" "));
    println!("engine: {}", cmd.display());
    println!(
        "range {} .. {} ({} days x {} conversations/day), {} into {}",
        rfc(from),
        rfc(to),
        a.days,
        a.org.per_day,
        a.mode,
        db.kind()
    );

    let base = ClientCounts::from_stats(&sim.stats()?, SIM_CLIENT_ID);
    let mut proc = cmd.spawn("budget-backfill")?;
    let started = Instant::now();
    let bf_start = (started - sim_epoch).as_secs_f64();
    let window_secs = a.limits.window_secs as f64;
    let phase = Duration::from_secs(a.phase_secs.max(1));
    let mut phase_index = 0u32;
    // (seconds since the sim started, background phase on?)
    let mut phases = vec![(0.0, true)];
    let mut next_phase = started + phase;
    let limit = Duration::from_secs(a.org.timeout_secs);
    let finished = loop {
        if let Some(f) = proc.wait_timeout(Duration::from_millis(50))? {
            break f;
        }
        let t = Instant::now();
        if t >= next_phase {
            phase_index += 1;
            let sim_now = business_at + ChronoDuration::hours(12 * phase_index as i64);
            sim.set_now(&rfc(sim_now))?;
            phases.push((
                (Instant::now() - sim_epoch).as_secs_f64(),
                phase_index.is_multiple_of(2),
            ));
            next_phase += phase;
        }
        if t - started > limit {
            let _ = proc.kill9();
            return Err(BenchError::Failed(format!(
                "backfill did not finish within {limit:?}"
            )));
        }
    };
    let bf_end = (Instant::now() - sim_epoch).as_secs_f64();
    let stats = sim.stats()?;
    let end = ClientCounts::from_stats(&stats, SIM_CLIENT_ID);
    let totals = end.minus(&base);
    // The simulator's own fixed windows (the ones its limiter counts in). Per window it gives
    // requests by client and the 429s of all clients; with no collateral 429s every 429 in a
    // window is Sluice's.
    let mut windows = Vec::new();
    for w in stats
        .get("requestsPerWindow")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let start = w
            .get("startOffsetSecs")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if start + window_secs <= bf_start || start >= bf_end {
            continue;
        }
        let sluice = json_u64(&w, &["byClient", SIM_CLIENT_ID]);
        let bg = json_u64(&w, &["byClient", BACKGROUND_CLIENT_ID]);
        let limited = json_u64(&w, &["rateLimited"]).min(sluice);
        let counts = ClientCounts {
            requests: sluice,
            rate_limited: limited,
            background_requests: bg,
            background_rate_limited: 0,
            collateral: 0,
        };
        let background_phase = phases
            .iter()
            .rev()
            .find(|(t, _)| *t <= start + window_secs / 2.0)
            .map(|(_, on)| *on)
            .unwrap_or(true);
        windows.push(WindowSample {
            start_secs: start - bf_start,
            full: start >= bf_start && start + window_secs <= bf_end,
            background_phase,
            utilization: counts.accepted() as f64 / a.limits.window_limit as f64,
            counts,
        });
    }
    let wall = finished.wall.as_secs_f64();
    let minimum = totals.accepted() as f64 / a.limits.per_second();
    // Steady state: the full windows except the first (token, planning) and the last (the
    // final partitions drain).
    let full: Vec<&WindowSample> = windows.iter().filter(|w| w.full).collect();
    let steady: Vec<f64> = if full.len() > 2 {
        full[1..full.len() - 1]
            .iter()
            .map(|w| w.utilization)
            .collect()
    } else {
        full.iter().map(|w| w.utilization).collect()
    };
    let mean = if steady.is_empty() {
        0.0
    } else {
        steady.iter().sum::<f64>() / steady.len() as f64
    };
    let min = steady.iter().cloned().fold(f64::INFINITY, f64::min);
    let overall = totals.accepted() as f64 / (a.limits.per_second() * wall);
    let stored = stored_count(db).unwrap_or(0);
    let expected = expected_count(&sim, from, to)?;
    let report = BudgetReport {
        windows,
        steady_mean_utilization: mean,
        steady_min_utilization: if min.is_finite() { min } else { 0.0 },
        overall_utilization: overall,
        ratio_429: totals.ratio_429(),
        collateral: totals.collateral,
        wall_secs: wall,
        minimum_secs: minimum,
        totals,
        exit_code: finished.code(),
        stored,
        expected,
    };
    print_budget(&report, a);
    if !finished.success() {
        println!("engine log tail:\n{}", proc.log_tail(3000));
    }
    Ok(report)
}

fn print_budget(r: &BudgetReport, a: &BudgetArgs) {
    println!();
    println!(
        "per {} s window of the simulator (budget {} requests per OAuth client; the background \
         integration has its own client, so it shares the org's concurrency pool, not Sluice's \
         request budget):",
        a.limits.window_secs, a.limits.window_limit
    );
    println!("  t(s)   bg-phase  sluice-accepted  sluice-429  bg-requests  utilization");
    for w in &r.windows {
        println!(
            "  {:>5.0}  {:>8}  {:>15}  {:>10}  {:>11}  {:>11.3}{}",
            w.start_secs,
            if w.background_phase { "day" } else { "night" },
            w.counts.accepted(),
            w.counts.rate_limited,
            w.counts.background_requests,
            w.utilization,
            if w.full { "" } else { "  (partial window)" }
        );
    }
    println!();
    println!("exit code                      {:?}", r.exit_code);
    println!("conversations stored/expected  {}/{}", r.stored, r.expected);
    println!(
        "sluice requests                {} ({} accepted, {} answered 429)",
        r.totals.requests,
        r.totals.accepted(),
        r.totals.rate_limited
    );
    println!(
        "background requests            {} ({} answered 429)",
        r.totals.background_requests, r.totals.background_rate_limited
    );
    println!(
        "utilization (steady windows)   mean {:.3}, min {:.3}   target >= 0.95",
        r.steady_mean_utilization, r.steady_min_utilization
    );
    println!(
        "utilization (whole run)        {:.3}",
        r.overall_utilization
    );
    println!(
        "429 ratio                      {:.3} %   target <= 0.5 %",
        r.ratio_429 * 100.0
    );
    println!("collateral 429s                {}   target 0", r.collateral);
    println!(
        "wall time / minimum            {:.1} s / {:.1} s = {:.3}   target <= 1.1",
        r.wall_secs,
        r.minimum_secs,
        if r.minimum_secs > 0.0 {
            r.wall_secs / r.minimum_secs
        } else {
            0.0
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Paths: see `paths.rs`.

fn tail_str(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_and_night_are_twelve_hours_apart_around_the_window_middle() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 3, 0, 0).unwrap();
        let (mid, width) = business_instants(now, "09-17").expect("parse");
        assert_eq!(width, 8);
        assert_eq!(mid, Utc.with_ymd_and_hms(2026, 6, 1, 13, 0, 0).unwrap());
        assert!(business_instants(now, "nine-five").is_err());
    }

    #[test]
    fn range_is_whole_days_ending_the_day_before_now() {
        let org = OrgArgs {
            seed: 1,
            per_day: 10,
            now: "2026-06-01T13:00:00Z".into(),
            datasets: None,
            timeout_secs: 1,
        };
        let r = range_for(&org, 3).expect("range");
        assert_eq!(r.to, Utc.with_ymd_and_hms(2026, 5, 31, 0, 0, 0).unwrap());
        assert_eq!(r.from, Utc.with_ymd_and_hms(2026, 5, 28, 0, 0, 0).unwrap());
    }

    #[test]
    fn scaled_limits_keep_the_platform_rate() {
        let l = LimitArgs {
            window_limit: 50,
            window_secs: 10,
            concurrency: 10,
        };
        assert_eq!(l.rate_per_minute(), 300.0);
        assert_eq!(l.per_second(), 5.0);
    }
}
