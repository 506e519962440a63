//! The Writer's checkpoint messages: partitions, leases, runs (the [`Writer`] actor is in
//! [`super::writer`], which re-exports these; one actor, its messages split over two files).
//!
//! Each applies after the pages sent before it: the Writer writes its buffered pages first,
//! and, with several connections ([`crate::storage::lanes`]), waits until the lanes concerned
//! have written theirs (every lane, or only the partition's for a message about one
//! partition).

use std::time::Duration;

use actix::{Handler, Message, MessageResult};
use chrono::{DateTime, Utc};

use super::writer::{process_alive, Writer};
use super::writer_lanes::Barrier;
use crate::storage::checkpoint::{self, Dataset, LeaseAnswer, NewPartition, PartitionRow};
use crate::storage::upstream::{record_run_changes, RunChanges};
use crate::storage::StorageError;

/// Creates the partitions that do not exist (as pending); returns all of them.
#[derive(Debug, Clone)]
pub struct PlanPartitions(pub Vec<NewPartition>);
impl Message for PlanPartitions {
    type Result = Result<Vec<PartitionRow>, StorageError>;
}

/// Partitions of `datasets` overlapping `[from, to)`, except split ones.
#[derive(Debug, Clone)]
pub struct LoadPartitions {
    pub datasets: Vec<Dataset>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}
impl Message for LoadPartitions {
    type Result = Result<Vec<PartitionRow>, StorageError>;
}

/// Gives back running partitions leased by processes of this host that no longer exist
/// (`this_host` is the owner prefix `sluice@HOST:`); returns how many.
#[derive(Debug, Clone)]
pub struct ReclaimDeadLeases {
    pub this_host: String,
}
impl Message for ReclaimDeadLeases {
    type Result = Result<usize, StorageError>;
}

/// Leases a partition (pending, unverified, failed, or running with an expired lease); the
/// answer says why not when it is not available (held elsewhere until when, or finished).
#[derive(Debug, Clone)]
pub struct LeasePartition {
    pub id: i64,
    pub owner: String,
    pub lease_for: Duration,
}
impl Message for LeasePartition {
    type Result = Result<LeaseAnswer, StorageError>;
}

/// Extends a held lease; false when it was lost.
#[derive(Debug, Clone)]
pub struct RenewLease {
    pub id: i64,
    pub token: String,
    pub lease_for: Duration,
}
impl Message for RenewLease {
    type Result = Result<bool, StorageError>;
}

/// Gives a running partition back (pending again), e.g. on graceful shutdown.
#[derive(Debug, Clone)]
pub struct ReleasePartition {
    pub id: i64,
    pub token: String,
}
impl Message for ReleasePartition {
    type Result = Result<(), StorageError>;
}

/// Marks a partition failed with its error message (`last_error`).
#[derive(Debug, Clone)]
pub struct FailPartition {
    pub id: i64,
    pub token: String,
    pub error: String,
}
impl Message for FailPartition {
    type Result = Result<(), StorageError>;
}

/// Replaces a partition by smaller children (parent `split`, children `pending`); fenced by
/// the parent's lease token.
#[derive(Debug, Clone)]
pub struct SplitPartition {
    pub id: i64,
    pub token: String,
    pub children: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}
impl Message for SplitPartition {
    type Result = Result<Vec<PartitionRow>, StorageError>;
}

/// Done/unverified, non-final partitions overlapping `[from, to)` back to pending.
#[derive(Debug, Clone)]
pub struct ReopenPartitions {
    pub dataset: Dataset,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}
impl Message for ReopenPartitions {
    type Result = Result<usize, StorageError>;
}

/// Done, unsettled partitions back to pending for their settle re-fetch.
#[derive(Debug, Clone)]
pub struct ReopenForSettle(pub Vec<i64>);
impl Message for ReopenForSettle {
    type Result = Result<usize, StorageError>;
}

/// `sluice resync`: every done/unverified/failed partition overlapping `[from, to)` back to
/// pending.
#[derive(Debug, Clone)]
pub struct ReopenForResync {
    pub datasets: Vec<Dataset>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}
impl Message for ReopenForResync {
    type Result = Result<usize, StorageError>;
}

/// Stored non-final conversations that started before `before`: `(id, start)`.
#[derive(Debug, Clone)]
pub struct NonFinalConversations {
    pub before: DateTime<Utc>,
}
impl Message for NonFinalConversations {
    type Result = Result<Vec<(String, DateTime<Utc>)>, StorageError>;
}

/// Partitions waiting for a fetcher, whoever planned them (pending, or running under an
/// expired lease): the active service fetches them too.
#[derive(Debug, Clone)]
pub struct WaitingPartitions {
    pub datasets: Vec<Dataset>,
}
impl Message for WaitingPartitions {
    type Result = Result<Vec<PartitionRow>, StorageError>;
}

/// A standby backfill hands its range to the active instance (unverified/failed → pending).
#[derive(Debug, Clone)]
pub struct HandOverRange {
    pub datasets: Vec<Dataset>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}
impl Message for HandOverRange {
    type Result = Result<usize, StorageError>;
}

/// Opens an `ingest_runs` row; returns its id.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// `backfill`, `run`, `demo`, ...
    pub command: String,
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
}
impl Message for StartRun {
    type Result = Result<i64, StorageError>;
}

/// Closes an `ingest_runs` row with the run's totals.
#[derive(Debug, Clone)]
pub struct EndRun {
    pub id: i64,
    pub requests: i64,
    pub rate_limited: i64,
    pub rows_written: i64,
}
impl Message for EndRun {
    type Result = Result<(), StorageError>;
}

/// Checkpoint messages: flush first (so they apply after the pages sent before them), then
/// run with retries. `forget`: the message ends the partition's lease, so the ledger of the
/// lane writing it drops it; only that lane needs to have written its pages first.
macro_rules! checkpoint_handler {
    ($msg:ty, $ret:ty, forget, |$core:ident, $m:ident, $conn:ident, $now:ident| $body:expr) => {
        impl Handler<$msg> for Writer {
            type Result = Result<$ret, StorageError>;
            fn handle(&mut self, $m: $msg, _: &mut Self::Context) -> Self::Result {
                self.barrier(Barrier::Partition($m.id));
                self.forget_partition($m.id);
                let $core = &mut self.core;
                $core.with_retry(|$conn, $now| $body)
            }
        }
    };
    ($msg:ty, $ret:ty, |$core:ident, $m:ident, $conn:ident, $now:ident| $body:expr) => {
        impl Handler<$msg> for Writer {
            type Result = Result<$ret, StorageError>;
            fn handle(&mut self, $m: $msg, _: &mut Self::Context) -> Self::Result {
                self.barrier(Barrier::All);
                let $core = &mut self.core;
                $core.with_retry(|$conn, $now| $body)
            }
        }
    };
}

checkpoint_handler!(PlanPartitions, Vec<PartitionRow>, |core, m, c, now| {
    checkpoint::plan_partitions(c, &m.0, now)
});
checkpoint_handler!(LoadPartitions, Vec<PartitionRow>, |core, m, c, _now| {
    checkpoint::load_partitions(c, &m.datasets, m.from, m.to)
});
checkpoint_handler!(ReclaimDeadLeases, usize, |core, m, c, now| {
    checkpoint::reclaim_dead_leases(c, &m.this_host, process_alive, now)
});
impl Handler<LeasePartition> for Writer {
    type Result = Result<LeaseAnswer, StorageError>;
    fn handle(&mut self, m: LeasePartition, _: &mut Self::Context) -> Self::Result {
        self.barrier(Barrier::Partition(m.id));
        let answer = self.core.with_retry(|c, now| {
            checkpoint::try_lease_partition(c, m.id, &m.owner, m.lease_for, now)
        })?;
        if let LeaseAnswer::Leased { token } = &answer {
            let at = self.core.now();
            self.leased(m.id, token, at);
        }
        Ok(answer)
    }
}
/// A renewal only extends the lease: it need not wait for the other lanes' pages (the pages
/// are fenced by the same token either way).
impl Handler<RenewLease> for Writer {
    type Result = Result<bool, StorageError>;
    fn handle(&mut self, m: RenewLease, _: &mut Self::Context) -> Self::Result {
        self.flush();
        self.core
            .with_retry(|c, now| checkpoint::renew_lease(c, m.id, &m.token, m.lease_for, now))
    }
}
checkpoint_handler!(ReleasePartition, (), forget, |core, m, c, now| {
    checkpoint::release_partition(c, m.id, &m.token, now).map(|_| ())
});
checkpoint_handler!(FailPartition, (), forget, |core, m, c, now| {
    checkpoint::fail_partition(c, m.id, &m.token, &m.error, now).map(|_| ())
});
checkpoint_handler!(
    SplitPartition,
    Vec<PartitionRow>,
    forget,
    |core, m, c, now| { checkpoint::split_partition(c, m.id, &m.token, &m.children, now) }
);
checkpoint_handler!(ReopenPartitions, usize, |core, m, c, now| {
    checkpoint::reopen_partitions(c, m.dataset, m.from, m.to, now)
});
checkpoint_handler!(ReopenForSettle, usize, |core, m, c, now| {
    checkpoint::reopen_for_settle(c, &m.0, now)
});
checkpoint_handler!(ReopenForResync, usize, |core, m, c, now| {
    checkpoint::reopen_for_resync(c, &m.datasets, m.from, m.to, now)
});
checkpoint_handler!(
    NonFinalConversations,
    Vec<(String, DateTime<Utc>)>,
    |core, m, c, _now| checkpoint::non_final_conversations(c, m.before)
);
checkpoint_handler!(WaitingPartitions, Vec<PartitionRow>, |core, m, c, now| {
    crate::storage::instances::waiting_partitions(c, &m.datasets, now)
});
checkpoint_handler!(HandOverRange, usize, |core, m, c, now| {
    crate::storage::instances::hand_over_range(c, &m.datasets, m.from, m.to, now)
});
impl Handler<StartRun> for Writer {
    type Result = Result<i64, StorageError>;
    fn handle(&mut self, m: StartRun, _: &mut Self::Context) -> Self::Result {
        self.barrier(Barrier::All);
        self.run_base = self.stats();
        self.core
            .with_retry(|c, now| checkpoint::start_run(c, &m.command, m.range, now))
    }
}

/// Closes the row, with the upstream changes the Writer counted since [`StartRun`].
impl Handler<EndRun> for Writer {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, m: EndRun, _: &mut Self::Context) -> Self::Result {
        self.barrier(Barrier::All);
        let changes = self.stats().changes_since(&self.run_base);
        self.core.with_retry(|c, now| {
            checkpoint::end_run(c, m.id, m.requests, m.rate_limited, m.rows_written, now)?;
            record_run_changes(c, m.id, changes)
        })
    }
}

/// The upstream changes counted since the last [`StartRun`] (for the run summary).
#[derive(Debug, Clone, Copy)]
pub struct RunChangesSoFar;
impl Message for RunChangesSoFar {
    type Result = RunChanges;
}

impl Handler<RunChangesSoFar> for Writer {
    type Result = MessageResult<RunChangesSoFar>;
    fn handle(&mut self, _: RunChangesSoFar, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats().changes_since(&self.run_base))
    }
}
