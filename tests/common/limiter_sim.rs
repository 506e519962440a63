//! Helpers for tests that run the client and the RateLimiter against the simulator.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use sluice::actors::rate_limiter::{RateLimiterHandle, RateLimiterSettings};
use sluice::genesys::{Credentials, GenesysClient, GenesysSettings, Secret};
use sluice::sim::{SimHandle, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

/// The simulated "now" these tests fix (history lies before it).
pub fn sim_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap()
}

/// A client for `sim` with the default OAuth client, paced by `limiter`.
pub fn client(sim: &SimHandle, limiter: &RateLimiterHandle, max_attempts: u32) -> GenesysClient {
    GenesysClient::new(
        GenesysSettings {
            api_url: Some(sim.base_url()),
            max_attempts,
            backoff_base_ms: 20,
            backoff_cap_ms: 200,
            ..Default::default()
        },
        Credentials::new(DEFAULT_CLIENT_ID, Secret::new(DEFAULT_CLIENT_SECRET)),
        limiter.clone(),
    )
    .expect("client settings")
}

/// A limiter for a server window of `window_secs` holding `per_window` requests.
pub fn limiter_for(per_window: u32, window_secs: u64, org_concurrency: u32) -> RateLimiterHandle {
    RateLimiterHandle::start(RateLimiterSettings {
        rate_per_minute: per_window * 60 / window_secs as u32,
        window_secs,
        org_concurrency,
        retry_after_jitter_ms: 200,
        ..Default::default()
    })
    .expect("limiter settings")
}

/// `stats[a][b]…` as u64 (0 when absent).
pub fn stat(stats: &serde_json::Value, path: &[&str]) -> u64 {
    let mut v = stats;
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or(0)
}
