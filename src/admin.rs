//! The admin HTTP server: `/healthz`, `/readyz`, `/metrics`, `/status`.
//!
//! Why: a service that runs for months must answer "is it alive, can it do its job, how far along
//! is it, is it hurting the org's API budget" to a load balancer, Prometheus and a human with
//! `curl`, without touching Genesys. The server runs on its own thread with its own actix
//! `System`, so it keeps answering while the engine's arbiters are busy, and it can be started
//! from anywhere (tests, the engine, before or after the engine's System).
//!
//! Guarantees:
//! - Bound to 127.0.0.1:9187 unless configured otherwise (`admin_addr` / `SLUICE_ADMIN_ADDR`); a
//!   warning is logged when the address is reachable from other hosts. Port 0 picks a free port;
//!   [`AdminHandle::addr`] returns the bound address.
//! - Nothing it serves calls Genesys; the checkpoint is read on a separate thread with a timeout,
//!   so a hung database makes `/readyz` fail instead of hanging.
//! - Nothing it serves contains a secret: it never sees credentials, only counts, states, endpoint
//!   names and stored partition errors.
//!
//! Wiring: [`engine::start`](crate::engine::start) starts it when `EngineOptions::admin_addr`
//! is set (`sluice backfill` and `sluice run` always set it), with the engine's metrics, its
//! database, its RateLimiter and Writer, and a [`RunInfo`] whose phase follows the Coordinator.
//! Tests can also start it alone over any [`CheckpointReader`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;

use crate::actors::rate_limiter::RateLimiterHandle;
use crate::actors::writer::{Writer, WriterStats};
use crate::clock::{SharedClock, SystemClock};
use crate::metrics::{
    AttemptError, LimiterGauges, Metrics, PartitionCount, ScrapeSnapshot, TokenHealth, WriterGauges,
};
use crate::status::{watermark_lag_seconds, PartitionView, RunView, StatusReport};

/// The default admin address: loopback only.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9187";

/// How long a checkpoint read may take before `/readyz` calls the database unreachable.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads the checkpoint tables. Blocking; the admin server calls it on a thread of its own.
pub trait CheckpointReader: Send + Sync + 'static {
    /// Is the database reachable and does it hold the checkpoint table?
    fn ping(&self) -> Result<(), String>;
    /// Every partition and run.
    fn load(&self) -> Result<(Vec<PartitionView>, Vec<RunView>), String>;
}

/// Live state of the running engine's actors (absent when no engine runs in this process).
pub trait EngineProbe: Send + Sync + 'static {
    fn limiter(&self) -> LocalBoxFuture<'_, Option<LimiterGauges>>;
    fn writer(&self) -> LocalBoxFuture<'_, Option<WriterGauges>>;
}

/// The real engine's actors, read at scrape time. Each read gives up after
/// [`ENGINE_PROBE_TIMEOUT`] (a Writer busy with a long transaction answers late), leaving the
/// gauges at their last value.
#[derive(Clone, Default)]
pub struct LiveEngine {
    pub limiter: Option<RateLimiterHandle>,
    pub writer: Option<Addr<Writer>>,
}

/// How long a scrape waits for an actor's state.
pub const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl EngineProbe for LiveEngine {
    fn limiter(&self) -> LocalBoxFuture<'_, Option<LimiterGauges>> {
        Box::pin(async move {
            let limiter = self.limiter.as_ref()?;
            match tokio::time::timeout(ENGINE_PROBE_TIMEOUT, limiter.state()).await {
                Ok(Ok(state)) => Some(LimiterGauges::from(&state)),
                _ => None,
            }
        })
    }

    fn writer(&self) -> LocalBoxFuture<'_, Option<WriterGauges>> {
        Box::pin(async move {
            let writer = self.writer.as_ref()?;
            match tokio::time::timeout(ENGINE_PROBE_TIMEOUT, writer.send(WriterStats)).await {
                Ok(Ok(s)) => Some(WriterGauges {
                    queue_depth: s.queue_depth as u64,
                    batches: s.batches,
                    rows_written: s.rows_written,
                    conversations_written: s.conversations_written,
                    last_batch_seconds: s.last_batch_ms as f64 / 1000.0,
                    conversations_changed: s.conversations_changed,
                    conversations_deleted: s.conversations_deleted,
                    user_records_deleted: s.user_records_deleted,
                    conversations_unchanged: s.conversations_unchanged,
                    user_records_unchanged: s.user_records_unchanged,
                }),
                _ => None,
            }
        })
    }
}

/// What the current run is doing, set by the engine.
#[derive(Debug)]
pub struct RunInfo {
    pub started_at: DateTime<Utc>,
    /// The command that started it: backfill, run, demo.
    pub command: String,
    phase: Mutex<String>,
}

impl RunInfo {
    pub fn new(command: &str, started_at: DateTime<Utc>) -> Self {
        RunInfo {
            started_at,
            command: command.to_string(),
            phase: Mutex::new("starting".to_string()),
        }
    }

    /// E.g. "backfill", "catch-up", "shutting down".
    pub fn set_phase(&self, phase: &str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase.to_string();
    }

    pub fn phase(&self) -> String {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Everything the admin server reads.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub checkpoint: Arc<dyn CheckpointReader>,
    pub engine: Option<Arc<dyn EngineProbe>>,
    pub run: Arc<RunInfo>,
    /// Data newer than now minus this is not final (the engine's watermark delay).
    pub watermark_delay: chrono::Duration,
    pub clock: SharedClock,
}

impl AdminState {
    /// State for a running engine: the checkpoint read from `database`, the limiter's and the
    /// Writer's state from their actors, the engine's watermark delay.
    pub fn for_engine(
        metrics: Arc<Metrics>,
        database: crate::storage::DatabaseUrl,
        engine: LiveEngine,
        run: Arc<RunInfo>,
        watermark_delay: chrono::Duration,
    ) -> Self {
        let mut st = AdminState::new(
            metrics,
            Arc::new(crate::status::DatabaseCheckpoint::new(database)),
            Some(Arc::new(engine)),
            run,
        );
        st.watermark_delay = watermark_delay;
        st
    }

    /// The same state with `clock` for the watermark (the engine's calendar clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// State with the system clock and the default 4 h watermark delay.
    pub fn new(
        metrics: Arc<Metrics>,
        checkpoint: Arc<dyn CheckpointReader>,
        engine: Option<Arc<dyn EngineProbe>>,
        run: Arc<RunInfo>,
    ) -> Self {
        AdminState {
            metrics,
            checkpoint,
            engine,
            run,
            watermark_delay: chrono::Duration::hours(4),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Starting the admin server failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin server: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server: invalid address {0:?} (expected HOST:PORT, e.g. 127.0.0.1:9187)")]
    Address(String),
    #[error("admin server: its thread stopped before listening")]
    Thread,
}

/// Parse an admin address (`admin_addr` / `SLUICE_ADMIN_ADDR`).
pub fn parse_addr(s: &str) -> Result<SocketAddr, AdminError> {
    s.trim()
        .parse()
        .map_err(|_| AdminError::Address(s.to_string()))
}

/// A running admin server. Dropping it stops the server.
pub struct AdminHandle {
    addr: SocketAddr,
    server: Option<actix_web::dev::ServerHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminHandle {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://HOST:PORT".
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop the server and wait for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            // The stop command is sent at call time; the returned future only awaits completion.
            drop(s.stop(false));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Start the admin server on `addr` (port 0: any free port). Returns once it listens.
pub fn start(addr: SocketAddr, state: AdminState) -> Result<AdminHandle, AdminError> {
    if !addr.ip().is_loopback() {
        log::warn!(
            "admin server bound to {addr}: /metrics and /status are reachable from other hosts \
             (set admin_addr / SLUICE_ADMIN_ADDR to 127.0.0.1:9187 to keep them local)"
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::new(state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route("/healthz", web::get().to(healthz))
                        .route("/readyz", web::get().to(readyz))
                        .route("/metrics", web::get().to(metrics))
                        .route("/status", web::get().to(status))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(addr);
                let server = match server {
                    Ok(s) => s,
                    Err(source) => {
                        let _ = tx.send(Err(AdminError::Bind { addr, source }));
                        return;
                    }
                };
                let bound = server.addrs().first().copied().unwrap_or(addr);
                let running = server.run();
                let _ = tx.send(Ok((bound, running.handle())));
                if let Err(e) = running.await {
                    log::error!("admin server stopped: {e}");
                }
            });
        })
        .map_err(|_| AdminError::Thread)?;
    match rx.recv() {
        Ok(Ok((bound, server))) => {
            log::info!(
                "admin server listening on http://{bound} (/healthz /readyz /metrics /status)"
            );
            Ok(AdminHandle {
                addr: bound,
                server: Some(server),
                thread: Some(thread),
            })
        }
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(AdminError::Thread)
        }
    }
}

/// Run a blocking checkpoint call on its own thread, giving up after [`DATABASE_TIMEOUT`].
async fn off_thread<T, F>(f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sluice-admin-db".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a database thread: {e}"))?;
    match tokio::time::timeout(DATABASE_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("database check panicked".into()),
        Err(_) => Err(format!(
            "database did not answer within {} s",
            DATABASE_TIMEOUT.as_secs()
        )),
    }
}

async fn load_checkpoint(st: &AdminState) -> Result<(Vec<PartitionView>, Vec<RunView>), String> {
    let reader = st.checkpoint.clone();
    off_thread(move || reader.load()).await
}

async fn engine_state(st: &AdminState) -> (Option<LimiterGauges>, Option<WriterGauges>) {
    match &st.engine {
        Some(e) => (e.limiter().await, e.writer().await),
        None => (None, None),
    }
}

fn watermark(st: &AdminState) -> DateTime<Utc> {
    st.clock.now() - st.watermark_delay
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// Readiness, with the reasons when not ready.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub token: TokenHealth,
    pub quota_breach: bool,
    pub reasons: Vec<String>,
}

async fn readiness(st: &AdminState, limiter: Option<&LimiterGauges>) -> Readiness {
    let reader = st.checkpoint.clone();
    let db = off_thread(move || reader.ping()).await;
    let token = st.metrics.token_health();
    let quota_breach = limiter.map(|l| l.quota_breach).unwrap_or(false);
    let mut reasons = Vec::new();
    if let Err(e) = &db {
        reasons.push(format!("database unreachable: {e}"));
    }
    if token == TokenHealth::Invalid {
        reasons.push("Genesys token invalid: the OAuth client's credentials were refused".into());
    }
    if quota_breach {
        let secs = limiter.map(|l| l.paused_for.as_secs()).unwrap_or(0);
        reasons.push(format!(
            "quota breach: Genesys asked to wait {secs} s more (Retry-After over 180 s)"
        ));
    }
    Readiness {
        ready: reasons.is_empty(),
        database: match db {
            Ok(()) => "ok".into(),
            Err(e) => e,
        },
        token,
        quota_breach,
        reasons,
    }
}

async fn readyz(st: web::Data<AdminState>) -> HttpResponse {
    let limiter = match &st.engine {
        Some(e) => e.limiter().await,
        None => None,
    };
    let r = readiness(&st, limiter.as_ref()).await;
    if r.ready {
        HttpResponse::Ok().json(r)
    } else {
        HttpResponse::ServiceUnavailable().json(r)
    }
}

fn partition_counts(parts: &[PartitionView]) -> Vec<PartitionCount> {
    StatusReport::from_rows(parts, &[], Utc::now()).partitions
}

async fn metrics(st: web::Data<AdminState>) -> HttpResponse {
    let (limiter, writer) = engine_state(&st).await;
    let (partitions, lag) = match load_checkpoint(&st).await {
        Ok((parts, _)) => (
            Some(partition_counts(&parts)),
            watermark_lag_seconds(&parts, watermark(&st)),
        ),
        Err(e) => {
            log::debug!("metrics: checkpoint not readable: {e}");
            (None, None)
        }
    };
    let snap = ScrapeSnapshot {
        limiter,
        writer,
        partitions,
        watermark_lag_seconds: lag,
    };
    match st.metrics.render(&snap) {
        Ok(text) => HttpResponse::Ok()
            .content_type(Metrics::content_type())
            .body(text),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct StatusDocument {
    pub version: &'static str,
    pub now: DateTime<Utc>,
    pub run: RunDocument,
    pub ready: Readiness,
    pub watermark: DateTime<Utc>,
    pub watermark_lag_seconds: Option<f64>,
    pub requests: RequestsDocument,
    pub limiter: Option<LimiterGauges>,
    pub writer: Option<WriterGauges>,
    /// The checkpoint report (same as `sluice status --format json`); null when unreadable.
    pub checkpoint: Option<StatusReport>,
    pub checkpoint_error: Option<String>,
    /// The latest failed HTTP attempts, newest first.
    pub last_errors: Vec<AttemptError>,
}

#[derive(Debug, Serialize)]
pub struct RunDocument {
    pub command: String,
    pub phase: String,
    /// `active` (holds the OAuth client's leader lease and fetches) or `standby` (another
    /// instance does; this one takes over when it goes away); null before the first answer.
    pub role: Option<&'static str>,
    pub started_at: DateTime<Utc>,
    pub uptime_seconds: i64,
}

#[derive(Debug, Serialize)]
pub struct RequestsDocument {
    pub total: u64,
    pub rate_limited: u64,
}

async fn status(st: web::Data<AdminState>) -> HttpResponse {
    let now = st.clock.now();
    let (limiter, writer) = engine_state(&st).await;
    let ready = readiness(&st, limiter.as_ref()).await;
    let (checkpoint, checkpoint_error, lag) = match load_checkpoint(&st).await {
        Ok((parts, runs)) => (
            Some(StatusReport::from_rows(&parts, &runs, now)),
            None,
            watermark_lag_seconds(&parts, watermark(&st)),
        ),
        Err(e) => (None, Some(e), None),
    };
    let doc = StatusDocument {
        version: env!("CARGO_PKG_VERSION"),
        now,
        run: RunDocument {
            command: st.run.command.clone(),
            phase: st.run.phase(),
            role: st.metrics.instance_role(),
            started_at: st.run.started_at,
            uptime_seconds: (now - st.run.started_at).num_seconds().max(0),
        },
        ready,
        watermark: watermark(&st),
        watermark_lag_seconds: lag,
        requests: RequestsDocument {
            total: st.metrics.requests_total(),
            rate_limited: st.metrics.rate_limited_total(),
        },
        limiter,
        writer,
        checkpoint,
        checkpoint_error,
        last_errors: st.metrics.last_errors(),
    };
    HttpResponse::Ok().json(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct FakeCheckpoint {
        up: AtomicBool,
        parts: Vec<PartitionView>,
    }

    impl CheckpointReader for FakeCheckpoint {
        fn ping(&self) -> Result<(), String> {
            if self.up.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        }
        fn load(&self) -> Result<(Vec<PartitionView>, Vec<RunView>), String> {
            self.ping()?;
            Ok((self.parts.clone(), vec![]))
        }
    }

    struct FakeEngine {
        breach: AtomicBool,
    }

    impl EngineProbe for FakeEngine {
        fn limiter(&self) -> LocalBoxFuture<'_, Option<LimiterGauges>> {
            let breach = self.breach.load(Ordering::SeqCst);
            Box::pin(async move {
                Some(LimiterGauges {
                    quota_breach: breach,
                    paused_for: Duration::from_secs(if breach { 600 } else { 0 }),
                    budget_per_minute: 300.0,
                    ..Default::default()
                })
            })
        }
        fn writer(&self) -> LocalBoxFuture<'_, Option<WriterGauges>> {
            Box::pin(async { None })
        }
    }

    fn get(url: &str) -> (u16, String) {
        // A blocking client keeps this test free of runtime plumbing.
        let url = url.strip_prefix("http://").unwrap();
        let (host, path) = url.split_once('/').unwrap();
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, body.to_string())
    }

    #[test]
    fn endpoints_answer_and_readiness_follows_database_and_breach() {
        let checkpoint = Arc::new(FakeCheckpoint {
            up: AtomicBool::new(true),
            parts: vec![PartitionView {
                id: 1,
                dataset: "conversations".into(),
                range_start: Utc::now() - chrono::Duration::days(2),
                range_end: Utc::now() - chrono::Duration::days(1),
                status: "done".into(),
                attempts: 1,
                total_hits: Some(3),
                received: Some(3),
                last_error: None,
                updated_at: Utc::now(),
            }],
        });
        let engine = Arc::new(FakeEngine {
            breach: AtomicBool::new(false),
        });
        let metrics = Arc::new(Metrics::new().unwrap());
        metrics.observe_request("conversations_query", Some(200), Duration::from_millis(3));
        let state = AdminState::new(
            metrics,
            checkpoint.clone(),
            Some(engine.clone()),
            Arc::new(RunInfo::new("run", Utc::now())),
        );
        let admin = start("127.0.0.1:0".parse().unwrap(), state).unwrap();
        assert_ne!(admin.addr().port(), 0);
        let base = admin.base_url();

        assert_eq!(get(&format!("{base}/healthz")).0, 200);
        assert_eq!(get(&format!("{base}/readyz")).0, 200);
        let (code, text) = get(&format!("{base}/metrics"));
        assert_eq!(code, 200);
        assert!(text.contains("sluice_partitions{dataset=\"conversations\",status=\"done\"} 1"));
        let (code, body) = get(&format!("{base}/status"));
        assert_eq!(code, 200);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["requests"]["total"], 1);
        assert_eq!(doc["checkpoint"]["partitions"][0]["count"], 1);
        assert_eq!(doc["ready"]["ready"], true);

        checkpoint.up.store(false, Ordering::SeqCst);
        let (code, body) = get(&format!("{base}/readyz"));
        assert_eq!(code, 503);
        assert!(body.contains("database unreachable"), "{body}");
        checkpoint.up.store(true, Ordering::SeqCst);
        assert_eq!(get(&format!("{base}/readyz")).0, 200);

        engine.breach.store(true, Ordering::SeqCst);
        let (code, body) = get(&format!("{base}/readyz"));
        assert_eq!(code, 503);
        assert!(body.contains("quota breach"), "{body}");
        admin.stop();
    }

    #[test]
    fn bind_error_is_reported() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = first.local_addr().unwrap();
        let state = AdminState::new(
            Arc::new(Metrics::new().unwrap()),
            Arc::new(FakeCheckpoint {
                up: AtomicBool::new(true),
                parts: vec![],
            }),
            None,
            Arc::new(RunInfo::new("run", Utc::now())),
        );
        match start(taken, state) {
            Err(AdminError::Bind { addr, .. }) => assert_eq!(addr, taken),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("bound a taken port"),
        }
        assert!(parse_addr("localhost").is_err());
        assert_eq!(parse_addr(DEFAULT_ADMIN_ADDR).unwrap().port(), 9187);
    }
}
