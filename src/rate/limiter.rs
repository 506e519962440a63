//! The rate limiter's decisions, free of actors and clocks: every method takes the instant it
//! runs at, so tests drive it on invented time and the actor only wraps it.
//!
//! A request may leave when (1) fewer than the concurrency cap are in flight, (2) the limiter
//! is not paused by a Retry-After, and (3) the GCRA bucket has a cell. Responses feed back:
//! a 429 pauses everything until its Retry-After (+ jitter) and counts toward the adaptive
//! 429 ratio; rate-limit hints (legacy `inin-ratelimit-*` headers, a 429 body's `limit`
//! object) may only ever slow the limiter down.
//!
//! Server values are hostile: every wait a server asks for is clamped to [`MAX_SERVER_WAIT`]
//! (a longer Retry-After is a quota breach waited out for a day at most) and instants are
//! computed with checked arithmetic, so no header or body value can panic the limiter.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::time::Instant;

use super::adaptive::{Adaptive, Adjustment};
use super::gcra::Gcra;
use super::settings::{Pacing, RateLimiterSettings, SettingsError};

/// The longest wait a server hint (Retry-After, a legacy reset) can impose.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(86_400);

/// `now + wait`, saturating at the latest instant the clock can represent (never panics).
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(MAX_SERVER_WAIT)).unwrap_or(now)
}

/// Which work a request serves: catch-up (fresh data) goes ahead of backfill (history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Priority {
    CatchUp,
    Backfill,
}

/// Answer of [`Limiter::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request may leave now; report its end with [`Limiter::release`].
    Granted(Grant),
    /// Nothing may leave before this instant (rate or Retry-After pause).
    WaitUntil(Instant),
    /// The concurrency cap is reached: wait for a release.
    AtCapacity,
}

/// A granted request: the adaptive generation it was granted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub generation: u64,
}

/// How an attempt ended, as far as rate control cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Any answer other than 429 / 5xx (success or a client error).
    Answered,
    /// HTTP 429.
    RateLimited,
    /// 5xx or a body that did not parse.
    ServerError,
    /// No HTTP answer (connect/timeout/IO).
    Transport,
    /// The requester went away before an answer (dropped or panicked).
    Abandoned,
}

/// Legacy `inin-ratelimit-*` response headers, when a server sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// `inin-ratelimit-allowed`: the limit for the window.
    pub allowed: Option<u32>,
    /// `inin-ratelimit-count`: requests counted in the window so far.
    pub count: Option<u32>,
    /// `inin-ratelimit-reset`: time until the window resets.
    pub reset: Option<Duration>,
}

/// What the client reports when an attempt ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    pub outcome: Option<Outcome>,
    /// Retry-After of a 429.
    pub retry_after: Option<Duration>,
    /// A 429 body's `limit` object: (key, value).
    pub limit: Option<(String, i64)>,
    pub headers: RateHeaders,
}

impl Feedback {
    pub fn of(outcome: Outcome) -> Self {
        Feedback {
            outcome: Some(outcome),
            ..Default::default()
        }
    }
}

/// A snapshot of the limiter for metrics and status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimiterState {
    /// Requests that could leave back to back right now (GCRA bucket fill).
    pub tokens: f64,
    pub burst: u32,
    pub in_flight: u32,
    pub concurrency_cap: u32,
    pub configured_rate_per_minute: u32,
    /// The rate the limiter paces at now (after adaptive and header reductions).
    pub current_rate_per_minute: f64,
    /// 429s ÷ responses over the adaptive window.
    pub ratio_429: f64,
    /// End of the current Retry-After pause (wall clock), if paused.
    pub paused_until: Option<DateTime<Utc>>,
    pub pause_remaining: Option<Duration>,
    /// A Retry-After over the quota-breach threshold is being waited out.
    pub quota_breach: bool,
    pub quota_breach_until: Option<DateTime<Utc>>,
    pub quota_breaches: u64,
    /// Adaptive reductions so far.
    pub reductions: u64,
    /// End of the current adaptive hold (wall clock).
    pub reduced_until: Option<DateTime<Utc>>,
    /// Attempts answered or failed (abandoned ones excluded).
    pub requests: u64,
    /// Attempts answered 429.
    pub rate_limited: u64,
    pub granted: u64,
    pub waiting_catch_up: usize,
    pub waiting_backfill: usize,
    /// Retry-After pauses started so far (a 429 while running; extensions not counted).
    pub pauses: u64,
}

/// The limiter's whole state.
#[derive(Debug)]
pub struct Limiter {
    settings: RateLimiterSettings,
    pacing: Pacing,
    gcra: Gcra,
    adaptive: Adaptive,
    base_cap: u32,
    in_flight: u32,
    paused_until: Option<Instant>,
    quota_breach_until: Option<Instant>,
    quota_breaches: u64,
    consecutive_429: u32,
    header_ceiling: f64,
    requests: u64,
    rate_limited: u64,
    granted: u64,
    pauses: u64,
    rng: ChaCha8Rng,
}

impl Limiter {
    /// A limiter with validated settings; `seed` drives the Retry-After jitter.
    pub fn new(settings: RateLimiterSettings, seed: u64) -> Result<Self, SettingsError> {
        let pacing = settings.validate()?;
        Ok(Limiter {
            gcra: Gcra::new(pacing.interval(1.0), pacing.burst),
            adaptive: Adaptive::new(settings.adaptive.clone()),
            base_cap: settings.concurrency_cap(),
            pacing,
            settings,
            in_flight: 0,
            paused_until: None,
            quota_breach_until: None,
            quota_breaches: 0,
            consecutive_429: 0,
            header_ceiling: 1.0,
            requests: 0,
            rate_limited: 0,
            granted: 0,
            pauses: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    pub fn settings(&self) -> &RateLimiterSettings {
        &self.settings
    }

    pub fn pacing(&self) -> Pacing {
        self.pacing
    }

    /// The concurrency cap now (lowered by adaptive breaches, never below 1).
    pub fn cap(&self) -> u32 {
        self.base_cap
            .saturating_sub(self.adaptive.cap_reduction())
            .max(1)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// The current rate multiplier (adaptive × header ceiling).
    pub fn multiplier(&self) -> f64 {
        self.adaptive
            .multiplier()
            .min(self.header_ceiling)
            .max(self.settings.adaptive.floor)
    }

    pub fn current_rate_per_minute(&self) -> f64 {
        self.pacing.per_minute(self.multiplier())
    }

    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|p| *p > now)
    }

    /// The next instant at which time alone changes something (end of a pause, a recovery
    /// step); the actor schedules a wake-up for it.
    pub fn next_timer(&self, now: Instant) -> Option<Instant> {
        let pause = self.paused_until(now);
        let recovery = self.adaptive.next_recovery();
        match (pause, recovery) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn apply_rate(&mut self) {
        self.gcra
            .set_interval(self.pacing.interval(self.multiplier()));
    }

    /// Applies due adaptive recovery steps.
    pub fn tick(&mut self, now: Instant) {
        if self.adaptive.tick(now) {
            log::info!(
                "rate limiter recovering: pacing at {:.0}/min, concurrency cap {}",
                self.current_rate_per_minute(),
                self.cap()
            );
            self.apply_rate();
        }
        if self.quota_breach_until.is_some_and(|q| q <= now) {
            log::warn!("rate limiter: quota breach waited out, resuming");
            self.quota_breach_until = None;
        }
    }

    /// May one request leave at `now`? A grant counts it in flight.
    pub fn try_acquire(&mut self, now: Instant) -> Decision {
        self.tick(now);
        if self.in_flight >= self.cap() {
            return Decision::AtCapacity;
        }
        if let Some(p) = self.paused_until(now) {
            return Decision::WaitUntil(p);
        }
        match self.gcra.try_take(now) {
            Ok(()) => {
                self.in_flight += 1;
                self.granted += 1;
                Decision::Granted(Grant {
                    generation: self.adaptive.generation(),
                })
            }
            Err(at) => Decision::WaitUntil(at),
        }
    }

    /// A granted request ended (answered, failed or abandoned).
    pub fn release(&mut self, now: Instant, grant: Grant, feedback: &Feedback) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let outcome = feedback.outcome.unwrap_or(Outcome::Abandoned);
        if outcome != Outcome::Abandoned {
            self.requests += 1;
            let limited = outcome == Outcome::RateLimited;
            let mut new_episode = false;
            if limited {
                new_episode = self.paused_until(now).is_none();
                self.on_429(now, feedback.retry_after);
            } else if outcome == Outcome::Answered {
                self.consecutive_429 = 0;
            }
            if let Adjustment::Reduced { multiplier, ratio } =
                self.adaptive
                    .on_response(now, grant.generation, limited, new_episode)
            {
                log::warn!(
                    "rate limiter: 429 ratio {:.1} % (threshold {:.1} %) or repeated 429 episodes: pacing lowered to {:.0}/min ({:.0} % of configured), concurrency cap {}",
                    ratio * 100.0,
                    self.settings.adaptive.threshold * 100.0,
                    self.pacing.per_minute(multiplier.min(self.header_ceiling)),
                    multiplier * 100.0,
                    self.cap()
                );
                self.apply_rate();
            }
        }
        if let Some((key, value)) = &feedback.limit {
            self.on_limit_object(key, *value);
        }
        self.on_headers(now, feedback.headers);
    }

    fn extend_pause(&mut self, until: Instant) {
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }

    fn on_429(&mut self, now: Instant, retry_after: Option<Duration>) {
        self.rate_limited += 1;
        self.consecutive_429 = self.consecutive_429.saturating_add(1);
        let wait = match retry_after.map(|d| d.min(MAX_SERVER_WAIT)) {
            Some(d) => {
                if d > Duration::from_secs(self.settings.quota_breach_secs) {
                    let until = later(now, d);
                    if self.quota_breach_until.is_none_or(|q| q < until) {
                        self.quota_breaches += 1;
                        log::error!(
                            "QUOTA BREACH: the API asked us to wait {} s (over {} s): a daily or org quota is exhausted; every request is paused until then",
                            d.as_secs(),
                            self.settings.quota_breach_secs
                        );
                        self.quota_breach_until = Some(until);
                    }
                }
                d
            }
            // No Retry-After: exponential backoff 1, 2, 4 … 60 s on consecutive 429s.
            None => Duration::from_secs(1u64 << self.consecutive_429.min(7).saturating_sub(1))
                .min(Duration::from_secs(60)),
        };
        let jitter = if self.settings.retry_after_jitter_ms > 0 {
            Duration::from_millis(self.rng.gen_range(0..=self.settings.retry_after_jitter_ms))
        } else {
            Duration::ZERO
        };
        let until = later(now, wait.saturating_add(jitter));
        if self.paused_until(now).is_none() {
            self.pauses += 1;
        }
        if self.paused_until(now).is_none_or(|p| p < until) {
            log::info!(
                "rate limiter: 429, pausing every request for {:.1} s",
                (until - now).as_secs_f64()
            );
        }
        self.extend_pause(until);
    }

    /// A 429 body's `limit` object naming a rate limit lower than ours lowers the ceiling
    /// (its unit from the key, see [`limit_per_window`]).
    fn on_limit_object(&mut self, key: &str, value: i64) {
        let Some(per_window) = limit_per_window(key, value, self.settings.window_secs) else {
            return;
        };
        let fraction = per_window / f64::from(self.pacing.limit_per_window);
        if fraction < self.header_ceiling {
            log::warn!(
                "rate limiter: the API names limit {key} = {value} ({per_window:.1} per {} s window), below the configured {}; pacing down",
                self.settings.window_secs,
                self.pacing.limit_per_window
            );
            self.header_ceiling = fraction.min(1.0);
            self.apply_rate();
        }
    }

    /// Legacy headers: a smaller `allowed` lowers the ceiling (a larger one never raises it: a
    /// 429 body's lower limit stands); an exhausted window pauses until its reset (clamped).
    fn on_headers(&mut self, now: Instant, h: RateHeaders) {
        if let Some(allowed) = h.allowed.filter(|a| *a > 0) {
            let fraction = (f64::from(allowed) / f64::from(self.pacing.limit_per_window)).min(1.0);
            if fraction < self.header_ceiling - 1e-9 {
                log::warn!(
                    "rate limiter: inin-ratelimit-allowed = {allowed}, below the configured {} per window; pacing down",
                    self.pacing.limit_per_window
                );
                self.header_ceiling = fraction;
                self.apply_rate();
            }
            if let (Some(count), Some(reset)) = (h.count, h.reset) {
                if count >= allowed {
                    self.extend_pause(later(now, reset));
                }
            }
        }
    }

    /// The ceiling server hints have set on the rate (1.0 = none): it only ever goes down.
    pub fn header_ceiling(&self) -> f64 {
        self.header_ceiling
    }

    /// A snapshot; `wall` is the wall-clock time matching `now`.
    pub fn state(&mut self, now: Instant, wall: DateTime<Utc>) -> LimiterState {
        self.tick(now);
        let to_wall = |t: Instant| {
            chrono::Duration::from_std(t.saturating_duration_since(now))
                .ok()
                .and_then(|d| wall.checked_add_signed(d))
        };
        let paused = self.paused_until(now);
        LimiterState {
            tokens: self.gcra.available(now),
            burst: self.gcra.burst(),
            in_flight: self.in_flight,
            concurrency_cap: self.cap(),
            configured_rate_per_minute: self.settings.rate_per_minute,
            current_rate_per_minute: self.current_rate_per_minute(),
            ratio_429: self.adaptive.ratio(now),
            paused_until: paused.and_then(to_wall),
            pause_remaining: paused.map(|p| p - now),
            quota_breach: self.quota_breach_until.is_some_and(|q| q > now),
            quota_breach_until: self.quota_breach_until.and_then(to_wall),
            quota_breaches: self.quota_breaches,
            reductions: self.adaptive.reductions(),
            reduced_until: self.adaptive.held_until().and_then(to_wall),
            requests: self.requests,
            rate_limited: self.rate_limited,
            granted: self.granted,
            waiting_catch_up: 0,
            waiting_backfill: 0,
            pauses: self.pauses,
        }
    }
}

/// Waiters in two queues; catch-up ones are served first, each queue in arrival order.
#[derive(Debug)]
pub struct WaitQueue<T> {
    catch_up: VecDeque<T>,
    backfill: VecDeque<T>,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue {
            catch_up: VecDeque::new(),
            backfill: VecDeque::new(),
        }
    }
}

impl<T> WaitQueue<T> {
    pub fn push(&mut self, priority: Priority, waiter: T) {
        match priority {
            Priority::CatchUp => self.catch_up.push_back(waiter),
            Priority::Backfill => self.backfill.push_back(waiter),
        }
    }

    /// The next waiter: the oldest catch-up one, else the oldest backfill one.
    pub fn pop(&mut self) -> Option<(Priority, T)> {
        if let Some(w) = self.catch_up.pop_front() {
            return Some((Priority::CatchUp, w));
        }
        self.backfill.pop_front().map(|w| (Priority::Backfill, w))
    }

    /// Puts a waiter back at the head of its queue.
    pub fn push_front(&mut self, priority: Priority, waiter: T) {
        match priority {
            Priority::CatchUp => self.catch_up.push_front(waiter),
            Priority::Backfill => self.backfill.push_front(waiter),
        }
    }

    /// Drops waiters that no longer want a permit.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.catch_up.retain(&mut keep);
        self.backfill.retain(&mut keep);
    }

    pub fn len(&self, priority: Priority) -> usize {
        match priority {
            Priority::CatchUp => self.catch_up.len(),
            Priority::Backfill => self.backfill.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.catch_up.is_empty() && self.backfill.is_empty()
    }
}

/// A 429 body's `limit` object (`key`, `value`) as requests per window of `window_secs`, when
/// it names a request rate: the unit comes from the key (`….rate.per.minute` = 300 on the real
/// API); a rate key without a known unit is taken as per window.
pub fn limit_per_window(key: &str, value: i64, window_secs: u64) -> Option<f64> {
    if value <= 0 || !key.contains("rate.per") {
        return None;
    }
    let v = value as f64;
    let w = window_secs as f64;
    Some(if key.ends_with("per.second") {
        v * w
    } else if key.ends_with("per.minute") {
        v * w / 60.0
    } else if key.ends_with("per.hour") {
        v * w / 3600.0
    } else {
        v
    })
}
