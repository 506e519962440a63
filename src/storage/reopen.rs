//! Partitions set back to `pending` so their blocks are fetched again: catch-up (data that may
//! still change), settle (a block fetched young, once it is old enough) and resync (an
//! operator's request). Each update is fenced by status, so a partition running or already
//! reopened meanwhile is left alone.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use super::checkpoint::{lease_ended, Dataset, PartitionStatus};
use super::connection::{Connection, StorageError};
use super::models::{db_time, utc};
use super::schema::{conversations, ingest_partitions as ip};
use crate::dispatch;

/// Sets `done`/`unverified` partitions of `dataset` overlapping `[from, to)` that are not
/// final back to `pending` (catch-up re-fetches data that may still change). Returns how many.
pub fn reopen_partitions(
    conn: &mut Connection,
    dataset: Dataset,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let (from, to) = (db_time(from), db_time(to));
    let reopenable = [
        PartitionStatus::Done.as_str(),
        PartitionStatus::Unverified.as_str(),
    ];
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::dataset.eq(dataset.as_str()))
            .filter(ip::range_start.lt(to))
            .filter(ip::range_end.gt(from))
            .filter(ip::status.eq_any(reopenable))
            .filter(ip::is_final.eq(false))
    )
    .set(lease_ended(PartitionStatus::Pending, db_time(now)))
    .execute(c))?;
    Ok(n)
}

/// Sets the `done` partitions `ids` that are not settled back to `pending` for their settle
/// re-fetch (see [`crate::settle`]). Fenced by status: a partition running, reopened or
/// settled meanwhile is left alone. Returns how many.
pub fn reopen_for_settle(
    conn: &mut Connection,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += dispatch!(&mut *conn, |c| diesel::update(
            ip::table
                .filter(ip::id.eq_any(chunk))
                .filter(ip::status.eq(PartitionStatus::Done.as_str()))
                .filter(ip::is_settled.eq(false))
        )
        .set(lease_ended(PartitionStatus::Pending, db_time(now)))
        .execute(c))?;
    }
    Ok(n)
}

/// `sluice resync`: sets every `done`, `unverified` or `failed` partition of `datasets`
/// overlapping `[from, to)` back to `pending` (attempts reset), so the backfill that follows
/// fetches each again. Fenced by status: a `running` partition (another instance's lease) is
/// left alone. Returns how many.
pub fn reopen_for_resync(
    conn: &mut Connection,
    datasets: &[Dataset],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let names: Vec<&str> = datasets.iter().map(|d| d.as_str()).collect();
    let (from, to) = (db_time(from), db_time(to));
    let reopenable = [
        PartitionStatus::Done.as_str(),
        PartitionStatus::Unverified.as_str(),
        PartitionStatus::Failed.as_str(),
    ];
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::dataset.eq_any(&names))
            .filter(ip::range_start.lt(to))
            .filter(ip::range_end.gt(from))
            .filter(ip::status.eq_any(reopenable))
    )
    .set((
        lease_ended(PartitionStatus::Pending, db_time(now)),
        ip::attempts.eq(0),
    ))
    .execute(c))?;
    Ok(n)
}

/// Stored conversations that are not final and started before `before`: `(id, start)`,
/// oldest first.
pub fn non_final_conversations(
    conn: &mut Connection,
    before: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, StorageError> {
    let before = db_time(before);
    let v: Vec<(String, NaiveDateTime)> = dispatch!(conn, |c| conversations::table
        .filter(conversations::is_final.eq(false))
        .filter(conversations::conversation_start.lt(before))
        .order(conversations::conversation_start.asc())
        .select((
            conversations::conversation_id,
            conversations::conversation_start
        ))
        .load(c))?;
    Ok(v.into_iter().map(|(id, t)| (id, utc(t))).collect())
}
