//! `/metrics` against the simulator's own counts.
//!
//! The real API client and RateLimiter send queries to `sluice sim` with limits tight enough
//! that 429s happen (a concurrency cap below ours, a short window) and 5xx faults on; the
//! admin server's `/metrics` is then parsed as Prometheus text and its counters compared with
//! `/__sim/stats` for our OAuth client. Neither `/metrics` nor `/status` may contain the client
//! secret.
use crate::common;

use std::sync::Arc;

use chrono::Utc;
use common::db::TestDb;
use common::scrape::{get_async, Scrape};
use common::sim::{small_config, start};
use futures_util::future::join_all;
use sluice::actors::rate_limiter::{RateLimiterHandle, RateLimiterSettings};
use sluice::admin::{self, AdminState, LiveEngine, RunInfo};
use sluice::genesys::model::{ConversationQuery, Paging};
use sluice::genesys::{Credentials, GenesysClient, GenesysSettings, Priority, Secret};
use sluice::metrics::Metrics;
use sluice::sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn query(sim_now: chrono::DateTime<Utc>, page: i64) -> ConversationQuery {
    let day = sim_now - chrono::Duration::days(1);
    let from = day.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    ConversationQuery {
        interval: format!(
            "{}/{}",
            from.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            (from + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%S%.3fZ")
        ),
        order: Some("asc".into()),
        order_by: Some("conversationStart".into()),
        paging: Some(Paging {
            page_size: 100,
            page_number: page,
        }),
        conversation_filters: vec![],
        segment_filters: vec![],
    }
}

#[test]
fn metrics_counters_equal_the_simulators_counts() {
    let mut cfg = small_config();
    cfg.no_limits = false;
    // The org allows 2 concurrent requests, we believe 6: concurrency 429s with Retry-After 1.
    cfg.concurrency = 2;
    cfg.rate_per_minute = 6000;
    cfg.fault_5xx = 0.05;
    cfg.latency_ms = Some((20, 40));
    let sim = start(cfg);
    let sim_now = sim.now();
    let db = TestDb::sqlite();
    db.connect();
    let metrics = Arc::new(Metrics::new().unwrap());
    let run = Arc::new(RunInfo::new("test", Utc::now()));
    metrics.set_run_started(run.started_at);

    let base = sim.base_url();
    let system = actix_rt::System::new();
    let (limiter, server, scrape_text, (status_code, status_body)) = system.block_on({
        let metrics = metrics.clone();
        let run = run.clone();
        let db_url = db.url.clone();
        async move {
            let limiter = RateLimiterHandle::start(RateLimiterSettings {
                rate_per_minute: 6000,
                org_concurrency: 6,
                concurrency_buffer: 0,
                retry_after_jitter_ms: 50,
                ..Default::default()
            })
            .unwrap();
            let mut client = GenesysClient::new(
                GenesysSettings {
                    api_url: Some(base),
                    backoff_base_ms: 10,
                    backoff_cap_ms: 50,
                    ..Default::default()
                },
                Credentials::new(DEFAULT_CLIENT_ID, Secret::new(DEFAULT_CLIENT_SECRET)),
                limiter.clone(),
            )
            .unwrap();
            client.set_observer(metrics.clone());
            let server = admin::start(
                "127.0.0.1:0".parse().unwrap(),
                AdminState::for_engine(
                    metrics,
                    db_url,
                    LiveEngine {
                        limiter: Some(limiter.clone()),
                        writer: None,
                    },
                    run,
                    chrono::Duration::hours(4),
                ),
            )
            .unwrap();
            // 24 pages (4 of 400 conversations' day, six times) from 12 concurrent callers.
            let calls = (0..24i64).map(|i| {
                let client = client.clone();
                async move {
                    client
                        .query_conversations(&query(sim_now, 1 + i % 4), Priority::Backfill)
                        .await
                }
            });
            let results = join_all(calls).await;
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
                .collect();
            assert!(failed.is_empty(), "queries failed: {failed:?}");
            // Scrape while the limiter's System runs (the admin server asks the actor).
            let scrape_text = get_async(format!("{}/metrics", server.base_url())).await.1;
            let status_body = get_async(format!("{}/status", server.base_url())).await;
            (limiter, server, scrape_text, status_body)
        }
    });

    let stats = sim.stats();
    let scrape = Scrape::parse(&scrape_text);

    let ours = |v: &serde_json::Value| v[DEFAULT_CLIENT_ID].as_f64().unwrap_or(0.0);
    let sim_api_requests = ours(&stats["requests"]["byClient"]);
    let sim_429 = ours(&stats["rateLimited"]["byClient"]);
    let sim_tokens = stats["requests"]["byEndpoint"]["oauth.token"]
        .as_f64()
        .unwrap_or(0.0);
    let by_endpoint = scrape.by_label("sluice_requests_total", "endpoint");
    let api_requests: f64 = by_endpoint
        .iter()
        .filter(|(e, _)| e.as_str() != "oauth.token")
        .map(|(_, v)| v)
        .sum();
    println!(
        "sim: {sim_api_requests} API requests, {sim_429} answered 429, {sim_tokens} token requests; \
         /metrics by status: {:?}",
        scrape.by_label("sluice_requests_total", "status")
    );
    assert!(sim_429 > 0.0, "the test must provoke 429s: {stats}");
    let by_status = scrape.by_label("sluice_requests_total", "status");
    let counted_5xx: f64 = by_status
        .iter()
        .filter(|(s, _)| s.starts_with('5'))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        Some(counted_5xx),
        stats["faults"]["5xx"].as_f64(),
        "5xx answers by status: {by_status:?} vs {stats}"
    );
    assert_eq!(api_requests, sim_api_requests, "API attempts: {stats}");
    assert_eq!(
        by_endpoint.get("oauth.token").copied().unwrap_or(0.0),
        sim_tokens,
        "token requests"
    );
    assert_eq!(scrape.sum("sluice_rate_limited_total", &[]), sim_429);
    assert_eq!(
        scrape.sum("sluice_requests_total", &[("status", "429")]),
        sim_429
    );
    // The limiter's own view agrees, and its state is exported.
    let state = system.block_on(async { limiter.state().await.unwrap() });
    assert_eq!(state.rate_limited as f64, sim_429);
    let pauses = scrape.sum("sluice_retry_after_pauses_total", &[]);
    assert!(pauses >= 1.0 && pauses <= sim_429, "pauses {pauses}");
    // The org's real cap (2) is below what we were told (6): the limiter lowers its own cap
    // (adaptive reductions), and the gauges show it.
    let cap = scrape.sum("sluice_rate_limiter_concurrency_cap", &[]);
    assert!((1.0..=6.0).contains(&cap), "cap {cap}");
    assert_eq!(cap, f64::from(state.concurrency_cap));
    if cap < 6.0 {
        assert!(scrape.sum("sluice_rate_limiter_reductions_total", &[]) >= 1.0);
    }
    assert_eq!(
        scrape.sum("sluice_rate_limiter_budget_per_minute", &[]),
        6000.0
    );
    assert_eq!(scrape.sum("sluice_requests_in_flight", &[]), 0.0);
    assert!(scrape.has("sluice_rate_limited_ratio"));
    assert!(scrape.sum("sluice_run_start_time_seconds", &[]) > 1.0e9);

    assert_eq!(status_code, 200);
    let status: serde_json::Value = serde_json::from_str(&status_body).unwrap();
    assert_eq!(status["requests"]["rate_limited"].as_f64(), Some(sim_429));
    assert_eq!(status["limiter"]["concurrency_cap"].as_f64(), Some(cap));
    let status_text = status.to_string();
    for text in [&scrape_text, &status_text] {
        assert!(!text.contains(DEFAULT_CLIENT_SECRET), "secret leaked");
    }
    server.stop();
    sim.stop();
}
