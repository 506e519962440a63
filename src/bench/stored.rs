//! Scratch databases for `sluice bench` and the reliability tests, and what is stored in them:
//! a fresh MariaDB database or SQLite file per run, a read-only probe that summarizes the stored
//! conversations and partitions in plain SQL against the documented schema, and the exact
//! comparison with the simulator's ground truth (`/__sim/expected`).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncMysqlConnection;
use serde_json::Value;

use super::harness::{unique_name, HarnessError};

/// The MariaDB server the tests and benchmarks use (root, empty password).
pub const MYSQL_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

type MysqlConn = AsyncConnectionWrapper<AsyncMysqlConnection>;

/// A fresh database for one run: a new MariaDB database (dropped on drop) or a SQLite file in a
/// scratch directory.
pub enum ScratchDb {
    Mysql { name: String, admin_url: String },
    Sqlite { path: PathBuf },
}

impl ScratchDb {
    /// A fresh MariaDB database named `<prefix>_<unique>` on the local server.
    pub fn mysql(prefix: &str) -> Result<Self, HarnessError> {
        let admin_url = std::env::var("SLUICE_TEST_MYSQL_ADMIN_URL")
            .unwrap_or_else(|_| MYSQL_ADMIN_URL.to_owned());
        Self::mysql_on(&admin_url, prefix)
    }
    /// A fresh MariaDB database named `<prefix>_<unique>` on the server of `admin_url` (a URL
    /// naming any database on it, e.g. a dedicated bench server's).
    pub fn mysql_on(admin_url: &str, prefix: &str) -> Result<Self, HarnessError> {
        let name = unique_name(prefix).to_lowercase();
        mysql_exec(admin_url, &format!("CREATE DATABASE `{name}`"))?;
        Ok(ScratchDb::Mysql {
            name,
            admin_url: admin_url.to_owned(),
        })
    }
    /// A SQLite file (not yet created) in `dir`.
    pub fn sqlite(dir: &Path, file: &str) -> Self {
        ScratchDb::Sqlite {
            path: dir.join(file),
        }
    }
    /// The DATABASE_URL the engine is given.
    pub fn url(&self) -> String {
        match self {
            ScratchDb::Mysql { name, admin_url } => replace_db_name(admin_url, name),
            ScratchDb::Sqlite { path } => format!("sqlite://{}", path.display()),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            ScratchDb::Mysql { .. } => "MariaDB",
            ScratchDb::Sqlite { .. } => "SQLite",
        }
    }
    pub fn mysql_name(&self) -> Option<&str> {
        match self {
            ScratchDb::Mysql { name, .. } => Some(name),
            ScratchDb::Sqlite { .. } => None,
        }
    }
    /// Opens a read connection for checks.
    pub fn probe(&self) -> Result<DbProbe, HarnessError> {
        DbProbe::open(&self.url())
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let ScratchDb::Mysql { name, admin_url } = self {
            let _ = mysql_exec(admin_url, &format!("DROP DATABASE IF EXISTS `{name}`"));
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    match url.rfind('/') {
        Some(i) if i > "mysql://".len() => format!("{}/{name}", &url[..i]),
        _ => format!("{url}/{name}"),
    }
}

/// Runs one statement on MariaDB.
pub fn mysql_exec(url: &str, sql: &str) -> Result<(), HarnessError> {
    let mut c = <MysqlConn as Connection>::establish(url).map_err(|e| HarnessError::Database {
        url: redact_url(url),
        message: e.to_string(),
    })?;
    diesel::sql_query(sql)
        .execute(&mut c)
        .map_err(|e| HarnessError::Database {
            url: redact_url(url),
            message: format!("{sql}: {e}"),
        })?;
    Ok(())
}

fn redact_url(url: &str) -> String {
    // mysql://user:password@host → mysql://user:…@host
    if let (Some(s), Some(at)) = (url.find("://"), url.rfind('@')) {
        let creds = &url[s + 3..at];
        if let Some(colon) = creds.find(':') {
            return format!("{}{}:…{}", &url[..s + 3], &creds[..colon], &url[at..]);
        }
    }
    url.to_owned()
}

/// Child row counts of one stored conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildCounts {
    pub participants: i64,
    pub sessions: i64,
    pub segments: i64,
    pub metrics: i64,
}

/// One row of `ingest_partitions`, as far as the checks need it.
#[derive(Clone, Debug)]
pub struct PartitionSummary {
    pub id: i64,
    pub dataset: String,
    pub range_start: String,
    pub range_end: String,
    pub status: String,
    pub attempts: i64,
}

#[derive(QueryableByName)]
struct IdCount {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct PartitionRowSql {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    dataset: String,
    #[diesel(sql_type = Text)]
    range_start: String,
    #[diesel(sql_type = Text)]
    range_end: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
}

/// A read-only connection to the engine's database, with the checks the suite needs written
/// in plain SQL against the documented schema (issue 4: table and column names are the
/// interface).
pub enum DbProbe {
    Mysql(Box<MysqlConn>, String),
    Sqlite(Box<diesel::SqliteConnection>, String),
}

macro_rules! on_conn {
    ($probe:expr, $c:ident => $body:expr) => {
        match $probe {
            DbProbe::Mysql($c, _) => $body,
            DbProbe::Sqlite($c, _) => $body,
        }
    };
}

impl DbProbe {
    pub fn open(url: &str) -> Result<Self, HarnessError> {
        let err = |e: diesel::ConnectionError| HarnessError::Database {
            url: redact_url(url),
            message: e.to_string(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            let c = diesel::SqliteConnection::establish(path).map_err(err)?;
            Ok(DbProbe::Sqlite(Box::new(c), url.to_owned()))
        } else {
            let c = <MysqlConn as Connection>::establish(url).map_err(err)?;
            Ok(DbProbe::Mysql(Box::new(c), url.to_owned()))
        }
    }

    fn url(&self) -> &str {
        match self {
            DbProbe::Mysql(_, u) | DbProbe::Sqlite(_, u) => u,
        }
    }

    fn fail(&self, sql: &str, e: diesel::result::Error) -> HarnessError {
        HarnessError::Database {
            url: redact_url(self.url()),
            message: format!("{sql}: {e}"),
        }
    }

    /// `SELECT COUNT(*)` of a query.
    pub fn count(&mut self, sql: &str) -> Result<i64, HarnessError> {
        let q = format!("SELECT CAST(COUNT(*) AS SIGNED) AS n FROM ({sql}) AS t");
        let r: Result<Vec<Count>, _> =
            on_conn!(self, c => diesel::sql_query(&q).load::<Count>(c.as_mut()));
        match r {
            Ok(rows) => Ok(rows.first().map(|r| r.n).unwrap_or(0)),
            Err(e) => Err(self.fail(&q, e)),
        }
    }

    pub fn table_rows(&mut self, table: &str) -> Result<i64, HarnessError> {
        self.count(&format!("SELECT 1 AS one FROM {table}"))
    }

    fn id_counts(&mut self, sql: &str) -> Result<Vec<(String, i64)>, HarnessError> {
        let r: Result<Vec<IdCount>, _> =
            on_conn!(self, c => diesel::sql_query(sql).load::<IdCount>(c.as_mut()));
        match r {
            Ok(rows) => Ok(rows.into_iter().map(|r| (r.id, r.n)).collect()),
            Err(e) => Err(self.fail(sql, e)),
        }
    }

    /// Every stored conversation with the number of its child rows, plus ids stored more than
    /// once (a non-empty list is a duplicate).
    pub fn conversations(&mut self) -> Result<StoredConversations, HarnessError> {
        let mut by_id: BTreeMap<String, ChildCounts> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for (id, n) in self.id_counts(
            "SELECT conversation_id AS id, CAST(COUNT(*) AS SIGNED) AS n \
             FROM conversations GROUP BY conversation_id",
        )? {
            if n > 1 {
                duplicates.push(id.clone());
            }
            by_id.insert(id, ChildCounts::default());
        }
        let mut orphans = 0i64;
        for (table, field) in [
            ("participants", 0usize),
            ("sessions", 1),
            ("segments", 2),
            ("session_metrics", 3),
        ] {
            let sql = format!(
                "SELECT conversation_id AS id, CAST(COUNT(*) AS SIGNED) AS n \
                 FROM {table} GROUP BY conversation_id"
            );
            for (id, n) in self.id_counts(&sql)? {
                match by_id.get_mut(&id) {
                    Some(c) => match field {
                        0 => c.participants = n,
                        1 => c.sessions = n,
                        2 => c.segments = n,
                        _ => c.metrics = n,
                    },
                    None => orphans += n,
                }
            }
        }
        Ok(StoredConversations {
            by_id,
            duplicates,
            orphan_child_rows: orphans,
        })
    }

    /// All partitions of the checkpoint.
    pub fn partitions(&mut self) -> Result<Vec<PartitionSummary>, HarnessError> {
        let sql = "SELECT CAST(id AS SIGNED) AS id, CAST(dataset AS CHAR) AS dataset, \
                   CAST(range_start AS CHAR) AS range_start, CAST(range_end AS CHAR) AS range_end, \
                   CAST(status AS CHAR) AS status, CAST(attempts AS SIGNED) AS attempts \
                   FROM ingest_partitions ORDER BY range_start, dataset";
        let r: Result<Vec<PartitionRowSql>, _> =
            on_conn!(self, c => diesel::sql_query(sql).load::<PartitionRowSql>(c.as_mut()));
        match r {
            Ok(rows) => Ok(rows
                .into_iter()
                .map(|r| PartitionSummary {
                    id: r.id,
                    dataset: r.dataset,
                    range_start: r.range_start,
                    range_end: r.range_end,
                    status: r.status,
                    attempts: r.attempts,
                })
                .collect()),
            Err(e) => Err(self.fail(sql, e)),
        }
    }

    /// Does the table exist? (A run that failed early may not have migrated.)
    pub fn has_table(&mut self, table: &str) -> bool {
        self.count(&format!("SELECT 1 AS one FROM {table} LIMIT 1"))
            .is_ok()
    }
}

/// What the engine stored, summarized per conversation.
#[derive(Clone, Debug, Default)]
pub struct StoredConversations {
    pub by_id: BTreeMap<String, ChildCounts>,
    pub duplicates: Vec<String>,
    pub orphan_child_rows: i64,
}

/// The simulator's ground truth for a range, per conversation.
pub fn expected_conversations(
    expected: &Value,
) -> Result<BTreeMap<String, ChildCounts>, HarnessError> {
    let list = expected
        .get("conversations")
        .and_then(Value::as_array)
        .ok_or_else(|| HarnessError::Other("/__sim/expected has no conversations list".into()))?;
    let mut out = BTreeMap::new();
    for c in list {
        let id = c
            .get("conversationId")
            .and_then(Value::as_str)
            .ok_or_else(|| HarnessError::Other("expected conversation without id".into()))?;
        let n = |k: &str| c.get(k).and_then(Value::as_i64).unwrap_or(-1);
        out.insert(
            id.to_owned(),
            ChildCounts {
                participants: n("participants"),
                sessions: n("sessions"),
                segments: n("segments"),
                metrics: n("metrics"),
            },
        );
    }
    Ok(out)
}

/// Differences between what was stored and the ground truth; empty when they agree exactly.
pub fn compare_conversations(
    expected: &BTreeMap<String, ChildCounts>,
    stored: &StoredConversations,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for d in &stored.duplicates {
        diffs.push(format!("conversation {d} stored more than once"));
    }
    if stored.orphan_child_rows > 0 {
        diffs.push(format!(
            "{} child rows belong to no stored conversation",
            stored.orphan_child_rows
        ));
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !stored.by_id.contains_key(*k))
        .collect();
    let extra: Vec<_> = stored
        .by_id
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        diffs.push(format!(
            "{} expected conversations missing (e.g. {:?})",
            missing.len(),
            &missing[..missing.len().min(3)]
        ));
    }
    if !extra.is_empty() {
        diffs.push(format!(
            "{} stored conversations not expected (e.g. {:?})",
            extra.len(),
            &extra[..extra.len().min(3)]
        ));
    }
    let mut wrong = 0usize;
    let mut example = None;
    for (id, want) in expected {
        if let Some(got) = stored.by_id.get(id) {
            if got != want {
                wrong += 1;
                if example.is_none() {
                    example = Some(format!("{id}: stored {got:?}, expected {want:?}"));
                }
            }
        }
    }
    if wrong > 0 {
        diffs.push(format!(
            "{wrong} conversations with wrong child counts (e.g. {})",
            example.unwrap_or_default()
        ));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(p: i64) -> ChildCounts {
        ChildCounts {
            participants: p,
            sessions: p,
            segments: p,
            metrics: p,
        }
    }

    #[test]
    fn comparison_flags_missing_extra_duplicate_and_wrong_children() {
        let expected: BTreeMap<String, ChildCounts> =
            [("a".to_string(), counts(1)), ("b".to_string(), counts(2))]
                .into_iter()
                .collect();
        let exact = StoredConversations {
            by_id: expected.clone(),
            ..Default::default()
        };
        assert!(compare_conversations(&expected, &exact).is_empty());

        let mut stored = exact.clone();
        stored.by_id.remove("b");
        stored.by_id.insert("c".into(), counts(1));
        stored.by_id.insert("a".into(), counts(3));
        stored.duplicates.push("a".into());
        stored.orphan_child_rows = 4;
        let diffs = compare_conversations(&expected, &stored).join("\n");
        for needle in [
            "1 expected conversations missing",
            "1 stored conversations not expected",
            "stored more than once",
            "wrong child counts",
            "4 child rows belong to no stored conversation",
        ] {
            assert!(diffs.contains(needle), "{needle:?} not in {diffs}");
        }
    }

    #[test]
    fn expected_document_is_read_per_conversation() {
        let doc = serde_json::json!({"conversationCount": 1, "conversations": [
            {"conversationId": "x", "participants": 3, "sessions": 4, "segments": 5, "metrics": 6}
        ]});
        let m = expected_conversations(&doc).expect("parse");
        assert_eq!(
            m["x"],
            ChildCounts {
                participants: 3,
                sessions: 4,
                segments: 5,
                metrics: 6
            }
        );
        assert!(expected_conversations(&serde_json::json!({})).is_err());
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("mysql://u:hunter2@127.0.0.1:3306/db"),
            "mysql://u:…@127.0.0.1:3306/db"
        );
        assert_eq!(
            replace_db_name("mysql://root@127.0.0.1:3306/test", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
    }
}
