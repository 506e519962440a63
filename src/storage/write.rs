//! Batch writes: many pages of conversations or user statuses in one transaction.
//!
//! [`write_batch`] is the transaction: fence every page's lease, write each conversation,
//! write user status records by `(user_id, start_time)`, and finally record the completions
//! of the partitions whose last page is in the batch — after deleting what a verified block
//! no longer holds upstream ([`super::upstream`]). Either all of it commits or none of it.
//!
//! A conversation already stored is compared by its content digest ([`super::digest`]):
//! unchanged, only its `last_ingested_at` (and `is_final`) move, for the whole batch in one
//! UPDATE; changed (or stored without a digest), its row is upserted (keeping
//! `first_ingested_at`) and its stored children compared with the new ones by natural key:
//! only those that differ are rewritten, those gone deleted ([`super::rewrite`]). New rows go
//! in multi-row inserts of fixed row counts ([`STATEMENT_ROWS`], prepared once per
//! connection). User status records are compared the same way, by `(user_id, start_time)` and
//! their digest.
//!
//! Completion after all rows: the [`LeaseLedger`] refuses the completion of a lease any of
//! whose pages was not written ([`LeaseLedger::lease_failure`]).
//!
//! [`BatchWriter`] ([`super::batch_writer`]) drives it with a connection it (re)opens itself,
//! retrying transient errors and pinning permanent ones on their page.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

pub use super::batch_writer::{BatchWriter, WriteCounters};
pub use super::checkpoint::PartitionCompletion;
use super::checkpoint::{complete_partition, fence_lease, get_partition, Dataset};
use super::connection::{Connection, StorageError};
use super::ledger::{LeaseLedger, ReceivedKeys};
pub use super::models::ConversationRecord;
use super::models::{
    db_time, ConversationRows, NewConversation, NewParticipant, NewPresence, NewRoutingStatus,
    NewSegment, NewSession, NewSessionMetric, UserRows,
};
use super::rewrite::rewrite_changed;
use super::schema::{conversations, user_presence, user_routing_status};
use super::upstream::{delete_absent_conversations, delete_absent_user_records, UserRecordKind};
pub use super::writer_settings::{
    BatchLimits, FaultHook, FaultPoint, Sleeper, StatementLimits, WriterConfig, WriterSettings,
    MAX_WRITER_CONNECTIONS,
};
use crate::dispatch;
use crate::genesys::model::UserDetail;

/// The records of one fetched page.
#[derive(Debug, Clone, PartialEq)]
pub enum PageRecords {
    Conversations(Vec<ConversationRecord>),
    Users(Vec<UserDetail>),
}

impl PageRecords {
    /// Rows the page becomes (before de-duplication).
    pub fn row_count(&self) -> usize {
        match self {
            PageRecords::Conversations(v) => v.iter().map(|c| c.row_count()).sum(),
            PageRecords::Users(v) => v
                .iter()
                .map(|u| u.primary_presence.len() + u.routing_status.len())
                .sum(),
        }
    }

    pub fn conversation_count(&self) -> usize {
        match self {
            PageRecords::Conversations(v) => v.len(),
            PageRecords::Users(_) => 0,
        }
    }
}

/// One page to write. `partition_id <= 0` means the page belongs to no partition (e.g. a
/// re-fetch of conversations by id): it is written unfenced and cannot carry a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct PageWrite {
    pub partition_id: i64,
    pub lease_token: String,
    pub page: PageRecords,
    /// Present on the partition's last page: committed with these rows.
    pub completion: Option<PartitionCompletion>,
}

/// What a committed batch wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub rows_written: u64,
    /// Conversations received (inserted, replaced or found unchanged).
    pub conversations_written: u64,
    pub completions: u64,
    /// Stored conversations whose content digest differed: replaced with their children.
    pub conversations_changed: u64,
    /// Stored conversations with the same digest: not rewritten.
    pub conversations_unchanged: u64,
    /// Absent from a verified block's re-fetch: deleted with their children.
    pub conversations_deleted: u64,
    /// Presence and routing-status records deleted the same way.
    pub user_records_deleted: u64,
    /// Re-fetched presence and routing-status records with the same digest: not rewritten.
    pub user_records_unchanged: u64,
}

/// Why a batch transaction did not commit.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchError {
    /// These partitions' leases no longer match their pages' tokens: drop those pages.
    LeaseLost(Vec<i64>),
    Storage(StorageError),
}

impl From<StorageError> for BatchError {
    fn from(e: StorageError) -> Self {
        BatchError::Storage(e)
    }
}

impl From<diesel::result::Error> for BatchError {
    fn from(e: diesel::result::Error) -> Self {
        BatchError::Storage(e.into())
    }
}

const IDS_PER_STATEMENT: usize = 1000;

/// Row counts an INSERT may have, largest first: each (table, row count) is prepared once per
/// connection and kept ([`MultiRowInsert`](super::prepared::MultiRowInsert)), so the statement cache stays small.
pub const STATEMENT_ROWS: [usize; 5] = [256, 64, 16, 4, 1];

/// The largest size of [`STATEMENT_ROWS`] that is at most `remaining` and `max_rows` and whose
/// rows `fit` (one row always does).
pub fn statement_rows(remaining: usize, max_rows: usize, fits: impl Fn(usize) -> bool) -> usize {
    STATEMENT_ROWS
        .iter()
        .copied()
        .find(|&n| n <= remaining && n <= max_rows && (n == 1 || fits(n)))
        .unwrap_or(1)
}

/// Inserts every row of `$rows` (of the `Insertable` struct `$row`) into `$table` in
/// statements of [`STATEMENT_ROWS`] sizes, each cached by type
/// ([`FixedInsert`](super::prepared::FixedInsert)); `$fits` (optional) says whether a run of
/// rows is small enough for one statement. Evaluates to the number of rows inserted; `?`
/// returns database errors.
macro_rules! insert_rows {
    ($conn:expr, $table:ident, $row:ident, $rows:expr, $limits:expr) => {
        insert_rows!($conn, $table, $row, $rows, $limits, |_: &[_]| true)
    };
    ($conn:expr, $table:ident, $row:ident, $rows:expr, $limits:expr, $fits:expr) => {{
        let mut rest = &$rows[..];
        let mut inserted = 0usize;
        while !rest.is_empty() {
            let n = statement_rows(rest.len(), $limits.rows_per_statement, |k| {
                ($fits)(&rest[..k])
            });
            let (head, tail) = rest.split_at(n);
            inserted += match n {
                256 => fixed_insert!($conn, $table, $row, head, 256),
                64 => fixed_insert!($conn, $table, $row, head, 64),
                16 => fixed_insert!($conn, $table, $row, head, 16),
                4 => fixed_insert!($conn, $table, $row, head, 4),
                1 => fixed_insert!($conn, $table, $row, head, 1),
                _ => dispatch!(&mut *$conn, |c| crate::multi_row_insert!($table, head)
                    .execute(c))?,
            };
            rest = tail;
        }
        inserted
    }};
}

/// One INSERT of exactly `$n` rows (`$head.len() == $n`), cached by type.
macro_rules! fixed_insert {
    ($conn:expr, $table:ident, $row:ident, $head:expr, $n:literal) => {{
        let insert = crate::multi_row_insert!($table, $head);
        match crate::storage::prepared::FixedInsert::<
            crate::storage::schema::$table::table,
            $row<'static>,
            _,
            $n,
        >::new(insert)
        {
            Some(q) => dispatch!(&mut *$conn, |c| q.execute(c))?,
            None => {
                return Err(StorageError::from(
                    diesel::result::Error::QueryBuilderError(
                        format!("an INSERT of {} rows is not one of {}", $head.len(), $n).into(),
                    ),
                ))
            }
        }
    }};
}

/// Writes `pages` in one transaction (see the module doc). On `Err` nothing was written.
/// `ledger` holds the keys earlier pages of each lease wrote (a verified completion deletes
/// what its block holds beyond them and this batch's pages).
pub fn write_batch(
    conn: &mut Connection,
    pages: &[&PageWrite],
    now: DateTime<Utc>,
    limits: StatementLimits,
    fault: Option<&FaultHook>,
    ledger: &LeaseLedger,
) -> Result<BatchOutcome, BatchError> {
    let db_now = db_time(now);
    conn.transaction(|conn| {
        // 1. Fences: every fenced page's partition must still be leased with its token.
        let mut fenced = HashSet::new();
        let mut lost = Vec::new();
        for p in pages.iter().filter(|p| p.partition_id > 0) {
            if fenced.insert(p.partition_id)
                && !fence_lease(conn, p.partition_id, &p.lease_token, now)?
            {
                lost.push(p.partition_id);
            }
        }
        if !lost.is_empty() {
            return Err(BatchError::LeaseLost(lost));
        }

        // 2. Conversations, the last copy of each id winning.
        let mut order: Vec<&ConversationRecord> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut users: Vec<&UserDetail> = Vec::new();
        for p in pages {
            match &p.page {
                PageRecords::Conversations(v) => {
                    for rec in v {
                        let id = rec.conversation().conversation_id.as_str();
                        match index.get(id) {
                            Some(&i) => order[i] = rec,
                            None => {
                                index.insert(id, order.len());
                                order.push(rec);
                            }
                        }
                    }
                }
                PageRecords::Users(v) => users.extend(v.iter()),
            }
        }
        let mut partitions: Vec<i64> = pages.iter().map(|p| p.partition_id).collect();
        partitions.sort_unstable();
        partitions.dedup();
        if let Some(f) = fault {
            f(FaultPoint::BeforeConversations {
                partitions: partitions.clone(),
            })?;
        }
        let mut outcome = BatchOutcome::default();
        if !order.is_empty() {
            super::lanes::lock_stored_conversations(conn, &order)?;
            let w = write_conversations(conn, &order, db_now, limits)?;
            outcome.rows_written += w.rows as u64;
            outcome.conversations_written = order.len() as u64;
            outcome.conversations_changed = w.changed;
            outcome.conversations_unchanged = w.unchanged;
        }
        if !users.is_empty() {
            let (written, unchanged) = write_user_statuses(conn, &users, db_now, limits)?;
            outcome.rows_written += written as u64;
            outcome.user_records_unchanged = unchanged;
        }

        // 3. Completions, in the same transaction as the rows.
        if let Some(f) = fault {
            let conversations = order
                .iter()
                .map(|r| r.conversation().conversation_id.clone())
                .collect();
            f(FaultPoint::BeforeCompletion {
                partitions,
                conversations,
            })?;
        }
        let mut lost = Vec::new();
        for p in pages {
            if let (Some(done), true) = (&p.completion, p.partition_id > 0) {
                if done.verified {
                    let (c, u) = delete_deleted_upstream(conn, p, pages, ledger, db_now)?;
                    outcome.conversations_deleted += c;
                    outcome.user_records_deleted += u;
                }
                if complete_partition(conn, p.partition_id, &p.lease_token, done, now)? {
                    outcome.completions += 1;
                } else {
                    lost.push(p.partition_id);
                }
            }
        }
        if !lost.is_empty() {
            return Err(BatchError::LeaseLost(lost));
        }
        Ok(outcome)
    })
}

/// Deletes, at the verified completion `done_page`, what its block stores beyond the keys its
/// lease wrote (earlier pages in `ledger`, this batch's `pages`): deleted upstream.
/// Returns (conversations, user records) deleted.
fn delete_deleted_upstream(
    conn: &mut Connection,
    done_page: &PageWrite,
    pages: &[&PageWrite],
    ledger: &LeaseLedger,
    now: NaiveDateTime,
) -> Result<(u64, u64), StorageError> {
    let (id, token) = (done_page.partition_id, done_page.lease_token.as_str());
    let Some(part) = get_partition(conn, id)? else {
        return Err(StorageError::NoSuchPartition { partition_id: id });
    };
    let range = (part.range_start, part.range_end);
    let since = ledger.since(done_page, now);
    let empty = ReceivedKeys::default();
    let earlier = ledger.entry(id, token).map_or(&empty, |e| &e.received);
    let here = ReceivedKeys::of_pages(
        pages
            .iter()
            .copied()
            .filter(|p| p.partition_id == id && p.lease_token == token),
    );
    match part.dataset {
        Dataset::Conversations => {
            let n = delete_absent_conversations(conn, range, since, |c| {
                earlier.has_conversation(c) || here.has_conversation(c)
            })?;
            Ok((n, 0))
        }
        Dataset::Users => {
            let n = delete_absent_user_records(conn, range, since, |kind, u, t| match kind {
                UserRecordKind::Presence => earlier.has_presence(u, t) || here.has_presence(u, t),
                UserRecordKind::RoutingStatus => {
                    earlier.has_routing_status(u, t) || here.has_routing_status(u, t)
                }
            })?;
            Ok((0, n))
        }
    }
}

/// What [`write_conversations`] did.
#[derive(Debug, Clone, Copy, Default)]
struct ConversationsWritten {
    rows: usize,
    changed: u64,
    unchanged: u64,
}

/// A stored conversation as the write path compares it.
struct Stored {
    first_ingested_at: NaiveDateTime,
    content_digest: Option<String>,
}

/// Writes `recs`: new ones inserted, changed ones (or stored without a digest) rewritten in
/// place with their children ([`super::rewrite`]), unchanged ones only touched
/// (`last_ingested_at`, `is_final`) in bulk.
fn write_conversations(
    conn: &mut Connection,
    recs: &[&ConversationRecord],
    now: NaiveDateTime,
    limits: StatementLimits,
) -> Result<ConversationsWritten, StorageError> {
    let t0 = Instant::now();
    let ids: Vec<&str> = recs
        .iter()
        .map(|r| r.conversation().conversation_id.as_str())
        .collect();
    let mut stored: HashMap<String, Stored> = HashMap::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let found: Vec<(String, NaiveDateTime, Option<String>)> = dispatch!(&mut *conn, |c| {
            conversations::table
                .filter(conversations::conversation_id.eq_any(chunk))
                .select((
                    conversations::conversation_id,
                    conversations::first_ingested_at,
                    conversations::content_digest,
                ))
                .load(c)
        })?;
        stored.extend(found.into_iter().map(|(id, first, digest)| {
            (
                id,
                Stored {
                    first_ingested_at: first,
                    content_digest: digest,
                },
            )
        }));
    }
    let mut out = ConversationsWritten::default();
    let mut fresh: Vec<&ConversationRecord> = Vec::with_capacity(recs.len());
    let mut stale: Vec<&ConversationRecord> = Vec::new();
    // Unchanged conversations by their new `is_final`.
    let mut touch: [Vec<&str>; 2] = [Vec::new(), Vec::new()];
    for (rec, id) in recs.iter().zip(&ids) {
        match stored.get(*id) {
            None => fresh.push(rec),
            Some(s) => match &s.content_digest {
                Some(d) if *d == rec.content_digest() => {
                    out.unchanged += 1;
                    touch[usize::from(rec.is_final)].push(id);
                }
                known => {
                    out.changed += u64::from(known.is_some());
                    stale.push(rec);
                }
            },
        }
    }
    for (is_final, ids) in touch.iter().enumerate() {
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            dispatch!(&mut *conn, |c| diesel::update(
                conversations::table.filter(conversations::conversation_id.eq_any(chunk))
            )
            .set((
                conversations::last_ingested_at.eq(now),
                conversations::is_final.eq(is_final == 1),
            ))
            .execute(c))?;
        }
    }

    // Changed (or stored without a digest): rewritten in place by natural key, in id order
    // (see [`super::rewrite`]), keeping `first_ingested_at`.
    let t_touched = Instant::now();
    stale.sort_by(|a, b| {
        a.conversation()
            .conversation_id
            .cmp(&b.conversation().conversation_id)
    });
    let mut changed = ConversationRows::default();
    for rec in &stale {
        let first = stored
            .get(rec.conversation().conversation_id.as_str())
            .map(|s| s.first_ingested_at);
        changed.push(rec, now, first);
    }
    let children = rewrite_changed(conn, &changed, limits)?;

    // New: plain multi-row inserts. Two writers inserting the same new conversation collide
    // on its key (a duplicate-key error the batch retries, then finds it stored).
    let t_rewritten = Instant::now();
    let mut rows = ConversationRows::default();
    for rec in &fresh {
        rows.push(rec, now, None);
    }
    // Conversations carry their raw JSON: cut statements by size as well as by count.
    let max_bytes = limits.max_statement_bytes;
    let fits = |rows: &[NewConversation]| {
        rows.iter().map(|r| r.raw_json.len() + 512).sum::<usize>() <= max_bytes
    };
    insert_rows!(
        conn,
        conversations,
        NewConversation,
        rows.conversations,
        limits,
        fits
    );
    insert_rows!(
        conn,
        participants,
        NewParticipant,
        rows.participants,
        limits
    );
    insert_rows!(conn, sessions, NewSession, rows.sessions, limits);
    insert_rows!(conn, segments, NewSegment, rows.segments, limits);
    insert_rows!(
        conn,
        session_metrics,
        NewSessionMetric,
        rows.metrics,
        limits
    );
    log::debug!(
        "{} conversations ({} new, {} rewritten: children {:?}, {} unchanged): lookup+touch {:?}, rewrite {} rows {:?}, insert {} rows {:?}",
        recs.len(),
        fresh.len(),
        stale.len(),
        children,
        out.unchanged,
        t_touched - t0,
        changed.len(),
        t_rewritten - t_touched,
        rows.len(),
        t_rewritten.elapsed()
    );
    // Rows written: the new ones, the changed conversations' own rows (upserted) and the
    // children that differed (inserted again); not the children left as they were.
    out.rows = rows.len() + changed.conversations.len() + children.inserted;
    Ok(out)
}

/// Presence and routing-status records in `rows` that are stored with the same content digest
/// are only touched (`last_ingested_at`, so a verified completion counts them as received);
/// changed ones are deleted to be inserted again; the rest are new. Evaluates to
/// `(rows to insert, unchanged count)`. `rows` are sorted by user.
macro_rules! sort_user_statuses {
    ($conn:expr, $table:ident, $rows:expr, $now:expr) => {{
        let rows = $rows;
        let mut insert = vec![true; rows.len()];
        let mut unchanged = 0u64;
        let mut first = 0usize;
        // Users in statements of IDS_PER_STATEMENT records; one SELECT of the stored digests
        // per statement (a superset by time range, filtered here by exact key).
        while first < rows.len() {
            let last = (first + IDS_PER_STATEMENT).min(rows.len());
            let part = &rows[first..last];
            let users: Vec<&str> = {
                let mut u: Vec<&str> = part.iter().map(|r| r.user_id).collect();
                u.dedup();
                u
            };
            let (lo, hi) = part
                .iter()
                .fold((part[0].start_time, part[0].start_time), |(lo, hi), r| {
                    (lo.min(r.start_time), hi.max(r.start_time))
                });
            let stored: Vec<(String, NaiveDateTime, Option<String>)> =
                dispatch!(&mut *$conn, |c| {
                    $table::table
                        .filter($table::user_id.eq_any(&users))
                        .filter($table::start_time.ge(lo))
                        .filter($table::start_time.le(hi))
                        .select(($table::user_id, $table::start_time, $table::content_digest))
                        .load(c)
                })?;
            let stored: HashMap<(&str, NaiveDateTime), Option<&str>> = stored
                .iter()
                .map(|(u, t, d)| ((u.as_str(), *t), d.as_deref()))
                .collect();
            let mut offset = first;
            for group in part.chunk_by(|a, b| a.user_id == b.user_id) {
                let user = group[0].user_id;
                let (mut stale, mut same) = (Vec::new(), Vec::new());
                for (i, r) in group.iter().enumerate() {
                    match stored.get(&(user, r.start_time)) {
                        None => {}
                        Some(Some(d)) if Some(*d) == r.content_digest.as_deref() => {
                            same.push(r.start_time);
                            insert[offset + i] = false;
                        }
                        Some(_) => stale.push(r.start_time),
                    }
                }
                if !stale.is_empty() {
                    dispatch!(&mut *$conn, |c| diesel::delete(
                        $table::table
                            .filter($table::user_id.eq(user))
                            .filter($table::start_time.eq_any(&stale))
                    )
                    .execute(c))?;
                }
                if !same.is_empty() {
                    unchanged += same.len() as u64;
                    dispatch!(&mut *$conn, |c| diesel::update(
                        $table::table
                            .filter($table::user_id.eq(user))
                            .filter($table::start_time.eq_any(&same))
                    )
                    .set($table::last_ingested_at.eq($now))
                    .execute(c))?;
                }
                offset += group.len();
            }
            first = last;
        }
        let fresh: Vec<_> = rows
            .into_iter()
            .zip(insert)
            .filter_map(|(r, w)| w.then_some(r))
            .collect();
        (fresh, unchanged)
    }};
}

/// Writes presence and routing-status records by `(user_id, start_time)`: new ones inserted,
/// changed ones replaced, unchanged ones (same content digest) only touched. Returns (rows
/// written, records unchanged).
fn write_user_statuses(
    conn: &mut Connection,
    users: &[&UserDetail],
    now: NaiveDateTime,
    limits: StatementLimits,
) -> Result<(usize, u64), StorageError> {
    let rows = UserRows::from_users(users.iter().copied(), now);
    let (presence, same_p) = sort_user_statuses!(conn, user_presence, rows.presence, now);
    let (routing, same_r) = sort_user_statuses!(conn, user_routing_status, rows.routing, now);
    let written = insert_rows!(conn, user_presence, NewPresence, presence, limits)
        + insert_rows!(conn, user_routing_status, NewRoutingStatus, routing, limits);
    Ok((written, same_p + same_r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_the_largest_size_that_fits() {
        let sizes = |mut left: usize, max: usize, fits: &dyn Fn(usize) -> bool| {
            let mut v = Vec::new();
            while left > 0 {
                let n = statement_rows(left, max, fits);
                v.push(n);
                left -= n;
            }
            v
        };
        assert_eq!(sizes(600, 1000, &|_| true), vec![256, 256, 64, 16, 4, 4]);
        assert_eq!(sizes(70, 32, &|_| true), vec![16, 16, 16, 16, 4, 1, 1]);
        assert_eq!(sizes(40, 1000, &|k| k <= 5), vec![4; 10]);
        assert_eq!(
            sizes(2, 1000, &|_| false),
            vec![1, 1],
            "one row always goes"
        );
    }
}
