//! [`GenesysClient`]: the Analytics API over HTTP (awc, rustls, gzip, keep-alive), with every
//! attempt paced by the RateLimiter and every outcome classified in [`super::error`].
//!
//! Retry policy, all inside the client so callers see one result per call:
//! - every attempt (first try, retries, 401 replay) takes a permit from the RateLimiter;
//! - 401: the token is renewed once and the request replayed; a second 401 is returned;
//! - 429: the limiter pauses every request until Retry-After (+ jitter) and the attempt is
//!   repeated through it, up to `max_rate_limited_retries`; a quota breach (Retry-After over
//!   the threshold, 180 s) is returned at once as `RateLimited { quota_breach: true }` — the
//!   limiter keeps everyone paused until it ends, and the caller can release its work and say
//!   so instead of holding a request open for hours;
//! - 5xx, 408, transport errors and bodies that do not parse: retried with full-jitter
//!   exponential backoff (`backoff_base_ms · 2^n`, capped at `backoff_cap_ms`), at most
//!   `max_attempts` times, then `RetriesExhausted`; a page that did not parse is never used;
//! - everything else (split-worthy 400/413, permanent 4xx) is returned as classified.
//!
//! awc's client is `!Send` and bound to the actix System that created it, so `GenesysClient`
//! keeps only `Send + Sync` state (settings, token cache, limiter handle) and builds one awc
//! client per thread and System, on first use. The futures it returns are therefore `!Send`:
//! run them on an actix arbiter (actors, `actix_rt`), not on a multi-threaded tokio runtime.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use awc::http::{header, Method};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::auth::{AccessToken, TokenCache};
use super::error::{
    classify, parse_rate_headers, snippet, with_quota_threshold, ApiError, ResponseHead,
};
use super::model::{
    AsyncConversationQuery, AsyncQueryResponse, AsyncQueryStatus, AsyncUserDetailsQuery,
    ConversationJobResults, ConversationQuery, ConversationQueryResponse, DataAvailability,
    ReceivedConversation, TokenResponse, UserDetailsQuery, UserDetailsQueryResponse,
    UserJobResults,
};
use super::region::{Endpoints, Region};
use super::secret::Credentials;
use crate::actors::rate_limiter::RateLimiterHandle;
use crate::rate::{Feedback, Outcome, Priority, RateHeaders};

/// The User-Agent every request carries.
pub const USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));

/// Sees every HTTP attempt (for metrics): endpoint name, status (`None` = no HTTP answer),
/// time from sending to the end of the body.
pub trait RequestObserver: Send + Sync {
    fn on_attempt(&self, endpoint: &str, status: Option<u16>, elapsed: Duration);
}

/// Conversation or user-detail jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobKind {
    Conversations,
    Users,
}

impl JobKind {
    fn path(self) -> &'static str {
        match self {
            JobKind::Conversations => "/api/v2/analytics/conversations/details/jobs",
            JobKind::Users => "/api/v2/analytics/users/details/jobs",
        }
    }

    /// `conversations` / `users`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Conversations => "conversations",
            JobKind::Users => "users",
        }
    }
}

/// HTTP client settings (config file section; environment overrides in [`Self::apply_env`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenesysSettings {
    pub region: Region,
    /// Overrides the region's API base URL (the simulator, a proxy).
    pub api_url: Option<String>,
    /// Overrides the login base URL (else derived from `api_url`, see [`Endpoints::resolve`]).
    pub login_url: Option<String>,
    pub connect_timeout_secs: u64,
    /// Whole attempt: sending, waiting, reading the body.
    pub request_timeout_secs: u64,
    pub keep_alive_secs: u64,
    /// Attempts for transient failures (5xx, transport, malformed), the first included.
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// 429s (with the limiter pausing) tolerated before `RateLimited` is returned.
    pub max_rate_limited_retries: u32,
    /// Retry-After above this (seconds) is a quota breach.
    pub quota_breach_secs: u64,
    /// Renew the token this long before it expires (at most 10 % of its lifetime).
    pub token_renew_ahead_secs: u64,
    pub max_body_bytes: usize,
}

impl Default for GenesysSettings {
    fn default() -> Self {
        GenesysSettings {
            region: Region::default(),
            api_url: None,
            login_url: None,
            connect_timeout_secs: 10,
            request_timeout_secs: 120,
            keep_alive_secs: 30,
            max_attempts: 6,
            backoff_base_ms: 500,
            backoff_cap_ms: 30_000,
            max_rate_limited_retries: 20,
            quota_breach_secs: 180,
            token_renew_ahead_secs: 300,
            max_body_bytes: 256 * 1024 * 1024,
        }
    }
}

impl GenesysSettings {
    /// GENESYS_REGION, GENESYS_API_URL, GENESYS_LOGIN_URL, SLUICE_HTTP_CONNECT_TIMEOUT_SECS,
    /// SLUICE_HTTP_REQUEST_TIMEOUT_SECS, SLUICE_HTTP_MAX_ATTEMPTS.
    pub fn apply_env(&mut self) -> Result<(), ApiError> {
        self.apply_env_from(|k| std::env::var(k).ok())
    }

    pub fn apply_env_from(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ApiError> {
        fn num<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            var: &str,
            target: &mut T,
        ) -> Result<(), ApiError> {
            if let Some(v) = get(var) {
                *target = v.trim().parse().map_err(|_| ApiError::Settings {
                    setting: var.to_owned(),
                    message: format!("cannot parse {v:?}"),
                })?;
            }
            Ok(())
        }
        if let Some(r) = get("GENESYS_REGION") {
            self.region =
                r.parse()
                    .map_err(|e: super::region::UnknownRegion| ApiError::Settings {
                        setting: "GENESYS_REGION".into(),
                        message: e.to_string(),
                    })?;
        }
        if let Some(u) = get("GENESYS_API_URL") {
            self.api_url = Some(u);
        }
        if let Some(u) = get("GENESYS_LOGIN_URL") {
            self.login_url = Some(u);
        }
        num(
            &get,
            "SLUICE_HTTP_CONNECT_TIMEOUT_SECS",
            &mut self.connect_timeout_secs,
        )?;
        num(
            &get,
            "SLUICE_HTTP_REQUEST_TIMEOUT_SECS",
            &mut self.request_timeout_secs,
        )?;
        num(&get, "SLUICE_HTTP_MAX_ATTEMPTS", &mut self.max_attempts)?;
        self.validate().map(|_| ())
    }

    /// Checks the values and resolves the endpoints.
    pub fn validate(&self) -> Result<Endpoints, ApiError> {
        let bad = |setting: &str, message: &str| ApiError::Settings {
            setting: setting.into(),
            message: message.into(),
        };
        if self.connect_timeout_secs == 0 {
            return Err(bad("connect_timeout_secs", "must be at least 1"));
        }
        if self.request_timeout_secs == 0 {
            return Err(bad("request_timeout_secs", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(bad("max_attempts", "must be at least 1"));
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            return Err(bad("backoff_cap_ms", "must not be below backoff_base_ms"));
        }
        if self.max_body_bytes < 1024 {
            return Err(bad("max_body_bytes", "must be at least 1024"));
        }
        Endpoints::resolve(
            self.region,
            self.api_url.as_deref(),
            self.login_url.as_deref(),
        )
        .map_err(|m| {
            let setting = if m.starts_with("GENESYS_LOGIN_URL") {
                "login_url"
            } else {
                "api_url"
            };
            bad(setting, &m)
        })
    }
}

struct Shared {
    id: u64,
    settings: GenesysSettings,
    endpoints: Endpoints,
    credentials: Credentials,
    tokens: TokenCache,
    limiter: RateLimiterHandle,
}

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// One awc client per (GenesysClient, actix System) on this thread.
    static HTTP: RefCell<HashMap<(u64, usize), awc::Client>> = RefCell::new(HashMap::new());
}

/// A request to send (built once, sent per attempt).
struct Call {
    endpoint: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    priority: Priority,
}

/// What an attempt produced.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    headers: RateHeaders,
    body: bytes::Bytes,
}

/// The Genesys Cloud Analytics API client. Cheap to clone; clones share the token and the
/// rate limiter.
#[derive(Clone)]
pub struct GenesysClient {
    shared: Arc<Shared>,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl std::fmt::Debug for GenesysClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenesysClient")
            .field("api", &self.shared.endpoints.api)
            .field("login", &self.shared.endpoints.login)
            .field("client_id", &self.shared.credentials.client_id)
            .finish()
    }
}

impl GenesysClient {
    pub fn new(
        settings: GenesysSettings,
        credentials: Credentials,
        limiter: RateLimiterHandle,
    ) -> Result<Self, ApiError> {
        let endpoints = settings.validate()?;
        Ok(GenesysClient {
            shared: Arc::new(Shared {
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                tokens: TokenCache::new(Duration::from_secs(settings.token_renew_ahead_secs)),
                settings,
                endpoints,
                credentials,
                limiter,
            }),
            observer: None,
        })
    }

    /// Every HTTP attempt is reported to `observer` (metrics).
    pub fn set_observer(&mut self, observer: Arc<dyn RequestObserver>) {
        self.observer = Some(observer);
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.shared.endpoints
    }

    pub fn limiter(&self) -> &RateLimiterHandle {
        &self.shared.limiter
    }

    fn http(&self) -> awc::Client {
        let system = actix_rt::System::try_current().map_or(0, |s| s.id());
        let key = (self.shared.id, system);
        HTTP.with(|m| {
            m.borrow_mut()
                .entry(key)
                .or_insert_with(|| build_http(&self.shared.settings))
                .clone()
        })
    }

    /// Fetches a fresh token: proves the credentials and the login URL work.
    pub async fn check_credentials(&self) -> Result<(), ApiError> {
        let mut last = None;
        for attempt in 1..=self.shared.settings.max_attempts {
            match self.fetch_token().await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() => {
                    last = Some(e);
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::RetriesExhausted {
            attempts: self.shared.settings.max_attempts,
            last: Box::new(last.unwrap_or(ApiError::Transport("no attempt made".into()))),
        })
    }

    /// `POST /api/v2/analytics/conversations/details/query`.
    pub async fn query_conversations(
        &self,
        q: &ConversationQuery,
        p: Priority,
    ) -> Result<ConversationQueryResponse<ReceivedConversation>, ApiError> {
        let call = self.post(
            "conversations.query",
            "/api/v2/analytics/conversations/details/query",
            q,
            p,
        )?;
        self.run(call, parse_json).await
    }

    /// `POST /api/v2/analytics/users/details/query`.
    pub async fn query_users(
        &self,
        q: &UserDetailsQuery,
        p: Priority,
    ) -> Result<UserDetailsQueryResponse, ApiError> {
        let call = self.post("users.query", "/api/v2/analytics/users/details/query", q, p)?;
        self.run(call, parse_json).await
    }

    /// `POST …/conversations/details/jobs` → the job id.
    pub async fn submit_conversation_job(
        &self,
        q: &AsyncConversationQuery,
        p: Priority,
    ) -> Result<String, ApiError> {
        let call = self.post(
            "conversations.jobs.submit",
            JobKind::Conversations.path(),
            q,
            p,
        )?;
        let r: AsyncQueryResponse = self.run(call, parse_json).await?;
        Ok(r.job_id)
    }

    /// `POST …/users/details/jobs` → the job id.
    pub async fn submit_user_job(
        &self,
        q: &AsyncUserDetailsQuery,
        p: Priority,
    ) -> Result<String, ApiError> {
        let call = self.post("users.jobs.submit", JobKind::Users.path(), q, p)?;
        let r: AsyncQueryResponse = self.run(call, parse_json).await?;
        Ok(r.job_id)
    }

    /// `GET …/jobs/{jobId}`.
    pub async fn job_status(
        &self,
        kind: JobKind,
        job_id: &str,
        p: Priority,
    ) -> Result<AsyncQueryStatus, ApiError> {
        let call = self.get(
            job_endpoint(kind, "status"),
            format!("{}/{}", kind.path(), encode_segment(job_id)),
            Vec::new(),
            p,
        );
        self.run(call, parse_json).await
    }

    /// `GET …/conversations/details/jobs/{jobId}/results?cursor=&pageSize=`.
    pub async fn conversation_job_results(
        &self,
        job_id: &str,
        cursor: Option<&str>,
        page_size: u32,
        p: Priority,
    ) -> Result<ConversationJobResults<ReceivedConversation>, ApiError> {
        let call = self.results_call(JobKind::Conversations, job_id, cursor, page_size, p);
        self.run(call, parse_json).await
    }

    /// `GET …/users/details/jobs/{jobId}/results?cursor=&pageSize=`.
    pub async fn user_job_results(
        &self,
        job_id: &str,
        cursor: Option<&str>,
        page_size: u32,
        p: Priority,
    ) -> Result<UserJobResults, ApiError> {
        let call = self.results_call(JobKind::Users, job_id, cursor, page_size, p);
        self.run(call, parse_json).await
    }

    /// `DELETE …/jobs/{jobId}`.
    pub async fn delete_job(
        &self,
        kind: JobKind,
        job_id: &str,
        p: Priority,
    ) -> Result<(), ApiError> {
        let mut call = self.get(
            job_endpoint(kind, "delete"),
            format!("{}/{}", kind.path(), encode_segment(job_id)),
            Vec::new(),
            p,
        );
        call.method = Method::DELETE;
        self.run(call, |_| Ok(())).await
    }

    /// `GET …/jobs/availability`.
    pub async fn job_availability(
        &self,
        kind: JobKind,
        p: Priority,
    ) -> Result<DataAvailability, ApiError> {
        let call = self.get(
            job_endpoint(kind, "availability"),
            format!("{}/availability", kind.path()),
            Vec::new(),
            p,
        );
        self.run(call, parse_json).await
    }

    /// `GET path?query` answered with JSON `T`, paced and retried like every call (the
    /// directory listings of [`super::directory`] use it).
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: String,
        query: Vec<(&'static str, String)>,
        p: Priority,
    ) -> Result<T, ApiError> {
        let call = self.get(endpoint, path, query, p);
        self.run(call, parse_json).await
    }

    fn results_call(
        &self,
        kind: JobKind,
        job_id: &str,
        cursor: Option<&str>,
        page_size: u32,
        p: Priority,
    ) -> Call {
        let mut query = vec![("pageSize", page_size.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        self.get(
            job_endpoint(kind, "results"),
            format!("{}/{}/results", kind.path(), encode_segment(job_id)),
            query,
            p,
        )
    }

    fn post<T: Serialize>(
        &self,
        endpoint: &'static str,
        path: &str,
        body: &T,
        priority: Priority,
    ) -> Result<Call, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Client {
            status: 0,
            code: "serialize".into(),
            message: format!("cannot serialise the request body: {e}"),
        })?;
        Ok(Call {
            endpoint,
            method: Method::POST,
            path: path.to_owned(),
            query: Vec::new(),
            body: Some(body),
            priority,
        })
    }

    fn get(
        &self,
        endpoint: &'static str,
        path: String,
        query: Vec<(&'static str, String)>,
        priority: Priority,
    ) -> Call {
        Call {
            endpoint,
            method: Method::GET,
            path,
            query,
            body: None,
            priority,
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let s = &self.shared.settings;
        let ceiling = s
            .backoff_base_ms
            .saturating_mul(1u64 << failures.saturating_sub(1).min(20))
            .min(s.backoff_cap_ms);
        // Full jitter, but never less than a tenth of the ceiling.
        let ms = rand::thread_rng().gen_range(ceiling / 10..=ceiling.max(1));
        Duration::from_millis(ms)
    }

    /// The retry loop (see the module docs).
    async fn run<T>(
        &self,
        call: Call,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        let s = &self.shared.settings;
        let quota = Duration::from_secs(s.quota_breach_secs);
        let mut attempts = 0u32;
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        let mut replayed_401 = false;
        loop {
            attempts += 1;
            let token = match self.token().await {
                Ok(t) => t,
                Err(e) => {
                    if e.is_transient() {
                        failures += 1;
                        if failures >= s.max_attempts {
                            return Err(ApiError::RetriesExhausted {
                                attempts,
                                last: Box::new(e),
                            });
                        }
                        log::warn!("{}: token request failed ({e}); retrying", call.endpoint);
                        tokio::time::sleep(self.backoff(failures)).await;
                        continue;
                    }
                    // The login service said 429: wait as told (it is not the API's budget,
                    // so the limiter is not paused for it).
                    if let ApiError::RateLimited {
                        retry_after,
                        quota_breach: false,
                    } = with_quota_threshold(e.clone(), quota)
                    {
                        if rate_limited < s.max_rate_limited_retries {
                            rate_limited += 1;
                            let wait = retry_after.unwrap_or_else(|| self.backoff(rate_limited));
                            log::warn!(
                                "{}: token request rate limited; retrying in {:.1} s",
                                call.endpoint,
                                wait.as_secs_f64()
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                    }
                    return Err(with_quota_threshold(e, quota));
                }
            };
            let mut token = token;
            let result = self.attempt(&call, &mut token, &parse).await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => with_quota_threshold(e, quota),
            };
            match &err {
                ApiError::Unauthorized { .. } if !replayed_401 => {
                    replayed_401 = true;
                    log::info!(
                        "{}: 401, renewing the token and replaying once",
                        call.endpoint
                    );
                    self.shared.tokens.invalidate(token.generation).await;
                }
                ApiError::RateLimited {
                    quota_breach: false,
                    ..
                } if rate_limited < s.max_rate_limited_retries => {
                    // The limiter is paused until Retry-After; the next acquire waits for it.
                    rate_limited += 1;
                }
                e if e.is_transient() => {
                    failures += 1;
                    if failures >= s.max_attempts {
                        return Err(ApiError::RetriesExhausted {
                            attempts,
                            last: Box::new(err),
                        });
                    }
                    let wait = self.backoff(failures);
                    log::warn!(
                        "{}: {e}; retry {failures}/{} in {:.1} s",
                        call.endpoint,
                        s.max_attempts - 1,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(err),
            }
        }
    }

    async fn token(&self) -> Result<AccessToken, ApiError> {
        self.shared.tokens.get(|| self.fetch_token()).await
    }

    /// `POST {login}/oauth/token` with HTTP Basic client authentication. Not paced by the
    /// RateLimiter: the login service is not the API and does not count against its budget.
    async fn fetch_token(&self) -> Result<TokenResponse, ApiError> {
        let s = &self.shared;
        let url = format!("{}/oauth/token", s.endpoints.login);
        let started = Instant::now();
        let request = self
            .http()
            .post(&url)
            .basic_auth(
                &s.credentials.client_id,
                s.credentials.client_secret.expose(),
            )
            .send_form(&[("grant_type", "client_credentials")]);
        let timeout = Duration::from_secs(s.settings.request_timeout_secs);
        let answer = tokio::time::timeout(timeout, async {
            let mut resp = request
                .await
                .map_err(|e| ApiError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .limit(64 * 1024)
                .await
                .map_err(|e| ApiError::Transport(e.to_string()))?;
            Ok::<_, ApiError>((status, body))
        })
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Transport(format!(
                "login timed out after {} s",
                timeout.as_secs()
            )))
        });
        let status = answer.as_ref().ok().map(|(s, _)| *s);
        self.observe("oauth.token", status, started.elapsed());
        let (status, body) = answer?;
        let head = ResponseHead {
            status,
            ..Default::default()
        };
        match classify(&head, &body).0 {
            Ok(()) => serde_json::from_slice::<TokenResponse>(&body).map_err(|e| {
                // Never keep a snippet of a token answer: it may hold the token.
                ApiError::Malformed {
                    status,
                    message: format!("token response did not parse: {e}"),
                    snippet: "[redacted]".into(),
                }
            }),
            // The login service answers bad credentials with 400/401 (invalid_client).
            Err(ApiError::Client {
                status: 400 | 403,
                message,
                ..
            }) => Err(ApiError::Unauthorized { message }),
            Err(e) => Err(e),
        }
    }

    fn observe(&self, endpoint: &str, status: Option<u16>, elapsed: Duration) {
        if let Some(o) = &self.observer {
            o.on_attempt(endpoint, status, elapsed);
        }
    }

    /// One attempt: permit, token, send, read, classify, parse, report.
    ///
    /// The token is read from the cache again once the permit is granted: a request can wait
    /// in the limiter's queue for longer than a token lives. `token` is updated to the one sent,
    /// so a 401 invalidates the right generation.
    async fn attempt<T>(
        &self,
        call: &Call,
        token: &mut AccessToken,
        parse: &impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        let s = &self.shared;
        let permit = s.limiter.acquire(call.priority).await?;
        // A failed renewal keeps the token in hand: the answer (401) says what to do next.
        if let Ok(current) = self.token().await {
            *token = current;
        }
        let started = Instant::now();
        let answer = self.send(call, token).await;
        let elapsed = started.elapsed();
        let (result, feedback) = match answer {
            Err(e) => (Err(e), Feedback::of(Outcome::Transport)),
            Ok(a) => {
                let head = ResponseHead {
                    status: a.status,
                    retry_after: a.retry_after.as_deref(),
                    headers: a.headers,
                };
                let (classified, mut feedback) = classify(&head, &a.body);
                let result = classified.and_then(|()| {
                    parse(&a.body).map_err(|message| ApiError::Malformed {
                        status: a.status,
                        message,
                        snippet: snippet(&a.body),
                    })
                });
                if matches!(result, Err(ApiError::Malformed { .. })) {
                    feedback.outcome = Some(Outcome::ServerError);
                }
                self.observe(call.endpoint, Some(a.status), elapsed);
                permit.complete(feedback);
                return result;
            }
        };
        self.observe(call.endpoint, None, elapsed);
        permit.complete(feedback);
        result
    }

    async fn send(&self, call: &Call, token: &AccessToken) -> Result<Answer, ApiError> {
        let s = &self.shared;
        let url = format!("{}{}", s.endpoints.api, call.path);
        let mut req = self
            .http()
            .request(call.method.clone(), &url)
            .bearer_auth(token.value.expose())
            .insert_header((header::ACCEPT, "application/json"));
        if !call.query.is_empty() {
            req = req
                .query(&call.query)
                .map_err(|e| ApiError::Transport(format!("cannot encode the query: {e}")))?;
        }
        let timeout = Duration::from_secs(s.settings.request_timeout_secs);
        let limit = s.settings.max_body_bytes;
        let fut = async move {
            let sent = match &call.body {
                Some(b) => {
                    req.content_type("application/json")
                        .send_body(b.clone())
                        .await
                }
                None => req.send().await,
            };
            let mut resp = sent.map_err(|e| ApiError::Transport(e.to_string()))?;
            let h = resp.headers();
            let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let headers = parse_rate_headers(
                text("inin-ratelimit-allowed").as_deref(),
                text("inin-ratelimit-count").as_deref(),
                text("inin-ratelimit-reset").as_deref(),
            );
            let retry_after = text("retry-after");
            let status = resp.status().as_u16();
            let body = resp.body().limit(limit).await.map_err(|e| {
                ApiError::Transport(format!("reading the body (HTTP {status}): {e}"))
            })?;
            Ok(Answer {
                status,
                retry_after,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::Transport(format!(
                    "no complete answer within {} s",
                    timeout.as_secs()
                )))
            })
    }
}

fn job_endpoint(kind: JobKind, what: &'static str) -> &'static str {
    match (kind, what) {
        (JobKind::Conversations, "status") => "conversations.jobs.status",
        (JobKind::Conversations, "results") => "conversations.jobs.results",
        (JobKind::Conversations, "delete") => "conversations.jobs.delete",
        (JobKind::Conversations, _) => "conversations.jobs.availability",
        (JobKind::Users, "status") => "users.jobs.status",
        (JobKind::Users, "results") => "users.jobs.results",
        (JobKind::Users, "delete") => "users.jobs.delete",
        (JobKind::Users, _) => "users.jobs.availability",
    }
}

/// Percent-encodes a path segment (job ids are opaque).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn build_http(settings: &GenesysSettings) -> awc::Client {
    let connector = awc::Connector::new()
        .timeout(Duration::from_secs(settings.connect_timeout_secs))
        .conn_keep_alive(Duration::from_secs(settings.keep_alive_secs));
    awc::Client::builder()
        .connector(connector)
        // Our own timeout covers the whole attempt, body included.
        .disable_timeout()
        .add_default_header((header::USER_AGENT, USER_AGENT))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_https_connector_has_a_crypto_provider() {
        // awc builds its rustls config in Connector::new(); without a provider it panics.
        actix_rt::System::new().block_on(async {
            let _ = build_http(&GenesysSettings::default());
        });
    }

    #[test]
    fn settings_resolve_and_reject() {
        let mut s = GenesysSettings::default();
        s.apply_env_from(|k| match k {
            "GENESYS_REGION" => Some("eu-west-1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.validate().unwrap().api, "https://api.mypurecloud.ie");
        let e = GenesysSettings::default()
            .apply_env_from(|k| (k == "GENESYS_REGION").then(|| "nowhere".into()))
            .unwrap_err();
        assert!(e.to_string().contains("GENESYS_REGION"));
        let e = GenesysSettings::default()
            .apply_env_from(|k| (k == "GENESYS_API_URL").then(|| "localhost:80".into()))
            .unwrap_err();
        assert!(e.to_string().contains("api_url"), "{e}");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert!(USER_AGENT.starts_with("sluice/"));
    }
}
