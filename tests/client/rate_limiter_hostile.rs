//! Hostile server values against the rate limiter's decisions (`sluice::rate::Limiter`), on
//! invented time: no Retry-After, legacy header or 429 body can panic it, pause it for more than
//! a day, or raise its rate.

use std::time::Duration;

use proptest::prelude::*;
use sluice::rate::{
    Decision, Feedback, Grant, Limiter, Outcome, RateHeaders, RateLimiterSettings, MAX_SERVER_WAIT,
};
use tokio::time::Instant;

fn settings() -> RateLimiterSettings {
    RateLimiterSettings {
        retry_after_jitter_ms: 500,
        ..Default::default()
    }
}

/// Takes a permit at or after `t` (stepping invented time) and reports `f` for it.
fn feed(l: &mut Limiter, t: &mut Instant, f: &Feedback) {
    loop {
        match l.try_acquire(*t) {
            Decision::Granted(g) => {
                l.release(*t, g, f);
                return;
            }
            Decision::WaitUntil(at) => *t = at.max(*t + Duration::from_millis(1)),
            Decision::AtCapacity => *t += Duration::from_millis(100),
        }
    }
}

fn limited(retry_after: Option<Duration>) -> Feedback {
    Feedback {
        outcome: Some(Outcome::RateLimited),
        retry_after,
        ..Default::default()
    }
}

#[test]
fn a_huge_retry_after_is_a_quota_breach_paused_for_a_day_at_most() {
    let mut l = Limiter::new(settings(), 1).unwrap();
    let mut t = Instant::now();
    feed(&mut l, &mut t, &limited(Some(Duration::MAX)));
    let s = l.state(t, chrono::Utc::now());
    assert!(s.quota_breach, "{s:?}");
    assert_eq!(s.quota_breaches, 1);
    let pause = s.pause_remaining.unwrap();
    assert!(pause >= MAX_SERVER_WAIT && pause <= MAX_SERVER_WAIT + Duration::from_millis(500));
    // Nothing leaves before the day is over; then requests flow again.
    assert!(matches!(
        l.try_acquire(t + MAX_SERVER_WAIT - Duration::from_secs(1)),
        Decision::WaitUntil(_)
    ));
    let after = t + MAX_SERVER_WAIT + Duration::from_secs(1);
    assert!(matches!(l.try_acquire(after), Decision::Granted(_)));
    assert!(!l.state(after, chrono::Utc::now()).quota_breach);
}

#[test]
fn a_huge_legacy_reset_pauses_for_a_day_at_most() {
    let mut l = Limiter::new(settings(), 2).unwrap();
    let mut t = Instant::now();
    let f = Feedback {
        outcome: Some(Outcome::Answered),
        headers: RateHeaders {
            allowed: Some(300),
            count: Some(u32::MAX),
            reset: Some(Duration::MAX),
        },
        ..Default::default()
    };
    feed(&mut l, &mut t, &f);
    let pause = l.state(t, chrono::Utc::now()).pause_remaining.unwrap();
    assert!(pause <= MAX_SERVER_WAIT, "{pause:?}");
}

#[test]
fn legacy_headers_never_raise_the_rate_a_429_body_lowered() {
    let mut l = Limiter::new(settings(), 3).unwrap();
    let mut t = Instant::now();
    let configured = l.current_rate_per_minute();
    feed(
        &mut l,
        &mut t,
        &Feedback {
            limit: Some(("client.credentials.token.rate.per.minute".into(), 150)),
            ..limited(Some(Duration::from_secs(1)))
        },
    );
    let lowered = l.current_rate_per_minute();
    assert!(
        (lowered - configured / 2.0).abs() < 1e-6,
        "{lowered} vs {configured}"
    );
    for allowed in [300, 1000, u32::MAX] {
        feed(
            &mut l,
            &mut t,
            &Feedback {
                outcome: Some(Outcome::Answered),
                headers: RateHeaders {
                    allowed: Some(allowed),
                    count: Some(1),
                    reset: Some(Duration::from_secs(30)),
                },
                ..Default::default()
            },
        );
        assert!(
            (l.current_rate_per_minute() - lowered).abs() < 1e-6,
            "allowed={allowed}: {} (was {lowered})",
            l.current_rate_per_minute()
        );
    }
}

fn any_duration() -> impl Strategy<Value = Option<Duration>> {
    prop_oneof![
        Just(None),
        Just(Some(Duration::MAX)),
        (0u64..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Some(Duration::new(s, n))),
        (0u64..200_000).prop_map(|s| Some(Duration::from_secs(s))),
    ]
}

fn any_feedback() -> impl Strategy<Value = Feedback> {
    let outcome = prop_oneof![
        Just(None),
        Just(Some(Outcome::Answered)),
        Just(Some(Outcome::RateLimited)),
        Just(Some(Outcome::ServerError)),
        Just(Some(Outcome::Transport)),
        Just(Some(Outcome::Abandoned)),
    ];
    let limit = proptest::option::of((
        "\\PC{0,30}|x\\.rate\\.per\\.(second|minute|hour)",
        any::<i64>(),
    ));
    let headers = (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        any_duration(),
    )
        .prop_map(|(allowed, count, reset)| RateHeaders {
            allowed,
            count,
            reset,
        });
    (outcome, any_duration(), limit, headers).prop_map(|(outcome, retry_after, limit, headers)| {
        Feedback {
            outcome,
            retry_after,
            limit,
            headers,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of server feedback at any instants: no panic, every pause within a day
    /// (plus jitter), the pacing never above the configured rate, and the header ceiling only
    /// ever going down.
    #[test]
    fn any_feedback_sequence_is_survived(
        steps in proptest::collection::vec((any_feedback(), 0u64..100_000_000), 1..40),
    ) {
        let mut l = Limiter::new(settings(), 4).unwrap();
        let configured = l.current_rate_per_minute();
        let mut t = Instant::now();
        let mut ceiling = l.header_ceiling();
        for (f, gap_ms) in steps {
            t += Duration::from_millis(gap_ms);
            let grant = match l.try_acquire(t) {
                Decision::Granted(g) => g,
                _ => Grant { generation: 0 },
            };
            l.release(t, grant, &f);
            let s = l.state(t, chrono::Utc::now());
            prop_assert!(s.pause_remaining.is_none_or(|p| p <= MAX_SERVER_WAIT + Duration::from_millis(500)), "{s:?}");
            prop_assert!(s.current_rate_per_minute <= configured + 1e-9);
            prop_assert!(l.header_ceiling() <= ceiling + 1e-12);
            ceiling = l.header_ceiling();
            let _ = l.next_timer(t);
        }
    }
}
