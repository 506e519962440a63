//! The Coordinator: plans the partitions, hands them to Fetchers, records their outcomes, and
//! moves from backfill to catch-up.
//!
//! The decisions live in [`Schedule`] (a plain struct tests drive directly); the actor only
//! carries messages between the Schedule, the Writer (checkpoint) and the Fetchers.
//!
//! Guarantees:
//! - A partition is handed to at most one Fetcher at a time, and only under a lease taken from
//!   the checkpoint (so a second Sluice on the same database cannot fetch it too).
//! - Catch-up work goes ahead of backfill work; within a priority, oldest first.
//! - A partition that errors or whose Fetcher crashes is re-queued, at most `max_attempts`
//!   times per run, then failed with the reason.
//! - Only while this instance holds the client's leader lease ([`Role::Active`]) are
//!   partitions handed out; a standby makes no API call. A standby backfill plans its range,
//!   hands it to the active instance and follows it until every partition of it is finished by
//!   anyone; the active service also fetches partitions others planned (see
//!   [`crate::storage::instances`]). No lease answer is re-queued forever: held elsewhere waits
//!   until the lease ends, finished drops the partition.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, DurationRound, Utc};

use crate::actors::fetcher::{CancelFetch, FetchDone, FetchPartition, Fetcher};
pub use crate::actors::work::{Outcome, Work, WorkPriority};
use crate::actors::writer::{
    FailPartition, Flush, HandOverRange, LeasePartition, LoadPartitions, ReleasePartition,
    SplitPartition, WaitingPartitions, Writer,
};
use crate::clock::SharedClock;
use crate::fetch::FetchContext;
use crate::plan::{choose_path, watermark, Mode, Path};
use crate::progress::{FinishedPartition, ProgressTracker};
use crate::storage::checkpoint::{LeaseAnswer, PartitionStatus};
pub use crate::storage::instances::Role;

use crate::genesys::model::Interval;
use crate::storage::checkpoint::Dataset;
use crate::verify::Tally;

use crate::actors::round::{ask, run_round, RoundInput};

mod instances;
pub use crate::actors::schedule::{
    plan_round, range_summary, Action, PlannedView, Round, Schedule, Summary,
};

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// Ingest `[from, to)` (up to the watermark) and stop.
    Backfill {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Ingest from `start`, then catch up every poll interval, forever.
    Service { start: DateTime<Utc> },
}

/// The Coordinator's settings.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    pub kind: RunKind,
    pub datasets: Vec<Dataset>,
    pub provisional: bool,
    pub watermark_lag: chrono::Duration,
    /// `settle_hours` (None: off): done blocks that old and not settled are fetched again.
    pub settle_after: Option<chrono::Duration>,
    pub poll_interval: std::time::Duration,
    /// The watermark is floored to this (keeps partition edges round).
    pub min_block: chrono::Duration,
    pub max_attempts: u32,
    pub lease_for: std::time::Duration,
    /// Lease owner name (host and process).
    pub owner: String,
    pub mode: Mode,
    /// The role at start (from the leader lease); later changes come as [`SetRole`].
    pub initial_role: Role,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub summary: Summary,
    /// Stopped by a signal (in-flight partitions were given back).
    pub interrupted: bool,
    /// The part of a backfill's range after the watermark, left for a later run.
    pub not_final_yet: Option<Interval>,
    /// A fatal error that stopped the run (database gone, …).
    pub error: Option<String>,
}

impl RunReport {
    /// Every planned partition verified, nothing failed, no fatal error.
    pub fn complete(&self) -> bool {
        self.error.is_none() && self.summary.all_verified()
    }
}

/// Where the Coordinator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Planning,
    Backfill,
    /// Waiting for the next catch-up tick (service mode).
    CatchUp,
    /// Another instance holds the leader lease: waiting to take over (a backfill follows the
    /// progress of its range meanwhile).
    Standby,
    ShuttingDown,
    Finished,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planning => "planning",
            Phase::Backfill => "backfill",
            Phase::CatchUp => "catch-up",
            Phase::Standby => "standby",
            Phase::ShuttingDown => "shutting down",
            Phase::Finished => "finished",
        }
    }
}

/// A snapshot for status displays and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorStatus {
    pub phase: Phase,
    pub queued: usize,
    pub running: usize,
    pub summary: Summary,
    /// Planning rounds completed (1 after the initial plan; +1 per catch-up).
    pub rounds: u64,
}

/// Give in-flight partitions back, flush, and finish.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Run a catch-up round now instead of waiting for the tick.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CatchUpNow;

#[derive(Debug, Message)]
#[rtype(result = "CoordinatorStatus")]
pub struct GetStatus;

/// The leader lease changed hands: fetch (active) or stop handing out work (standby).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetRole(pub Role);

/// The Coordinator actor.
pub struct Coordinator {
    settings: CoordinatorSettings,
    clock: SharedClock,
    writer: Addr<Writer>,
    fetch: Arc<FetchContext>,
    fetchers: Vec<Addr<Fetcher>>,
    idle: Vec<usize>,
    schedule: Schedule,
    leases: HashMap<i64, (usize, String)>,
    started: HashMap<i64, std::time::Instant>,
    pending_ops: usize,
    phase: Phase,
    rounds: u64,
    tick: Option<SpawnHandle>,
    role: Role,
    /// A follow or adopt query is out (at most one at a time).
    polling: bool,
    /// The standby backfill handed its range over.
    handed_over: bool,
    progress: Arc<ProgressTracker>,
    not_final_yet: Option<Interval>,
    fatal: Option<String>,
    report: tokio::sync::watch::Sender<Option<RunReport>>,
    status: tokio::sync::watch::Sender<CoordinatorStatus>,
}

impl Coordinator {
    /// Starts the Coordinator and its supervised Fetchers (`fetchers` of them).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        settings: CoordinatorSettings,
        clock: SharedClock,
        writer: Addr<Writer>,
        fetch: Arc<FetchContext>,
        fetchers: usize,
        progress: Arc<ProgressTracker>,
        report: tokio::sync::watch::Sender<Option<RunReport>>,
        status: tokio::sync::watch::Sender<CoordinatorStatus>,
    ) -> Addr<Coordinator> {
        Coordinator::create(move |ctx| {
            let me = ctx.address();
            let pool: Vec<Addr<Fetcher>> = (0..fetchers.max(1))
                .map(|i| Fetcher::start_supervised(i, fetch.clone(), me.clone().recipient()))
                .collect();
            let max_attempts = settings.max_attempts;
            let role = settings.initial_role;
            Coordinator {
                role,
                polling: false,
                handed_over: false,
                idle: (0..pool.len()).rev().collect(),
                fetchers: pool,
                settings,
                clock,
                writer,
                fetch,
                schedule: Schedule::new(max_attempts),
                leases: HashMap::new(),
                started: HashMap::new(),
                pending_ops: 0,
                phase: Phase::Planning,
                rounds: 0,
                tick: None,
                progress,
                not_final_yet: None,
                fatal: None,
                report,
                status,
            }
        })
    }

    fn watermark(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let wm = watermark(now, self.settings.watermark_lag);
        wm.duration_trunc(self.settings.min_block).unwrap_or(wm)
    }

    fn publish_status(&self) {
        let st = CoordinatorStatus {
            phase: self.phase,
            queued: self.schedule.queued(),
            running: self.schedule.running_count(),
            summary: self.schedule.summary.clone(),
            rounds: self.rounds,
        };
        self.status.send_replace(st);
    }

    /// Plans a round and queues its work.
    fn round(&mut self, ctx: &mut Context<Self>, priority: WorkPriority) {
        if matches!(self.phase, Phase::ShuttingDown | Phase::Finished) {
            return;
        }
        if let Some(h) = self.tick.take() {
            ctx.cancel_future(h);
        }
        let now = self.clock.now();
        let wm = self.watermark(now);
        let (from, to) = match self.settings.kind {
            RunKind::Backfill { from, to } => {
                if to > wm && !self.settings.provisional && from < to {
                    let iv = Interval::new(wm.max(from), to);
                    if self.not_final_yet.is_none() {
                        log::warn!(
                            "{iv} is newer than the watermark (now − {} h): not ingested as final; \
                             run again later, or use --provisional",
                            self.settings.watermark_lag.num_minutes() as f64 / 60.0
                        );
                    }
                    self.not_final_yet = Some(iv);
                }
                (from, Some(to))
            }
            RunKind::Service { start } => (start, None),
        };
        let input = RoundInput {
            writer: self.writer.clone(),
            fetch: self.fetch.clone(),
            datasets: self.settings.datasets.clone(),
            from,
            to,
            watermark: wm,
            now,
            provisional: self.settings.provisional,
            mode: self.settings.mode,
            job_block_days: self.fetch.settings.job_block_days,
            priority,
            calls_api: self.role == Role::Active,
            settle_after: self.settings.settle_after,
        };
        self.pending_ops += 1;
        let first = self.rounds == 0;
        ctx.spawn(run_round(input).into_actor(self).map(move |res, act, ctx| {
            act.pending_ops -= 1;
            act.rounds += 1;
            match res {
                Ok(planned) => {
                    if first {
                        act.progress.set_total(planned.total);
                        act.progress.add_already_finished(planned.already_done);
                    } else {
                        act.progress.add_total(planned.work.len() as u64);
                    }
                    if !planned.work.is_empty() || first {
                        log::info!(
                            "planned: {} partitions to fetch, {} already done (watermark {})",
                            planned.work.len(),
                            planned.already_done,
                            wm.format("%Y-%m-%dT%H:%M:%SZ")
                        );
                    }
                    for w in planned.work {
                        act.schedule.enqueue(w);
                    }
                    if act.phase == Phase::Planning || act.phase == Phase::CatchUp {
                        act.phase = if first {
                            Phase::Backfill
                        } else {
                            Phase::CatchUp
                        };
                    }
                    if act.role == Role::Standby
                        && matches!(act.phase, Phase::Backfill | Phase::CatchUp)
                    {
                        act.phase = Phase::Standby;
                    }
                }
                Err(e) => {
                    log::error!("planning failed: {e}");
                    if first {
                        act.fatal = Some(format!("planning failed: {e}"));
                    }
                }
            }
            // Service mode: the next catch-up round is due whether or not this one left work.
            act.arm_catch_up(ctx);
            act.dispatch(ctx);
        }));
    }

    /// Hands queued partitions to idle Fetchers (each under a fresh lease); only while active.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::ShuttingDown | Phase::Finished)
            || self.fatal.is_some()
            || self.role == Role::Standby
        {
            self.check_idle(ctx);
            return;
        }
        let now = self.clock.now();
        while let Some(idx) = self.idle.pop() {
            let Some(work) = self.schedule.next(now) else {
                self.idle.push(idx);
                break;
            };
            let lease = LeasePartition {
                id: work.id,
                owner: self.settings.owner.clone(),
                lease_for: self.settings.lease_for,
            };
            self.pending_ops += 1;
            let lease_for = self.settings.lease_for;
            ctx.spawn(
                self.writer
                    .send(lease)
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        act.pending_ops -= 1;
                        match res {
                            Ok(Ok(LeaseAnswer::Leased { token }))
                                if act.phase != Phase::ShuttingDown && act.role == Role::Active =>
                            {
                                act.leases.insert(work.id, (idx, token.clone()));
                                act.started.insert(work.id, std::time::Instant::now());
                                let mut work = work;
                                work.watermark = Some(act.watermark(act.clock.now()));
                                act.fetchers[idx].do_send(FetchPartition {
                                    work,
                                    lease_token: token,
                                });
                            }
                            Ok(Ok(LeaseAnswer::Leased { token })) => {
                                // Shutting down (or standing by) meanwhile: give it back.
                                act.schedule.finish(work.id, Outcome::Released);
                                act.idle.push(idx);
                                act.writer.do_send(ReleasePartition { id: work.id, token });
                            }
                            Ok(Ok(LeaseAnswer::HeldElsewhere { owner, until })) => {
                                // The lease times are wall-clock; the queue runs on the
                                // engine clock: wait as long as the lease has left.
                                let left = (until - chrono::Utc::now())
                                    .max(chrono::Duration::seconds(1))
                                    .min(
                                        chrono::Duration::from_std(lease_for)
                                            .unwrap_or_else(|_| chrono::Duration::seconds(60)),
                                    );
                                let until = act.clock.now() + left;
                                log::info!(
                                    "partition {} {} is leased by {}; retrying after {until}",
                                    work.dataset,
                                    work.range,
                                    owner.as_deref().unwrap_or("another instance")
                                );
                                act.schedule.lease_held(work.id, until);
                                act.idle.push(idx);
                            }
                            Ok(Ok(LeaseAnswer::Finished { status })) => {
                                log::info!(
                                    "partition {} {} is already {status}; dropping it",
                                    work.dataset,
                                    work.range
                                );
                                if status == PartitionStatus::Done {
                                    act.progress.add_already_finished(1);
                                }
                                act.schedule.finished_elsewhere(work.id, status);
                                act.idle.push(idx);
                            }
                            Ok(Err(e)) => {
                                act.idle.push(idx);
                                act.on_outcome(
                                    ctx,
                                    work,
                                    String::new(),
                                    Outcome::Retry {
                                        error: format!("cannot lease: {e}"),
                                    },
                                );
                            }
                            Err(e) => {
                                act.idle.push(idx);
                                act.fatal = Some(format!("writer stopped: {e}"));
                                act.schedule.finish(work.id, Outcome::Released);
                            }
                        }
                        act.publish_status();
                        act.check_idle(ctx);
                    }),
            );
        }
        self.publish_status();
        self.check_idle(ctx);
    }

    fn on_outcome(&mut self, ctx: &mut Context<Self>, work: Work, token: String, outcome: Outcome) {
        let elapsed = self
            .started
            .remove(&work.id)
            .map(|t| t.elapsed())
            .unwrap_or_default();
        let line = |status: &str, t: Option<Tally>, error: Option<String>| FinishedPartition {
            dataset: work.dataset.as_str().to_string(),
            range_start: work.range.start,
            range_end: work.range.end,
            status: status.to_string(),
            received: t.map(|t| t.received),
            total_hits: t.map(|t| t.total_hits),
            attempts: work.attempts as i64,
            elapsed,
            error,
        };
        match &outcome {
            Outcome::Completed(t) if t.verified => {
                self.progress
                    .partition_finished(&line("done", Some(*t), None))
            }
            Outcome::Completed(t) => self.progress.partition_finished(&line(
                "unverified",
                Some(*t),
                Some(format!(
                    "received {} distinct of totalHits {} after {} passes",
                    t.received, t.total_hits, t.passes
                )),
            )),
            Outcome::Retry { error } => log::warn!(
                "partition {} {} attempt {} failed: {error}; will retry",
                work.dataset,
                work.range,
                work.attempts
            ),
            Outcome::Split { children, reason } => log::info!(
                "partition {} {} split into {} blocks: {reason}",
                work.dataset,
                work.range,
                children.len()
            ),
            _ => {}
        }
        match self.schedule.finish(work.id, outcome) {
            Action::Nothing => {}
            Action::Split { parent, children } => {
                self.pending_ops += 1;
                let msg = SplitPartition {
                    id: parent.id,
                    token: token.clone(),
                    children: children.iter().map(|c| (c.start, c.end)).collect(),
                };
                ctx.spawn(
                    self.writer
                        .send(msg)
                        .into_actor(self)
                        .map(move |res, act, ctx| {
                            act.pending_ops -= 1;
                            match res {
                                Ok(Ok(rows)) => {
                                    act.progress.add_total(rows.len() as u64);
                                    for r in rows {
                                        // Pieces of a query split stay on the query.
                                        act.schedule.enqueue(Work::of_partition(
                                            &r,
                                            Path::Query,
                                            parent.is_final,
                                            parent.priority,
                                        ));
                                    }
                                }
                                Ok(Err(e)) => {
                                    log::error!("cannot record the split of {}: {e}", parent.range)
                                }
                                Err(e) => act.fatal = Some(format!("writer stopped: {e}")),
                            }
                            if act.phase == Phase::ShuttingDown {
                                act.schedule.drain();
                            }
                            act.dispatch(ctx);
                        }),
                );
            }
            Action::Fail { work: w, error } => {
                self.progress
                    .partition_finished(&line("failed", None, Some(error.clone())));
                self.writer.do_send(FailPartition {
                    id: w.id,
                    token,
                    error,
                });
            }
            Action::Release { work: w } => {
                if !token.is_empty() {
                    self.writer.do_send(ReleasePartition { id: w.id, token });
                }
            }
        }
        if self.phase == Phase::ShuttingDown {
            self.schedule.drain();
        }
    }

    /// When nothing is queued, running or pending: finish (backfill, shutdown) or wait for
    /// the next catch-up tick (service mode).
    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        if self.pending_ops > 0 || !self.schedule.is_idle() || self.phase == Phase::Finished {
            if self.fatal.is_some() && self.schedule.running_count() == 0 && self.pending_ops == 0 {
                self.finish(ctx, false);
            }
            return;
        }
        if self.fatal.is_some() {
            self.finish(ctx, false);
            return;
        }
        match (self.phase, self.settings.kind) {
            (Phase::ShuttingDown, _) => self.finish(ctx, true),
            (Phase::Planning | Phase::Standby, _) => {}
            (_, RunKind::Backfill { .. }) => self.finish(ctx, false),
            (_, RunKind::Service { .. }) => {
                if self.phase != Phase::CatchUp {
                    log::info!(
                        "backfill finished; catching up every {} min",
                        self.settings.poll_interval.as_secs_f64() / 60.0
                    );
                    self.phase = Phase::CatchUp;
                }
                self.arm_catch_up(ctx);
                self.publish_status();
            }
        }
    }

    /// Service mode: arms the next catch-up round unless one is armed (always re-armed: a
    /// round that leaves work queued does not stop the polling).
    fn arm_catch_up(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.settings.kind, RunKind::Service { .. })
            || matches!(self.phase, Phase::ShuttingDown | Phase::Finished)
            || self.tick.is_some()
        {
            return;
        }
        let every = self.settings.poll_interval;
        self.tick = Some(ctx.run_later(every, |act, ctx| {
            act.tick = None;
            if act.role == Role::Active {
                act.round(ctx, WorkPriority::CatchUp);
            } else {
                act.arm_catch_up(ctx);
            }
        }));
    }

    fn finish(&mut self, ctx: &mut Context<Self>, interrupted: bool) {
        if self.phase == Phase::Finished {
            return;
        }
        self.phase = Phase::Finished;
        let tx = self.report.clone();
        ctx.spawn(
            self.writer
                .send(Flush)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if let Ok(Err(e)) | Err(e) = res
                        .map_err(|e| e.to_string())
                        .map(|r| r.map_err(|e| e.to_string()))
                    {
                        log::error!("final flush failed: {e}");
                    }
                    act.publish_status();
                    // After the final flush: partitions it completed are in the summary.
                    let report = RunReport {
                        summary: act.schedule.summary.clone(),
                        interrupted,
                        not_final_yet: act.not_final_yet,
                        error: act.fatal.clone(),
                    };
                    tx.send_replace(Some(report));
                    for f in &act.fetchers {
                        f.do_send(CancelFetch);
                    }
                    ctx.stop();
                }),
        );
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A standby service plans nothing (the active instance does); a standby backfill plans
        // its range into the checkpoint (without API calls) and follows it.
        if self.role == Role::Active || matches!(self.settings.kind, RunKind::Backfill { .. }) {
            self.round(ctx, WorkPriority::Backfill);
        } else {
            self.phase = Phase::Standby;
            self.publish_status();
        }
        // Wakes the dispatcher for partitions waiting on a lease held elsewhere.
        ctx.run_interval(std::time::Duration::from_secs(1), |act, ctx| {
            if act.schedule.queued() > 0 {
                act.dispatch(ctx)
            }
        });
        let every = (self.settings.lease_for / 3).max(std::time::Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| act.poll_instances(ctx));
    }
}

impl Handler<FetchDone> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: FetchDone, ctx: &mut Context<Self>) {
        self.idle.push(msg.fetcher);
        self.leases.remove(&msg.work.id);
        self.on_outcome(ctx, msg.work, msg.lease_token, msg.outcome);
        self.dispatch(ctx);
    }
}

impl Handler<Shutdown> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::ShuttingDown | Phase::Finished) {
            return;
        }
        log::info!(
            "shutting down: giving back {} partitions in flight",
            self.schedule.running_count()
        );
        self.phase = Phase::ShuttingDown;
        if let Some(h) = self.tick.take() {
            ctx.cancel_future(h);
        }
        for w in self.schedule.drain() {
            if let Some((idx, _)) = self.leases.get(&w.id) {
                self.fetchers[*idx].do_send(CancelFetch);
            }
        }
        // Fetchers answer a cancel at once; should one not, give its partition back anyway.
        ctx.run_later(std::time::Duration::from_secs(3), |act, ctx| {
            let stuck: Vec<Work> = act.schedule.drain();
            for w in stuck {
                let token = act.leases.remove(&w.id).map(|(_, t)| t).unwrap_or_default();
                act.on_outcome(ctx, w, token, Outcome::Released);
            }
            // Replies still in flight (writer sends, a planning round) count themselves down
            // when they arrive; zeroing `pending_ops` here would underflow it then.
            act.check_idle(ctx);
        });
        self.publish_status();
        self.check_idle(ctx);
    }
}

impl Handler<CatchUpNow> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: CatchUpNow, ctx: &mut Context<Self>) {
        self.round(ctx, WorkPriority::CatchUp);
    }
}

impl Handler<GetStatus> for Coordinator {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(CoordinatorStatus {
            phase: self.phase,
            queued: self.schedule.queued(),
            running: self.schedule.running_count(),
            summary: self.schedule.summary.clone(),
            rounds: self.rounds,
        })
    }
}
