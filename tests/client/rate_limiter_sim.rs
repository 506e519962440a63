//! 32 workers through one RateLimiter against the simulator with a short window, a small
//! org concurrency and a background integration holding two slots: no concurrency breach,
//! a 429 ratio of at most 1 %, and no collateral 429 for the background integration.

use crate::common;

use std::time::{Duration, Instant};

use common::limiter_sim::{client, limiter_for, sim_now, stat};
use sluice::genesys::model::{ConversationQuery, Paging};
use sluice::genesys::Priority;
use sluice::sim::{SimConfig, DEFAULT_CLIENT_ID};

const WINDOW_SECS: u64 = 5;
const PER_WINDOW: u32 = 60;
const RUN: Duration = Duration::from_secs(12);

#[actix_rt::test]
async fn thirty_two_workers_stay_within_rate_and_concurrency_and_spare_the_background() {
    let sim = sluice::sim::start(SimConfig {
        rate_per_minute: PER_WINDOW * 60 / WINDOW_SECS as u32,
        window: Duration::from_secs(WINDOW_SECS),
        concurrency: 6,
        days: 3,
        per_day: 200,
        users: 10,
        latency_ms: Some((100, 300)),
        bg_rps: 10.0,
        bg_concurrency: 2,
        now: Some(sim_now()),
        ..Default::default()
    })
    .unwrap();
    // Org concurrency 6, buffer 2: our cap is 4, leaving the background its 2 slots.
    let limiter = limiter_for(PER_WINDOW, WINDOW_SECS, 6);
    let client = client(&sim, &limiter, 4);
    let deadline = Instant::now() + RUN;
    let mut workers = Vec::new();
    for w in 0..32u32 {
        let client = client.clone();
        workers.push(actix_rt::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut i = 0u32;
            while Instant::now() < deadline {
                let hour = (w * 7 + i) % 48;
                let start =
                    sim_now() - chrono::Duration::hours(60) + chrono::Duration::hours(hour.into());
                let q = ConversationQuery {
                    interval: format!(
                        "{}/{}",
                        sluice::genesys::model::instant::format(&start),
                        sluice::genesys::model::instant::format(
                            &(start + chrono::Duration::hours(1))
                        )
                    ),
                    order: Some("asc".into()),
                    order_by: Some("conversationStart".into()),
                    paging: Some(Paging {
                        page_size: 25,
                        page_number: 1,
                    }),
                    conversation_filters: vec![],
                    segment_filters: vec![],
                };
                let prio = if w % 4 == 0 {
                    Priority::CatchUp
                } else {
                    Priority::Backfill
                };
                // At the deadline the waiting callers give up: dropping the future gives
                // back whatever it held (cancel safety of acquire and Permit).
                let deadline = tokio::time::Instant::from_std(deadline);
                match tokio::time::timeout_at(deadline, client.query_conversations(&q, prio)).await
                {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(e)) => failed.push(e.to_string()),
                    Err(_) => break,
                }
                i += 1;
            }
            (ok, failed)
        }));
    }
    let mut ok = 0;
    for w in workers {
        let (n, failed) = w.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        ok += n;
    }
    let stats = sim.stats();
    let ours = stat(&stats, &["requests", "byClient", DEFAULT_CLIENT_ID]);
    let ours_429 = stat(&stats, &["rateLimited", "byClient", DEFAULT_CLIENT_ID]);
    let state = limiter.state().await.unwrap();
    eprintln!(
        "ok {ok}, requests {ours}, 429 {ours_429}, breaches {}, peak {}, collateral {}, background {}, limiter {state:?}",
        stat(&stats, &["concurrencyBreaches"]),
        stat(&stats, &["peakConcurrency"]),
        stat(&stats, &["collateral429s"]),
        stats["background"]
    );
    assert!(ok > 60, "the run made progress: {ok}");
    assert!(
        stat(&stats, &["background", "requests"]) > 5,
        "the background ran"
    );
    assert_eq!(stat(&stats, &["concurrencyBreaches"]), 0, "{stats}");
    assert_eq!(stat(&stats, &["collateral429s"]), 0, "{stats}");
    assert!(
        ours_429 as f64 <= 0.01 * ours as f64,
        "429 ratio {ours_429}/{ours}"
    );
    assert!(stat(&stats, &["peakConcurrency"]) <= 6);
    // Callers cancelled at the deadline (waiting or in flight) returned their permits.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let state = limiter.state().await.unwrap();
    assert_eq!(state.in_flight, 0, "{state:?}");
}
