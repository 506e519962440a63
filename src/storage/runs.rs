//! `ingest_runs`: one row per run (command, range, totals), opened when it starts and closed
//! with its totals when it ends.

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::sql_types::BigInt;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use super::connection::{Connection, StorageError};
use super::models::db_time;
use super::schema::ingest_runs;
use crate::dispatch;

/// Opens an `ingest_runs` row; returns its id.
pub fn start_run(
    conn: &mut Connection,
    command: &str,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Result<i64, StorageError> {
    let now = db_time(now);
    conn.transaction(|conn| {
        dispatch!(&mut *conn, |c| diesel::insert_into(ingest_runs::table)
            .values((
                ingest_runs::command.eq(command),
                ingest_runs::range_start.eq(range.map(|r| db_time(r.0))),
                ingest_runs::range_end.eq(range.map(|r| db_time(r.1))),
                ingest_runs::started_at.eq(now),
                ingest_runs::requests.eq(0i64),
                ingest_runs::rate_limited_requests.eq(0i64),
                ingest_runs::rows_written.eq(0i64),
            ))
            .execute(c))?;
        // The id of this connection's own insert (several instances insert at once).
        let id: i64 = match conn {
            Connection::Mysql(c) => {
                diesel::select(sql::<BigInt>("CAST(LAST_INSERT_ID() AS SIGNED)")).get_result(c)?
            }
            Connection::Sqlite(c) => {
                diesel::select(sql::<BigInt>("last_insert_rowid()")).get_result(c)?
            }
        };
        if id <= 0 {
            return Err(StorageError::InvalidData(
                "ingest_runs insert returned no id".into(),
            ));
        }
        Ok(id)
    })
}

/// Closes an `ingest_runs` row with its totals.
pub fn end_run(
    conn: &mut Connection,
    id: i64,
    requests: i64,
    rate_limited: i64,
    rows_written: i64,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    dispatch!(conn, |c| diesel::update(
        ingest_runs::table.filter(ingest_runs::id.eq(id))
    )
    .set((
        ingest_runs::ended_at.eq(Some(db_time(now))),
        ingest_runs::requests.eq(requests),
        ingest_runs::rate_limited_requests.eq(rate_limited),
        ingest_runs::rows_written.eq(rows_written),
    ))
    .execute(c))?;
    Ok(())
}
