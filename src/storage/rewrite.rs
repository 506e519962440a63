//! Re-ingest of changed conversations in place (issue #17).
//!
//! A conversation whose content digest changed is not deleted and inserted again with all its
//! children. Its row is upserted (MySQL `INSERT … ON DUPLICATE KEY UPDATE`, SQLite `INSERT …
//! ON CONFLICT (conversation_id) DO UPDATE`; `first_ingested_at` is not in the update list, so
//! it keeps the stored value). Its stored children are read, one query per table for the
//! batch, and compared with the new rows by natural key in memory: a child whose values are
//! equal is left alone, one that differs is deleted and inserted again, one that is new is
//! inserted, one the new content no longer has is deleted. A changed metric value so rewrites
//! one row, not the conversation's ~25.
//!
//! (Children are not upserted: on MariaDB an `INSERT … ON DUPLICATE KEY UPDATE` into a table
//! clustered on an auto-increment `id` first inserts the row into the clustered index and
//! only then meets the duplicate in the natural key's unique index, undoes the insert and
//! updates — measured slower than the delete + insert it was to replace.)
//!
//! Concurrency (several writer connections may write the same conversation at once): the
//! conversation rows are upserted first, in conversation-id order, which takes each changed
//! conversation's row lock before any of its children are read; the stored children are then
//! read with `FOR UPDATE` on MySQL, a locking read that sees the latest committed children
//! (not the transaction's older snapshot) and holds them until commit. A writer that loses a
//! race gets a lock wait or a deadlock error, which the batch retries as a whole; every
//! statement's effect depends only on the rows it is given and what is stored, so a retry
//! converges on the same content. SQLite has one writer at a time.

use std::collections::{HashMap, HashSet};

use super::stored_time::StoredTime;
use diesel::{ExpressionMethods, QueryDsl, Queryable, RunQueryDsl, Selectable, SelectableHelper};

use super::connection::{Backend, Connection, StorageError};
use super::models::{
    ConversationRows, NewConversation, NewParticipant, NewSegment, NewSession, NewSessionMetric,
};
use super::schema::{participants, segments, session_metrics, sessions};
use super::write::{statement_rows, StatementLimits};

/// Conversations per read of stored children: below MariaDB's `eq_range_index_dive_limit`
/// (200), so the optimizer dives into the index for each id instead of trusting statistics
/// that lag a bulk load (with 400 ids it chose full scans: a 4-page batch took 10× one page).
const IDS_PER_STATEMENT: usize = 128;

/// Natural key and updated columns of one table's upsert.
#[derive(Debug, Clone, Copy)]
pub struct Upsert {
    pub table: &'static str,
    pub key: &'static [&'static str],
    /// Every inserted column outside the key that a rewrite replaces.
    pub update: &'static [&'static str],
}

pub const CONVERSATIONS: Upsert = Upsert {
    table: "conversations",
    key: &["conversation_id"],
    // Not `first_ingested_at`: a re-ingest keeps when the conversation was first stored.
    update: &[
        "conversation_start",
        "conversation_end",
        "conversation_initiator",
        "originating_direction",
        "division_ids",
        "media_stats_min_conversation_mos",
        "is_final",
        "raw_json",
        "last_ingested_at",
        "content_digest",
    ],
};

impl Upsert {
    /// The clause appended to a multi-row INSERT in `backend`'s dialect. SQLite's only updates
    /// a row whose values differ (so an unchanged child's page is not dirtied); MySQL does not
    /// write a row whose new values equal the stored ones.
    pub fn clause(&self, backend: Backend) -> String {
        match backend {
            Backend::Mysql => {
                let set: Vec<String> = self
                    .update
                    .iter()
                    .map(|c| format!("`{c}` = VALUES(`{c}`)"))
                    .collect();
                format!("ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            Backend::Sqlite => {
                let key: Vec<String> = self.key.iter().map(|c| format!("`{c}`")).collect();
                let set: Vec<String> = self
                    .update
                    .iter()
                    .map(|c| format!("`{c}` = excluded.`{c}`"))
                    .collect();
                let differs: Vec<String> = self
                    .update
                    .iter()
                    .map(|c| format!("`{c}` IS NOT excluded.`{c}`"))
                    .collect();
                format!(
                    "ON CONFLICT ({}) DO UPDATE SET {} WHERE {}",
                    key.join(", "),
                    set.join(", "),
                    differs.join(" OR ")
                )
            }
        }
    }
}

/// Upserts every row of `$rows` into `$table` in statements of `STATEMENT_ROWS` sizes.
macro_rules! upsert_rows {
    ($conn:expr, $table:ident, $rows:expr, $upsert:expr, $limits:expr) => {
        upsert_rows!($conn, $table, $rows, $upsert, $limits, |_: &[_]| true)
    };
    ($conn:expr, $table:ident, $rows:expr, $upsert:expr, $limits:expr, $fits:expr) => {{
        let clause = $upsert.clause($conn.backend());
        let mut rest = &$rows[..];
        while !rest.is_empty() {
            let n = statement_rows(rest.len(), $limits.rows_per_statement, |k| {
                ($fits)(&rest[..k])
            });
            let (head, tail) = rest.split_at(n);
            crate::dispatch!(&mut *$conn, |c| crate::multi_row_insert!($table, head)
                .with_suffix(clause.clone())
                .execute(c))?;
            rest = tail;
        }
    }};
}

/// Loads `$query`, on MySQL as a locking read (`FOR UPDATE`: the latest committed rows, locked
/// until commit).
macro_rules! load_locked {
    ($conn:expr, $query:expr) => {
        match &mut *$conn {
            Connection::Mysql(c) => $query.for_update().load(c),
            Connection::Sqlite(c) => $query.load(c),
        }
    };
}

/// Inserts `$rows` (references to insert structs) into `$table` in statements of
/// `STATEMENT_ROWS` sizes.
macro_rules! insert_all {
    ($conn:expr, $table:ident, $rows:expr, $limits:expr) => {{
        let mut rest = &$rows[..];
        while !rest.is_empty() {
            let n = statement_rows(rest.len(), $limits.rows_per_statement, |_| true);
            let (head, tail) = rest.split_at(n);
            crate::dispatch!(&mut *$conn, |c| crate::multi_row_insert!(
                $table,
                head.iter().copied()
            )
            .execute(c))?;
            rest = tail;
        }
    }};
}

/// For a child table with an `id`: reads the stored rows of conversations `$ids` (locking on
/// MySQL), compares them with `$new` by the natural key `$key`, deletes the stored rows that
/// are gone or differ (by id) and inserts the new and differing rows. Evaluates to
/// `Result<ChildWrites, StorageError>`.
macro_rules! diff_children {
    ($conn:expr, $ids:expr, $table:ident, $stored:ty, $new:expr, $key:expr, $limits:expr) => {
        (|| -> Result<ChildWrites, StorageError> {
            let key = $key;
            let mut stored: Vec<$stored> = Vec::new();
            for chunk in $ids.chunks(IDS_PER_STATEMENT) {
                stored.extend(load_locked!(
                    $conn,
                    $table::table
                        .filter($table::conversation_id.eq_any(chunk))
                        .select(<$stored>::as_select())
                )?);
            }
            let by_key: HashMap<_, &$stored> = stored.iter().map(|s| (s.key(), s)).collect();
            let new_keys: HashSet<_> = $new.iter().map(&key).collect();
            let mut deletes: Vec<i64> = by_key
                .iter()
                .filter(|(k, _)| !new_keys.contains(*k))
                .map(|(_, s)| s.id)
                .collect();
            let mut inserts = Vec::new();
            let mut out = ChildWrites::default();
            for r in $new.iter() {
                match by_key.get(&key(r)) {
                    Some(s) if s.same(r) => out.unchanged += 1,
                    Some(s) => {
                        deletes.push(s.id);
                        inserts.push(r);
                    }
                    None => inserts.push(r),
                }
            }
            deletes.sort_unstable();
            for chunk in deletes.chunks(IDS_PER_STATEMENT) {
                out.deleted += crate::dispatch!(&mut *$conn, |c| diesel::delete(
                    $table::table.filter($table::id.eq_any(chunk))
                )
                .execute(c))?;
            }
            out.inserted = inserts.len();
            insert_all!($conn, $table, inserts, $limits);
            Ok(out)
        })()
    };
}

/// Rewrites stored conversations whose content changed: `rows` holds their new rows (built
/// with their stored `first_ingested_at`). Returns what it wrote of their children.
pub fn rewrite_changed<'a>(
    conn: &mut Connection,
    rows: &ConversationRows<'a>,
    limits: StatementLimits,
) -> Result<ChildWrites, StorageError> {
    if rows.conversations.is_empty() {
        return Ok(ChildWrites::default());
    }
    // 1. The conversation rows first: takes each one's row lock (id order, see the module doc).
    let max_bytes = limits.max_statement_bytes;
    let fits = |rows: &[NewConversation]| {
        rows.iter().map(|r| r.raw_json.len() + 512).sum::<usize>() <= max_bytes
    };
    upsert_rows!(
        conn,
        conversations,
        rows.conversations,
        CONVERSATIONS,
        limits,
        fits
    );

    // 2. The children: read, compared, and only the differences written.
    let ids: Vec<&str> = rows
        .conversations
        .iter()
        .map(|c| c.conversation_id)
        .collect();
    let mut w = ChildWrites::default();
    w.add(diff_children!(
        conn,
        &ids,
        participants,
        StoredParticipant,
        &rows.participants,
        |r: &NewParticipant<'a>| (r.conversation_id, r.participant_id),
        limits
    )?);
    w.add(diff_children!(
        conn,
        &ids,
        segments,
        StoredSegment,
        &rows.segments,
        |r: &NewSegment<'a>| (
            r.conversation_id,
            r.session_id,
            r.segment_start,
            r.segment_type
        ),
        limits
    )?);
    w.add(diff_children!(
        conn,
        &ids,
        session_metrics,
        StoredMetric,
        &rows.metrics,
        |r: &NewSessionMetric<'a>| (r.conversation_id, r.session_id, r.name, r.emit_date),
        limits
    )?);
    // Sessions keep their natural primary key (no id): deleted by key.
    let mut stored: Vec<StoredSession> = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        stored.extend(load_locked!(
            conn,
            sessions::table
                .filter(sessions::conversation_id.eq_any(chunk))
                .select(StoredSession::as_select())
        )?);
    }
    let by_key: HashMap<(&str, &str), &StoredSession> = stored
        .iter()
        .map(|s| ((s.conversation_id.as_str(), s.session_id.as_str()), s))
        .collect();
    let new_keys: HashSet<(&str, &str)> = rows
        .sessions
        .iter()
        .map(|r| (r.conversation_id, r.session_id))
        .collect();
    let mut session_deletes: Vec<(&str, &str)> = by_key
        .keys()
        .filter(|k| !new_keys.contains(*k))
        .copied()
        .collect();
    let mut session_inserts: Vec<&NewSession> = Vec::new();
    for r in &rows.sessions {
        match by_key.get(&(r.conversation_id, r.session_id)) {
            Some(s) if s.same(r) => {}
            Some(_) => {
                session_deletes.push((r.conversation_id, r.session_id));
                session_inserts.push(r);
            }
            None => session_inserts.push(r),
        }
    }
    session_deletes.sort_unstable();
    for (cid, sid) in &session_deletes {
        w.deleted += crate::dispatch!(&mut *conn, |c| diesel::delete(
            sessions::table
                .filter(sessions::conversation_id.eq(cid))
                .filter(sessions::session_id.eq(sid))
        )
        .execute(c))?;
    }
    w.inserted += session_inserts.len();
    insert_all!(conn, sessions, session_inserts, limits);
    Ok(w)
}

/// What rewriting the children of changed conversations wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildWrites {
    /// Rows deleted: gone from the new content, or differing (then inserted again).
    pub deleted: usize,
    /// Rows inserted: new, or differing.
    pub inserted: usize,
    /// Rows equal to the stored ones: not written.
    pub unchanged: usize,
}

impl ChildWrites {
    fn add(&mut self, o: ChildWrites) {
        self.deleted += o.deleted;
        self.inserted += o.inserted;
        self.unchanged += o.unchanged;
    }
}

/// Field equality between a stored (owned) value and a new (borrowed) one.
trait Same<N: ?Sized> {
    fn same(&self, n: &N) -> bool;
}

impl<T: PartialEq> Same<T> for T {
    fn same(&self, n: &T) -> bool {
        self == n
    }
}

impl Same<&str> for String {
    fn same(&self, n: &&str) -> bool {
        self == n
    }
}

impl Same<Option<&str>> for Option<String> {
    fn same(&self, n: &Option<&str>) -> bool {
        self.as_deref() == *n
    }
}

/// `same(&self, new)`: every listed column of the stored row equals the new row's.
macro_rules! same_fields {
    ($new:ident, [$($f:ident),* $(,)?]) => {
        fn same(&self, n: &$new<'_>) -> bool {
            true $(&& Same::same(&self.$f, &n.$f))*
        }
    };
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = participants)]
struct StoredParticipant {
    id: i64,
    conversation_id: String,
    participant_id: String,
    participant_name: Option<String>,
    purpose: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    external_contact_id: Option<String>,
    flagged_reason: Option<String>,
}

impl StoredParticipant {
    fn key(&self) -> (&str, &str) {
        (&self.conversation_id, &self.participant_id)
    }
    same_fields!(
        NewParticipant,
        [
            conversation_id,
            participant_id,
            participant_name,
            purpose,
            user_id,
            team_id,
            external_contact_id,
            flagged_reason,
        ]
    );
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions)]
struct StoredSession {
    conversation_id: String,
    session_id: String,
    participant_id: String,
    purpose: Option<String>,
    user_id: Option<String>,
    media_type: Option<String>,
    direction: Option<String>,
    queue_id: Option<String>,
    session_start: Option<StoredTime>,
    session_end: Option<StoredTime>,
    ani: Option<String>,
    dnis: Option<String>,
    address_from: Option<String>,
    address_to: Option<String>,
    edge_id: Option<String>,
    provider: Option<String>,
    remote: Option<String>,
    recording: Option<bool>,
    used_routing: Option<String>,
    selected_agent_id: Option<String>,
    peer_id: Option<String>,
    flow_in_type: Option<String>,
    flow_out_type: Option<String>,
    acw_skipped: Option<bool>,
    flow_id: Option<String>,
    flow_name: Option<String>,
    flow_type: Option<String>,
}

impl StoredSession {
    same_fields!(
        NewSession,
        [
            conversation_id,
            session_id,
            participant_id,
            purpose,
            user_id,
            media_type,
            direction,
            queue_id,
            session_start,
            session_end,
            ani,
            dnis,
            address_from,
            address_to,
            edge_id,
            provider,
            remote,
            recording,
            used_routing,
            selected_agent_id,
            peer_id,
            flow_in_type,
            flow_out_type,
            acw_skipped,
            flow_id,
            flow_name,
            flow_type,
        ]
    );
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = segments)]
struct StoredSegment {
    id: i64,
    conversation_id: String,
    session_id: String,
    segment_start: StoredTime,
    segment_type: String,
    participant_id: String,
    segment_end: Option<StoredTime>,
    queue_id: Option<String>,
    group_id: Option<String>,
    wrap_up_code: Option<String>,
    wrap_up_note: Option<String>,
    disconnect_type: Option<String>,
    error_code: Option<String>,
    conference: Option<bool>,
}

impl StoredSegment {
    fn key(&self) -> (&str, &str, StoredTime, &str) {
        (
            &self.conversation_id,
            &self.session_id,
            self.segment_start,
            &self.segment_type,
        )
    }
    same_fields!(
        NewSegment,
        [
            conversation_id,
            session_id,
            segment_start,
            segment_type,
            participant_id,
            segment_end,
            queue_id,
            group_id,
            wrap_up_code,
            wrap_up_note,
            disconnect_type,
            error_code,
            conference,
        ]
    );
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = session_metrics)]
struct StoredMetric {
    id: i64,
    conversation_id: String,
    session_id: String,
    name: String,
    emit_date: StoredTime,
    value: i64,
}

impl StoredMetric {
    fn key(&self) -> (&str, &str, &str, StoredTime) {
        (
            &self.conversation_id,
            &self.session_id,
            &self.name,
            self.emit_date,
        )
    }
    same_fields!(
        NewSessionMetric,
        [conversation_id, session_id, name, emit_date, value]
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::models::{db_time, ConversationRecord};
    use chrono::Utc;
    use diesel::debug_query;
    use diesel::sqlite::Sqlite;

    #[test]
    fn the_conversation_upsert_rewrites_every_column_but_first_ingested_at() {
        let json = r#"{"conversationId":"c","conversationStart":"2024-03-01T08:00:00Z"}"#;
        let rec = ConversationRecord {
            received: serde_json::from_str(json).unwrap(),
            is_final: true,
        };
        let mut rows = ConversationRows::default();
        rows.push(&rec, db_time(Utc::now()), None);
        let sql = debug_query::<Sqlite, _>(&crate::multi_row_insert!(
            conversations,
            &rows.conversations[..]
        ))
        .to_string();
        let open = sql.find('(').unwrap();
        let close = sql[open..].find(')').unwrap() + open;
        let mut inserted: Vec<&str> = sql[open + 1..close]
            .split(',')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        inserted.sort_unstable();
        let mut covered: Vec<&str> = CONVERSATIONS
            .key
            .iter()
            .chain(CONVERSATIONS.update)
            .copied()
            .chain(["first_ingested_at"])
            .collect();
        covered.sort_unstable();
        assert_eq!(inserted, covered);
        let mysql = CONVERSATIONS.clause(Backend::Mysql);
        assert!(mysql.starts_with("ON DUPLICATE KEY UPDATE `conversation_start` = VALUES("));
        assert!(!mysql.contains("first_ingested_at"));
        let sqlite = CONVERSATIONS.clause(Backend::Sqlite);
        assert!(sqlite.starts_with("ON CONFLICT (`conversation_id`) DO UPDATE SET"));
        assert!(!sqlite.contains("first_ingested_at"));
    }
}
