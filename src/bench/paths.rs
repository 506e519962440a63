//! `sluice bench paths`: the naive SDK loop and the engine's `--mode auto|query|jobs`, each
//! against a fresh simulator of the same org (and the engine on a fresh SQLite file), for the
//! scenarios of issue 13 — a busy org, a quiet one, and a huge one whose days exceed the
//! synchronous query's paging cap. Every figure comes from outside the engine: requests, 429s,
//! records served and slots in use from `/__sim/stats`, peak RSS from `wait4`, and the stored
//! conversations compared exactly with `/__sim/expected`. The targets are printed as
//! ratios of the same run with pass or fail ([`targets`]).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};
use clap::ValueEnum;
use serde_json::Value;

use super::harness::{json_u64, ScratchDir, SimProcess};
use super::stored::{compare_conversations, expected_conversations, ChildCounts, ScratchDb};
use super::{
    backfill_command, naive, range_for, rfc, tail_str, BenchError, BenchRange, ClientCounts,
    PathsArgs, SIM_CLIENT_ID, SIM_CLIENT_SECRET,
};

/// `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioChoice {
    /// 7 days × 6,000 conversations/day, latency 100–250 ms.
    Busy,
    /// 2 days × 4,000 conversations/day, latency 100–150 ms.
    Quiet,
    /// 3 days × 30,000 conversations/day (past the paging cap), latency 100–250 ms.
    Huge,
    /// busy, quiet and huge in turn.
    All,
    /// --days and --per-day as given (latency from --latency-ms).
    Custom,
}

/// One simulated org to run every path against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub name: &'static str,
    pub days: u32,
    pub per_day: u32,
    pub latency_ms: Option<(u64, u64)>,
}

impl ScenarioChoice {
    pub fn scenarios(self, a: &PathsArgs) -> Vec<Scenario> {
        let busy = Scenario {
            name: "busy",
            days: 7,
            per_day: 6_000,
            latency_ms: Some((100, 250)),
        };
        let quiet = Scenario {
            name: "quiet",
            days: 2,
            per_day: 4_000,
            latency_ms: Some((100, 150)),
        };
        let huge = Scenario {
            name: "huge",
            days: 3,
            per_day: 30_000,
            latency_ms: Some((100, 250)),
        };
        match self {
            ScenarioChoice::Busy => vec![busy],
            ScenarioChoice::Quiet => vec![quiet],
            ScenarioChoice::Huge => vec![huge],
            ScenarioChoice::All => vec![busy, quiet, huge],
            ScenarioChoice::Custom => vec![Scenario {
                name: "custom",
                days: a.days,
                per_day: a.org.per_day,
                latency_ms: a.latency_ms,
            }],
        }
    }
}

/// A client that backfills the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum PathKind {
    /// The sequential SDK loop (one day at a time, pageSize 100, until a short page).
    Naive,
    /// `sluice backfill --mode auto`.
    Auto,
    /// `sluice backfill --mode query`.
    Query,
    /// `sluice backfill --mode jobs`.
    Jobs,
}

impl PathKind {
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Naive => "naive",
            PathKind::Auto => "auto",
            PathKind::Query => "query",
            PathKind::Jobs => "jobs",
        }
    }
}

/// One path's figures in one scenario.
#[derive(Clone, Debug)]
pub struct PathRun {
    pub path: PathKind,
    pub wall_secs: f64,
    pub counts: ClientCounts,
    /// Synchronous query requests (the simulator's `conversations.query` endpoint).
    pub query_requests: u64,
    /// Conversations of the range (ground truth).
    pub conversations: u64,
    /// Conversation records served over query pages and job results, and the distinct ones.
    pub served: u64,
    pub unique: u64,
    /// Time-weighted mean and peak of analytics requests in flight.
    pub mean_slots: f64,
    pub peak_slots: u64,
    /// The engine's peak RSS (none for the naive loop, which runs inside the bench).
    pub peak_rss_bytes: Option<u64>,
    /// Differences from `/__sim/expected` (empty: exact).
    pub differences: Vec<String>,
    /// The largest query request count allowed for the stored blocks (query mode only):
    /// Σ (1.05 × ⌈conversations ÷ 100⌉ + 1), and the number of blocks.
    pub block_bound: Option<(f64, usize)>,
    pub exit_code: Option<i32>,
}

impl PathRun {
    pub fn requests_per_1000(&self) -> f64 {
        ratio(
            self.counts.requests as f64 * 1000.0,
            self.conversations as f64,
        )
    }
    pub fn served_per_unique(&self) -> f64 {
        ratio(self.served as f64, self.unique as f64)
    }
    pub fn verified(&self) -> bool {
        self.differences.is_empty()
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The request bound of one block of `conversations` on the query path (pageSize 100).
pub fn block_allowance(conversations: u64) -> f64 {
    1.05 * conversations.div_ceil(100) as f64 + 1.0
}

/// How a target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    AtMost,
    AtLeast,
}

/// One target of issue 13, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub value: f64,
    pub bound: Bound,
    pub limit: f64,
}

impl Check {
    fn new(name: impl Into<String>, value: f64, bound: Bound, limit: f64) -> Self {
        Check {
            name: name.into(),
            value,
            bound,
            limit,
        }
    }
    pub fn pass(&self) -> bool {
        match self.bound {
            Bound::AtMost => self.value <= self.limit + 1e-9,
            Bound::AtLeast => self.value + 1e-9 >= self.limit,
        }
    }
}

/// Largest peak RSS of the engine (bytes).
pub const PEAK_RSS_LIMIT: u64 = 200_000_000;
/// The engine's concurrency cap at the default org limit (10 − 2).
pub const ENGINE_SLOTS: f64 = 8.0;

/// The targets for one scenario's runs (paths not run are skipped).
pub fn targets(scenario: &str, runs: &[PathRun]) -> Vec<Check> {
    let get = |k: PathKind| runs.iter().find(|r| r.path == k);
    let mut out = Vec::new();
    if let (Some(n), Some(a)) = (get(PathKind::Naive), get(PathKind::Auto)) {
        let wall = ratio(a.wall_secs, n.wall_secs);
        let requests = ratio(a.counts.requests as f64, n.counts.requests as f64);
        match scenario {
            "busy" => {
                out.push(Check::new(
                    "auto wall / naive wall",
                    wall,
                    Bound::AtMost,
                    0.2,
                ));
                out.push(Check::new(
                    "auto requests / naive requests",
                    requests,
                    Bound::AtMost,
                    1.0 / 3.0,
                ));
            }
            "quiet" => out.push(Check::new(
                "auto wall / naive wall",
                wall,
                Bound::AtMost,
                0.25,
            )),
            _ => {}
        }
    }
    if scenario == "busy" {
        if let Some(q) = get(PathKind::Query) {
            out.push(Check::new(
                "query: mean slots in use (of 8)",
                q.mean_slots,
                Bound::AtLeast,
                0.75 * ENGINE_SLOTS,
            ));
            if let Some((bound, blocks)) = q.block_bound {
                out.push(Check::new(
                    format!(
                        "query: query requests vs Σ(1.05×⌈conversations/100⌉+1) over {blocks} blocks"
                    ),
                    q.query_requests as f64,
                    Bound::AtMost,
                    bound,
                ));
            }
        }
    }
    for r in runs {
        let p = r.path.label();
        out.push(Check::new(
            format!("{p}: records served per unique conversation"),
            r.served_per_unique(),
            Bound::AtMost,
            1.02,
        ));
        if let Some(rss) = r.peak_rss_bytes {
            out.push(Check::new(
                format!("{p}: peak RSS (MB)"),
                rss as f64 / 1e6,
                Bound::AtMost,
                PEAK_RSS_LIMIT as f64 / 1e6,
            ));
        }
        // The 429 targets are Sluice's; the naive loop's 429s are shown, not held against it.
        if r.path != PathKind::Naive {
            out.push(Check::new(
                format!("{p}: 429s"),
                r.counts.rate_limited as f64,
                Bound::AtMost,
                0.0,
            ));
            out.push(Check::new(
                format!("{p}: collateral 429s"),
                r.counts.collateral as f64,
                Bound::AtMost,
                0.0,
            ));
        }
        out.push(Check::new(
            format!("{p}: differences from /__sim/expected"),
            r.differences.len() as f64,
            Bound::AtMost,
            0.0,
        ));
    }
    out
}

/// Entry point: every scenario, every path.
pub fn run(bin: &Path, a: &PathsArgs) -> Result<Vec<(Scenario, Vec<PathRun>)>, BenchError> {
    let mut kinds: Vec<PathKind> = a.paths.clone();
    kinds.sort();
    kinds.dedup();
    let mut all = Vec::new();
    for sc in a.scenario.scenarios(a) {
        let range = range_for(&a.org, sc.days)?;
        let mut runs = Vec::new();
        for &k in &kinds {
            let r = run_path(bin, a, &sc, &range, k)?;
            print_run(&r);
            runs.push(r);
        }
        print_scenario(&sc, &range, a, &runs);
        all.push((sc, runs));
    }
    Ok(all)
}

fn sim_args(a: &PathsArgs, sc: &Scenario, now: DateTime<Utc>) -> Vec<String> {
    let mut v = vec![
        "--seed".to_string(),
        a.org.seed.to_string(),
        "--days".into(),
        (sc.days + 10).to_string(),
        "--per-day".into(),
        sc.per_day.to_string(),
        "--users".into(),
        a.users.to_string(),
        "--now".into(),
        rfc(now),
        "--job-delay-ms".into(),
        a.job_delay_ms.unwrap_or(2000).to_string(),
        "--job-delay-max-ms".into(),
        a.job_delay_max_ms.to_string(),
        "--job-run-per-10k-ms".into(),
        a.job_run_per_10k_ms.to_string(),
        "--job-concurrency".into(),
        a.job_concurrency.to_string(),
    ];
    if let Some((lo, hi)) = sc.latency_ms {
        v.extend(["--latency-ms".into(), format!("{lo},{hi}")]);
    }
    v.extend(a.limits.sim_args());
    v
}

fn run_path(
    bin: &Path,
    a: &PathsArgs,
    sc: &Scenario,
    range: &BenchRange,
    kind: PathKind,
) -> Result<PathRun, BenchError> {
    let dir = ScratchDir::new(&format!("sluice-bench-paths-{}-{}", sc.name, kind.label()))?;
    let args = sim_args(a, sc, range.now);
    let sim = SimProcess::start(bin, dir.path(), &args)?;
    println!(
        "[{} / {}] sim: sluice sim {}",
        sc.name,
        kind.label(),
        args.join(" ")
    );
    let expected = expected_range(&sim, range.from, range.to)?;
    let (wall_secs, peak_rss_bytes, exit_code, differences, block_bound) = match kind {
        PathKind::Naive => {
            println!(
                "[{} / naive] sequential SDK loop: {} .. {}, one UTC day at a time, pageSize {}",
                sc.name,
                rfc(range.from),
                rfc(range.to),
                naive::NAIVE_PAGE_SIZE
            );
            let r = naive::run(
                &sim.base_url(),
                SIM_CLIENT_ID,
                SIM_CLIENT_SECRET,
                range.from,
                range.to,
            )?;
            let mut diffs = compare_ids(&expected, &r.conversation_ids);
            diffs.extend(r.errors.iter().take(3).cloned());
            (r.wall.as_secs_f64(), None, Some(0), diffs, None)
        }
        _ => {
            let db = ScratchDb::sqlite(dir.path(), "bench.db");
            let datasets = a
                .org
                .datasets
                .clone()
                .or_else(|| Some("conversations".into()));
            let cmd = a.limits.engine_env(backfill_command(
                bin,
                dir.path(),
                &sim,
                &db,
                range,
                &datasets,
                kind.label(),
            ));
            println!("[{} / {}] engine: {}", sc.name, kind.label(), cmd.display());
            let f = cmd.run(
                &format!("paths-{}", kind.label()),
                Duration::from_secs(a.org.timeout_secs),
            )?;
            if !f.success() {
                println!("engine log tail:\n{}", tail_str(&f.log, 3000));
            }
            let mut diffs = match db.probe().and_then(|mut p| p.conversations()) {
                Ok(stored) => compare_conversations(&expected, &stored),
                Err(e) => vec![format!("cannot read the database: {e}")],
            };
            if !f.success() {
                diffs.push(format!("engine exit {:?}", f.code()));
            }
            let bound = if kind == PathKind::Query {
                Some(block_bound(&sim, &db)?)
            } else {
                None
            };
            (
                f.wall.as_secs_f64(),
                Some(f.max_rss_bytes),
                f.code(),
                diffs,
                bound,
            )
        }
    };
    let stats = sim.stats()?;
    Ok(PathRun {
        path: kind,
        wall_secs,
        counts: ClientCounts::from_stats(&stats, SIM_CLIENT_ID),
        query_requests: json_u64(&stats, &["requests", "byEndpoint", "conversations.query"]),
        conversations: expected.len() as u64,
        served: json_u64(&stats, &["served", "conversations", "served"]),
        unique: json_u64(&stats, &["served", "conversations", "unique"]),
        mean_slots: stats
            .get("inFlightMean")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        peak_slots: json_u64(&stats, &["peakConcurrency"]),
        peak_rss_bytes,
        differences,
        block_bound,
        exit_code,
    })
}

/// The ground truth of `[from, to)`, asked one day at a time.
fn expected_range(
    sim: &SimProcess,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeMap<String, ChildCounts>, BenchError> {
    let mut all = BTreeMap::new();
    let mut t = from;
    while t < to {
        let next = (t + ChronoDuration::days(1)).min(to);
        let e = sim.expected(&format!("{}/{}", rfc(t), rfc(next)))?;
        all.extend(expected_conversations(&e)?);
        t = next;
    }
    Ok(all)
}

/// Differences between the ids a client received and the ground truth (the naive loop stores
/// nothing, so its check is by id: every conversation, none extra).
pub fn compare_ids(expected: &BTreeMap<String, ChildCounts>, got: &[String]) -> Vec<String> {
    let got: BTreeSet<&str> = got.iter().map(String::as_str).collect();
    let missing = expected
        .keys()
        .filter(|k| !got.contains(k.as_str()))
        .count();
    let extra = got.iter().filter(|k| !expected.contains_key(**k)).count();
    let mut out = Vec::new();
    if missing > 0 {
        out.push(format!("{missing} expected conversations not received"));
    }
    if extra > 0 {
        out.push(format!(
            "{extra} conversations received that are not expected"
        ));
    }
    out
}

/// Σ over the stored conversation blocks of the query path's request allowance, with the
/// block's conversations from the ground truth.
fn block_bound(sim: &SimProcess, db: &ScratchDb) -> Result<(f64, usize), BenchError> {
    let mut ranges = Vec::new();
    for p in db.probe()?.partitions()? {
        if p.dataset != "conversations" {
            continue;
        }
        match (parse_db_time(&p.range_start), parse_db_time(&p.range_end)) {
            (Some(a), Some(b)) => ranges.push((a, b)),
            _ => {
                return Err(BenchError::Failed(format!(
                    "partition {}: unreadable range {} .. {}",
                    p.id, p.range_start, p.range_end
                )))
            }
        }
    }
    let blocks = leaf_blocks(&ranges);
    let mut bound = 0.0;
    for (a, b) in &blocks {
        let e = sim.expected(&format!("{}/{}", rfc(*a), rfc(*b)))?;
        bound += block_allowance(json_u64(&e, &["conversationCount"]));
    }
    Ok((bound, blocks.len()))
}

/// The blocks that were fetched: a stored range that another stored range lies inside was split
/// into those, so only the innermost ranges count.
pub fn leaf_blocks<T: PartialOrd + Copy>(ranges: &[(T, T)]) -> Vec<(T, T)> {
    ranges
        .iter()
        .filter(|&&(a, b)| {
            !ranges
                .iter()
                .any(|&(c, d)| c >= a && d <= b && (c, d) != (a, b))
        })
        .copied()
        .collect()
}

/// A stored instant: RFC 3339 or the databases' `YYYY-MM-DD HH:MM:SS[.fff]` (UTC).
pub fn parse_db_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

fn print_run(r: &PathRun) {
    println!(
        "  {:>5}: wall {:.1} s, {} requests ({} answered 429), served/unique {}/{}, mean slots {:.2}, {}",
        r.path.label(),
        r.wall_secs,
        r.counts.requests,
        r.counts.rate_limited,
        r.served,
        r.unique,
        r.mean_slots,
        if r.verified() {
            "exact".to_string()
        } else {
            r.differences.join("; ")
        }
    );
}

fn print_scenario(sc: &Scenario, range: &BenchRange, a: &PathsArgs, runs: &[PathRun]) {
    println!();
    println!(
        "scenario {}: {} days x {} conversations/day ({} .. {}), latency {}, limits {} per {} s, \
         concurrency {}, {} running jobs, jobs {}-{} ms + {} ms per 10,000 results",
        sc.name,
        sc.days,
        sc.per_day,
        rfc(range.from),
        rfc(range.to),
        sc.latency_ms
            .map(|(l, h)| format!("{l}-{h} ms"))
            .unwrap_or_else(|| "none".into()),
        a.limits.window_limit,
        a.limits.window_secs,
        a.limits.concurrency,
        a.job_concurrency,
        a.job_delay_ms.unwrap_or(2000),
        a.job_delay_max_ms,
        a.job_run_per_10k_ms,
    );
    println!(
        "  path   exit  wall (s)  requests  req/1k conv  served/unique  mean slots (peak)  429s  collateral  peak RSS (MB)  verification"
    );
    for r in runs {
        println!(
            "  {:>5}  {:>4}  {:>8.1}  {:>8}  {:>11.1}  {:>13.3}  {:>10.2} ({:>3})  {:>4}  {:>10}  {:>13}  {}",
            r.path.label(),
            r.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "sig".into()),
            r.wall_secs,
            r.counts.requests,
            r.requests_per_1000(),
            r.served_per_unique(),
            r.mean_slots,
            r.peak_slots,
            r.counts.rate_limited,
            r.counts.collateral,
            r.peak_rss_bytes
                .map(|b| format!("{:.1}", b as f64 / 1e6))
                .unwrap_or_else(|| "-".into()),
            if r.verified() {
                format!("exact ({} conversations)", r.conversations)
            } else {
                format!("NOT exact: {}", r.differences.join("; "))
            }
        );
    }
    println!("  targets ({}):", sc.name);
    for c in targets(sc.name, runs) {
        println!(
            "    {:<72} {:>10.3} {} {:<8.3} {}",
            c.name,
            c.value,
            match c.bound {
                Bound::AtMost => "<=",
                Bound::AtLeast => ">=",
            },
            c.limit,
            if c.pass() { "pass" } else { "FAIL" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(path: PathKind, wall: f64, requests: u64) -> PathRun {
        PathRun {
            path,
            wall_secs: wall,
            counts: ClientCounts {
                requests,
                ..Default::default()
            },
            query_requests: requests,
            conversations: 42_000,
            served: 42_000,
            unique: 42_000,
            mean_slots: 7.0,
            peak_slots: 8,
            peak_rss_bytes: (path != PathKind::Naive).then_some(120_000_000),
            differences: vec![],
            block_bound: None,
            exit_code: Some(0),
        }
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {checks:?}"))
    }

    #[test]
    fn busy_ratios_compare_auto_with_the_naive_loop() {
        let runs = [
            run(PathKind::Naive, 170.0, 427),
            run(PathKind::Auto, 30.0, 130),
        ];
        let c = targets("busy", &runs);
        let wall = find(&c, "auto wall / naive wall");
        assert!((wall.value - 30.0 / 170.0).abs() < 1e-9);
        assert!(wall.pass());
        let req = find(&c, "auto requests / naive requests");
        assert!((req.value - 130.0 / 427.0).abs() < 1e-9);
        assert!(req.pass());
        // 125 s of 169 s and 616 requests (the figures) miss both.
        let today = [
            run(PathKind::Naive, 169.0, 427),
            run(PathKind::Auto, 125.0, 616),
        ];
        let c = targets("busy", &today);
        assert!(!find(&c, "auto wall / naive wall").pass());
        assert!(!find(&c, "auto requests / naive requests").pass());
        // The quiet scenario has only the wall ratio, at 1/4.
        let c = targets("quiet", &runs);
        assert_eq!(find(&c, "auto wall / naive wall").limit, 0.25);
        assert!(c.iter().all(|c| c.name != "auto requests / naive requests"));
    }

    #[test]
    fn every_path_is_held_to_duplicates_429s_rss_and_exactness() {
        let mut q = run(PathKind::Query, 60.0, 440);
        q.served = 50_706;
        q.counts.rate_limited = 2;
        q.peak_rss_bytes = Some(250_000_000);
        q.differences = vec!["3 expected conversations missing".into()];
        q.mean_slots = 3.5;
        let c = targets("busy", &[q]);
        let spu = find(&c, "query: records served per unique conversation");
        assert!((spu.value - 50_706.0 / 42_000.0).abs() < 1e-9 && !spu.pass());
        assert!(!find(&c, "query: 429s").pass());
        assert!(find(&c, "query: collateral 429s").pass());
        assert!(!find(&c, "query: peak RSS (MB)").pass());
        assert!(!find(&c, "query: differences from /__sim/expected").pass());
        assert!(!find(&c, "query: mean slots in use (of 8)").pass());
        // The naive loop has no RSS of its own to check, and its 429s are not Sluice's.
        let mut n = run(PathKind::Naive, 1.0, 1);
        n.counts.rate_limited = 2;
        let c = targets("huge", &[n]);
        assert!(c
            .iter()
            .all(|c| !c.name.contains("RSS") && !c.name.contains("429")));
        assert!(c.iter().all(Check::pass));
    }

    #[test]
    fn block_allowance_is_full_pages_plus_five_percent_and_one() {
        assert_eq!(block_allowance(0), 1.0);
        assert_eq!(block_allowance(100), 2.05);
        assert_eq!(block_allowance(101), 3.1);
        assert!((block_allowance(6_000) - 64.0).abs() < 1e-9);
        let mut q = run(PathKind::Query, 60.0, 440);
        q.block_bound = Some((7.0 * block_allowance(6_000), 7));
        let c = targets("busy", &[q.clone()]);
        let name = "query: query requests vs Σ(1.05×⌈conversations/100⌉+1) over 7 blocks";
        assert!(find(&c, name).pass());
        q.query_requests = 449;
        assert!(!find(&targets("busy", &[q]), name).pass());
    }

    #[test]
    fn only_the_innermost_blocks_count() {
        // A day split into two halves, the second half split again; a second day whole.
        let ranges = [(0, 24), (0, 12), (12, 24), (12, 18), (18, 24), (24, 48)];
        assert_eq!(
            leaf_blocks(&ranges),
            vec![(0, 12), (12, 18), (18, 24), (24, 48)]
        );
        // A repeated row is not its own child.
        assert_eq!(leaf_blocks(&[(0, 24), (0, 24)]), vec![(0, 24), (0, 24)]);
    }

    #[test]
    fn ids_are_compared_both_ways_and_times_parse_from_either_database() {
        let expected: BTreeMap<String, ChildCounts> = ["a", "b"]
            .iter()
            .map(|k| (k.to_string(), ChildCounts::default()))
            .collect();
        assert!(compare_ids(&expected, &["b".into(), "a".into(), "a".into()]).is_empty());
        let d = compare_ids(&expected, &["a".into(), "z".into()]);
        assert_eq!(d.len(), 2, "{d:?}");
        let t = parse_db_time("2026-05-24 06:00:00").unwrap();
        assert_eq!(t, parse_db_time("2026-05-24T06:00:00Z").unwrap());
        assert_eq!(t, parse_db_time("2026-05-24 06:00:00.000").unwrap());
        assert!(parse_db_time("yesterday").is_none());
    }
}
