//! Wiring: starts the Writer, the RateLimiter, the API client, the Coordinator and its Fetchers
//! inside the current actix System, and hands back an [`EngineHandle`] that the CLI, the demo,
//! the admin server and the tests use.
//!
//! Shutdown: [`EngineHandle::shutdown`] (the CLI calls it on the first SIGINT/SIGTERM) stops
//! issuing requests, cancels the partitions in flight and gives them back (status pending),
//! flushes the Writer and finishes the run. Rows already committed stay (they are upserts and
//! the partition is fetched again next time); a partition's completion is committed with its
//! last rows, so a second signal that exits at once leaves the checkpoint consistent too: an
//! unfinished partition is simply not done, and its lease expires.
//!
//! Exit codes (see [`exit_code`]): 0 success (or a graceful stop), 1 runtime failure (database
//! or API unreachable), 2 bad configuration or rejected credentials, 3 finished with partitions
//! unverified or failed, 130 a second signal.

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::actors::coordinator::{
    CatchUpNow, Coordinator, CoordinatorSettings, CoordinatorStatus, GetStatus, Phase, Role,
    RunKind, RunReport, SetRole, Shutdown, Summary,
};
use crate::actors::fetcher::{Availability, FaultHooks, FetchContext, FetchCounters};
use crate::actors::rate_limiter::RateLimiterHandle;
use crate::actors::writer::{
    start_writer_with, EndRun, ReclaimDeadLeases, ReopenForResync, StartRun, Writer, WriterConfig,
};
use crate::admin::{AdminHandle, AdminState, LiveEngine, RunInfo};
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, DatasetChoice};
use crate::genesys::{ApiError, GenesysClient};
use crate::leader::{LeaderKeeper, LeaderSettings};
use crate::metrics::Metrics;
use crate::progress::{ProgressMode, ProgressReporter, ProgressTracker};
use crate::storage::checkpoint::Dataset;
use crate::storage::{DatabaseUrl, StorageError};

/// Exit code: everything verified, or stopped gracefully by a signal.
pub const EXIT_OK: i32 = 0;
/// Exit code: a runtime failure (database unreachable, API unreachable, internal error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: bad configuration (the message names the setting) or rejected credentials.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code: the run finished, but some partitions are unverified or failed (see the summary).
pub const EXIT_INCOMPLETE: i32 = 3;
/// Exit code: a second SIGINT/SIGTERM ended the process at once.
pub const EXIT_SIGNAL: i32 = 130;

/// Why the engine could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("configuration error: GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET: the login service at {login} refused the credentials: {message}")]
    Credentials { login: String, message: String },
    #[error("cannot reach Genesys Cloud at {login}: {message}")]
    Unreachable { login: String, message: String },
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error("engine: {0}")]
    Internal(String),
    #[error("configuration error: admin_addr / SLUICE_ADMIN_ADDR: {0}")]
    Admin(String),
}

impl EngineError {
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Config(_) | EngineError::Credentials { .. } | EngineError::Admin(_) => {
                EXIT_CONFIG
            }
            _ => EXIT_FAILURE,
        }
    }
}

/// The exit code for a finished run.
pub fn exit_code(report: &RunReport) -> i32 {
    if report.error.is_some() {
        EXIT_FAILURE
    } else if report.interrupted || report.summary.all_verified() {
        EXIT_OK
    } else {
        EXIT_INCOMPLETE
    }
}

/// What to run, beyond the configuration.
#[derive(Clone)]
pub struct EngineOptions {
    pub kind: RunKind,
    /// Overrides the configured datasets when set (`--datasets`).
    pub datasets: Option<Vec<DatasetChoice>>,
    /// `--provisional`: also ingest data newer than the watermark (as not final).
    pub provisional: bool,
    /// Calendar time for every watermark decision (tests use the simulator's fixed clock).
    pub clock: SharedClock,
    pub progress: ProgressMode,
    /// Test-only fault injection.
    pub faults: FaultHooks,
    /// backfill, run, demo (recorded in the run row and shown in status).
    pub command: String,
    /// Where to serve the admin endpoints (`/healthz`, `/readyz`, `/metrics`, `/status`);
    /// `None`: no admin server.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Whether the run fails when the admin address cannot be bound (service mode); otherwise
    /// a warning is logged and the run goes on without it (a one-off backfill beside a service).
    pub admin_required: bool,
    /// `sluice resync`: before the backfill, every done/unverified/failed partition of its
    /// range goes back to pending, so every block is fetched again now.
    pub resync: bool,
}

impl EngineOptions {
    pub fn new(kind: RunKind, clock: SharedClock) -> Self {
        EngineOptions {
            kind,
            datasets: None,
            provisional: false,
            clock,
            progress: ProgressMode::Off,
            faults: FaultHooks::default(),
            command: match kind {
                RunKind::Backfill { .. } => "backfill".into(),
                RunKind::Service { .. } => "run".into(),
            },
            admin_addr: None,
            admin_required: false,
            resync: false,
        }
    }
}

/// A running engine.
pub struct EngineHandle {
    coordinator: Addr<Coordinator>,
    pub limiter: RateLimiterHandle,
    pub writer: Addr<Writer>,
    pub client: GenesysClient,
    pub metrics: Arc<Metrics>,
    pub progress: Arc<ProgressTracker>,
    pub counters: Arc<FetchCounters>,
    report: tokio::sync::watch::Receiver<Option<RunReport>>,
    status: tokio::sync::watch::Receiver<CoordinatorStatus>,
    reporter: Mutex<Option<ProgressReporter>>,
    run_id: Option<i64>,
    started: DateTime<Utc>,
    admin: Option<AdminHandle>,
    /// Holds (or waits for) the OAuth client's leader lease; stopped when the run ends.
    leader: Mutex<Option<LeaderKeeper>>,
}

/// The partitioned dataset of a choice (`None` for the directory, which is not partitioned).
fn dataset(d: DatasetChoice) -> Option<Dataset> {
    match d {
        DatasetChoice::Conversations => Some(Dataset::Conversations),
        DatasetChoice::Users => Some(Dataset::Users),
        DatasetChoice::Directory => None,
    }
}

/// The lease owner name: `sluice@HOST:PID`.
fn owner() -> String {
    format!("{}{}", owner_host_prefix(), std::process::id())
}

/// The part of [`owner`] that names this host: `sluice@HOST:`.
fn owner_host_prefix() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("sluice@{host}:")
}

/// Opens the database (running migrations), starts the actors, checks the credentials.
/// Must be called inside an actix System.
pub async fn start(config: &Config, opts: EngineOptions) -> Result<EngineHandle, EngineError> {
    let url = match &config.database_url {
        Some(u) => {
            DatabaseUrl::parse(u).map_err(|e| ConfigError::new("DATABASE_URL", e.to_string()))?
        }
        None => DatabaseUrl::sqlite("sluice.db"),
    };
    let credentials = config.credentials()?;
    let metrics = Arc::new(Metrics::new().map_err(|e| EngineError::Internal(e.to_string()))?);
    let limiter = RateLimiterHandle::start(config.rate_limit.clone())
        .map_err(|e| ConfigError::new(e.setting, e.message))?;
    let mut client = GenesysClient::new(
        config.genesys.settings.clone(),
        credentials,
        limiter.clone(),
    )
    .map_err(|e| match e {
        ApiError::Settings { setting, message } => {
            EngineError::Config(ConfigError::new(setting, message))
        }
        other => EngineError::Internal(other.to_string()),
    })?;
    client.set_observer(metrics.clone());
    let login = client.endpoints().login.clone();
    match client.check_credentials().await {
        Ok(()) => {}
        Err(ApiError::Unauthorized { message }) | Err(ApiError::Client { message, .. }) => {
            return Err(EngineError::Credentials { login, message })
        }
        Err(e) => {
            return Err(EngineError::Unreachable {
                login,
                message: e.to_string(),
            })
        }
    }
    let writer = start_writer_with(
        url.clone(),
        WriterConfig {
            settings: config.writer.clone(),
            ..WriterConfig::default()
        },
    )?;
    match writer
        .send(ReclaimDeadLeases {
            this_host: owner_host_prefix(),
        })
        .await
        .map_err(|e| EngineError::Internal(format!("writer stopped: {e}")))?
    {
        Ok(0) => {}
        Ok(n) => log::info!(
            "{n} partitions were held by a process of this host that has ended: resuming them now"
        ),
        Err(e) => return Err(e.into()),
    }
    let me = owner();
    // One fetching instance per OAuth client and database: the others stand by.
    let leader = LeaderKeeper::start(LeaderSettings {
        url: url.clone(),
        client_key: config.client_id()?.to_string(),
        instance: me.clone(),
        host_prefix: owner_host_prefix(),
        command: opts.command.clone(),
        lease_for: std::time::Duration::from_secs(config.fetch.lease_secs),
        started_at: chrono::Utc::now(),
    })
    .map_err(|e| EngineError::Internal(format!("cannot start the leader-lease thread: {e}")))?;
    let role = leader.first_role().await;
    metrics.set_instance_role(role == Role::Active);
    let started = opts.clock.now();
    let run_id = writer
        .send(StartRun {
            command: opts.command.clone(),
            range: match opts.kind {
                RunKind::Backfill { from, to } => Some((from, to)),
                RunKind::Service { start } => Some((start, started)),
            },
        })
        .await
        .map_err(|e| EngineError::Internal(format!("writer stopped: {e}")))??;
    let pacing = config
        .rate_limit
        .validate()
        .map_err(|e| ConfigError::new(e.setting, e.message))?;
    let budget = pacing.per_minute(1.0);
    let cap = config.rate_limit.concurrency_cap() as usize;
    let progress = ProgressTracker::new(metrics.clone(), budget);
    let counters = Arc::new(FetchCounters::default());
    let fetch = Arc::new(FetchContext {
        client: client.clone(),
        writer: writer.clone(),
        settings: config.fetch.clone(),
        mode: config.mode,
        jobs: crate::fetch::jobs::JobPool::new(
            config.fetch.max_jobs,
            config.fetch.job_poll_secs,
            config.fetch.job_poll_max_secs,
        ),
        page_slots: Arc::new(tokio::sync::Semaphore::new(config.fetch.page_concurrency)),
        held_records: crate::fetch::budget::RecordBudget::new(crate::fetch::budget::records_for(
            config.fetch.job_page_size.max(1) as usize,
            config.fetch.max_outstanding_pages,
        )),
        availability: Mutex::new(Availability::default()),
        faults: opts.faults.clone(),
        counters: counters.clone(),
        progress: Some(progress.clone()),
        clock: opts.clock.clone(),
        settle_after: config.settle_after,
    });
    let choices = opts
        .datasets
        .clone()
        .unwrap_or_else(|| config.datasets.clone());
    if choices.contains(&DatasetChoice::Directory) {
        // Names first: a backfill reads them once, a service then every refresh period.
        crate::directory::refresh_and_log(&client, &url, opts.clock.now()).await;
        if let RunKind::Service { .. } = opts.kind {
            crate::directory::spawn_periodic(
                client.clone(),
                url.clone(),
                opts.clock.clone(),
                config.directory_refresh,
            );
        }
    }
    let datasets: Vec<Dataset> = choices.into_iter().filter_map(dataset).collect();
    if let (true, RunKind::Backfill { from, to }) = (opts.resync, opts.kind) {
        let n = writer
            .send(ReopenForResync {
                datasets: datasets.clone(),
                from,
                to,
            })
            .await
            .map_err(|e| EngineError::Internal(format!("writer stopped: {e}")))??;
        log::info!("resync: {n} partitions of {from} – {to} reopened to be fetched again");
    }
    let settings = CoordinatorSettings {
        kind: opts.kind,
        datasets,
        provisional: opts.provisional || config.provisional,
        watermark_lag: config.watermark_lag,
        settle_after: config.settle_after,
        poll_interval: config.poll_interval,
        min_block: config.fetch.block_rules().min_block,
        max_attempts: config.fetch.max_attempts,
        lease_for: std::time::Duration::from_secs(config.fetch.lease_secs),
        owner: me,
        mode: config.mode,
        initial_role: role,
    };
    let (report_tx, report) = tokio::sync::watch::channel(None);
    let (status_tx, status) = tokio::sync::watch::channel(CoordinatorStatus {
        phase: Phase::Planning,
        queued: 0,
        running: 0,
        summary: Summary::default(),
        rounds: 0,
    });
    let fetchers = config.fetch.fetchers.unwrap_or(cap.max(1));
    let reporter = crate::progress::start(progress.clone(), opts.progress);
    metrics.set_run_started(started);
    let coordinator = Coordinator::start(
        settings,
        opts.clock.clone(),
        writer.clone(),
        fetch,
        fetchers,
        progress.clone(),
        report_tx,
        status_tx,
    );
    follow_role(leader.role(), coordinator.clone(), metrics.clone());
    let admin = match opts.admin_addr {
        Some(addr) => start_admin(
            addr,
            opts.admin_required,
            AdminState::for_engine(
                metrics.clone(),
                url.clone(),
                LiveEngine {
                    limiter: Some(limiter.clone()),
                    writer: Some(writer.clone()),
                },
                follow_phase(&opts.command, started, status.clone()),
                config.watermark_lag,
            )
            .with_clock(opts.clock.clone()),
        )?,
        None => None,
    };
    Ok(EngineHandle {
        coordinator,
        limiter,
        writer,
        client,
        metrics,
        progress,
        counters,
        report,
        status,
        reporter: Mutex::new(Some(reporter)),
        run_id: Some(run_id),
        started,
        admin,
        leader: Mutex::new(Some(leader)),
    })
}

/// Passes the leader lease's role changes to the Coordinator and the metrics (a task on the
/// current arbiter; ends when the keeper stops).
fn follow_role(
    mut role: tokio::sync::watch::Receiver<Option<Role>>,
    coordinator: Addr<Coordinator>,
    metrics: Arc<Metrics>,
) {
    actix_rt::spawn(async move {
        while role.changed().await.is_ok() {
            let Some(r) = *role.borrow_and_update() else {
                continue;
            };
            metrics.set_instance_role(r == Role::Active);
            coordinator.do_send(SetRole(r));
        }
    });
}

/// Starts the admin server; a bind failure is fatal only when `required`.
fn start_admin(
    addr: std::net::SocketAddr,
    required: bool,
    state: AdminState,
) -> Result<Option<AdminHandle>, EngineError> {
    match crate::admin::start(addr, state) {
        Ok(h) => Ok(Some(h)),
        Err(e) if required => Err(EngineError::Admin(e.to_string())),
        Err(e) => {
            log::warn!("{e}; going on without the admin endpoints (set SLUICE_ADMIN_ADDR to another port, or 127.0.0.1:0)");
            Ok(None)
        }
    }
}

/// A [`RunInfo`] whose phase follows the Coordinator's (a task on the current arbiter).
fn follow_phase(
    command: &str,
    started: DateTime<Utc>,
    mut status: tokio::sync::watch::Receiver<CoordinatorStatus>,
) -> Arc<RunInfo> {
    let run = Arc::new(RunInfo::new(command, started));
    let shown = run.clone();
    actix_rt::spawn(async move {
        loop {
            let phase = status.borrow_and_update().phase;
            shown.set_phase(phase.as_str());
            if phase == Phase::Finished || status.changed().await.is_err() {
                break;
            }
        }
    });
    run
}

impl EngineHandle {
    /// Graceful shutdown: stop issuing requests, give in-flight partitions back, flush.
    pub fn shutdown(&self) {
        self.coordinator.do_send(Shutdown);
    }

    /// Runs a catch-up round now (service mode; tests).
    pub fn catch_up_now(&self) {
        self.coordinator.do_send(CatchUpNow);
    }

    /// The Coordinator's state now.
    pub fn status(&self) -> CoordinatorStatus {
        self.status.borrow().clone()
    }

    /// Asks the Coordinator directly (exact, not the last published snapshot).
    pub async fn query_status(&self) -> Option<CoordinatorStatus> {
        self.coordinator.send(GetStatus).await.ok()
    }

    /// Waits until the run ends (a backfill's last partition, or a shutdown), records the run
    /// and stops the progress display.
    pub async fn finished(&self) -> RunReport {
        let mut rx = self.report.clone();
        let report = loop {
            if let Some(r) = rx.borrow().clone() {
                break r;
            }
            if rx.changed().await.is_err() {
                break RunReport {
                    summary: self.status().summary,
                    interrupted: false,
                    not_final_yet: None,
                    error: Some("the coordinator stopped unexpectedly".into()),
                };
            }
        };
        self.record_end().await;
        report
    }

    /// Waits until the service is idle in catch-up after at least `rounds` planning rounds
    /// (tests drive catch-up with [`catch_up_now`](Self::catch_up_now)).
    pub async fn idle_after(&self, rounds: u64) -> CoordinatorStatus {
        let mut rx = self.status.clone();
        loop {
            {
                let s = rx.borrow();
                if (s.phase == Phase::CatchUp
                    && s.rounds >= rounds
                    && s.queued == 0
                    && s.running == 0)
                    || s.phase == Phase::Finished
                {
                    return s.clone();
                }
            }
            if rx.changed().await.is_err() {
                return self.status();
            }
        }
    }

    async fn record_end(&self) {
        if let Some(r) = self
            .reporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            r.finish();
        }
        let leader = self.leader.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(k) = leader {
            // Gives the lease up now, so that a standby takes over at once.
            let _ = actix_rt::task::spawn_blocking(move || k.stop()).await;
        }
        if let Some(id) = self.run_id {
            let state = self.limiter.state().await.ok();
            let _ = self
                .writer
                .send(EndRun {
                    id,
                    requests: state.as_ref().map_or(0, |s| s.requests as i64),
                    rate_limited: state.as_ref().map_or(0, |s| s.rate_limited as i64),
                    rows_written: self
                        .counters
                        .records
                        .load(std::sync::atomic::Ordering::Relaxed),
                })
                .await;
        }
    }

    /// The upstream changes (changed, deleted) the Writer counted in this run.
    pub async fn run_changes(&self) -> Option<crate::actors::writer::RunChanges> {
        self.writer
            .send(crate::actors::writer::RunChangesSoFar)
            .await
            .ok()
    }

    /// When the run started (engine clock).
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started
    }

    /// The admin server's base URL (`http://HOST:PORT`), when one is running.
    pub fn admin_url(&self) -> Option<String> {
        self.admin.as_ref().map(AdminHandle::base_url)
    }
}

/// Waits for SIGINT/SIGTERM: the first asks for a graceful shutdown, the second exits at once
/// with [`EXIT_SIGNAL`] (the checkpoint stays consistent: see the module docs).
pub async fn handle_signals(handle: Addr<Coordinator>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        log::warn!("signal received: stopping (giving back in-flight partitions, flushing); send it again to exit at once");
        handle.do_send(Shutdown);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        log::warn!("second signal: exiting now");
        std::process::exit(EXIT_SIGNAL);
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        handle.do_send(Shutdown);
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(EXIT_SIGNAL);
    }
}

impl EngineHandle {
    /// Installs the signal handling of the CLI on the current runtime.
    pub fn handle_signals(&self) {
        actix_rt::spawn(handle_signals(self.coordinator.clone()));
    }
}

/// Prints the summary of a finished run (one line per problem partition).
pub fn summary_text(report: &RunReport) -> String {
    let s = &report.summary;
    let mut out = format!(
        "{} partitions verified, {} unverified, {} failed, {} split, {} retried",
        s.done,
        s.unverified.len(),
        s.failed.len(),
        s.split,
        s.retried
    );
    if report.interrupted {
        out.push_str(" (interrupted: in-flight partitions were given back; run again to finish)");
    }
    for (d, iv, t) in &s.unverified {
        out.push_str(&format!(
            "\n  unverified {d} {iv}: received {} distinct of totalHits {}",
            t.received, t.total_hits
        ));
    }
    for (d, iv, e) in &s.failed {
        out.push_str(&format!("\n  failed {d} {iv}: {e}"));
    }
    if let Some(iv) = &report.not_final_yet {
        out.push_str(&format!(
            "\n  not ingested yet: {iv} is newer than the watermark (run again later, or use --provisional)"
        ));
    }
    if let Some(e) = &report.error {
        out.push_str(&format!("\n  error: {e}"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Command-line entry points (main.rs parses, these run)
// ---------------------------------------------------------------------------------------------

/// Overrides the command line gives on top of the configuration.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub config: Option<std::path::PathBuf>,
    pub datasets: Option<String>,
    pub mode: Option<String>,
    pub provisional: bool,
}

fn load_config(o: &CliOverrides) -> Result<Config, ConfigError> {
    let mut cfg = Config::load(o.config.as_deref())?;
    if let Some(d) = &o.datasets {
        cfg.datasets =
            crate::config::parse_datasets(d).map_err(|m| ConfigError::new("--datasets", m))?;
    }
    if let Some(m) = &o.mode {
        cfg.mode = m
            .parse()
            .map_err(|e: String| ConfigError::new("--mode", e))?;
    }
    cfg.provisional |= o.provisional;
    Ok(cfg)
}

fn fail(e: &dyn std::fmt::Display, code: i32) -> i32 {
    eprintln!("sluice: {e}");
    code
}

/// Runs the engine to its end in a fresh actix System; returns the exit code.
fn run_engine(config: Config, opts: EngineOptions) -> i32 {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let handle = match start(&config, opts).await {
            Ok(h) => h,
            Err(e) => return fail(&e, e.exit_code()),
        };
        handle.handle_signals();
        let report = handle.finished().await;
        let mut text = summary_text(&report);
        if let Some(changes) = handle.run_changes().await {
            text.push_str(&format!("\n  {}", changes.summary_line()));
        }
        if exit_code(&report) == EXIT_OK {
            log::info!("{text}");
        } else {
            eprintln!("sluice: {text}");
        }
        exit_code(&report)
    })
}

/// `sluice backfill --from A --to B`: ingests `[A, B)`; 0 only when every partition verified.
pub fn backfill_cli(o: CliOverrides, from: &str, to: &str) -> i32 {
    range_cli(o, from, to, false)
}

/// `sluice resync --from A --to B`: fetches every block of `[A, B)` again now (e.g. after a
/// data incident upstream); exit codes as `sluice backfill`.
pub fn resync_cli(o: CliOverrides, from: &str, to: &str) -> i32 {
    range_cli(o, from, to, true)
}

fn range_cli(o: CliOverrides, from: &str, to: &str, resync: bool) -> i32 {
    let config = match load_config(&o) {
        Ok(c) => c,
        Err(e) => return fail(&e, EXIT_CONFIG),
    };
    let from = match crate::plan::parse_bound(from) {
        Ok(t) => t,
        Err(m) => return fail(&ConfigError::new("--from", m), EXIT_CONFIG),
    };
    let to = match crate::plan::parse_bound(to) {
        Ok(t) => t,
        Err(m) => return fail(&ConfigError::new("--to", m), EXIT_CONFIG),
    };
    if to <= from {
        return fail(
            &ConfigError::new("--to", "must be after --from (--to is exclusive)"),
            EXIT_CONFIG,
        );
    }
    let mut opts = EngineOptions::new(
        RunKind::Backfill { from, to },
        Arc::new(crate::clock::SystemClock),
    );
    opts.progress = ProgressMode::detect(false);
    opts.admin_addr = Some(config.admin_addr);
    if resync {
        opts.resync = true;
        opts.command = "resync".into();
    }
    run_engine(config, opts)
}

/// `sluice run`: backfill from `start`, then catch up forever (until a signal).
pub fn run_cli(o: CliOverrides) -> i32 {
    let config = match load_config(&o) {
        Ok(c) => c,
        Err(e) => return fail(&e, EXIT_CONFIG),
    };
    let start = match config.start() {
        Ok(s) => s,
        Err(e) => return fail(&e, EXIT_CONFIG),
    };
    let mut opts = EngineOptions::new(
        RunKind::Service { start },
        Arc::new(crate::clock::SystemClock),
    );
    opts.progress = ProgressMode::detect(true);
    opts.admin_addr = Some(config.admin_addr);
    opts.admin_required = true;
    run_engine(config, opts)
}

/// `sluice check-config`: validates the configuration, the database and the credentials.
pub fn check_config_cli(o: CliOverrides) -> i32 {
    let config = match load_config(&o) {
        Ok(c) => c,
        Err(e) => return fail(&e, EXIT_CONFIG),
    };
    let system = actix_rt::System::new();
    system.block_on(async move {
        match check_config(&config).await {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                EXIT_OK
            }
            Err(e) => fail(&e, e.exit_code()),
        }
    })
}

/// Checks everything `start` would need; returns what was checked, one line each.
pub async fn check_config(config: &Config) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    let url = match &config.database_url {
        Some(u) => {
            DatabaseUrl::parse(u).map_err(|e| ConfigError::new("DATABASE_URL", e.to_string()))?
        }
        None => DatabaseUrl::sqlite("sluice.db"),
    };
    let credentials = config.credentials()?;
    let pacing = config
        .rate_limit
        .validate()
        .map_err(|e| ConfigError::new(e.setting, e.message))?;
    let limiter = RateLimiterHandle::start(config.rate_limit.clone())
        .map_err(|e| ConfigError::new(e.setting, e.message))?;
    let client = GenesysClient::new(config.genesys.settings.clone(), credentials, limiter)
        .map_err(|e| match e {
            ApiError::Settings { setting, message } => {
                EngineError::Config(ConfigError::new(setting, message))
            }
            other => EngineError::Internal(other.to_string()),
        })?;
    let login = client.endpoints().login.clone();
    out.push(format!(
        "configuration: {}",
        config
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(no file; defaults and environment)".into())
    ));
    out.push(format!(
        "genesys: region {}, api {}, login {}",
        config.genesys.settings.region,
        client.endpoints().api,
        login
    ));
    out.push(format!(
        "rate limit: {:.0} requests/min paced, at most {} in flight",
        pacing.per_minute(1.0),
        config.rate_limit.concurrency_cap()
    ));
    match client.check_credentials().await {
        Ok(()) => out.push(format!(
            "credentials: accepted by {login} (client {})",
            config.client_id()?
        )),
        Err(ApiError::Unauthorized { message }) | Err(ApiError::Client { message, .. }) => {
            return Err(EngineError::Credentials { login, message })
        }
        Err(e) => {
            return Err(EngineError::Unreachable {
                login,
                message: e.to_string(),
            })
        }
    }
    crate::actors::writer::prepare_database(&url, &crate::actors::writer::WriterConfig::default())?;
    out.push(format!("database: {url} reachable, migrations applied"));
    Ok(out)
}
