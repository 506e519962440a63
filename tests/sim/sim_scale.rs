//! Jobs and counters at scale (issue 13): a job's run time grows with its result size, results
//! pages reach 1,000 with no cursor on the last one, the overlap rule with and without
//! `startOfDayIntervalMatching` on a whole day, and `/__sim/stats` counting records served
//! against unique records and the slots in use.
use crate::common;

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use common::sim::*;
use serde_json::{json, Value};
use sluice::genesys::model::{parse_instant, Interval};

fn iv(a: DateTime<Utc>, b: DateTime<Utc>) -> String {
    Interval::new(a, b).to_string()
}

fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// Submits a job and polls it (a plain polling loop; nothing is asserted on real time) until it
/// is done; returns the final status document.
async fn run_job(api: &Api, body: &Value) -> (String, Value) {
    let r = api.post(CONV_JOBS, body).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    loop {
        let st = api.get(&format!("{CONV_JOBS}/{id}")).await.json();
        let s = st["state"].as_str().unwrap().to_string();
        if s != "QUEUED" && s != "PENDING" {
            return (id, st);
        }
        actix_rt::time::sleep(StdDuration::from_millis(25)).await;
    }
}

/// Reads every results page at `page_size`: (conversation ids, page lengths, cursor present).
async fn read_results(api: &Api, id: &str, page_size: usize) -> (Vec<String>, Vec<(usize, bool)>) {
    let mut ids = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{CONV_JOBS}/{id}/results?pageSize={page_size}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        let items = v["conversations"].as_array().cloned().unwrap_or_default();
        ids.extend(
            items
                .iter()
                .map(|c| c["conversationId"].as_str().unwrap().to_string()),
        );
        cursor = v.get("cursor").and_then(Value::as_str).map(str::to_string);
        pages.push((items.len(), cursor.is_some()));
        if cursor.is_none() {
            return (ids, pages);
        }
    }
}

fn completion_minus_submission(st: &Value) -> Duration {
    let s = parse_instant(st["submissionDate"].as_str().unwrap()).unwrap();
    let c = parse_instant(st["completionDate"].as_str().unwrap()).unwrap();
    c - s
}

#[actix_rt::test]
async fn job_run_time_grows_with_its_result_size() {
    // The simulated clock is fixed, so completionDate - submissionDate is exactly the run time
    // the simulator gave the job: 40 ms + 20 s per 10,000 results.
    let mut cfg = small_config();
    cfg.job_delay = StdDuration::from_millis(40);
    cfg.job_run_per_10k = StdDuration::from_secs(20);
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let day = day_start(test_now()) - Duration::days(2);
    let mut runs = Vec::new();
    for hours in [1, 6] {
        let body = json!({"interval": iv(day, day + Duration::hours(hours)),
                          "startOfDayIntervalMatching": true});
        let (id, st) = run_job(&api, &body).await;
        assert_eq!(st["state"], "FULFILLED");
        let (ids, _) = read_results(&api, &id, 1000).await;
        let want = Duration::milliseconds(40 + (ids.len() as i64 * 20_000) / 10_000);
        let got = completion_minus_submission(&st);
        assert!(
            (got - want).num_milliseconds().abs() <= 1,
            "{} results: run {got:?}, want {want:?}",
            ids.len()
        );
        runs.push((ids.len(), got));
    }
    assert!(runs[1].0 > runs[0].0 && runs[1].1 > runs[0].1, "{runs:?}");
}

#[actix_rt::test]
async fn results_pages_reach_1000_and_the_last_has_no_cursor() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let to = day_start(test_now());
    let body = json!({"interval": iv(to - Duration::days(3), to)});
    let (id, st) = run_job(&api, &body).await;
    assert_eq!(st["state"], "FULFILLED");
    let (ids, pages) = read_results(&api, &id, 1000).await;
    assert!(ids.len() > 1000, "{}", ids.len());
    let (last, firsts) = pages.split_last().unwrap();
    assert!(firsts.iter().all(|&(n, cursor)| n == 1000 && cursor));
    assert_eq!(*last, (ids.len() - 1000 * firsts.len(), false));
    // Above the largest page size: 400, with the rule in the message.
    let r = api
        .get(&format!("{CONV_JOBS}/{id}/results?pageSize=1001"))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("1000"));
}

#[actix_rt::test]
async fn overlap_rule_on_a_whole_day_with_and_without_the_flag() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let ds = sim.dataset();
    let day = day_start(test_now()) - Duration::days(1);
    let next = day + Duration::days(1);
    // Without the flag: every conversation whose lifetime overlaps the day, so the ones the day
    // before that were still running at midnight come back again.
    let (id, _) = run_job(&api, &json!({"interval": iv(day, next)})).await;
    let (overlap, _) = read_results(&api, &id, 1000).await;
    let want: Vec<String> = ds
        .conversations_started_in(Interval::new(day - Duration::days(1), next))
        .into_iter()
        .filter(|c| c.conversation_end.is_none_or(|e| e > day))
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(overlap, want);
    // With it: the query's rule, i.e. exactly the conversations started on that day.
    let (id, _) = run_job(
        &api,
        &json!({"interval": iv(day, next), "startOfDayIntervalMatching": true}),
    )
    .await;
    let (start_day, _) = read_results(&api, &id, 1000).await;
    let want: Vec<String> = ds
        .conversations_started_in(Interval::new(day, next))
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(start_day, want);
    assert!(overlap.len() > start_day.len());
    // The same two jobs for adjacent days: with the flag, nothing is served twice.
    let (id, _) = run_job(
        &api,
        &json!({"interval": iv(day - Duration::days(1), day), "startOfDayIntervalMatching": true}),
    )
    .await;
    let (before, _) = read_results(&api, &id, 1000).await;
    let both: HashSet<&String> = before.iter().chain(&start_day).collect();
    assert_eq!(both.len(), before.len() + start_day.len());
}

#[actix_rt::test]
async fn stats_count_records_served_against_unique_records_and_slots_in_use() {
    let mut cfg = small_config();
    cfg.latency_ms = Some((20, 20));
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let day = day_start(test_now()) - Duration::days(1);
    // Two overlapping synchronous blocks: 00-12 and 06-18 (the second re-serves 06-12 and, by
    // the query's day rule, more besides).
    let (a, _) = page_all(
        &api,
        &json!({"interval": iv(day, day + Duration::hours(12))}),
        100,
    )
    .await;
    let (b, _) = page_all(
        &api,
        &json!({"interval": iv(day + Duration::hours(6), day + Duration::hours(18))}),
        100,
    )
    .await;
    // A job over the whole day, read in pages of 250.
    let (id, _) = run_job(
        &api,
        &json!({"interval": iv(day, day + Duration::days(1)), "startOfDayIntervalMatching": true}),
    )
    .await;
    let (c, _) = read_results(&api, &id, 250).await;
    let unique: HashSet<&String> = a.iter().chain(&b).chain(&c).collect();
    let s = api.stats().await;
    let conv = &s["served"]["conversations"];
    assert_eq!(conv["served"], (a.len() + b.len() + c.len()) as u64);
    assert_eq!(conv["unique"], unique.len() as u64);
    assert!(conv["servedPerUnique"].as_f64().unwrap() > 1.0);

    // Users: the same user query twice serves every status record twice, uniquely once.
    let body = json!({"interval": iv(day, day + Duration::hours(4)),
                      "paging": {"pageSize": 100, "pageNumber": 1}});
    let r = api.post(USERS_QUERY, &body).await;
    assert_eq!(r.status, 200);
    let records: u64 = r.json()["userDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (u["primaryPresence"].as_array().map_or(0, Vec::len)
                + u["routingStatus"].as_array().map_or(0, Vec::len)) as u64
        })
        .sum();
    assert!(records > 0);
    assert_eq!(api.post(USERS_QUERY, &body).await.status, 200);
    let s = api.stats().await;
    assert_eq!(s["served"]["users"]["served"], 2 * records);
    assert_eq!(s["served"]["users"]["unique"], records);

    // Slots: requests were sequential with 20 ms of latency each, so on average at most one
    // was in flight, and some time was spent with one in flight.
    let mean = s["inFlightMean"].as_f64().unwrap();
    assert!(mean > 0.0 && mean <= 1.0, "{mean}");
    assert!(s["inFlightSpanSecs"].as_f64().unwrap() > 0.0);
    assert_eq!(s["peakConcurrency"], 1);
}
