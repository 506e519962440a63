//! The actix-web app: routes, the common path every API request takes (body, token, limits,
//! latency, faults, one buffered JSON write) and the handlers.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Auth, AuthError, LoginRequest};
use super::config::SimConfig;
use super::data::{merge_into, Dataset};
use super::faults::{truncate, Faults};
use super::jobs::{
    decode_cursor, encode_cursor, JobError, JobKind, JobQuery, JobResults, Jobs, NewJob, RunTime,
    UserSelection,
};
use super::limits::{too_many_requests_body, Cause, LimitState, Limits, Rejection};
use super::query::{
    check_paging, parse_interval, parse_order, parse_order_by, select, validate_filters, Matching,
    Order, Selection, CONVERSATION_DIMENSIONS, SEGMENT_DIMENSIONS,
};
use super::stats::Stats;
use crate::genesys::model::{
    job_state, AsyncConversationQuery, AsyncQueryResponse, AsyncUserDetailsQuery,
    ConversationQuery, DataAvailability, ErrorBody, Filter, Interval, Predicate, TokenResponse,
    UserDetail, UserDetailsQuery,
};

/// Largest request body accepted (`request.bytes.max`).
pub const MAX_BODY: usize = 512_000;

/// The simulated clock: fixed (`--now`, `set_now`) or real time.
#[derive(Debug, Default)]
pub struct SimClock(Mutex<Option<DateTime<Utc>>>);

impl SimClock {
    pub fn new(fixed: Option<DateTime<Utc>>) -> Self {
        SimClock(Mutex::new(fixed))
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(Utc::now)
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    }
}

/// Everything the handlers share.
pub struct SimState {
    pub cfg: SimConfig,
    pub dataset: Dataset,
    pub clock: SimClock,
    pub auth: Auth,
    pub limits: Limits,
    pub stats: Stats,
    pub faults: Faults,
    pub jobs: Jobs,
    correlation: AtomicU64,
}

impl SimState {
    pub fn new(cfg: SimConfig) -> Self {
        let enabled = !cfg.no_limits;
        SimState {
            dataset: Dataset::new(&cfg),
            clock: SimClock::new(cfg.now),
            auth: Auth::new(cfg.clients.clone(), cfg.token_ttl),
            limits: Limits::new(LimitState::new(
                Instant::now(),
                cfg.window,
                cfg.rate_per_window(),
                cfg.concurrency,
                enabled,
            )),
            stats: Stats::new(Utc::now()),
            faults: Faults::new(&cfg),
            jobs: Jobs::new(
                RunTime {
                    delay: cfg.job_delay,
                    delay_max: cfg.job_delay_max.unwrap_or(cfg.job_delay),
                    per_10k: cfg.job_run_per_10k,
                },
                cfg.job_expiry,
                cfg.job_concurrency,
                enabled,
            ),
            correlation: AtomicU64::new(1),
            cfg,
        }
    }

    fn correlation_id(&self) -> String {
        let n = self.correlation.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            self.cfg.seed as u32,
            n >> 48,
            n
        )
    }

    fn availability(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::from_std(self.cfg.availability_lag).unwrap_or_default()
    }
}

/// Registers every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    const CONV: &str = "/api/v2/analytics/conversations/details";
    const USERS: &str = "/api/v2/analytics/users/details";
    cfg.route("/oauth/token", web::post().to(token))
        .route(
            &format!("{CONV}/query"),
            web::post().to(conversations_query),
        )
        .route(
            &format!("{CONV}/jobs"),
            web::post().to(conversations_job_submit),
        )
        .route(
            &format!("{CONV}/jobs/availability"),
            web::get().to(conversations_availability),
        )
        .route(
            &format!("{CONV}/jobs/{{id}}"),
            web::get().to(conversations_job_status),
        )
        .route(
            &format!("{CONV}/jobs/{{id}}"),
            web::delete().to(conversations_job_delete),
        )
        .route(
            &format!("{CONV}/jobs/{{id}}/results"),
            web::get().to(conversations_job_results),
        )
        .route(CONV, web::get().to(conversations_by_ids))
        .route(
            "/api/v2/analytics/conversations/{conversationId}/details",
            web::get().to(conversation_by_id),
        )
        .route(&format!("{USERS}/query"), web::post().to(users_query))
        .route(&format!("{USERS}/jobs"), web::post().to(users_job_submit))
        .route(
            &format!("{USERS}/jobs/availability"),
            web::get().to(users_availability),
        )
        .route(
            &format!("{USERS}/jobs/{{id}}"),
            web::get().to(users_job_status),
        )
        .route(
            &format!("{USERS}/jobs/{{id}}"),
            web::delete().to(users_job_delete),
        )
        .route(
            &format!("{USERS}/jobs/{{id}}/results"),
            web::get().to(users_job_results),
        )
        .route("/api/v2/users", web::get().to(users_listing))
        .route("/api/v2/routing/queues", web::get().to(queues_listing))
        .route(
            "/api/v2/routing/wrapupcodes",
            web::get().to(wrapupcodes_listing),
        )
        .route(
            "/api/v2/authorization/divisions",
            web::get().to(divisions_listing),
        )
        .route("/__sim/stats", web::get().to(sim_stats))
        .route("/__sim/expected", web::get().to(sim_expected))
        .route(
            "/__sim/expected/digests",
            web::get().to(sim_expected_digests),
        )
        .route("/__sim/pipeline", web::post().to(sim_pipeline))
        .route("/__sim/clock", web::get().to(sim_clock_get))
        .route("/__sim/clock", web::post().to(sim_clock_set))
        .route("/__sim/tokens/expire", web::post().to(sim_expire_tokens))
        .default_service(web::to(not_found));
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// An error answer (rendered as a Genesys `ErrorBody`).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Set on a job-cap 429: whole seconds until a job place frees up.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn bad_request(m: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            code: "bad.request",
            message: m.into(),
            retry_after: None,
        }
    }
    fn new(status: u16, code: &'static str, m: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: m.into(),
            retry_after: None,
        }
    }
    fn not_found(m: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            code: "not.found",
            message: m.into(),
            retry_after: None,
        }
    }
}

/// A success answer: status and JSON bytes (or no body).
pub struct Reply {
    status: StatusCode,
    body: Option<Vec<u8>>,
}

impl Reply {
    fn ok(body: Vec<u8>) -> Self {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }
    fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Self {
        Reply {
            status,
            body: Some(serde_json::to_vec(v).unwrap_or_default()),
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>, cid: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header(("ININ-Correlation-Id", cid))
        .body(body)
}

fn error_response(e: &ApiError, cid: &str) -> HttpResponse {
    let body = ErrorBody {
        message: e.message.clone(),
        code: e.code.to_string(),
        status: e.status as i64,
        context_id: Some(cid.to_string()),
        ..ErrorBody::default()
    };
    json_response(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        serde_json::to_vec(&body).unwrap_or_default(),
        cid,
    )
}

fn auth_error(e: &AuthError) -> ApiError {
    match e {
        AuthError::BadRequest(m) => ApiError::bad_request(m.clone()),
        AuthError::BadCredentials | AuthError::Invalid => {
            ApiError::new(401, "bad.credentials", "Invalid login credentials.")
        }
        AuthError::Missing => ApiError::new(
            401,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        ),
    }
}

fn rejection_response(st: &SimState, r: &Rejection, cid: &str) -> HttpResponse {
    let value = match r.cause {
        Cause::Rate => st.cfg.rate_per_minute as i64,
        Cause::Jobs => st.cfg.job_concurrency as i64,
        Cause::Concurrency => st.cfg.concurrency as i64,
    };
    let body = too_many_requests_body(r, cid, value);
    HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::RETRY_AFTER, r.retry_after_secs.to_string()))
        .insert_header(("ININ-Correlation-Id", cid))
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                413,
                "request.entity.too.large",
                format!("The request is over the size limit. Maximum bytes: {MAX_BODY}"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("A request body is required"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The request body could not be read: {e}")))
}

/// What a handler gets besides the body.
pub struct Call<'a> {
    pub st: &'a SimState,
    pub req: &'a HttpRequest,
    pub client: String,
    pub now: DateTime<Utc>,
    pub hits_drift: i64,
}

/// The path of every API request: body, token, limits, latency, faults, handler, one write.
async fn api<F>(
    st: web::Data<SimState>,
    req: HttpRequest,
    payload: web::Payload,
    endpoint: &'static str,
    handler: F,
) -> HttpResponse
where
    F: FnOnce(&Call<'_>, &[u8]) -> Result<Reply, ApiError>,
{
    let cid = st.correlation_id();
    st.stats.request(endpoint, None);
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e) => return error_response(&e, &cid),
    };
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let client = match st.auth.check(authz, Instant::now()) {
        Ok(c) => c,
        Err(e) => {
            st.stats.unauthorized();
            return error_response(&auth_error(&e), &cid);
        }
    };
    st.stats.client(&client);
    let in_flight = match st.limits.admit(&client, Instant::now()) {
        Ok(g) => g,
        Err(r) => {
            st.stats.rate_limited(&client, r.cause);
            return rejection_response(&st, &r, &cid);
        }
    };
    let plan = st.faults.plan();
    if !plan.latency.is_zero() {
        actix_rt::time::sleep(plan.latency).await;
    }
    if let Some(code) = plan.server_error {
        st.stats.fault_5xx();
        drop(in_flight);
        let (c, m) = match code {
            502 => ("bad.gateway", "Bad gateway"),
            504 => ("gateway.timeout", "The request timed out at the gateway"),
            _ => (
                "service.unavailable",
                "Service unavailable, try again later",
            ),
        };
        return error_response(&ApiError::new(code, c, m), &cid);
    }
    st.dataset.run_nightly(st.clock.now());
    let call = Call {
        st: &st,
        req: &req,
        client,
        now: st.clock.now(),
        hits_drift: plan.hits_drift,
    };
    let result = handler(&call, &body);
    drop(in_flight);
    let mut resp = match result {
        Ok(Reply {
            status,
            body: Some(mut bytes),
        }) => {
            if plan.malformed && status == StatusCode::OK {
                st.stats.fault_malformed();
                truncate(&mut bytes);
            }
            st.stats.bytes(bytes.len());
            json_response(status, bytes, &cid)
        }
        Ok(Reply { status, body: None }) => HttpResponse::build(status)
            .insert_header(("ININ-Correlation-Id", cid.as_str()))
            .finish(),
        Err(ApiError {
            retry_after: Some(secs),
            ..
        }) => {
            let r = Rejection {
                cause: Cause::Jobs,
                retry_after_secs: secs,
            };
            st.stats.rate_limited(&call.client, r.cause);
            rejection_response(&st, &r, &cid)
        }
        Err(e) => error_response(&e, &cid),
    };
    if st.cfg.legacy_headers {
        let now = Instant::now();
        let l = st.limits.lock();
        let used = l.used(&call.client, now);
        let reset = super::limits::ceil_secs(now, l.window_end(l.window_index(now)));
        drop(l);
        let h = resp.headers_mut();
        for (k, v) in [
            (
                "inin-ratelimit-allowed",
                u64::from(st.cfg.rate_per_window()),
            ),
            ("inin-ratelimit-count", used as u64),
            ("inin-ratelimit-reset", reset),
        ] {
            if let Ok(v) = header::HeaderValue::from_str(&v.to_string()) {
                h.insert(header::HeaderName::from_static(k), v);
            }
        }
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// OAuth
// ---------------------------------------------------------------------------------------------

async fn token(st: web::Data<SimState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let cid = st.correlation_id();
    st.stats.request("oauth.token", None);
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e) => return error_response(&e, &cid),
    };
    let form: Vec<(String, String)> = form_pairs(&body);
    let authz = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let login = LoginRequest {
        authorization: authz,
        form,
    };
    match st.auth.login(&login, Instant::now()) {
        Ok((_, access_token)) => {
            let t = TokenResponse {
                access_token,
                token_type: Some("bearer".into()),
                expires_in: st.auth.ttl().as_secs() as i64,
            };
            json_response(
                StatusCode::OK,
                serde_json::to_vec(&t).unwrap_or_default(),
                &cid,
            )
        }
        Err(e) => {
            let api = auth_error(&e);
            let oauth_error = match e {
                AuthError::BadRequest(ref m) if m.starts_with("Unsupported") => {
                    "unsupported_grant_type"
                }
                AuthError::BadRequest(_) => "invalid_request",
                _ => "invalid_client",
            };
            let body = json!({
                "error": oauth_error,
                "description": api.message,
                "error_description": api.message,
                "message": api.message,
                "code": api.code,
                "status": api.status,
                "contextId": cid,
                "details": [],
                "errors": [],
            });
            json_response(
                StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_REQUEST),
                serde_json::to_vec(&body).unwrap_or_default(),
                &cid,
            )
        }
    }
}

/// `application/x-www-form-urlencoded` pairs (actix-web's own form decoder).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    web::Query::<Vec<(String, String)>>::from_query(&text)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------------------------

fn conversation_selection(
    interval: &str,
    order: Option<&str>,
    order_by: Option<&str>,
    conversation_filters: &[Filter],
    segment_filters: &[Filter],
    matching: Matching,
    limit_interval: bool,
) -> Result<Selection, ApiError> {
    let order = parse_order(order).map_err(|e| ApiError::bad_request(e.0))?;
    let order_by = parse_order_by(order_by).map_err(|e| ApiError::bad_request(e.0))?;
    validate_filters(
        conversation_filters,
        CONVERSATION_DIMENSIONS,
        "conversationFilters",
    )
    .map_err(|e| ApiError::bad_request(e.0))?;
    validate_filters(segment_filters, SEGMENT_DIMENSIONS, "segmentFilters")
        .map_err(|e| ApiError::bad_request(e.0))?;
    let has_filters = !conversation_filters.is_empty() || !segment_filters.is_empty();
    let interval = if limit_interval {
        parse_interval(interval, has_filters).map_err(|e| ApiError::bad_request(e.0))?
    } else {
        Interval::parse(interval)
            .map_err(|e| ApiError::bad_request(format!("Invalid interval: {e}")))?
    };
    Ok(Selection {
        interval,
        matching,
        order,
        order_by,
        conversation_filters: conversation_filters.to_vec(),
        segment_filters: segment_filters.to_vec(),
        limit: None,
    })
}

async fn conversations_query(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    api(st, req, p, "conversations.query", |c, body| {
        let q: ConversationQuery = parse_json(body)?;
        let sel = conversation_selection(
            &q.interval,
            q.order.as_deref(),
            q.order_by.as_deref(),
            &q.conversation_filters,
            &q.segment_filters,
            Matching::StartDay,
            true,
        )?;
        let (size, number) = check_paging(q.paging, c.st.cfg.page_size_max, c.st.cfg.paging_cap)
            .map_err(|e| ApiError::bad_request(e.0))?;
        let now_ms = c.now.timestamp_millis();
        let hits = select(&c.st.dataset, &sel, now_ms);
        let total = (hits.len() as i64 + c.hits_drift).max(0);
        let from = (number - 1) * size;
        let page = hits.get(from..(from + size).min(hits.len())).unwrap_or(&[]);
        if page.is_empty() {
            return Ok(Reply::ok(format!("{{\"totalHits\":{total}}}").into_bytes()));
        }
        c.st.stats
            .conversations_served(page.iter().map(|h| h.skeleton().id));
        let mut out = Vec::with_capacity(page.len() * 3000 + 64);
        out.extend_from_slice(b"{\"conversations\":[");
        for (i, h) in page.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&c.st.dataset.query_json(&h.hour, h.idx as usize, now_ms));
        }
        out.extend_from_slice(format!("],\"totalHits\":{total}}}").as_bytes());
        Ok(Reply::ok(out))
    })
    .await
}

/// Conversations by id, as seen now, with participant attributes (`AnalyticsConversation`).
fn conversations_json(c: &Call<'_>, ids: &[String]) -> Result<Vec<u8>, ApiError> {
    let now_ms = c.now.timestamp_millis();
    let mut out = Vec::with_capacity(ids.len() * 3200 + 32);
    out.extend_from_slice(b"{\"conversations\":[");
    for (i, s) in c.st.dataset.find_ids(ids, now_ms).iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let full = c.st.dataset.build(s, true);
        let v = c.st.dataset.view_at(&full, c.now).unwrap_or(full);
        serde_json::to_writer(&mut out, &v).map_err(internal)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Most ids one batch lookup accepts.
pub const MAX_IDS: usize = 100;

async fn conversations_by_ids(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    api(st, req, p, "conversations.details.batch", |c, _| {
        #[derive(Deserialize)]
        struct Ids {
            id: Option<String>,
        }
        let q = web::Query::<Ids>::from_query(c.req.query_string())
            .map_err(|e| ApiError::bad_request(format!("bad query parameters: {e}")))?;
        let ids: Vec<String> =
            q.id.as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "id is required: one or more conversation ids, comma-separated",
            ));
        }
        if ids.len() > MAX_IDS {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_IDS} ids per request, got {}",
                ids.len()
            )));
        }
        Ok(Reply::ok(conversations_json(c, &ids)?))
    })
    .await
}

async fn conversation_by_id(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    api(st, req, p, "conversations.details.get", |c, _| {
        let id = c
            .req
            .match_info()
            .get("conversationId")
            .unwrap_or("")
            .to_string();
        let found =
            c.st.dataset
                .find_ids(std::slice::from_ref(&id), c.now.timestamp_millis());
        let Some(s) = found.first() else {
            return Err(ApiError::not_found(format!(
                "Conversation {id} was not found"
            )));
        };
        let full = c.st.dataset.build(s, true);
        let v = c.st.dataset.view_at(&full, c.now).unwrap_or(full);
        Ok(Reply::json(StatusCode::OK, &v))
    })
    .await
}

fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::NotFound => {
            ApiError::not_found("The job was not found (it may have been deleted)")
        }
        JobError::Cap { retry_after_secs } => ApiError {
            status: 429,
            code: "too.many.requests.retry.after",
            message: format!(
                "Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"
            ),
            retry_after: Some(retry_after_secs),
        },
    }
}

/// Submits a job; a job-cap refusal is answered as a 429 with Retry-After.
async fn submit_job(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
    endpoint: &'static str,
    kind: JobKind,
) -> HttpResponse {
    api(st, req, p, endpoint, move |c, body| {
        let query = match kind {
            JobKind::Conversations => {
                let q: AsyncConversationQuery = parse_json(body)?;
                let matching = if q.start_of_day_interval_matching == Some(true) {
                    Matching::StartDay
                } else {
                    Matching::Overlap
                };
                let mut sel = conversation_selection(
                    &q.interval,
                    q.order.as_deref(),
                    q.order_by.as_deref(),
                    &q.conversation_filters,
                    &q.segment_filters,
                    matching,
                    false,
                )?;
                sel.limit = limit(q.limit)?;
                JobQuery::Conversations(sel)
            }
            JobKind::Users => {
                let q: AsyncUserDetailsQuery = parse_json(body)?;
                JobQuery::Users(user_selection(
                    &q.interval,
                    q.order.as_deref(),
                    &q.user_filters,
                    &q.presence_filters,
                    &q.routing_status_filters,
                    false,
                    limit(q.limit)?,
                )?)
            }
        };
        let fails = c.st.faults.job_fails();
        let early_expiry = if fails {
            None
        } else {
            c.st.faults.job_expires_early()
        };
        let availability = c.st.availability(c.now);
        let availability_ms = availability.timestamp_millis();
        let results = Arc::new(match &query {
            JobQuery::Conversations(sel) => {
                JobResults::Conversations(select(&c.st.dataset, sel, availability_ms))
            }
            JobQuery::Users(sel) => JobResults::Users(users_for_job(c.st, sel, availability)),
        });
        let run = c.st.jobs.run_time().of(results.len(), rand::random());
        let new = NewJob {
            id: uuid_v4(),
            kind,
            query,
            results,
            run,
            availability_ms,
            fails,
            early_expiry,
        };
        let job_id =
            c.st.jobs
                .submit(new, Instant::now(), c.now)
                .map_err(job_error)?;
        if fails {
            c.st.stats.job_failed();
        }
        Ok(Reply::json(
            StatusCode::ACCEPTED,
            &AsyncQueryResponse { job_id },
        ))
    })
    .await
}

fn limit(l: Option<i64>) -> Result<Option<usize>, ApiError> {
    match l {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be at least 1, got {n}"
        ))),
    }
}

fn uuid_v4() -> String {
    let v: u128 = rand::random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

async fn conversations_job_submit(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    submit_job(
        st,
        req,
        p,
        "conversations.jobs.submit",
        JobKind::Conversations,
    )
    .await
}

async fn users_job_submit(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    submit_job(st, req, p, "users.jobs.submit", JobKind::Users).await
}

fn job_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or("").to_string()
}

fn job_status(c: &Call<'_>, kind: JobKind) -> Result<Reply, ApiError> {
    let job = c.st.jobs.get(&job_id(c.req), kind).map_err(job_error)?;
    let s = c.st.jobs.status(&job, Instant::now(), c.now);
    if s.state == job_state::EXPIRED {
        c.st.stats.job_expired();
    }
    Ok(Reply::json(StatusCode::OK, &s.status))
}

fn job_delete(c: &Call<'_>, kind: JobKind) -> Result<Reply, ApiError> {
    c.st.jobs.delete(&job_id(c.req), kind).map_err(job_error)?;
    Ok(Reply {
        status: StatusCode::NO_CONTENT,
        body: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultsParams {
    cursor: Option<String>,
    page_size: Option<String>,
}

fn job_results(c: &Call<'_>, kind: JobKind) -> Result<Reply, ApiError> {
    let params: ResultsParams = web::Query::<ResultsParams>::from_query(c.req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| ApiError::bad_request(format!("bad query parameters: {e}")))?;
    let max = c.st.cfg.job_page_size_max as usize;
    let size = match params.page_size.as_deref() {
        None => max,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "pageSize must be between 1 and {max}, got {s:?}"
                )))
            }
        },
    };
    let offset = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(cur) => decode_cursor(cur).ok_or_else(|| ApiError::bad_request("Invalid cursor"))?,
    };
    let job = c.st.jobs.get(&job_id(c.req), kind).map_err(job_error)?;
    let status = c.st.jobs.status(&job, Instant::now(), c.now);
    match status.state {
        "FULFILLED" => {}
        "EXPIRED" => {
            c.st.stats.job_expired();
            return Err(ApiError::not_found("The job's results have expired"));
        }
        "FAILED" => {
            return Err(ApiError::bad_request(
                "The job failed; its results are not available",
            ))
        }
        s => {
            return Err(ApiError::bad_request(format!(
                "The job is not complete (state {s}); poll its status until FULFILLED"
            )))
        }
    }
    let availability = Jobs::availability(&job);
    let results = job.results.clone();
    let (len, mut out) = match results.as_ref() {
        JobResults::Conversations(h) => {
            (h.len(), Vec::with_capacity(size.min(h.len()) * 3200 + 128))
        }
        JobResults::Users(u) => (u.len(), Vec::with_capacity(size.min(u.len()) * 2000 + 128)),
    };
    let end = (offset + size).min(len);
    let from = offset.min(len);
    let key = if kind == JobKind::Conversations {
        "conversations"
    } else {
        "userDetails"
    };
    match results.as_ref() {
        JobResults::Conversations(h) => {
            c.st.stats
                .conversations_served(h[from..end].iter().map(|h| h.skeleton().id))
        }
        JobResults::Users(u) => c.st.stats.user_details_served(&u[from..end]),
    }
    out.push(b'{');
    if from < end {
        out.extend_from_slice(format!("\"{key}\":[").as_bytes());
        for i in from..end {
            if i > from {
                out.push(b',');
            }
            match results.as_ref() {
                JobResults::Conversations(h) => {
                    let s = h[i].skeleton();
                    let full = c.st.dataset.build(s, true);
                    let v = c.st.dataset.view_at(&full, availability).unwrap_or(full);
                    serde_json::to_writer(&mut out, &v).map_err(internal)?;
                }
                JobResults::Users(u) => {
                    serde_json::to_writer(&mut out, &u[i]).map_err(internal)?;
                }
            }
        }
        out.extend_from_slice(b"],");
    }
    if end < len {
        out.extend_from_slice(format!("\"cursor\":\"{}\",", encode_cursor(end)).as_bytes());
    }
    out.extend_from_slice(
        format!(
            "\"dataAvailabilityDate\":\"{}\"}}",
            crate::genesys::model::instant::format(&availability)
        )
        .as_bytes(),
    );
    Ok(Reply::ok(out))
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::new(500, "internal.server.error", e.to_string())
}

fn availability(c: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        StatusCode::OK,
        &DataAvailability {
            data_availability_date: Some(c.st.availability(c.now)),
        },
    ))
}

macro_rules! job_handlers {
    ($status:ident, $delete:ident, $results:ident, $avail:ident, $kind:expr, $name:literal) => {
        async fn $status(
            st: web::Data<SimState>,
            req: HttpRequest,
            p: web::Payload,
        ) -> HttpResponse {
            api(st, req, p, concat!($name, ".jobs.status"), |c, _| {
                job_status(c, $kind)
            })
            .await
        }
        async fn $delete(
            st: web::Data<SimState>,
            req: HttpRequest,
            p: web::Payload,
        ) -> HttpResponse {
            api(st, req, p, concat!($name, ".jobs.delete"), |c, _| {
                job_delete(c, $kind)
            })
            .await
        }
        async fn $results(
            st: web::Data<SimState>,
            req: HttpRequest,
            p: web::Payload,
        ) -> HttpResponse {
            api(st, req, p, concat!($name, ".jobs.results"), |c, _| {
                job_results(c, $kind)
            })
            .await
        }
        async fn $avail(
            st: web::Data<SimState>,
            req: HttpRequest,
            p: web::Payload,
        ) -> HttpResponse {
            api(st, req, p, concat!($name, ".jobs.availability"), |c, _| {
                availability(c)
            })
            .await
        }
    };
}

job_handlers!(
    conversations_job_status,
    conversations_job_delete,
    conversations_job_results,
    conversations_availability,
    JobKind::Conversations,
    "conversations"
);
job_handlers!(
    users_job_status,
    users_job_delete,
    users_job_results,
    users_availability,
    JobKind::Users,
    "users"
);

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

fn user_selection(
    interval: &str,
    order: Option<&str>,
    user_filters: &[Filter],
    presence_filters: &[Filter],
    routing_filters: &[Filter],
    limit_interval: bool,
    limit: Option<usize>,
) -> Result<UserSelection, ApiError> {
    let order = parse_order(order).map_err(|e| ApiError::bad_request(e.0))?;
    validate_filters(user_filters, &["userId"], "userFilters")
        .map_err(|e| ApiError::bad_request(e.0))?;
    validate_filters(
        presence_filters,
        &["systemPresence", "organizationPresenceId"],
        "presenceFilters",
    )
    .map_err(|e| ApiError::bad_request(e.0))?;
    validate_filters(routing_filters, &["routingStatus"], "routingStatusFilters")
        .map_err(|e| ApiError::bad_request(e.0))?;
    let has_filters =
        !user_filters.is_empty() || !presence_filters.is_empty() || !routing_filters.is_empty();
    let interval = if limit_interval {
        parse_interval(interval, has_filters).map_err(|e| ApiError::bad_request(e.0))?
    } else {
        Interval::parse(interval)
            .map_err(|e| ApiError::bad_request(format!("Invalid interval: {e}")))?
    };
    Ok(UserSelection {
        interval,
        descending: order == Order::Desc,
        user_filters: user_filters.to_vec(),
        presence_filters: presence_filters.to_vec(),
        routing_status_filters: routing_filters.to_vec(),
        limit,
    })
}

/// Evaluates and/or filters over a record whose dimensions `get` returns.
fn eval_simple(f: &Filter, get: &dyn Fn(&str) -> Option<String>) -> bool {
    let pred = |p: &Predicate| {
        let v = p.dimension.as_deref().and_then(get);
        match p.operator.as_deref().unwrap_or("matches") {
            "exists" => v.is_some(),
            "notExists" => v.is_none(),
            _ => v.is_some() && v.as_deref() == p.value.as_deref(),
        }
    };
    let mut rs = f.predicates.iter().map(pred).collect::<Vec<_>>();
    rs.extend(f.clauses.iter().map(|c| eval_simple(c, get)));
    if f.kind == "or" {
        rs.iter().any(|&r| r)
    } else {
        rs.iter().all(|&r| r)
    }
}

/// The stored user documents a selection reads, filtered.
fn user_docs(st: &SimState, sel: &UserSelection, now: DateTime<Utc>) -> Vec<super::data::UserDoc> {
    let uf = sel.user_filters.clone();
    let keep_user = move |u: &super::data::User| {
        uf.iter()
            .all(|f| eval_simple(f, &|d| (d == "userId").then(|| u.id.clone())))
    };
    let mut docs = st.dataset.user_docs(sel.interval, now, &keep_user);
    if !sel.presence_filters.is_empty() || !sel.routing_status_filters.is_empty() {
        for d in &mut docs {
            d.detail.primary_presence.retain(|p| {
                sel.presence_filters.iter().all(|f| {
                    eval_simple(f, &|k| match k {
                        "systemPresence" => p.system_presence.clone(),
                        "organizationPresenceId" => p.organization_presence_id.clone(),
                        _ => None,
                    })
                })
            });
            d.detail.routing_status.retain(|r| {
                sel.routing_status_filters.iter().all(|f| {
                    eval_simple(f, &|k| {
                        (k == "routingStatus")
                            .then(|| r.routing_status.clone())
                            .flatten()
                    })
                })
            });
        }
        docs.retain(|d| {
            !d.detail.primary_presence.is_empty() || !d.detail.routing_status.is_empty()
        });
    }
    if sel.descending {
        docs.reverse();
    }
    docs
}

fn users_for_job(st: &SimState, sel: &UserSelection, at: DateTime<Utc>) -> Vec<UserDetail> {
    let docs = user_docs(st, sel, at);
    let mut out: Vec<UserDetail> = Vec::new();
    for d in docs {
        match out.last_mut() {
            Some(last) if last.user_id == d.detail.user_id => merge_into(last, d.detail),
            _ => out.push(d.detail),
        }
    }
    if let Some(l) = sel.limit {
        out.truncate(l);
    }
    out
}

async fn users_query(st: web::Data<SimState>, req: HttpRequest, p: web::Payload) -> HttpResponse {
    api(st, req, p, "users.query", |c, body| {
        let q: UserDetailsQuery = parse_json(body)?;
        let sel = user_selection(
            &q.interval,
            q.order.as_deref(),
            &q.user_filters,
            &q.presence_filters,
            &q.routing_status_filters,
            true,
            None,
        )?;
        let (size, number) = check_paging(q.paging, c.st.cfg.page_size_max, c.st.cfg.paging_cap)
            .map_err(|e| ApiError::bad_request(e.0))?;
        let docs = user_docs(c.st, &sel, c.now);
        let total = (docs.len() as i64 + c.hits_drift).max(0);
        let from = ((number - 1) * size).min(docs.len());
        let to = (from + size).min(docs.len());
        // Day-spanning records are stored per day: documents of the same user on one page are
        // merged and their duplicates removed, so the page can be shorter than pageSize.
        let mut page: Vec<UserDetail> = Vec::new();
        for d in docs.into_iter().skip(from).take(to - from) {
            match page.last_mut() {
                Some(last) if last.user_id == d.detail.user_id => merge_into(last, d.detail),
                _ => page.push(d.detail),
            }
        }
        c.st.stats.user_details_served(&page);
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(skip_serializing_if = "Option::is_none")]
            user_details: Option<Vec<UserDetail>>,
            total_hits: i64,
        }
        Ok(Reply::json(
            StatusCode::OK,
            &Page {
                user_details: (!page.is_empty()).then_some(page),
                total_hits: total,
            },
        ))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Ground truth and control (/__sim)
// ---------------------------------------------------------------------------------------------

async fn sim_stats(st: web::Data<SimState>) -> HttpResponse {
    let v = st.stats.snapshot(&st.limits.lock());
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&v).unwrap_or_default(),
        "sim",
    )
}

#[derive(Deserialize)]
struct ExpectedParams {
    interval: String,
}

async fn sim_expected(st: web::Data<SimState>, q: web::Query<ExpectedParams>) -> HttpResponse {
    let iv = match Interval::parse(&q.interval) {
        Ok(iv) => iv,
        Err(e) => return error_response(&ApiError::bad_request(e), "sim"),
    };
    let now = st.clock.now();
    st.dataset.run_nightly(now);
    let end = iv.end.min(now + chrono::Duration::milliseconds(1));
    let mut conversations = Vec::new();
    if end > iv.start {
        for c in st
            .dataset
            .conversations_started_in(Interval::new(iv.start, end))
        {
            let Some(v) = st.dataset.view_at(&c, now) else {
                continue;
            };
            let sessions = v.participants.iter().flat_map(|p| &p.sessions);
            let mut o = json!({
                "conversationId": v.conversation_id,
                "conversationStart": crate::genesys::model::instant::format(&v.conversation_start),
                "final": v.conversation_end.is_some(),
                "participants": v.participants.len(),
                "sessions": sessions.clone().count(),
                "segments": sessions.clone().map(|s| s.segments.len()).sum::<usize>(),
                "metrics": sessions.map(|s| s.metrics.len()).sum::<usize>(),
                "digest": crate::digest::conversation_digest(&v),
            });
            if let Some(e) = v.conversation_end {
                o["conversationEnd"] = json!(crate::genesys::model::instant::format(&e));
            }
            conversations.push(o);
        }
    }
    let users = st.dataset.user_details(iv, now);
    let v = json!({
        "interval": iv.to_string(),
        "now": crate::genesys::model::instant::format(&now),
        "conversationCount": conversations.len(),
        "conversations": conversations,
        "users": {
            "users": users.len(),
            "presence": users.iter().map(|u| u.primary_presence.len()).sum::<usize>(),
            "routingStatus": users.iter().map(|u| u.routing_status.len()).sum::<usize>(),
        },
    });
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&v).unwrap_or_default(),
        "sim",
    )
}

async fn sim_clock_get(st: web::Data<SimState>) -> HttpResponse {
    let v = json!({"now": crate::genesys::model::instant::format(&st.clock.now())});
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&v).unwrap_or_default(),
        "sim",
    )
}

#[derive(Deserialize)]
struct ClockBody {
    now: String,
}

async fn sim_clock_set(st: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let parsed = serde_json::from_slice::<ClockBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| crate::genesys::model::parse_instant(&b.now));
    match parsed {
        Ok(t) => {
            st.clock.set(t);
            sim_clock_get(st).await
        }
        Err(e) => error_response(&ApiError::bad_request(e), "sim"),
    }
}

async fn sim_expire_tokens(st: web::Data<SimState>) -> HttpResponse {
    st.auth.expire_all();
    HttpResponse::NoContent().finish()
}

async fn not_found(st: web::Data<SimState>, req: HttpRequest) -> HttpResponse {
    let cid = st.correlation_id();
    error_response(
        &ApiError::not_found(format!("No resource at {} {}", req.method(), req.path())),
        &cid,
    )
}

/// `GET /__sim/expected/digests?interval=A/B`: the content digest of every conversation that
/// started in the interval and of every user record overlapping it, as seen now
/// ([`crate::digest`]; compare a copy with [`crate::digest::compare_digests`]).
async fn sim_expected_digests(
    st: web::Data<SimState>,
    q: web::Query<ExpectedParams>,
) -> HttpResponse {
    let iv = match Interval::parse(&q.interval) {
        Ok(iv) => iv,
        Err(e) => return error_response(&ApiError::bad_request(e), "sim"),
    };
    let now = st.clock.now();
    st.dataset.run_nightly(now);
    let mut out = crate::digest::ContentDigests::default();
    let end = iv.end.min(now + chrono::Duration::milliseconds(1));
    if end > iv.start {
        // One conversation built at a time: the digests of a year fit in little memory.
        let (from, to) = (iv.start.timestamp_millis(), end.timestamp_millis());
        st.dataset.for_each_started_in(from, to, |_, s| {
            let c = st.dataset.build(s, false);
            let Some(v) = st.dataset.view_at(&c, now) else {
                return;
            };
            if v.conversation_end.is_none() {
                out.in_progress.insert(v.conversation_id.clone());
            }
            let digest = crate::digest::conversation_digest(&v);
            out.conversations.insert(v.conversation_id, digest);
        });
    }
    // A user record still open when jobs last saw the data (their dataAvailabilityDate) may be
    // stored in that older version until it is fetched again: only its presence is compared.
    let available = st.availability(now);
    for u in st.dataset.user_details(iv, now) {
        let open = u
            .primary_presence
            .iter()
            .filter(|p| p.end_time.is_none_or(|e| e > available))
            .map(|p| crate::digest::presence_key(&u.user_id, p.start_time))
            .chain(
                u.routing_status
                    .iter()
                    .filter(|r| r.end_time.is_none_or(|e| e > available))
                    .map(|r| crate::digest::routing_key(&u.user_id, r.start_time)),
            );
        out.in_progress.extend(open);
        out.user_records
            .extend(crate::digest::user_record_digests(&u));
    }
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&out).unwrap_or_default(),
        "sim",
    )
}

/// `POST /__sim/pipeline {"changeFraction":0.05,"deleteFraction":0.01,"minAgeHours":48}`:
/// runs the analytics pipeline once at the simulated now ([`super::pipeline`]).
async fn sim_pipeline(st: web::Data<SimState>, body: web::Bytes) -> HttpResponse {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(super::pipeline::PipelineRequest::default())
    } else {
        serde_json::from_slice::<super::pipeline::PipelineRequest>(&body).map_err(|e| e.to_string())
    };
    let report = request.and_then(|r| {
        st.dataset
            .run_pipeline(r, st.clock.now(), true)
            .map_err(|e| e.to_string())
    });
    match report {
        Ok(r) => json_response(
            StatusCode::OK,
            serde_json::to_vec(&r).unwrap_or_default(),
            "sim",
        ),
        Err(e) => error_response(&ApiError::bad_request(e), "sim"),
    }
}

// ---------------------------------------------------------------------------------------------
// Directory listings (src/sim/directory.rs)
// ---------------------------------------------------------------------------------------------

async fn directory_listing(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
    listing: super::directory::SimListing,
) -> HttpResponse {
    api(st, req, p, listing.endpoint(), move |c, _| {
        let q = web::Query::<super::directory::ListingQuery>::from_query(c.req.query_string())
            .map_err(|e| ApiError::bad_request(format!("bad query parameters: {e}")))?;
        let body = super::directory::page(&c.st.dataset, listing, &q, c.now)
            .map_err(ApiError::bad_request)?;
        Ok(Reply::json(StatusCode::OK, &body))
    })
    .await
}

async fn users_listing(st: web::Data<SimState>, req: HttpRequest, p: web::Payload) -> HttpResponse {
    directory_listing(st, req, p, super::directory::SimListing::Users).await
}

async fn queues_listing(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    directory_listing(st, req, p, super::directory::SimListing::Queues).await
}

async fn wrapupcodes_listing(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    directory_listing(st, req, p, super::directory::SimListing::WrapupCodes).await
}

async fn divisions_listing(
    st: web::Data<SimState>,
    req: HttpRequest,
    p: web::Payload,
) -> HttpResponse {
    directory_listing(st, req, p, super::directory::SimListing::Divisions).await
}
