//! Configuration: a TOML file (`--config`, else `sluice.toml` when present) overridden by
//! environment variables. Every bad value becomes a [`ConfigError`] naming the setting, so the
//! binary can print one clear line and exit 2.
//!
//! ```toml
//! start = "2026-01-01"             # SLUICE_START: where `sluice run` begins its backfill
//! datasets = ["conversations", "users", "directory"]   # SLUICE_DATASETS
//! mode = "auto"                    # SLUICE_MODE: auto | query | jobs
//! watermark_hours = 4              # SLUICE_WATERMARK_HOURS: data newer than now − this is not final
//! poll_minutes = 15                # SLUICE_POLL_MINUTES: catch-up period in service mode
//! provisional = false              # SLUICE_PROVISIONAL: also ingest data newer than the watermark
//! directory_refresh_minutes = 60   # SLUICE_DIRECTORY_REFRESH_MINUTES: `sluice run` re-reads the directory
//! report_tz = "Europe/Dublin"      # SLUICE_REPORT_TZ: the zone reports cut days in (default UTC)
//! settle_hours = 96                # SLUICE_SETTLE_HOURS: re-fetch a block once when it is this old (0: off)
//! database_url = "mysql://user@host/db"   # DATABASE_URL (default sqlite://sluice.db)
//!
//! [genesys]                        # GENESYS_REGION, GENESYS_API_URL, GENESYS_LOGIN_URL
//! region = "mypurecloud.ie"
//! client_id = "…"                  # GENESYS_CLIENT_ID
//! client_secret_file = "/run/secrets/genesys"  # GENESYS_CLIENT_SECRET_FILE or GENESYS_CLIENT_SECRET
//!
//! [rate_limit]                     # the RateLimiter's settings (SLUICE_RATE_PER_MINUTE, …)
//! rate_per_minute = 300
//!
//! [fetch]                          # tuning of the Fetchers (SLUICE_FETCHERS, SLUICE_PAGE_SIZE, …)
//! fetchers = 8
//!
//! [writer]                         # batching and retries of the Writer (file only, except:)
//! batch_max_conversations = 1000   # default: 1000 on MySQL, 5000 on SQLite
//! writer_connections = 2           # SLUICE_WRITER_CONNECTIONS: pages written over this many
//!                                  # connections in parallel (1..=16; always 1 on SQLite)
//! ```
//!
//! The client secret never appears in Debug output or errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::genesys::{ApiError, Credentials, GenesysSettings, Secret};
use crate::plan::{parse_bound, BlockRules, Mode};
use crate::rate::RateLimiterSettings;
use crate::storage::write::WriterSettings;

/// A bad setting: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {setting}: {message}")]
pub struct ConfigError {
    /// The setting as the user wrote it (environment variable or `file: key`).
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// Which data sets to ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetChoice {
    Conversations,
    Users,
    /// Users, queues, wrap-up codes and divisions (names for the reports); not partitioned.
    Directory,
}

/// Parses `conversations,users`.
pub fn parse_datasets(s: &str) -> Result<Vec<DatasetChoice>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d = match part.to_ascii_lowercase().as_str() {
            "conversations" => DatasetChoice::Conversations,
            "users" => DatasetChoice::Users,
            "directory" => DatasetChoice::Directory,
            other => {
                return Err(format!(
                    "unknown dataset {other:?} (expected conversations, users, directory)"
                ))
            }
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.is_empty() {
        return Err("no dataset given (expected conversations, users, directory)".into());
    }
    Ok(out)
}

/// Tuning of the Fetchers and the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchSettings {
    /// Fetcher actors (default: the RateLimiter's concurrency cap).
    pub fetchers: Option<usize>,
    /// Query page size (the API's maximum is believed to be 100).
    pub page_size: i64,
    /// Job results page size (the API's maximum, 1,000: fewest requests; pages are streamed
    /// to the Writer, so memory stays bounded by the pages in flight).
    pub job_page_size: i64,
    /// Results reachable by paging (pageNumber × pageSize).
    pub paging_cap: i64,
    /// Longest job block, in whole UTC days (the planner groups old days up to this).
    pub job_block_days: i64,
    /// Smallest block, in minutes.
    pub min_block_minutes: i64,
    /// Verification passes over a partition before it is marked unverified.
    pub verify_passes: u32,
    /// Attempts per partition (errors, crashes) before it is failed.
    pub max_attempts: u32,
    /// Partition lease, renewed at a third of it.
    pub lease_secs: u64,
    /// Async jobs in flight at once (the org's running-job limit, 5, less one; fewer for a
    /// while after a 429 on submit).
    pub max_jobs: usize,
    /// Query pages requested ahead, once a block's page 1 gave totalHits, over all Fetchers
    /// (the RateLimiter's concurrency cap and pacing still apply on top).
    pub page_concurrency: usize,
    /// Expected job run time before any job was seen, and the smallest poll step; polls then
    /// start at the observed run time and step up to `job_poll_max_secs`.
    pub job_poll_secs: f64,
    pub job_poll_max_secs: f64,
    /// Job submissions per partition (FAILED, expired, 429 on submit) before giving up.
    pub job_attempts: u32,
    /// Pages sent to the Writer and not yet acknowledged, per Fetcher.
    pub max_outstanding_pages: usize,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            fetchers: None,
            page_size: 100,
            job_page_size: 1_000,
            paging_cap: 10_000,
            job_block_days: 1,
            min_block_minutes: 15,
            verify_passes: 3,
            max_attempts: 5,
            lease_secs: 300,
            max_jobs: 4,
            page_concurrency: 8,
            job_poll_secs: 3.0,
            job_poll_max_secs: 30.0,
            job_attempts: 3,
            max_outstanding_pages: 2,
        }
    }
}

impl FetchSettings {
    pub fn block_rules(&self) -> BlockRules {
        BlockRules {
            paging_cap: self.paging_cap,
            min_block: Duration::minutes(self.min_block_minutes),
        }
    }
}

/// Connection to Genesys Cloud: the client's settings plus the OAuth client.
#[derive(Debug, Clone, PartialEq)]
pub struct GenesysConfig {
    /// Region, URL overrides, timeouts, attempts (the client's own settings).
    pub settings: GenesysSettings,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub start: Option<DateTime<Utc>>,
    pub datasets: Vec<DatasetChoice>,
    pub mode: Mode,
    pub watermark_lag: Duration,
    pub poll_interval: std::time::Duration,
    pub provisional: bool,
    /// `settle_hours`: a block first fetched younger than this is fetched once more after it
    /// passes this age (Genesys's nightly pipeline rewrites data ≥ 48 h old). `None`: off (0).
    pub settle_after: Option<Duration>,
    pub database_url: Option<String>,
    pub genesys: GenesysConfig,
    /// The RateLimiter's settings (`[rate_limit]`).
    pub rate_limit: RateLimiterSettings,
    pub fetch: FetchSettings,
    /// The Writer's batching and retry settings (`[writer]`).
    pub writer: WriterSettings,
    /// The admin HTTP server's address (`admin_addr` / SLUICE_ADMIN_ADDR).
    pub admin_addr: SocketAddr,
    /// Where the file came from, if any.
    pub source: Option<PathBuf>,
    /// How often `sluice run` re-reads the directory (`directory_refresh_minutes`).
    pub directory_refresh: std::time::Duration,
    /// The zone reports cut days and intervals in (`report_tz`).
    pub report_tz: chrono_tz::Tz,
}

/// Default address of the admin server.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9187";

impl Default for Config {
    fn default() -> Self {
        Config {
            start: None,
            datasets: vec![
                DatasetChoice::Conversations,
                DatasetChoice::Users,
                DatasetChoice::Directory,
            ],
            mode: Mode::Auto,
            watermark_lag: Duration::hours(4),
            poll_interval: std::time::Duration::from_secs(15 * 60),
            provisional: false,
            settle_after: Some(Duration::hours(96)),
            database_url: None,
            genesys: GenesysConfig {
                settings: GenesysSettings::default(),
                client_id: None,
                client_secret: None,
            },
            rate_limit: RateLimiterSettings::default(),
            fetch: FetchSettings::default(),
            writer: WriterSettings::default(),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 9187)),
            source: None,
            directory_refresh: std::time::Duration::from_secs(
                crate::directory::DEFAULT_REFRESH_MINUTES * 60,
            ),
            report_tz: chrono_tz::UTC,
        }
    }
}

/// The file as written (all optional; unknown keys are errors so typos do not go unnoticed).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    start: Option<String>,
    datasets: Option<Vec<String>>,
    mode: Option<String>,
    watermark_hours: Option<f64>,
    poll_minutes: Option<f64>,
    provisional: Option<bool>,
    settle_hours: Option<f64>,
    database_url: Option<String>,
    admin_addr: Option<String>,
    genesys: Option<toml::Table>,
    rate_limit: Option<toml::Table>,
    fetch: Option<FileFetch>,
    writer: Option<toml::Table>,
    directory_refresh_minutes: Option<f64>,
    report_tz: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFetch {
    fetchers: Option<usize>,
    page_size: Option<i64>,
    job_page_size: Option<i64>,
    paging_cap: Option<i64>,
    job_block_days: Option<i64>,
    min_block_minutes: Option<i64>,
    verify_passes: Option<u32>,
    max_attempts: Option<u32>,
    lease_secs: Option<u64>,
    max_jobs: Option<usize>,
    page_concurrency: Option<usize>,
    job_poll_secs: Option<f64>,
    job_poll_max_secs: Option<f64>,
    job_attempts: Option<u32>,
    max_outstanding_pages: Option<usize>,
}

/// Where settings are read from: a file and an environment (injectable for tests).
pub struct Sources<'a> {
    /// `--config`; when `None`, `sluice.toml` in the working directory is used if present.
    pub file: Option<&'a FsPath>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The process environment.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

impl Config {
    /// Loads `--config` (or `sluice.toml` if present) and applies the process environment.
    pub fn load(file: Option<&FsPath>) -> Result<Config, ConfigError> {
        Config::load_from(Sources {
            file,
            env: &process_env,
        })
    }

    pub fn load_from(src: Sources<'_>) -> Result<Config, ConfigError> {
        let (text, path) = match src.file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError::new("--config", format!("cannot read {}: {e}", p.display()))
                })?;
                (Some(text), Some(p.to_path_buf()))
            }
            None => {
                let p = PathBuf::from("sluice.toml");
                match std::fs::read_to_string(&p) {
                    Ok(t) => (Some(t), Some(p)),
                    Err(_) => (None, None),
                }
            }
        };
        let mut cfg = match &text {
            Some(t) => Config::from_toml(t, path.as_deref())?,
            None => Config::default(),
        };
        cfg.source = path;
        cfg.apply_env(src.env)?;
        Ok(cfg)
    }

    /// Parses the file's text.
    pub fn from_toml(text: &str, path: Option<&FsPath>) -> Result<Config, ConfigError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            ConfigError::new(
                name.clone(),
                e.message().to_string() + &span_hint(text, e.span()),
            )
        })?;
        let key = |k: &str| format!("{name}: {k}");
        let mut cfg = Config::default();
        if let Some(s) = file.start {
            cfg.start = Some(parse_bound(&s).map_err(|m| ConfigError::new(key("start"), m))?);
        }
        if let Some(d) = file.datasets {
            cfg.datasets =
                parse_datasets(&d.join(",")).map_err(|m| ConfigError::new(key("datasets"), m))?;
        }
        if let Some(m) = file.mode {
            cfg.mode = m.parse().map_err(|m| ConfigError::new(key("mode"), m))?;
        }
        if let Some(h) = file.watermark_hours {
            cfg.watermark_lag =
                hours(h).map_err(|m| ConfigError::new(key("watermark_hours"), m))?;
        }
        if let Some(m) = file.poll_minutes {
            cfg.poll_interval = minutes(m).map_err(|e| ConfigError::new(key("poll_minutes"), e))?;
        }
        if let Some(p) = file.provisional {
            cfg.provisional = p;
        }
        if let Some(h) = file.settle_hours {
            cfg.settle_after = settle(h).map_err(|m| ConfigError::new(key("settle_hours"), m))?;
        }
        cfg.database_url = file.database_url;
        if let Some(m) = file.directory_refresh_minutes {
            cfg.directory_refresh =
                minutes(m).map_err(|e| ConfigError::new(key("directory_refresh_minutes"), e))?;
        }
        if let Some(z) = file.report_tz {
            cfg.report_tz = parse_tz(&z).map_err(|m| ConfigError::new(key("report_tz"), m))?;
        }
        if let Some(a) = file.admin_addr {
            cfg.admin_addr = parse_addr(&a).map_err(|m| ConfigError::new(key("admin_addr"), m))?;
        }
        if let Some(mut g) = file.genesys {
            let mut take = |k: &str| -> Result<Option<String>, ConfigError> {
                match g.remove(k) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) => Ok(Some(s)),
                    Some(_) => Err(ConfigError::new(
                        key(&format!("genesys.{k}")),
                        "expected a string",
                    )),
                }
            };
            cfg.genesys.client_id = take("client_id")?;
            if let Some(s) = take("client_secret")? {
                cfg.genesys.client_secret = Some(Secret::new(s));
            }
            if let Some(f) = take("client_secret_file")? {
                let setting = key("genesys.client_secret_file");
                cfg.genesys.client_secret = Some(read_secret_file(&f, &setting)?);
            }
            cfg.genesys.settings = GenesysSettings::deserialize(toml::Value::Table(g))
                .map_err(|e| ConfigError::new(key("[genesys]"), e.to_string()))?;
        }
        if let Some(r) = file.rate_limit {
            cfg.rate_limit = RateLimiterSettings::deserialize(toml::Value::Table(r))
                .map_err(|e| ConfigError::new(key("[rate_limit]"), e.to_string()))?;
        }
        if let Some(w) = file.writer {
            cfg.writer = WriterSettings::deserialize(toml::Value::Table(w))
                .map_err(|e| ConfigError::new(key("[writer]"), e.to_string()))?;
            cfg.writer
                .validate()
                .map_err(|e| ConfigError::new(key(&format!("writer.{}", e.setting)), e.message))?;
        }
        if let Some(f) = file.fetch {
            let d = &mut cfg.fetch;
            d.fetchers = f.fetchers.or(d.fetchers);
            macro_rules! set {
                ($($field:ident),*) => {$( if let Some(v) = f.$field { d.$field = v; } )*};
            }
            set!(
                page_size,
                job_page_size,
                paging_cap,
                job_block_days,
                min_block_minutes,
                verify_passes,
                max_attempts,
                lease_secs,
                max_jobs,
                page_concurrency,
                job_poll_secs,
                job_poll_max_secs,
                job_attempts,
                max_outstanding_pages
            );
        }
        cfg.validate(&|k| key(&format!("fetch.{k}")))?;
        Ok(cfg)
    }

    /// Applies environment overrides (GENESYS_*, DATABASE_URL, SLUICE_*).
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = &|k: &str| env(k).filter(|v| !v.trim().is_empty());
        self.genesys
            .settings
            .apply_env_from(get)
            .map_err(|e| match e {
                ApiError::Settings { setting, message } => ConfigError::new(setting, message),
                other => ConfigError::new("[genesys]", other.to_string()),
            })?;
        self.rate_limit
            .apply_env_from(get)
            .map_err(|e| ConfigError::new(e.setting, e.message))?;
        if let Some(v) = get("GENESYS_CLIENT_ID") {
            self.genesys.client_id = Some(v);
        }
        if let Some(v) = get("GENESYS_CLIENT_SECRET") {
            self.genesys.client_secret = Some(Secret::new(v.trim()));
        } else if let Some(f) = get("GENESYS_CLIENT_SECRET_FILE") {
            self.genesys.client_secret = Some(read_secret_file(&f, "GENESYS_CLIENT_SECRET_FILE")?);
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("SLUICE_ADMIN_ADDR") {
            self.admin_addr =
                parse_addr(&v).map_err(|m| ConfigError::new("SLUICE_ADMIN_ADDR", m))?;
        }
        if let Some(v) = get("SLUICE_START") {
            self.start = Some(parse_bound(&v).map_err(|m| ConfigError::new("SLUICE_START", m))?);
        }
        if let Some(v) = get("SLUICE_DATASETS") {
            self.datasets =
                parse_datasets(&v).map_err(|m| ConfigError::new("SLUICE_DATASETS", m))?;
        }
        if let Some(v) = get("SLUICE_MODE") {
            self.mode = v.parse().map_err(|m| ConfigError::new("SLUICE_MODE", m))?;
        }
        if let Some(v) = get("SLUICE_WATERMARK_HOURS") {
            self.watermark_lag = number(&v)
                .and_then(hours)
                .map_err(|m| ConfigError::new("SLUICE_WATERMARK_HOURS", m))?;
        }
        if let Some(v) = get("SLUICE_POLL_MINUTES") {
            self.poll_interval = number(&v)
                .and_then(minutes)
                .map_err(|m| ConfigError::new("SLUICE_POLL_MINUTES", m))?;
        }
        if let Some(v) = get("SLUICE_DIRECTORY_REFRESH_MINUTES") {
            self.directory_refresh = number(&v)
                .and_then(minutes)
                .map_err(|m| ConfigError::new("SLUICE_DIRECTORY_REFRESH_MINUTES", m))?;
        }
        if let Some(v) = get("SLUICE_REPORT_TZ") {
            self.report_tz = parse_tz(&v).map_err(|m| ConfigError::new("SLUICE_REPORT_TZ", m))?;
        }
        if let Some(v) = get("SLUICE_SETTLE_HOURS") {
            self.settle_after = number(&v)
                .and_then(settle)
                .map_err(|m| ConfigError::new("SLUICE_SETTLE_HOURS", m))?;
        }
        if let Some(v) = get("SLUICE_PROVISIONAL") {
            self.provisional =
                boolean(&v).map_err(|m| ConfigError::new("SLUICE_PROVISIONAL", m))?;
        }
        if let Some(v) = get("SLUICE_WRITER_CONNECTIONS") {
            self.writer.writer_connections = v.trim().parse().map_err(|_| {
                ConfigError::new(
                    "SLUICE_WRITER_CONNECTIONS",
                    format!("expected a number, got {v:?}"),
                )
            })?;
            self.writer.validate().map_err(|e| {
                ConfigError::new(
                    format!("SLUICE_{}", e.setting.to_ascii_uppercase()),
                    e.message,
                )
            })?;
        }
        let f = &mut self.fetch;
        macro_rules! env_num {
            ($($name:literal => $field:ident),*) => {$(
                if let Some(v) = get($name) {
                    f.$field = v.trim().parse().map_err(|_| {
                        ConfigError::new($name, format!("expected a number, got {v:?}"))
                    })?;
                }
            )*};
        }
        if let Some(v) = get("SLUICE_FETCHERS") {
            f.fetchers = Some(v.trim().parse().map_err(|_| {
                ConfigError::new("SLUICE_FETCHERS", format!("expected a number, got {v:?}"))
            })?);
        }
        env_num!(
            "SLUICE_PAGE_SIZE" => page_size,
            "SLUICE_JOB_PAGE_SIZE" => job_page_size,
            "SLUICE_PAGING_CAP" => paging_cap,
            "SLUICE_JOB_BLOCK_DAYS" => job_block_days,
            "SLUICE_MIN_BLOCK_MINUTES" => min_block_minutes,
            "SLUICE_VERIFY_PASSES" => verify_passes,
            "SLUICE_MAX_ATTEMPTS" => max_attempts,
            "SLUICE_LEASE_SECS" => lease_secs,
            "SLUICE_MAX_JOBS" => max_jobs,
            "SLUICE_PAGE_CONCURRENCY" => page_concurrency,
            "SLUICE_JOB_POLL_SECS" => job_poll_secs,
            "SLUICE_JOB_POLL_MAX_SECS" => job_poll_max_secs,
            "SLUICE_JOB_ATTEMPTS" => job_attempts,
            "SLUICE_MAX_OUTSTANDING_PAGES" => max_outstanding_pages
        );
        self.validate(&|k| format!("SLUICE_{}", k.to_ascii_uppercase()))
    }

    /// Checks ranges of the tuning values; `name` turns a field into the setting's name.
    fn validate(&self, name: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let f = &self.fetch;
        let positive = |v: i64, k: &str| {
            if v > 0 {
                Ok(())
            } else {
                Err(ConfigError::new(
                    name(k),
                    format!("must be positive, got {v}"),
                ))
            }
        };
        positive(f.page_size, "page_size")?;
        positive(f.job_page_size, "job_page_size")?;
        positive(f.paging_cap, "paging_cap")?;
        positive(f.job_block_days, "job_block_days")?;
        positive(f.min_block_minutes, "min_block_minutes")?;
        positive(f.verify_passes as i64, "verify_passes")?;
        positive(f.max_attempts as i64, "max_attempts")?;
        positive(f.max_jobs as i64, "max_jobs")?;
        positive(f.page_concurrency as i64, "page_concurrency")?;
        positive(f.job_attempts as i64, "job_attempts")?;
        positive(f.max_outstanding_pages as i64, "max_outstanding_pages")?;
        if f.lease_secs < 3 {
            return Err(ConfigError::new(name("lease_secs"), "must be at least 3"));
        }
        if f.fetchers == Some(0) {
            return Err(ConfigError::new(name("fetchers"), "must be positive"));
        }
        if !(f.job_poll_secs > 0.0 && f.job_poll_max_secs >= f.job_poll_secs) {
            return Err(ConfigError::new(
                name("job_poll_secs"),
                "must be positive and at most job_poll_max_secs",
            ));
        }
        if f.min_block_minutes > 60 || 60 % f.min_block_minutes != 0 {
            return Err(ConfigError::new(
                name("min_block_minutes"),
                "must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)",
            ));
        }
        Ok(())
    }

    /// The client id, or an error naming the settings that provide it.
    pub fn client_id(&self) -> Result<&str, ConfigError> {
        self.genesys.client_id.as_deref().ok_or_else(|| {
            ConfigError::new(
                "GENESYS_CLIENT_ID",
                "not set (environment, or client_id in the [genesys] section)",
            )
        })
    }

    /// The client secret, or an error naming the settings that provide it.
    pub fn client_secret(&self) -> Result<&Secret, ConfigError> {
        self.genesys.client_secret.as_ref().ok_or_else(|| {
            ConfigError::new(
                "GENESYS_CLIENT_SECRET",
                "not set (GENESYS_CLIENT_SECRET, GENESYS_CLIENT_SECRET_FILE, or client_secret_file in [genesys])",
            )
        })
    }

    /// The OAuth client, or an error naming the missing setting.
    pub fn credentials(&self) -> Result<Credentials, ConfigError> {
        Ok(Credentials::new(
            self.client_id()?.to_string(),
            self.client_secret()?.clone(),
        ))
    }

    /// `start` for `sluice run`, or an error naming it.
    pub fn start(&self) -> Result<DateTime<Utc>, ConfigError> {
        self.start.ok_or_else(|| {
            ConfigError::new(
                "SLUICE_START",
                "not set (SLUICE_START or start in the config file)",
            )
        })
    }
}

/// Parses an IANA zone name (`Europe/Dublin`, `UTC`).
pub fn parse_tz(s: &str) -> Result<chrono_tz::Tz, String> {
    s.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!("unknown time zone {s:?} (expected an IANA name such as Europe/Dublin)")
    })
}

fn read_secret_file(path: &str, setting: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(setting, format!("cannot read {path}: {e}")))?;
    let s = text.trim();
    if s.is_empty() {
        return Err(ConfigError::new(setting, format!("{path} is empty")));
    }
    Ok(Secret::new(s.to_string()))
}

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("expected HOST:PORT (e.g. {DEFAULT_ADMIN_ADDR}), got {v:?}"))
}

fn number(v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .map_err(|_| format!("expected a number, got {v:?}"))
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

/// `settle_hours`: 0 turns settling off.
fn settle(h: f64) -> Result<Option<Duration>, String> {
    hours(h).map(|d| (d > Duration::zero()).then_some(d))
}

fn hours(h: f64) -> Result<Duration, String> {
    if !(h.is_finite() && (0.0..=24.0 * 366.0).contains(&h)) {
        return Err(format!("expected hours between 0 and 8784, got {h}"));
    }
    Ok(Duration::milliseconds((h * 3_600_000.0) as i64))
}

fn minutes(m: f64) -> Result<std::time::Duration, String> {
    if !(m.is_finite() && m > 0.0 && m <= 1440.0) {
        return Err(format!("expected minutes between 0 and 1440, got {m}"));
    }
    Ok(std::time::Duration::from_secs_f64(m * 60.0))
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// A fixed environment for tests and embedding (the demo).
pub fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sluice.toml");
        std::fs::write(&p, text).unwrap();
        let env = env_from(env);
        Config::load_from(Sources {
            file: Some(&p),
            env: &env,
        })
    }

    #[test]
    fn file_values_are_read_and_env_overrides_them() {
        let cfg = load(
            r#"
start = "2026-01-01"
datasets = ["conversations"]
mode = "query"
watermark_hours = 6
poll_minutes = 5
database_url = "mysql://root@127.0.0.1/x"
[genesys]
region = "mypurecloud.ie"
client_id = "from-file"
[rate_limit]
rate_per_minute = 120
[fetch]
page_size = 50
"#,
            &[
                ("GENESYS_CLIENT_ID", "from-env"),
                ("GENESYS_CLIENT_SECRET", "s3cret"),
                ("SLUICE_WATERMARK_HOURS", "2"),
                ("SLUICE_START", "2026-02-01T12:00:00Z"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.datasets, vec![DatasetChoice::Conversations]);
        assert_eq!(cfg.mode, Mode::Query);
        assert_eq!(cfg.watermark_lag, Duration::hours(2));
        assert_eq!(cfg.poll_interval, std::time::Duration::from_secs(300));
        assert_eq!(
            cfg.start.unwrap(),
            parse_bound("2026-02-01T12:00:00Z").unwrap()
        );
        assert_eq!(
            cfg.genesys.settings.region,
            "mypurecloud.ie".parse::<crate::genesys::Region>().unwrap()
        );
        assert_eq!(cfg.client_id().unwrap(), "from-env");
        assert_eq!(cfg.client_secret().unwrap().expose(), "s3cret");
        assert_eq!(cfg.fetch.page_size, 50);
        assert_eq!(cfg.rate_limit.rate_per_minute, 120);
        assert_eq!(
            cfg.database_url.as_deref(),
            Some("mysql://root@127.0.0.1/x")
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = load("", &[("SLUICE_WATERMARK_HOURS", "four")]).unwrap_err();
        assert_eq!(e.setting, "SLUICE_WATERMARK_HOURS");
        let e = load("mode = \"turbo\"", &[]).unwrap_err();
        assert!(e.setting.ends_with("mode"), "{e}");
        let e = load("wtaermark_hours = 3", &[]).unwrap_err();
        assert!(e.to_string().contains("wtaermark_hours"), "{e}");
        let e = load("", &[("SLUICE_DATASETS", "conversations,calls")]).unwrap_err();
        assert_eq!(e.setting, "SLUICE_DATASETS");
        let e = load("[fetch]\nmin_block_minutes = 7", &[]).unwrap_err();
        assert!(e.setting.ends_with("fetch.min_block_minutes"), "{e}");
        let e = load("", &[("SLUICE_PAGE_SIZE", "0")]).unwrap_err();
        assert_eq!(e.setting, "SLUICE_PAGE_SIZE");
        let e = load("", &[("GENESYS_CLIENT_SECRET_FILE", "/nonexistent/secret")]).unwrap_err();
        assert_eq!(e.setting, "GENESYS_CLIENT_SECRET_FILE");
        let e = load("", &[("SLUICE_RATE_PER_MINUTE", "lots")]).unwrap_err();
        assert_eq!(e.setting, "SLUICE_RATE_PER_MINUTE");
        let e = load("", &[("GENESYS_REGION", "mars.example")]).unwrap_err();
        assert_eq!(e.setting, "GENESYS_REGION");
        let e = load("[genesys]\nregoin = \"x\"", &[]).unwrap_err();
        assert!(e.to_string().contains("regoin"), "{e}");
        let e = load("", &[]).unwrap().start().unwrap_err();
        assert_eq!(e.setting, "SLUICE_START");
    }

    #[test]
    fn settle_hours_from_file_and_env_with_zero_turning_it_off() {
        let cfg = load("", &[]).unwrap();
        assert_eq!(cfg.settle_after, Some(Duration::hours(96)));
        let cfg = load("settle_hours = 72", &[]).unwrap();
        assert_eq!(cfg.settle_after, Some(Duration::hours(72)));
        let cfg = load("settle_hours = 72", &[("SLUICE_SETTLE_HOURS", "0")]).unwrap();
        assert_eq!(cfg.settle_after, None);
        let e = load("", &[("SLUICE_SETTLE_HOURS", "-3")]).unwrap_err();
        assert_eq!(e.setting, "SLUICE_SETTLE_HOURS");
    }

    #[test]
    fn the_packaged_example_config_is_valid() {
        let cfg = Config::from_toml(include_str!("../packaging/sluice.toml"), None).unwrap();
        assert_eq!(cfg.watermark_lag, Duration::hours(4));
        assert_eq!(cfg.fetch, FetchSettings::default());
        assert_eq!(
            cfg.writer,
            WriterSettings::default(),
            "the [writer] defaults as listed"
        );
        assert_eq!(cfg.admin_addr.to_string(), DEFAULT_ADMIN_ADDR);
    }

    #[test]
    fn writer_settings_come_from_the_file_and_are_checked() {
        let cfg = load(
            "[writer]\nbatch_max_conversations = 250\ngroup_commit = false",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.writer.batch_max_conversations, Some(250));
        assert!(!cfg.writer.group_commit);
        assert_eq!(
            cfg.writer.batch_max_rows,
            WriterSettings::default().batch_max_rows
        );
        let e = load("[writer]\nbatch_max_rows = 0", &[]).unwrap_err();
        assert!(e.setting.ends_with("writer.batch_max_rows"), "{e}");
        let e = load("[writer]\nbatch_size = 10", &[]).unwrap_err();
        assert!(e.to_string().contains("batch_size"), "{e}");
    }

    #[test]
    fn writer_connections_come_from_the_file_or_the_environment_and_are_checked() {
        assert_eq!(load("", &[]).unwrap().writer.writer_connections, 2);
        let cfg = load("[writer]\nwriter_connections = 4", &[]).unwrap();
        assert_eq!(cfg.writer.writer_connections, 4);
        let cfg = load(
            "[writer]\nwriter_connections = 4",
            &[("SLUICE_WRITER_CONNECTIONS", "1")],
        )
        .unwrap();
        assert_eq!(cfg.writer.writer_connections, 1, "the environment wins");
        let e = load("[writer]\nwriter_connections = 0", &[]).unwrap_err();
        assert!(e.setting.ends_with("writer.writer_connections"), "{e}");
        for bad in ["17", "0", "two", "-1"] {
            let e = load("", &[("SLUICE_WRITER_CONNECTIONS", bad)]).unwrap_err();
            assert_eq!(e.setting, "SLUICE_WRITER_CONNECTIONS", "{bad}: {e}");
        }
    }

    #[test]
    fn secret_from_file_is_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "top-secret-value\n").unwrap();
        let cfg = load(
            "",
            &[
                ("GENESYS_CLIENT_ID", "id"),
                ("GENESYS_CLIENT_SECRET_FILE", p.to_str().unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(cfg.client_secret().unwrap().expose(), "top-secret-value");
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("top-secret-value"), "{debug}");
        let missing = load("", &[]).unwrap();
        assert_eq!(
            missing.client_secret().unwrap_err().setting,
            "GENESYS_CLIENT_SECRET"
        );
    }
}
