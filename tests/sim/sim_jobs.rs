//! Detail jobs over real HTTP: lifecycle (QUEUED → PENDING → FULFILLED), results paging with a
//! cursor, the data-availability cut, interval matching, expiry, deletion, FAILED by fault
//! injection and the job cap with its Retry-After.
use crate::common;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use common::sim::*;
use serde_json::{json, Value};
use sluice::genesys::model::Interval;

fn iv(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> String {
    Interval::new(a, b).to_string()
}

/// Polls a job's status until it leaves QUEUED/PENDING; returns the states seen in order.
async fn wait_done(api: &Api, base: &str, id: &str) -> Vec<String> {
    let mut states = Vec::new();
    loop {
        let r = api.get(&format!("{base}/{id}")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let s = r.json()["state"].as_str().unwrap().to_string();
        if states.last() != Some(&s) {
            states.push(s.clone());
        }
        if s != "QUEUED" && s != "PENDING" {
            return states;
        }
        actix_rt::time::sleep(StdDuration::from_millis(50)).await; // polling interval
    }
}

async fn all_results(
    api: &Api,
    base: &str,
    id: &str,
    key: &str,
    page_size: usize,
) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{base}/{id}/results?pageSize={page_size}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        pages += 1;
        assert!(v["dataAvailabilityDate"].is_string());
        assert!(
            v.get("totalHits").is_none(),
            "job results carry no totalHits"
        );
        if let Some(items) = v.get(key) {
            out.extend(items.as_array().unwrap().iter().cloned());
        }
        match v.get("cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => return (out, pages),
        }
    }
}

#[actix_rt::test]
async fn conversation_job_lifecycle_results_and_matching() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let ds = sim.dataset();
    let d = (test_now() - Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let interval = iv(d, d + Duration::hours(2));
    let r = api.post(CONV_JOBS, &json!({"interval": interval})).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    // Results before completion are refused.
    assert_eq!(
        api.get(&format!("{CONV_JOBS}/{id}/results")).await.status,
        400
    );
    let states = wait_done(&api, CONV_JOBS, &id).await;
    assert_eq!(states.first().map(String::as_str), Some("QUEUED"));
    assert_eq!(states.last().map(String::as_str), Some("FULFILLED"));
    let st = api.get(&format!("{CONV_JOBS}/{id}")).await.json();
    for k in ["submissionDate", "completionDate", "expirationDate"] {
        assert!(st[k].is_string(), "{k}");
    }
    let (convs, pages) = all_results(&api, CONV_JOBS, &id, "conversations", 3).await;
    assert!(pages > 2);
    // Overlap matching: every conversation active in the interval, including the ones started
    // the day before and still running at midnight.
    let got: Vec<String> = convs
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap().to_string())
        .collect();
    let truth: Vec<String> = ds
        .conversations_started_in(Interval::new(d - Duration::days(1), d + Duration::hours(2)))
        .into_iter()
        .filter(|c| c.conversation_end.unwrap() > d)
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(got, truth);
    assert!(convs
        .iter()
        .any(|c| c["conversationStart"].as_str().unwrap() < "2024-03-09"));
    // Job results carry participant attributes; the query does not.
    assert!(convs
        .iter()
        .any(|c| c["participants"][0].get("attributes").is_some()));
    // startOfDayIntervalMatching gives the query's rule.
    let r = api
        .post(
            CONV_JOBS,
            &json!({"interval": interval, "startOfDayIntervalMatching": true}),
        )
        .await;
    let id2 = r.json()["jobId"].as_str().unwrap().to_string();
    wait_done(&api, CONV_JOBS, &id2).await;
    let (convs2, _) = all_results(&api, CONV_JOBS, &id2, "conversations", 1000).await;
    assert!(convs2
        .iter()
        .all(|c| c["conversationStart"].as_str().unwrap() >= "2024-03-09"));
    assert!(convs2.len() < convs.len());
    // Bad page size and cursor.
    assert_eq!(
        api.get(&format!("{CONV_JOBS}/{id}/results?pageSize=1001"))
            .await
            .status,
        400
    );
    assert_eq!(
        api.get(&format!("{CONV_JOBS}/{id}/results?cursor=!!"))
            .await
            .status,
        400
    );
    // Delete: then 404.
    assert_eq!(api.delete(&format!("{CONV_JOBS}/{id}")).await.status, 204);
    assert_eq!(api.get(&format!("{CONV_JOBS}/{id}")).await.status, 404);
    assert_eq!(api.delete(&format!("{CONV_JOBS}/{id}")).await.status, 404);
}

#[actix_rt::test]
async fn jobs_see_only_data_before_availability_and_expire() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now();
    let avail = api.get(&format!("{CONV_JOBS}/availability")).await.json();
    assert_eq!(avail["dataAvailabilityDate"], "2024-03-10T06:00:00.000Z");
    let users_avail = api.get(&format!("{USER_JOBS}/availability")).await.json();
    assert_eq!(
        users_avail["dataAvailabilityDate"],
        "2024-03-10T06:00:00.000Z"
    );
    let r = api
        .post(
            CONV_JOBS,
            &json!({"interval": iv(n - Duration::hours(12), n)}),
        )
        .await;
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    wait_done(&api, CONV_JOBS, &id).await;
    let (convs, _) = all_results(&api, CONV_JOBS, &id, "conversations", 1000).await;
    assert!(!convs.is_empty());
    assert!(convs
        .iter()
        .all(|c| c["conversationStart"].as_str().unwrap() <= "2024-03-10T06:00:00.000Z"));
    // conversations running at the availability date are seen as they were then
    assert!(convs.iter().any(|c| c.get("conversationEnd").is_none()));
    // Results expire 24 h (simulated) after completion.
    let st = api.get(&format!("{CONV_JOBS}/{id}")).await.json();
    let exp = chrono::DateTime::parse_from_rfc3339(st["expirationDate"].as_str().unwrap()).unwrap();
    sim.set_now(exp.with_timezone(&chrono::Utc));
    assert_eq!(
        api.get(&format!("{CONV_JOBS}/{id}")).await.json()["state"],
        "EXPIRED"
    );
    let r = api.get(&format!("{CONV_JOBS}/{id}/results")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not.found");
}

#[actix_rt::test]
async fn user_jobs_return_whole_timelines() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now() - Duration::days(1);
    let interval = iv(n - Duration::days(1), n);
    let r = api.post(USER_JOBS, &json!({"interval": interval})).await;
    assert_eq!(r.status, 202);
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    assert_eq!(
        wait_done(&api, USER_JOBS, &id).await.last().unwrap(),
        "FULFILLED"
    );
    // a conversations job id is not a users job
    assert_eq!(api.get(&format!("{CONV_JOBS}/{id}")).await.status, 404);
    let (users, _) = all_results(&api, USER_JOBS, &id, "userDetails", 5).await;
    assert_eq!(users.len(), 12);
    let truth = sim.dataset().user_details(
        Interval::parse(&interval).unwrap(),
        test_now() - Duration::hours(6),
    );
    let p: usize = users
        .iter()
        .map(|u| u["primaryPresence"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        p,
        truth
            .iter()
            .map(|u| u.primary_presence.len())
            .sum::<usize>()
    );
}

#[actix_rt::test]
async fn failed_jobs_by_fault_injection() {
    let mut cfg = small_config();
    cfg.fault_job_failed = 1.0;
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let n = test_now() - Duration::days(1);
    let id = api
        .post(
            CONV_JOBS,
            &json!({"interval": iv(n, n + Duration::hours(1))}),
        )
        .await
        .json()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        wait_done(&api, CONV_JOBS, &id).await.last().unwrap(),
        "FAILED"
    );
    let st = api.get(&format!("{CONV_JOBS}/{id}")).await.json();
    assert!(st["errorMessage"].is_string());
    assert_eq!(api.stats().await["faults"]["jobsFailed"], 1);
}

#[actix_rt::test]
async fn job_cap_429_until_a_place_frees_up() {
    let mut cfg = small_config();
    cfg.no_limits = false;
    cfg.job_concurrency = 2;
    cfg.job_delay = StdDuration::from_millis(1500);
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let n = test_now() - Duration::days(1);
    let body = json!({"interval": iv(n, n + Duration::hours(1))});
    assert_eq!(api.post(CONV_JOBS, &body).await.status, 202);
    assert_eq!(api.post(USER_JOBS, &body).await.status, 202);
    let r = api.post(CONV_JOBS, &body).await;
    let refused_at = Instant::now();
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["code"], "too.many.requests.retry.after");
    let secs: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    assert_eq!(
        v["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds")
    );
    let stats = api.stats().await;
    assert_eq!(stats["rateLimited"]["byCause"]["jobs"], 1);
    // At the Retry-After instant a submission succeeds.
    actix_rt::time::sleep_until((refused_at + StdDuration::from_secs(secs)).into()).await;
    assert_eq!(api.post(CONV_JOBS, &body).await.status, 202);
}
