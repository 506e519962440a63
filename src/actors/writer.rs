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
//! first one has been buffered. If none was, the batch is written: one page per transaction
//! when the load is light (lowest latency). If some were, and any of them was acknowledged
//! already (below), their senders may have sent more meanwhile: the marker is posted again
//! behind those, so when fetchers outpace the database a batch fills up to its limits instead
//! of to the pages in flight (highest throughput); it waits [`LINGER`] first, so their next
//! pages are queued ahead of the marker. A
//! batch is also cut when it reaches `batch_max_conversations` conversations or
//! `batch_max_rows` rows (by default 1,000 and 40,000 on MySQL, 5,000 and 150,000 on SQLite:
//! [`BatchLimits`]), on [`Flush`], before any checkpoint message (so messages take effect
//! in the order they were sent), and when the actor stops. `batch_max_age_ms` bounds how long
//! a page may wait in any case: [`start_writer_with`] runs a small ticker on the caller's arbiter
//! that sends an internal `FlushDue` every half of it (a SyncActor has no timers).
//!
//! **Replies, and back-pressure.** A page of a leased partition without its completion is
//! acknowledged once it is buffered, unless it fills the batch: then with its batch's commit.
//! Everything else — a completion, an unfenced page — is answered only once the transaction
//! holding it has committed (or with the error that stopped it). An early acknowledgement
//! promises nothing about the rows: the partition is done only when its completion commits,
//! and the completion is refused if any page of its lease was not written
//! ([`LeaseLedger::lease_failure`](crate::storage::ledger::LeaseLedger::lease_failure): lease
//! lost, a permanent error, the database down past the retry budget); a later page of such a
//! lease is answered at once with the same error, so its Fetcher stops early. A crash loses at
//! most uncommitted pages of partitions not done, which are fetched again.
//! A fetcher that awaits its replies and keeps at most `K` pages outstanding bounds the
//! Writer's memory to `fetchers × K × page size` in its mailbox plus, per lane, one batch
//! (its limits, plus one page): nothing piles up however fast the API answers. (The engine's
//! fetchers keep `max_outstanding_pages`, default 2; on the jobs path a shared record budget
//! bounds the pages in flight to `job_page_size × 3` records.)
//! The actix mailbox in front of a SyncArbiter is unbounded, so this bound comes from the
//! callers awaiting replies; `WriterStats.queue_depth` shows the buffered pages.
//!
//! **Errors.** Transient database errors are retried inside the batch with backoff and a fresh
//! connection (`retry_max_attempts`, then the pages are answered with
//! `StorageError::Unavailable`). A permanent error fails only the partition of the page that
//! caused it (`status = failed`, `last_error`); the other pages of the batch are written. A page
//! whose lease was lost is answered with `StorageError::LeaseLost` and not written.
//!
//! **Parallel writes.** With `writer_connections` = n > 1 (MySQL only), this Writer routes the
//! pages to n lanes, each with its own thread and connection, and keeps its own connection for
//! the checkpoint messages; a partition's pages and completion all go to the same lane, in
//! order ([`super::writer_lanes`], [`crate::storage::lanes`]). Callers see one Writer. Checkpoint messages are in [`super::writer_checkpoint`] (re-exported
//! here).
//!
//! **Shutdown.** Send [`Flush`] and await it before stopping the System (it waits for every
//! lane); each lane also flushes in `stopped` when its mailbox closes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::dev::{MessageResponse, OneshotSender};
use actix::{Actor, Addr, Handler, Message, MessageResult, SyncArbiter, SyncContext};

pub use super::writer_checkpoint::{
    EndRun, FailPartition, HandOverRange, LeasePartition, LoadPartitions, NonFinalConversations,
    PlanPartitions, ReclaimDeadLeases, ReleasePartition, RenewLease, ReopenForResync,
    ReopenForSettle, ReopenPartitions, RunChangesSoFar, SplitPartition, StartRun,
    WaitingPartitions,
};
use super::writer_lanes::{Barrier, Lane};
use crate::storage::lanes::{lanes_for, LaneGate};
pub use crate::storage::upstream::RunChanges;
use crate::storage::write::{BatchLimits, BatchWriter};
pub use crate::storage::write::{
    ConversationRecord, PageRecords, PageWrite, PartitionCompletion, WriteCounters, WriterConfig,
    WriterSettings,
};
use crate::storage::{run_migrations, DatabaseUrl, StorageError};

type Reply = Result<(), StorageError>;

/// Writes a page; answered once buffered or once committed (see the module doc).
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
    /// Batches written again because another Writer connection had just inserted one of
    /// their rows.
    pub conflict_retries: u64,
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

/// Internal: posted by the Writer to the end of its own mailbox when a batch starts; when it
/// comes up every page queued before it is buffered, and the batch is written or the marker
/// posted again ([`drain_again`]).
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
pub(super) struct Slot(Arc<Mutex<SlotState>>);

impl Slot {
    fn new() -> Self {
        Slot(Arc::new(Mutex::new(SlotState::Empty)))
    }

    pub(super) fn resolve(&self, r: Reply) {
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
    /// `None` once acknowledged (before its commit).
    reply: Option<Slot>,
}

/// How long the Writer waits before posting the `Drain` marker again ([`drain_again`]): the
/// acknowledged senders' next pages then queue ahead of it. Small beside a commit (tens to
/// hundreds of milliseconds), and spent only while pages keep coming.
pub const LINGER: Duration = Duration::from_millis(1);

/// Whether a page may be acknowledged once buffered: a page of a leased partition that does
/// not complete it (its completion is what must wait for the commit).
fn acknowledged_when_buffered(page: &PageWrite) -> bool {
    page.partition_id > 0 && page.completion.is_none()
}

/// When the `Drain` marker comes up: post it again rather than write the batch now, because
/// pages were buffered since it was posted and at least one of them was acknowledged then
/// (its sender may have sent another, now queued behind the marker). The batch limits and
/// `batch_max_age_ms` still cut the batch.
pub fn drain_again(buffered_since_marker: usize, acknowledged_since_marker: usize) -> bool {
    buffered_since_marker > 0 && acknowledged_since_marker > 0
}

/// The Writer actor (see the module doc).
pub struct Writer {
    pub(super) core: BatchWriter,
    settings: WriterSettings,
    limits: BatchLimits,
    buffer: Vec<Buffered>,
    buffered_rows: usize,
    buffered_conversations: usize,
    oldest: Option<Instant>,
    tick_pending: Arc<AtomicBool>,
    drain_pending: bool,
    /// Pages buffered, and of them acknowledged at once, since the `Drain` marker was posted
    /// (or the last batch was written).
    since_marker: (usize, usize),
    /// The counters when the current `ingest_runs` row was opened.
    pub(super) run_base: WriterStatsSnapshot,
    /// The router only: the lanes it sends pages to (none with one connection).
    pub(super) lanes: Vec<Lane>,
    /// Where this lane publishes its counters for the router.
    published: Arc<Mutex<WriterStatsSnapshot>>,
    /// A lane: pages the router sent that this lane has not written yet.
    pub(super) queued: Arc<AtomicUsize>,
}

impl Writer {
    pub fn new(url: DatabaseUrl, config: WriterConfig) -> Self {
        Writer {
            settings: config.settings.clone(),
            limits: config.settings.batch_limits(url.backend()),
            core: BatchWriter::new(url, config),
            buffer: Vec::new(),
            buffered_rows: 0,
            buffered_conversations: 0,
            oldest: None,
            tick_pending: Arc::new(AtomicBool::new(false)),
            drain_pending: false,
            since_marker: (0, 0),
            run_base: WriterStatsSnapshot::default(),
            lanes: Vec::new(),
            published: Arc::default(),
            queued: Arc::default(),
        }
    }

    /// Buffers a page of this lane, acknowledges it when it may be, and writes the batch when
    /// it is due. A page whose lease already lost one is answered at once with the reason.
    pub(super) fn buffer_page(&mut self, page: PageWrite, slot: Slot, ctx: &mut SyncContext<Self>) {
        if let Some(e) = self.core.refusal(&page) {
            self.dequeued(1);
            slot.resolve(Err(e));
            return;
        }
        let early = acknowledged_when_buffered(&page);
        self.buffered_rows += page.page.row_count();
        self.buffered_conversations += page.page.conversation_count();
        self.oldest.get_or_insert_with(Instant::now);
        self.buffer.push(Buffered {
            page,
            reply: Some(slot),
        });
        if self.flush_due(Instant::now()) {
            // The page fills the batch: it is answered with the commit (memory stays bounded
            // by the batch limits however fast pages come).
            self.flush();
            return;
        }
        if early {
            if let Some(slot) = self.buffer.last_mut().and_then(|b| b.reply.take()) {
                slot.resolve(Ok(()));
            }
        }
        self.publish();
        if self.settings.group_commit {
            if self.drain_pending {
                self.since_marker.0 += 1;
                self.since_marker.1 += usize::from(early);
            } else {
                self.post_drain(ctx);
            }
        }
    }

    fn post_drain(&mut self, ctx: &mut SyncContext<Self>) {
        self.drain_pending = true;
        self.since_marker = (0, 0);
        ctx.address().do_send(Drain);
    }

    /// `n` pages the router sent this lane are no longer waiting.
    fn dequeued(&self, n: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(n))
            });
    }

    /// Publishes this lane's counters (read by the router's [`WriterStats`]).
    fn publish(&self) {
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = self.local_stats();
    }

    /// Whether the buffer must be written now.
    pub fn flush_due(&self, now: Instant) -> bool {
        match self.oldest {
            None => false,
            Some(t) => {
                self.buffered_conversations >= self.limits.conversations
                    || self.buffered_rows >= self.limits.rows
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
        self.since_marker = (0, 0);
        let pages: Vec<&PageWrite> = buffered.iter().map(|b| &b.page).collect();
        let results = self.core.write_pages(&pages);
        self.dequeued(pages.len());
        self.publish();
        // A page acknowledged already that was not written is in the ledger: its lease's
        // completion will be refused.
        for (b, r) in buffered.iter().zip(results) {
            if let Some(slot) = &b.reply {
                slot.resolve(r);
            }
        }
    }

    /// This lane's counters.
    pub(super) fn local_stats(&self) -> WriterStatsSnapshot {
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
            conflict_retries: c.conflict_retries,
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
        let page = PageWrite {
            partition_id: msg.partition_id,
            lease_token: msg.lease_token,
            page: msg.page,
            completion: msg.completion,
        };
        if let Some((page, slot)) = self.route(page, slot.clone()) {
            self.buffer_page(page, slot, ctx);
        }
        DeferredReply(slot)
    }
}

impl Handler<Drain> for Writer {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        self.drain_pending = false;
        let (buffered, acknowledged) = self.since_marker;
        if !self.buffer.is_empty() && drain_again(buffered, acknowledged) {
            // Give the senders just acknowledged the moment they need to send again.
            (self.core.config().sleeper)(LINGER);
            self.post_drain(ctx);
        } else {
            self.flush();
        }
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
        self.barrier(Barrier::All);
        Ok(())
    }
}

impl Handler<WriterStats> for Writer {
    type Result = MessageResult<WriterStats>;
    fn handle(&mut self, _: WriterStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
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
    let n = lanes_for(&config.settings, url.backend());
    let gate = (n > 1).then(LaneGate::default);
    // One connection: the Writer writes its pages itself. More: it routes them to `n` lanes.
    let routed = if n > 1 { n } else { 0 };
    let mut lanes = Vec::with_capacity(routed);
    let mut ticks = Vec::with_capacity(routed + 1);
    for _ in 0..routed {
        let (addr, tick, stats, queued) = start_lane(&url, &config, gate.clone(), Vec::new());
        ticks.push((addr.downgrade(), tick));
        lanes.push(Lane {
            addr,
            stats,
            queued,
        });
    }
    let (addr, tick, _, _) = start_lane(&url, &config, gate, lanes);
    // Weak addresses: the ticker must not keep the Writer alive (the router holds the lanes).
    ticks.insert(0, (addr.downgrade(), tick));
    let period = (max_age / 2).max(Duration::from_millis(5));
    actix_rt::spawn(async move {
        let mut iv = actix_rt::time::interval(period);
        loop {
            iv.tick().await;
            if ticks[0].0.upgrade().is_none() {
                break;
            }
            for (lane, tick_pending) in &ticks {
                if let Some(lane) = lane.upgrade() {
                    if !tick_pending.swap(true, Ordering::AcqRel) {
                        lane.do_send(FlushDue);
                    }
                }
            }
        }
    });
    Ok(addr)
}

/// Starts one lane (its thread and, at its first batch, its connection); returns its address,
/// its ticker flag, where it publishes its counters, and its count of pages not yet buffered.
#[allow(clippy::type_complexity)]
fn start_lane(
    url: &DatabaseUrl,
    config: &WriterConfig,
    gate: Option<LaneGate>,
    lanes: Vec<Lane>,
) -> (
    Addr<Writer>,
    Arc<AtomicBool>,
    Arc<Mutex<WriterStatsSnapshot>>,
    Arc<AtomicUsize>,
) {
    let tick_pending = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(AtomicUsize::new(0));
    let q = queued.clone();
    let published = Arc::new(Mutex::new(WriterStatsSnapshot::default()));
    let (url, config) = (url.clone(), config.clone());
    let (tp, pb) = (tick_pending.clone(), published.clone());
    let addr = SyncArbiter::start(1, move || {
        let mut w = Writer::new(url.clone(), config.clone());
        if let Some(g) = &gate {
            w.core = BatchWriter::new(url.clone(), config.clone()).with_gate(g.clone());
        }
        w.tick_pending = tp.clone();
        w.published = pb.clone();
        w.queued = q.clone();
        w.lanes = lanes.clone();
        w
    });
    (addr, tick_pending, published, queued)
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
            reply: Some(Slot::new()),
        }
    }

    #[test]
    fn a_batch_is_due_by_size_or_age() {
        let settings = WriterSettings {
            batch_max_conversations: Some(10),
            batch_max_rows: Some(1000),
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
    fn the_marker_goes_round_again_only_while_acknowledged_pages_keep_coming() {
        assert!(!drain_again(0, 0), "nothing came behind the marker: write");
        assert!(
            !drain_again(3, 0),
            "only pages awaiting their commit came: their senders are waiting"
        );
        assert!(
            drain_again(3, 1),
            "an acknowledged sender may have sent more"
        );
        let mut p = page(1).page;
        assert!(!acknowledged_when_buffered(&p), "unfenced: after commit");
        p.partition_id = 7;
        assert!(acknowledged_when_buffered(&p));
        p.completion = Some(PartitionCompletion {
            total_hits: 1,
            received: 1,
            verified: true,
            is_final: true,
            settled: false,
        });
        assert!(
            !acknowledged_when_buffered(&p),
            "a completion: after commit"
        );
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
