//! A dedicated MariaDB server for the benchmarks, configured as production would be: its own
//! datadir and port, the buffer pool sized to the working set, a large redo log, durability kept
//! (`innodb_flush_log_at_trx_commit=1`, doublewrite on). The shared test server (127.0.0.1:3306)
//! runs the distribution's defaults (128 MiB buffer pool, 96 MiB redo log), so figures measured
//! on it say more about that configuration than about Sluice; the benches run on both and print
//! each server's settings in effect next to its figures.
//!
//! [`DedicatedMariadb::start`] runs `mariadb-install-db` into a scratch directory, starts
//! `mariadbd --no-defaults` on a free port of 127.0.0.1 and waits until it answers; dropping it
//! stops the server (SIGTERM, SIGKILL after a timeout) and removes the directory. The server is
//! told to skip flushing at shutdown (`innodb_fast_shutdown=3`): its data is thrown away.
//!
//! Settings come from [`MariadbSettings`] (defaults: 4G buffer pool, 2G redo log; the benches
//! read `BENCH_MARIADB_BUFFER_POOL`, `BENCH_MARIADB_LOG_FILE_SIZE`, `BENCH_MARIADB_DIR`).
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};

use super::harness::{free_port, unique_name};
use crate::storage::{connect, Connection, DatabaseUrl, StorageError};

/// What went wrong starting or asking a MariaDB server.
#[derive(Debug, thiserror::Error)]
pub enum MariadbError {
    #[error("{binary} not found (looked in {searched}); install mariadb-server or set BENCH_MARIADB_BIN_DIR")]
    BinaryMissing {
        binary: &'static str,
        searched: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mariadb-install-db into {datadir} failed ({status}): {log}")]
    Install {
        datadir: String,
        status: ExitStatus,
        log: String,
    },
    #[error("mariadbd exited during startup ({status}); log: {log}")]
    Exited { status: ExitStatus, log: String },
    #[error("mariadbd on port {port} did not answer within {after:?} ({last}); log: {log}")]
    NotReady {
        port: u16,
        after: Duration,
        last: String,
        log: String,
    },
    #[error("{what}: {source}")]
    Sql {
        what: String,
        #[source]
        source: StorageError,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MariadbError {
    let what = what.into();
    move |source| MariadbError::Io { what, source }
}

/// How the dedicated server is configured. Sizes are given as mariadbd takes them (`4G`,
/// `512M`, bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MariadbSettings {
    /// `innodb_buffer_pool_size`: sized to the working set (the tables the run writes).
    pub buffer_pool: String,
    /// `innodb_log_file_size`: the redo log; large, so checkpoints do not force page flushes.
    pub log_file_size: String,
    /// Where the scratch directory (datadir, socket, log) goes; default the temp dir.
    pub parent_dir: Option<PathBuf>,
    /// Where `mariadbd` and `mariadb-install-db` are; default PATH, /usr/sbin, /usr/local/sbin.
    pub bin_dir: Option<PathBuf>,
}

impl Default for MariadbSettings {
    fn default() -> Self {
        MariadbSettings {
            buffer_pool: "4G".into(),
            log_file_size: "2G".into(),
            parent_dir: None,
            bin_dir: None,
        }
    }
}

impl MariadbSettings {
    /// The defaults, overridden by `BENCH_MARIADB_BUFFER_POOL`, `BENCH_MARIADB_LOG_FILE_SIZE`,
    /// `BENCH_MARIADB_DIR` and `BENCH_MARIADB_BIN_DIR` where set.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let d = MariadbSettings::default();
        MariadbSettings {
            buffer_pool: var("BENCH_MARIADB_BUFFER_POOL").unwrap_or(d.buffer_pool),
            log_file_size: var("BENCH_MARIADB_LOG_FILE_SIZE").unwrap_or(d.log_file_size),
            parent_dir: var("BENCH_MARIADB_DIR").map(PathBuf::from),
            bin_dir: var("BENCH_MARIADB_BIN_DIR").map(PathBuf::from),
        }
    }

    /// The InnoDB options given to both `mariadb-install-db` (so the redo log is created at its
    /// final size) and `mariadbd`.
    fn innodb_args(&self) -> Vec<String> {
        vec![
            format!("--innodb-buffer-pool-size={}", self.buffer_pool),
            format!("--innodb-log-file-size={}", self.log_file_size),
            "--innodb-flush-log-at-trx-commit=1".into(),
            "--innodb-doublewrite=1".into(),
            // Same character set as the shared server's configuration (the tables name theirs).
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_general_ci".into(),
        ]
    }
}

/// Finds `name` in `bin_dir`, else on PATH, /usr/sbin, /usr/local/sbin, /usr/bin.
fn find_binary(name: &'static str, bin_dir: Option<&Path>) -> Result<PathBuf, MariadbError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    match bin_dir {
        Some(d) => dirs.push(d.to_path_buf()),
        None => {
            if let Some(p) = std::env::var_os("PATH") {
                dirs.extend(std::env::split_paths(&p));
            }
            dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
        }
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| MariadbError::BinaryMissing {
            binary: name,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })
}

/// The last `max` bytes of a log file (for error messages).
fn log_tail(path: &Path, max: u64) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        s = String::from_utf8_lossy(&buf).into_owned();
    }
    s
}

/// How long a fresh server may take to answer, and to stop.
const READY_LIMIT: Duration = Duration::from_secs(120);
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A MariaDB server of the bench's own: stopped and its directory removed on drop.
pub struct DedicatedMariadb {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    settings: MariadbSettings,
}

impl DedicatedMariadb {
    /// Installs a fresh datadir and starts `mariadbd` on a free port of 127.0.0.1 (another
    /// port if that one was taken in the meantime), waiting until it accepts connections.
    pub fn start(settings: &MariadbSettings) -> Result<Self, MariadbError> {
        let mariadbd = find_binary("mariadbd", settings.bin_dir.as_deref())?;
        let install = find_binary("mariadb-install-db", settings.bin_dir.as_deref())?;
        let parent = settings
            .parent_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let dir = parent.join(unique_name("sluice-mariadb"));
        std::fs::create_dir_all(dir.join("data"))
            .map_err(io_err(format!("create {}", dir.display())))?;
        // From here on the directory is removed on every exit (Drop).
        let mut server = DedicatedMariadb {
            child: None,
            port: 0,
            dir,
            settings: settings.clone(),
        };
        server.install(&install)?;
        let mut last = None;
        for _ in 0..3 {
            match server.launch(&mariadbd) {
                Ok(()) => return Ok(server),
                // Someone took the port between the probe and mariadbd's bind: try another.
                Err(MariadbError::Exited { status, log })
                    if log.contains("Address already in use")
                        || log.contains("Do you already have another") =>
                {
                    last = Some(MariadbError::Exited { status, log });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| MariadbError::NotReady {
            port: server.port,
            after: READY_LIMIT,
            last: "no attempt".into(),
            log: String::new(),
        }))
    }

    fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("mariadbd.log")
    }

    fn install(&self, install: &Path) -> Result<(), MariadbError> {
        let log_path = self.dir.join("install.log");
        let log = File::create(&log_path).map_err(io_err("create install log"))?;
        let log2 = log.try_clone().map_err(io_err("clone install log"))?;
        let datadir = self.datadir();
        let status = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .args(self.settings.innodb_args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .status()
            .map_err(io_err(format!("run {}", install.display())))?;
        if !status.success() {
            return Err(MariadbError::Install {
                datadir: datadir.display().to_string(),
                status,
                log: log_tail(&log_path, 2000),
            });
        }
        Ok(())
    }

    fn launch(&mut self, mariadbd: &Path) -> Result<(), MariadbError> {
        self.port = free_port().map_err(|e| MariadbError::Io {
            what: "free port".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let log = File::create(self.log_path()).map_err(io_err("create mariadbd log"))?;
        let log2 = log.try_clone().map_err(io_err("clone mariadbd log"))?;
        let mut cmd = Command::new(mariadbd);
        cmd.arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", self.datadir().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.dir.join("sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("pid").display()))
            .arg("--skip-log-bin")
            .args(self.settings.innodb_args())
            // The data is discarded: no buffer pool dump and no page flush at shutdown.
            .arg("--innodb-buffer-pool-dump-at-shutdown=0")
            .arg("--innodb-fast-shutdown=3")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        self.child = Some(
            cmd.spawn()
                .map_err(io_err(format!("spawn {}", mariadbd.display())))?,
        );
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), MariadbError> {
        let started = Instant::now();
        let url = self.admin_url();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(MariadbError::Exited {
                        status,
                        log: log_tail(&self.log_path(), 3000),
                    });
                }
            }
            let last = match connect(&url) {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > READY_LIMIT {
                return Err(MariadbError::NotReady {
                    port: self.port,
                    after: READY_LIMIT,
                    last,
                    log: log_tail(&self.log_path(), 3000),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The scratch directory (datadir, socket, pid file, log); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `mysql://root@127.0.0.1:PORT/mysql` (root, no password; the server listens on 127.0.0.1
    /// only).
    pub fn admin_url(&self) -> DatabaseUrl {
        DatabaseUrl::Mysql(format!("mysql://root@127.0.0.1:{}/mysql", self.port))
    }

    /// Creates database `name` (dropping any of that name) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<DatabaseUrl, MariadbError> {
        let sql = format!("DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`");
        let mut c = connect(&self.admin_url()).map_err(|source| MariadbError::Sql {
            what: format!("connect to the dedicated server on port {}", self.port),
            source,
        })?;
        c.batch_execute(&sql).map_err(|source| MariadbError::Sql {
            what: sql.clone(),
            source,
        })?;
        Ok(DatabaseUrl::Mysql(format!(
            "mysql://root@127.0.0.1:{}/{name}",
            self.port
        )))
    }

    /// The settings in effect on this server.
    pub fn settings_in_effect(&self) -> Result<ServerSettings, MariadbError> {
        server_settings(&self.admin_url())
    }
}

impl Drop for DedicatedMariadb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain syscall on the pid of our own child, which has not been reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + STOP_LIMIT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if std::env::var_os("SLUICE_KEEP_SCRATCH").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A MariaDB server's settings that decide write throughput, as `SHOW VARIABLES` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub version: String,
    pub buffer_pool_bytes: u64,
    pub log_file_bytes: u64,
    pub flush_log_at_trx_commit: String,
    pub doublewrite: String,
    pub flush_method: String,
}

impl fmt::Display for ServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / 1048576.0;
        write!(
            f,
            "MariaDB {}: innodb_buffer_pool_size {:.0} MiB, innodb_log_file_size {:.0} MiB, \
             innodb_flush_log_at_trx_commit {}, innodb_doublewrite {}, innodb_flush_method {}",
            self.version,
            mib(self.buffer_pool_bytes),
            mib(self.log_file_bytes),
            self.flush_log_at_trx_commit,
            self.doublewrite,
            self.flush_method
        )
    }
}

#[derive(QueryableByName)]
struct Variable {
    #[diesel(sql_type = Text)]
    #[diesel(column_name = Variable_name)]
    name: String,
    #[diesel(sql_type = Text)]
    #[diesel(column_name = Value)]
    value: String,
}

/// `SHOW VARIABLES` of the settings in [`ServerSettings`] on the server of `url`.
pub fn server_settings(url: &DatabaseUrl) -> Result<ServerSettings, MariadbError> {
    let sql = "SHOW VARIABLES WHERE Variable_name IN ('version', 'innodb_buffer_pool_size', \
               'innodb_log_file_size', 'innodb_flush_log_at_trx_commit', 'innodb_doublewrite', \
               'innodb_flush_method')";
    let mut c = connect(url).map_err(|source| MariadbError::Sql {
        what: format!("connect to {url}"),
        source,
    })?;
    let rows = match &mut c {
        Connection::Mysql(m) => diesel::sql_query(sql).load::<Variable>(m),
        Connection::Sqlite(_) => {
            return Err(MariadbError::Sql {
                what: format!("{url} is not a MariaDB server"),
                source: StorageError::InvalidUrl(url.redacted()),
            })
        }
    }
    .map_err(|e| MariadbError::Sql {
        what: sql.into(),
        source: e.into(),
    })?;
    let get = |k: &str| {
        rows.iter()
            .find(|v| v.name.eq_ignore_ascii_case(k))
            .map(|v| v.value.clone())
            .unwrap_or_else(|| "?".into())
    };
    Ok(ServerSettings {
        version: get("version"),
        buffer_pool_bytes: get("innodb_buffer_pool_size").parse().unwrap_or(0),
        log_file_bytes: get("innodb_log_file_size").parse().unwrap_or(0),
        flush_log_at_trx_commit: get("innodb_flush_log_at_trx_commit"),
        doublewrite: get("innodb_doublewrite"),
        flush_method: get("innodb_flush_method"),
    })
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = Text)]
    bytes: String,
}

/// Bytes on disk of the InnoDB tables of the database `url` names (their tablespace files:
/// data, indexes and free pages), to compare with the buffer pool. (`information_schema.tables`
/// gives only the statistics' estimate, which lags far behind on freshly written tables.)
pub fn schema_bytes(url: &DatabaseUrl) -> Result<u64, MariadbError> {
    let sql = "SELECT CAST(COALESCE(SUM(file_size), 0) AS CHAR) AS bytes \
               FROM information_schema.innodb_sys_tablespaces \
               WHERE LEFT(name, CHAR_LENGTH(DATABASE()) + 1) = CONCAT(DATABASE(), '/')";
    let mut c = connect(url).map_err(|source| MariadbError::Sql {
        what: format!("connect to {url}"),
        source,
    })?;
    let rows = match &mut c {
        Connection::Mysql(m) => diesel::sql_query(sql).load::<Size>(m),
        Connection::Sqlite(_) => return Ok(0),
    }
    .map_err(|e| MariadbError::Sql {
        what: sql.into(),
        source: e.into(),
    })?;
    Ok(rows.first().and_then(|r| r.bytes.parse().ok()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_named_with_where_it_was_looked_for() {
        let dir = std::env::temp_dir().join(unique_name("no-mariadb"));
        let e = find_binary("mariadbd", Some(&dir)).expect_err("nothing there");
        let msg = e.to_string();
        assert!(msg.contains("mariadbd not found"), "{msg}");
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        let settings = MariadbSettings {
            bin_dir: Some(dir),
            ..MariadbSettings::default()
        };
        assert!(matches!(
            DedicatedMariadb::start(&settings),
            Err(MariadbError::BinaryMissing { .. })
        ));
    }

    /// Starts a real server (a few seconds): `cargo test --release --lib dedicated -- --ignored`.
    #[test]
    #[ignore = "starts a MariaDB server (needs mariadbd and mariadb-install-db, ~5 s)"]
    fn dedicated_server_runs_with_the_requested_settings_and_leaves_nothing_behind() {
        let settings = MariadbSettings {
            buffer_pool: "256M".into(),
            log_file_size: "128M".into(),
            ..MariadbSettings::default()
        };
        let server = DedicatedMariadb::start(&settings).expect("server starts");
        let dir = server.dir().to_path_buf();
        assert!(dir.join("data").is_dir());
        let s = server.settings_in_effect().expect("variables");
        assert_eq!(s.buffer_pool_bytes, 256 << 20);
        assert_eq!(s.log_file_bytes, 128 << 20);
        assert_eq!(s.flush_log_at_trx_commit, "1");
        assert_eq!(s.doublewrite, "ON");
        let url = server.create_database("sluice_probe").expect("database");
        let mut c = connect(&url).expect("connect to the new database");
        crate::storage::run_migrations(&mut c).expect("the schema installs");
        drop(c);
        drop(server);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
