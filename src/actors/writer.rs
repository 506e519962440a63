//! The Writer: the only actor that writes to the database.
//!
//! A `SyncActor` on its own thread (`SyncArbiter::start(1, ..)`): blocking diesel calls never
//! stall an async arbiter, and SQLite gets its single writer. The work is done by
//! [`BatchWriter`](crate::storage::write::BatchWriter) (plain struct, tested directly); this
//! file is the actor shell and its messages.
//!
//! **Batching (group commit).** [`WritePage`] messages are buffered and written together in
//! one transaction. When a page arrives at an empty buffer, the Writer posts a `Drain` marker to
//! the end of its own mailbox; when the marker comes up, every page that was queued behind the
//! first one has been buffered, and the batch is written. So a batch holds whatever arrived
//! while the previous one was being written: one page per transaction when the load is light
//! (lowest latency), large batches when fetchers outpace the database (highest throughput). A
//! batch is also cut when it reaches `batch_max_conversations` conversations or
//! `batch_max_rows` rows, on [`Flush`], before any checkpoint message (so messages take effect
//! in the order they were sent), and when the actor stops. `batch_max_age_ms` bounds how long
//! a page may wait in any case: [`start_writer_with`] runs a small ticker on the caller's arbiter
//! that sends an internal `FlushDue` every half of it (a SyncActor has no timers).
//!
//! **Replies after commit, and back-pressure.** The reply to a `WritePage` is sent only once the
//! transaction holding the page's rows — and its partition's completion, if it carries one —
//! has committed (or with the error that stopped it). A fetcher that awaits its replies and keeps
//! at most `K` pages outstanding therefore bounds the Writer's memory to
//! `fetchers × K × page size` plus one batch: nothing piles up however fast the API answers.
//! (The engine's fetchers keep `max_outstanding_pages`, default 2, so with 8 fetchers and pages
//! of 1,000 conversations at most 16,000 conversations are in flight.)
//! The actix mailbox in front of a SyncArbiter is unbounded, so this bound comes from the
//! callers awaiting replies; `WriterStats.queue_depth` shows the buffered pages.
//!
//! **Errors.** Transient database errors are retried inside the batch with backoff and a fresh
//! connection (`retry_max_attempts`, then the pages are answered with
//! `StorageError::Unavailable`). A permanent error fails only the partition of the page that
//! caused it (`status = failed`, `last_error`); the other pages of the batch are written. A page
//! whose lease was lost is answered with `StorageError::LeaseLost` and not written.
//!
//! **Shutdown.** Send [`Flush`] and await it before stopping the System; the actor also
//! flushes in `stopped` when its mailbox closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, Addr, Handler, Message, MessageResult, SyncArbiter, SyncContext};
use chrono::{DateTime, Utc};

use crate::storage::checkpoint::{self, Dataset, LeaseAnswer, NewPartition, PartitionRow};
use crate::storage::upstream::record_run_changes;
pub use crate::storage::upstream::RunChanges;
use crate::storage::write::BatchWriter;
pub use crate::storage::write::{
    ConversationRecord, PageRecords, PageWrite, PartitionCompletion, WriteCounters, WriterConfig,
    WriterSettings,
};
use crate::storage::{run_migrations, DatabaseUrl, StorageError};

type Reply = Result<(), StorageError>;

/// Writes a page; answered after the page's transaction commits.
#[derive(Debug, Clone)]
pub struct WritePage {
    /// The partition the page belongs to (`<= 0`: none; written unfenced, no completion).
    pub partition_id: i64,
    /// The lease under which it was fetched; the page is refused if the lease was lost.
    pub lease_token: String,
    pub page: PageRecords,
    /// On the partition's last page: marks it done/unverified in the same transaction.
    pub completion: Option<PartitionCompletion>,
}

impl Message for WritePage {
    type Result = Reply;
}

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

/// Writes every buffered page now; answered after they are committed.
#[derive(Debug, Clone, Copy)]
pub struct Flush;
impl Message for Flush {
    type Result = Result<(), StorageError>;
}

/// The Writer's counters.
#[derive(Debug, Clone, Copy)]
pub struct WriterStats;
impl Message for WriterStats {
    type Result = WriterStatsSnapshot;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStatsSnapshot {
    /// Pages buffered, waiting for their batch.
    pub queue_depth: usize,
    pub buffered_rows: usize,
    pub batches: u64,
    pub rows_written: u64,
    pub conversations_written: u64,
    pub completions: u64,
    pub last_batch_ms: u64,
    pub reconnects: u64,
    pub transient_errors: u64,
    pub failed_pages: u64,
    /// Re-fetched conversations whose content had changed (replaced with their children).
    pub conversations_changed: u64,
    /// Re-fetched conversations found unchanged (not rewritten).
    pub conversations_unchanged: u64,
    /// Re-fetched presence and routing-status records found unchanged (not rewritten).
    pub user_records_unchanged: u64,
    /// Conversations deleted because their verified block no longer holds them upstream.
    pub conversations_deleted: u64,
    /// Presence and routing-status records deleted the same way.
    pub user_records_deleted: u64,
    /// Completions refused because a page of their lease was not written.
    pub refused_completions: u64,
}

impl WriterStatsSnapshot {
    /// The upstream changes counted since `base` (e.g. the snapshot at the run's start).
    pub fn changes_since(&self, base: &WriterStatsSnapshot) -> RunChanges {
        let d = |a: u64, b: u64| a.saturating_sub(b) as i64;
        RunChanges {
            conversations_changed: d(self.conversations_changed, base.conversations_changed),
            conversations_deleted: d(self.conversations_deleted, base.conversations_deleted),
            user_records_deleted: d(self.user_records_deleted, base.user_records_deleted),
        }
    }
}

/// Internal: posted by the Writer to the end of its own mailbox when a batch starts; writes the
/// batch when it comes up (every page queued before it is then buffered).
#[derive(Debug, Clone, Copy)]
pub struct Drain;
impl Message for Drain {
    type Result = ();
}

/// Internal: sent by the ticker; flushes when the oldest buffered page is old enough.
#[derive(Debug, Clone, Copy)]
pub struct FlushDue;
impl Message for FlushDue {
    type Result = ();
}

// --- deferred replies -----------------------------------------------------------------------

enum SlotState {
    Empty,
    Waiting(OneshotSender<Reply>),
    Done(Reply),
    Sent,
}

/// Meeting point of a buffered page's result and the caller's reply channel: whichever
/// arrives second sends the reply.
#[derive(Clone)]
struct Slot(Arc<Mutex<SlotState>>);

impl Slot {
    fn new() -> Self {
        Slot(Arc::new(Mutex::new(SlotState::Empty)))
    }

    fn resolve(&self, r: Reply) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *s, SlotState::Sent) {
            SlotState::Waiting(tx) => {
                let _ = tx.send(r);
            }
            SlotState::Empty => *s = SlotState::Done(r),
            other => *s = other,
        }
    }

    fn attach(&self, tx: Option<OneshotSender<Reply>>) {
        let Some(tx) = tx else { return };
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *s, SlotState::Sent) {
            SlotState::Done(r) => {
                let _ = tx.send(r);
            }
            SlotState::Empty => *s = SlotState::Waiting(tx),
            other => *s = other,
        }
    }
}

/// The reply to a [`WritePage`], sent when its batch commits.
pub struct DeferredReply(Slot);

impl MessageResponse<Writer, WritePage> for DeferredReply {
    fn handle(self, _: &mut SyncContext<Writer>, tx: Option<OneshotSender<Reply>>) {
        self.0.attach(tx);
    }
}

// --- the actor ------------------------------------------------------------------------------

struct Buffered {
    page: PageWrite,
    reply: Slot,
}

/// The Writer actor (see the module doc).
pub struct Writer {
    core: BatchWriter,
    settings: WriterSettings,
    buffer: Vec<Buffered>,
    buffered_rows: usize,
    buffered_conversations: usize,
    oldest: Option<Instant>,
    tick_pending: Arc<AtomicBool>,
    drain_pending: bool,
    /// The counters when the current `ingest_runs` row was opened.
    run_base: WriterStatsSnapshot,
}

impl Writer {
    pub fn new(url: DatabaseUrl, config: WriterConfig) -> Self {
        Writer {
            settings: config.settings.clone(),
            core: BatchWriter::new(url, config),
            buffer: Vec::new(),
            buffered_rows: 0,
            buffered_conversations: 0,
            oldest: None,
            tick_pending: Arc::new(AtomicBool::new(false)),
            drain_pending: false,
            run_base: WriterStatsSnapshot::default(),
        }
    }

    /// Whether the buffer must be written now.
    pub fn flush_due(&self, now: Instant) -> bool {
        match self.oldest {
            None => false,
            Some(t) => {
                self.buffered_conversations >= self.settings.batch_max_conversations
                    || self.buffered_rows >= self.settings.batch_max_rows
                    || now.duration_since(t) >= self.settings.batch_max_age()
            }
        }
    }

    /// Writes the buffer as one batch and answers every page.
    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let buffered = std::mem::take(&mut self.buffer);
        self.buffered_rows = 0;
        self.buffered_conversations = 0;
        self.oldest = None;
        let pages: Vec<&PageWrite> = buffered.iter().map(|b| &b.page).collect();
        let results = self.core.write_pages(&pages);
        for (b, r) in buffered.iter().zip(results) {
            b.reply.resolve(r);
        }
    }

    fn stats(&self) -> WriterStatsSnapshot {
        let c = self.core.counters();
        WriterStatsSnapshot {
            queue_depth: self.buffer.len(),
            buffered_rows: self.buffered_rows,
            batches: c.batches,
            rows_written: c.rows_written,
            conversations_written: c.conversations_written,
            completions: c.completions,
            last_batch_ms: c.last_batch_ms,
            reconnects: c.reconnects,
            transient_errors: c.transient_errors,
            failed_pages: c.failed_pages,
            conversations_changed: c.conversations_changed,
            conversations_unchanged: c.conversations_unchanged,
            user_records_unchanged: c.user_records_unchanged,
            conversations_deleted: c.conversations_deleted,
            user_records_deleted: c.user_records_deleted,
            refused_completions: c.refused_completions,
        }
    }
}

impl Actor for Writer {
    type Context = SyncContext<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.flush();
    }
}

impl Handler<WritePage> for Writer {
    type Result = DeferredReply;

    fn handle(&mut self, msg: WritePage, ctx: &mut Self::Context) -> DeferredReply {
        let slot = Slot::new();
        if msg.completion.is_some() && msg.partition_id <= 0 {
            slot.resolve(Err(StorageError::InvalidData(
                "a completion needs a partition id".into(),
            )));
            return DeferredReply(slot);
        }
        self.buffered_rows += msg.page.row_count();
        self.buffered_conversations += msg.page.conversation_count();
        self.oldest.get_or_insert_with(Instant::now);
        self.buffer.push(Buffered {
            page: PageWrite {
                partition_id: msg.partition_id,
                lease_token: msg.lease_token,
                page: msg.page,
                completion: msg.completion,
            },
            reply: slot.clone(),
        });
        if self.flush_due(Instant::now()) {
            self.flush();
        } else if self.settings.group_commit && !self.drain_pending {
            self.drain_pending = true;
            ctx.address().do_send(Drain);
        }
        DeferredReply(slot)
    }
}

impl Handler<Drain> for Writer {
    type Result = ();
    fn handle(&mut self, _: Drain, _: &mut Self::Context) {
        self.drain_pending = false;
        self.flush();
    }
}

impl Handler<FlushDue> for Writer {
    type Result = ();
    fn handle(&mut self, _: FlushDue, _: &mut Self::Context) {
        self.tick_pending.store(false, Ordering::Release);
        if self.flush_due(Instant::now()) {
            self.flush();
        }
    }
}

impl Handler<Flush> for Writer {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        self.flush();
        Ok(())
    }
}

impl Handler<WriterStats> for Writer {
    type Result = MessageResult<WriterStats>;
    fn handle(&mut self, _: WriterStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

/// Checkpoint messages: flush first (so they apply after the pages sent before them), then
/// run with retries. `forget`: the message ends the partition's lease, so the Writer's ledger
/// drops it.
macro_rules! checkpoint_handler {
    ($msg:ty, $ret:ty, forget, |$core:ident, $m:ident, $conn:ident, $now:ident| $body:expr) => {
        impl Handler<$msg> for Writer {
            type Result = Result<$ret, StorageError>;
            fn handle(&mut self, $m: $msg, _: &mut Self::Context) -> Self::Result {
                self.flush();
                self.core.forget_partition($m.id);
                let $core = &mut self.core;
                $core.with_retry(|$conn, $now| $body)
            }
        }
    };
    ($msg:ty, $ret:ty, |$core:ident, $m:ident, $conn:ident, $now:ident| $body:expr) => {
        impl Handler<$msg> for Writer {
            type Result = Result<$ret, StorageError>;
            fn handle(&mut self, $m: $msg, _: &mut Self::Context) -> Self::Result {
                self.flush();
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
        self.flush();
        let answer = self.core.with_retry(|c, now| {
            checkpoint::try_lease_partition(c, m.id, &m.owner, m.lease_for, now)
        })?;
        if let LeaseAnswer::Leased { token } = &answer {
            self.core.leased(m.id, token);
        }
        Ok(answer)
    }
}
checkpoint_handler!(RenewLease, bool, |core, m, c, now| {
    checkpoint::renew_lease(c, m.id, &m.token, m.lease_for, now)
});
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
        self.flush();
        self.run_base = self.stats();
        self.core
            .with_retry(|c, now| checkpoint::start_run(c, &m.command, m.range, now))
    }
}

/// Closes the row, with the upstream changes the Writer counted since [`StartRun`].
impl Handler<EndRun> for Writer {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, m: EndRun, _: &mut Self::Context) -> Self::Result {
        self.flush();
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

/// Connects once and runs the migrations (on a plain thread: the MySQL driver starts its own
/// runtime), then starts the Writer with `config`'s settings, clock and hooks. Call inside a
/// running actix System.
pub fn start_writer_with(
    url: DatabaseUrl,
    config: WriterConfig,
) -> Result<Addr<Writer>, StorageError> {
    prepare_database(&url, &config)?;
    let max_age = config.settings.batch_max_age();
    let tick_pending = Arc::new(AtomicBool::new(false));
    let tp = tick_pending.clone();
    let addr = SyncArbiter::start(1, move || {
        let mut w = Writer::new(url.clone(), config.clone());
        w.tick_pending = tp.clone();
        w
    });
    // A weak address: the ticker must not keep the Writer alive.
    let ticker = addr.downgrade();
    let period = (max_age / 2).max(Duration::from_millis(5));
    actix_rt::spawn(async move {
        let mut iv = actix_rt::time::interval(period);
        loop {
            iv.tick().await;
            let Some(writer) = ticker.upgrade() else {
                break;
            };
            if !tick_pending.swap(true, Ordering::AcqRel) {
                writer.do_send(FlushDue);
            }
        }
    });
    Ok(addr)
}

/// Connects and applies pending migrations from a plain thread, retrying transient errors
/// (a database still starting) like the Writer does.
pub fn prepare_database(url: &DatabaseUrl, config: &WriterConfig) -> Result<(), StorageError> {
    let (url, config) = (url.clone(), config.clone());
    std::thread::spawn(move || -> Result<(), StorageError> {
        let mut w = BatchWriter::new(url, config);
        w.with_retry(|c, _| run_migrations(c).map(|_| ()))
    })
    .join()
    .map_err(|_| StorageError::Migration("the migration thread panicked".into()))?
}

/// Whether process `pid` exists on this host (signal 0 probes without signalling). Our own pid
/// counts as dead: a lease under it was taken by an earlier process that had the same pid.
pub(crate) fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: usize) -> Buffered {
        let json = r#"{"conversationId":"c","conversationStart":"2024-03-01T08:00:00Z"}"#;
        let rec = ConversationRecord {
            received: serde_json::from_str(json).unwrap(),
            is_final: true,
        };
        Buffered {
            page: PageWrite {
                partition_id: 0,
                lease_token: String::new(),
                page: PageRecords::Conversations(vec![rec; n]),
                completion: None,
            },
            reply: Slot::new(),
        }
    }

    #[test]
    fn a_batch_is_due_by_size_or_age() {
        let settings = WriterSettings {
            batch_max_conversations: 10,
            batch_max_rows: 1000,
            batch_max_age_ms: 200,
            ..WriterSettings::default()
        };
        let mut w = Writer::new(
            DatabaseUrl::sqlite("/nonexistent/never-opened.db"),
            WriterConfig {
                settings,
                ..WriterConfig::default()
            },
        );
        let t0 = Instant::now();
        assert!(!w.flush_due(t0), "empty buffer");
        w.buffer.push(page(4));
        w.buffered_conversations = 4;
        w.buffered_rows = 4;
        w.oldest = Some(t0);
        assert!(!w.flush_due(t0 + Duration::from_millis(199)));
        assert!(w.flush_due(t0 + Duration::from_millis(200)), "old enough");
        w.buffered_conversations = 10;
        assert!(w.flush_due(t0), "big enough");
        w.buffered_conversations = 1;
        w.buffered_rows = 1000;
        assert!(w.flush_due(t0), "enough rows");
    }

    #[test]
    fn a_reply_reaches_the_caller_whichever_side_comes_first() {
        // Result first (flushed inside the handler), channel second.
        let slot = Slot::new();
        slot.resolve(Err(StorageError::WriterGone));
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        slot.attach(Some(tx));
        assert_eq!(rx.try_recv().unwrap(), Err(StorageError::WriterGone));
        // Channel first, result later.
        let slot = Slot::new();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        slot.attach(Some(tx));
        assert!(rx.try_recv().is_err());
        slot.resolve(Ok(()));
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
    }
}
