//! Several instances, one org: the leader lease and the hand-overs between instances.
//!
//! The org's analytics budget (requests per minute, concurrent requests) belongs to the OAuth
//! client, not to a process. So that any number of instances sharing one client id and one
//! database spend it once, only one of them fetches: the holder of the client's row in
//! `instance_leases`. It renews the lease every third of `lease_secs`; the others stand by and
//! poll it, and the first to find it expired (holder killed, host lost, database link cut for
//! longer than the lease) takes it over. A new leader gives back the partitions the old one
//! still held ([`reclaim_foreign_leases`]): their tokens are cleared, so a late write of the
//! old leader is refused by the partition fences (see [`checkpoint`](super::checkpoint)).
//!
//! Every instance also keeps a heartbeat row in `instances` (role active / standby), which
//! `sluice status` shows.
//!
//! Times are the instances' own clocks: hosts must keep them in step (NTP); a skew eats into
//! the lease, it never lets two holders overlap by more than the skew.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl};

use super::checkpoint::{self, lease_ended, Dataset, PartitionRow, PartitionStatus};
use super::connection::{Connection, StorageError};
use super::models::{db_time, utc};
use super::schema::{ingest_partitions as ip, instance_leases as il, instances as inst};
use crate::dispatch;

/// What an instance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds the client's leader lease: fetches.
    Active,
    /// Another instance holds it: waits to take over (and, for a backfill, follows progress).
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What claiming (or renewing) the leader lease answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderAnswer {
    /// The caller holds the lease until `now + lease_for`.
    Held,
    /// `holder` holds it until `until`.
    HeldElsewhere {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// Takes the leader lease of `client_key` for `holder` (fenced by `token`) when it is free,
/// expired or already the caller's; renews it in the last case.
pub fn claim_leader(
    conn: &mut Connection,
    client_key: &str,
    holder: &str,
    token: &str,
    lease_for: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<LeaderAnswer, StorageError> {
    let expires = db_time(now + chrono::Duration::from_std(lease_for).unwrap_or_default());
    let db_now = db_time(now);
    let inserted = dispatch!(&mut *conn, |c| diesel::insert_or_ignore_into(il::table)
        .values((
            il::client_key.eq(client_key),
            il::holder.eq(holder),
            il::token.eq(token),
            il::expires_at.eq(expires),
            il::updated_at.eq(db_now),
        ))
        .execute(c))?;
    if inserted == 1 {
        return Ok(LeaderAnswer::Held);
    }
    // Free when expired; the caller's own when its token matches, or when it names the same
    // instance (`sluice@HOST:PID`: a restarted container, or engines inside one process).
    let mine_or_free = il::token
        .eq(token)
        .or(il::holder.eq(holder))
        .or(il::expires_at.le(db_now));
    let n = dispatch!(&mut *conn, |c| diesel::update(
        il::table
            .filter(il::client_key.eq(client_key))
            .filter(mine_or_free)
    )
    .set((
        il::holder.eq(holder),
        il::token.eq(token),
        il::expires_at.eq(expires),
        il::updated_at.eq(db_now),
    ))
    .execute(c))?;
    if n == 1 {
        return Ok(LeaderAnswer::Held);
    }
    Ok(match leader(conn, client_key)? {
        Some((holder, until)) => LeaderAnswer::HeldElsewhere { holder, until },
        // Deleted between the statements (by hand): free, ask again.
        None => LeaderAnswer::HeldElsewhere {
            holder: String::new(),
            until: now,
        },
    })
}

/// Takes the leader lease of `client_key` over from `dead_holder`, a process of this host that
/// no longer exists (kill -9, crash): the restarted instance need not wait for the lease to
/// expire. False when someone else changed the row meanwhile.
pub fn take_over_leader(
    conn: &mut Connection,
    client_key: &str,
    dead_holder: &str,
    holder: &str,
    token: &str,
    lease_for: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let expires = db_time(now + chrono::Duration::from_std(lease_for).unwrap_or_default());
    let n = dispatch!(conn, |c| diesel::update(
        il::table
            .filter(il::client_key.eq(client_key))
            .filter(il::holder.eq(dead_holder))
    )
    .set((
        il::holder.eq(holder),
        il::token.eq(token),
        il::expires_at.eq(expires),
        il::updated_at.eq(db_time(now)),
    ))
    .execute(c))?;
    Ok(n == 1)
}

/// Gives the leader lease up (graceful stop) if `token` still holds it: a standby takes over
/// at its next poll instead of after `lease_secs`.
pub fn release_leader(
    conn: &mut Connection,
    client_key: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let n = dispatch!(conn, |c| diesel::delete(
        il::table
            .filter(il::client_key.eq(client_key))
            .filter(il::token.eq(token))
    )
    .execute(c))?;
    let _ = now;
    Ok(n == 1)
}

/// Who holds the leader lease of `client_key`, and until when (possibly past).
pub fn leader(
    conn: &mut Connection,
    client_key: &str,
) -> Result<Option<(String, DateTime<Utc>)>, StorageError> {
    let r: Option<(String, NaiveDateTime)> = dispatch!(conn, |c| il::table
        .filter(il::client_key.eq(client_key))
        .select((il::holder, il::expires_at))
        .first(c)
        .optional())?;
    Ok(r.map(|(h, t)| (h, utc(t))))
}

/// An instance as its heartbeat row shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub instance: String,
    pub client_key: String,
    pub command: String,
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Records that `instance` is alive in `role` (inserted on first call, updated after).
pub fn heartbeat(
    conn: &mut Connection,
    instance: &str,
    client_key: &str,
    command: &str,
    role: Role,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let db_now = db_time(now);
    let n = dispatch!(&mut *conn, |c| diesel::update(
        inst::table.filter(inst::instance.eq(instance))
    )
    .set((inst::role.eq(role.as_str()), inst::seen_at.eq(db_now)))
    .execute(c))?;
    if n == 0 {
        dispatch!(&mut *conn, |c| diesel::insert_or_ignore_into(inst::table)
            .values((
                inst::instance.eq(instance),
                inst::client_key.eq(client_key),
                inst::command.eq(command),
                inst::role.eq(role.as_str()),
                inst::started_at.eq(db_time(started_at)),
                inst::seen_at.eq(db_now),
            ))
            .execute(c))?;
    }
    Ok(())
}

/// Removes an instance's heartbeat row (it stopped).
pub fn forget_instance(conn: &mut Connection, instance: &str) -> Result<(), StorageError> {
    dispatch!(conn, |c| diesel::delete(
        inst::table.filter(inst::instance.eq(instance))
    )
    .execute(c))?;
    Ok(())
}

/// Instances seen at or after `since`, oldest start first.
pub fn live_instances(
    conn: &mut Connection,
    since: DateTime<Utc>,
) -> Result<Vec<InstanceRow>, StorageError> {
    type Rec = (String, String, String, String, NaiveDateTime, NaiveDateTime);
    let v: Vec<Rec> = dispatch!(conn, |c| inst::table
        .filter(inst::seen_at.ge(db_time(since)))
        .order((inst::started_at.asc(), inst::instance.asc()))
        .select((
            inst::instance,
            inst::client_key,
            inst::command,
            inst::role,
            inst::started_at,
            inst::seen_at
        ))
        .load(c))?;
    Ok(v.into_iter()
        .map(|(instance, client_key, command, role, s, t)| InstanceRow {
            instance,
            client_key,
            command,
            role,
            started_at: utc(s),
            seen_at: utc(t),
        })
        .collect())
}

/// A new leader gives back every `running` partition whose lease another owner holds: only
/// the leader fetches, so they belong to a leader that is gone (or lost its lease and will
/// find its writes refused). Returns how many were given back.
pub fn reclaim_foreign_leases(
    conn: &mut Connection,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let held: Vec<(i64, Option<String>, Option<String>)> = dispatch!(&mut *conn, |c| ip::table
        .filter(ip::status.eq(PartitionStatus::Running.as_str()))
        .select((ip::id, ip::lease_owner, ip::lease_token))
        .load(c))?;
    let mut reclaimed = 0;
    for (id, holder, token) in held {
        if holder.as_deref() == Some(owner) {
            continue;
        }
        let Some(token) = token else { continue };
        if checkpoint::release_partition(conn, id, &token, now)? {
            reclaimed += 1;
        }
    }
    Ok(reclaimed)
}

/// Partitions of `datasets` waiting for a fetcher, whoever planned them: `pending`, or
/// `running` under an expired lease. The active service fetches them too, so that a backfill
/// started beside it (which plans its range and follows) completes.
pub fn waiting_partitions(
    conn: &mut Connection,
    datasets: &[Dataset],
    now: DateTime<Utc>,
) -> Result<Vec<PartitionRow>, StorageError> {
    let names: Vec<&str> = datasets.iter().map(|d| d.as_str()).collect();
    let db_now = db_time(now);
    let ids: Vec<i64> = dispatch!(&mut *conn, |c| ip::table
        .filter(ip::dataset.eq_any(&names))
        .filter(
            ip::status
                .eq(PartitionStatus::Pending.as_str())
                .or(ip::status
                    .eq(PartitionStatus::Running.as_str())
                    .and(ip::lease_expires_at.le(db_now)))
        )
        .order(ip::range_start.asc())
        .select(ip::id)
        .load(c))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = checkpoint::get_partition(conn, id)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// A standby backfill hands its range to the active instance: its `unverified` and `failed`
/// partitions (which a backfill retries) become `pending` again, so the leader fetches them.
/// Returns how many.
pub fn hand_over_range(
    conn: &mut Connection,
    datasets: &[Dataset],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let names: Vec<&str> = datasets.iter().map(|d| d.as_str()).collect();
    let retry = [
        PartitionStatus::Unverified.as_str(),
        PartitionStatus::Failed.as_str(),
    ];
    let n = dispatch!(conn, |c| diesel::update(
        ip::table
            .filter(ip::dataset.eq_any(&names))
            .filter(ip::range_start.lt(db_time(to)))
            .filter(ip::range_end.gt(db_time(from)))
            .filter(ip::status.eq_any(retry))
    )
    .set(lease_ended(PartitionStatus::Pending, db_time(now)))
    .execute(c))?;
    Ok(n)
}
