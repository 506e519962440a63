//! GenesysClient over real HTTP against a scripted stub server: OAuth (Basic auth, token
//! cache, one renewal on 401), the outcome classification, retries through the RateLimiter,
//! and secret hygiene.

use crate::common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::stub::{Canned, Stub};
use sluice::actors::rate_limiter::{RateLimiterHandle, RateLimiterSettings};
use sluice::genesys::model::{AsyncConversationQuery, ConversationQuery, Paging};
use sluice::genesys::{
    ApiError, Credentials, GenesysClient, GenesysSettings, JobKind, Priority, Secret,
};

const SECRET: &str = "s3cret-do-not-print";

const PAGE: &str = r#"{"totalHits":2,"conversations":[
  {"conversationId":"a","conversationStart":"2024-03-01T08:00:00.000Z"},
  {"conversationId":"b","conversationStart":"2024-03-01T09:00:00.000Z","participants":[]}]}"#;

fn client_for(
    stub: &Stub,
    tweak: impl FnOnce(&mut GenesysSettings),
) -> (GenesysClient, RateLimiterHandle) {
    let limiter = RateLimiterHandle::start(RateLimiterSettings {
        rate_per_minute: 6000,
        retry_after_jitter_ms: 100,
        ..Default::default()
    })
    .unwrap();
    let mut settings = GenesysSettings {
        api_url: Some(stub.base_url()),
        backoff_base_ms: 10,
        backoff_cap_ms: 50,
        max_attempts: 4,
        ..Default::default()
    };
    tweak(&mut settings);
    let client = GenesysClient::new(
        settings,
        Credentials::new("sluice-test", Secret::new(SECRET)),
        limiter.clone(),
    )
    .unwrap();
    (client, limiter)
}

fn query() -> ConversationQuery {
    ConversationQuery {
        interval: "2024-03-01T00:00:00.000Z/2024-03-02T00:00:00.000Z".into(),
        order: Some("asc".into()),
        order_by: Some("conversationStart".into()),
        paging: Some(Paging {
            page_size: 100,
            page_number: 1,
        }),
        conversation_filters: vec![],
        segment_filters: vec![],
    }
}

#[actix_rt::test]
async fn oauth_basic_auth_user_agent_gzip_and_one_token_renewal_on_401() {
    let stub = Stub::start();
    stub.push_api(Canned::json(
        401,
        r#"{"message":"Token expired","code":"bad.credentials","status":401}"#,
    ));
    stub.push_api(Canned::json(200, PAGE));
    let (client, limiter) = client_for(&stub, |_| {});
    let page = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap();
    let convs = page.conversations.unwrap();
    assert_eq!(page.total_hits, Some(2));
    assert_eq!(convs.len(), 2);
    assert!(convs[1].raw_json.contains(r#""participants":[]"#));

    let reqs = stub.requests();
    let token_reqs: Vec<_> = reqs.iter().filter(|r| r.path == "/oauth/token").collect();
    assert_eq!(
        token_reqs.len(),
        2,
        "one token, then one renewal after the 401"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("sluice-test:{SECRET}"));
    for t in &token_reqs {
        assert_eq!(t.method, "POST");
        assert_eq!(t.headers["authorization"], format!("Basic {basic}"));
        assert_eq!(t.body, "grant_type=client_credentials");
        assert!(t.headers["content-type"].starts_with("application/x-www-form-urlencoded"));
    }
    let api = stub.api_requests();
    assert_eq!(api.len(), 2);
    assert_eq!(api[0].path, "/api/v2/analytics/conversations/details/query");
    assert_eq!(api[0].headers["authorization"], "Bearer tok-1");
    assert_eq!(api[1].headers["authorization"], "Bearer tok-2");
    assert!(api[0].headers["user-agent"].starts_with("sluice/"));
    assert!(api[0].headers["accept-encoding"].contains("gzip"));
    let body: serde_json::Value = serde_json::from_str(&api[0].body).unwrap();
    assert_eq!(body["paging"]["pageSize"], 100);
    // Both attempts went through the limiter; the token is cached for the next call.
    client
        .query_conversations(&query(), Priority::CatchUp)
        .await
        .unwrap();
    assert_eq!(stub.token_requests(), 2);
    let state = limiter.state().await.unwrap();
    assert_eq!(state.requests, 3);
    assert_eq!(state.in_flight, 0);
}

#[actix_rt::test]
async fn a_second_401_is_returned_not_retried_forever() {
    let stub = Stub::start();
    for _ in 0..2 {
        stub.push_api(Canned::json(
            401,
            r#"{"message":"Invalid token","code":"bad.credentials","status":401}"#,
        ));
    }
    let (client, _) = client_for(&stub, |_| {});
    let err = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    assert_eq!(stub.api_requests().len(), 2);
}

#[actix_rt::test]
async fn server_errors_and_malformed_pages_are_retried_and_the_page_is_complete() {
    let stub = Stub::start();
    stub.push_api(Canned::json(503, "busy"));
    stub.push_api(Canned::json(
        200,
        r#"{"totalHits":2,"conversations":[{"conversationId":"a","#,
    ));
    stub.push_api(Canned::json(
        200,
        r#"{"totalHits":2,"conversations":[{"conversationStart":"2024-03-01T08:00:00.000Z"}]}"#,
    ));
    stub.push_api(Canned::json(200, PAGE));
    let (client, limiter) = client_for(&stub, |s| s.max_attempts = 5);
    let page = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap();
    let ids: Vec<_> = page
        .conversations
        .unwrap()
        .into_iter()
        .map(|c| c.conversation.conversation_id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(stub.api_requests().len(), 4);
    // Every attempt, retries included, took a permit.
    assert_eq!(limiter.state().await.unwrap().requests, 4);
}

#[actix_rt::test]
async fn persistent_server_errors_exhaust_the_bounded_retries() {
    let stub = Stub::start();
    for _ in 0..5 {
        stub.push_api(Canned::json(
            500,
            r#"{"message":"boom","code":"internal.server.error","status":500}"#,
        ));
    }
    let (client, _) = client_for(&stub, |s| s.max_attempts = 3);
    let err = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    match err {
        ApiError::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 3);
            assert!(matches!(*last, ApiError::ServerError { status: 500, .. }));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(stub.api_requests().len(), 3);
}

#[actix_rt::test]
async fn split_worthy_and_permanent_errors_return_at_once() {
    let stub = Stub::start();
    stub.push_api(Canned::json(
        400,
        r#"{"message":"Max interval of 7 days exceeded","code":"bad.request","status":400}"#,
    ));
    stub.push_api(Canned::json(413, r#"{"message":"The request is over the size limit. Content-Length: 600000, Maximum bytes: 512000","status":413}"#));
    stub.push_api(Canned::json(403, r#"{"message":"Missing analytics:conversationDetail:view","code":"missing.any.permissions","status":403}"#));
    stub.push_api(Canned::json(
        400,
        r#"{"message":"pageSize must be at most 100","code":"bad.request","status":400}"#,
    ));
    let (client, _) = client_for(&stub, |_| {});
    let e1 = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    assert!(e1.must_split(), "{e1:?}");
    let e2 = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    assert!(e2.must_split(), "{e2:?}");
    let e3 = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    assert!(
        matches!(&e3, ApiError::Client { status: 403, message, .. } if message.contains("conversationDetail")),
        "{e3:?}"
    );
    let e4 = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    assert!(matches!(e4, ApiError::Client { status: 400, .. }), "{e4:?}");
    assert_eq!(stub.api_requests().len(), 4);
}

#[actix_rt::test]
async fn a_429_pauses_until_retry_after_then_the_request_succeeds() {
    let stub = Stub::start();
    stub.push_api(
        Canned::json(429, r#"{"message":"Rate limit exceeded the maximum. Retry the request in [1] seconds","code":"too.many.requests.retry.after","status":429}"#)
            .header("Retry-After", "1"),
    );
    stub.push_api(Canned::json(200, PAGE));
    let (client, limiter) = client_for(&stub, |_| {});
    let t = Instant::now();
    client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    let state = limiter.state().await.unwrap();
    assert_eq!(state.rate_limited, 1);
    assert_eq!(state.requests, 2);
}

#[actix_rt::test]
async fn a_quota_breach_is_returned_and_the_limiter_stays_paused() {
    let stub = Stub::start();
    stub.push_api(
        Canned::json(
            429,
            r#"{"message":"Daily limit reached","code":"too.many.requests","status":429}"#,
        )
        .header("Retry-After", "3600"),
    );
    let (client, limiter) = client_for(&stub, |_| {});
    let err = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
            quota_breach: true
        }
    );
    let state = limiter.state().await.unwrap();
    assert!(state.quota_breach);
    assert!(state.pause_remaining.unwrap() > Duration::from_secs(3500));
    assert_eq!(stub.api_requests().len(), 1);
}

#[actix_rt::test]
async fn a_request_timeout_is_a_transport_error_and_retried() {
    let stub = Stub::start();
    stub.push_api(Canned::json(200, PAGE).delayed(Duration::from_millis(1500)));
    stub.push_api(Canned::json(200, PAGE));
    let (client, _) = client_for(&stub, |s| s.request_timeout_secs = 1);
    let page = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap();
    assert_eq!(page.conversations.unwrap().len(), 2);
    assert_eq!(stub.api_requests().len(), 2);
}

#[actix_rt::test]
async fn a_login_429_or_5xx_is_waited_out_and_the_call_goes_through() {
    let stub = Stub::start();
    stub.push_token(
        Canned::json(429, r#"{"message":"slow down","status":429}"#).header("Retry-After", "0"),
    );
    stub.push_token(Canned::json(503, "login busy"));
    stub.push_api(Canned::json(200, PAGE));
    let (client, _) = client_for(&stub, |_| {});
    let page = client
        .query_conversations(&query(), Priority::Backfill)
        .await
        .unwrap();
    assert_eq!(page.conversations.unwrap().len(), 2);
    assert_eq!(stub.token_requests(), 3);
    assert_eq!(stub.api_requests().len(), 1);
}

#[actix_rt::test]
async fn bad_credentials_are_unauthorized_and_the_secret_is_never_printed() {
    let stub = Stub::start();
    stub.push_token(Canned::json(
        401,
        r#"{"error":"invalid_client","description":"client not found"}"#,
    ));
    stub.push_token(Canned::json(400, r#"{"error":"invalid_client"}"#));
    let (client, _) = client_for(&stub, |_| {});
    let e1 = client.check_credentials().await.unwrap_err();
    let e2 = client.check_credentials().await.unwrap_err();
    for e in [&e1, &e2] {
        assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
        assert!(!format!("{e} {e:?}").contains(SECRET));
    }
    assert!(!format!("{client:?}").contains(SECRET));
    client.check_credentials().await.unwrap();
    // A token answer that does not parse never shows its bytes (they may hold a token).
    stub.push_token(Canned::json(
        200,
        r#"{"access_token":"tok-secret-xyz","expires_in":"#,
    ));
    let stub2_client = client_for(&stub, |s| s.max_attempts = 1).0;
    let e = stub2_client.check_credentials().await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains("tok-secret-xyz"), "{e:?}");
}

#[actix_rt::test]
async fn job_endpoints_use_the_documented_paths() {
    let stub = Stub::start();
    stub.push_api(Canned::json(202, r#"{"jobId":"job 1/x"}"#));
    stub.push_api(Canned::json(
        200,
        r#"{"state":"FULFILLED","completionDate":"2024-03-03T10:00:09.000Z"}"#,
    ));
    stub.push_api(Canned::json(200, r#"{"conversations":[{"conversationId":"c-1","conversationStart":"2024-03-01T08:00:00.000Z"}],"cursor":"b3B+/=="}"#));
    stub.push_api(Canned::json(200, r#"{"userDetails":[{"userId":"u-1"}]}"#));
    stub.push_api(Canned::json(204, ""));
    stub.push_api(Canned::json(
        200,
        r#"{"dataAvailabilityDate":"2024-03-03T06:00:00.000Z"}"#,
    ));
    let (client, _) = client_for(&stub, |_| {});
    let q = AsyncConversationQuery {
        interval: "2024-03-01T00:00:00.000Z/2024-03-02T00:00:00.000Z".into(),
        order: None,
        order_by: None,
        conversation_filters: vec![],
        segment_filters: vec![],
        limit: None,
        start_of_day_interval_matching: Some(true),
    };
    let p = Priority::Backfill;
    let job = client.submit_conversation_job(&q, p).await.unwrap();
    assert_eq!(job, "job 1/x");
    let st = client
        .job_status(JobKind::Conversations, &job, p)
        .await
        .unwrap();
    assert_eq!(st.state, "FULFILLED");
    let page = client
        .conversation_job_results(&job, Some("b3B+/=="), 1000, p)
        .await
        .unwrap();
    assert_eq!(page.cursor.as_deref(), Some("b3B+/=="));
    let users = client
        .user_job_results("u-job", None, 500, p)
        .await
        .unwrap();
    assert_eq!(users.user_details.unwrap()[0].user_id, "u-1");
    client
        .delete_job(JobKind::Conversations, &job, p)
        .await
        .unwrap();
    let avail = client.job_availability(JobKind::Users, p).await.unwrap();
    assert!(avail.data_availability_date.is_some());

    let api = stub.api_requests();
    let seen: Vec<_> = api
        .iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert_eq!(
        seen,
        [
            "POST /api/v2/analytics/conversations/details/jobs?",
            "GET /api/v2/analytics/conversations/details/jobs/job%201%2Fx?",
            "GET /api/v2/analytics/conversations/details/jobs/job%201%2Fx/results?pageSize=1000&cursor=b3B%2B%2F%3D%3D",
            "GET /api/v2/analytics/users/details/jobs/u-job/results?pageSize=500",
            "DELETE /api/v2/analytics/conversations/details/jobs/job%201%2Fx?",
            "GET /api/v2/analytics/users/details/jobs/availability?",
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&api[0].body).unwrap();
    assert_eq!(body["startOfDayIntervalMatching"], true);
    assert!(body.get("order").is_none());
}
