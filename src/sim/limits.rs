//! The platform's limits, decided by plain functions on injected `Instant`s so tests need no
//! sleeps: a fixed request window per OAuth client, an org-wide cap on analytics requests in
//! flight (every client, the background integration included), and the answer every 429 gets —
//! `Retry-After` in whole seconds until a request would succeed, and the body of facts §5.2.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::genesys::model::{ErrorBody, LimitInfo};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// The client's requests in the current window reached the limit.
    Rate,
    /// The org's analytics requests in flight reached the cap.
    Concurrency,
    /// The org's running jobs reached the cap.
    Jobs,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Rate => "rate",
            Cause::Concurrency => "concurrency",
            Cause::Jobs => "jobs",
        }
    }
}

/// A refusal: the cause and the whole seconds after which a request would succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub cause: Cause,
    pub retry_after_secs: u64,
}

/// Whole seconds from `now` until `at`, rounded up (at least 1 while `at` is in the future).
pub fn ceil_secs(now: Instant, at: Instant) -> u64 {
    let d = at.saturating_duration_since(now);
    let whole = d.as_secs();
    if d.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    }
}

/// Requests per window, one entry per window index (accepted and refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStat {
    pub requests: u64,
    pub rate_limited: u64,
    pub by_client: BTreeMap<String, u64>,
}

/// The limit state. Pure: every decision takes `now`.
#[derive(Debug)]
pub struct LimitState {
    pub epoch: Instant,
    pub window: Duration,
    pub rate_per_window: u32,
    pub concurrency: u32,
    pub enabled: bool,
    in_flight: u32,
    peak: u32,
    breaches: u64,
    /// Admitted requests in flight per client, and each client's peak (several processes
    /// sharing one client must stay under its cap together).
    client_in_flight: BTreeMap<String, u32>,
    client_peak: BTreeMap<String, u32>,
    /// Slots in use over time: the first admitted request, the last change of `in_flight`, and
    /// the integral of `in_flight` (slot-seconds) between them.
    first_admitted: Option<Instant>,
    last_change: Option<Instant>,
    slot_seconds: f64,
    /// client -> (window index, accepted requests in it)
    counts: HashMap<String, (u64, u32)>,
    history: BTreeMap<u64, WindowStat>,
}

const HISTORY_WINDOWS: usize = 2000;

impl LimitState {
    pub fn new(
        epoch: Instant,
        window: Duration,
        rate_per_window: u32,
        concurrency: u32,
        enabled: bool,
    ) -> Self {
        LimitState {
            epoch,
            window: window.max(Duration::from_millis(1)),
            rate_per_window,
            concurrency,
            enabled,
            in_flight: 0,
            peak: 0,
            breaches: 0,
            client_in_flight: BTreeMap::new(),
            client_peak: BTreeMap::new(),
            first_admitted: None,
            last_change: None,
            slot_seconds: 0.0,
            counts: HashMap::new(),
            history: BTreeMap::new(),
        }
    }

    pub fn window_index(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch);
        (since.as_nanos() / self.window.as_nanos()) as u64
    }

    pub fn window_end(&self, index: u64) -> Instant {
        self.epoch
            + self
                .window
                .saturating_mul(u32::try_from(index + 1).unwrap_or(u32::MAX))
    }

    /// Admits one analytics request of `client` at `now` (it is then in flight until
    /// [`LimitState::release`]) or refuses it. Refused requests do not use up the window.
    pub fn admit(&mut self, client: &str, now: Instant) -> Result<(), Rejection> {
        let idx = self.window_index(now);
        let used = match self.counts.get(client) {
            Some(&(w, n)) if w == idx => n,
            _ => 0,
        };
        let at_cap = self.in_flight >= self.concurrency;
        if at_cap {
            self.breaches += 1;
        }
        let result = if !self.enabled {
            Ok(())
        } else if used >= self.rate_per_window {
            Err(Rejection {
                cause: Cause::Rate,
                retry_after_secs: ceil_secs(now, self.window_end(idx)).max(1),
            })
        } else if at_cap {
            Err(Rejection {
                cause: Cause::Concurrency,
                retry_after_secs: 1,
            })
        } else {
            Ok(())
        };
        let stat = self.history.entry(idx).or_default();
        stat.requests += 1;
        *stat.by_client.entry(client.to_string()).or_default() += 1;
        if result.is_err() {
            stat.rate_limited += 1;
        }
        while self.history.len() > HISTORY_WINDOWS {
            self.history.pop_first();
        }
        if result.is_ok() {
            self.counts.insert(client.to_string(), (idx, used + 1));
            self.advance(now);
            self.first_admitted.get_or_insert(now);
            self.in_flight += 1;
            self.peak = self.peak.max(self.in_flight);
            let n = self.client_in_flight.entry(client.to_string()).or_default();
            *n += 1;
            let n = *n;
            let peak = self.client_peak.entry(client.to_string()).or_default();
            *peak = (*peak).max(n);
        }
        result
    }

    /// One admitted request finished (no time passes for the slot accounting).
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// One admitted request of `client` finished at `now`.
    pub fn release_client(&mut self, client: &str, now: Instant) {
        if let Some(n) = self.client_in_flight.get_mut(client) {
            *n = n.saturating_sub(1);
        }
        self.release_at(now);
    }

    /// Each client's peak of admitted requests in flight at once.
    pub fn peak_by_client(&self) -> &BTreeMap<String, u32> {
        &self.client_peak
    }

    /// One admitted request finished at `now`.
    pub fn release_at(&mut self, now: Instant) {
        self.advance(now);
        self.release();
    }

    /// Adds the slots in use since the last change up to `now` (never backwards: callers read
    /// the clock before taking the lock).
    fn advance(&mut self, now: Instant) {
        match self.last_change {
            Some(last) if now > last => {
                self.slot_seconds += f64::from(self.in_flight) * (now - last).as_secs_f64();
                self.last_change = Some(now);
            }
            Some(_) => {}
            None => self.last_change = Some(now),
        }
    }

    /// Time-weighted mean of the requests in flight from the first admitted request to the last
    /// change (0 before any), and the length of that span in seconds.
    pub fn in_flight_mean(&self) -> (f64, f64) {
        match (self.first_admitted, self.last_change) {
            (Some(a), Some(b)) if b > a => {
                let span = (b - a).as_secs_f64();
                (self.slot_seconds / span, span)
            }
            _ => (0.0, 0.0),
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
    pub fn peak(&self) -> u32 {
        self.peak
    }
    pub fn breaches(&self) -> u64 {
        self.breaches
    }
    pub fn history(&self) -> &BTreeMap<u64, WindowStat> {
        &self.history
    }
    /// Accepted requests of `client` in the window holding `now`.
    pub fn used(&self, client: &str, now: Instant) -> u32 {
        match self.counts.get(client) {
            Some(&(w, n)) if w == self.window_index(now) => n,
            _ => 0,
        }
    }
}

/// Shared limits of one simulator.
#[derive(Debug, Clone)]
pub struct Limits(Arc<Mutex<LimitState>>);

/// An admitted request in flight; dropping it releases its slot.
#[derive(Debug)]
pub struct InFlight(Limits, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().release_client(&self.1, Instant::now());
    }
}

impl Limits {
    pub fn new(state: LimitState) -> Self {
        Limits(Arc::new(Mutex::new(state)))
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, LimitState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn admit(&self, client: &str, now: Instant) -> Result<InFlight, Rejection> {
        self.lock().admit(client, now)?;
        Ok(InFlight(self.clone(), client.to_string()))
    }
}

/// The 429 body of facts §5.2 (`limit` names the breached limit where it has a known key).
pub fn too_many_requests_body(r: &Rejection, context_id: &str, limit_value: i64) -> ErrorBody {
    let limit = match r.cause {
        Cause::Rate => Some(LimitInfo {
            key: "client.credentials.token.rate.per.minute".into(),
            namespace: "platform.api".into(),
            value: limit_value,
        }),
        Cause::Jobs => Some(LimitInfo {
            key: "lmt.an.cnvr.details.jobs.concurrent.access.max".into(),
            namespace: "analytics.data.extraction".into(),
            value: limit_value,
        }),
        Cause::Concurrency => None,
    };
    ErrorBody {
        message: format!(
            "Rate limit exceeded the maximum. Retry the request in [{}] seconds",
            r.retry_after_secs
        ),
        code: "too.many.requests.retry.after".into(),
        status: 429,
        context_id: Some(context_id.to_string()),
        details: Vec::new(),
        errors: Vec::new(),
        limit,
        ..ErrorBody::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(rate: u32, conc: u32) -> (LimitState, Instant) {
        let t0 = Instant::now();
        (
            LimitState::new(t0, Duration::from_secs(60), rate, conc, true),
            t0,
        )
    }

    #[test]
    fn window_refuses_past_the_rate_and_retry_after_instant_succeeds() {
        let (mut s, t0) = state(3, 100);
        let t = t0 + Duration::from_millis(10_400);
        for _ in 0..3 {
            s.admit("a", t).unwrap();
            s.release();
        }
        let r = s.admit("a", t).unwrap_err();
        assert_eq!(r.cause, Cause::Rate);
        // window ends at 60 s; from 10.4 s that is 49.6 s -> 50 whole seconds
        assert_eq!(r.retry_after_secs, 50);
        // another client has its own window
        s.admit("b", t).unwrap();
        s.release();
        // just before the Retry-After instant: still refused; at it: admitted
        let at = t + Duration::from_secs(r.retry_after_secs);
        assert!(s.admit("a", t0 + Duration::from_millis(59_999)).is_err());
        s.admit("a", at).unwrap();
        assert_eq!(s.used("a", at), 1);
    }

    #[test]
    fn refused_requests_do_not_use_up_the_window() {
        let (mut s, t0) = state(1, 100);
        s.admit("a", t0).unwrap();
        for _ in 0..5 {
            assert!(s.admit("a", t0).is_err());
        }
        assert_eq!(s.used("a", t0), 1);
        let h = &s.history()[&0];
        assert_eq!((h.requests, h.rate_limited), (6, 5));
    }

    #[test]
    fn org_concurrency_cap_counts_every_client_and_breaches() {
        let (mut s, t0) = state(100, 2);
        s.admit("a", t0).unwrap();
        s.admit("bg", t0).unwrap();
        let r = s.admit("a", t0).unwrap_err();
        assert_eq!(
            r,
            Rejection {
                cause: Cause::Concurrency,
                retry_after_secs: 1
            }
        );
        assert_eq!(s.breaches(), 1);
        assert_eq!(s.peak(), 2);
        s.release();
        s.admit("a", t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(s.in_flight(), 2);
    }

    #[test]
    fn disabled_limits_admit_everything_but_still_measure() {
        let t0 = Instant::now();
        let mut s = LimitState::new(t0, Duration::from_secs(60), 1, 1, false);
        for _ in 0..5 {
            s.admit("a", t0).unwrap();
        }
        assert_eq!(s.peak(), 5);
        assert_eq!(s.breaches(), 4);
    }

    #[test]
    fn mean_in_flight_is_weighted_by_time() {
        let (mut s, t0) = state(100, 10);
        assert_eq!(s.in_flight_mean(), (0.0, 0.0));
        let at = |ms| t0 + Duration::from_millis(ms);
        // 0..1 s: one request; 1..3 s: three; 3..4 s: none in flight.
        s.admit("a", at(0)).unwrap();
        s.admit("a", at(1000)).unwrap();
        s.admit("a", at(1000)).unwrap();
        s.release_at(at(3000));
        s.release_at(at(3000));
        s.release_at(at(3000));
        s.admit("a", at(4000)).unwrap();
        s.release_at(at(4000));
        let (mean, span) = s.in_flight_mean();
        assert!((span - 4.0).abs() < 1e-9, "{span}");
        assert!((mean - 7.0 / 4.0).abs() < 1e-9, "{mean}");
        assert_eq!(s.peak(), 3);
    }

    #[test]
    fn ceil_secs_rounds_up_whole_seconds() {
        let t = Instant::now();
        assert_eq!(ceil_secs(t, t + Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(t, t + Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(t, t + Duration::from_millis(2001)), 3);
        assert_eq!(ceil_secs(t + Duration::from_secs(1), t), 0);
    }

    #[test]
    fn body_has_the_normalized_shape() {
        let r = Rejection {
            cause: Cause::Rate,
            retry_after_secs: 17,
        };
        let v = serde_json::to_value(too_many_requests_body(&r, "ctx", 300)).unwrap();
        assert_eq!(v["code"], "too.many.requests.retry.after");
        assert_eq!(v["status"], 429);
        assert_eq!(
            v["message"],
            "Rate limit exceeded the maximum. Retry the request in [17] seconds"
        );
        assert_eq!(v["contextId"], "ctx");
        assert_eq!(v["details"], serde_json::json!([]));
        assert_eq!(v["errors"], serde_json::json!([]));
        assert_eq!(v["limit"]["value"], 300);
    }
}
