//! Fetching one planned block: the path was chosen when the block was planned
//! ([`crate::plan`]); this module only does it, and never goes back into planning except to
//! ask for the query path's split, which planning code decides from the first page's totalHits.
//!
//! One code path per fetch kind serves both datasets: [`query::block`] (the synchronous query,
//! pages fetched concurrently once page 1 gave totalHits) and [`jobs::block`] (an async job:
//! submit, poll, read cursor pages, delete), each generic over [`Dataset`], which says how a
//! dataset's requests are made and its records keyed and written. [`sink`] sends the pages to
//! the Writer under the partition's lease. A new path or dataset is one new file or impl.
//!
//! Guarantees:
//! - Every request goes through the client, hence through the RateLimiter.
//! - The completion is sent only after every page of the block was acknowledged, and the
//!   Writer commits it only if every page of the lease was written, so after a crash a
//!   partition is either done with all its rows or not done.
//! - The lease is renewed while the block is fetched; a lost lease stops the fetch.

pub mod budget;
pub mod jobs;
pub mod query;
pub mod sink;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::actors::work::{Outcome, Work, WorkPriority};
use crate::actors::writer::{PageRecords, RenewLease, Writer};
use crate::config::FetchSettings;
use crate::genesys::model::{
    AsyncConversationQuery, AsyncUserDetailsQuery, ConversationQuery, Interval, Paging,
    ReceivedConversation, UserDetail, UserDetailsQuery,
};
use crate::genesys::{ApiError, GenesysClient, JobKind, Priority};
use crate::plan::{Mode, Path};
use crate::progress::ProgressTracker;
use crate::storage::checkpoint::Dataset as DatasetName;
use crate::verify::{Tally, Verdict, Verification};
use sink::{Finality, Sink};

/// Test-only fault injection: panic inside a Fetcher after this many pages (counted over all
/// Fetchers), once. 0 = off.
#[derive(Debug, Clone, Default)]
pub struct FaultHooks {
    panic_after_pages: Arc<AtomicI64>,
}

impl FaultHooks {
    pub fn panic_after_pages(n: i64) -> Self {
        FaultHooks {
            panic_after_pages: Arc::new(AtomicI64::new(n)),
        }
    }

    fn on_page(&self) {
        // Counts down to 1, panics once, then stays at 0 (off).
        let before = self
            .panic_after_pages
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                (v > 0).then_some(v - 1)
            });
        if before == Ok(1) {
            panic!("injected fault: Fetcher panic mid-partition");
        }
    }
}

/// Everything a fetch needs; shared by the Fetcher pool.
pub struct FetchContext {
    pub client: GenesysClient,
    pub writer: Addr<Writer>,
    pub settings: FetchSettings,
    pub mode: Mode,
    /// Jobs in flight (up to `max_jobs`, fewer for a while after a 429 on submit).
    pub jobs: jobs::JobPool,
    /// Query pages requested ahead of a block's page 1, shared by all Fetchers
    /// (`page_concurrency`): more would only wait in the RateLimiter's queue, holding tokens
    /// that may expire there, and memory.
    pub page_slots: Arc<tokio::sync::Semaphore>,
    /// Job results held in memory by all Fetchers together, from a page's request until the
    /// Writer answered it (`job_page_size × (max_outstanding_pages + 1)` records; the
    /// Writer's batches are bounded by its own limits).
    pub held_records: budget::RecordBudget,
    /// The jobs' dataAvailabilityDate per kind, as last read (None: unknown / unavailable).
    pub availability: Mutex<Availability>,
    pub faults: FaultHooks,
    /// Requests, pages and records, for progress.
    pub counters: Arc<FetchCounters>,
    pub progress: Option<Arc<ProgressTracker>>,
    /// Calendar time (the engine's clock): when a completion happens, for settling.
    pub clock: crate::clock::SharedClock,
    /// `settle_hours` (None: off); see [`crate::settle`].
    pub settle_after: Option<chrono::Duration>,
}

/// Last known dataAvailabilityDate of the jobs API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Availability {
    pub conversations: Option<DateTime<Utc>>,
    pub users: Option<DateTime<Utc>>,
}

/// Counters the progress display and the demo report read.
#[derive(Debug, Default)]
pub struct FetchCounters {
    pub pages: AtomicI64,
    pub records: AtomicI64,
    pub jobs: AtomicI64,
    pub refetch_passes: AtomicI64,
}

impl FetchContext {
    /// Reads the jobs' dataAvailabilityDate for these datasets (unknown on error: the query
    /// path is used then).
    pub async fn refresh_availability(&self, datasets: &[DatasetName]) {
        for &d in datasets {
            let kind = match d {
                DatasetName::Conversations => JobKind::Conversations,
                DatasetName::Users => JobKind::Users,
            };
            let date = match self.client.job_availability(kind, Priority::Backfill).await {
                Ok(a) => a.data_availability_date,
                Err(e) => {
                    log::warn!(
                        "cannot read the {d} jobs' data availability ({e}); using the query"
                    );
                    None
                }
            };
            let mut a = self.availability.lock().unwrap_or_else(|e| e.into_inner());
            match d {
                DatasetName::Conversations => a.conversations = date,
                DatasetName::Users => a.users = date,
            }
        }
    }

    /// The last known dataAvailabilityDate of `dataset`'s jobs.
    pub fn availability_for(&self, dataset: DatasetName) -> Option<DateTime<Utc>> {
        let a = self.availability.lock().unwrap_or_else(|e| e.into_inner());
        match dataset {
            DatasetName::Conversations => a.conversations,
            DatasetName::Users => a.users,
        }
    }

    /// Counts a page received (progress, fault hooks).
    fn page_received(&self) {
        self.faults.on_page();
        self.counters.pages.fetch_add(1, Ordering::Relaxed);
    }
}

/// The client priority of a partition.
pub fn priority(w: &Work) -> Priority {
    match w.priority {
        WorkPriority::CatchUp => Priority::CatchUp,
        WorkPriority::Backfill | WorkPriority::Settle => Priority::Backfill,
    }
}

/// Why a fetch stopped early.
#[derive(Debug)]
pub enum Stop {
    Api(ApiError),
    /// The query path's block is over the paging cap: planning split it into these.
    Split {
        children: Vec<Interval>,
        reason: String,
    },
    LeaseLost,
    /// A write failed (`true`: transient).
    Write(String, bool),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop::Api(e)
    }
}

/// One page of the synchronous query.
#[derive(Debug)]
pub struct QueryPage<R> {
    /// `None` when the key was absent (past the end).
    pub records: Option<Vec<R>>,
    pub total_hits: Option<i64>,
}

/// One page of a job's results.
#[derive(Debug)]
pub struct JobPage<R> {
    pub records: Vec<R>,
    /// Absent on the last page.
    pub cursor: Option<String>,
}

/// What differs between datasets; everything else is one code path per fetch kind.
///
/// The futures are not `Send` (the HTTP client is bound to its thread, see
/// [`GenesysClient`]), hence plain `async fn`.
#[allow(async_fn_in_trait)]
pub trait Dataset {
    type Record: 'static;
    /// The jobs API of this dataset.
    const JOB: JobKind;
    /// Write every record of a page, not only the first of each key: a user's timeline can come
    /// in pieces (day documents), and those writes are upserts by (userId, startTime).
    const WRITE_REPEATS: bool;

    /// The record's de-duplication key (conversationId, userId).
    fn key(r: &Self::Record) -> &str;

    /// The records as a page for the Writer.
    fn into_page(records: Vec<Self::Record>, finality: &mut Finality) -> PageRecords;

    async fn query_page(
        client: &GenesysClient,
        range: Interval,
        page: i64,
        page_size: i64,
        p: Priority,
    ) -> Result<QueryPage<Self::Record>, ApiError>;

    async fn submit_job(
        client: &GenesysClient,
        range: Interval,
        p: Priority,
    ) -> Result<String, ApiError>;

    async fn job_page(
        client: &GenesysClient,
        job_id: &str,
        cursor: Option<&str>,
        page_size: u32,
        p: Priority,
    ) -> Result<JobPage<Self::Record>, ApiError>;
}

/// Conversation details.
pub struct Conversations;

/// User details (presence and routing status).
pub struct Users;

impl Dataset for Conversations {
    type Record = ReceivedConversation;
    const JOB: JobKind = JobKind::Conversations;
    const WRITE_REPEATS: bool = false;

    fn key(r: &ReceivedConversation) -> &str {
        &r.conversation.conversation_id
    }

    fn into_page(records: Vec<ReceivedConversation>, finality: &mut Finality) -> PageRecords {
        PageRecords::Conversations(records.into_iter().map(|c| finality.mark(c)).collect())
    }

    async fn query_page(
        client: &GenesysClient,
        range: Interval,
        page: i64,
        page_size: i64,
        p: Priority,
    ) -> Result<QueryPage<ReceivedConversation>, ApiError> {
        let q = ConversationQuery {
            interval: range.to_string(),
            order: Some("asc".into()),
            order_by: Some("conversationStart".into()),
            paging: Some(Paging {
                page_size,
                page_number: page,
            }),
            conversation_filters: Vec::new(),
            segment_filters: Vec::new(),
        };
        let r = client.query_conversations(&q, p).await?;
        Ok(QueryPage {
            records: r.conversations,
            total_hits: r.total_hits,
        })
    }

    async fn submit_job(
        client: &GenesysClient,
        range: Interval,
        p: Priority,
    ) -> Result<String, ApiError> {
        let q = AsyncConversationQuery {
            interval: range.to_string(),
            order: Some("asc".into()),
            order_by: Some("conversationStart".into()),
            conversation_filters: Vec::new(),
            segment_filters: Vec::new(),
            limit: None,
            // The synchronous query's rule: a conversation comes back for the day it started
            // on only, so day blocks do not repeat each other's conversations, and the count
            // query verifies the same set.
            start_of_day_interval_matching: Some(true),
        };
        client.submit_conversation_job(&q, p).await
    }

    async fn job_page(
        client: &GenesysClient,
        job_id: &str,
        cursor: Option<&str>,
        page_size: u32,
        p: Priority,
    ) -> Result<JobPage<ReceivedConversation>, ApiError> {
        let r = client
            .conversation_job_results(job_id, cursor, page_size, p)
            .await?;
        Ok(JobPage {
            records: r.conversations.unwrap_or_default(),
            cursor: r.cursor,
        })
    }
}

impl Dataset for Users {
    type Record = UserDetail;
    const JOB: JobKind = JobKind::Users;
    const WRITE_REPEATS: bool = true;

    fn key(r: &UserDetail) -> &str {
        &r.user_id
    }

    fn into_page(records: Vec<UserDetail>, _: &mut Finality) -> PageRecords {
        PageRecords::Users(records)
    }

    async fn query_page(
        client: &GenesysClient,
        range: Interval,
        page: i64,
        page_size: i64,
        p: Priority,
    ) -> Result<QueryPage<UserDetail>, ApiError> {
        let q = UserDetailsQuery {
            interval: range.to_string(),
            order: Some("asc".into()),
            paging: Some(Paging {
                page_size,
                page_number: page,
            }),
            user_filters: Vec::new(),
            presence_filters: Vec::new(),
            routing_status_filters: Vec::new(),
        };
        let r = client.query_users(&q, p).await?;
        Ok(QueryPage {
            records: r.user_details,
            total_hits: r.total_hits,
        })
    }

    async fn submit_job(
        client: &GenesysClient,
        range: Interval,
        p: Priority,
    ) -> Result<String, ApiError> {
        // User jobs have no startOfDayIntervalMatching: a status that overlaps a block's edge
        // comes back with both neighbouring blocks. The writes are upserts by
        // (userId, startTime), and verification counts distinct users, which both APIs agree
        // on for a day block.
        let q = AsyncUserDetailsQuery {
            interval: range.to_string(),
            order: Some("asc".into()),
            user_filters: Vec::new(),
            presence_filters: Vec::new(),
            routing_status_filters: Vec::new(),
            limit: None,
        };
        client.submit_user_job(&q, p).await
    }

    async fn job_page(
        client: &GenesysClient,
        job_id: &str,
        cursor: Option<&str>,
        page_size: u32,
        p: Priority,
    ) -> Result<JobPage<UserDetail>, ApiError> {
        let r = client
            .user_job_results(job_id, cursor, page_size, p)
            .await?;
        Ok(JobPage {
            records: r.user_details.unwrap_or_default(),
            cursor: r.cursor,
        })
    }
}

/// The block's totalHits, read with a one-row query.
pub async fn count<D: Dataset>(ctx: &FetchContext, work: &Work) -> Result<Option<i64>, ApiError> {
    Ok(D::query_page(&ctx.client, work.range, 1, 1, priority(work))
        .await?
        .total_hits)
}

/// The end of a pass, the same for both paths: verified or unverified (the tally), or, after
/// at most one totalHits re-read per block, another pass (`None`).
async fn end_of_pass<D: Dataset>(
    ctx: &FetchContext,
    work: &Work,
    v: &mut Verification,
) -> Result<Option<Tally>, ApiError> {
    let verdict = match v.end_of_pass() {
        Verdict::Recount => v.recounted(count::<D>(ctx, work).await?),
        other => other,
    };
    match verdict {
        Verdict::Finished(t) => Ok(Some(t)),
        Verdict::Again | Verdict::Recount => {
            ctx.counters.refetch_passes.fetch_add(1, Ordering::Relaxed);
            Ok(None)
        }
    }
}

/// Fetches one partition to its end and reports how it ended. Renews the lease meanwhile.
pub async fn block(ctx: Arc<FetchContext>, work: Work, lease: String) -> Outcome {
    let lease_for = StdDuration::from_secs(ctx.settings.lease_secs);
    let renew = {
        let ctx = ctx.clone();
        let (id, token) = (work.id, lease.clone());
        async move {
            loop {
                tokio::time::sleep(lease_for / 3).await;
                let ok = ctx
                    .writer
                    .send(RenewLease {
                        id,
                        token: token.clone(),
                        lease_for,
                    })
                    .await;
                match ok {
                    Ok(Ok(true)) => continue,
                    Ok(Ok(false)) => return,
                    // A transient database hiccup: the lease has two more thirds to live.
                    Ok(Err(_)) | Err(_) => continue,
                }
            }
        }
    };
    let run = run(&ctx, &work, &lease);
    tokio::select! {
        outcome = run => outcome,
        _ = renew => Outcome::LeaseLost,
    }
}

async fn run(ctx: &Arc<FetchContext>, work: &Work, lease: &str) -> Outcome {
    let mut sink = Sink::new(ctx, work, lease);
    let result = match (work.dataset, work.path) {
        (DatasetName::Conversations, Path::Query) => {
            query::block::<Conversations>(ctx, work, &mut sink).await
        }
        (DatasetName::Users, Path::Query) => query::block::<Users>(ctx, work, &mut sink).await,
        (DatasetName::Conversations, Path::Job) => {
            jobs::block::<Conversations>(ctx, work, &mut sink).await
        }
        (DatasetName::Users, Path::Job) => jobs::block::<Users>(ctx, work, &mut sink).await,
    };
    let result = match result {
        Ok(t) => sink.complete(t).await.map(|_| t),
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => Outcome::Completed(t),
        Err(Stop::Split { children, reason }) => Outcome::Split { children, reason },
        Err(Stop::Api(e)) if e.must_split() => Outcome::Fail {
            error: format!("{e} (the block cannot be split any further)"),
        },
        Err(Stop::Api(e @ ApiError::Client { .. })) => Outcome::Fail {
            error: e.to_string(),
        },
        Err(Stop::Api(e)) => Outcome::Retry {
            error: e.to_string(),
        },
        Err(Stop::LeaseLost) => Outcome::LeaseLost,
        Err(Stop::Write(e, true)) => Outcome::Retry { error: e },
        Err(Stop::Write(e, false)) => Outcome::Fail { error: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_hook_panics_exactly_once_on_the_nth_page() {
        let f = FaultHooks::panic_after_pages(3);
        f.on_page();
        f.on_page();
        let r = std::panic::catch_unwind(|| f.on_page());
        assert!(r.is_err());
        for _ in 0..10 {
            f.on_page();
        }
        let off = FaultHooks::default();
        off.on_page();
    }
}
