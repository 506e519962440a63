//! Test databases: a fresh MariaDB database per test (created on the server at
//! 127.0.0.1:3306, dropped when the [`TestDb`] is dropped) or a SQLite file in a temp dir.
//! `SLUICE_TEST_MYSQL` overrides the server URL (default `mysql://root@127.0.0.1:3306/test`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use sluice::storage::{connect, run_migrations, Backend, Connection, DatabaseUrl};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Base URL of the MariaDB server used by tests.
pub fn mysql_server_url() -> String {
    std::env::var("SLUICE_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Who is using the shared MariaDB server: tests in one binary run in parallel, and one test
/// stops the server. Users hold a shared [`MariaDbUse`]; the restart test holds it exclusively.
/// (No preference for the exclusive claim: a test may hold two shared claims at once.)
struct ServerUsers {
    shared: usize,
    exclusive: bool,
}

static SERVER_USERS: Mutex<ServerUsers> = Mutex::new(ServerUsers {
    shared: 0,
    exclusive: false,
});
static SERVER_FREED: Condvar = Condvar::new();

fn server_users() -> MutexGuard<'static, ServerUsers> {
    SERVER_USERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A test's claim on the shared MariaDB server; released on drop.
pub struct MariaDbUse {
    exclusive: bool,
}

/// Claims the server for a test that uses it (many tests at once).
pub fn mariadb_shared() -> MariaDbUse {
    let mut u = server_users();
    while u.exclusive {
        u = SERVER_FREED.wait(u).unwrap_or_else(|e| e.into_inner());
    }
    u.shared += 1;
    MariaDbUse { exclusive: false }
}

/// Claims the server for a test that stops it: waits until no other test uses it.
pub fn mariadb_exclusive() -> MariaDbUse {
    let mut u = server_users();
    while u.exclusive || u.shared > 0 {
        u = SERVER_FREED.wait(u).unwrap_or_else(|e| e.into_inner());
    }
    u.exclusive = true;
    MariaDbUse { exclusive: true }
}

impl Drop for MariaDbUse {
    fn drop(&mut self) {
        let mut u = server_users();
        if self.exclusive {
            u.exclusive = false;
        } else {
            u.shared -= 1;
        }
        SERVER_FREED.notify_all();
    }
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: DatabaseUrl,
    mysql_name: Option<String>,
    _server: Option<MariaDbUse>,
    _dir: Option<tempfile::TempDir>,
}

/// Runs `f` on a plain thread (the MySQL driver starts its own runtime and refuses to run
/// inside another one, e.g. in an actix test).
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f)
        .join()
        .expect("helper thread panicked")
}

fn admin(sql: String) {
    off_runtime(move || {
        let mut c = connect(&DatabaseUrl::parse(&mysql_server_url()).unwrap())
            .expect("MariaDB at 127.0.0.1:3306 must be running for the MySQL tests");
        c.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

impl TestDb {
    /// A fresh, empty MariaDB database with a unique name.
    pub fn mysql() -> TestDb {
        let server_use = mariadb_shared();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("sluice_t{}_{}_{}", std::process::id(), nanos, n);
        admin(format!("CREATE DATABASE `{name}`"));
        let server = mysql_server_url();
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
        TestDb {
            url: DatabaseUrl::parse(&format!("{base}/{name}")).unwrap(),
            mysql_name: Some(name),
            _server: Some(server_use),
            _dir: None,
        }
    }

    /// A SQLite file in a fresh temp dir.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            url: DatabaseUrl::sqlite(dir.path().join("sluice.db")),
            mysql_name: None,
            _server: None,
            _dir: Some(dir),
        }
    }

    /// One of each backend.
    pub fn both() -> Vec<TestDb> {
        vec![TestDb::mysql(), TestDb::sqlite()]
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// A connection (not migrated).
    pub fn connect_raw(&self) -> Connection {
        let url = self.url.clone();
        connect(&url).unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    /// A connection to the migrated database.
    pub fn connect(&self) -> Connection {
        let mut c = self.connect_raw();
        run_migrations(&mut c).unwrap();
        c
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.mysql_name.take() {
            admin(format!("DROP DATABASE IF EXISTS `{name}`"));
        }
    }
}

/// Every row of `table` as text (columns joined by `|`, NULL as `NULL`), sorted; columns in
/// `exclude` are left out. For comparing table contents within one backend.
pub fn dump(conn: &mut Connection, table: &str, exclude: &[&str]) -> Vec<String> {
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    let cols: Vec<String> = column_names(conn, table)
        .into_iter()
        .filter(|c| !exclude.contains(&c.as_str()))
        .collect();
    let lines: Vec<Line> = match conn {
        Connection::Mysql(c) => {
            let parts: Vec<String> = cols
                .iter()
                .map(|c| format!("COALESCE(CAST(`{c}` AS CHAR), 'NULL')"))
                .collect();
            diesel::sql_query(format!(
                "SELECT CONCAT_WS('|', {}) AS line FROM `{table}`",
                parts.join(", ")
            ))
            .load(c)
            .unwrap()
        }
        Connection::Sqlite(c) => {
            let parts: Vec<String> = cols
                .iter()
                .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), 'NULL')"))
                .collect();
            diesel::sql_query(format!(
                "SELECT {} AS line FROM \"{table}\"",
                parts.join(" || '|' || ")
            ))
            .load(c)
            .unwrap()
        }
    };
    let mut v: Vec<String> = lines.into_iter().map(|l| l.line).collect();
    v.sort();
    v
}

/// Column names of `table`, in table order.
pub fn column_names(conn: &mut Connection, table: &str) -> Vec<String> {
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let v: Vec<Name> = match conn {
        Connection::Mysql(c) => diesel::sql_query(format!(
            "SELECT CAST(column_name AS CHAR) AS name FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}' ORDER BY ordinal_position"
        ))
        .load(c)
        .unwrap(),
        Connection::Sqlite(c) => diesel::sql_query(format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .load(c)
        .unwrap(),
    };
    v.into_iter().map(|n| n.name).collect()
}

/// Rows in `table`.
pub fn count(conn: &mut Connection, table: &str) -> i64 {
    use diesel::sql_types::BigInt;
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let q = format!("SELECT CAST(COUNT(*) AS SIGNED) AS n FROM {table}");
    let q_lite = format!("SELECT COUNT(*) AS n FROM {table}");
    let v: Vec<N> = match conn {
        Connection::Mysql(c) => diesel::sql_query(q).load(c).unwrap(),
        Connection::Sqlite(c) => diesel::sql_query(q_lite).load(c).unwrap(),
    };
    v[0].n
}

/// Counts of the five conversation tables, in the order of `convs::expected_rows`.
pub fn conversation_counts(conn: &mut Connection) -> [usize; 5] {
    let t = [
        "conversations",
        "participants",
        "sessions",
        "segments",
        "session_metrics",
    ];
    t.map(|t| count(conn, t) as usize)
}

impl TestDb {
    /// Kills every server connection to this test's MySQL database (as a server restart or
    /// a network cut would end them); returns how many. No-op for SQLite.
    pub fn kill_connections(&self) -> usize {
        let Some(name) = self.mysql_name.clone() else {
            return 0;
        };
        off_runtime(move || {
            use diesel::sql_types::BigInt;
            use diesel::{QueryableByName, RunQueryDsl};
            #[derive(QueryableByName)]
            struct Id {
                #[diesel(sql_type = BigInt)]
                id: i64,
            }
            let mut c = connect(&DatabaseUrl::parse(&mysql_server_url()).unwrap()).unwrap();
            let ids: Vec<Id> = match &mut c {
                Connection::Mysql(m) => diesel::sql_query(format!(
                    "SELECT CAST(id AS SIGNED) AS id FROM information_schema.processlist \
                     WHERE db = '{name}' AND id <> CONNECTION_ID()"
                ))
                .load(m)
                .unwrap(),
                Connection::Sqlite(_) => Vec::new(),
            };
            let mut n = 0;
            for i in ids {
                if c.batch_execute(&format!("KILL {}", i.id)).is_ok() {
                    n += 1;
                }
            }
            n
        })
    }
}

/// The stored conversation ids, sorted.
pub fn conversation_ids(conn: &mut Connection) -> Vec<String> {
    let mut v: Vec<String> = dump(conn, "conversations", &[])
        .into_iter()
        .map(|l| l.split('|').next().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}
