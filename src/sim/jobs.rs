//! Asynchronous detail jobs (facts §3, §4.2): QUEUED, then PENDING, then FULFILLED (or FAILED by
//! fault injection) once the job's run time of real time has passed; results expire `job_expiry`
//! of simulated time after completion (state EXPIRED, results 404). At most `job_concurrency`
//! jobs run at once per org (429 beyond). A job sees the data lake as of its submission's
//! `dataAvailabilityDate` (now minus the lag): nothing after it, in-progress views at it.
//!
//! Like the real ones, jobs take longer the more they return: the run time is a fixed part
//! (drawn from `job_delay..=job_delay_max`) plus `job_run_per_10k` per 10,000 results, so the
//! results are computed at submission (the data lake as of then is what the job reads anyway).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::data::ms;
use super::faults::EarlyExpiry;
use super::limits::ceil_secs;
use super::query::{Hit, Selection};
use crate::genesys::model::{job_state, AsyncQueryStatus, Filter, Interval, UserDetail};

/// Which dataset a job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Conversations,
    Users,
}

/// What a users job selects.
#[derive(Debug, Clone)]
pub struct UserSelection {
    pub interval: Interval,
    pub descending: bool,
    pub user_filters: Vec<Filter>,
    pub presence_filters: Vec<Filter>,
    pub routing_status_filters: Vec<Filter>,
    pub limit: Option<usize>,
}

/// The query of a job.
#[derive(Debug, Clone)]
pub enum JobQuery {
    Conversations(Selection),
    Users(UserSelection),
}

/// Computed results of a fulfilled job.
pub enum JobResults {
    Conversations(Vec<Hit>),
    Users(Vec<UserDetail>),
}

impl JobResults {
    /// Number of results (conversations or user details).
    pub fn len(&self) -> usize {
        match self {
            JobResults::Conversations(h) => h.len(),
            JobResults::Users(u) => u.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long jobs run: a fixed part drawn from `delay..=delay_max`, plus `per_10k` for every
/// 10,000 results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTime {
    pub delay: Duration,
    pub delay_max: Duration,
    pub per_10k: Duration,
}

impl RunTime {
    /// Always `delay`, whatever the result size.
    pub fn fixed(delay: Duration) -> Self {
        RunTime {
            delay,
            delay_max: delay,
            per_10k: Duration::ZERO,
        }
    }

    /// The run time of a job returning `results` results; `u` in `[0, 1)` picks the fixed part.
    /// Whole milliseconds, like the dates the API shows it in.
    pub fn of(&self, results: usize, u: f64) -> Duration {
        let spread = self.delay_max.saturating_sub(self.delay);
        let fixed = self.delay + spread.mul_f64(u.clamp(0.0, 1.0));
        let run = fixed + self.per_10k.mul_f64(results as f64 / 10_000.0);
        Duration::from_millis(u64::try_from(run.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A job to register: what it selects, its results as of submission, and how long it runs.
pub struct NewJob {
    pub id: String,
    pub kind: JobKind,
    pub query: JobQuery,
    pub results: Arc<JobResults>,
    pub run: Duration,
    /// dataAvailabilityDate at submission (ms since the epoch).
    pub availability_ms: i64,
    pub fails: bool,
    /// Injected: the results expire right at completion (fault injection).
    pub early_expiry: Option<EarlyExpiry>,
}

pub struct Job {
    pub kind: JobKind,
    pub query: JobQuery,
    submitted: Instant,
    /// Real time from submission to completion.
    pub run: Duration,
    pub submission_date: DateTime<Utc>,
    /// dataAvailabilityDate when the job was submitted (ms since the epoch).
    pub availability_ms: i64,
    fails: bool,
    early_expiry: Option<EarlyExpiry>,
    /// Whether a status already said FULFILLED (for `EarlyExpiry::AfterFirstFulfilled`).
    fulfilled_shown: AtomicBool,
    pub results: Arc<JobResults>,
}

/// A job's status at `(real now, simulated now)`.
pub struct JobStatus {
    pub state: &'static str,
    pub status: AsyncQueryStatus,
}

/// Why a job operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// No such job (or deleted).
    NotFound,
    /// Too many running jobs: retry after this many seconds.
    Cap { retry_after_secs: u64 },
}

pub struct Jobs {
    run_time: RunTime,
    expiry: chrono::Duration,
    cap: u32,
    enabled: bool,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Jobs {
    pub fn new(run_time: RunTime, expiry: Duration, cap: u32, enabled: bool) -> Self {
        Jobs {
            run_time,
            expiry: chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::days(1)),
            cap,
            enabled,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long jobs run.
    pub fn run_time(&self) -> RunTime {
        self.run_time
    }

    fn running(job: &Job, now: Instant) -> bool {
        now.saturating_duration_since(job.submitted) < job.run
    }

    /// Registers a job unless `cap` jobs are running at `now`.
    pub fn submit(
        &self,
        new: NewJob,
        now: Instant,
        sim_now: DateTime<Utc>,
    ) -> Result<String, JobError> {
        let mut jobs = self.lock();
        if self.enabled {
            let running: Vec<Instant> = jobs
                .values()
                .filter(|j| Self::running(j, now))
                .map(|j| j.submitted + j.run)
                .collect();
            if running.len() as u32 >= self.cap {
                let first_done = running.into_iter().min().unwrap_or(now);
                return Err(JobError::Cap {
                    retry_after_secs: ceil_secs(now, first_done).max(1),
                });
            }
        }
        let id = new.id;
        jobs.insert(
            id.clone(),
            Arc::new(Job {
                kind: new.kind,
                query: new.query,
                submitted: now,
                run: new.run,
                submission_date: sim_now,
                availability_ms: new.availability_ms,
                fails: new.fails,
                early_expiry: new.early_expiry,
                fulfilled_shown: AtomicBool::new(false),
                results: new.results,
            }),
        );
        Ok(id)
    }

    pub fn get(&self, id: &str, kind: JobKind) -> Result<Arc<Job>, JobError> {
        self.lock()
            .get(id)
            .filter(|j| j.kind == kind)
            .cloned()
            .ok_or(JobError::NotFound)
    }

    pub fn delete(&self, id: &str, kind: JobKind) -> Result<(), JobError> {
        let mut jobs = self.lock();
        match jobs.get(id) {
            Some(j) if j.kind == kind => {
                jobs.remove(id);
                Ok(())
            }
            _ => Err(JobError::NotFound),
        }
    }

    /// The job's state machine.
    pub fn status(&self, job: &Job, now: Instant, sim_now: DateTime<Utc>) -> JobStatus {
        let elapsed = now.saturating_duration_since(job.submitted);
        let run = chrono::Duration::from_std(job.run).unwrap_or_default();
        let completion = job.submission_date + run;
        let early = match job.early_expiry {
            Some(EarlyExpiry::AtCompletion) => true,
            Some(EarlyExpiry::AfterFirstFulfilled) => {
                elapsed >= job.run && !job.fails && job.fulfilled_shown.swap(true, Ordering::SeqCst)
            }
            None => false,
        };
        let expiration = if job.early_expiry == Some(EarlyExpiry::AtCompletion) {
            completion
        } else {
            completion + self.expiry
        };
        let state = if elapsed < job.run / 2 {
            job_state::QUEUED
        } else if elapsed < job.run {
            job_state::PENDING
        } else if early || sim_now >= expiration {
            job_state::EXPIRED
        } else if job.fails {
            job_state::FAILED
        } else {
            job_state::FULFILLED
        };
        let done = matches!(
            state,
            job_state::FULFILLED | job_state::FAILED | job_state::EXPIRED
        );
        JobStatus {
            state,
            status: AsyncQueryStatus {
                state: state.to_string(),
                error_message: (state == job_state::FAILED)
                    .then(|| "The job failed while reading the data lake; submit it again".into()),
                submission_date: Some(job.submission_date),
                completion_date: done.then_some(completion),
                expiration_date: done.then_some(expiration),
            },
        }
    }

    /// The dataAvailabilityDate a job reads up to.
    pub fn availability(job: &Job) -> DateTime<Utc> {
        ms(job.availability_ms)
    }
}

/// Opaque cursor: the offset of the next result.
pub fn encode_cursor(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

pub fn decode_cursor(c: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim())
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("o:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::query::{Matching, Order, OrderBy};

    fn job(id: &str, kind: JobKind, run: Duration, fails: bool) -> NewJob {
        NewJob {
            id: id.into(),
            kind,
            query: q(),
            results: Arc::new(JobResults::Users(vec![])),
            run,
            availability_ms: 0,
            fails,
            early_expiry: None,
        }
    }

    fn q() -> JobQuery {
        let t = ms(0);
        JobQuery::Conversations(Selection {
            interval: Interval::new(t, t + chrono::Duration::hours(1)),
            matching: Matching::Overlap,
            order: Order::Asc,
            order_by: OrderBy::Start,
            conversation_filters: vec![],
            segment_filters: vec![],
            limit: None,
        })
    }

    #[test]
    fn lifecycle_and_expiry() {
        let run = Duration::from_secs(4);
        let jobs = Jobs::new(RunTime::fixed(run), Duration::from_secs(3600), 5, true);
        let t0 = Instant::now();
        let s0 = ms(1_700_000_000_000);
        let id = jobs
            .submit(job("j", JobKind::Conversations, run, false), t0, s0)
            .unwrap();
        let j = jobs.get(&id, JobKind::Conversations).unwrap();
        assert!(jobs.get(&id, JobKind::Users).is_err());
        assert_eq!(jobs.status(&j, t0, s0).state, "QUEUED");
        assert_eq!(
            jobs.status(&j, t0 + Duration::from_secs(2), s0).state,
            "PENDING"
        );
        let st = jobs.status(&j, t0 + Duration::from_secs(4), s0);
        assert_eq!(st.state, "FULFILLED");
        let done = st.status.completion_date.unwrap();
        assert_eq!(done, s0 + chrono::Duration::seconds(4));
        assert_eq!(
            st.status.expiration_date.unwrap(),
            done + chrono::Duration::hours(1)
        );
        let later = done + chrono::Duration::hours(1);
        assert_eq!(
            jobs.status(&j, t0 + Duration::from_secs(5), later).state,
            "EXPIRED"
        );
        jobs.delete(&id, JobKind::Conversations).unwrap();
        assert_eq!(
            jobs.get(&id, JobKind::Conversations).err(),
            Some(JobError::NotFound)
        );
    }

    #[test]
    fn early_expiry_shows_at_completion_or_after_one_fulfilled() {
        let run = Duration::from_secs(1);
        let jobs = Jobs::new(RunTime::fixed(run), Duration::from_secs(3600), 5, true);
        let t0 = Instant::now();
        let done = t0 + run;
        for (id, how) in [
            ("at", EarlyExpiry::AtCompletion),
            ("after", EarlyExpiry::AfterFirstFulfilled),
        ] {
            let mut new = job(id, JobKind::Users, run, false);
            new.early_expiry = Some(how);
            jobs.submit(new, t0, ms(0)).unwrap();
        }
        let at = jobs.get("at", JobKind::Users).unwrap();
        assert_eq!(jobs.status(&at, t0, ms(0)).state, "QUEUED");
        assert_eq!(jobs.status(&at, done, ms(0)).state, "EXPIRED");
        let after = jobs.get("after", JobKind::Users).unwrap();
        assert_eq!(jobs.status(&after, t0, ms(0)).state, "QUEUED");
        assert_eq!(jobs.status(&after, done, ms(0)).state, "FULFILLED");
        assert_eq!(jobs.status(&after, done, ms(0)).state, "EXPIRED");
        assert_eq!(jobs.status(&after, done, ms(0)).state, "EXPIRED");
    }

    #[test]
    fn failed_jobs_say_why() {
        let run = Duration::from_secs(1);
        let jobs = Jobs::new(RunTime::fixed(run), Duration::from_secs(3600), 5, true);
        let t0 = Instant::now();
        jobs.submit(job("f", JobKind::Users, run, true), t0, ms(0))
            .unwrap();
        let j = jobs.get("f", JobKind::Users).unwrap();
        let st = jobs.status(&j, t0 + Duration::from_secs(1), ms(0));
        assert_eq!(st.state, "FAILED");
        assert!(st.status.error_message.is_some());
    }

    #[test]
    fn cap_refuses_until_the_first_running_job_completes() {
        let run = Duration::from_millis(2500);
        let jobs = Jobs::new(RunTime::fixed(run), Duration::from_secs(3600), 2, true);
        let t0 = Instant::now();
        jobs.submit(job("a", JobKind::Conversations, run, false), t0, ms(0))
            .unwrap();
        let t1 = t0 + Duration::from_millis(500);
        jobs.submit(job("b", JobKind::Conversations, run, false), t1, ms(0))
            .unwrap();
        let e = jobs
            .submit(job("c", JobKind::Conversations, run, false), t1, ms(0))
            .unwrap_err();
        // "a" completes at 2.5 s; from 0.5 s that is 2 s
        assert_eq!(
            e,
            JobError::Cap {
                retry_after_secs: 2
            }
        );
        let at = t1 + Duration::from_secs(2);
        jobs.submit(job("c", JobKind::Conversations, run, false), at, ms(0))
            .unwrap();
        // deleting a running job frees its place
        let t2 = at;
        assert!(jobs
            .submit(job("d", JobKind::Conversations, run, false), t2, ms(0))
            .is_err());
        jobs.delete("b", JobKind::Conversations).unwrap();
        jobs.submit(job("d", JobKind::Conversations, run, false), t2, ms(0))
            .unwrap();
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(1234)), Some(1234));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor("Zm9v"), None);
    }

    #[test]
    fn run_time_grows_with_results_within_the_fixed_spread() {
        let rt = RunTime {
            delay: Duration::from_secs(2),
            delay_max: Duration::from_secs(5),
            per_10k: Duration::from_secs(1),
        };
        assert_eq!(rt.of(0, 0.0), Duration::from_secs(2));
        assert_eq!(rt.of(0, 1.0), Duration::from_secs(5));
        assert_eq!(rt.of(30_000, 0.0), Duration::from_secs(5));
        assert_eq!(rt.of(5_000, 0.5), Duration::from_millis(4000));
        assert_eq!(rt.of(123, 0.0), Duration::from_millis(2012));
        assert_eq!(
            RunTime::fixed(Duration::from_secs(2)).of(90_000, 0.7),
            Duration::from_secs(2)
        );
    }
}
