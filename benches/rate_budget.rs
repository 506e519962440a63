//! How much of the rate budget the RateLimiter uses, and at what 429 cost.
//!
//! The default settings (300 requests per 60 s window, org concurrency 10 − buffer 2) scaled
//! down in time by 6: the simulator allows 50 requests per 10 s window per OAuth client, with
//! a background integration holding 2 of the org's 10 slots. 32 workers query through one
//! GenesysClient + RateLimiter for a number of windows; the simulator's own counts give
//! utilization = requests accepted in each full window ÷ 50, and the 429 ratio.
//!
//! A second scenario configures the same defaults against a server that really allows only 40
//! per window (the org's limit is lower than configured): the limiter must converge below it
//! from the 429s alone; utilization is then reported against the real limit.
//!
//! Run: `cargo bench --bench rate_budget` (RATE_BUDGET_WINDOWS=n to change the length of each
//! scenario, default 6 and 8).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sluice::actors::rate_limiter::{RateLimiterHandle, RateLimiterSettings};
use sluice::genesys::model::{instant, ConversationQuery, Paging};
use sluice::genesys::{Credentials, GenesysClient, GenesysSettings, Priority, Secret};
use sluice::sim::{SimConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

const WINDOW_SECS: u64 = 10;
const PER_WINDOW: u32 = 50;
const WORKERS: u32 = 32;

fn main() {
    let windows: Option<u64> = std::env::var("RATE_BUDGET_WINDOWS")
        .ok()
        .and_then(|v| v.parse().ok());
    actix_rt::System::new().block_on(async {
        run(
            "configured limits are right",
            PER_WINDOW,
            windows.unwrap_or(6),
        )
        .await;
        println!();
        run("server allows 40, configured 50", 40, windows.unwrap_or(8)).await;
    });
}

async fn run(scenario: &str, server_per_window: u32, windows: u64) {
    let now = Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap();
    let sim = match sluice::sim::start(SimConfig {
        rate_per_minute: server_per_window * 60 / WINDOW_SECS as u32,
        window: Duration::from_secs(WINDOW_SECS),
        concurrency: 10,
        days: 3,
        per_day: 500,
        users: 10,
        latency_ms: Some((100, 600)),
        bg_rps: 4.0,
        bg_concurrency: 2,
        now: Some(now),
        ..Default::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the simulator: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    // The defaults, with the window scaled: 300/min over a 10 s window = 50 per window.
    let limiter = match RateLimiterHandle::start(RateLimiterSettings {
        window_secs: WINDOW_SECS,
        ..Default::default()
    }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let client = match GenesysClient::new(
        GenesysSettings {
            api_url: Some(sim.base_url()),
            ..Default::default()
        },
        Credentials::new(DEFAULT_CLIENT_ID, Secret::new(DEFAULT_CLIENT_SECRET)),
        limiter.clone(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let deadline =
        started + Duration::from_secs(WINDOW_SECS * windows) + Duration::from_millis(500);
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = client.clone();
        tasks.push(actix_rt::spawn(async move {
            let mut errors = 0u32;
            let mut i = 0u32;
            while Instant::now() < deadline {
                let start = now - chrono::Duration::hours(60)
                    + chrono::Duration::hours(((w * 5 + i) % 48).into());
                let q = ConversationQuery {
                    interval: format!(
                        "{}/{}",
                        instant::format(&start),
                        instant::format(&(start + chrono::Duration::hours(1)))
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
                if client
                    .query_conversations(&q, Priority::Backfill)
                    .await
                    .is_err()
                {
                    errors += 1;
                }
                i += 1;
            }
            errors
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap_or(1);
    }
    let stats = sim.stats();
    let get = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let ours = get(&stats["requests"]["byClient"][DEFAULT_CLIENT_ID]);
    let ours_429 = get(&stats["rateLimited"]["byClient"][DEFAULT_CLIENT_ID]);
    println!("rate_budget [{scenario}]: configured {PER_WINDOW} per {WINDOW_SECS} s window (defaults scaled 1/6), server allows {server_per_window}, {WORKERS} workers, {windows} windows");
    println!("window  requests  429  utilization");
    let mut full = Vec::new();
    if let Some(list) = stats["requestsPerWindow"].as_array() {
        for w in list {
            let idx = get(&w["window"]);
            let sent = get(&w["byClient"][DEFAULT_CLIENT_ID]);
            let limited = get(&w["rateLimited"]);
            let accepted = sent.saturating_sub(limited);
            let complete = idx >= 1 && idx < windows;
            println!(
                "{idx:>6}  {sent:>8}  {limited:>3}  {:>10.3}{}",
                accepted as f64 / f64::from(server_per_window),
                if complete {
                    ""
                } else {
                    "  (partial window, not counted)"
                }
            );
            if complete {
                full.push(accepted);
            }
        }
    }
    let accepted: u64 = full.iter().sum();
    let utilization = accepted as f64 / (f64::from(server_per_window) * full.len().max(1) as f64);
    let ratio = ours_429 as f64 / ours.max(1) as f64;
    let state = limiter.state().await.ok();
    println!(
        "utilization (accepted ÷ the server's limit over {} full windows): {utilization:.3}",
        full.len()
    );
    println!("429 ratio: {ours_429}/{ours} = {:.3} %", ratio * 100.0);
    println!(
        "peak org concurrency: {}, concurrency breaches: {}, collateral 429s: {}, errors returned: {errors}",
        get(&stats["peakConcurrency"]),
        get(&stats["concurrencyBreaches"]),
        get(&stats["collateral429s"])
    );
    if let Some(s) = state {
        println!(
            "limiter: pacing {:.1}/min, cap {}, reductions {}, requests {}, 429s {}",
            s.current_rate_per_minute, s.concurrency_cap, s.reductions, s.requests, s.rate_limited
        );
    }
    sim.stop();
}
