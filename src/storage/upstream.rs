//! Deletions upstream: what Genesys removed (GDPR erasure, the nightly pipeline's
//! corrections) is removed here too, and only on proof.
//!
//! A conversation stored for a block (its `conversation_start` within the block's range) that
//! is absent from the block's *verified* re-fetch was deleted upstream; so is a presence or
//! routing-status record (key `user_id` + `start_time`, `start_time` within the range). The
//! Writer deletes them — a conversation with all its children — in the transaction that
//! completes the block, and never on an unverified, failed or incomplete fetch (see
//! [`super::ledger`]): a block whose count did not match proves nothing about what is missing.
//! Rows ingested after the lease began (by another block's fetch) are left alone: data that
//! landed late upstream may be missing from this fetch without having been deleted.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use super::connection::{Connection, StorageError};
use super::models::db_time;
use super::schema::{
    conversations, participants, segments, session_metrics, sessions, user_presence,
    user_routing_status,
};
use crate::dispatch;

const IDS_PER_STATEMENT: usize = 1000;

/// Deletes conversations `ids` and all their children.
pub fn delete_conversations(conn: &mut Connection, ids: &[&str]) -> Result<(), StorageError> {
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        dispatch!(&mut *conn, |c| {
            diesel::delete(
                session_metrics::table.filter(session_metrics::conversation_id.eq_any(chunk)),
            )
            .execute(c)?;
            diesel::delete(segments::table.filter(segments::conversation_id.eq_any(chunk)))
                .execute(c)?;
            diesel::delete(sessions::table.filter(sessions::conversation_id.eq_any(chunk)))
                .execute(c)?;
            diesel::delete(participants::table.filter(participants::conversation_id.eq_any(chunk)))
                .execute(c)?;
            diesel::delete(
                conversations::table.filter(conversations::conversation_id.eq_any(chunk)),
            )
            .execute(c)
        })?;
    }
    Ok(())
}

/// Deletes the conversations that started in `[from, to)`, were last ingested before
/// `since`, and are not `received`; returns how many.
pub fn delete_absent_conversations(
    conn: &mut Connection,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    since: NaiveDateTime,
    received: impl Fn(&str) -> bool,
) -> Result<u64, StorageError> {
    let stored: Vec<String> = dispatch!(&mut *conn, |c| conversations::table
        .filter(conversations::conversation_start.ge(db_time(from)))
        .filter(conversations::conversation_start.lt(db_time(to)))
        .filter(conversations::last_ingested_at.lt(since))
        .select(conversations::conversation_id)
        .load(c))?;
    let gone: Vec<&str> = stored
        .iter()
        .map(String::as_str)
        .filter(|id| !received(id))
        .collect();
    if !gone.is_empty() {
        log::info!(
            "{} conversations of {from}..{to} deleted upstream: deleting them",
            gone.len()
        );
        delete_conversations(conn, &gone)?;
    }
    Ok(gone.len() as u64)
}

/// Which user-record table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRecordKind {
    Presence,
    RoutingStatus,
}

/// Deletes the presence and routing-status records that started in `[from, to)`, were last
/// ingested before `since`, and are not `received`; returns how many.
pub fn delete_absent_user_records(
    conn: &mut Connection,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    since: NaiveDateTime,
    received: impl Fn(UserRecordKind, &str, NaiveDateTime) -> bool,
) -> Result<u64, StorageError> {
    let (from, to) = (db_time(from), db_time(to));
    let presence: Vec<(String, NaiveDateTime)> = dispatch!(&mut *conn, |c| user_presence::table
        .filter(user_presence::start_time.ge(from))
        .filter(user_presence::start_time.lt(to))
        .filter(user_presence::last_ingested_at.lt(since))
        .select((user_presence::user_id, user_presence::start_time))
        .load(c))?;
    let routing: Vec<(String, NaiveDateTime)> =
        dispatch!(&mut *conn, |c| user_routing_status::table
            .filter(user_routing_status::start_time.ge(from))
            .filter(user_routing_status::start_time.lt(to))
            .filter(user_routing_status::last_ingested_at.lt(since))
            .select((
                user_routing_status::user_id,
                user_routing_status::start_time
            ))
            .load(c))?;
    let mut deleted = 0u64;
    for (user, start) in presence
        .iter()
        .filter(|(u, s)| !received(UserRecordKind::Presence, u, *s))
    {
        deleted += dispatch!(&mut *conn, |c| diesel::delete(
            user_presence::table
                .filter(user_presence::user_id.eq(user))
                .filter(user_presence::start_time.eq(start))
        )
        .execute(c))? as u64;
    }
    for (user, start) in routing
        .iter()
        .filter(|(u, s)| !received(UserRecordKind::RoutingStatus, u, *s))
    {
        deleted += dispatch!(&mut *conn, |c| diesel::delete(
            user_routing_status::table
                .filter(user_routing_status::user_id.eq(user))
                .filter(user_routing_status::start_time.eq(start))
        )
        .execute(c))? as u64;
    }
    if deleted > 0 {
        log::info!("{deleted} user records of {from}..{to} deleted upstream: deleted them");
    }
    Ok(deleted)
}

/// What a run changed because upstream changed: the `ingest_runs` columns of the same names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunChanges {
    pub conversations_changed: i64,
    pub conversations_deleted: i64,
    pub user_records_deleted: i64,
}

impl RunChanges {
    /// The run summary's line.
    pub fn summary_line(&self) -> String {
        format!(
            "{} conversations changed upstream, {} deleted upstream; {} user records deleted upstream",
            self.conversations_changed, self.conversations_deleted, self.user_records_deleted
        )
    }
}

/// Records a run's [`RunChanges`] in its `ingest_runs` row.
pub fn record_run_changes(
    conn: &mut Connection,
    run_id: i64,
    changes: RunChanges,
) -> Result<(), StorageError> {
    use super::schema::ingest_runs as ir;
    dispatch!(conn, |c| diesel::update(
        ir::table.filter(ir::id.eq(run_id))
    )
    .set((
        ir::conversations_changed.eq(changes.conversations_changed),
        ir::conversations_deleted.eq(changes.conversations_deleted),
        ir::user_records_deleted.eq(changes.user_records_deleted),
    ))
    .execute(c))?;
    Ok(())
}
