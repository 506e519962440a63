//! `sluice demo`: the whole product in one command, with no setup. It starts the simulator
//! in-process (a small org, a fixed clock), backfills it into a fresh SQLite file through the
//! real engine (RateLimiter, Coordinator, Fetchers, Writer, over HTTP on loopback), then checks
//! what was stored against the simulator's ground truth (`/__sim/expected`) and prints a short
//! report: per-day counts, requests, 429s and the share of the rate budget used.
//!
//! [`StoredSnapshot`] and [`compare`] are the ground-truth check by ids, counts and finality;
//! then every conversation and user record is compared by content ([`crate::digest`], the
//! truth from `/__sim/expected/digests`). Only when both agree does the demo say every record
//! matches; otherwise it exits 3. The end-to-end tests use the same functions.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use clap::Args;
use diesel::dsl::count_star;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde::Deserialize;

use crate::actors::coordinator::RunKind;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::digest::{compare_digests, load_stored_digests, DigestDiff};
use crate::engine::{self, EngineOptions, EXIT_CONFIG, EXIT_FAILURE, EXIT_INCOMPLETE, EXIT_OK};
use crate::genesys::model::{parse_instant, Interval};
use crate::plan::day_start;
use crate::progress::ProgressMode;
use crate::sim::{SimConfig, SimHandle};
use crate::storage::schema::{
    conversations, participants, segments, session_metrics, sessions, user_presence,
    user_routing_status,
};
use crate::storage::{connect, DatabaseUrl, StorageError};

/// `sluice demo` flags.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Days of history to ingest.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Conversations per day in the simulated org.
    #[arg(long, default_value_t = 2000)]
    pub per_day: u32,
    /// Agents in the simulated org (presence and routing-status timelines).
    #[arg(long, default_value_t = 100)]
    pub users: u32,
    /// The SQLite file to create (replaced if it exists).
    #[arg(long, default_value = "sluice-demo.db")]
    pub db: PathBuf,
    /// The simulated org's request budget per minute (the limiter is told the same).
    #[arg(long, default_value_t = 300)]
    pub rate_per_minute: u32,
    /// The length of the org's rate window in seconds: the per-minute budget is enforced per
    /// window, scaled (300/min on a 10 s window is 50 per window), so a short demo spans
    /// several windows and its budget use means something.
    #[arg(long, default_value_t = 10)]
    pub window_secs: u64,
    /// Path per block: auto (jobs for big old days, the query for the rest), query or jobs.
    #[arg(long, default_value = "auto")]
    pub mode: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("simulator: {0}")]
    Sim(String),
    #[error("cannot prepare {path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("ground truth: {0}")]
    Truth(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One conversation of `/__sim/expected`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedConversation {
    pub conversation_id: String,
    pub conversation_start: String,
    #[serde(default)]
    pub conversation_end: Option<String>,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub participants: i64,
    pub sessions: i64,
    pub segments: i64,
    pub metrics: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedUsers {
    pub users: i64,
    pub presence: i64,
    pub routing_status: i64,
}

/// `/__sim/expected?interval=A/B`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expected {
    pub conversation_count: i64,
    pub conversations: Vec<ExpectedConversation>,
    pub users: ExpectedUsers,
}

/// Reads the simulator's ground truth for `interval`.
pub async fn fetch_expected(base_url: &str, interval: Interval) -> Result<Expected, String> {
    let url = format!("{base_url}/__sim/expected?interval={interval}");
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .finish();
    let mut resp = client
        .get(url.as_str())
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = resp
        .body()
        .limit(512 * 1024 * 1024)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))
}

/// Reads the simulator's content digests for `interval` (`/__sim/expected/digests`).
pub async fn fetch_expected_digests(
    base_url: &str,
    interval: Interval,
) -> Result<crate::digest::ContentDigests, String> {
    let url = format!("{base_url}/__sim/expected/digests?interval={interval}");
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .finish();
    let mut resp = client
        .get(url.as_str())
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let body = resp
        .body()
        .limit(512 * 1024 * 1024)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))
}

/// One stored conversation with its child counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConversation {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub is_final: bool,
    pub participants: i64,
    pub sessions: i64,
    pub segments: i64,
    pub metrics: i64,
}

/// What the database holds for an interval.
#[derive(Debug, Clone, Default)]
pub struct StoredSnapshot {
    /// Conversations that started in the interval, by id.
    pub conversations: BTreeMap<String, StoredConversation>,
    /// Conversation rows in the whole table (any start).
    pub conversations_total: i64,
    /// Presence / routing-status records overlapping the interval.
    pub presence: i64,
    pub routing_status: i64,
    /// Distinct users with a presence or routing-status record overlapping the interval.
    pub users: i64,
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl StoredSnapshot {
    /// Reads the snapshot (blocking; call off the async runtime for MySQL).
    pub fn load(url: &DatabaseUrl, interval: Interval) -> Result<Self, StorageError> {
        let mut conn = connect(url)?;
        let (a, b) = (interval.start.naive_utc(), interval.end.naive_utc());
        let rows: Vec<(String, NaiveDateTime, Option<NaiveDateTime>, bool)> =
            crate::dispatch!(&mut conn, |c| conversations::table
                .filter(conversations::conversation_start.ge(a))
                .filter(conversations::conversation_start.lt(b))
                .select((
                    conversations::conversation_id,
                    conversations::conversation_start,
                    conversations::conversation_end,
                    conversations::is_final,
                ))
                .load(c))?;
        let total: i64 = crate::dispatch!(&mut conn, |c| conversations::table
            .select(count_star())
            .first(c))?;
        let parts: Vec<(String, i64)> = crate::dispatch!(&mut conn, |c| participants::table
            .group_by(participants::conversation_id)
            .select((participants::conversation_id, count_star()))
            .load(c))?;
        let sess: Vec<(String, i64)> = crate::dispatch!(&mut conn, |c| sessions::table
            .group_by(sessions::conversation_id)
            .select((sessions::conversation_id, count_star()))
            .load(c))?;
        let segs: Vec<(String, i64)> = crate::dispatch!(&mut conn, |c| segments::table
            .group_by(segments::conversation_id)
            .select((segments::conversation_id, count_star()))
            .load(c))?;
        let mets: Vec<(String, i64)> = crate::dispatch!(&mut conn, |c| session_metrics::table
            .group_by(session_metrics::conversation_id)
            .select((session_metrics::conversation_id, count_star()))
            .load(c))?;
        let maps: Vec<HashMap<String, i64>> = [parts, sess, segs, mets]
            .into_iter()
            .map(|v| v.into_iter().collect())
            .collect();
        let get = |m: &HashMap<String, i64>, id: &str| m.get(id).copied().unwrap_or(0);
        let conversations = rows
            .into_iter()
            .map(|(id, s, e, f)| {
                let c = StoredConversation {
                    start: utc(s),
                    end: e.map(utc),
                    is_final: f,
                    participants: get(&maps[0], &id),
                    sessions: get(&maps[1], &id),
                    segments: get(&maps[2], &id),
                    metrics: get(&maps[3], &id),
                };
                (id, c)
            })
            .collect();
        let presence: Vec<(String, NaiveDateTime, Option<NaiveDateTime>)> =
            crate::dispatch!(&mut conn, |c| user_presence::table
                .filter(user_presence::start_time.lt(b))
                .select((
                    user_presence::user_id,
                    user_presence::start_time,
                    user_presence::end_time
                ))
                .load(c))?;
        let routing: Vec<(String, NaiveDateTime, Option<NaiveDateTime>)> =
            crate::dispatch!(&mut conn, |c| user_routing_status::table
                .filter(user_routing_status::start_time.lt(b))
                .select((
                    user_routing_status::user_id,
                    user_routing_status::start_time,
                    user_routing_status::end_time
                ))
                .load(c))?;
        let overlaps = |e: &Option<NaiveDateTime>| e.is_none_or(|e| e > a);
        let mut users = std::collections::HashSet::new();
        let mut count = |v: &[(String, NaiveDateTime, Option<NaiveDateTime>)]| {
            let mut n = 0;
            for (u, _, e) in v {
                if overlaps(e) {
                    n += 1;
                    users.insert(u.clone());
                }
            }
            n
        };
        let presence_n = count(&presence);
        let routing_n = count(&routing);
        Ok(StoredSnapshot {
            conversations,
            conversations_total: total,
            presence: presence_n,
            routing_status: routing_n,
            users: users.len() as i64,
        })
    }
}

/// Stored against expected.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub expected: usize,
    pub stored: usize,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// `id: what differs`.
    pub child_mismatches: Vec<String>,
    /// Stored as final, but still in progress in the simulator (never acceptable).
    pub finality_mismatches: Vec<String>,
    /// Ended in the simulator, stored as not final yet (it ended after the watermark; the next
    /// catch-up makes it final).
    pub pending_final: usize,
    /// Per UTC day of conversationStart: (expected, stored).
    pub per_day: BTreeMap<NaiveDate, (usize, usize)>,
    pub users_expected: (i64, i64, i64),
    pub users_stored: (i64, i64, i64),
}

impl Comparison {
    /// Conversations (ids, child counts, finality) and user records all match.
    pub fn matches(&self) -> bool {
        self.conversations_match() && self.users_expected == self.users_stored
    }

    pub fn conversations_match(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.child_mismatches.is_empty()
            && self.finality_mismatches.is_empty()
    }

    /// A few lines naming what differs.
    pub fn problems(&self) -> String {
        let mut out = Vec::new();
        let few = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if !self.missing.is_empty() {
            out.push(format!(
                "{} missing: {}",
                self.missing.len(),
                few(&self.missing)
            ));
        }
        if !self.unexpected.is_empty() {
            out.push(format!(
                "{} unexpected: {}",
                self.unexpected.len(),
                few(&self.unexpected)
            ));
        }
        if !self.child_mismatches.is_empty() {
            out.push(format!(
                "{} with other child counts: {}",
                self.child_mismatches.len(),
                few(&self.child_mismatches)
            ));
        }
        if !self.finality_mismatches.is_empty() {
            out.push(format!(
                "{} with other finality: {}",
                self.finality_mismatches.len(),
                few(&self.finality_mismatches)
            ));
        }
        if self.users_expected != self.users_stored {
            out.push(format!(
                "users/presence/routing status expected {:?}, stored {:?}",
                self.users_expected, self.users_stored
            ));
        }
        out.join("; ")
    }
}

/// Compares what is stored with the simulator's truth (conversations by id with their child
/// counts and finality, user records by count). `check_users` off for conversation-only runs.
pub fn compare(expected: &Expected, stored: &StoredSnapshot, check_users: bool) -> Comparison {
    let mut c = Comparison {
        expected: expected.conversations.len(),
        stored: stored.conversations.len(),
        ..Comparison::default()
    };
    let mut seen = std::collections::HashSet::new();
    for e in &expected.conversations {
        seen.insert(e.conversation_id.as_str());
        let day = parse_instant(&e.conversation_start)
            .map(|t| t.date_naive())
            .unwrap_or_default();
        c.per_day.entry(day).or_default().0 += 1;
        match stored.conversations.get(&e.conversation_id) {
            None => c.missing.push(e.conversation_id.clone()),
            Some(s) => {
                c.per_day.entry(day).or_default().1 += 1;
                let want = (e.participants, e.sessions, e.segments, e.metrics);
                let got = (s.participants, s.sessions, s.segments, s.metrics);
                if want != got {
                    c.child_mismatches.push(format!(
                        "{} (participants, sessions, segments, metrics) expected {want:?} stored {got:?}",
                        e.conversation_id
                    ));
                }
                if s.is_final && !e.is_final {
                    c.finality_mismatches.push(format!(
                        "{} stored as final but still in progress",
                        e.conversation_id
                    ));
                } else if e.is_final && !s.is_final {
                    c.pending_final += 1;
                }
            }
        }
    }
    for (id, s) in &stored.conversations {
        if !seen.contains(id.as_str()) {
            c.unexpected.push(id.clone());
            c.per_day.entry(s.start.date_naive()).or_default().1 += 1;
        }
    }
    if check_users {
        c.users_expected = (
            expected.users.users,
            expected.users.presence,
            expected.users.routing_status,
        );
        c.users_stored = (stored.users, stored.presence, stored.routing_status);
    }
    c
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub interval: Interval,
    pub comparison: Comparison,
    /// Content digests, truth against the database: (conversations, user records).
    pub content: (DigestDiff, DigestDiff),
    /// Records whose digests were compared: (conversations, user records).
    pub content_compared: (usize, usize),
    pub run: crate::actors::coordinator::RunReport,
    pub requests: i64,
    pub rate_limited: i64,
    pub collateral_429s: i64,
    pub jobs: i64,
    pub elapsed: std::time::Duration,
    pub budget_per_minute: f64,
    /// The rate window the budget is enforced on.
    pub window_secs: u64,
    pub db: PathBuf,
}

impl DemoReport {
    /// Requests allowed in one rate window (the simulator's rule: rate × window / 60, down).
    pub fn per_window(&self) -> f64 {
        (self.budget_per_minute * self.window_secs as f64 / 60.0)
            .floor()
            .max(1.0)
    }

    /// Rate windows the run touched (a window that has started offers its whole allowance).
    pub fn windows(&self) -> f64 {
        (self.elapsed.as_secs_f64() / self.window_secs.max(1) as f64)
            .ceil()
            .max(1.0)
    }

    /// Requests sent ÷ the budget the windows of the run offered.
    pub fn budget_used(&self) -> f64 {
        self.requests as f64 / (self.per_window() * self.windows())
    }

    pub fn ok(&self) -> bool {
        self.comparison.matches() && self.content_matches() && self.run.complete()
    }

    /// Every conversation and user record has the truth's content digest.
    pub fn content_matches(&self) -> bool {
        self.content.0.is_empty() && self.content.1.is_empty()
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "\nSluice demo — {} ingested into {}\n\n",
            self.interval,
            self.db.display()
        ));
        s.push_str("  day          expected   stored\n");
        for (day, (e, st)) in &self.comparison.per_day {
            s.push_str(&format!(
                "  {day}  {e:>9}  {st:>7}{}\n",
                if e == st { "" } else { "  ← differs" }
            ));
        }
        let (u, p, r) = self.comparison.users_stored;
        s.push_str(&format!(
            "\n  conversations: {} stored of {} expected; ids, participants, sessions, segments and metrics {}\n",
            self.comparison.stored,
            self.comparison.expected,
            if self.comparison.conversations_match() { "all match" } else { "DIFFER" }
        ));
        if self.comparison.pending_final > 0 {
            s.push_str(&format!(
                "  {} conversations ended after the watermark: stored, not final yet\n",
                self.comparison.pending_final
            ));
        }
        s.push_str(&format!(
            "  users: {u} users, {p} presence and {r} routing-status records {}\n",
            if self.comparison.users_expected == self.comparison.users_stored {
                "(match)"
            } else {
                "(DIFFER)"
            }
        ));
        s.push_str(&format!(
            "  content: {} conversations and {} user records compared by digest (participants, sessions, segments, metrics): {}\n",
            self.content_compared.0,
            self.content_compared.1,
            if self.content_matches() { "all match" } else { "DIFFER" }
        ));
        s.push_str(&format!(
            "  partitions: {} verified, {} unverified, {} failed, {} split; {} async jobs\n",
            self.run.summary.done,
            self.run.summary.unverified.len(),
            self.run.summary.failed.len(),
            self.run.summary.split,
            self.jobs
        ));
        s.push_str(&format!(
            "  requests: {} in {:.1} s, {} answered 429 ({:.2} %), {} collateral 429s to the org's other integration\n",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.rate_limited,
            if self.requests > 0 { 100.0 * self.rate_limited as f64 / self.requests as f64 } else { 0.0 },
            self.collateral_429s
        ));
        s.push_str(&format!(
            "  budget used: {:.0} % of {:.0} requests per {} s window ({:.0}/min) over {:.0} windows\n",
            100.0 * self.budget_used(),
            self.per_window(),
            self.window_secs,
            self.budget_per_minute,
            self.windows()
        ));
        if !self.comparison.matches() {
            s.push_str(&format!("\n  MISMATCH: {}\n", self.comparison.problems()));
        }
        if !self.content.0.is_empty() {
            s.push_str(&format!(
                "\n  CONTENT MISMATCH (conversations): {}\n",
                self.content.0.summary()
            ));
        }
        if !self.content.1.is_empty() {
            s.push_str(&format!(
                "\n  CONTENT MISMATCH (user records): {}\n",
                self.content.1.summary()
            ));
        }
        s.push_str(if self.ok() {
            "\n  result: OK — every record arrived exactly once and its content matches the simulator's truth\n"
        } else {
            "\n  result: FAILED\n"
        });
        s
    }
}

fn remove_db(path: &FsPath) -> Result<(), DemoError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DemoError::File {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// The simulator settings of the demo org: fixed clock at 04:00 UTC today (so the watermark
/// sits at midnight), a little latency, quick jobs.
pub fn demo_sim_config(args: &DemoArgs, now: DateTime<Utc>) -> SimConfig {
    SimConfig {
        port: 0,
        seed: args.seed,
        days: args.days + 1,
        per_day: args.per_day,
        users: args.users,
        rate_per_minute: args.rate_per_minute,
        window: std::time::Duration::from_secs(args.window_secs.max(1)),
        job_delay: std::time::Duration::from_millis(800),
        latency_ms: Some((5, 40)),
        now: Some(now),
        ..SimConfig::default()
    }
}

/// Runs the demo inside the current actix System.
pub async fn run_demo(args: &DemoArgs, progress: ProgressMode) -> Result<DemoReport, DemoError> {
    let now = day_start(Utc::now()) + Duration::hours(4);
    let to = day_start(now);
    let from = to - Duration::days(i64::from(args.days.max(1)));
    let interval = Interval::new(from, to);
    remove_db(&args.db)?;
    let sim: SimHandle =
        crate::sim::start(demo_sim_config(args, now)).map_err(|e| DemoError::Sim(e.to_string()))?;
    let env = crate::config::env_from(&[
        ("GENESYS_API_URL", &sim.base_url()),
        ("GENESYS_CLIENT_ID", crate::sim::DEFAULT_CLIENT_ID),
        ("GENESYS_CLIENT_SECRET", crate::sim::DEFAULT_CLIENT_SECRET),
        ("DATABASE_URL", &format!("sqlite://{}", args.db.display())),
        ("SLUICE_RATE_PER_MINUTE", &args.rate_per_minute.to_string()),
        (
            "SLUICE_RATE_WINDOW_SECS",
            &args.window_secs.max(1).to_string(),
        ),
        ("SLUICE_MODE", &args.mode),
    ]);
    let mut config = Config::default();
    config.apply_env(&env).map_err(engine::EngineError::from)?;
    config.fetch.job_poll_secs = 0.5;
    config.fetch.job_poll_max_secs = 2.0;
    let clock = Arc::new(ManualClock::new(now));
    let mut opts = EngineOptions::new(RunKind::Backfill { from, to }, clock);
    opts.progress = progress;
    opts.command = "demo".into();
    log::info!(
        "demo: simulated org at {} ({} days × {} conversations, {} agents, {} requests/min); ingesting {interval} into {}",
        sim.base_url(),
        args.days,
        args.per_day,
        args.users,
        args.rate_per_minute,
        args.db.display()
    );
    let started = Instant::now();
    let handle = engine::start(&config, opts).await?;
    handle.handle_signals();
    let run = handle.finished().await;
    let elapsed = started.elapsed();
    let expected = fetch_expected(&sim.base_url(), interval)
        .await
        .map_err(DemoError::Truth)?;
    let truth = fetch_expected_digests(&sim.base_url(), interval)
        .await
        .map_err(DemoError::Truth)?;
    let url = DatabaseUrl::sqlite(&args.db);
    let stored = StoredSnapshot::load(&url, interval)?;
    let comparison = compare(&expected, &stored, true);
    let content = compare_digests(&truth, &load_stored_digests(&url, interval)?);
    let stats = sim.stats();
    let num = |p: &str| stats.pointer(p).and_then(|v| v.as_i64()).unwrap_or(0);
    let report = DemoReport {
        interval,
        comparison,
        content,
        content_compared: (truth.conversations.len(), truth.user_records.len()),
        run,
        requests: num("/requests/total"),
        rate_limited: num("/rateLimited/total"),
        collateral_429s: num("/collateral429s"),
        jobs: handle
            .counters
            .jobs
            .load(std::sync::atomic::Ordering::Relaxed),
        elapsed,
        budget_per_minute: f64::from(args.rate_per_minute),
        window_secs: args.window_secs.max(1),
        db: args.db.clone(),
    };
    sim.stop();
    Ok(report)
}

/// `sluice demo`: returns the exit code.
pub fn run_cli(args: DemoArgs) -> i32 {
    let system = actix_rt::System::new();
    system.block_on(async move {
        match run_demo(&args, ProgressMode::detect(false)).await {
            Ok(report) => {
                println!("{}", report.text());
                match busiest_day_queue_report(&DatabaseUrl::sqlite(&args.db), report.interval) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("sluice: demo: the queue report failed: {e}"),
                }
                if report.ok() {
                    EXIT_OK
                } else {
                    EXIT_INCOMPLETE
                }
            }
            Err(DemoError::Engine(e)) => {
                eprintln!("sluice: {e}");
                e.exit_code()
            }
            Err(e) => {
                eprintln!("sluice: demo: {e}");
                if matches!(e, DemoError::File { .. }) {
                    EXIT_CONFIG
                } else {
                    EXIT_FAILURE
                }
            }
        }
    })
}

/// The demo's last words: queue-daily for the busiest day of `interval` (most offered), by
/// queue name, in a few columns. `None` of the names is an id unless the directory missed it.
pub fn busiest_day_queue_report(
    url: &DatabaseUrl,
    interval: Interval,
) -> Result<String, StorageError> {
    let mut conn = connect(url)?;
    let rows = crate::report::queue_daily(&mut conn, interval.start, interval.end)?;
    let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for r in &rows {
        *per_day.entry(r.day).or_default() += r.offered;
    }
    let Some((day, _)) = per_day
        .iter()
        .max_by_key(|(d, n)| (**n, std::cmp::Reverse(**d)))
    else {
        return Ok("  (no queue data to report)".into());
    };
    let mut busiest: Vec<_> = rows.iter().filter(|r| r.day == *day).collect();
    busiest.sort_by(|a, b| b.offered.cmp(&a.offered).then(a.queue.cmp(&b.queue)));
    let table = crate::report::ReportTable {
        columns: vec!["queue", "offered", "answered", "abandoned", "avg_handle_s"],
        rows: busiest
            .iter()
            .map(|r| {
                vec![
                    serde_json::json!(r.queue),
                    serde_json::json!(r.offered),
                    serde_json::json!(r.answered),
                    serde_json::json!(r.abandoned),
                    r.handle
                        .avg_seconds()
                        .map(|s| serde_json::json!((s * 10.0).round() / 10.0))
                        .unwrap_or(serde_json::Value::Null),
                ]
            })
            .collect(),
    };
    let mut out = Vec::new();
    table
        .write(&mut out, crate::report::OutputFormat::Table)
        .map_err(|e| StorageError::Database {
            message: e.to_string(),
            transient: false,
        })?;
    Ok(format!(
        "  busiest day {day} (UTC), by queue — `sluice report queue-daily --tz ZONE --interval 15m` for more:\n\n{}",
        String::from_utf8_lossy(&out)
    ))
}
