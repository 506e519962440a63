//! Genesys' nightly analytics pipeline, simulated: it reprocesses data at least `minAgeHours`
//! old and rewrites it: a revised conversation gains a late wrap-up segment and a changed
//! metric, a deleted one (compliance, GDPR) disappears from every read path. The same for user
//! presence and routing-status records (deleted only).
//!
//! A run is `POST /__sim/pipeline {"changeFraction":0.05,"deleteFraction":0.01,"minAgeHours":48}`
//! or, with `--pipeline-nightly`, one run at every simulated midnight. Which records a run
//! touches is a pure function of (seed, record, run number), and the runs are kept as a list the
//! dataset applies whenever it (re)builds an hour or a user day: every read path (query, jobs,
//! conversations by id) and the ground truth see the same history, and nothing is stored per
//! record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_64;

use super::data::{seg, Skeleton, DAY_MS, HOUR_MS};
use crate::genesys::model::{Conversation, SessionMetric};

/// Why a pipeline request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("{field} must be a fraction between 0 and 1, got {value}")]
    Fraction { field: &'static str, value: f64 },
    #[error("minAgeHours must be between 0 and 87600, got {0}")]
    MinAge(f64),
}

/// The body of `POST /__sim/pipeline` (every field optional; the defaults are the nightly ones).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PipelineRequest {
    /// Share of the eligible conversations revised.
    pub change_fraction: f64,
    /// Share of the eligible conversations (and user records) deleted.
    pub delete_fraction: f64,
    /// Only records that ended at least this long before the run are touched.
    pub min_age_hours: f64,
}

impl Default for PipelineRequest {
    fn default() -> Self {
        PipelineRequest {
            change_fraction: 0.05,
            delete_fraction: 0.01,
            min_age_hours: 48.0,
        }
    }
}

impl PipelineRequest {
    /// The run this request makes at `now` (the simulated clock), as run number `number`.
    pub fn at(self, number: u32, now: DateTime<Utc>) -> Result<PipelineRun, PipelineError> {
        for (field, value) in [
            ("changeFraction", self.change_fraction),
            ("deleteFraction", self.delete_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(PipelineError::Fraction { field, value });
            }
        }
        if !(0.0..=87_600.0).contains(&self.min_age_hours) {
            return Err(PipelineError::MinAge(self.min_age_hours));
        }
        Ok(PipelineRun {
            number,
            at_ms: now.timestamp_millis(),
            cutoff_ms: now.timestamp_millis() - (self.min_age_hours * HOUR_MS as f64) as i64,
            change_fraction: self.change_fraction,
            delete_fraction: self.delete_fraction,
        })
    }
}

/// One pipeline run: records that ended at or before `cutoff_ms` are candidates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRun {
    pub number: u32,
    pub at_ms: i64,
    pub cutoff_ms: i64,
    pub change_fraction: f64,
    pub delete_fraction: f64,
}

/// What to do with one record in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Revise,
    Delete,
}

impl PipelineRun {
    /// The run's verdict on a record (`key` identifies it) that ended at `end_ms`: a
    /// deterministic draw from (seed, key, run number), deletion first.
    pub fn verdict(&self, seed: u64, key: &[u8], end_ms: i64) -> Verdict {
        if end_ms > self.cutoff_ms {
            return Verdict::Keep;
        }
        let draw = |salt: u64| {
            let h = XxHash3_64::oneshot_with_seed(seed ^ (u64::from(self.number) << 8) ^ salt, key);
            (h >> 11) as f64 / (1u64 << 53) as f64
        };
        if draw(0xde1e7e) < self.delete_fraction {
            Verdict::Delete
        } else if draw(0xc4a96e) < self.change_fraction {
            Verdict::Revise
        } else {
            Verdict::Keep
        }
    }
}

/// Applies `runs` (in order) to an hour's skeletons: deleted ones are removed, revised ones get
/// their revision count raised. Returns (revised, deleted) by the last run, for its report.
pub fn apply(seed: u64, runs: &[PipelineRun], skeletons: &mut Vec<Skeleton>) -> (usize, usize) {
    let mut last = (0, 0);
    for (i, run) in runs.iter().enumerate() {
        let is_last = i + 1 == runs.len();
        skeletons.retain_mut(|s| {
            match run.verdict(seed, &s.id.to_le_bytes(), s.end_ms) {
                Verdict::Keep => {}
                Verdict::Revise => {
                    s.revision += 1;
                    last.0 += usize::from(is_last);
                }
                Verdict::Delete => {
                    last.1 += usize::from(is_last);
                    return false;
                }
            }
            true
        });
    }
    last
}

/// True when some run deletes the user record (`user_id`, `kind`, `start_ms`) ending at `end_ms`
/// (an open record is never old enough).
pub fn user_record_deleted(
    seed: u64,
    runs: &[PipelineRun],
    user_id: &str,
    kind: u8,
    start_ms: i64,
    end_ms: Option<i64>,
) -> bool {
    let Some(end_ms) = end_ms else {
        return false;
    };
    let mut key = Vec::with_capacity(user_id.len() + 9);
    key.extend_from_slice(user_id.as_bytes());
    key.push(kind);
    key.extend_from_slice(&start_ms.to_le_bytes());
    runs.iter()
        .any(|r| r.delete_fraction > 0.0 && r.verdict(seed, &key, end_ms) == Verdict::Delete)
}

/// Rewrites a conversation as the pipeline's `revision`-th version: each revision adds a late
/// wrap-up segment (ending with the conversation) to the last participant's last session and
/// changes that session's handle-time metric (`tAcw`, added if absent) by a second.
pub fn revise(c: &mut Conversation, revision: u32, wrap_up_code: &str) {
    let Some(end) = c.conversation_end else {
        return;
    };
    let Some(session) = c
        .participants
        .last_mut()
        .and_then(|p| p.sessions.last_mut())
    else {
        return;
    };
    let end_ms = end.timestamp_millis();
    for k in 1..=i64::from(revision) {
        let queue_id = session.segments.iter().find_map(|g| g.queue_id.clone());
        let mut g = seg(end_ms - k, end_ms, "wrapup");
        g.queue_id = queue_id;
        g.wrap_up_code = Some(wrap_up_code.to_owned());
        session.segments.push(g);
    }
    let delta = 1_000 * i64::from(revision);
    match session.metrics.iter_mut().find(|m| m.name == "tAcw") {
        Some(m) => m.value += delta,
        None => session.metrics.push(SessionMetric {
            name: "tAcw".into(),
            value: delta,
            emit_date: end,
        }),
    }
}

/// The midnights (UTC, ms) in `(after_ms, now_ms]`: when `--pipeline-nightly` runs.
pub fn midnights(after_ms: i64, now_ms: i64) -> impl Iterator<Item = i64> {
    let first = after_ms.div_euclid(DAY_MS) + 1;
    let last = now_ms.div_euclid(DAY_MS);
    (first..=last).map(|d| d * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::super::data::ms;
    use super::*;

    fn run(number: u32, change: f64, delete: f64, cutoff_ms: i64) -> PipelineRun {
        PipelineRun {
            number,
            at_ms: cutoff_ms,
            cutoff_ms,
            change_fraction: change,
            delete_fraction: delete,
        }
    }

    #[test]
    fn verdicts_are_deterministic_shares_of_old_enough_records() {
        let r = run(1, 0.05, 0.01, 1_000);
        let n = 100_000u32;
        let (mut revised, mut deleted) = (0, 0);
        for i in 0..n {
            match r.verdict(7, &i.to_le_bytes(), 1_000) {
                Verdict::Revise => revised += 1,
                Verdict::Delete => deleted += 1,
                Verdict::Keep => {}
            }
            assert_eq!(
                r.verdict(7, &i.to_le_bytes(), 1_000),
                r.verdict(7, &i.to_le_bytes(), 1_000)
            );
            assert_eq!(r.verdict(7, &i.to_le_bytes(), 1_001), Verdict::Keep);
        }
        assert!((4_500..5_500).contains(&revised), "{revised}");
        assert!((800..1_200).contains(&deleted), "{deleted}");
        // Another run draws other records.
        let r2 = run(2, 0.05, 0.01, 1_000);
        let same = (0..n)
            .filter(|i| {
                let k = i.to_le_bytes();
                r.verdict(7, &k, 0) == Verdict::Delete && r2.verdict(7, &k, 0) == Verdict::Delete
            })
            .count();
        assert!(same < 50, "{same}");
    }

    #[test]
    fn requests_are_validated_and_midnights_counted() {
        let now = ms(10 * DAY_MS + 5);
        let bad = PipelineRequest {
            change_fraction: 1.5,
            ..Default::default()
        };
        assert!(bad.at(1, now).is_err());
        let r = PipelineRequest::default().at(1, now).unwrap();
        assert_eq!(r.cutoff_ms, 10 * DAY_MS + 5 - 48 * HOUR_MS);
        assert_eq!(
            midnights(DAY_MS - 1, 3 * DAY_MS).collect::<Vec<_>>(),
            vec![DAY_MS, 2 * DAY_MS, 3 * DAY_MS]
        );
        assert_eq!(midnights(DAY_MS, DAY_MS + 5).count(), 0);
    }
}
