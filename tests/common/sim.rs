//! Starting a simulator on a random port and talking to it over real HTTP (awc).
use std::time::Duration;

use awc::http::header::HeaderMap;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sluice::sim::{self, SimConfig, SimHandle, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

/// The simulated now of the small test org.
pub fn test_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap()
}

/// A small org (3 days, 400 conversations a day, 12 users) with the clock fixed at
/// [`test_now`] and limits off, so tests only meet the limits they turn on.
pub fn small_config() -> SimConfig {
    SimConfig {
        seed: 7,
        days: 3,
        per_day: 400,
        users: 12,
        now: Some(test_now()),
        no_limits: true,
        job_delay: Duration::from_millis(200),
        ..SimConfig::default()
    }
}

pub fn start(cfg: SimConfig) -> SimHandle {
    sim::start(cfg).expect("simulator starts")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A client of one simulator.
pub struct Api {
    pub client: awc::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(sim: &SimHandle) -> Self {
        Api {
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
            base: sim.base_url(),
            token: None,
        }
    }

    /// Logs in with the default client (HTTP Basic).
    pub async fn login(mut self) -> Self {
        let r = self
            .token_basic(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        self.token = Some(r.json()["access_token"].as_str().unwrap().to_string());
        self
    }

    pub async fn token_basic(&self, id: &str, secret: &str) -> Resp {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        self.token_raw(Some(format!("Basic {b}")), "grant_type=client_credentials")
            .await
    }

    pub async fn token_raw(&self, authorization: Option<String>, form: &str) -> Resp {
        let mut req = self
            .client
            .post(format!("{}/oauth/token", self.base))
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
        if let Some(a) = authorization {
            req = req.insert_header(("Authorization", a));
        }
        let res = req
            .send_body(form.to_string())
            .await
            .expect("token request");
        collect(res).await
    }

    fn auth(&self, mut req: awc::ClientRequest) -> awc::ClientRequest {
        if let Some(t) = &self.token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_raw(path, serde_json::to_vec(body).unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Resp {
        let req = self
            .auth(self.client.post(format!("{}{path}", self.base)))
            .insert_header(("Content-Type", "application/json"));
        let res = req.send_body(body).await.expect("request");
        collect(res).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        let res = self
            .auth(self.client.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("request");
        collect(res).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        let res = self
            .auth(self.client.delete(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("request");
        collect(res).await
    }

    /// `/__sim/stats`.
    pub async fn stats(&self) -> Value {
        self.get("/__sim/stats").await.json()
    }

    /// `/__sim/expected?interval=…`.
    pub async fn expected(&self, interval: &str) -> Value {
        self.get(&format!("/__sim/expected?interval={interval}"))
            .await
            .json()
    }
}

async fn collect(
    mut res: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Resp {
    let body = res.body().limit(256 * 1024 * 1024).await.expect("body");
    Resp {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: body.to_vec(),
    }
}

pub const QUERY: &str = "/api/v2/analytics/conversations/details/query";
pub const USERS_QUERY: &str = "/api/v2/analytics/users/details/query";
pub const CONV_JOBS: &str = "/api/v2/analytics/conversations/details/jobs";
pub const USER_JOBS: &str = "/api/v2/analytics/users/details/jobs";

/// Pages a synchronous conversation query to the end: (ids in order, totalHits of each page).
pub async fn page_all(api: &Api, body: &Value, page_size: i64) -> (Vec<String>, Vec<i64>) {
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    for n in 1.. {
        let mut b = body.clone();
        b["paging"] = serde_json::json!({"pageSize": page_size, "pageNumber": n});
        let r = api.post(QUERY, &b).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        totals.push(v["totalHits"].as_i64().expect("totalHits"));
        match v.get("conversations") {
            None => break,
            Some(cs) => {
                let cs = cs.as_array().expect("array");
                assert!(!cs.is_empty(), "an empty page has no conversations key");
                ids.extend(
                    cs.iter()
                        .map(|c| c["conversationId"].as_str().unwrap().to_string()),
                );
            }
        }
    }
    (ids, totals)
}
