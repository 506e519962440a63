//! Out-of-process harness shared by `sluice bench` and the reliability tests.
//!
//! Everything here drives the real `sluice` binary through its command line — `sluice sim` as the
//! API and `sluice backfill` as the engine — so that what is measured or crash-tested is exactly
//! what users run: a separate process that can be killed with SIGKILL, whose CPU time and peak
//! RSS come from the kernel (`wait4`), and whose results are read back from the database with
//! plain SQL and compared with the simulator's ground truth (`/__sim/stats`, `/__sim/expected`);
//! the database side is in `stored.rs`.
use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What can go wrong while orchestrating processes, HTTP probes and database checks.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP {method} {url}: {message}")]
    Http {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("database {url}: {message}")]
    Database { url: String, message: String },
    #[error("{0}")]
    Other(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// Environment variables the harness clears in every child so that the caller's own settings
/// (a real org's credentials, a production DATABASE_URL) never leak into a test run.
const CLEARED_ENV_PREFIXES: &[&str] = &["GENESYS_", "SLUICE_", "DATABASE_URL"];

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("bind 127.0.0.1:0"))?;
    let port = l.local_addr().map_err(io_err("local_addr"))?.port();
    Ok(port)
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name unique within this machine for a while: pid, a counter and the clock.
pub fn unique_name(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{:x}", std::process::id(), t)
}

/// A scratch directory for one run's logs and SQLite files; removed on drop unless kept.
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> Result<Self, HarnessError> {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path).map_err(io_err(format!("create {}", path.display())))?;
        Ok(Self { path, keep: false })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Leave the directory in place (for a failing test's post-mortem).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep && std::env::var_os("SLUICE_KEEP_SCRATCH").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP probes (awc on a throw-away actix System: the callers are plain threads).

/// One blocking HTTP request; returns the status and the body.
pub fn http_request(
    method: &'static str,
    url: &str,
    json_body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HarnessError> {
    let url_owned = url.to_owned();
    let body = json_body.cloned();
    let fail = |message: String| HarnessError::Http {
        method,
        url: url.to_owned(),
        message,
    };
    let result: Result<(u16, Vec<u8>), String> = actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder()
            .timeout(timeout)
            .disable_redirects()
            .finish();
        let req = match method {
            "POST" => client.post(&url_owned),
            "DELETE" => client.delete(&url_owned),
            _ => client.get(&url_owned),
        };
        let sent = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body()
            .limit(1 << 30)
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, bytes.to_vec()))
    });
    result.map_err(fail)
}

/// GET a JSON document; any status other than 200 is an error carrying the body's start.
pub fn get_json(url: &str) -> Result<Value, HarnessError> {
    let (status, body) = http_request("GET", url, None, Duration::from_secs(120))?;
    if status != 200 {
        return Err(HarnessError::Http {
            method: "GET",
            url: url.to_owned(),
            message: format!("status {status}: {}", snippet(&body)),
        });
    }
    serde_json::from_slice(&body).map_err(|e| HarnessError::Http {
        method: "GET",
        url: url.to_owned(),
        message: format!("not JSON ({e}): {}", snippet(&body)),
    })
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The simulator as a separate process.

/// `sluice sim` running as a child process on a free port; killed (SIGKILL) on drop.
pub struct SimProcess {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl SimProcess {
    /// Starts `<bin> sim --bind 127.0.0.1 --port <free> <args>` and waits until `/__sim/stats`
    /// answers (at most 30 s). The process's output goes to `<dir>/sim.log`.
    pub fn start(bin: &Path, dir: &Path, args: &[String]) -> Result<Self, HarnessError> {
        let mut last_err = String::new();
        // A free port can be taken between the probe and the bind: retry a few times.
        for _ in 0..3 {
            let port = free_port()?;
            let log_path = dir.join(format!("sim-{port}.log"));
            let log = File::create(&log_path).map_err(io_err("create sim log"))?;
            let log2 = log.try_clone().map_err(io_err("clone sim log"))?;
            let mut cmd = Command::new(bin);
            cmd.arg("sim")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            clear_env(&mut cmd);
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "warn");
            }
            let child = cmd
                .spawn()
                .map_err(io_err(format!("spawn {} sim", bin.display())))?;
            let mut sim = SimProcess {
                child,
                port,
                log_path,
            };
            match sim.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(sim),
                Err(e) => last_err = format!("{e}; sim log: {}", sim.log_tail(2000)),
            }
        }
        Err(HarnessError::Other(format!(
            "the simulator did not become ready: {last_err}"
        )))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Other(format!("sim exited early ({status})")));
            }
            if let Ok((200, _)) = http_request(
                "GET",
                &format!("{}/__sim/stats", self.base_url()),
                None,
                Duration::from_secs(2),
            ) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(HarnessError::Other(format!(
                    "no answer on port {} within {limit:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// `http://127.0.0.1:PORT` — serves `/oauth/token` and `/api/v2/...`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    /// `GET /__sim/stats`.
    pub fn stats(&self) -> Result<Value, HarnessError> {
        get_json(&format!("{}/__sim/stats", self.base_url()))
    }
    /// `GET /__sim/expected?interval=A/B` (RFC 3339 instants).
    pub fn expected(&self, interval: &str) -> Result<Value, HarnessError> {
        get_json(&format!(
            "{}/__sim/expected?interval={interval}",
            self.base_url()
        ))
    }
    /// `POST /__sim/clock {"now": ...}`: moves the simulated clock.
    pub fn set_now(&self, now_rfc3339: &str) -> Result<(), HarnessError> {
        let url = format!("{}/__sim/clock", self.base_url());
        let (status, body) = http_request(
            "POST",
            &url,
            Some(&serde_json::json!({ "now": now_rfc3339 })),
            Duration::from_secs(10),
        )?;
        if !(200..300).contains(&status) {
            return Err(HarnessError::Http {
                method: "POST",
                url,
                message: format!("status {status}: {}", snippet(&body)),
            });
        }
        Ok(())
    }
    pub fn log_tail(&self, max: usize) -> String {
        tail(&self.log_path, max)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clear_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if CLEARED_ENV_PREFIXES.iter().any(|p| k.starts_with(p)) {
                cmd.env_remove(k);
            }
        }
    }
}

fn tail(path: &Path, max: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        let start = buf.len().saturating_sub(max);
        s = String::from_utf8_lossy(&buf[start..]).into_owned();
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The engine (or any other sluice subcommand) as a separate process.

/// A `sluice` command line with its environment; the caller's GENESYS_*, SLUICE_* and
/// DATABASE_URL are cleared, the working directory is a scratch directory (so no stray
/// `sluice.toml` or `sluice.db` is picked up), and the admin server gets a free port.
#[derive(Clone, Debug)]
pub struct SluiceCommand {
    bin: PathBuf,
    dir: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl SluiceCommand {
    pub fn new(bin: &Path, dir: &Path) -> Self {
        Self {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        let k = k.into();
        self.envs.retain(|(kk, _)| *kk != k);
        self.envs.push((k, v.into()));
        self
    }
    /// Points the engine at a simulator: API and login URLs, and the sim's default client.
    pub fn against_sim(self, sim_base_url: &str, client_id: &str, secret: &str) -> Self {
        self.env("GENESYS_API_URL", sim_base_url)
            .env("GENESYS_LOGIN_URL", sim_base_url)
            .env("GENESYS_CLIENT_ID", client_id)
            .env("GENESYS_CLIENT_SECRET", secret)
    }
    pub fn args_list(&self) -> &[String] {
        &self.args
    }
    /// The command as a shell line (environment values that look secret are redacted).
    pub fn display(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.envs {
            let shown = if k.contains("SECRET") || k.contains("PASSWORD") {
                "…"
            } else {
                v.as_str()
            };
            s.push_str(&format!("{k}={shown} "));
        }
        s.push_str("sluice");
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// Spawns the process; stdout and stderr go to `<dir>/<label>.log`.
    pub fn spawn(&self, label: &str) -> Result<SluiceProcess, HarnessError> {
        let log_path = self.dir.join(format!("{label}.log"));
        let log = File::create(&log_path).map_err(io_err("create log"))?;
        let log2 = log.try_clone().map_err(io_err("clone log"))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        clear_env(&mut cmd);
        let has_admin = self.envs.iter().any(|(k, _)| k == "SLUICE_ADMIN_ADDR");
        if !has_admin {
            cmd.env("SLUICE_ADMIN_ADDR", format!("127.0.0.1:{}", free_port()?));
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(io_err(format!("spawn {}", self.bin.display())))?;
        Ok(SluiceProcess {
            pid: child.id(),
            child: Some(child),
            started: Instant::now(),
            log_path,
        })
    }

    /// Runs to the end (at most `limit`; killed after that) and returns how it ended.
    pub fn run(&self, label: &str, limit: Duration) -> Result<Finished, HarnessError> {
        let mut p = self.spawn(label)?;
        match p.wait_timeout(limit)? {
            Some(f) => Ok(f),
            None => {
                let log = p.log_tail(3000);
                let _ = p.kill9();
                Err(HarnessError::Other(format!(
                    "`{}` did not finish within {limit:?}; log tail:\n{log}",
                    self.display()
                )))
            }
        }
    }
}

/// How a process ended, with the kernel's resource accounting for it alone.
#[derive(Clone, Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub wall: Duration,
    /// User + system CPU seconds of this process (wait4).
    pub cpu_user: f64,
    pub cpu_system: f64,
    /// Peak resident set size in bytes (wait4's ru_maxrss).
    pub max_rss_bytes: u64,
    pub log: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_user + self.cpu_system
    }
}

/// A running `sluice` child process.
pub struct SluiceProcess {
    child: Option<Child>,
    pid: u32,
    started: Instant,
    log_path: PathBuf,
}

impl SluiceProcess {
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
    pub fn log_tail(&self, max: usize) -> String {
        tail(&self.log_path, max)
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// The process's argv as the kernel shows it to every local user (`/proc/<pid>/cmdline`).
    pub fn cmdline(&self) -> Result<Vec<String>, HarnessError> {
        let raw = std::fs::read(format!("/proc/{}/cmdline", self.pid))
            .map_err(io_err("read /proc/<pid>/cmdline"))?;
        Ok(raw
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }
    /// Current resident set size in bytes (`VmRSS`), None once the process is gone.
    pub fn rss_bytes(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
    /// Still running?
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Waits for the end at most `limit`; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> Result<Option<Finished>, HarnessError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(f) = self.try_reap(false)? {
                return Ok(Some(f));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap. Returns how it ended (it may have ended by itself just before).
    pub fn kill9(&mut self) -> Result<Finished, HarnessError> {
        if self.child.is_some() {
            // SAFETY: plain syscall on a pid we spawned and have not reaped yet.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        match self.try_reap(true)? {
            Some(f) => Ok(f),
            None => Err(HarnessError::Other("process already reaped".into())),
        }
    }

    /// SIGTERM (graceful shutdown request).
    pub fn terminate(&self) {
        if self.child.is_some() {
            // SAFETY: plain syscall on a pid we spawned and have not reaped yet.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    fn try_reap(&mut self, block: bool) -> Result<Option<Finished>, HarnessError> {
        if self.child.is_none() {
            return Ok(None);
        }
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is a plain C struct; zeroed is a valid value for it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: wait4 on our own child with valid out-pointers. std's Child never waits for it
        // (we drop it below without calling wait), so the pid is reaped exactly once.
        let r = unsafe { libc::wait4(self.pid as libc::pid_t, &mut status, flags, &mut ru) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            return Err(HarnessError::Io {
                what: "wait4".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        self.child = None;
        use std::os::unix::process::ExitStatusExt;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Ok(Some(Finished {
            status: ExitStatus::from_raw(status),
            wall: self.started.elapsed(),
            cpu_user: tv(ru.ru_utime),
            cpu_system: tv(ru.ru_stime),
            max_rss_bytes: (ru.ru_maxrss.max(0) as u64) * 1024,
            log: self.log(),
        }))
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill9();
        }
    }
}

/// A JSON number at a path like `requests.byClient.sluice-sim` (missing = 0).
pub fn json_u64(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(*p) {
            Some(n) => cur = n,
            None => return 0,
        }
    }
    cur.as_u64()
        .or_else(|| cur.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

/// The machine, for BENCHMARKS.md: cores, CPU model, memory.
pub fn machine_description() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    format!(
        "{cpus} CPUs (nproc), {model}, {:.1} GiB RAM",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}
