//! The simulator over real HTTP: tokens, the synchronous query and its validation, paging to
//! the end, matching at partition edges, users, determinism, the in-progress view, bad requests.
use crate::common;

use chrono::Duration;
use common::sim::*;
use serde_json::json;
use sluice::genesys::model::Interval;

fn iv(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> String {
    Interval::new(a, b).to_string()
}

#[actix_rt::test]
async fn token_flow_and_401s() {
    let sim = start(small_config());
    let api = Api::new(&sim);
    // Basic auth and form credentials both work.
    let r = api.token_basic("sluice-sim", "sluice-sim-secret").await;
    assert_eq!(r.status, 200);
    let t = r.json();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 86400);
    let r = api
        .token_raw(
            None,
            "grant_type=client_credentials&client_id=sluice-sim&client_secret=sluice-sim-secret",
        )
        .await;
    assert_eq!(r.status, 200);
    // Wrong secret: 401; wrong grant: 400; nothing: 400. Genesys-style bodies.
    let r = api.token_basic("sluice-sim", "nope").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["status"], 401);
    assert!(r.json()["code"].is_string());
    let r = api.token_raw(None, "grant_type=password").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "bad.request");
    let r = api.token_raw(None, "").await;
    assert_eq!(r.status, 400);
    // API calls: no token, unknown token, expired token -> 401.
    let body = json!({"interval": iv(test_now() - Duration::hours(1), test_now())});
    let r = api.post(QUERY, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "authentication.required");
    let bad = Api {
        token: Some("forged".into()),
        ..Api::new(&sim)
    };
    assert_eq!(bad.post(QUERY, &body).await.status, 401);
    let good = Api::new(&sim).login().await;
    assert_eq!(good.post(QUERY, &body).await.status, 200);
    assert_eq!(
        good.post("/__sim/tokens/expire", &json!({})).await.status,
        204
    );
    let r = good.post(QUERY, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "bad.credentials");
}

#[actix_rt::test]
async fn expired_token_by_ttl() {
    let mut cfg = small_config();
    cfg.token_ttl = std::time::Duration::from_millis(300);
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let body = json!({"interval": iv(test_now() - Duration::hours(1), test_now())});
    assert_eq!(api.post(QUERY, &body).await.status, 200);
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await; // exactly the TTL
    assert_eq!(api.post(QUERY, &body).await.status, 401);
}

#[actix_rt::test]
async fn paging_to_the_end_gives_every_conversation_once_with_total_hits() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let day = test_now() - Duration::days(1);
    let day = day.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let interval = iv(day + Duration::hours(8), day + Duration::hours(14));
    let (ids, totals) = page_all(&api, &json!({"interval": interval}), 50).await;
    assert!(totals.iter().all(|&t| t == ids.len() as i64), "{totals:?}");
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    // Ground truth: conversations started in the interval, plus the ones started earlier that
    // day and still active at its start.
    let truth = sim
        .dataset()
        .conversations_started_in(Interval::new(day, day + Duration::hours(14)))
        .into_iter()
        .filter(|c| c.conversation_end.unwrap() > day + Duration::hours(8))
        .map(|c| c.conversation_id)
        .collect::<Vec<_>>();
    assert_eq!(ids, truth);
    let exp = api.expected(&interval).await;
    let started_inside = exp["conversationCount"].as_u64().unwrap() as usize;
    assert!(started_inside > 0 && started_inside < ids.len());
    assert!(exp["conversations"][0]["final"].as_bool().unwrap());
}

fn assert_error_body(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["status"], status as i64);
    assert_eq!(v["code"], code);
    assert!(!v["message"].as_str().unwrap().is_empty());
    assert!(v["contextId"].is_string());
    assert_eq!(v["details"], json!([]));
    assert_eq!(v["errors"], json!([]));
    assert_eq!(
        r.header("ININ-Correlation-Id").as_deref(),
        v["contextId"].as_str()
    );
}

#[actix_rt::test]
async fn every_validation_error_is_a_genesys_400() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now();
    let ok_iv = iv(n - Duration::hours(2), n);
    let eq = |dim: &str| json!([{"type": "and", "predicates": [{"dimension": dim, "operator": "exists"}]}]);
    let bad: Vec<(&str, serde_json::Value)> = vec![
        (
            "missing interval",
            json!({"paging": {"pageSize": 10, "pageNumber": 1}}),
        ),
        ("interval garbage", json!({"interval": "yesterday/today"})),
        (
            "interval one instant",
            json!({"interval": "2024-03-09T00:00:00Z"}),
        ),
        (
            "interval reversed",
            json!({"interval": iv(n, n - Duration::hours(1))}),
        ),
        (
            "8 days without filters",
            json!({"interval": iv(n - Duration::days(8), n)}),
        ),
        (
            "32 days with a filter",
            json!({"interval": iv(n - Duration::days(32), n), "conversationFilters": eq("conversationEnd")}),
        ),
        (
            "pageSize above max",
            json!({"interval": ok_iv, "paging": {"pageSize": 101, "pageNumber": 1}}),
        ),
        (
            "pageSize 0",
            json!({"interval": ok_iv, "paging": {"pageSize": 0, "pageNumber": 1}}),
        ),
        (
            "pageNumber 0",
            json!({"interval": ok_iv, "paging": {"pageSize": 10, "pageNumber": 0}}),
        ),
        (
            "past the paging cap",
            json!({"interval": ok_iv, "paging": {"pageSize": 100, "pageNumber": 101}}),
        ),
        ("order", json!({"interval": ok_iv, "order": "sideways"})),
        ("orderBy", json!({"interval": ok_iv, "orderBy": "duration"})),
        (
            "filter type",
            json!({"interval": ok_iv, "conversationFilters": [{"type": "xor", "predicates": [{"dimension": "conversationEnd", "operator": "exists"}]}]}),
        ),
        (
            "unknown dimension",
            json!({"interval": ok_iv, "conversationFilters": eq("mediaType")}),
        ),
        (
            "unknown operator",
            json!({"interval": ok_iv, "segmentFilters": [{"type": "and", "predicates": [{"dimension": "mediaType", "operator": "like", "value": "voice"}]}]}),
        ),
        (
            "matches without value",
            json!({"interval": ok_iv, "segmentFilters": [{"type": "and", "predicates": [{"dimension": "mediaType"}]}]}),
        ),
        (
            "wrong types",
            json!({"interval": ok_iv, "paging": {"pageSize": "ten", "pageNumber": 1}}),
        ),
    ];
    for (what, body) in &bad {
        let r = api.post(QUERY, body).await;
        assert_eq!(
            r.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_error_body(&r, 400, "bad.request");
    }
    // The limits themselves are allowed: 7 days unfiltered, 31 days filtered, the last page.
    for body in [
        json!({"interval": iv(n - Duration::days(7), n)}),
        json!({"interval": iv(n - Duration::days(31), n), "conversationFilters": eq("conversationEnd")}),
        json!({"interval": ok_iv, "paging": {"pageSize": 100, "pageNumber": 100}}),
    ] {
        let r = api.post(QUERY, &body).await;
        assert_eq!(
            r.status,
            200,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Broken JSON, an empty body, a body over 512000 bytes.
    assert_error_body(
        &api.post_raw(QUERY, b"{\"interval\":".to_vec()).await,
        400,
        "bad.request",
    );
    assert_error_body(&api.post_raw(QUERY, Vec::new()).await, 400, "bad.request");
    let mut big = br#"{"interval":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 600_000));
    big.extend_from_slice(br#""}"#);
    assert_error_body(
        &api.post_raw(QUERY, big).await,
        413,
        "request.entity.too.large",
    );
    // The users query validates the same way.
    for body in [
        json!({"interval": iv(n - Duration::days(8), n)}),
        json!({"interval": ok_iv, "paging": {"pageSize": 101, "pageNumber": 1}}),
        json!({"interval": ok_iv, "userFilters": [{"type": "and", "predicates": [{"dimension": "queueId", "value": "x"}]}]}),
        json!({"interval": ok_iv, "order": "up"}),
    ] {
        assert_error_body(&api.post(USERS_QUERY, &body).await, 400, "bad.request");
    }
    // Unknown paths and methods: 404 not.found; the server is still fine afterwards.
    assert_error_body(
        &api.get("/api/v2/analytics/nothing").await,
        404,
        "not.found",
    );
    assert_error_body(&api.get(QUERY).await, 404, "not.found");
    assert_error_body(
        &api.get(&format!("{CONV_JOBS}/no-such-job")).await,
        404,
        "not.found",
    );
    assert_eq!(
        api.post(QUERY, &json!({"interval": ok_iv})).await.status,
        200
    );
}

#[actix_rt::test]
async fn sync_query_matching_at_partition_edges() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let ds = sim.dataset();
    let d = (test_now() - Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    // A conversation that starts the day before and ends after midnight.
    let prev = ds.conversations_started_in(Interval::new(d - Duration::days(1), d));
    let crossing = prev
        .iter()
        .find(|c| c.conversation_end.unwrap() > d + Duration::minutes(30))
        .expect("a conversation crosses midnight");
    let id = crossing.conversation_id.clone();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.get("conversations")
            .map(|cs| {
                cs.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["conversationId"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let filter =
        json!([{"type": "and", "predicates": [{"dimension": "conversationId", "value": id}]}]);
    let q = |a, b| json!({"interval": iv(a, b), "conversationFilters": filter});
    // Interval only on day D: it overlaps, but started on D-1, a day the interval does not touch.
    let r = api
        .post(QUERY, &q(d, d + Duration::minutes(30)))
        .await
        .json();
    assert_eq!(r["totalHits"], 0);
    assert!(
        r.get("conversations").is_none(),
        "past-the-end page has no conversations key"
    );
    // Interval touching both days: found.
    let r = api
        .post(
            QUERY,
            &q(d - Duration::minutes(1), d + Duration::minutes(30)),
        )
        .await
        .json();
    assert_eq!(ids(&r), vec![id.clone()]);
    // The last partition of D-1 holds it too (it overlaps and started that day).
    let r = api.post(QUERY, &q(d - Duration::hours(1), d)).await.json();
    assert_eq!(ids(&r), vec![id.clone()]);
    // A job matches by overlap alone; with startOfDayIntervalMatching the query's rule.
    // (checked in tests/sim_jobs.rs)

    // Hourly partitions of day D: together they hold exactly the conversations started on D;
    // one that spans a partition edge is in both partitions.
    let mut union = std::collections::BTreeSet::new();
    let mut sum = 0;
    for h in 0..24 {
        let a = d + Duration::hours(h);
        let (got, totals) = page_all(
            &api,
            &json!({"interval": iv(a, a + Duration::hours(1))}),
            100,
        )
        .await;
        assert!(totals.iter().all(|&t| t == got.len() as i64));
        sum += got.len();
        union.extend(got);
    }
    let day: std::collections::BTreeSet<String> = ds
        .conversations_started_in(Interval::new(d, d + Duration::days(1)))
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(union, day);
    assert!(
        sum > day.len(),
        "conversations spanning an hour edge appear in two partitions"
    );
}

#[actix_rt::test]
async fn order_and_order_by_are_honoured() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now() - Duration::days(1);
    let base = json!({"interval": iv(n, n + Duration::hours(3))});
    let (asc, _) = page_all(&api, &base, 100).await;
    let mut b = base.clone();
    b["order"] = json!("desc");
    let (desc, _) = page_all(&api, &b, 100).await;
    let mut rev = asc.clone();
    rev.reverse();
    assert_eq!(desc, rev);
    b["order"] = json!("asc");
    b["orderBy"] = json!("conversationEnd");
    b["paging"] = json!({"pageSize": 100, "pageNumber": 1});
    let v = api.post(QUERY, &b).await.json();
    let ends: Vec<String> = v["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationEnd"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = ends.clone();
    sorted.sort();
    assert_eq!(ends, sorted);
}

#[actix_rt::test]
async fn same_seed_same_bytes() {
    let a = start(small_config());
    let b = start(small_config());
    let mut other = small_config();
    other.seed = 8;
    let c = start(other);
    let n = test_now() - Duration::days(1);
    let body = json!({"interval": iv(n, n + Duration::hours(2)), "paging": {"pageSize": 100, "pageNumber": 1}});
    let ua = Api::new(&a).login().await.post(QUERY, &body).await;
    let ub = Api::new(&b).login().await.post(QUERY, &body).await;
    let uc = Api::new(&c).login().await.post(QUERY, &body).await;
    assert_eq!(ua.status, 200);
    assert_eq!(ua.body, ub.body);
    assert_ne!(ua.body, uc.body);
    let users = json!({"interval": iv(n, n + Duration::hours(2))});
    let ua = Api::new(&a).login().await.post(USERS_QUERY, &users).await;
    let ub = Api::new(&b).login().await.post(USERS_QUERY, &users).await;
    assert_eq!(ua.body, ub.body);
}

#[actix_rt::test]
async fn in_progress_conversations_complete_later() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now();
    let body = json!({"interval": iv(n - Duration::hours(1), n), "paging": {"pageSize": 100, "pageNumber": 1}});
    let before = api.post(QUERY, &body).await.json();
    let open: Vec<&serde_json::Value> = before["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("conversationEnd").is_none())
        .collect();
    assert!(
        !open.is_empty(),
        "recent conversations are still in progress"
    );
    for c in &open {
        let segs: Vec<&serde_json::Value> = c["participants"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["sessions"].as_array().unwrap())
            .flat_map(|s| s["segments"].as_array().unwrap())
            .collect();
        let open_segs: Vec<_> = segs
            .iter()
            .filter(|s| s.get("segmentEnd").is_none())
            .collect();
        assert!(!open_segs.is_empty());
        assert!(open_segs.iter().all(|s| s.get("disconnectType").is_none()));
        let metrics: Vec<&serde_json::Value> = c["participants"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["sessions"].as_array().unwrap())
            .filter_map(|s| s.get("metrics"))
            .flat_map(|m| m.as_array().unwrap())
            .collect();
        assert!(metrics
            .iter()
            .all(|m| m["emitDate"].as_str().unwrap() <= "2024-03-10T12:00:00.000Z"));
        assert!(!metrics.iter().any(|m| m["name"] == "tHandle"));
    }
    let exp = api.expected(&iv(n - Duration::hours(1), n)).await;
    assert!(exp["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["final"] == false && c.get("conversationEnd").is_none()));
    // Two days later the same conversations read back complete.
    sim.set_now(n + Duration::days(2));
    let after = api.post(QUERY, &body).await.json();
    for c in &open {
        let id = &c["conversationId"];
        let again = after["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| &x["conversationId"] == id)
            .expect("still there");
        assert!(again["conversationEnd"].is_string());
        let text = again.to_string();
        assert!(
            text.contains("\"tHandle\"") || text.contains("\"tAbandon\""),
            "duration metrics emitted"
        );
    }
    let exp = api.expected(&iv(n - Duration::hours(1), n)).await;
    assert!(exp["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["final"] == true));
    // The clock can also be moved over HTTP.
    let r = api
        .post("/__sim/clock", &json!({"now": "2024-03-11T00:00:00Z"}))
        .await;
    assert_eq!(r.json()["now"], "2024-03-11T00:00:00.000Z");
    assert_eq!(
        sim.now(),
        chrono::DateTime::parse_from_rfc3339("2024-03-11T00:00:00Z").unwrap()
    );
}

#[actix_rt::test]
async fn user_details_page_short_but_lose_nothing() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now();
    let interval = iv(n - Duration::days(2), n);
    let mut seen: std::collections::BTreeMap<(String, String), serde_json::Value> =
        Default::default();
    let mut routing = std::collections::BTreeSet::new();
    let mut short_before_end = false;
    let mut totals = Vec::new();
    let mut rows = 0;
    for page in 1.. {
        let r = api
            .post(
                USERS_QUERY,
                &json!({"interval": interval, "paging": {"pageSize": 5, "pageNumber": page}}),
            )
            .await;
        assert_eq!(r.status, 200);
        let v = r.json();
        totals.push(v["totalHits"].as_i64().unwrap());
        let Some(users) = v.get("userDetails") else {
            break;
        };
        let users = users.as_array().unwrap();
        if users.len() < 5 {
            short_before_end = true;
        }
        rows += users.len();
        for u in users {
            let uid = u["userId"].as_str().unwrap().to_string();
            for p in u["primaryPresence"].as_array().unwrap() {
                seen.insert(
                    (uid.clone(), p["startTime"].as_str().unwrap().to_string()),
                    p.clone(),
                );
            }
            for s in u["routingStatus"].as_array().unwrap() {
                routing.insert((uid.clone(), s["startTime"].as_str().unwrap().to_string()));
            }
        }
    }
    assert!(
        short_before_end,
        "day-spanning records make some pages short"
    );
    assert!(totals.windows(2).all(|w| w[0] == w[1]));
    assert!(
        rows < totals[0] as usize,
        "fewer rows than totalHits: duplicates removed per page"
    );
    let truth = sim
        .dataset()
        .user_details(Interval::parse(&interval).unwrap(), n);
    let presence: usize = truth.iter().map(|u| u.primary_presence.len()).sum();
    let rs: usize = truth.iter().map(|u| u.routing_status.len()).sum();
    assert_eq!(seen.len(), presence);
    assert_eq!(routing.len(), rs);
    let exp = api.expected(&interval).await;
    assert_eq!(exp["users"]["presence"], presence);
    assert_eq!(exp["users"]["users"], 12);
    // The current record of each user has no endTime.
    let current = seen.values().filter(|p| p.get("endTime").is_none()).count();
    assert_eq!(current, 12);
}

#[actix_rt::test]
async fn conversations_by_id_single_and_batch() {
    let sim = start(small_config());
    let api = Api::new(&sim).login().await;
    let n = test_now();
    let page = api
        .post(QUERY, &json!({"interval": iv(n - Duration::hours(1), n), "paging": {"pageSize": 100, "pageNumber": 1}}))
        .await
        .json();
    let convs = page["conversations"].as_array().unwrap();
    let open = convs
        .iter()
        .find(|c| c.get("conversationEnd").is_none())
        .unwrap();
    let done = convs
        .iter()
        .find(|c| c.get("conversationEnd").is_some())
        .unwrap();
    let id = open["conversationId"].as_str().unwrap();
    let r = api
        .get(&format!("/api/v2/analytics/conversations/{id}/details"))
        .await;
    assert_eq!(r.status, 200);
    let one = r.json();
    assert_eq!(one["conversationId"], *id);
    assert!(one.get("conversationEnd").is_none(), "as seen now");
    assert!(one["participants"][0].get("attributes").is_some());
    let r = api
        .get("/api/v2/analytics/conversations/00000000-0000-4000-a000-000000000000/details")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not.found");
    let ids = format!(
        "{},{},nope,{}",
        done["conversationId"].as_str().unwrap(),
        id,
        convs[0]["conversationId"].as_str().unwrap()
    );
    let r = api
        .get(&format!("/api/v2/analytics/conversations/details?id={ids}"))
        .await;
    assert_eq!(r.status, 200);
    let got: Vec<String> = r.json()["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 3, "unknown ids are left out");
    assert_eq!(got[1], id);
    assert_eq!(
        api.get("/api/v2/analytics/conversations/details")
            .await
            .status,
        400
    );
    // Later the same conversation reads back complete.
    sim.set_now(n + Duration::days(2));
    let again = api
        .get(&format!("/api/v2/analytics/conversations/{id}/details"))
        .await
        .json();
    assert!(again["conversationEnd"].is_string());
}
