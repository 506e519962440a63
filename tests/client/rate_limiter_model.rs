//! The rate limiter's decisions (`sluice::rate::Limiter`) driven on invented time against a
//! model of the Genesys limits: a fixed window of L requests per W seconds per token, a
//! per-org concurrency cap shared with other integrations, 429 + Retry-After beyond either.
//! No actors, no sleeps: every instant is computed.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice::rate::{Decision, Feedback, Grant, Limiter, Outcome, RateLimiterSettings};
use tokio::time::Instant;

const STEP: Duration = Duration::from_millis(5);

/// The server side: fixed windows from `start`, a concurrency cap with `background` slots
/// permanently taken by another integration. Rejected requests do not count.
struct Server {
    limit: u32,
    window: Duration,
    start: Instant,
    window_idx: u64,
    count: u32,
    concurrency: u32,
    background: u32,
    in_flight: u32,
    rate_429s: u64,
    concurrency_429s: u64,
}

enum Verdict {
    Accepted,
    Limited(Duration),
}

impl Server {
    fn new(
        start: Instant,
        limit: u32,
        window: Duration,
        concurrency: u32,
        background: u32,
    ) -> Self {
        Server {
            limit,
            window,
            start,
            window_idx: 0,
            count: 0,
            concurrency,
            background,
            in_flight: 0,
            rate_429s: 0,
            concurrency_429s: 0,
        }
    }

    fn request(&mut self, t: Instant) -> Verdict {
        let elapsed = t - self.start;
        let idx = (elapsed.as_nanos() / self.window.as_nanos()) as u64;
        if idx != self.window_idx {
            self.window_idx = idx;
            self.count = 0;
        }
        if self.in_flight + self.background >= self.concurrency {
            self.concurrency_429s += 1;
            return Verdict::Limited(Duration::from_secs(1));
        }
        if self.count >= self.limit {
            self.rate_429s += 1;
            let window_end = self.start + self.window * (idx as u32 + 1);
            // Integer seconds, rounded up (what Genesys sends).
            return Verdict::Limited(Duration::from_secs(
                (window_end - t).as_secs_f64().ceil() as u64
            ));
        }
        self.count += 1;
        self.in_flight += 1;
        Verdict::Accepted
    }
}

struct Pending {
    done_at: Instant,
    grant: Grant,
    accepted: bool,
    retry_after: Option<Duration>,
}

struct Run {
    grants: Vec<Instant>,
    accepted: u64,
    limited: u64,
    limiter: Limiter,
}

/// Drives `limiter` with unlimited demand (or the demand `wants(t)` allows) for `length`.
fn run(
    mut limiter: Limiter,
    server: &mut Server,
    t0: Instant,
    length: Duration,
    rtt: Duration,
    mut wants: impl FnMut(Instant, usize) -> bool,
) -> Run {
    let mut pending: Vec<Pending> = Vec::new();
    let mut grants = Vec::new();
    let (mut accepted, mut limited) = (0, 0);
    let mut now = t0;
    while now < t0 + length {
        let mut i = 0;
        while i < pending.len() {
            if pending[i].done_at <= now {
                let p = pending.swap_remove(i);
                let feedback = if p.accepted {
                    server.in_flight -= 1;
                    Feedback::of(Outcome::Answered)
                } else {
                    Feedback {
                        outcome: Some(Outcome::RateLimited),
                        retry_after: p.retry_after,
                        ..Default::default()
                    }
                };
                limiter.release(now, p.grant, &feedback);
            } else {
                i += 1;
            }
        }
        while wants(now, pending.len()) {
            match limiter.try_acquire(now) {
                Decision::Granted(grant) => {
                    grants.push(now);
                    match server.request(now) {
                        Verdict::Accepted => {
                            accepted += 1;
                            pending.push(Pending {
                                done_at: now + rtt,
                                grant,
                                accepted: true,
                                retry_after: None,
                            });
                        }
                        Verdict::Limited(d) => {
                            limited += 1;
                            pending.push(Pending {
                                done_at: now + Duration::from_millis(20),
                                grant,
                                accepted: false,
                                retry_after: Some(d),
                            });
                        }
                    }
                }
                _ => break,
            }
        }
        now += STEP;
    }
    Run {
        grants,
        accepted,
        limited,
        limiter,
    }
}

fn max_in_sliding_window(times: &[Instant], window: Duration) -> usize {
    let mut max = 0;
    let mut j = 0;
    for i in 0..times.len() {
        while times[i] - times[j] >= window {
            j += 1;
        }
        max = max.max(i - j + 1);
    }
    max
}

fn max_in_fixed_windows(times: &[Instant], origin: Instant, window: Duration) -> usize {
    let mut counts = std::collections::HashMap::new();
    for t in times {
        let idx = ((*t - origin).as_nanos() / window.as_nanos()) as u64;
        *counts.entry(idx).or_insert(0usize) += 1;
    }
    counts.values().copied().max().unwrap_or(0)
}

fn unlimited_server(t0: Instant) -> Server {
    Server::new(t0, u32::MAX, Duration::from_secs(60), u32::MAX, 0)
}

#[test]
fn pacing_over_ten_simulated_minutes_is_within_two_percent() {
    let t0 = Instant::now();
    let settings = RateLimiterSettings::default();
    let limiter = Limiter::new(settings, 1).unwrap();
    let paced = limiter.current_rate_per_minute();
    assert!((paced - 294.0).abs() < 1e-9);
    let mut server = unlimited_server(t0);
    let r = run(
        limiter,
        &mut server,
        t0,
        Duration::from_secs(600),
        Duration::from_millis(300),
        |_, _| true,
    );
    let expected = paced * 10.0;
    let got = r.grants.len() as f64;
    assert!(
        (got - expected).abs() / expected < 0.02,
        "{got} requests in 10 min, expected {expected}"
    );
    // Against the budget (300/min): ≥ 95 %.
    assert!(got / 3000.0 >= 0.95, "utilization {}", got / 3000.0);
}

#[test]
fn no_window_of_the_server_width_ever_exceeds_the_limit() {
    // Bursty demand: random idle gaps (the bucket refills) then floods, random latencies.
    for (rate, window_secs) in [(300u32, 60u64), (360, 10), (60, 60)] {
        let t0 = Instant::now();
        let settings = RateLimiterSettings {
            rate_per_minute: rate,
            window_secs,
            ..Default::default()
        };
        let limit = settings.limit_per_window() as usize;
        let window = Duration::from_secs(window_secs);
        let limiter = Limiter::new(settings, 2).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut idle_until = t0;
        let mut server = unlimited_server(t0);
        let r = run(
            limiter,
            &mut server,
            t0,
            Duration::from_secs(window_secs * 12),
            Duration::from_millis(150),
            |now, _| {
                if now < idle_until {
                    return false;
                }
                if rng.gen_bool(0.0001) {
                    idle_until =
                        now + Duration::from_millis(rng.gen_range(100..(window_secs * 300)));
                }
                true
            },
        );
        let sliding = max_in_sliding_window(&r.grants, window);
        assert!(
            sliding <= limit,
            "{rate}/min, {window_secs} s: {sliding} > {limit}"
        );
        // The headroom (1 %, at least one request) is kept for network jitter too.
        let margin = (limit as f64 * 0.01).ceil() as usize;
        assert!(sliding <= limit - margin, "{sliding} > {limit} - {margin}");
        for offset_ms in (0..window_secs * 1000).step_by(250) {
            let origin = t0 + Duration::from_millis(offset_ms) - window;
            let fixed = max_in_fixed_windows(&r.grants, origin, window);
            assert!(
                fixed <= limit,
                "fixed window at +{offset_ms} ms: {fixed} > {limit}"
            );
        }
        // And the budget is used: the busiest window is close to the limit.
        assert!(
            sliding as f64 >= 0.95 * limit as f64,
            "{sliding} of {limit}"
        );
    }
}

#[test]
fn after_a_429_no_request_leaves_before_retry_after() {
    let t0 = Instant::now();
    let settings = RateLimiterSettings {
        retry_after_jitter_ms: 400,
        ..Default::default()
    };
    let mut l = Limiter::new(settings, 3).unwrap();
    let Decision::Granted(g) = l.try_acquire(t0) else {
        panic!("first request must be granted")
    };
    let t1 = t0 + Duration::from_millis(100);
    l.release(
        t1,
        g,
        &Feedback {
            outcome: Some(Outcome::RateLimited),
            retry_after: Some(Duration::from_secs(7)),
            ..Default::default()
        },
    );
    let resume = t1 + Duration::from_secs(7);
    let mut t = t1;
    while t < resume {
        assert!(
            matches!(l.try_acquire(t), Decision::WaitUntil(at) if at >= resume),
            "granted at +{:?}",
            t - t0
        );
        t += Duration::from_millis(10);
    }
    // Within the jitter bound after the instant, requests flow again.
    let mut t = resume;
    let granted_at = loop {
        if let Decision::Granted(_) = l.try_acquire(t) {
            break t;
        }
        t += Duration::from_millis(1);
        assert!(t <= resume + Duration::from_millis(401), "still paused");
    };
    assert!(granted_at >= resume);
}

#[test]
fn quota_breach_is_flagged_waited_out_and_cleared() {
    let t0 = Instant::now();
    let wall = chrono::Utc::now();
    let mut l = Limiter::new(RateLimiterSettings::default(), 4).unwrap();
    let Decision::Granted(g) = l.try_acquire(t0) else {
        panic!()
    };
    l.release(
        t0,
        g,
        &Feedback {
            outcome: Some(Outcome::RateLimited),
            retry_after: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    );
    let s = l.state(t0, wall);
    assert!(s.quota_breach);
    assert_eq!(s.quota_breaches, 1);
    assert!(s.pause_remaining.unwrap() >= Duration::from_secs(3600));
    assert!(s.paused_until.unwrap() >= wall + chrono::Duration::seconds(3600));
    assert!(matches!(
        l.try_acquire(t0 + Duration::from_secs(3599)),
        Decision::WaitUntil(_)
    ));
    let after = t0 + Duration::from_secs(3602);
    assert!(matches!(l.try_acquire(after), Decision::Granted(_)));
    assert!(!l.state(after, wall).quota_breach);
    // A short Retry-After is not a breach.
    let mut l = Limiter::new(RateLimiterSettings::default(), 4).unwrap();
    let Decision::Granted(g) = l.try_acquire(t0) else {
        panic!()
    };
    l.release(
        t0,
        g,
        &Feedback {
            outcome: Some(Outcome::RateLimited),
            retry_after: Some(Duration::from_secs(180)),
            ..Default::default()
        },
    );
    assert!(!l.state(t0, wall).quota_breach);
}

#[test]
fn converges_from_429s_alone_when_the_server_allows_less_than_configured() {
    // Configured 300/min; the server actually allows 200/min.
    let t0 = Instant::now();
    let limiter = Limiter::new(RateLimiterSettings::default(), 5).unwrap();
    let mut server = Server::new(t0, 200, Duration::from_secs(60), 10, 0);
    let r = run(
        limiter,
        &mut server,
        t0,
        Duration::from_secs(30 * 60),
        Duration::from_millis(400),
        |_, _| true,
    );
    let total = r.accepted + r.limited;
    let ratio = r.limited as f64 / total as f64;
    let mut limiter = r.limiter;
    let now = t0 + Duration::from_secs(30 * 60);
    let state = limiter.state(now, chrono::Utc::now());
    assert!(state.current_rate_per_minute <= 200.0, "{state:?}");
    assert!(
        state.current_rate_per_minute >= 120.0,
        "over-reduced: {state:?}"
    );
    assert!(
        ratio < 0.005,
        "429 ratio {ratio} ({} of {total})",
        r.limited
    );
    // It still uses most of what the server allows.
    assert!(r.accepted as f64 >= 0.6 * 200.0 * 30.0, "{}", r.accepted);
    // No 429 in the last 20 minutes: converged, not oscillating.
    let late = r
        .grants
        .iter()
        .filter(|t| **t >= t0 + Duration::from_secs(600))
        .count();
    assert!(late > 0);
    assert!(state.reductions >= 1 && state.reductions <= 4, "{state:?}");
}

#[test]
fn converges_when_other_integrations_take_concurrency() {
    // Org allows 10 concurrent; another integration holds 5 at all times; requests are slow
    // (2.5 s), so our cap of 8 would over-subscribe the org.
    let t0 = Instant::now();
    let limiter = Limiter::new(RateLimiterSettings::default(), 6).unwrap();
    let mut server = Server::new(t0, 300, Duration::from_secs(60), 10, 5);
    let r = run(
        limiter,
        &mut server,
        t0,
        Duration::from_secs(20 * 60),
        Duration::from_millis(2500),
        |_, _| true,
    );
    let total = r.accepted + r.limited;
    let ratio = r.limited as f64 / total as f64;
    assert!(ratio < 0.01, "429 ratio {ratio} ({} of {total})", r.limited);
    assert!(r.limiter.cap() <= 5, "cap {}", r.limiter.cap());
    assert!(server.concurrency_429s <= 10, "{}", server.concurrency_429s);
}

#[test]
fn adaptive_reduction_and_recovery_through_the_limiter() {
    let t0 = Instant::now();
    let mut l = Limiter::new(RateLimiterSettings::default(), 8).unwrap();
    let mut t = t0;
    let answer = |l: &mut Limiter, t: &mut Instant, outcome: Outcome| loop {
        if let Decision::Granted(g) = l.try_acquire(*t) {
            let f = Feedback {
                outcome: Some(outcome),
                retry_after: Some(Duration::from_secs(1)),
                ..Default::default()
            };
            l.release(*t, g, &f);
            return;
        }
        *t += Duration::from_millis(10);
    };
    for _ in 0..99 {
        answer(&mut l, &mut t, Outcome::Answered);
    }
    answer(&mut l, &mut t, Outcome::RateLimited);
    assert!(
        (l.current_rate_per_minute() - 294.0).abs() < 1e-9,
        "1 of 100 is not above 1 %"
    );
    answer(&mut l, &mut t, Outcome::RateLimited);
    assert!((l.current_rate_per_minute() - 294.0 * 0.8).abs() < 1e-6);
    assert_eq!(l.cap(), 7);
    let reduced_at = t;
    // Held for an hour, then +5 % of the configured rate every 5 min until whole again.
    assert!(
        (l.state(reduced_at + Duration::from_secs(3599), chrono::Utc::now())
            .current_rate_per_minute
            - 235.2)
            .abs()
            < 1e-6
    );
    let s = l.state(reduced_at + Duration::from_secs(3600), chrono::Utc::now());
    assert!(
        (s.current_rate_per_minute - 294.0 * 0.85).abs() < 1e-6,
        "{s:?}"
    );
    assert_eq!(s.concurrency_cap, 8);
    let s = l.state(
        reduced_at + Duration::from_secs(3600 + 4 * 300),
        chrono::Utc::now(),
    );
    assert!((s.current_rate_per_minute - 294.0).abs() < 1e-6, "{s:?}");
    assert_eq!(s.reductions, 1);
}

#[test]
fn rate_hints_only_ever_slow_down() {
    use sluice::rate::RateHeaders;
    let t0 = Instant::now();
    let mut l = Limiter::new(RateLimiterSettings::default(), 9).unwrap();
    let feed = |l: &mut Limiter, f: Feedback| {
        let mut t = t0;
        loop {
            if let Decision::Granted(g) = l.try_acquire(t) {
                l.release(t, g, &f);
                return;
            }
            t += Duration::from_millis(100);
        }
    };
    let headers = |allowed| Feedback {
        outcome: Some(Outcome::Answered),
        headers: RateHeaders {
            allowed: Some(allowed),
            count: Some(1),
            reset: Some(Duration::from_secs(30)),
        },
        ..Default::default()
    };
    feed(&mut l, headers(1000));
    assert!((l.current_rate_per_minute() - 294.0).abs() < 1e-9);
    feed(&mut l, headers(150));
    assert!((l.current_rate_per_minute() - 147.0).abs() < 1e-6);
    // A body's `limit` object naming a lower per-minute limit also slows down.
    let mut l = Limiter::new(RateLimiterSettings::default(), 9).unwrap();
    feed(
        &mut l,
        Feedback {
            outcome: Some(Outcome::RateLimited),
            retry_after: Some(Duration::from_secs(1)),
            limit: Some(("client.credentials.token.rate.per.minute".into(), 240)),
            ..Default::default()
        },
    );
    assert!((l.current_rate_per_minute() - 294.0 * 0.8).abs() < 1e-6);
    feed(
        &mut l,
        Feedback {
            outcome: Some(Outcome::RateLimited),
            retry_after: Some(Duration::from_secs(1)),
            limit: Some(("client.credentials.token.rate.per.minute".into(), 600)),
            ..Default::default()
        },
    );
    assert!((l.current_rate_per_minute() - 294.0 * 0.8).abs() < 1e-6);
    // The key's unit counts, not the window's length: 240 per minute in 10 s windows is 40 of
    // the 50 per window the settings expect.
    let scaled = RateLimiterSettings {
        window_secs: 10,
        ..Default::default()
    };
    let mut l = Limiter::new(scaled.clone(), 9).unwrap();
    let before = l.current_rate_per_minute();
    feed(
        &mut l,
        Feedback {
            outcome: Some(Outcome::RateLimited),
            retry_after: Some(Duration::from_secs(1)),
            limit: Some(("client.credentials.token.rate.per.minute".into(), 240)),
            ..Default::default()
        },
    );
    assert!(
        (l.current_rate_per_minute() - before * 0.8).abs() < 1e-6,
        "{} vs {before}",
        l.current_rate_per_minute()
    );
    assert_eq!(
        sluice::rate::limiter::limit_per_window("x.rate.per.second", 2, 10),
        Some(20.0)
    );
    assert_eq!(
        sluice::rate::limiter::limit_per_window("x.concurrent.max", 2, 10),
        None
    );
}

#[test]
fn concurrency_cap_holds_and_releases_free_slots() {
    let t0 = Instant::now();
    let settings = RateLimiterSettings {
        rate_per_minute: 60_000,
        burst: Some(100),
        ..Default::default()
    };
    let mut l = Limiter::new(settings, 10).unwrap();
    let mut grants = Vec::new();
    for _ in 0..8 {
        match l.try_acquire(t0) {
            Decision::Granted(g) => grants.push(g),
            d => panic!("{d:?}"),
        }
    }
    assert_eq!(l.try_acquire(t0), Decision::AtCapacity);
    // An abandoned request (requester dropped) frees its slot and is not counted as a response.
    l.release(t0, grants.pop().unwrap(), &Feedback::default());
    assert!(matches!(l.try_acquire(t0), Decision::Granted(_)));
    assert_eq!(l.in_flight(), 8);
    assert_eq!(l.state(t0, chrono::Utc::now()).requests, 0);
}
