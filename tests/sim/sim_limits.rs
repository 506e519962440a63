//! Limits and faults over real HTTP: the per-client window, the org concurrency cap (shared
//! with the background integration, whose refusals are counted as collateral damage), the 429
//! answer and its Retry-After instant, and fault injection rates.
use crate::common;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use common::sim::*;
use serde_json::json;
use sluice::genesys::model::Interval;
use sluice::sim::SimConfig;

fn body() -> serde_json::Value {
    let n = test_now() - Duration::days(1);
    json!({"interval": Interval::new(n, n + Duration::hours(1)).to_string(), "paging": {"pageSize": 1, "pageNumber": 1}})
}

fn limited(f: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut cfg = small_config();
    cfg.no_limits = false;
    f(&mut cfg);
    cfg
}

fn assert_429(r: &Resp) -> u64 {
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    let secs: u64 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    let v = r.json();
    assert_eq!(v["code"], "too.many.requests.retry.after");
    assert_eq!(v["status"], 429);
    assert_eq!(
        v["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds")
    );
    assert!(v["contextId"].is_string());
    assert_eq!(v["details"], json!([]));
    assert_eq!(v["errors"], json!([]));
    secs
}

#[actix_rt::test]
async fn window_exceeded_gives_429_and_the_retry_after_instant_succeeds() {
    let sim = start(limited(|c| {
        c.rate_per_minute = 5;
        c.window = StdDuration::from_secs(3);
    }));
    let api = Api::new(&sim).login().await;
    let b = body();
    // Use up the window (the token request does not count).
    let mut ok = 0;
    let (secs, refused_at) = loop {
        let r = api.post(QUERY, &b).await;
        if r.status == 429 {
            break (assert_429(&r), Instant::now());
        }
        assert_eq!(r.status, 200);
        ok += 1;
        assert!(
            ok <= 10,
            "a window turned at most once while we were sending"
        );
    };
    assert!((1..=3).contains(&secs), "{secs}");
    let mut refusals = 1;
    if secs >= 2 {
        // At least a second of this window is left: further requests are refused too, and
        // refusals do not use up anything.
        assert_eq!(api.post(QUERY, &b).await.status, 429);
        let v = api.post(QUERY, &b).await.json();
        assert_eq!(v["limit"]["value"], 5);
        refusals += 2;
    }
    actix_rt::time::sleep_until((refused_at + StdDuration::from_secs(secs)).into()).await;
    assert_eq!(
        api.post(QUERY, &b).await.status,
        200,
        "a request at the Retry-After instant succeeds"
    );
    let s = api.stats().await;
    assert_eq!(s["rateLimited"]["byCause"]["rate"], refusals);
    assert_eq!(s["rateLimited"]["byClient"]["sluice-sim"], refusals);
    let windows = s["requestsPerWindow"].as_array().unwrap();
    assert!(s["startedAt"].is_string());
    assert!(windows
        .iter()
        .all(|w| w["start"].is_string() && w["startOffsetSecs"].is_number()));
    assert!(windows
        .iter()
        .all(|w| w["requests"].as_u64().unwrap() - w["rateLimited"].as_u64().unwrap() <= 5));
    // A second client has its own window.
    let mut cfg2 = limited(|c| {
        c.rate_per_minute = 1;
        c.window = StdDuration::from_secs(60);
        c.clients =
            sluice::sim::config::Clients(vec![("a".into(), "x".into()), ("b".into(), "y".into())]);
    });
    cfg2.seed = 3;
    let sim2 = start(cfg2);
    let mut a = Api::new(&sim2);
    let mut bb = Api::new(&sim2);
    a.token = Some(
        a.token_basic("a", "x").await.json()["access_token"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    bb.token = Some(
        bb.token_basic("b", "y").await.json()["access_token"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert_eq!(a.post(QUERY, &b).await.status, 200);
    let r = a.post(QUERY, &b).await;
    let secs = assert_429(&r);
    assert!(secs <= 60);
    assert_eq!(bb.post(QUERY, &b).await.status, 200);
}

#[actix_rt::test]
async fn org_concurrency_cap_refuses_and_counts_breaches() {
    let sim = start(limited(|c| {
        c.concurrency = 2;
        c.latency_ms = Some((300, 300));
    }));
    let api = Api::new(&sim).login().await;
    let b = body();
    let rs = futures_util::future::join_all((0..5).map(|_| api.post(QUERY, &b))).await;
    let ok = rs.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Resp> = rs.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok, 2);
    assert_eq!(refused.len(), 3);
    for r in &refused {
        assert_eq!(assert_429(r), 1);
    }
    let refused_at = Instant::now();
    let s = api.stats().await;
    assert_eq!(s["peakConcurrency"], 2);
    assert_eq!(s["concurrencyBreaches"], 3);
    assert_eq!(s["rateLimited"]["byCause"]["concurrency"], 3);
    assert_eq!(s["collateral429s"], 0);
    // The in-flight requests have finished (300 ms) by the Retry-After instant.
    actix_rt::time::sleep_until((refused_at + StdDuration::from_secs(1)).into()).await;
    assert_eq!(api.post(QUERY, &b).await.status, 200);
}

#[actix_rt::test]
async fn background_integration_suffers_collateral_429s_only_when_we_fill_the_pool() {
    let sim = start(limited(|c| {
        c.concurrency = 4;
        c.latency_ms = Some((100, 100));
        c.bg_rps = 40.0;
        c.bg_concurrency = 2;
    }));
    let api = Api::new(&sim).login().await;
    let b = body();
    // Polite phase: one request at a time (≤ 1 + 2 background in flight < 4).
    for _ in 0..10 {
        assert_eq!(api.post(QUERY, &b).await.status, 200);
    }
    let s = api.stats().await;
    assert!(s["background"]["requests"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["collateral429s"], 0, "{s}");
    // Greedy phase: we keep 4 requests in flight, the whole pool.
    for _ in 0..10 {
        futures_util::future::join_all((0..4).map(|_| api.post(QUERY, &b))).await;
    }
    let s = api.stats().await;
    assert!(s["collateral429s"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(
        s["background"]["rateLimited"],
        s["rateLimited"]["byClient"]["background-integration"]
    );
    assert!(
        s["requests"]["byClient"]["background-integration"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[actix_rt::test]
async fn fault_injection_rates_within_tolerance() {
    let mut cfg = small_config();
    cfg.fault_5xx = 0.2;
    cfg.fault_malformed = 0.1;
    cfg.total_hits_drift = 0.5;
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let b = body();
    let n = 500;
    let (mut e5, mut bad, mut ok) = (0, 0, 0);
    let mut totals = std::collections::BTreeSet::new();
    for _ in 0..n {
        let r = api.post(QUERY, &b).await;
        match r.status {
            502..=504 => {
                let v = r.json();
                assert_eq!(v["status"], r.status as i64);
                e5 += 1;
            }
            200 => match serde_json::from_slice::<serde_json::Value>(&r.body) {
                Ok(v) => {
                    ok += 1;
                    totals.insert(v["totalHits"].as_i64().unwrap());
                }
                Err(_) => bad += 1,
            },
            s => panic!("unexpected status {s}"),
        }
    }
    // 20 % ± 5 points of 500; malformed 10 % of the rest ± 4 points.
    assert!((75..=125).contains(&e5), "5xx {e5}");
    assert!((24..=64).contains(&bad), "malformed {bad}");
    assert_eq!(e5 + bad + ok, n);
    assert!(totals.len() > 1, "totalHits drifts between pages");
    let s = api.stats().await;
    assert_eq!(s["faults"]["5xx"], e5);
    assert_eq!(s["faults"]["malformed"], bad);
}

#[actix_rt::test]
async fn legacy_rate_headers_only_when_asked_for() {
    let sim = start(limited(|c| c.rate_per_minute = 50));
    let api = Api::new(&sim).login().await;
    let r = api.post(QUERY, &body()).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("inin-ratelimit-allowed").is_none(),
        "removed from the live API in 2021"
    );
    let sim = start(limited(|c| {
        c.rate_per_minute = 50;
        c.legacy_headers = true;
    }));
    let api = Api::new(&sim).login().await;
    api.post(QUERY, &body()).await;
    let r = api.post(QUERY, &body()).await;
    assert_eq!(r.header("inin-ratelimit-allowed").as_deref(), Some("50"));
    let count: u32 = r.header("inin-ratelimit-count").unwrap().parse().unwrap();
    assert!((1..=2).contains(&count));
    let reset: u64 = r.header("inin-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset <= 60);
}
