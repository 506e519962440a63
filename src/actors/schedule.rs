//! The Coordinator's decisions as plain data: which partition runs next (catch-up before
//! backfill, oldest first, never twice at once, a bounded number of attempts), what an outcome
//! means (done, retry, split, fail), what a planning round adds to the checkpoint, and a
//! range's verdict. The actor ([`crate::actors::coordinator`]) only carries messages between
//! these and the Writer and Fetchers, so every rule here is tested without a runtime.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

pub use crate::actors::work::{Outcome, Work, WorkPriority};
use crate::genesys::model::Interval;
use crate::plan::plan_blocks;
use crate::storage::checkpoint::{Dataset, PartitionRow, PartitionStatus};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_bound;
    use crate::plan::Path;

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
