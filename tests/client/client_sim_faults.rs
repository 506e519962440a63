//! Paging through the simulator while it injects 5xx answers and truncated bodies: every
//! fault is retried inside the client and the pages are complete — the set of conversations
//! received equals the simulator's dataset.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::limiter_sim::{client, sim_now, stat};
use sluice::actors::rate_limiter::{RateLimiterHandle, RateLimiterSettings};
use sluice::genesys::model::{ConversationQuery, Interval, Paging};
use sluice::genesys::Priority;
use sluice::sim::SimConfig;

#[actix_rt::test]
async fn faults_are_retried_and_no_page_is_lost() {
    let cfg = SimConfig {
        days: 4,
        per_day: 3000,
        users: 10,
        fault_5xx: 0.05,
        fault_malformed: 0.02,
        now: Some(sim_now()),
        no_limits: true,
        ..Default::default()
    };
    let sim = sluice::sim::start(cfg).unwrap();
    let limiter = RateLimiterHandle::start(RateLimiterSettings {
        rate_per_minute: 60_000,
        ..Default::default()
    })
    .unwrap();
    let client = client(&sim, &limiter, 8);
    let day = |d: i64| {
        let start = (sim_now() - chrono::Duration::days(d))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        Interval::new(start, start + chrono::Duration::days(1))
    };
    let interval = Interval::new(day(3).start, day(1).end);
    let mut received = BTreeSet::new();
    let mut pages = 0;
    let mut total_hits = None;
    for page_number in 1.. {
        let q = ConversationQuery {
            interval: interval.to_string(),
            order: Some("asc".into()),
            order_by: Some("conversationStart".into()),
            paging: Some(Paging {
                page_size: 100,
                page_number,
            }),
            conversation_filters: vec![],
            segment_filters: vec![],
        };
        let page = client
            .query_conversations(&q, Priority::Backfill)
            .await
            .unwrap_or_else(|e| panic!("page {page_number}: {e}"));
        total_hits = page.total_hits.or(total_hits);
        let Some(convs) = page.conversations.filter(|c| !c.is_empty()) else {
            break;
        };
        pages += 1;
        for c in convs {
            received.insert(c.conversation.conversation_id);
        }
        assert!(page_number < 200, "paging did not end");
    }
    let expected: BTreeSet<String> = sim
        .dataset()
        .conversations_started_in(interval)
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    let stats = sim.stats();
    let faults = stat(&stats, &["faults", "5xx"]) + stat(&stats, &["faults", "malformed"]);
    eprintln!(
        "{pages} pages, {} conversations, {faults} faults: {}",
        received.len(),
        stats["faults"]
    );
    assert!(faults > 0, "the simulator injected faults: {stats}");
    assert!(pages >= 60);
    assert_eq!(received.len() as i64, total_hits.unwrap_or(-1));
    assert_eq!(received, expected);
    // Every attempt, faulty ones included, went through the limiter.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let state = limiter.state().await.unwrap();
    assert_eq!(
        state.requests,
        stat(&stats, &["requests", "total"])
            - stat(&stats, &["requests", "byEndpoint", "oauth.token"])
    );
}
