//! The simulated analytics pipeline (`POST /__sim/pipeline`, `--pipeline-nightly`): it revises
//! and deletes a deterministic share of the conversations (and user records) old enough, and
//! every read path — the query, jobs, conversations by id — and the ground truth
//! (`/__sim/expected/digests`) agree on the result.
use crate::common;

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use common::sim::*;
use serde_json::{json, Value};
use sluice::digest::{conversation_digest, ContentDigests};
use sluice::genesys::model::{Conversation, Interval};
use sluice::sim::SimConfig;

fn history(now: DateTime<Utc>) -> Interval {
    let start = sluice::partition::day_start(now) - Duration::days(3);
    Interval::new(start, now)
}

async fn digests(api: &Api, interval: Interval) -> ContentDigests {
    let r = api
        .get(&format!("/__sim/expected/digests?interval={interval}"))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).expect("digests parse")
}

async fn pipeline(api: &Api, body: Value) -> Value {
    let r = api.post("/__sim/pipeline", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn parse(c: &Value) -> Conversation {
    serde_json::from_value(c.clone()).expect("a conversation")
}

/// Every conversation of a conversation query over `interval`.
async fn query(api: &Api, interval: Interval) -> Vec<Conversation> {
    let mut out = Vec::new();
    for n in 1.. {
        let body =
            json!({"interval": interval.to_string(), "paging": {"pageSize": 100, "pageNumber": n}});
        let r = api.post(QUERY, &body).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        match r.json().get("conversations") {
            None => return out,
            Some(cs) => out.extend(cs.as_array().unwrap().iter().map(parse)),
        }
    }
    out
}

/// Every conversation of a finished conversation job over `interval`.
async fn job(api: &Api, interval: Interval) -> Vec<Conversation> {
    let r = api
        .post(CONV_JOBS, &json!({"interval": interval.to_string()}))
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    loop {
        let s = api.get(&format!("{CONV_JOBS}/{id}")).await.json();
        match s["state"].as_str() {
            Some("FULFILLED") => break,
            Some("QUEUED" | "PENDING") => {
                actix_rt::time::sleep(StdDuration::from_millis(50)).await // job polling
            }
            other => panic!("job ended {other:?}"),
        }
    }
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{CONV_JOBS}/{id}/results?pageSize=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let v = api.get(&path).await.json();
        if let Some(cs) = v.get("conversations") {
            out.extend(cs.as_array().unwrap().iter().map(parse));
        }
        match v.get("cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn ids(cs: &[Conversation]) -> BTreeSet<String> {
    cs.iter().map(|c| c.conversation_id.clone()).collect()
}

#[actix_rt::test]
async fn a_pipeline_run_revises_and_deletes_old_conversations_on_every_read_path() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let all = history(sim.now());
    // The oldest day: everything in it ended long before the run's cutoff (48 h).
    let day = Interval::new(all.start, all.start + Duration::days(1));
    let before = digests(&api, all).await;
    let query_before = ids(&query(&api, day).await);
    let job_before = ids(&job(&api, day).await);

    let report = pipeline(
        &api,
        json!({"changeFraction": 0.2, "deleteFraction": 0.1, "minAgeHours": 48}),
    )
    .await;
    let after = digests(&api, all).await;
    let deleted: BTreeSet<String> = before
        .conversations
        .keys()
        .filter(|id| !after.conversations.contains_key(*id))
        .cloned()
        .collect();
    let changed: BTreeSet<String> = after
        .conversations
        .iter()
        .filter(|(id, d)| before.conversations.get(*id) != Some(d))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        after
            .conversations
            .keys()
            .all(|id| before.conversations.contains_key(id)),
        "the pipeline invented conversations"
    );
    assert_eq!(
        report["conversationsDeleted"],
        json!(deleted.len()),
        "{report}"
    );
    assert_eq!(
        report["conversationsChanged"],
        json!(changed.len()),
        "{report}"
    );

    // Only conversations that ended 48 h before the run were touched, and a revision adds a
    // late wrap-up segment and changes a metric (against a simulator the pipeline never ran on).
    let plain = start(small_config());
    let original: std::collections::BTreeMap<String, Conversation> = plain
        .dataset()
        .conversations_started_in(all)
        .into_iter()
        .map(|c| (c.conversation_id.clone(), c))
        .collect();
    let wrapups = |c: &Conversation| {
        c.participants
            .iter()
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.segments)
            .filter(|g| g.segment_type.as_deref() == Some("wrapup"))
            .count()
    };
    let metrics = |c: &Conversation| -> Vec<(String, i64)> {
        c.participants
            .iter()
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.metrics)
            .map(|m| (m.name.clone(), m.value))
            .collect()
    };
    let cutoff = sim.now() - Duration::hours(48);
    for c in sim.dataset().conversations_started_in(all) {
        let was = &original[&c.conversation_id];
        if changed.contains(&c.conversation_id) {
            assert!(c.conversation_end.unwrap() <= cutoff);
            assert_eq!(wrapups(&c), wrapups(was) + 1, "{}", c.conversation_id);
            assert_ne!(metrics(&c), metrics(was), "{}", c.conversation_id);
        } else {
            assert_eq!(&c, was);
        }
    }

    // The shares asked for, of the conversations old enough (0.1 deleted, 0.2 of the rest revised).
    let eligible = original
        .values()
        .filter(|c| c.conversation_end.unwrap() <= cutoff)
        .count() as f64;
    assert!(eligible > 300.0, "{eligible}");
    let (d, r) = (deleted.len() as f64, changed.len() as f64);
    assert!(
        (0.06..0.14).contains(&(d / eligible)),
        "{d} of {eligible}: {report}"
    );
    assert!(
        (0.14..0.26).contains(&(r / (eligible - d))),
        "{r} of {eligible}: {report}"
    );

    // The query and jobs no longer return deleted conversations and return the revised content.
    for (path, got, was) in [
        ("query", query(&api, day).await, query_before),
        ("job", job(&api, day).await, job_before),
    ] {
        let want: BTreeSet<String> = was.difference(&deleted).cloned().collect();
        assert_eq!(ids(&got), want, "{path}: ids after the pipeline");
        assert!(
            was.intersection(&deleted).count() > 0,
            "{path}: nothing deleted in {day}"
        );
        let mut revised = 0;
        for c in &got {
            if let Some(d) = after.conversations.get(&c.conversation_id) {
                assert_eq!(&conversation_digest(c), d, "{path}: {}", c.conversation_id);
                revised += usize::from(changed.contains(&c.conversation_id));
            }
        }
        assert!(revised > 0, "{path}: no revised conversation in {day}");
    }
    // By id: a deleted conversation is gone, a revised one has its new content.
    let gone = deleted.iter().next().unwrap();
    let r = api
        .get(&format!("/api/v2/analytics/conversations/{gone}/details"))
        .await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let rev = changed.iter().next().unwrap();
    let r = api
        .get(&format!("/api/v2/analytics/conversations/{rev}/details"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        &conversation_digest(&parse(&r.json())),
        after.conversations.get(rev).unwrap()
    );

    // User records: a deleted share of the old ones is gone, the rest unchanged.
    let users_deleted = before
        .user_records
        .keys()
        .filter(|k| !after.user_records.contains_key(*k))
        .count();
    assert!(users_deleted > 0, "no user record deleted");
    assert!(after
        .user_records
        .iter()
        .all(|(k, d)| before.user_records.get(k) == Some(d)));

    // Deterministic: the same run on a fresh simulator gives the same truth.
    let twin = start(small_config());
    let twin_api = Api::new(&twin).login().await;
    pipeline(
        &twin_api,
        json!({"changeFraction": 0.2, "deleteFraction": 0.1, "minAgeHours": 48}),
    )
    .await;
    assert_eq!(digests(&twin_api, all).await, after);
}

#[actix_rt::test]
async fn bad_pipeline_requests_are_refused() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    for body in [
        json!({"changeFraction": 1.5}),
        json!({"deleteFraction": -0.1}),
        json!({"minAgeHours": -1}),
        json!({"changeFraction": "lots"}),
        json!({"unknown": 1}),
    ] {
        let r = api.post("/__sim/pipeline", &body).await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[actix_rt::test]
async fn the_nightly_pipeline_runs_at_every_simulated_midnight() {
    let nightly = start(SimConfig {
        pipeline_nightly: true,
        ..small_config()
    });
    let on_demand = start(small_config());
    let (a, b) = (
        Api::new(&nightly).login().await,
        Api::new(&on_demand).login().await,
    );
    let all = history(nightly.now());
    let start_truth = digests(&a, all).await;
    assert_eq!(
        start_truth,
        digests(&b, all).await,
        "nothing ran before midnight"
    );
    // Two midnights pass on the nightly simulator; the other runs the default pipeline at the
    // same instants by hand.
    let midnight = sluice::partition::day_start(nightly.now()) + Duration::days(1);
    let later = nightly.now() + Duration::days(2);
    nightly.set_now(later);
    on_demand.set_now(midnight);
    pipeline(&b, json!({})).await;
    on_demand.set_now(midnight + Duration::days(1));
    pipeline(&b, json!({})).await;
    on_demand.set_now(later);
    let (got, want) = (digests(&a, all).await, digests(&b, all).await);
    assert_eq!(got, want);
    assert_ne!(
        got.conversations, start_truth.conversations,
        "the pipeline did not run"
    );
}
