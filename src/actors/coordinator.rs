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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, DurationRound, Utc};

use crate::actors::fetcher::{CancelFetch, FetchDone, FetchPartition, Fetcher};
pub use crate::actors::work::{Outcome, Work, WorkPriority};
use crate::actors::writer::{
    FailPartition, Flush, HandOverRange, LeasePartition, LoadPartitions, PlanPartitions,
    ReleasePartition, ReopenForSettle, ReopenPartitions, SplitPartition, WaitingPartitions, Writer,
};
use crate::clock::SharedClock;
use crate::fetch::FetchContext;
use crate::plan::{choose_path, group_job_days, watermark, Mode, Path};
use crate::progress::{FinishedPartition, ProgressTracker};
use crate::storage::checkpoint::{LeaseAnswer, NewPartition, PartitionRow, PartitionStatus};
pub use crate::storage::instances::Role;

use crate::genesys::model::Interval;
use crate::plan::plan_blocks;
use crate::storage::checkpoint::Dataset;
use crate::verify::Tally;

/// What the actor must do after an outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Nothing,
    /// Persist the split and enqueue the children.
    Split {
        parent: Work,
        children: Vec<Interval>,
    },
    /// Persist the failure.
    Fail {
        work: Work,
        error: String,
    },
    /// Give the partition back (status pending).
    Release {
        work: Work,
    },
}

/// Partition numbers for the run's summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub done: u64,
    pub split: u64,
    pub retried: u64,
    pub unverified: Vec<(Dataset, Interval, Tally)>,
    pub failed: Vec<(Dataset, Interval, String)>,
}

impl Summary {
    pub fn all_verified(&self) -> bool {
        self.unverified.is_empty() && self.failed.is_empty()
    }
}

/// The queue, the running set and the tallies.
#[derive(Debug)]
pub struct Schedule {
    queue: BTreeMap<(WorkPriority, DateTime<Utc>, i64), Work>,
    running: HashMap<i64, Work>,
    max_attempts: u32,
    pub summary: Summary,
}

impl Schedule {
    pub fn new(max_attempts: u32) -> Self {
        Schedule {
            queue: BTreeMap::new(),
            running: HashMap::new(),
            max_attempts: max_attempts.max(1),
            summary: Summary::default(),
        }
    }

    /// Queues a partition unless it is already queued or running. A queued one is promoted if
    /// the new entry has a higher priority or is final where the queued one is not.
    pub fn enqueue(&mut self, mut work: Work) -> bool {
        if self.running.contains_key(&work.id) {
            return false;
        }
        if let Some(key) = self.key_of(work.id) {
            let Some(old) = self.queue.remove(&key) else {
                return false;
            };
            work.priority = work.priority.min(old.priority);
            work.is_final |= old.is_final;
            work.attempts = old.attempts;
        }
        self.queue
            .insert((work.priority, work.range.start, work.id), work);
        true
    }

    fn key_of(&self, id: i64) -> Option<(WorkPriority, DateTime<Utc>, i64)> {
        self.queue.keys().find(|k| k.2 == id).copied()
    }

    /// The next partition to hand out at `now`, moved to the running set.
    pub fn next(&mut self, now: DateTime<Utc>) -> Option<Work> {
        let key = self
            .queue
            .iter()
            .find(|(_, w)| w.not_before.is_none_or(|t| t <= now))
            .map(|(k, _)| *k)?;
        let mut work = self.queue.remove(&key)?;
        work.attempts += 1;
        work.not_before = None;
        self.running.insert(work.id, work.clone());
        Some(work)
    }

    /// The lease could not be taken: wait until `until` and try again (not an attempt).
    pub fn lease_held(&mut self, id: i64, until: DateTime<Utc>) {
        if let Some(mut w) = self.running.remove(&id) {
            w.attempts = w.attempts.saturating_sub(1);
            w.not_before = Some(until);
            self.queue.insert((w.priority, w.range.start, w.id), w);
        }
    }

    /// The lease answer said the partition is finished (another instance did it): drop it.
    /// A `done` one counts as verified; a `split` one is replaced by its children (planned
    /// by the next round).
    pub fn finished_elsewhere(&mut self, id: i64, status: PartitionStatus) {
        if self.running.remove(&id).is_some() && status == PartitionStatus::Done {
            self.summary.done += 1;
        }
    }

    /// Records how a partition ended.
    pub fn finish(&mut self, id: i64, outcome: Outcome) -> Action {
        let Some(work) = self.running.remove(&id) else {
            return Action::Nothing;
        };
        match outcome {
            Outcome::Completed(t) => {
                if t.verified {
                    self.summary.done += 1;
                } else {
                    self.summary.unverified.push((work.dataset, work.range, t));
                }
                Action::Nothing
            }
            Outcome::Split { children, .. } => {
                self.summary.split += 1;
                Action::Split {
                    parent: work,
                    children,
                }
            }
            Outcome::Retry { error } => {
                if work.attempts >= self.max_attempts {
                    let error = format!("{error} (after {} attempts)", work.attempts);
                    self.summary
                        .failed
                        .push((work.dataset, work.range, error.clone()));
                    Action::Fail { work, error }
                } else {
                    self.summary.retried += 1;
                    self.queue
                        .insert((work.priority, work.range.start, work.id), work.clone());
                    Action::Release { work }
                }
            }
            Outcome::Fail { error } => {
                self.summary
                    .failed
                    .push((work.dataset, work.range, error.clone()));
                Action::Fail { work, error }
            }
            Outcome::Released => Action::Release { work },
            Outcome::LeaseLost => Action::Nothing,
        }
    }

    /// Whether the partition is queued or running here.
    pub fn is_known(&self, id: i64) -> bool {
        self.running.contains_key(&id) || self.key_of(id).is_some()
    }

    /// Nothing queued and nothing running.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.running.is_empty()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn running(&self) -> impl Iterator<Item = &Work> {
        self.running.values()
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Drops everything queued (shutdown); returns what was running.
    pub fn drain(&mut self) -> Vec<Work> {
        self.queue.clear();
        self.running.values().cloned().collect()
    }
}

/// The summary of a range as the checkpoint holds it, once no partition of it is pending or
/// running (`None` before): what a standby backfill reports when others did the work.
pub fn range_summary(rows: &[PartitionRow]) -> Option<Summary> {
    let open = rows.iter().any(|r| {
        matches!(
            r.status,
            PartitionStatus::Pending | PartitionStatus::Running
        )
    });
    if open {
        return None;
    }
    let mut summary = Summary::default();
    for r in rows {
        let iv = Interval::new(r.range_start, r.range_end);
        match r.status {
            PartitionStatus::Done => summary.done += 1,
            PartitionStatus::Unverified => summary.unverified.push((
                r.dataset,
                iv,
                Tally {
                    total_hits: r.total_hits.unwrap_or(0),
                    received: r.received.unwrap_or(0),
                    verified: false,
                    passes: 0,
                },
            )),
            PartitionStatus::Failed => {
                summary
                    .failed
                    .push((r.dataset, iv, r.last_error.clone().unwrap_or_default()))
            }
            _ => {}
        }
    }
    Some(summary)
}

/// What the checkpoint already holds for one partition (enough to plan a round).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedView {
    pub id: i64,
    pub range: Interval,
    pub done: bool,
    pub is_final: bool,
}

/// The decisions of one planning round (start of a run, or a catch-up tick) for one dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// New blocks before the watermark (fetched as final).
    pub new_final: Vec<Interval>,
    /// New blocks after the watermark (`--provisional` only; fetched as not final).
    pub new_provisional: Vec<Interval>,
    /// Done but not final, and now behind the watermark: reopen and fetch again as final.
    pub reopen: Vec<i64>,
    /// Existing partitions to fetch, with whether they are final now.
    pub run: Vec<(i64, bool)>,
}

/// Plans `[from, to)` (`to` = `None`: up to now) against what the checkpoint holds.
///
/// Nothing at or after the watermark is planned as final; with `provisional`, the stretch from
/// the watermark to `min(to, now)` is planned as not final. Done partitions are skipped unless
/// they were ingested provisionally and have since fallen behind the watermark.
pub fn plan_round(
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    watermark: DateTime<Utc>,
    now: DateTime<Utc>,
    provisional: bool,
    existing: &[PlannedView],
) -> Round {
    let to = to.unwrap_or(now);
    let mut round = Round::default();
    let mut covered: Vec<Interval> = existing.iter().map(|p| p.range).collect();
    let final_end = to.min(watermark);
    if from < final_end {
        round.new_final = plan_blocks(Interval::new(from, final_end), &covered);
        covered.extend(round.new_final.iter().copied());
    }
    let prov_start = from.max(watermark);
    let prov_end = to.min(now);
    if provisional && prov_start < prov_end {
        round.new_provisional = plan_blocks(Interval::new(prov_start, prov_end), &covered);
    }
    for p in existing {
        if p.range.end <= from || p.range.start >= to {
            continue;
        }
        let final_now = p.range.end <= watermark;
        if p.done {
            if !p.is_final && final_now {
                round.reopen.push(p.id);
                round.run.push((p.id, true));
            }
        } else if final_now || provisional {
            round.run.push((p.id, final_now));
        }
    }
    round
}

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
                                        act.schedule.enqueue(Work {
                                            id: r.id,
                                            dataset: r.dataset,
                                            range: Interval::new(r.range_start, r.range_end),
                                            // Pieces of a query split stay on the query.
                                            path: Path::Query,
                                            is_final: parent.is_final,
                                            priority: parent.priority,
                                            attempts: 0,
                                            not_before: None,
                                            watermark: None,
                                        });
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

    /// Every third of the lease: an active service adopts partitions others planned; a
    /// standby backfill hands its range over once, then checks whether it is finished.
    fn poll_instances(&mut self, ctx: &mut Context<Self>) {
        if self.polling
            || self.pending_ops > 0
            || matches!(
                self.phase,
                Phase::Planning | Phase::ShuttingDown | Phase::Finished
            )
        {
            return;
        }
        match (self.role, self.settings.kind) {
            (Role::Active, RunKind::Service { .. }) => self.adopt_waiting(ctx),
            (Role::Standby, RunKind::Backfill { from, to }) => self.follow(ctx, from, to),
            _ => {}
        }
    }

    fn adopt_waiting(&mut self, ctx: &mut Context<Self>) {
        self.polling = true;
        // Every dataset: a backfill beside the service may ask for one the service does not.
        let msg = WaitingPartitions {
            datasets: vec![Dataset::Conversations, Dataset::Users],
        };
        ctx.spawn(self.writer.send(msg).into_actor(self).map(|res, act, ctx| {
            act.polling = false;
            let rows = match res {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => return log::warn!("cannot read waiting partitions: {e}"),
                Err(e) => return act.fatal = Some(format!("writer stopped: {e}")),
            };
            let wm = act.watermark(act.clock.now());
            let mut adopted = 0u64;
            for r in rows {
                if act.schedule.is_known(r.id) {
                    continue;
                }
                adopted += 1;
                let range = Interval::new(r.range_start, r.range_end);
                let availability = act.fetch.availability_for(r.dataset);
                act.schedule.enqueue(Work {
                    id: r.id,
                    dataset: r.dataset,
                    range,
                    path: choose_path(range, act.settings.mode, availability),
                    is_final: r.range_end <= wm,
                    priority: WorkPriority::Backfill,
                    attempts: 0,
                    not_before: None,
                    watermark: None,
                });
            }
            if adopted > 0 {
                log::info!("fetching {adopted} partitions planned by other instances");
                act.progress.add_total(adopted);
                if act.phase == Phase::CatchUp {
                    act.phase = Phase::Backfill;
                }
                act.dispatch(ctx);
            }
        }));
    }

    /// A standby backfill: ends once no partition of its range is pending or running, with
    /// the summary of the range as the checkpoint holds it.
    fn follow(&mut self, ctx: &mut Context<Self>, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.polling = true;
        let writer = self.writer.clone();
        let datasets = self.settings.datasets.clone();
        let hand_over = !self.handed_over;
        let end = to.min(self.watermark(self.clock.now())).max(from);
        let fut = async move {
            if hand_over {
                let n = ask(
                    &writer,
                    HandOverRange {
                        datasets: datasets.clone(),
                        from,
                        to: end,
                    },
                )
                .await?
                .map_err(|e| e.to_string())?;
                if n > 0 {
                    log::info!("handed {n} unverified or failed partitions to the active instance");
                }
            }
            ask(
                &writer,
                LoadPartitions {
                    datasets,
                    from,
                    to: end,
                },
            )
            .await?
            .map_err(|e| e.to_string())
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.polling = false;
            let rows = match res {
                Ok(rows) => rows,
                Err(e) => return log::warn!("cannot follow the range's progress: {e}"),
            };
            act.handed_over = true;
            if act.role != Role::Standby || act.phase != Phase::Standby {
                return;
            }
            let Some(summary) = range_summary(&rows) else {
                return;
            };
            log::info!(
                "every partition of the range is finished (by the active instance): {} done",
                summary.done
            );
            act.schedule.drain();
            act.schedule.summary = summary;
            act.finish(ctx, false);
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

impl Handler<SetRole> for Coordinator {
    type Result = ();

    fn handle(&mut self, SetRole(role): SetRole, ctx: &mut Context<Self>) {
        if role == self.role || matches!(self.phase, Phase::ShuttingDown | Phase::Finished) {
            self.role = role;
            return;
        }
        self.role = role;
        match role {
            Role::Active => {
                log::info!("holding the leader lease: fetching");
                if matches!(self.phase, Phase::Standby) {
                    self.phase = if self.rounds == 0 {
                        Phase::Planning
                    } else {
                        Phase::Backfill
                    };
                }
                // Re-plan: partitions the old leader split or left behind are picked up.
                let priority = if self.rounds == 0 {
                    WorkPriority::Backfill
                } else {
                    WorkPriority::CatchUp
                };
                self.round(ctx, priority);
            }
            Role::Standby => {
                log::warn!(
                    "lost the leader lease: standing by (giving back {} partitions in flight)",
                    self.schedule.running_count()
                );
                if self.phase != Phase::Planning {
                    self.phase = Phase::Standby;
                }
                for (idx, _) in self.leases.values() {
                    self.fetchers[*idx].do_send(CancelFetch);
                }
            }
        }
        self.publish_status();
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

/// Inputs of one planning round.
struct RoundInput {
    writer: Addr<Writer>,
    fetch: Arc<FetchContext>,
    datasets: Vec<Dataset>,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    watermark: DateTime<Utc>,
    now: DateTime<Utc>,
    provisional: bool,
    mode: Mode,
    job_block_days: i64,
    priority: WorkPriority,
    /// Whether the round may ask the API (data availability): a standby makes no API call.
    calls_api: bool,
    settle_after: Option<chrono::Duration>,
}

struct Planned {
    work: Vec<Work>,
    total: u64,
    already_done: u64,
}

async fn ask<M>(writer: &Addr<Writer>, msg: M) -> Result<M::Result, String>
where
    M: Message + Send + 'static,
    M::Result: Send,
    Writer: Handler<M>,
{
    writer
        .send(msg)
        .await
        .map_err(|e| format!("writer stopped: {e}"))
}

/// Reads the checkpoint, plans new blocks, reopens provisional ones, and returns the work.
async fn run_round(input: RoundInput) -> Result<Planned, String> {
    if input.mode != Mode::Query && input.calls_api {
        input.fetch.refresh_availability(&input.datasets).await;
    }
    let to = input.to.unwrap_or(input.now);
    let mut planned = Planned {
        work: Vec::new(),
        total: 0,
        already_done: 0,
    };
    if input.from >= to {
        return Ok(planned);
    }
    for &dataset in &input.datasets {
        let availability = input.fetch.availability_for(dataset);
        let rows = ask(
            &input.writer,
            LoadPartitions {
                datasets: vec![dataset],
                from: input.from,
                to,
            },
        )
        .await?
        .map_err(|e| e.to_string())?;
        let views: Vec<PlannedView> = rows
            .iter()
            .map(|r| PlannedView {
                id: r.id,
                range: Interval::new(r.range_start, r.range_end),
                done: r.status == PartitionStatus::Done,
                is_final: r.is_final,
            })
            .collect();
        let round = plan_round(
            input.from,
            input.to,
            input.watermark,
            input.now,
            input.provisional,
            &views,
        );
        let by_id: HashMap<i64, &PartitionRow> = rows.iter().map(|r| (r.id, r)).collect();
        for id in &round.reopen {
            if let Some(r) = by_id.get(id) {
                ask(
                    &input.writer,
                    ReopenPartitions {
                        dataset,
                        from: r.range_start,
                        to: r.range_end,
                    },
                )
                .await?
                .map_err(|e| e.to_string())?;
            }
        }
        let mut work: Vec<Work> = Vec::new();
        for (id, is_final) in &round.run {
            if let Some(r) = by_id.get(id) {
                let range = Interval::new(r.range_start, r.range_end);
                work.push(Work {
                    id: r.id,
                    dataset,
                    range,
                    path: choose_path(range, input.mode, availability),
                    is_final: *is_final,
                    priority: input.priority,
                    attempts: 0,
                    not_before: None,
                    watermark: None,
                });
            }
        }
        // Settle: done blocks first fetched too young, now old enough (not those reopened above).
        let due = crate::settle::due(
            rows.iter().filter(|r| !round.reopen.contains(&r.id)),
            input.now,
            input.settle_after,
        );
        let settling = due.len();
        if !due.is_empty() {
            let n = ask(&input.writer, ReopenForSettle(due.clone()))
                .await?
                .map_err(|e| e.to_string())?;
            log::info!("settling {n} partitions of {dataset} (older than settle_hours)");
            for id in &due {
                if let Some(r) = by_id.get(id) {
                    let range = Interval::new(r.range_start, r.range_end);
                    work.push(Work {
                        id: r.id,
                        dataset,
                        range,
                        path: choose_path(range, input.mode, availability),
                        is_final: r.range_end <= input.watermark,
                        priority: WorkPriority::Settle,
                        attempts: 0,
                        not_before: None,
                        watermark: None,
                    });
                }
            }
        }
        // Old whole days a job serves may be grouped into longer job blocks (conversations:
        // user-detail counts are per day document, so users keep one day per block).
        let job_days = match dataset {
            Dataset::Conversations => input.job_block_days,
            Dataset::Users => 1,
        };
        let new_final = group_job_days(round.new_final, input.mode, availability, job_days);
        let new: Vec<NewPartition> = new_final
            .iter()
            .chain(round.new_provisional.iter())
            .map(|iv| NewPartition {
                dataset,
                range_start: iv.start,
                range_end: iv.end,
            })
            .collect();
        if !new.is_empty() {
            let rows = ask(&input.writer, PlanPartitions(new))
                .await?
                .map_err(|e| e.to_string())?;
            for r in rows {
                if r.status == PartitionStatus::Done {
                    continue;
                }
                let range = Interval::new(r.range_start, r.range_end);
                work.push(Work {
                    id: r.id,
                    dataset,
                    range,
                    path: choose_path(range, input.mode, availability),
                    is_final: r.range_end <= input.watermark,
                    priority: input.priority,
                    attempts: 0,
                    not_before: None,
                    watermark: None,
                });
            }
        }
        let in_range = views.len() as u64
            + (work.len() as u64).saturating_sub((round.run.len() + settling) as u64);
        planned.total += in_range;
        planned.already_done += in_range.saturating_sub(work.len() as u64);
        planned.work.extend(work);
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_bound;

    fn t(s: &str) -> DateTime<Utc> {
        parse_bound(s).unwrap()
    }

    fn work(id: i64, day: &str, priority: WorkPriority) -> Work {
        let start = t(day);
        Work {
            id,
            dataset: Dataset::Conversations,
            range: Interval::new(start, start + chrono::Duration::days(1)),
            path: Path::Query,
            is_final: true,
            priority,
            attempts: 0,
            not_before: None,
            watermark: None,
        }
    }

    fn tally(verified: bool) -> Tally {
        Tally {
            total_hits: 10,
            received: if verified { 10 } else { 9 },
            verified,
            passes: 1,
        }
    }

    #[test]
    fn catch_up_first_then_oldest_first_and_no_double_dispatch() {
        let now = t("2026-02-01");
        let mut s = Schedule::new(3);
        assert!(s.enqueue(work(2, "2026-01-02", WorkPriority::Backfill)));
        assert!(s.enqueue(work(1, "2026-01-01", WorkPriority::Backfill)));
        assert!(s.enqueue(work(9, "2026-01-20", WorkPriority::CatchUp)));
        assert_eq!(s.next(now).unwrap().id, 9);
        assert!(
            !s.enqueue(work(9, "2026-01-20", WorkPriority::CatchUp)),
            "running"
        );
        assert_eq!(s.next(now).unwrap().id, 1);
        // Re-enqueueing a queued partition as catch-up promotes it instead of duplicating it.
        assert!(s.enqueue(work(2, "2026-01-02", WorkPriority::CatchUp)));
        assert_eq!(s.queued(), 1);
        assert_eq!(s.next(now).unwrap().priority, WorkPriority::CatchUp);
        assert!(s.next(now).is_none());
        assert!(!s.is_idle());
    }

    #[test]
    fn errors_are_retried_a_bounded_number_of_times_then_failed() {
        let now = t("2026-02-01");
        let mut s = Schedule::new(2);
        s.enqueue(work(1, "2026-01-01", WorkPriority::Backfill));
        let w = s.next(now).unwrap();
        let a = s.finish(
            w.id,
            Outcome::Retry {
                error: "boom".into(),
            },
        );
        assert!(matches!(a, Action::Release { .. }));
        let w = s.next(now).unwrap();
        assert_eq!(w.attempts, 2);
        let a = s.finish(
            w.id,
            Outcome::Retry {
                error: "boom".into(),
            },
        );
        match a {
            Action::Fail { error, .. } => assert!(error.contains("boom") && error.contains('2')),
            other => panic!("{other:?}"),
        }
        assert!(s.is_idle());
        assert_eq!(s.summary.failed.len(), 1);
        assert!(!s.summary.all_verified());
    }

    #[test]
    fn completions_are_tallied_and_splits_handed_back() {
        let now = t("2026-02-01");
        let mut s = Schedule::new(2);
        s.enqueue(work(1, "2026-01-01", WorkPriority::Backfill));
        s.enqueue(work(2, "2026-01-02", WorkPriority::Backfill));
        s.enqueue(work(3, "2026-01-03", WorkPriority::Backfill));
        let a = s.next(now).unwrap();
        let b = s.next(now).unwrap();
        let c = s.next(now).unwrap();
        assert_eq!(
            s.finish(a.id, Outcome::Completed(tally(true))),
            Action::Nothing
        );
        assert_eq!(
            s.finish(b.id, Outcome::Completed(tally(false))),
            Action::Nothing
        );
        let children = vec![c.range];
        let act = s.finish(
            c.id,
            Outcome::Split {
                children: children.clone(),
                reason: "too large".into(),
            },
        );
        assert_eq!(
            act,
            Action::Split {
                parent: c,
                children
            }
        );
        assert_eq!(s.summary.done, 1);
        assert_eq!(s.summary.unverified.len(), 1);
        assert_eq!(s.summary.unverified[0].2.received, 9);
        // An unknown id (e.g. a late report after a restart) changes nothing.
        assert_eq!(s.finish(42, Outcome::Released), Action::Nothing);
    }

    #[test]
    fn held_lease_waits_without_spending_an_attempt() {
        let now = t("2026-02-01");
        let mut s = Schedule::new(1);
        s.enqueue(work(1, "2026-01-01", WorkPriority::Backfill));
        let w = s.next(now).unwrap();
        s.lease_held(w.id, now + chrono::Duration::seconds(30));
        assert!(s.next(now).is_none());
        let w = s.next(now + chrono::Duration::seconds(30)).unwrap();
        assert_eq!(w.attempts, 1);
    }

    #[test]
    fn a_partition_finished_elsewhere_leaves_the_queue_and_counts_when_done() {
        let now = t("2026-02-01");
        let mut s = Schedule::new(3);
        s.enqueue(work(1, "2026-01-01", WorkPriority::Backfill));
        s.enqueue(work(2, "2026-01-02", WorkPriority::Backfill));
        let a = s.next(now).unwrap();
        let b = s.next(now).unwrap();
        assert!(s.is_known(a.id) && s.is_known(b.id));
        s.finished_elsewhere(a.id, PartitionStatus::Done);
        s.finished_elsewhere(b.id, PartitionStatus::Split);
        assert!(s.is_idle(), "nothing is re-queued: a backfill can end");
        assert_eq!(s.summary.done, 1);
        assert!(s.summary.all_verified());
        assert!(!s.is_known(a.id));
    }

    fn row(id: i64, day: &str, status: PartitionStatus) -> PartitionRow {
        let start = t(day);
        PartitionRow {
            id,
            dataset: Dataset::Conversations,
            range_start: start,
            range_end: start + chrono::Duration::days(1),
            status,
            attempts: 1,
            total_hits: Some(10),
            received: Some(if status == PartitionStatus::Unverified {
                9
            } else {
                10
            }),
            verified_at: None,
            last_error: (status == PartitionStatus::Failed).then(|| "HTTP 400".to_string()),
            lease_owner: None,
            lease_token: None,
            lease_expires_at: None,
            updated_at: start,
            is_final: true,
            fetched_at: None,
            is_settled: false,
        }
    }

    #[test]
    fn a_followed_range_ends_when_nothing_is_pending_or_running_with_its_verdict() {
        use PartitionStatus::*;
        let mut rows = vec![
            row(1, "2026-01-01", Done),
            row(2, "2026-01-02", Running),
            row(3, "2026-01-03", Pending),
        ];
        assert_eq!(range_summary(&rows), None);
        rows[1].status = Done;
        rows[2].status = Done;
        let s = range_summary(&rows).unwrap();
        assert_eq!(s.done, 3);
        assert!(s.all_verified(), "exit 0");
        rows[1] = row(2, "2026-01-02", Unverified);
        rows[2] = row(3, "2026-01-03", Failed);
        let s = range_summary(&rows).unwrap();
        assert_eq!((s.done, s.unverified.len(), s.failed.len()), (1, 1, 1));
        assert_eq!(s.unverified[0].2.received, 9);
        assert_eq!(s.failed[0].2, "HTTP 400");
        assert!(!s.all_verified(), "exit 3");
    }

    #[test]
    fn shutdown_drains_the_queue_and_returns_running_work() {
        let now = t("2026-02-01");
        let mut s = Schedule::new(3);
        s.enqueue(work(1, "2026-01-01", WorkPriority::Backfill));
        s.enqueue(work(2, "2026-01-02", WorkPriority::Backfill));
        s.next(now);
        let running = s.drain();
        assert_eq!(running.len(), 1);
        assert_eq!(s.queued(), 0);
        assert!(matches!(
            s.finish(running[0].id, Outcome::Released),
            Action::Release { .. }
        ));
        assert!(s.is_idle());
    }

    fn view(id: i64, a: &str, b: &str, done: bool, is_final: bool) -> PlannedView {
        PlannedView {
            id,
            range: Interval::new(t(a), t(b)),
            done,
            is_final,
        }
    }

    #[test]
    fn first_round_plans_days_up_to_the_watermark_only() {
        let now = t("2026-01-04T04:00:00Z");
        let wm = t("2026-01-04");
        let r = plan_round(t("2026-01-01"), Some(t("2026-01-05")), wm, now, false, &[]);
        assert_eq!(r.new_final.len(), 3);
        assert_eq!(r.new_final.last().unwrap().end, wm);
        assert!(r.new_provisional.is_empty());
        // With --provisional the stretch from the watermark to now is planned as not final.
        let r = plan_round(t("2026-01-01"), Some(t("2026-01-05")), wm, now, true, &[]);
        assert_eq!(
            r.new_provisional,
            vec![Interval::new(wm, now)],
            "never past now"
        );
    }

    #[test]
    fn resume_skips_done_reruns_the_rest_and_finalizes_provisional_blocks() {
        let now = t("2026-01-04T12:00:00Z");
        let wm = t("2026-01-04T08:00:00Z");
        let existing = [
            view(1, "2026-01-01", "2026-01-02", true, true),
            view(2, "2026-01-02", "2026-01-03", false, true),
            // Ingested provisionally in an earlier run; now behind the watermark.
            view(3, "2026-01-03", "2026-01-04", true, false),
            // Provisional and still after the watermark: left alone without --provisional.
            view(
                4,
                "2026-01-04T00:00:00Z",
                "2026-01-04T10:00:00Z",
                false,
                false,
            ),
        ];
        let r = plan_round(t("2026-01-01"), None, wm, now, false, &existing);
        assert!(r.new_final.is_empty(), "{:?}", r.new_final);
        assert_eq!(r.reopen, vec![3]);
        assert_eq!(r.run, vec![(2, true), (3, true)]);
        // A catch-up later: the watermark passed partition 4's end.
        let later = t("2026-01-04T16:00:00Z");
        let wm2 = t("2026-01-04T12:00:00Z");
        let r = plan_round(t("2026-01-01"), None, wm2, later, false, &existing);
        assert_eq!(
            r.new_final,
            vec![Interval::new(t("2026-01-04T10:00:00Z"), wm2)]
        );
        assert!(r.run.contains(&(4, true)));
    }
}
