//! Prometheus metrics for one engine instance.
//!
//! Why: backend teams run Sluice for months beside their warehouse and need to see, from their
//! own Prometheus, whether it is healthy, how far behind it is and whether it is eating the org's
//! API budget. One [`Metrics`] exists per engine instance (shared behind an `Arc`) with its own
//! [`Registry`], so several engines in one process (tests) never mix their numbers.
//!
//! What it guarantees:
//! - `sluice_requests_total{endpoint,status}` counts every HTTP attempt sent to Genesys, retries
//!   and token requests included, exactly once: the API client calls
//!   [`Metrics::observe_request`] (through [`crate::genesys::RequestObserver`]) once per attempt.
//!   `status` is the HTTP code, or `error` when no response came back (transport failure).
//! - Everything that is *state* rather than an event (tokens, in-flight requests, refill rate,
//!   partitions by status, Writer queue, watermark lag) is read at scrape time from a
//!   [`ScrapeSnapshot`], so a scrape always shows the present, never a stale push.
//! - No label or value ever carries a secret: labels are endpoint names, status codes, dataset
//!   and partition-status names only.
//!
//! The full list, with units, is [`METRIC_DOCS`] (also in the README, section "Metrics").

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::Serialize;

/// Every metric Sluice exports: name, type, unit/meaning. Kept in one table so the README and the
/// code cannot drift (a unit test checks each name is registered).
pub const METRIC_DOCS: &[(&str, &str, &str)] = &[
    ("sluice_requests_total", "counter", "HTTP attempts sent to Genesys (retries and token requests included), by `endpoint` and `status` (HTTP code, or `error` for a transport failure)"),
    ("sluice_request_duration_seconds", "histogram", "seconds from sending an attempt to its response (or failure), by `endpoint`"),
    ("sluice_rate_limited_total", "counter", "attempts answered 429 Too Many Requests"),
    ("sluice_rate_limited_ratio", "gauge", "share (0–1) of the RateLimiter's recent attempts answered 429 (its sliding window)"),
    ("sluice_retry_after_pauses_total", "counter", "pauses of the whole RateLimiter on a 429's Retry-After"),
    ("sluice_rate_limiter_paused_seconds", "gauge", "seconds until the current Retry-After pause ends (0 when not paused)"),
    ("sluice_quota_breaches_total", "counter", "quota breaches: a Retry-After over 180 s"),
    ("sluice_quota_breach", "gauge", "1 while a quota breach is being waited out, else 0"),
    ("sluice_rate_limiter_tokens", "gauge", "tokens (requests) available in the RateLimiter's bucket now"),
    ("sluice_requests_in_flight", "gauge", "requests holding a concurrency permit now"),
    ("sluice_rate_limiter_concurrency_cap", "gauge", "permits the RateLimiter hands out at most (org limit minus buffer)"),
    ("sluice_rate_limiter_rate_per_minute", "gauge", "current refill rate, requests per minute (lowered while 429s are seen)"),
    ("sluice_rate_limiter_budget_per_minute", "gauge", "configured budget, requests per minute (`rate_per_minute`)"),
    ("sluice_rate_limiter_reductions_total", "counter", "adaptive reductions of the refill rate (429 ratio over the threshold)"),
    ("sluice_partitions", "gauge", "checkpoint partitions by `dataset` and `status` (pending, running, done, unverified, failed, split)"),
    ("sluice_conversations_written_total", "counter", "conversations stored by the Writer (inserted, replaced, or found unchanged)"),
    ("sluice_rows_written_total", "counter", "database rows written by the Writer, all tables"),
    ("sluice_writer_batches_total", "counter", "transactions committed by the Writer"),
    ("sluice_writer_queue_depth", "gauge", "pages waiting in the Writer's queue"),
    ("sluice_writer_batch_seconds", "gauge", "seconds the Writer's last batch transaction took"),
    ("sluice_conversations_changed_total", "counter", "re-fetched conversations whose content digest differed from the stored copy (the row rewritten, and the children that differ)"),
    ("sluice_conversations_deleted_total", "counter", "stored conversations absent from their block's verified re-fetch (deleted upstream), deleted with their children"),
    ("sluice_user_records_deleted_total", "counter", "presence and routing-status records absent from their block's verified re-fetch, deleted"),
    ("sluice_conversations_unchanged_total", "counter", "re-fetched conversations whose content digest matched the stored copy (not rewritten)"),
    ("sluice_user_records_unchanged_total", "counter", "re-fetched presence and routing-status records whose content digest matched (not rewritten)"),
    ("sluice_watermark_lag_seconds", "gauge", "seconds between the watermark (now minus the finality delay) and the end of the verified, contiguous history; 0 when caught up"),
    ("sluice_run_start_time_seconds", "gauge", "Unix time (seconds) the current run started"),
    ("sluice_build_info", "gauge", "always 1; label `version` is the Sluice version"),
    ("sluice_instance_role", "gauge", "1 for this instance's role, 0 for the other: `role` is `active` (holds the OAuth client's leader lease and fetches) or `standby` (waits to take over)"),
];

/// State of the RateLimiter at scrape time (a plain copy of its state snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LimiterGauges {
    pub tokens: f64,
    pub in_flight: u64,
    pub concurrency_cap: u64,
    pub current_rate_per_minute: f64,
    pub budget_per_minute: f64,
    pub ratio_429: f64,
    /// Time left in the current Retry-After pause.
    #[serde(with = "secs_f64")]
    pub paused_for: Duration,
    pub quota_breach: bool,
    pub reductions: u64,
    /// Retry-After pauses so far (cumulative).
    pub pauses: u64,
    /// Quota breaches so far (cumulative).
    pub quota_breaches: u64,
}

/// Writer statistics at scrape time (cumulative counts, current queue).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WriterGauges {
    pub queue_depth: u64,
    pub batches: u64,
    pub rows_written: u64,
    pub conversations_written: u64,
    pub last_batch_seconds: f64,
    pub conversations_changed: u64,
    pub conversations_deleted: u64,
    pub user_records_deleted: u64,
    pub conversations_unchanged: u64,
    pub user_records_unchanged: u64,
}

/// Number of checkpoint partitions in one (dataset, status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionCount {
    pub dataset: String,
    pub status: String,
    pub count: i64,
}

/// Everything read at scrape time. A missing part (engine piece not running, database down) is
/// `None` and its gauges keep their last value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScrapeSnapshot {
    pub limiter: Option<LimiterGauges>,
    pub writer: Option<WriterGauges>,
    pub partitions: Option<Vec<PartitionCount>>,
    pub watermark_lag_seconds: Option<f64>,
}

/// One failed attempt, kept for `/status` ("last errors").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptError {
    pub at: DateTime<Utc>,
    pub endpoint: String,
    /// HTTP status, or `error` for a transport failure.
    pub status: String,
}

/// What the latest attempts say about the OAuth token (for `/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenHealth {
    /// No attempt seen yet.
    Unknown,
    /// The latest attempt that speaks about the token was accepted.
    Valid,
    /// The token endpoint refused the credentials, or the API refused the token twice in a row
    /// (the client renews once on a 401, so one 401 alone is routine).
    Invalid,
}

const LAST_ERRORS_KEPT: usize = 20;

const ROLE_UNKNOWN: u8 = 0;
const ROLE_ACTIVE: u8 = 1;
const ROLE_STANDBY: u8 = 2;

#[derive(Debug)]
struct EventState {
    last_errors: VecDeque<AttemptError>,
    token: TokenHealth,
    consecutive_401: u32,
}

/// The metrics of one engine instance. Cheap to share: wrap it in an `Arc`.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    rate_limited: IntCounter,
    ratio_429: Gauge,
    pauses: IntCounter,
    paused_seconds: Gauge,
    quota_breaches: IntCounter,
    quota_breach: IntGauge,
    tokens: Gauge,
    in_flight: IntGauge,
    concurrency_cap: IntGauge,
    rate_per_minute: Gauge,
    budget_per_minute: Gauge,
    reductions: IntCounter,
    partitions: IntGaugeVec,
    conversations_written: IntCounter,
    rows_written: IntCounter,
    writer_batches: IntCounter,
    writer_queue_depth: IntGauge,
    writer_batch_seconds: Gauge,
    conversations_changed: IntCounter,
    conversations_deleted: IntCounter,
    user_records_deleted: IntCounter,
    conversations_unchanged: IntCounter,
    user_records_unchanged: IntCounter,
    watermark_lag: Gauge,
    run_start: Gauge,
    instance_role: IntGaugeVec,
    /// This instance's role (`ROLE_*`), for `/status`.
    role: std::sync::atomic::AtomicU8,
    /// Serialises scrapes (cumulative sources are turned into counter increments).
    scrape: Mutex<()>,
    events: Mutex<EventState>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Building the registry failed (a programming error: duplicate or invalid metric name).
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn doc(name: &str) -> &'static str {
    METRIC_DOCS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, help)| *help)
        .unwrap_or("see the README")
}

/// Raise a counter to `target` (a cumulative count read from elsewhere). Never lowers it: a
/// source that restarted from zero just stops adding until it passes the old value.
fn advance_to(counter: &IntCounter, target: u64) {
    let current = counter.get();
    if target > current {
        counter.inc_by(target - current);
    }
}

impl Metrics {
    /// A fresh set of metrics in its own registry.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let opts = |name: &str| Opts::new(name, doc(name));
        let requests = reg!(IntCounterVec::new(
            opts("sluice_requests_total"),
            &["endpoint", "status"]
        )?);
        let request_duration = reg!(HistogramVec::new(
            HistogramOpts::new(
                "sluice_request_duration_seconds",
                doc("sluice_request_duration_seconds")
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["endpoint"]
        )?);
        let m = Metrics {
            requests,
            request_duration,
            rate_limited: reg!(IntCounter::with_opts(opts("sluice_rate_limited_total"))?),
            ratio_429: reg!(Gauge::with_opts(opts("sluice_rate_limited_ratio"))?),
            pauses: reg!(IntCounter::with_opts(opts(
                "sluice_retry_after_pauses_total"
            ))?),
            paused_seconds: reg!(Gauge::with_opts(opts(
                "sluice_rate_limiter_paused_seconds"
            ))?),
            quota_breaches: reg!(IntCounter::with_opts(opts("sluice_quota_breaches_total"))?),
            quota_breach: reg!(IntGauge::with_opts(opts("sluice_quota_breach"))?),
            tokens: reg!(Gauge::with_opts(opts("sluice_rate_limiter_tokens"))?),
            in_flight: reg!(IntGauge::with_opts(opts("sluice_requests_in_flight"))?),
            concurrency_cap: reg!(IntGauge::with_opts(opts(
                "sluice_rate_limiter_concurrency_cap"
            ))?),
            rate_per_minute: reg!(Gauge::with_opts(opts(
                "sluice_rate_limiter_rate_per_minute"
            ))?),
            budget_per_minute: reg!(Gauge::with_opts(opts(
                "sluice_rate_limiter_budget_per_minute"
            ))?),
            reductions: reg!(IntCounter::with_opts(opts(
                "sluice_rate_limiter_reductions_total"
            ))?),
            partitions: reg!(IntGaugeVec::new(
                opts("sluice_partitions"),
                &["dataset", "status"]
            )?),
            conversations_written: reg!(IntCounter::with_opts(opts(
                "sluice_conversations_written_total"
            ))?),
            rows_written: reg!(IntCounter::with_opts(opts("sluice_rows_written_total"))?),
            writer_batches: reg!(IntCounter::with_opts(opts("sluice_writer_batches_total"))?),
            writer_queue_depth: reg!(IntGauge::with_opts(opts("sluice_writer_queue_depth"))?),
            writer_batch_seconds: reg!(Gauge::with_opts(opts("sluice_writer_batch_seconds"))?),
            conversations_changed: reg!(IntCounter::with_opts(opts(
                "sluice_conversations_changed_total"
            ))?),
            conversations_deleted: reg!(IntCounter::with_opts(opts(
                "sluice_conversations_deleted_total"
            ))?),
            user_records_deleted: reg!(IntCounter::with_opts(opts(
                "sluice_user_records_deleted_total"
            ))?),
            conversations_unchanged: reg!(IntCounter::with_opts(opts(
                "sluice_conversations_unchanged_total"
            ))?),
            user_records_unchanged: reg!(IntCounter::with_opts(opts(
                "sluice_user_records_unchanged_total"
            ))?),
            watermark_lag: reg!(Gauge::with_opts(opts("sluice_watermark_lag_seconds"))?),
            run_start: reg!(Gauge::with_opts(opts("sluice_run_start_time_seconds"))?),
            instance_role: reg!(IntGaugeVec::new(opts("sluice_instance_role"), &["role"])?),
            role: std::sync::atomic::AtomicU8::new(ROLE_UNKNOWN),
            scrape: Mutex::new(()),
            events: Mutex::new(EventState {
                last_errors: VecDeque::new(),
                token: TokenHealth::Unknown,
                consecutive_401: 0,
            }),
            registry,
        };
        // Both roles exported from the start (0 until the leader lease answers).
        for role in ["active", "standby"] {
            m.instance_role.with_label_values(&[role]).set(0);
        }
        let build = GaugeVec::new(opts("sluice_build_info"), &["version"])?;
        m.registry.register(Box::new(build.clone()))?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        Ok(m)
    }

    /// Record one HTTP attempt. `status` is `None` when no response came back.
    pub fn observe_request(&self, endpoint: &str, status: Option<u16>, elapsed: Duration) {
        let code;
        let status_label = match status {
            Some(s) => {
                code = s.to_string();
                code.as_str()
            }
            None => "error",
        };
        self.requests
            .with_label_values(&[endpoint, status_label])
            .inc();
        self.request_duration
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
        if status == Some(429) {
            self.rate_limited.inc();
        }
        let mut ev = lock(&self.events);
        match status {
            Some(s) if (200..300).contains(&s) => {
                ev.token = TokenHealth::Valid;
                ev.consecutive_401 = 0;
            }
            Some(s) => {
                if is_token_endpoint(endpoint) && (s == 400 || s == 401 || s == 403) {
                    ev.token = TokenHealth::Invalid;
                } else if s == 401 {
                    ev.consecutive_401 += 1;
                    if ev.consecutive_401 >= 2 {
                        ev.token = TokenHealth::Invalid;
                    }
                }
                push_error(&mut ev, endpoint, status_label);
            }
            None => push_error(&mut ev, endpoint, status_label),
        }
    }

    /// Note this instance's role (`sluice_instance_role`): `active` or `standby`.
    pub fn set_instance_role(&self, active: bool) {
        let (on, off) = if active {
            ("active", "standby")
        } else {
            ("standby", "active")
        };
        self.instance_role.with_label_values(&[on]).set(1);
        self.instance_role.with_label_values(&[off]).set(0);
        self.role.store(
            if active { ROLE_ACTIVE } else { ROLE_STANDBY },
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// This instance's role as last set: `active`, `standby`, or `None` before the first.
    pub fn instance_role(&self) -> Option<&'static str> {
        match self.role.load(std::sync::atomic::Ordering::Relaxed) {
            ROLE_ACTIVE => Some("active"),
            ROLE_STANDBY => Some("standby"),
            _ => None,
        }
    }

    /// Note the start of a run (`sluice_run_start_time_seconds`).
    pub fn set_run_started(&self, at: DateTime<Utc>) {
        self.run_start.set(at.timestamp_millis() as f64 / 1000.0);
    }

    /// Apply what was read at scrape time.
    pub fn apply(&self, snap: &ScrapeSnapshot) {
        let _serial = lock(&self.scrape);
        if let Some(l) = &snap.limiter {
            self.tokens.set(l.tokens);
            self.in_flight.set(l.in_flight as i64);
            self.concurrency_cap.set(l.concurrency_cap as i64);
            self.rate_per_minute.set(l.current_rate_per_minute);
            self.budget_per_minute.set(l.budget_per_minute);
            self.ratio_429.set(l.ratio_429);
            self.paused_seconds.set(l.paused_for.as_secs_f64());
            self.quota_breach.set(i64::from(l.quota_breach));
            advance_to(&self.reductions, l.reductions);
            advance_to(&self.pauses, l.pauses);
            advance_to(&self.quota_breaches, l.quota_breaches);
        }
        if let Some(w) = &snap.writer {
            self.writer_queue_depth.set(w.queue_depth as i64);
            self.writer_batch_seconds.set(w.last_batch_seconds);
            advance_to(&self.writer_batches, w.batches);
            advance_to(&self.rows_written, w.rows_written);
            advance_to(&self.conversations_written, w.conversations_written);
            advance_to(&self.conversations_changed, w.conversations_changed);
            advance_to(&self.conversations_deleted, w.conversations_deleted);
            advance_to(&self.user_records_deleted, w.user_records_deleted);
            advance_to(&self.conversations_unchanged, w.conversations_unchanged);
            advance_to(&self.user_records_unchanged, w.user_records_unchanged);
        }
        if let Some(parts) = &snap.partitions {
            // Statuses that emptied since the last scrape must drop to 0, not keep their count.
            self.partitions.reset();
            for p in parts {
                self.partitions
                    .with_label_values(&[p.dataset.as_str(), p.status.as_str()])
                    .set(p.count);
            }
        }
        if let Some(lag) = snap.watermark_lag_seconds {
            self.watermark_lag.set(lag.max(0.0));
        }
    }

    /// Apply `snap` and render the registry in the Prometheus text format (version 0.0.4).
    pub fn render(&self, snap: &ScrapeSnapshot) -> Result<String, MetricsError> {
        self.apply(snap);
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Content type of [`Metrics::render`]'s output.
    pub fn content_type() -> &'static str {
        "text/plain; version=0.0.4; charset=utf-8"
    }

    /// Total attempts recorded so far, all endpoints and statuses.
    pub fn requests_total(&self) -> u64 {
        self.requests
            .collect()
            .iter()
            .flat_map(|mf| mf.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Attempts answered 429 so far.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.get()
    }

    /// The latest failed attempts, newest first.
    pub fn last_errors(&self) -> Vec<AttemptError> {
        lock(&self.events)
            .last_errors
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// What the latest attempts say about the token.
    pub fn token_health(&self) -> TokenHealth {
        lock(&self.events).token
    }

    /// The registry, for callers that add their own collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl crate::genesys::RequestObserver for Metrics {
    fn on_attempt(&self, endpoint: &str, status: Option<u16>, elapsed: Duration) {
        self.observe_request(endpoint, status, elapsed);
    }
}

impl From<&crate::actors::rate_limiter::LimiterState> for LimiterGauges {
    fn from(s: &crate::actors::rate_limiter::LimiterState) -> Self {
        LimiterGauges {
            tokens: s.tokens,
            in_flight: u64::from(s.in_flight),
            concurrency_cap: u64::from(s.concurrency_cap),
            current_rate_per_minute: s.current_rate_per_minute,
            budget_per_minute: f64::from(s.configured_rate_per_minute),
            ratio_429: s.ratio_429,
            paused_for: s.pause_remaining.unwrap_or_default(),
            quota_breach: s.quota_breach,
            reductions: s.reductions,
            pauses: s.pauses,
            quota_breaches: s.quota_breaches,
        }
    }
}

fn is_token_endpoint(endpoint: &str) -> bool {
    endpoint.contains("oauth") || endpoint.contains("token")
}

fn push_error(ev: &mut EventState, endpoint: &str, status: &str) {
    if ev.last_errors.len() == LAST_ERRORS_KEPT {
        ev.last_errors.pop_front();
    }
    ev.last_errors.push_back(AttemptError {
        at: Utc::now(),
        endpoint: endpoint.to_string(),
        status: status.to_string(),
    });
}

mod secs_f64 {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> prometheus_parse::Scrape {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    #[test]
    fn every_documented_metric_is_registered_and_prefixed() {
        let m = Metrics::new().unwrap();
        m.observe_request("conversations_query", Some(200), Duration::from_millis(5));
        m.apply(&ScrapeSnapshot {
            partitions: Some(vec![PartitionCount {
                dataset: "conversations".into(),
                status: "done".into(),
                count: 1,
            }]),
            ..Default::default()
        });
        let names: Vec<String> = m
            .registry()
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for (name, _, _) in METRIC_DOCS {
            assert!(name.starts_with("sluice_"));
            assert!(names.iter().any(|n| n == name), "{name} not registered");
        }
        assert_eq!(
            names.len(),
            METRIC_DOCS.len(),
            "undocumented metric in {names:?}"
        );
    }

    #[test]
    fn the_instance_role_gauge_shows_one_role_at_a_time() {
        let m = Metrics::new().unwrap();
        assert_eq!(m.instance_role(), None);
        let shown = |m: &Metrics| {
            let text = m.render(&ScrapeSnapshot::default()).unwrap();
            (
                text.contains("sluice_instance_role{role=\"active\"} 1"),
                text.contains("sluice_instance_role{role=\"standby\"} 1"),
            )
        };
        assert_eq!(shown(&m), (false, false));
        m.set_instance_role(false);
        assert_eq!(shown(&m), (false, true));
        assert_eq!(m.instance_role(), Some("standby"));
        m.set_instance_role(true);
        assert_eq!(shown(&m), (true, false));
        assert_eq!(m.instance_role(), Some("active"));
    }

    #[test]
    fn readme_documents_every_metric() {
        let readme = include_str!("../README.md");
        for (name, _, _) in METRIC_DOCS {
            assert!(
                readme.contains(&format!("`{name}")),
                "README section Metrics lacks {name}"
            );
        }
    }

    #[test]
    fn counts_each_attempt_by_endpoint_and_status() {
        let m = Metrics::new().unwrap();
        let ms = Duration::from_millis(20);
        m.observe_request("conversations_query", Some(200), ms);
        m.observe_request("conversations_query", Some(200), ms);
        m.observe_request("conversations_query", Some(429), ms);
        m.observe_request("oauth_token", Some(200), ms);
        m.observe_request("conversations_query", None, ms);
        let s = parse(&m.render(&ScrapeSnapshot::default()).unwrap());
        let q = ("endpoint", "conversations_query");
        assert_eq!(
            value(&s, "sluice_requests_total", &[q, ("status", "200")]),
            2.0
        );
        assert_eq!(
            value(&s, "sluice_requests_total", &[q, ("status", "429")]),
            1.0
        );
        assert_eq!(
            value(&s, "sluice_requests_total", &[q, ("status", "error")]),
            1.0
        );
        assert_eq!(value(&s, "sluice_rate_limited_total", &[]), 1.0);
        assert_eq!(m.requests_total(), 5);
        assert_eq!(m.rate_limited_total(), 1);
        let errs = m.last_errors();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].status, "error");
        assert_eq!(errs[1].status, "429");
    }

    #[test]
    fn scrape_state_becomes_gauges_and_monotonic_counters() {
        let m = Metrics::new().unwrap();
        let mut snap = ScrapeSnapshot {
            limiter: Some(LimiterGauges {
                tokens: 3.5,
                in_flight: 6,
                concurrency_cap: 8,
                current_rate_per_minute: 240.0,
                budget_per_minute: 300.0,
                ratio_429: 0.02,
                paused_for: Duration::from_secs(12),
                quota_breach: false,
                reductions: 1,
                pauses: 4,
                quota_breaches: 0,
            }),
            writer: Some(WriterGauges {
                queue_depth: 2,
                batches: 10,
                rows_written: 900,
                conversations_written: 30,
                last_batch_seconds: 0.25,
                conversations_changed: 5,
                conversations_deleted: 2,
                user_records_deleted: 7,
                conversations_unchanged: 11,
                user_records_unchanged: 13,
            }),
            partitions: Some(vec![
                PartitionCount {
                    dataset: "conversations".into(),
                    status: "pending".into(),
                    count: 3,
                },
                PartitionCount {
                    dataset: "conversations".into(),
                    status: "done".into(),
                    count: 4,
                },
            ]),
            watermark_lag_seconds: Some(3600.0),
        };
        let s = parse(&m.render(&snap).unwrap());
        assert_eq!(value(&s, "sluice_rate_limiter_tokens", &[]), 3.5);
        assert_eq!(value(&s, "sluice_requests_in_flight", &[]), 6.0);
        assert_eq!(value(&s, "sluice_rate_limiter_rate_per_minute", &[]), 240.0);
        assert_eq!(value(&s, "sluice_rate_limited_ratio", &[]), 0.02);
        assert_eq!(value(&s, "sluice_rate_limiter_paused_seconds", &[]), 12.0);
        assert_eq!(value(&s, "sluice_retry_after_pauses_total", &[]), 4.0);
        assert_eq!(value(&s, "sluice_rows_written_total", &[]), 900.0);
        assert_eq!(value(&s, "sluice_conversations_changed_total", &[]), 5.0);
        assert_eq!(value(&s, "sluice_conversations_deleted_total", &[]), 2.0);
        assert_eq!(value(&s, "sluice_user_records_deleted_total", &[]), 7.0);
        assert_eq!(value(&s, "sluice_conversations_unchanged_total", &[]), 11.0);
        assert_eq!(value(&s, "sluice_user_records_unchanged_total", &[]), 13.0);
        assert_eq!(value(&s, "sluice_watermark_lag_seconds", &[]), 3600.0);
        let pending = [("dataset", "conversations"), ("status", "pending")];
        assert_eq!(value(&s, "sluice_partitions", &pending), 3.0);

        // Next scrape: the writer advanced, pending emptied, the limiter entered a breach.
        if let Some(w) = snap.writer.as_mut() {
            w.rows_written = 1500;
        }
        if let Some(l) = snap.limiter.as_mut() {
            l.quota_breach = true;
            l.quota_breaches = 1;
        }
        snap.partitions = Some(vec![PartitionCount {
            dataset: "conversations".into(),
            status: "done".into(),
            count: 7,
        }]);
        let s = parse(&m.render(&snap).unwrap());
        assert_eq!(value(&s, "sluice_rows_written_total", &[]), 1500.0);
        assert_eq!(value(&s, "sluice_quota_breach", &[]), 1.0);
        assert_eq!(value(&s, "sluice_quota_breaches_total", &[]), 1.0);
        assert!(!s
            .samples
            .iter()
            .any(|x| x.metric == "sluice_partitions" && x.labels.get("status") == Some("pending")));
        // A source that restarts from zero never makes a counter go backwards.
        if let Some(w) = snap.writer.as_mut() {
            w.rows_written = 10;
        }
        let s = parse(&m.render(&snap).unwrap());
        assert_eq!(value(&s, "sluice_rows_written_total", &[]), 1500.0);
    }

    #[test]
    fn token_health_follows_attempts() {
        let m = Metrics::new().unwrap();
        let ms = Duration::from_millis(1);
        assert_eq!(m.token_health(), TokenHealth::Unknown);
        m.observe_request("oauth_token", Some(200), ms);
        assert_eq!(m.token_health(), TokenHealth::Valid);
        // One 401 is routine (the client renews and replays).
        m.observe_request("conversations_query", Some(401), ms);
        assert_eq!(m.token_health(), TokenHealth::Valid);
        m.observe_request("conversations_query", Some(401), ms);
        assert_eq!(m.token_health(), TokenHealth::Invalid);
        m.observe_request("conversations_query", Some(200), ms);
        assert_eq!(m.token_health(), TokenHealth::Valid);
        m.observe_request("oauth_token", Some(401), ms);
        assert_eq!(m.token_health(), TokenHealth::Invalid);
    }

    #[test]
    fn run_start_is_unix_seconds() {
        let m = Metrics::new().unwrap();
        let at = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        m.set_run_started(at);
        let s = parse(&m.render(&ScrapeSnapshot::default()).unwrap());
        assert_eq!(
            value(&s, "sluice_run_start_time_seconds", &[]),
            at.timestamp() as f64
        );
    }
}
