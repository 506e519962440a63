//! Settings of the simulator: [`SimArgs`] is the `sluice sim` command line (the flag names are an
//! interface other tools use), [`SimConfig`] the plain struct tests build directly.
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::genesys::model::parse_instant;

/// Default OAuth client id when `--clients` is not given.
pub const DEFAULT_CLIENT_ID: &str = "sluice-sim";
/// Default OAuth client secret when `--clients` is not given.
pub const DEFAULT_CLIENT_SECRET: &str = "sluice-sim-secret";
/// Client id of the simulated background integration (collateral-damage probe).
pub const BACKGROUND_CLIENT_ID: &str = "background-integration";

/// `sluice sim` flags.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Seed of the generated data (same seed, same data, same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history before the simulated now.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Conversations per day.
    #[arg(long, default_value_t = 2000)]
    pub per_day: u32,
    /// Number of users (agents).
    #[arg(long, default_value_t = 200)]
    pub users: u32,
    /// Requests per minute per OAuth client (the platform's token limit). Enforced in fixed
    /// windows of `--window-secs`, each allowing rate × window / 60 requests (300 per minute in
    /// 10 s windows: 50 per window).
    #[arg(long, default_value_t = 300)]
    pub rate_per_minute: u32,
    /// Length of the fixed rate window in seconds (scale time down for tests and benchmarks).
    #[arg(long, default_value_t = 60)]
    pub window_secs: u64,
    /// Org-wide analytics requests in flight (all clients); above it: 429.
    #[arg(long, default_value_t = 10)]
    pub concurrency: u32,
    /// Largest pageSize of the synchronous queries.
    #[arg(long, default_value_t = 100)]
    pub page_size_max: u32,
    /// Results reachable by paging (pageNumber x pageSize); past it: 400.
    #[arg(long, default_value_t = 10000)]
    pub paging_cap: u32,
    /// Running jobs per org; above it: 429.
    #[arg(long, default_value_t = 5)]
    pub job_concurrency: u32,
    /// Time a job takes from submission to FULFILLED (real time), before the part that grows
    /// with its result size (`--job-run-per-10k-ms`).
    #[arg(long, default_value_t = 2000)]
    pub job_delay_ms: u64,
    /// With this, each job's fixed part is drawn uniformly from `job-delay-ms..=job-delay-max-ms`
    /// (real jobs do not all take the same time).
    #[arg(long)]
    pub job_delay_max_ms: Option<u64>,
    /// Run time a job spends per 10,000 results, on top of its fixed part.
    #[arg(long, default_value_t = 1000)]
    pub job_run_per_10k_ms: u64,
    /// Job results live this long after completion (simulated time), then EXPIRED.
    #[arg(long, default_value_t = 86400)]
    pub job_expiry_secs: u64,
    /// Largest pageSize of job results.
    #[arg(long, default_value_t = 1000)]
    pub job_page_size_max: u32,
    /// dataAvailabilityDate = now minus this many hours.
    #[arg(long, default_value_t = 6.0)]
    pub availability_lag_hours: f64,
    /// Lifetime of an access token (`expires_in`), real seconds.
    #[arg(long, default_value_t = 86400)]
    pub token_ttl_secs: u64,
    /// OAuth clients as `id:secret,id:secret` (default: sluice-sim:sluice-sim-secret).
    #[arg(long, env = "SLUICE_SIM_CLIENTS", hide_env_values = true, value_parser = parse_clients)]
    pub clients: Option<Clients>,
    /// Probability that an API request fails with 502/503/504.
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx: f64,
    /// Probability that a 200 answer carries a truncated JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub fault_malformed: f64,
    /// Probability that a job ends FAILED instead of FULFILLED.
    #[arg(long, default_value_t = 0.0)]
    pub fault_job_failed: f64,
    /// Probability that a job's results expire early: half of these say EXPIRED at their first
    /// poll after completion, half say FULFILLED once and then answer 404 on their results (the
    /// race a client meets when results expire between its poll and its read).
    #[arg(long, default_value_t = 0.0)]
    pub fault_job_expired: f64,
    /// Added latency per API request, `MIN,MAX` milliseconds.
    #[arg(long, value_parser = parse_latency)]
    pub latency_ms: Option<(u64, u64)>,
    /// Probability that a page reports a totalHits different from the truth.
    #[arg(long, default_value_t = 0.0)]
    pub total_hits_drift: f64,
    /// Background integration: requests per second (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub bg_rps: f64,
    /// Background integration: its own requests in flight at most.
    #[arg(long, default_value_t = 2)]
    pub bg_concurrency: u32,
    /// Background integration active hours (UTC of the simulated clock), `HH-HH`.
    #[arg(long, value_parser = parse_hours)]
    pub bg_hours: Option<(u32, u32)>,
    /// Fix the simulated clock at this instant (default: real time).
    #[arg(long, value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// Turn off every limit (rate window, concurrency, job cap).
    #[arg(long)]
    pub no_limits: bool,
    /// Send the legacy inin-ratelimit-* headers (removed from the live API in 2021).
    #[arg(long)]
    pub legacy_headers: bool,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Run the analytics pipeline (revise 5 %, delete 1 % of what ended 48 h before) at every
    /// simulated midnight, as Genesys does; `POST /__sim/pipeline` runs it on demand.
    #[arg(long)]
    pub pipeline_nightly: bool,
}

/// OAuth clients `(id, secret)`. Debug never prints the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Clients(pub Vec<(String, String)>);

impl Default for Clients {
    fn default() -> Self {
        Clients(vec![(
            DEFAULT_CLIENT_ID.to_string(),
            DEFAULT_CLIENT_SECRET.to_string(),
        )])
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(id, _)| format!("{id}:[redacted]")))
            .finish()
    }
}

fn parse_clients(s: &str) -> Result<Clients, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, secret) = part
            .split_once(':')
            .ok_or_else(|| "each client must be id:secret".to_string())?;
        if id.is_empty() || secret.is_empty() {
            return Err("client id and secret must not be empty".into());
        }
        out.push((id.to_string(), secret.to_string()));
    }
    if out.is_empty() {
        return Err("no client given".into());
    }
    Ok(Clients(out))
}

/// `MIN,MAX` (or one value) milliseconds of added latency.
pub fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once(',').unwrap_or((s, s));
    let a: u64 = a.trim().parse().map_err(|_| format!("bad latency {s:?}"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("bad latency {s:?}"))?;
    if b < a {
        return Err(format!("latency {s:?}: MAX below MIN"));
    }
    Ok((a, b))
}

fn parse_hours(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("hours {s:?} must be HH-HH"))?;
    let a: u32 = a.trim().parse().map_err(|_| format!("bad hours {s:?}"))?;
    let b: u32 = b.trim().parse().map_err(|_| format!("bad hours {s:?}"))?;
    if a > 24 || b > 24 {
        return Err(format!("hours {s:?} out of range"));
    }
    Ok((a, b))
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    parse_instant(s)
}

/// Everything the simulator needs; `Default` gives the defaults (port 0 for tests).
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub seed: u64,
    pub days: u32,
    pub per_day: u32,
    pub users: u32,
    /// Requests per minute per OAuth client; see [`SimConfig::rate_per_window`].
    pub rate_per_minute: u32,
    /// The fixed rate window.
    pub window: Duration,
    pub concurrency: u32,
    pub page_size_max: u32,
    pub paging_cap: u32,
    pub job_concurrency: u32,
    pub job_delay: Duration,
    /// Upper end of the fixed part of a job's run time (`None`: always `job_delay`).
    pub job_delay_max: Option<Duration>,
    /// Run time per 10,000 results, on top of the fixed part.
    pub job_run_per_10k: Duration,
    pub job_expiry: Duration,
    pub job_page_size_max: u32,
    pub availability_lag: Duration,
    pub token_ttl: Duration,
    pub clients: Clients,
    pub fault_5xx: f64,
    pub fault_malformed: f64,
    pub fault_job_failed: f64,
    pub fault_job_expired: f64,
    pub latency_ms: Option<(u64, u64)>,
    pub total_hits_drift: f64,
    pub bg_rps: f64,
    pub bg_concurrency: u32,
    pub bg_hours: Option<(u32, u32)>,
    /// Fixed simulated now; `None` = real time.
    pub now: Option<DateTime<Utc>>,
    pub no_limits: bool,
    pub legacy_headers: bool,
    pub workers: usize,
    /// Run the analytics pipeline at every simulated midnight.
    pub pipeline_nightly: bool,
}

impl SimConfig {
    /// Requests per OAuth client allowed in one window: `rate_per_minute × window / 60`, rounded
    /// down, at least 1 (the engine sizes its pacing by the same rule).
    pub fn rate_per_window(&self) -> u32 {
        let w = self.window.as_millis().max(1);
        let n = u128::from(self.rate_per_minute) * w / 60_000;
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            seed: 1,
            days: 30,
            per_day: 2000,
            users: 200,
            rate_per_minute: 300,
            window: Duration::from_secs(60),
            concurrency: 10,
            page_size_max: 100,
            paging_cap: 10_000,
            job_concurrency: 5,
            job_delay: Duration::from_millis(2000),
            job_delay_max: None,
            job_run_per_10k: Duration::from_millis(1000),
            job_expiry: Duration::from_secs(86_400),
            job_page_size_max: 1000,
            availability_lag: Duration::from_secs(6 * 3600),
            token_ttl: Duration::from_secs(86_400),
            clients: Clients::default(),
            fault_5xx: 0.0,
            fault_malformed: 0.0,
            fault_job_failed: 0.0,
            fault_job_expired: 0.0,
            latency_ms: None,
            total_hits_drift: 0.0,
            bg_rps: 0.0,
            bg_concurrency: 2,
            bg_hours: None,
            now: None,
            no_limits: false,
            legacy_headers: false,
            workers: 2,
            pipeline_nightly: false,
        }
    }
}

impl From<SimArgs> for SimConfig {
    fn from(a: SimArgs) -> Self {
        SimConfig {
            bind: a.bind,
            port: a.port,
            seed: a.seed,
            days: a.days,
            per_day: a.per_day,
            users: a.users.max(1),
            rate_per_minute: a.rate_per_minute,
            window: Duration::from_secs(a.window_secs.max(1)),
            concurrency: a.concurrency,
            page_size_max: a.page_size_max.max(1),
            paging_cap: a.paging_cap,
            job_concurrency: a.job_concurrency,
            job_delay: Duration::from_millis(a.job_delay_ms),
            job_delay_max: a
                .job_delay_max_ms
                .map(|m| Duration::from_millis(m.max(a.job_delay_ms))),
            job_run_per_10k: Duration::from_millis(a.job_run_per_10k_ms),
            job_expiry: Duration::from_secs(a.job_expiry_secs),
            job_page_size_max: a.job_page_size_max.max(1),
            availability_lag: Duration::try_from_secs_f64(a.availability_lag_hours * 3600.0)
                .unwrap_or(Duration::from_secs(6 * 3600)),
            token_ttl: Duration::from_secs(a.token_ttl_secs),
            clients: a.clients.unwrap_or_default(),
            fault_5xx: a.fault_5xx.clamp(0.0, 1.0),
            fault_malformed: a.fault_malformed.clamp(0.0, 1.0),
            fault_job_failed: a.fault_job_failed.clamp(0.0, 1.0),
            fault_job_expired: a.fault_job_expired.clamp(0.0, 1.0),
            latency_ms: a.latency_ms,
            total_hits_drift: a.total_hits_drift.clamp(0.0, 1.0),
            bg_rps: a.bg_rps.max(0.0),
            bg_concurrency: a.bg_concurrency,
            bg_hours: a.bg_hours,
            now: a.now,
            no_limits: a.no_limits,
            legacy_headers: a.legacy_headers,
            workers: a.workers.max(1),
            pipeline_nightly: a.pipeline_nightly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn flags_parse_into_config() {
        let cmd = Cmd::try_parse_from([
            "sim",
            "--port",
            "0",
            "--clients",
            "a:x,b:y",
            "--latency-ms",
            "5,10",
            "--bg-hours",
            "08-17",
            "--now",
            "2024-03-01T12:00:00Z",
            "--no-limits",
            "--pipeline-nightly",
            "--job-delay-max-ms",
            "5000",
        ])
        .unwrap();
        let cfg = SimConfig::from(cmd.sim);
        assert!(cfg.pipeline_nightly);
        assert!(!SimConfig::default().pipeline_nightly);
        assert_eq!(cfg.clients.0.len(), 2);
        assert_eq!(cfg.latency_ms, Some((5, 10)));
        assert_eq!(cfg.bg_hours, Some((8, 17)));
        assert!(cfg.no_limits);
        assert_eq!(cfg.window, Duration::from_secs(60));
        assert_eq!(cfg.job_delay_max, Some(Duration::from_millis(5000)));
        assert_eq!(cfg.job_run_per_10k, Duration::from_millis(1000));
        let dbg = format!("{cfg:?}");
        assert!(dbg.contains("a:[redacted]") && !dbg.contains(":x"), "{dbg}");
        assert!(Cmd::try_parse_from(["sim", "--clients", "nosecret"]).is_err());
        assert!(Cmd::try_parse_from(["sim", "--latency-ms", "10,5"]).is_err());
    }
}
