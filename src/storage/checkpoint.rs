//! The checkpoint: `ingest_partitions` (one row per time block of a dataset, with its status
//! and lease) and `ingest_runs` (one row per run).
//!
//! Leases make a partition owned by one fetcher at a time: leasing sets a fresh random
//! `lease_token`, and every later change made on the fetcher's behalf (rows, completion,
//! release, failure) names that token and changes nothing when it no longer matches — after a
//! lease expired and another worker took the partition over, the old worker's writes are
//! refused (see `write::write_batch`). Completion keeps the token (so a commit retried after
//! an ambiguous network failure is idempotent); release, reopen and split clear it.
//!
//! Every function runs its statements on a [`Connection`] and can be called inside
//! [`Connection::transaction`].

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, Queryable, RunQueryDsl,
};
use rand::RngCore;

use super::connection::{Connection, StorageError};
use super::models::{db_time, utc};
use super::schema::ingest_partitions as ip;
use crate::dispatch;

pub use super::reopen::{
    non_final_conversations, reopen_for_resync, reopen_for_settle, reopen_partitions,
};
pub use super::runs::{end_run, start_run};

/// What a partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    Conversations,
    Users,
}

impl Dataset {
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Conversations => "conversations",
            Dataset::Users => "users",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dataset {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "conversations" => Ok(Dataset::Conversations),
            "users" => Ok(Dataset::Users),
            other => Err(StorageError::InvalidData(format!(
                "unknown dataset {other:?}"
            ))),
        }
    }
}

/// Where a partition stands.
/// `Pending` → (lease) `Running` → `Done` (received == totalHits) | `Unverified` (still short
/// after the bounded re-fetches; both numbers kept) | `Failed` (permanent error, `last_error`)
/// | `Split` (replaced by smaller children). `Running` with an expired lease, `Unverified` and
/// `Failed` can be leased again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionStatus {
    Pending,
    Running,
    Done,
    Unverified,
    Failed,
    Split,
}

impl PartitionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionStatus::Pending => "pending",
            PartitionStatus::Running => "running",
            PartitionStatus::Done => "done",
            PartitionStatus::Unverified => "unverified",
            PartitionStatus::Failed => "failed",
            PartitionStatus::Split => "split",
        }
    }
}

impl fmt::Display for PartitionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartitionStatus {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => PartitionStatus::Pending,
            "running" => PartitionStatus::Running,
            "done" => PartitionStatus::Done,
            "unverified" => PartitionStatus::Unverified,
            "failed" => PartitionStatus::Failed,
            "split" => PartitionStatus::Split,
            other => {
                return Err(StorageError::InvalidData(format!(
                    "unknown partition status {other:?}"
                )))
            }
        })
    }
}

/// A partition to create: a dataset's time block `[range_start, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewPartition {
    pub dataset: Dataset,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
}

/// A row of `ingest_partitions`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRow {
    pub id: i64,
    pub dataset: Dataset,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    pub status: PartitionStatus,
    pub attempts: i32,
    pub total_hits: Option<i64>,
    pub received: Option<i64>,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_token: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub is_final: bool,
    /// When its last fetch completed.
    pub fetched_at: Option<DateTime<Utc>>,
    /// Its last verified fetch completed `settle_hours` or more after its end: no settle
    /// re-fetch is due.
    pub is_settled: bool,
}

#[derive(Queryable)]
struct PartitionRecord {
    id: i64,
    dataset: String,
    range_start: NaiveDateTime,
    range_end: NaiveDateTime,
    status: String,
    attempts: i32,
    total_hits: Option<i64>,
    received: Option<i64>,
    verified_at: Option<NaiveDateTime>,
    last_error: Option<String>,
    lease_owner: Option<String>,
    lease_token: Option<String>,
    lease_expires_at: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
    is_final: bool,
    fetched_at: Option<NaiveDateTime>,
    is_settled: bool,
}

impl PartitionRow {
    /// The partition's time block.
    pub fn range(&self) -> crate::genesys::model::Interval {
        crate::genesys::model::Interval::new(self.range_start, self.range_end)
    }
}

impl TryFrom<PartitionRecord> for PartitionRow {
    type Error = StorageError;
    fn try_from(r: PartitionRecord) -> Result<Self, StorageError> {
        Ok(PartitionRow {
            id: r.id,
            dataset: r.dataset.parse()?,
            range_start: utc(r.range_start),
            range_end: utc(r.range_end),
            status: r.status.parse()?,
            attempts: r.attempts,
            total_hits: r.total_hits,
            received: r.received,
            verified_at: r.verified_at.map(utc),
            last_error: r.last_error,
            lease_owner: r.lease_owner,
            lease_token: r.lease_token,
            lease_expires_at: r.lease_expires_at.map(utc),
            updated_at: utc(r.updated_at),
            is_final: r.is_final,
            fetched_at: r.fetched_at.map(utc),
            is_settled: r.is_settled,
        })
    }
}

/// The columns of [`PartitionRecord`], in order.
macro_rules! partition_columns {
    () => {
        (
            ip::id,
            ip::dataset,
            ip::range_start,
            ip::range_end,
            ip::status,
            ip::attempts,
            ip::total_hits,
            ip::received,
            ip::verified_at,
            ip::last_error,
            ip::lease_owner,
            ip::lease_token,
            ip::lease_expires_at,
            ip::updated_at,
            ip::is_final,
            ip::fetched_at,
            ip::is_settled,
        )
    };
}

fn rows(records: Vec<PartitionRecord>) -> Result<Vec<PartitionRow>, StorageError> {
    records.into_iter().map(PartitionRow::try_from).collect()
}

/// One partition by id.
pub fn get_partition(conn: &mut Connection, id: i64) -> Result<Option<PartitionRow>, StorageError> {
    let r: Option<PartitionRecord> = dispatch!(conn, |c| ip::table
        .filter(ip::id.eq(id))
        .select(partition_columns!())
        .first(c)
        .optional())?;
    r.map(PartitionRow::try_from).transpose()
}

/// Inserts the partitions that do not exist yet (same dataset and range) as `pending`, and
/// returns the rows of all the requested ones, ordered by dataset and start.
pub fn plan_partitions(
    conn: &mut Connection,
    wanted: &[NewPartition],
    now: DateTime<Utc>,
) -> Result<Vec<PartitionRow>, StorageError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let now = db_time(now);
    conn.transaction(|conn| {
        for chunk in wanted.chunks(500) {
            let values: Vec<_> = chunk
                .iter()
                .map(|p| {
                    (
                        ip::dataset.eq(p.dataset.as_str()),
                        ip::range_start.eq(db_time(p.range_start)),
                        ip::range_end.eq(db_time(p.range_end)),
                        ip::status.eq(PartitionStatus::Pending.as_str()),
                        ip::attempts.eq(0),
                        ip::updated_at.eq(now),
                        ip::is_final.eq(false),
                    )
                })
                .collect();
            dispatch!(&mut *conn, |c| diesel::insert_or_ignore_into(ip::table)
                .values(&values)
                .execute(c))?;
        }
        let keys: HashSet<(Dataset, NaiveDateTime, NaiveDateTime)> = wanted
            .iter()
            .map(|p| (p.dataset, db_time(p.range_start), db_time(p.range_end)))
            .collect();
        let mut out = Vec::new();
        for ds in [Dataset::Conversations, Dataset::Users] {
            let of_ds = wanted.iter().filter(|p| p.dataset == ds);
            let (Some(lo), Some(hi)) = (
                of_ds.clone().map(|p| db_time(p.range_start)).min(),
                of_ds.map(|p| db_time(p.range_end)).max(),
            ) else {
                continue;
            };
            let recs: Vec<PartitionRecord> = dispatch!(&mut *conn, |c| ip::table
                .filter(ip::dataset.eq(ds.as_str()))
                .filter(ip::range_start.ge(lo))
                .filter(ip::range_end.le(hi))
                .order((ip::range_start.asc(), ip::range_end.asc()))
                .select(partition_columns!())
                .load(c))?;
            for r in rows(recs)? {
                if keys.contains(&(r.dataset, db_time(r.range_start), db_time(r.range_end))) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    })
}

/// Partitions of `datasets` overlapping `[from, to)`, except `split` ones, ordered by start.
pub fn load_partitions(
    conn: &mut Connection,
    datasets: &[Dataset],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<PartitionRow>, StorageError> {
    let names: Vec<&str> = datasets.iter().map(|d| d.as_str()).collect();
    let (from, to) = (db_time(from), db_time(to));
    let recs: Vec<PartitionRecord> = dispatch!(conn, |c| ip::table
        .filter(ip::dataset.eq_any(&names))
        .filter(ip::range_start.lt(to))
        .filter(ip::range_end.gt(from))
        .filter(ip::status.ne(PartitionStatus::Split.as_str()))
        .order((
            ip::range_start.asc(),
            ip::dataset.asc(),
            ip::range_end.asc()
        ))
        .select(partition_columns!())
        .load(c))?;
    rows(recs)
}

/// The columns that end a partition's lease (no owner, token or expiry), with its new `status`.
pub(crate) type LeaseEnded = (
    diesel::dsl::Eq<ip::status, &'static str>,
    diesel::dsl::Eq<ip::lease_owner, Option<String>>,
    diesel::dsl::Eq<ip::lease_token, Option<String>>,
    diesel::dsl::Eq<ip::lease_expires_at, Option<NaiveDateTime>>,
    diesel::dsl::Eq<ip::updated_at, NaiveDateTime>,
);

/// The changeset that ends a partition's lease and sets its `status` (release, split, reopen).
pub(crate) fn lease_ended(status: PartitionStatus, now: NaiveDateTime) -> LeaseEnded {
    (
        ip::status.eq(status.as_str()),
        ip::lease_owner.eq(None::<String>),
        ip::lease_token.eq(None::<String>),
        ip::lease_expires_at.eq(None::<NaiveDateTime>),
        ip::updated_at.eq(now),
    )
}

/// A fresh lease token: 128 random bits in hex.
pub fn new_lease_token() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What asking for a partition's lease answered. The Coordinator acts on each differently:
/// fetch it, come back at `until`, or drop it from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// Leased to the caller under this token.
    Leased { token: String },
    /// Another owner holds a live lease on it until `until` (ask again then).
    HeldElsewhere {
        owner: Option<String>,
        until: DateTime<Utc>,
    },
    /// Nothing left to fetch: `done`, or `split` into children (which are partitions of
    /// their own).
    Finished { status: PartitionStatus },
}

impl LeaseAnswer {
    /// The token when leased.
    pub fn token(self) -> Option<String> {
        match self {
            LeaseAnswer::Leased { token } => Some(token),
            _ => None,
        }
    }
}

/// Takes partition `id` for `owner` until `now + lease_for`, when it is `pending`,
/// `unverified`, `failed`, or `running` with an expired lease; counts an attempt. Returns the
/// new lease token, or `None` when the partition is not available (see
/// [`try_lease_partition`] for why).
pub fn lease_partition(
    conn: &mut Connection,
    id: i64,
    owner: &str,
    lease_for: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Option<String>, StorageError> {
    try_lease_partition(conn, id, owner, lease_for, now).map(LeaseAnswer::token)
}

/// Takes partition `id` for `owner` like [`lease_partition`], and says why not when it cannot:
/// held elsewhere until when, or finished.
pub fn try_lease_partition(
    conn: &mut Connection,
    id: i64,
    owner: &str,
    lease_for: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<LeaseAnswer, StorageError> {
    let token = new_lease_token();
    let expires = db_time(now + chrono::Duration::from_std(lease_for).unwrap_or_default());
    let db_now = db_time(now);
    let leasable = [
        PartitionStatus::Pending.as_str(),
        PartitionStatus::Unverified.as_str(),
        PartitionStatus::Failed.as_str(),
    ];
    let n = dispatch!(&mut *conn, |c| diesel::update(
        ip::table.filter(ip::id.eq(id)).filter(
            ip::status
                .eq_any(leasable)
                .or(ip::status.eq(PartitionStatus::Running.as_str()).and(
                    ip::lease_expires_at
                        .is_null()
                        .or(ip::lease_expires_at.le(db_now))
                ))
        )
    )
    .set((
        ip::status.eq(PartitionStatus::Running.as_str()),
        ip::lease_owner.eq(owner),
        ip::lease_token.eq(&token),
        ip::lease_expires_at.eq(expires),
        ip::attempts.eq(ip::attempts + 1),
        ip::updated_at.eq(db_now),
    ))
    .execute(c))?;
    if n == 1 {
        return Ok(LeaseAnswer::Leased { token });
    }
    let row = get_partition(conn, id)?.ok_or(StorageError::NoSuchPartition { partition_id: id })?;
    Ok(match row.status {
        PartitionStatus::Done | PartitionStatus::Split => {
            LeaseAnswer::Finished { status: row.status }
        }
        // Running under a live lease (or changed between the two statements: ask again soon).
        _ => LeaseAnswer::HeldElsewhere {
            owner: row.lease_owner,
            until: row.lease_expires_at.filter(|t| *t > now).unwrap_or(now),
        },
    })
}

/// Extends a lease the caller still holds; false when it was lost.
pub fn renew_lease(
    conn: &mut Connection,
    id: i64,
    token: &str,
    lease_for: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let expires = db_time(now + chrono::Duration::from_std(lease_for).unwrap_or_default());
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::id.eq(id))
            .filter(ip::lease_token.eq(token))
            .filter(ip::status.eq(PartitionStatus::Running.as_str()))
    )
    .set((
        ip::lease_expires_at.eq(expires),
        ip::updated_at.eq(db_time(now))
    ))
    .execute(c))?;
    Ok(n == 1)
}

/// Gives a running partition back (graceful shutdown): `pending` again, lease cleared.
/// Returns false when the caller no longer held it.
pub fn release_partition(
    conn: &mut Connection,
    id: i64,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::id.eq(id))
            .filter(ip::lease_token.eq(token))
            .filter(ip::status.eq(PartitionStatus::Running.as_str()))
    )
    .set(lease_ended(PartitionStatus::Pending, db_time(now)))
    .execute(c))?;
    Ok(n == 1)
}

/// Gives back `running` partitions whose lease owner is a process of this host that no longer
/// exists (`owner` is `sluice@HOST:PID`; `this_host` is `sluice@HOST:`): after a crash or a
/// kill -9, the restarted process resumes at once instead of waiting for the lease to expire.
/// `alive(pid)` says whether a process still runs. Returns how many were given back.
pub fn reclaim_dead_leases(
    conn: &mut Connection,
    this_host: &str,
    alive: impl Fn(u32) -> bool,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let held: Vec<(i64, Option<String>, Option<String>)> = dispatch!(conn, |c| ip::table
        .filter(ip::status.eq(PartitionStatus::Running.as_str()))
        .select((ip::id, ip::lease_owner, ip::lease_token))
        .load(c))?;
    let mut reclaimed = 0;
    for (id, owner, token) in held {
        let (Some(owner), Some(token)) = (owner, token) else {
            continue;
        };
        let Some(pid) = owner
            .strip_prefix(this_host)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        if release_partition(conn, id, &token, now)? {
            reclaimed += 1;
        }
    }
    Ok(reclaimed)
}

/// Marks a partition `failed` with its error (permanent failure); fenced by the lease token
/// and status (`running`): false when the caller no longer holds it.
pub fn fail_partition(
    conn: &mut Connection,
    id: i64,
    token: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let error: String = error.chars().take(4000).collect();
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::id.eq(id))
            .filter(ip::lease_token.eq(token))
            .filter(ip::status.eq(PartitionStatus::Running.as_str()))
    )
    .set((
        ip::status.eq(PartitionStatus::Failed.as_str()),
        ip::last_error.eq(&error),
        ip::lease_expires_at.eq(None::<NaiveDateTime>),
        ip::updated_at.eq(db_time(now)),
    ))
    .execute(c))?;
    Ok(n == 1)
}

/// How a partition ended: the counts the fetcher verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCompletion {
    pub total_hits: i64,
    pub received: i64,
    /// `received` matched `total_hits`: status `done`, `verified_at` set; otherwise
    /// `unverified` with both numbers kept.
    pub verified: bool,
    /// Every conversation of the block is final: catch-up never re-fetches it.
    pub is_final: bool,
    /// Verified at or after the block's end + `settle_hours` (see [`crate::settle`]): no
    /// settle re-fetch is due.
    pub settled: bool,
}

/// Records a partition's completion if `token` still holds its lease; false otherwise. Meant
/// to run in the transaction that writes the partition's last rows. Fenced by the token and
/// the status: `running`, or already `done`/`unverified` under this same token (a commit
/// retried after an ambiguous failure); never a partition released, reopened or split.
pub fn complete_partition(
    conn: &mut Connection,
    id: i64,
    token: &str,
    done: &PartitionCompletion,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let now = db_time(now);
    let status = if done.verified {
        PartitionStatus::Done
    } else {
        PartitionStatus::Unverified
    };
    let completable = [
        PartitionStatus::Running.as_str(),
        PartitionStatus::Done.as_str(),
        PartitionStatus::Unverified.as_str(),
    ];
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::id.eq(id))
            .filter(ip::lease_token.eq(token))
            .filter(ip::status.eq_any(completable))
    )
    .set((
        ip::status.eq(status.as_str()),
        ip::total_hits.eq(Some(done.total_hits)),
        ip::received.eq(Some(done.received)),
        ip::verified_at.eq(done.verified.then_some(now)),
        ip::last_error.eq(None::<String>),
        ip::lease_expires_at.eq(None::<NaiveDateTime>),
        ip::is_final.eq(done.is_final),
        ip::fetched_at.eq(Some(now)),
        ip::is_settled.eq(done.verified && done.settled),
        ip::updated_at.eq(now),
    ))
    .execute(c))?;
    Ok(n == 1)
}

/// Checks (and touches) a lease inside a write transaction; on MySQL the update also locks
/// the partition row until commit, so no lease can be taken over mid-batch.
pub fn fence_lease(
    conn: &mut Connection,
    id: i64,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::id.eq(id))
            .filter(ip::lease_token.eq(token))
    )
    .set(ip::updated_at.eq(db_time(now)))
    .execute(c))?;
    Ok(n == 1)
}

/// Replaces partition `id` by `children` (each `[from, to)` inside it): the parent becomes
/// `split` (lease cleared), the children `pending`. Returns the children's rows. Fenced by the
/// lease token `token` and status `running`: [`StorageError::LeaseLost`] (nothing changed)
/// when the caller no longer holds the parent.
pub fn split_partition(
    conn: &mut Connection,
    id: i64,
    token: &str,
    children: &[(DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<PartitionRow>, StorageError> {
    conn.transaction(|conn| {
        let parent =
            get_partition(conn, id)?.ok_or(StorageError::NoSuchPartition { partition_id: id })?;
        for (a, b) in children {
            if *a < parent.range_start || *b > parent.range_end || a >= b {
                return Err(StorageError::InvalidData(format!(
                    "child {a}/{b} does not lie inside partition {id} ({}/{})",
                    parent.range_start, parent.range_end
                )));
            }
        }
        let db_now = db_time(now);
        let n = dispatch!(&mut *conn, |c| diesel::update(
            ip::table
                .filter(ip::id.eq(id))
                .filter(ip::lease_token.eq(token))
                .filter(ip::status.eq(PartitionStatus::Running.as_str()))
        )
        .set(lease_ended(PartitionStatus::Split, db_now))
        .execute(c))?;
        if n != 1 {
            return Err(StorageError::LeaseLost { partition_id: id });
        }
        let wanted: Vec<NewPartition> = children
            .iter()
            .map(|(a, b)| NewPartition {
                dataset: parent.dataset,
                range_start: *a,
                range_end: *b,
            })
            .collect();
        plan_partitions(conn, &wanted, now)
    })
}
