//! One block through an async job: submit, poll, read the results with cursor pages of
//! `job_page_size` (1,000, the API's largest) streamed to the Writer, delete the job. Job
//! results carry no totalHits: the block is verified with one count query (pageSize 1) with
//! the same matching rule once its results are read (re-read once per block on a mismatch,
//! totalHits being approximate; then the job is submitted again).
//!
//! [`JobPool`] keeps up to `max_jobs` jobs in flight across the Fetchers (the org's
//! running-job limit less one); a 429 on submit holds one slot back for a while (other
//! integrations' jobs take the org's slots). Each job is first polled near the run time the
//! pool has observed, then with a growing step. Submitting, polling and reading of different
//! blocks overlap, so a long backfill is bounded by the rate budget, not by job run times.
//!
//! A job that ends FAILED, CANCELLED or EXPIRED, or whose results vanish mid-read (404), is
//! resubmitted, at most `job_attempts` times per block.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::sink::Sink;
use super::{priority, Dataset, FetchContext, Stop};
use crate::actors::work::Work;
use crate::genesys::model::job_state;
use crate::genesys::ApiError;
use crate::verify::{Tally, Verification};

/// How long a slot is held back after a 429 on submit.
const HOLD_BACK: StdDuration = StdDuration::from_secs(60);

/// Jobs in flight, shared by the Fetchers.
pub struct JobPool {
    slots: Arc<Semaphore>,
    max: usize,
    state: Mutex<PoolState>,
    /// Poll step bounds (seconds).
    first_poll: f64,
    max_poll: f64,
}

#[derive(Debug)]
struct PoolState {
    /// Slots held back after a 429 on submit, until these instants.
    held: Vec<(Instant, OwnedSemaphorePermit)>,
    /// Observed run time of a job (its completion date less its submission date), smoothed.
    expected_secs: f64,
}

/// A job slot; dropping it frees the slot.
pub struct JobSlot(OwnedSemaphorePermit);

impl JobPool {
    /// `first_poll`: the expected run time before any job was seen, and the smallest poll
    /// step; `max_poll`: the largest poll step (seconds).
    pub fn new(max_jobs: usize, first_poll: f64, max_poll: f64) -> Self {
        let max = max_jobs.max(1);
        JobPool {
            slots: Arc::new(Semaphore::new(max)),
            max,
            state: Mutex::new(PoolState {
                held: Vec::new(),
                expected_secs: first_poll,
            }),
            first_poll: first_poll.max(0.01),
            max_poll: max_poll.max(first_poll),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Slots usable now (`max_jobs` less those held back).
    pub fn capacity(&self) -> usize {
        self.max - self.state().held.len()
    }

    /// Frees the held-back slots whose time has come.
    fn release_due(&self, now: Instant) {
        self.state().held.retain(|(until, _)| *until > now);
    }

    /// Waits for a free slot.
    pub async fn slot(&self) -> JobSlot {
        loop {
            self.release_due(Instant::now());
            let wait = tokio::time::timeout(
                StdDuration::from_secs(1),
                self.slots.clone().acquire_owned(),
            )
            .await;
            match wait {
                Ok(Ok(permit)) => return JobSlot(permit),
                // Closed never happens (the pool owns the semaphore); a timeout re-checks
                // the held-back slots.
                Ok(Err(_)) | Err(_) => continue,
            }
        }
    }

    /// A 429 on submit: the org has fewer free job slots than `max_jobs`; this slot is held
    /// back for a while (one slot always stays usable).
    pub fn fewer(&self, slot: JobSlot, now: Instant) {
        let mut s = self.state();
        if s.held.len() + 1 < self.max {
            s.held.push((now + HOLD_BACK, slot.0));
            log::warn!(
                "job submit answered 429: {} job slots for the next {} s",
                self.max - s.held.len(),
                HOLD_BACK.as_secs()
            );
        }
    }

    /// When to poll a new job first.
    pub fn expected_run(&self) -> StdDuration {
        let secs = self.state().expected_secs;
        StdDuration::from_secs_f64(secs.clamp(self.first_poll, self.max_poll))
    }

    /// A job was seen FULFILLED `run` after its submission.
    pub fn observed_run(&self, run: StdDuration) {
        let mut s = self.state();
        s.expected_secs = 0.5 * s.expected_secs + 0.5 * run.as_secs_f64();
    }

    /// The waits between polls of one job: the expected run time, then a quarter of it
    /// growing by half each time, between the poll bounds.
    pub fn poll_waits(&self) -> impl Iterator<Item = StdDuration> {
        let first = self.expected_run();
        let (lo, hi) = (self.first_poll, self.max_poll);
        let step = (first.as_secs_f64() / 4.0).clamp(lo.min(hi), hi);
        std::iter::once(first).chain(
            std::iter::successors(Some(step), move |s| Some((s * 1.5).min(hi)))
                .map(StdDuration::from_secs_f64),
        )
    }
}

/// How one job went.
enum JobRun {
    /// Every results page was read.
    Read,
    /// Failed, expired, vanished or refused: submit again.
    Incomplete(String),
}

/// Fetches `work` (a job block) to its end.
pub async fn block<D: Dataset>(
    ctx: &Arc<FetchContext>,
    work: &Work,
    sink: &mut Sink<'_>,
) -> Result<Tally, Stop> {
    let mut v = Verification::new(ctx.settings.verify_passes);
    let mut incomplete = 0u32;
    loop {
        match one_job::<D>(ctx, work, sink, &mut v).await? {
            JobRun::Read => {}
            JobRun::Incomplete(why) => {
                incomplete += 1;
                if incomplete >= ctx.settings.job_attempts {
                    return Err(Stop::Api(ApiError::ServerError {
                        status: 500,
                        message: format!(
                            "job for {} did not complete after {incomplete} submissions: {why}",
                            work.range
                        ),
                    }));
                }
                log::warn!(
                    "job for {} {}: {why}; resubmitting",
                    work.dataset,
                    work.range
                );
                continue;
            }
        }
        if let Some(th) = super::count::<D>(ctx, work).await? {
            v.set_total_hits(th);
        }
        if let Some(t) = super::end_of_pass::<D>(ctx, work, &mut v).await? {
            return Ok(t);
        }
    }
}

/// Submits, waits for, reads and deletes one job.
async fn one_job<D: Dataset>(
    ctx: &FetchContext,
    work: &Work,
    sink: &mut Sink<'_>,
    v: &mut Verification,
) -> Result<JobRun, Stop> {
    let slot = ctx.jobs.slot().await;
    let p = priority(work);
    let submitted = Instant::now();
    let id = match D::submit_job(&ctx.client, work.range, p).await {
        Ok(id) => id,
        Err(
            e @ ApiError::RateLimited {
                quota_breach: false,
                ..
            },
        ) => {
            ctx.jobs.fewer(slot, Instant::now());
            return Ok(JobRun::Incomplete(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    ctx.counters.jobs.fetch_add(1, Ordering::Relaxed);
    let result = match wait_for::<D>(ctx, work, &id, submitted).await {
        Ok(None) => read::<D>(ctx, work, sink, v, &id).await,
        Ok(Some(why)) => Ok(JobRun::Incomplete(why)),
        Err(e) => Err(e),
    };
    // Best effort: results expire on their own.
    if let Err(e) = ctx.client.delete_job(D::JOB, &id, p).await {
        log::debug!("cannot delete job {id}: {e}");
    }
    drop(slot);
    result
}

/// Polls until the job ends: `None` when FULFILLED, else why it did not.
async fn wait_for<D: Dataset>(
    ctx: &FetchContext,
    work: &Work,
    id: &str,
    submitted: Instant,
) -> Result<Option<String>, Stop> {
    for wait in ctx.jobs.poll_waits() {
        tokio::time::sleep(wait).await;
        let status = match ctx.client.job_status(D::JOB, id, priority(work)).await {
            Ok(s) => s,
            Err(ApiError::Client { status: 404, .. }) => {
                return Ok(Some(format!("job {id} vanished (404)")))
            }
            Err(e) => return Err(e.into()),
        };
        match status.state.as_str() {
            job_state::FULFILLED => {
                // The run time the API reports, else the time until FULFILLED was seen (which
                // the poll steps inflate).
                let reported = status
                    .submission_date
                    .zip(status.completion_date)
                    .and_then(|(s, c)| (c - s).to_std().ok());
                ctx.jobs
                    .observed_run(reported.unwrap_or_else(|| submitted.elapsed()));
                return Ok(None);
            }
            job_state::FAILED | job_state::CANCELLED | job_state::EXPIRED => {
                return Ok(Some(format!(
                    "job {id} ended {}{}",
                    status.state,
                    status
                        .error_message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )))
            }
            _ => {}
        }
    }
    Ok(Some("polling ended".into()))
}

/// Reads every results page of a fulfilled job into the sink.
async fn read<D: Dataset>(
    ctx: &FetchContext,
    work: &Work,
    sink: &mut Sink<'_>,
    v: &mut Verification,
    id: &str,
) -> Result<JobRun, Stop> {
    let page_size = ctx.settings.job_page_size.clamp(1, u32::MAX as i64) as u32;
    let mut cursor: Option<String> = None;
    loop {
        // The page is held from its request until the Writer answered it.
        let held = ctx.held_records.reserve(page_size as usize).await;
        let page = match D::job_page(
            &ctx.client,
            id,
            cursor.as_deref(),
            page_size,
            priority(work),
        )
        .await
        {
            Ok(page) => page,
            Err(ApiError::Client { status: 404, .. }) => {
                return Ok(JobRun::Incomplete(format!(
                    "results of job {id} expired mid-read (404)"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        ctx.page_received();
        sink.take_held::<D>(v, page.records, Some(held)).await?;
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(JobRun::Read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_429_holds_a_slot_back_but_never_the_last() {
        let pool = JobPool::new(3, 0.5, 10.0);
        let now = Instant::now();
        assert_eq!(pool.capacity(), 3);
        let a = pool.slot().await;
        pool.fewer(a, now);
        assert_eq!(pool.capacity(), 2);
        let b = pool.slot().await;
        pool.fewer(b, now);
        let c = pool.slot().await;
        // One slot always stays usable: this one is simply freed.
        pool.fewer(c, now);
        assert_eq!(pool.capacity(), 1);
        assert_eq!(pool.slots.available_permits(), 1);
        pool.release_due(now + HOLD_BACK);
        assert_eq!(pool.capacity(), 3);
        assert_eq!(pool.slots.available_permits(), 3);
    }

    #[test]
    fn polls_start_near_the_observed_run_time_then_grow() {
        let pool = JobPool::new(4, 0.5, 8.0);
        let waits: Vec<f64> = pool.poll_waits().take(3).map(|d| d.as_secs_f64()).collect();
        assert_eq!(waits, vec![0.5, 0.5, 0.75]);
        pool.observed_run(StdDuration::from_secs_f64(6.5));
        pool.observed_run(StdDuration::from_secs_f64(6.5));
        let waits: Vec<f64> = pool.poll_waits().take(8).map(|d| d.as_secs_f64()).collect();
        // 0.5 → 3.5 → 5.0 expected.
        assert!((waits[0] - 5.0).abs() < 1e-9, "{waits:?}");
        assert!((waits[1] - 1.25).abs() < 1e-9, "{waits:?}");
        assert!(waits.windows(2).skip(1).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), 8.0);
    }
}
