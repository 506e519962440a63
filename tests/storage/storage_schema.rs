//! The two migration directories build the same schema, the diesel schema matches it, and
//! migrations are idempotent.
use crate::common;

use std::collections::BTreeSet;

use common::db::TestDb;
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryDsl, QueryableByName, RunQueryDsl};
use sluice::dispatch;
use sluice::storage::schema::*;
use sluice::storage::{run_migrations, Backend, Connection};

#[derive(QueryableByName, Debug)]
struct Col {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = BigInt)]
    nullable: i64,
}

fn columns(conn: &mut Connection) -> BTreeSet<(String, String, bool)> {
    let rows: Vec<Col> = match conn {
        Connection::Mysql(c) => diesel::sql_query(
            "SELECT CAST(table_name AS CHAR) AS table_name, CAST(column_name AS CHAR) AS column_name, \
             CAST(is_nullable = 'YES' AS SIGNED) AS nullable FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name NOT LIKE '\\_\\_diesel%'",
        )
        .load(c)
        .unwrap(),
        Connection::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, \
             CAST(1 - p.\"notnull\" AS BIGINT) AS nullable \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND m.name NOT LIKE '\\_\\_diesel%' ESCAPE '\\'",
        )
        .load(c)
        .unwrap(),
    };
    rows.into_iter()
        .map(|r| (r.table_name, r.column_name, r.nullable != 0))
        .collect()
}

/// Selects every column diesel knows of each table: fails if the database lacks one.
fn diesel_schema_matches(conn: &mut Connection) {
    dispatch!(conn, |c| {
        conversations::table
            .select(conversations::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        participants::table
            .select(participants::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        sessions::table
            .select(sessions::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        segments::table
            .select(segments::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        session_metrics::table
            .select(session_metrics::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        user_presence::table
            .select(user_presence::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        user_routing_status::table
            .select(user_routing_status::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        ingest_partitions::table
            .select(ingest_partitions::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        ingest_runs::table
            .select(ingest_runs::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        instance_leases::table
            .select(instance_leases::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
        instances::table
            .select(instances::all_columns)
            .limit(0)
            .execute(c)
            .unwrap();
    });
}

#[test]
fn mysql_and_sqlite_migrations_build_the_same_tables_and_columns() {
    let my = TestDb::mysql();
    let lite = TestDb::sqlite();
    let mut a = my.connect();
    let mut b = lite.connect();
    assert_eq!(a.backend(), Backend::Mysql);
    assert_eq!(b.backend(), Backend::Sqlite);
    let ca = columns(&mut a);
    let cb = columns(&mut b);
    let tables: BTreeSet<&str> = ca.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        tables,
        BTreeSet::from([
            "conversations",
            "divisions",
            "ingest_partitions",
            "ingest_runs",
            "instance_leases",
            "instances",
            "participants",
            "queues",
            "segments",
            "session_metrics",
            "sessions",
            "user_presence",
            "user_routing_status",
            "users",
            "wrapup_codes"
        ])
    );
    let only_mysql: Vec<_> = ca.difference(&cb).collect();
    let only_sqlite: Vec<_> = cb.difference(&ca).collect();
    assert!(
        only_mysql.is_empty() && only_sqlite.is_empty(),
        "schemas differ:\n only MySQL: {only_mysql:?}\n only SQLite: {only_sqlite:?}"
    );
    diesel_schema_matches(&mut a);
    diesel_schema_matches(&mut b);
}

#[test]
fn migrations_run_once_then_are_a_no_op() {
    for db in TestDb::both() {
        let mut c = db.connect_raw();
        let first = run_migrations(&mut c).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(db.backend().as_str());
        let shipped = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(first.len(), shipped, "{:?}", db.backend());
        let again = run_migrations(&mut c).unwrap();
        assert!(again.is_empty(), "{:?}: {again:?}", db.backend());
    }
}
