//! The RateLimiter actor on a paused tokio clock: permits, priorities and pauses as the
//! Fetchers see them through `RateLimiterHandle`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice::actors::rate_limiter::{
    Feedback, Outcome, Priority, RateLimiterHandle, RateLimiterSettings,
};
use tokio::time::Instant;

fn fast_settings() -> RateLimiterSettings {
    // Rate high enough that only the concurrency cap binds.
    RateLimiterSettings {
        rate_per_minute: 600_000,
        burst: Some(500),
        ..Default::default()
    }
}

/// Decrements a counter when dropped (also on panic).
struct InUse(Arc<AtomicUsize>);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[actix_rt::test]
async fn permits_never_exceed_the_cap_and_come_back_from_dropped_and_panicking_callers() {
    tokio::time::pause();
    let limiter = RateLimiterHandle::start(fast_settings()).unwrap();
    let in_use = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..200usize {
        let (limiter, in_use, peak, done) =
            (limiter.clone(), in_use.clone(), peak.clone(), done.clone());
        handles.push(actix_rt::spawn(async move {
            let prio = if i % 3 == 0 {
                Priority::CatchUp
            } else {
                Priority::Backfill
            };
            let permit = limiter.acquire(prio).await.unwrap();
            let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
            let _guard = InUse(in_use.clone());
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10 + (i as u64 * 37) % 300)).await;
            if i % 10 == 7 {
                panic!("caller {i} panics while holding its permit");
            }
            if i % 2 == 0 {
                permit.complete(Feedback::of(Outcome::Answered));
            } else {
                drop(permit);
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Abort some callers: a few while they wait, others while they hold a permit.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for h in handles.iter().skip(150).step_by(5) {
        h.abort();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for h in handles.iter().skip(3).step_by(17) {
        h.abort();
    }
    let mut panicked = 0;
    for h in handles {
        if let Err(e) = h.await {
            if e.is_panic() {
                panicked += 1;
            }
        }
    }
    assert!(panicked > 0);
    let cap = fast_settings().concurrency_cap() as usize;
    assert_eq!(peak.load(Ordering::SeqCst), cap, "peak in use");
    assert!(done.load(Ordering::SeqCst) > 100);
    // Every slot came back: the limiter says 0 in flight and `cap` permits are granted at once.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let state = limiter.state().await.unwrap();
    assert_eq!(state.in_flight, 0, "{state:?}");
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(
            tokio::time::timeout(
                Duration::from_millis(1),
                limiter.acquire(Priority::Backfill),
            )
            .await
            .expect("a free slot")
            .unwrap(),
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), limiter.acquire(Priority::CatchUp))
            .await
            .is_err(),
        "the cap still holds"
    );
}

#[actix_rt::test]
async fn catch_up_waiters_are_served_before_backfill_waiters() {
    tokio::time::pause();
    let limiter = RateLimiterHandle::start(RateLimiterSettings {
        rate_per_minute: 60,
        burst: Some(1),
        headroom: 0.0,
        ..Default::default()
    })
    .unwrap();
    // Take the one token: everybody else waits for the refill (one per ~1 s).
    let first = limiter.acquire(Priority::Backfill).await.unwrap();
    first.complete(Feedback::of(Outcome::Answered));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (i, prio) in [
        Priority::Backfill,
        Priority::Backfill,
        Priority::CatchUp,
        Priority::Backfill,
        Priority::CatchUp,
    ]
    .into_iter()
    .enumerate()
    {
        let (limiter, order) = (limiter.clone(), order.clone());
        handles.push(actix_rt::spawn(async move {
            let p = limiter.acquire(prio).await.unwrap();
            order.lock().unwrap().push((i, prio));
            p.complete(Feedback::of(Outcome::Answered));
        }));
        // Let each request reach the actor in this order.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for h in handles {
        h.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    let prios: Vec<_> = order.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        prios,
        vec![
            Priority::CatchUp,
            Priority::CatchUp,
            Priority::Backfill,
            Priority::Backfill,
            Priority::Backfill
        ],
        "{order:?}"
    );
    // Within a priority, first come first served.
    assert_eq!(order[0].0, 2);
    assert_eq!(order[2].0, 0);
}

#[actix_rt::test]
async fn a_429_pauses_every_requester_until_retry_after() {
    tokio::time::pause();
    let limiter = RateLimiterHandle::start(RateLimiterSettings {
        retry_after_jitter_ms: 300,
        ..fast_settings()
    })
    .unwrap();
    let p = limiter.acquire(Priority::Backfill).await.unwrap();
    let other = limiter.acquire(Priority::CatchUp).await.unwrap();
    let t = Instant::now();
    p.complete(Feedback {
        outcome: Some(Outcome::RateLimited),
        retry_after: Some(Duration::from_secs(5)),
        ..Default::default()
    });
    // The other in-flight request ends normally; it does not lift the pause.
    other.complete(Feedback::of(Outcome::Answered));
    let mut waiters = Vec::new();
    for i in 0..6 {
        let limiter = limiter.clone();
        waiters.push(actix_rt::spawn(async move {
            let prio = if i % 2 == 0 {
                Priority::CatchUp
            } else {
                Priority::Backfill
            };
            let _p = limiter.acquire(prio).await.unwrap();
            Instant::now()
        }));
    }
    let state = limiter.state().await.unwrap();
    assert!(state.pause_remaining.is_some(), "{state:?}");
    assert_eq!(state.rate_limited, 1);
    for w in waiters {
        let granted = w.await.unwrap();
        assert!(
            granted >= t + Duration::from_secs(5),
            "left {:?} after the 429",
            granted - t
        );
        assert!(
            granted <= t + Duration::from_millis(5_400),
            "waited {:?}",
            granted - t
        );
    }
}

#[actix_rt::test]
async fn pacing_through_the_actor_matches_the_settings() {
    tokio::time::pause();
    let settings = RateLimiterSettings {
        rate_per_minute: 360,
        window_secs: 10,
        ..Default::default()
    };
    let limiter = RateLimiterHandle::start(settings).unwrap();
    let start = Instant::now();
    let granted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (limiter, granted) = (limiter.clone(), granted.clone());
        workers.push(actix_rt::spawn(async move {
            while Instant::now() < start + Duration::from_secs(60) {
                let p = limiter.acquire(Priority::Backfill).await.unwrap();
                granted.lock().unwrap().push(Instant::now());
                tokio::time::sleep(Duration::from_millis(120)).await;
                p.complete(Feedback::of(Outcome::Answered));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let mut times = granted.lock().unwrap().clone();
    times.sort();
    let in_minute = times
        .iter()
        .filter(|t| **t < start + Duration::from_secs(60))
        .count();
    // 60 per 10 s window, paced at 58 per window (burst 1, 1 of headroom): 348 per minute.
    assert!((340..=352).contains(&in_minute), "{in_minute}");
    let mut j = 0;
    for i in 0..times.len() {
        while times[i] - times[j] >= Duration::from_secs(10) {
            j += 1;
        }
        assert!(i - j < 60, "{} requests in a 10 s window", i - j + 1);
    }
    let state = limiter.state().await.unwrap();
    assert_eq!(state.concurrency_cap, 8);
    assert!((state.current_rate_per_minute - 348.0).abs() < 1e-6);
}
