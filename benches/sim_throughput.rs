//! Simulator throughput: conversations per second served in synchronous query pages with
//! `--no-limits`, by one in-process simulator (2 HTTP workers) to concurrent awc clients over
//! loopback. Prints the figure recorded in BENCHMARKS.md.
//!
//! `cargo bench --bench sim_throughput` (env: SIM_BENCH_SECS=10, SIM_BENCH_CONCURRENCY=32,
//! SIM_BENCH_PER_DAY=20000, SIM_BENCH_CLIENT_THREADS=1).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sluice::genesys::model::Interval;
use sluice::sim::{self, SimConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[derive(Default)]
struct Totals {
    pages: AtomicU64,
    conversations: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

fn count(body: &[u8]) -> u64 {
    let pat = b"{\"conversationId\"";
    body.windows(pat.len()).filter(|w| *w == pat).count() as u64
}

fn main() {
    let secs: u64 = env("SIM_BENCH_SECS", 10);
    let concurrency: usize = env("SIM_BENCH_CONCURRENCY", 32);
    let per_day: u32 = env("SIM_BENCH_PER_DAY", 20_000);
    let client_threads: usize = env("SIM_BENCH_CLIENT_THREADS", 1);
    let now = Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap();
    let cfg = SimConfig {
        per_day,
        days: 2,
        users: 200,
        now: Some(now),
        no_limits: true,
        ..SimConfig::default()
    };
    let sim = sim::start(cfg).expect("simulator starts");
    let base = sim.base_url();
    // One-hour partitions of the last full day, 100 per page.
    let day = now - chrono::Duration::days(1);
    let intervals: Arc<Vec<String>> = Arc::new(
        (0..24)
            .map(|h| {
                let a = day + chrono::Duration::hours(h);
                Interval::new(a, a + chrono::Duration::hours(1)).to_string()
            })
            .collect(),
    );
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));

    let run = |warm: bool, secs: u64| {
        let start = Instant::now();
        let handles: Vec<_> = (0..client_threads)
            .map(|t| {
                let base = base.clone();
                let intervals = intervals.clone();
                let totals = totals.clone();
                let stop = stop.clone();
                let measuring = measuring.clone();
                std::thread::spawn(move || {
                    actix_rt::System::new().block_on(async move {
                        let client = awc::Client::builder()
                            .timeout(Duration::from_secs(30))
                            .finish();
                        use base64::Engine;
                        let basic = base64::engine::general_purpose::STANDARD
                            .encode(format!("{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}"));
                        let mut r = client
                            .post(format!("{base}/oauth/token"))
                            .insert_header(("Authorization", format!("Basic {basic}")))
                            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                            .send_body("grant_type=client_credentials")
                            .await
                            .expect("token");
                        let tok: serde_json::Value = r.json().await.expect("token json");
                        let bearer = format!("Bearer {}", tok["access_token"].as_str().unwrap());
                        let per_thread = concurrency / client_threads;
                        let tasks = (0..per_thread).map(|i| {
                            let client = client.clone();
                            let base = base.clone();
                            let bearer = bearer.clone();
                            let intervals = intervals.clone();
                            let totals = totals.clone();
                            let stop = stop.clone();
                            let measuring = measuring.clone();
                            async move {
                                let mut k = t * per_thread + i;
                                while !stop.load(Ordering::Relaxed) {
                                    let iv = &intervals[k % intervals.len()];
                                    let page = 1 + (k / intervals.len()) % 8;
                                    k += concurrency;
                                    let body = format!(
                                        r#"{{"interval":"{iv}","paging":{{"pageSize":100,"pageNumber":{page}}}}}"#
                                    );
                                    let res = client
                                        .post(format!("{base}/api/v2/analytics/conversations/details/query"))
                                        .insert_header(("Authorization", bearer.as_str()))
                                        .insert_header(("Content-Type", "application/json"))
                                        .send_body(body)
                                        .await;
                                    let Ok(mut res) = res else {
                                        totals.errors.fetch_add(1, Ordering::Relaxed);
                                        continue;
                                    };
                                    let ok = res.status().as_u16() == 200;
                                    let Ok(b) = res.body().limit(64 << 20).await else {
                                        totals.errors.fetch_add(1, Ordering::Relaxed);
                                        continue;
                                    };
                                    if !ok {
                                        totals.errors.fetch_add(1, Ordering::Relaxed);
                                        continue;
                                    }
                                    if measuring.load(Ordering::Relaxed) {
                                        totals.pages.fetch_add(1, Ordering::Relaxed);
                                        totals.conversations.fetch_add(count(&b), Ordering::Relaxed);
                                        totals.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                                    }
                                }
                            }
                        });
                        futures_util::future::join_all(tasks).await;
                    })
                })
            })
            .collect();
        measuring.store(!warm, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        let elapsed = start.elapsed();
        for h in handles {
            let _ = h.join();
        }
        stop.store(false, Ordering::Relaxed);
        elapsed
    };

    // Warm-up pass: generates the day's hours and fills the JSON cache.
    run(true, 3);
    let elapsed = run(false, secs).as_secs_f64();
    let pages = totals.pages.load(Ordering::Relaxed);
    let convs = totals.conversations.load(Ordering::Relaxed);
    let bytes = totals.bytes.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    println!(
        "sim_throughput: {:.0} conversations/s, {:.0} pages/s, {:.1} MB/s, {} errors \
         ({} s, {} concurrent requests, {} client threads, {} conversations/day, 2 sim workers)",
        convs as f64 / elapsed,
        pages as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        errors,
        secs,
        concurrency,
        client_threads,
        per_day
    );
    sim.stop();
}
