//! Database URLs, the two-backend [`Connection`], the [`dispatch!`](crate::dispatch) macro that
//! runs one piece of diesel code on either backend, and the classification of database errors
//! into transient (retry after reconnecting) and permanent (fail the work).
//!
//! The MySQL arm is diesel-async's `AsyncConnectionWrapper<AsyncMysqlConnection>` (pure Rust, no
//! libmysqlclient). The wrapper runs its own small tokio runtime, so connect and query only from
//! a thread that is not inside an async runtime (the Writer's SyncArbiter thread, a CLI command,
//! a plain test thread).
//!
//! Neither connection reconnects by itself: callers drop a connection after a transient error
//! and call [`connect`] again (see `write::BatchWriter`).

use std::fmt;
use std::path::{Path, PathBuf};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::result::{ConnectionError, DatabaseErrorKind};
use diesel::sqlite::SqliteConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncMysqlConnection;

/// The MySQL/MariaDB connection: diesel's sync API over the pure-Rust async driver.
pub type MysqlConnection = AsyncConnectionWrapper<AsyncMysqlConnection>;

/// Which database engine a URL or connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Mysql,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Where the data goes. `mysql://user:pass@host:port/db` (also `mariadb://`), or
/// `sqlite://PATH` / `sqlite:PATH` (relative paths are relative to the working directory;
/// `sqlite:///abs/path.db` is absolute). The default, when `DATABASE_URL` is unset or empty, is
/// `sqlite://sluice.db`.
///
/// `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A `mysql://` URL as the driver expects it.
    Mysql(String),
    /// Path of the SQLite database file (`:memory:` for a private in-memory database).
    Sqlite(PathBuf),
}

/// The URL used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sluice.db";

impl DatabaseUrl {
    /// Parses a database URL; the error names the problem without echoing a password.
    pub fn parse(s: &str) -> Result<Self, StorageError> {
        let s = s.trim();
        if let Some(rest) = s
            .strip_prefix("mysql://")
            .or_else(|| s.strip_prefix("mariadb://"))
        {
            let url = format!("mysql://{rest}");
            let after_host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
            let db = after_host
                .split_once('/')
                .map(|(_, db)| db.split('?').next().unwrap_or(""))
                .unwrap_or("");
            if db.is_empty() {
                return Err(StorageError::InvalidUrl(format!(
                    "{} names no database (expected mysql://user:password@host:port/database)",
                    redact_mysql(&url)
                )));
            }
            return Ok(DatabaseUrl::Mysql(url));
        }
        if let Some(rest) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(StorageError::InvalidUrl(
                    "sqlite URL names no file (expected sqlite://PATH)".into(),
                ));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(rest)));
        }
        let scheme = s.split_once("://").map(|(a, _)| a).unwrap_or("");
        Err(StorageError::InvalidUrl(format!(
            "unsupported scheme {scheme:?}: use mysql://user:password@host:port/database or sqlite://PATH"
        )))
    }

    /// `DATABASE_URL` when set and not empty, else [`DEFAULT_DATABASE_URL`].
    pub fn from_env_or_default() -> Result<Self, StorageError> {
        match std::env::var("DATABASE_URL") {
            Ok(s) if !s.trim().is_empty() => Self::parse(&s),
            _ => Self::parse(DEFAULT_DATABASE_URL),
        }
    }

    /// A SQLite database at `path`.
    pub fn sqlite(path: impl AsRef<Path>) -> Self {
        DatabaseUrl::Sqlite(path.as_ref().to_path_buf())
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Mysql(_) => Backend::Mysql,
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The URL with any password replaced by `***`: safe for logs and errors.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Mysql(u) => redact_mysql(u),
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        }
    }

    /// The password in the URL, if any (to scrub it from driver messages).
    fn password(&self) -> Option<&str> {
        match self {
            DatabaseUrl::Mysql(u) => {
                let rest = u.strip_prefix("mysql://")?;
                let (userinfo, _) = rest.rsplit_once('@')?;
                let (_, pass) = userinfo.split_once(':')?;
                (!pass.is_empty()).then_some(pass)
            }
            DatabaseUrl::Sqlite(_) => None,
        }
    }

    /// Removes the password from a message that may quote the URL.
    pub fn scrub(&self, message: &str) -> String {
        match self.password() {
            Some(p) => message.replace(p, "***"),
            None => message.to_owned(),
        }
    }
}

fn redact_mysql(url: &str) -> String {
    let Some(rest) = url.strip_prefix("mysql://") else {
        return "mysql://***".into();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("mysql://{user}:***@{host}")
            } else {
                format!("mysql://{user}@{host}")
            }
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Errors of the storage layer. Messages are plain strings (the error is cloned to every page
/// of a failed batch) and never contain a password.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to {target}: {message}")]
    Connect {
        target: String,
        message: String,
        transient: bool,
    },
    #[error("database error: {message}")]
    Database { message: String, transient: bool },
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("partition {partition_id}: lease lost (expired and taken over, released or reopened)")]
    LeaseLost { partition_id: i64 },
    #[error("partition {partition_id} not found")]
    NoSuchPartition { partition_id: i64 },
    #[error("invalid data: {0}")]
    InvalidData(String),
    #[error("database unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    #[error("the writer has stopped")]
    WriterGone,
    #[error("injected fault at {0}")]
    Injected(String),
    /// A completion refused because a page sent under the same lease was not written: the
    /// partition must be fetched again under a new lease (so it is transient).
    #[error("partition {partition_id}: completion refused, a page of this lease was not written")]
    IncompletePartition { partition_id: i64 },
}

impl StorageError {
    /// True when retrying later (after reconnecting) may succeed: lost connection, server
    /// restart, deadlock, lock wait timeout, SQLite busy.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Connect { transient, .. } | StorageError::Database { transient, .. } => {
                *transient
            }
            StorageError::Unavailable { .. }
            | StorageError::WriterGone
            | StorageError::IncompletePartition { .. } => true,
            StorageError::Injected(_) => false,
            StorageError::InvalidUrl(_)
            | StorageError::Migration(_)
            | StorageError::LeaseLost { .. }
            | StorageError::NoSuchPartition { .. }
            | StorageError::InvalidData(_) => false,
        }
    }
}

impl StorageError {
    /// True for a duplicate key: with several Writer connections, another one inserted the
    /// same row between this batch's lookup and its insert (and has committed it, since the
    /// insert waited for its lock). Writing the batch again sees the row.
    pub fn is_write_conflict(&self) -> bool {
        match self {
            StorageError::Database { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("duplicate entry") || m.contains("unique constraint failed")
            }
            _ => false,
        }
    }
}

impl From<diesel::result::Error> for StorageError {
    fn from(e: diesel::result::Error) -> Self {
        StorageError::Database {
            transient: is_transient_diesel_error(&e),
            message: e.to_string(),
        }
    }
}

/// Message fragments (lower case) of errors that go away by reconnecting and retrying.
/// diesel-async reports MySQL server errors by message only (the code is lost), so the
/// classification reads the text: MariaDB/MySQL server messages, mysql_async driver and I/O
/// errors, and SQLite's busy/locked errors.
const TRANSIENT_MESSAGES: &[&str] = &[
    "deadlock",                                         // 1213
    "lock wait timeout",                                // 1205
    "try restarting transaction",                       // 1213/1205/1020
    "server has gone away",                             // 2006
    "lost connection",                                  // 2013
    "connection was killed",                            // 1927 (MariaDB KILL)
    "query execution was interrupted",                  // 1317 (KILL QUERY)
    "shutdown in progress",                             // 1053
    "server shutdown",                                  // 1053 variants
    "too many connections",                             // 1040
    "connection to the server is closed",               // mysql_async DriverError::ConnectionClosed
    "input/output error",                               // mysql_async IoError
    "connection refused",                               //
    "connection reset",                                 //
    "broken pipe",                                      //
    "unexpected end of file",                           //
    "unexpected eof",                                   //
    "packet out of order",                              // a half-read reply after a kill
    "can't connect",                                    // 2002/2003
    "database is locked",                               // SQLITE_BUSY
    "database table is locked",                         // SQLITE_LOCKED
    "disk i/o error",                                   // SQLITE_IOERR (e.g. during a checkpoint)
    "wsrep has not yet prepared node",                  // Galera during a restart
    "the mysql server is running with the --read-only", // failover in progress
];

pub(crate) fn is_transient_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    TRANSIENT_MESSAGES.iter().any(|t| m.contains(t))
}

/// Classifies a diesel error.
pub fn is_transient_diesel_error(e: &diesel::result::Error) -> bool {
    use diesel::result::Error as E;
    match e {
        E::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection => true,
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation => false,
            _ => is_transient_message(info.message()),
        },
        // The transaction manager lost track (typically the link died mid-transaction):
        // drop the connection and start again.
        E::BrokenTransactionManager | E::AlreadyInTransaction | E::NotInTransaction => true,
        E::RollbackErrorOnCommit { commit_error, .. } => is_transient_diesel_error(commit_error),
        E::RollbackTransaction => false,
        other => is_transient_message(&other.to_string()),
    }
}

/// Classifies an error from establishing a connection: a server that is down, restarting or
/// unreachable is transient; a bad URL or refused credentials are not.
pub fn is_transient_connection_error(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::BadConnection(m) => {
            let m = m.to_ascii_lowercase();
            !(m.contains("access denied") || m.contains("unknown database"))
        }
        ConnectionError::CouldntSetupConfiguration(e) => is_transient_diesel_error(e),
        ConnectionError::InvalidConnectionUrl(_) | ConnectionError::InvalidCString(_) => false,
        other => is_transient_message(&other.to_string()),
    }
}

/// An open database connection, MySQL or SQLite. Use [`dispatch!`](crate::dispatch) to run the
/// same diesel code on whichever it is.
pub enum Connection {
    Mysql(MysqlConnection),
    Sqlite(SqliteConnection),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connection({})", self.backend().as_str())
    }
}

impl Connection {
    pub fn backend(&self) -> Backend {
        match self {
            Connection::Mysql(_) => Backend::Mysql,
            Connection::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `f` in one database transaction: committed when `f` returns `Ok`, rolled back
    /// otherwise. `f` gets the connection back, so any storage function can run inside.
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        crate::dispatch!(&mut *self, |c| begin(c))?;
        match f(&mut *self) {
            Ok(v) => {
                crate::dispatch!(&mut *self, |c| commit(c))?;
                Ok(v)
            }
            Err(e) => match crate::dispatch!(&mut *self, |c| rollback(c)) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
                Err(rollback_error) => Err(rollback_error.into()),
            },
        }
    }

    /// Runs plain SQL (several statements allowed) on either backend.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), StorageError> {
        crate::dispatch!(self, |c| c.batch_execute(sql)).map_err(StorageError::from)
    }
}

fn begin<C: diesel::Connection>(c: &mut C) -> diesel::QueryResult<()> {
    <C::TransactionManager as TransactionManager<C>>::begin_transaction(c)
}

fn commit<C: diesel::Connection>(c: &mut C) -> diesel::QueryResult<()> {
    <C::TransactionManager as TransactionManager<C>>::commit_transaction(c)
}

fn rollback<C: diesel::Connection>(c: &mut C) -> diesel::QueryResult<()> {
    <C::TransactionManager as TransactionManager<C>>::rollback_transaction(c)
}

/// Runs the same block on whichever backend a [`Connection`] holds:
/// `dispatch!(conn, |c| diesel::delete(t).execute(c))`. The block is compiled once per
/// backend, so it may only use diesel features both backends have.
#[macro_export]
macro_rules! dispatch {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::storage::connection::Connection::Mysql($c) => $body,
            $crate::storage::connection::Connection::Sqlite($c) => $body,
        }
    };
}

/// Packet buffers the MySQL driver keeps for reuse (`MYSQL_ASYNC_BUFFER_POOL_CAP`; its default
/// is 128). A kept buffer keeps the capacity of the largest packet it carried, so with the
/// Writer's multi-row INSERTs (up to ~1 MB) 128 of them grew the engine's RSS by 80 MB over a
/// long backfill; one writer connection needs a few.
pub const MYSQL_BUFFER_POOL_CAP: &str = "16";

/// Sets the MySQL driver's buffer-pool limit ([`MYSQL_BUFFER_POOL_CAP`]) unless the
/// environment already sets it. The driver reads it once, at its first connection; call this
/// at start, before other threads exist (the binary's `main` does).
pub fn limit_mysql_driver_buffers() {
    const VAR: &str = "MYSQL_ASYNC_BUFFER_POOL_CAP";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, MYSQL_BUFFER_POOL_CAP);
    }
}

/// WAL pages (16 KiB each: 512 MiB) after which a committing SQLite connection checkpoints by
/// itself: the backstop behind the Writer's background checkpoints (SQLite's default is
/// 1,000). It counts the WAL's length since it last started over, copied or not, so a lower
/// one (8,192 before) made a busy Writer stall on checkpoints the background thread had mostly
/// done already (see [`super::wal`]).
pub const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 32_768;

/// Bytes the WAL file is cut back to when it starts over, so a burst does not leave a
/// WAL of up to [`SQLITE_AUTOCHECKPOINT_PAGES`] on disk.
pub const SQLITE_WAL_SIZE_LIMIT: u64 = 64 << 20;

/// Opens a connection. MySQL sessions run in UTC; SQLite files use WAL journaling with
/// `synchronous=NORMAL` (atomic and consistent after a crash; a power cut may lose the last
/// commits, which the checkpoint then re-fetches), a 32 MiB page cache, and wait up to 10 s on
/// a locked database.
///
/// Must not be called from inside an async runtime when `url` is MySQL.
pub fn connect(url: &DatabaseUrl) -> Result<Connection, StorageError> {
    match url {
        DatabaseUrl::Mysql(u) => {
            let mut c = <MysqlConnection as diesel::Connection>::establish(u).map_err(|e| {
                StorageError::Connect {
                    target: url.redacted(),
                    message: url.scrub(&e.to_string()),
                    transient: is_transient_connection_error(&e),
                }
            })?;
            c.batch_execute("SET time_zone = '+00:00'")
                .map_err(StorageError::from)?;
            Ok(Connection::Mysql(c))
        }
        DatabaseUrl::Sqlite(path) => {
            let p = path.to_string_lossy();
            let mut c = <SqliteConnection as diesel::Connection>::establish(&p).map_err(|e| {
                StorageError::Connect {
                    target: url.redacted(),
                    message: e.to_string(),
                    transient: false,
                }
            })?;
            // 16 KiB pages for a new file (a conversation's raw JSON fits in one; a commit
            // writes a quarter of the WAL frames 4 KiB pages take). A 32 MiB page cache and
            // in-memory temp files: with SQLite's 2 MiB default a batch spills dirty pages to
            // the WAL mid-transaction and reads them back; 64 MiB was no faster at 100,000
            // conversations and cost the engine's RSS its margin under 200 MB. Checkpoints
            // normally run on the Writer's background thread (`wal::WalCheckpointer`); the
            // automatic one at `SQLITE_AUTOCHECKPOINT_PAGES` only bounds the WAL if that thread
            // falls behind.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = 10000; PRAGMA page_size = 16384; \
                 PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = OFF; PRAGMA cache_size = -32768; \
                 PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES}; \
                 PRAGMA journal_size_limit = {SQLITE_WAL_SIZE_LIMIT};"
            ))
            .map_err(StorageError::from)?;
            Ok(Connection::Sqlite(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_and_hides_passwords() {
        let u = DatabaseUrl::parse("mysql://app:s3cret@db.example:3306/sluice").unwrap();
        assert_eq!(u.backend(), Backend::Mysql);
        assert_eq!(u.redacted(), "mysql://app:***@db.example:3306/sluice");
        assert!(!format!("{u:?} {u}").contains("s3cret"));
        assert_eq!(u.scrub("failed for app:s3cret"), "failed for app:***");
        let m = DatabaseUrl::parse("mariadb://root@127.0.0.1/test").unwrap();
        assert_eq!(m, DatabaseUrl::Mysql("mysql://root@127.0.0.1/test".into()));
        assert_eq!(
            DatabaseUrl::parse("sqlite://sluice.db").unwrap(),
            DatabaseUrl::Sqlite("sluice.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/s.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/s.db".into())
        );
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        let e = DatabaseUrl::parse("mysql://app:s3cret@db:3306").unwrap_err();
        assert!(matches!(e, StorageError::InvalidUrl(_)));
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(DatabaseUrl::parse("postgres://x/y").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn classifies_errors() {
        use diesel::result::Error as E;
        let db = |m: &str| E::DatabaseError(DatabaseErrorKind::Unknown, Box::new(m.to_string()));
        assert!(is_transient_diesel_error(&db(
            "Deadlock found when trying to get lock; try restarting transaction"
        )));
        assert!(is_transient_diesel_error(&db(
            "Input/output error: Connection reset by peer (os error 104)"
        )));
        assert!(is_transient_diesel_error(&db(
            "Driver error: `Connection to the server is closed.'"
        )));
        assert!(is_transient_diesel_error(&db("Connection was killed")));
        assert!(is_transient_diesel_error(&db("database is locked")));
        assert!(!is_transient_diesel_error(&db(
            "Data too long for column 'queue_id' at row 1"
        )));
        assert!(!is_transient_diesel_error(&E::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("Duplicate entry".to_string())
        )));
        let dup = StorageError::from(db("Duplicate entry 'c-1' for key 'PRIMARY'"));
        assert!(dup.is_write_conflict() && !dup.is_transient());
        assert!(!StorageError::from(db("Data too long for column 'x'")).is_write_conflict());
        assert!(is_transient_connection_error(
            &ConnectionError::BadConnection(
                "Input/output error: Connection refused (os error 111)".into()
            )
        ));
        assert!(!is_transient_connection_error(
            &ConnectionError::BadConnection("Access denied for user 'x'".into())
        ));
    }
}
