//! Fetchers: fetch one partition at a time, page by page, verify it, and write it through the
//! Writer; a pool of them runs under [`actix::Supervisor`].
//!
//! The paging and verification rules are in [`crate::verify::PagedFetch`]; this module does the
//! requests ([`fetch_partition`], a plain async function) and the actor shell around it.
//!
//! Guarantees:
//! - Every request goes through the client, hence through the RateLimiter.
//! - A page's records reach the Writer before the completion; the completion is committed with
//!   the last write, so after a crash a partition is either done with all its rows or not done.
//! - At most `max_outstanding_pages` pages per Fetcher wait for the Writer's acknowledgement.
//! - A Fetcher whose work panics reports the partition back (to be re-queued) and is restarted
//!   by its Supervisor with fresh state.
//!
//! Jobs path and verification: job results carry no totalHits. The block's totalHits comes
//! from the synchronous query's first page (which the engine requests anyway to size the
//! block), and jobs are submitted with `startOfDayIntervalMatching: true` so both count the
//! same conversations. At the end the distinct count is compared with that number, re-read
//! once with a one-row query on a mismatch; a persistent mismatch resubmits the job (bounded
//! by `verify_passes`), then the partition completes unverified with both numbers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::actors::coordinator::{Outcome, Work, WorkPriority};
use crate::actors::writer::{
    ConversationRecord, PageRecords, PartitionCompletion, RenewLease, WritePage, Writer,
};
use crate::config::FetchSettings;
use crate::genesys::model::{
    job_state, AsyncConversationQuery, AsyncUserDetailsQuery, ConversationQuery, Interval, Paging,
    ReceivedConversation, UserDetail, UserDetailsQuery,
};
use crate::genesys::{ApiError, GenesysClient, JobKind, Priority};
use crate::partition::{choose_path, split_block, BlockRules, Mode, Path};
use crate::progress::ProgressTracker;
use crate::storage::checkpoint::Dataset;
use crate::storage::StorageError;
use crate::verify::{EndRule, Next, PagedFetch, Tally};

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

/// Everything a Fetcher needs; shared by the pool.
pub struct FetchContext {
    pub client: GenesysClient,
    pub writer: Addr<Writer>,
    pub settings: FetchSettings,
    pub mode: Mode,
    /// Running jobs (the org's job cap is shared with other integrations).
    pub jobs: Arc<tokio::sync::Semaphore>,
    /// The jobs' dataAvailabilityDate per kind, as last read (None: unknown / unavailable).
    pub availability: Mutex<Availability>,
    pub faults: FaultHooks,
    /// Requests, pages and records, for progress.
    pub counters: Arc<FetchCounters>,
    pub progress: Option<Arc<ProgressTracker>>,
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
    pub async fn refresh_availability(&self, datasets: &[Dataset]) {
        for &d in datasets {
            let kind = match d {
                Dataset::Conversations => JobKind::Conversations,
                Dataset::Users => JobKind::Users,
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
                Dataset::Conversations => a.conversations = date,
                Dataset::Users => a.users = date,
            }
        }
    }

    fn rules(&self) -> BlockRules {
        self.settings.block_rules()
    }

    fn availability_for(&self, dataset: Dataset) -> Option<DateTime<Utc>> {
        let a = self.availability.lock().unwrap_or_else(|e| e.into_inner());
        match dataset {
            Dataset::Conversations => a.conversations,
            Dataset::Users => a.users,
        }
    }
}

fn priority(w: &Work) -> Priority {
    match w.priority {
        WorkPriority::CatchUp => Priority::CatchUp,
        WorkPriority::Backfill => Priority::Backfill,
    }
}

/// Why a fetch stopped early.
enum Stop {
    Api(ApiError),
    LeaseLost,
    Write(String, bool),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop::Api(e)
    }
}

/// Pages in flight to the Writer.
struct WriteQueue<'a> {
    ctx: &'a FetchContext,
    work: &'a Work,
    lease: &'a str,
    pending: VecDeque<actix::dev::Request<Writer, WritePage>>,
    /// Every conversation received so far had ended (a partition is final only then).
    all_ended: bool,
}

impl<'a> WriteQueue<'a> {
    fn new(ctx: &'a FetchContext, work: &'a Work, lease: &'a str) -> Self {
        WriteQueue {
            ctx,
            work,
            lease,
            pending: VecDeque::new(),
            all_ended: true,
        }
    }

    async fn push(
        &mut self,
        page: PageRecords,
        completion: Option<PartitionCompletion>,
    ) -> Result<(), Stop> {
        let req = self.ctx.writer.send(WritePage {
            partition_id: self.work.id,
            lease_token: self.lease.to_owned(),
            page,
            completion,
        });
        self.pending.push_back(req);
        while self.pending.len() > self.ctx.settings.max_outstanding_pages.max(1) {
            self.wait_one().await?;
        }
        Ok(())
    }

    async fn wait_one(&mut self) -> Result<(), Stop> {
        if let Some(req) = self.pending.pop_front() {
            match req.await {
                Ok(Ok(())) => {}
                Ok(Err(StorageError::LeaseLost { .. })) => return Err(Stop::LeaseLost),
                Ok(Err(e)) => {
                    let transient = e.is_transient();
                    return Err(Stop::Write(e.to_string(), transient));
                }
                Err(e) => return Err(Stop::Write(format!("writer unavailable: {e}"), true)),
            }
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), Stop> {
        while !self.pending.is_empty() {
            self.wait_one().await?;
        }
        Ok(())
    }

    async fn conversations(&mut self, new: Vec<ReceivedConversation>) -> Result<(), Stop> {
        if new.is_empty() {
            return Ok(());
        }
        self.ctx
            .counters
            .records
            .fetch_add(new.len() as i64, Ordering::Relaxed);
        if let Some(p) = &self.ctx.progress {
            p.add_conversations(new.len() as u64);
        }
        // Final: it ended before the watermark (its data has settled).
        let watermark = self.work.watermark.unwrap_or(self.work.range.end);
        let records = new
            .into_iter()
            .map(|c| {
                let done = c
                    .conversation
                    .conversation_end
                    .is_some_and(|e| e <= watermark);
                self.all_ended &= done;
                ConversationRecord {
                    received: c,
                    is_final: done,
                }
            })
            .collect();
        self.push(PageRecords::Conversations(records), None).await
    }

    async fn users(&mut self, new: Vec<UserDetail>) -> Result<(), Stop> {
        if new.is_empty() {
            return Ok(());
        }
        self.ctx
            .counters
            .records
            .fetch_add(new.len() as i64, Ordering::Relaxed);
        self.push(PageRecords::Users(new), None).await
    }

    /// Commits the completion after everything before it.
    async fn complete(&mut self, t: Tally) -> Result<(), Stop> {
        let empty = match self.work.dataset {
            Dataset::Conversations => PageRecords::Conversations(Vec::new()),
            Dataset::Users => PageRecords::Users(Vec::new()),
        };
        self.push(
            empty,
            Some(PartitionCompletion {
                total_hits: t.total_hits,
                received: t.received,
                verified: t.verified,
                // A conversation not final yet keeps its partition open for catch-up.
                is_final: self.work.is_final && self.all_ended,
            }),
        )
        .await?;
        self.drain().await
    }
}

/// Fetches one partition to its end and reports how it ended. Renews the lease meanwhile.
pub async fn fetch_partition(ctx: Arc<FetchContext>, work: Work, lease: String) -> Outcome {
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
    let run = run_partition(&ctx, &work, &lease);
    tokio::select! {
        outcome = run => outcome,
        _ = renew => Outcome::LeaseLost,
    }
}

async fn run_partition(ctx: &FetchContext, work: &Work, lease: &str) -> Outcome {
    let mut writes = WriteQueue::new(ctx, work, lease);
    let result = match work.dataset {
        Dataset::Conversations => conversations(ctx, work, &mut writes).await,
        Dataset::Users => users(ctx, work, &mut writes).await,
    };
    let result = match result {
        Ok(t) => writes.complete(t).await.map(|_| t),
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => Outcome::Completed(t),
        Err(Stop::Api(e)) if e.must_split() => match split_block(work.range, ctx.rules().min_block)
        {
            Some(children) => Outcome::Split {
                children,
                reason: e.to_string(),
            },
            None => Outcome::Fail {
                error: format!("{e} (block already at the minimum size)"),
            },
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

fn new_fetch(ctx: &FetchContext, work: &Work, page_size: i64, rule: EndRule) -> PagedFetch {
    let rules = ctx.rules();
    let f = PagedFetch::new(
        work.range,
        rules,
        page_size,
        ctx.settings.verify_passes,
        rule,
    );
    if split_block(work.range, rules.min_block).is_none() {
        f.without_split()
    } else {
        f
    }
}

fn split_outcome(work: &Work, ctx: &FetchContext, total_hits: i64) -> Result<Tally, Stop> {
    Err(Stop::Api(ApiError::TooLarge {
        status: 200,
        code: "sluice.block.too.large".into(),
        message: format!(
            "{} holds {total_hits} conversations (paging cap {}, busy threshold {})",
            work.range, ctx.settings.paging_cap, ctx.settings.busy_hits
        ),
    }))
}

fn conversation_query(range: Interval, page: i64, page_size: i64) -> ConversationQuery {
    ConversationQuery {
        interval: range.to_string(),
        order: Some("asc".into()),
        order_by: Some("conversationStart".into()),
        paging: Some(Paging {
            page_size,
            page_number: page,
        }),
        conversation_filters: Vec::new(),
        segment_filters: Vec::new(),
    }
}

fn users_query(range: Interval, page: i64, page_size: i64) -> UserDetailsQuery {
    UserDetailsQuery {
        interval: range.to_string(),
        order: Some("asc".into()),
        paging: Some(Paging {
            page_size,
            page_number: page,
        }),
        user_filters: Vec::new(),
        presence_filters: Vec::new(),
        routing_status_filters: Vec::new(),
    }
}

/// Conversations of one block: query pages, or a job for big old blocks.
async fn conversations(
    ctx: &FetchContext,
    work: &Work,
    writes: &mut WriteQueue<'_>,
) -> Result<Tally, Stop> {
    let mut fetch = new_fetch(ctx, work, ctx.settings.page_size, EndRule::Conversations);
    let mut page = 1;
    let mut first = true;
    loop {
        let q = conversation_query(work.range, page, fetch.page_size());
        let resp = ctx.client.query_conversations(&q, priority(work)).await?;
        ctx.faults.on_page();
        ctx.counters.pages.fetch_add(1, Ordering::Relaxed);
        let n = resp.conversations.as_ref().map(Vec::len);
        let new: Vec<ReceivedConversation> = resp
            .conversations
            .unwrap_or_default()
            .into_iter()
            .filter(|c| fetch.accept(&c.conversation.conversation_id))
            .collect();
        writes.conversations(new).await?;
        let next = fetch.end_of_page(n, resp.total_hits);
        if first {
            first = false;
            if let Some(th) = fetch.total_hits() {
                if !matches!(next, Next::Split { .. }) {
                    let path = choose_path(
                        work.range,
                        ctx.mode,
                        ctx.availability_for(Dataset::Conversations),
                        th,
                        ctx.settings.jobs_min_hits,
                    );
                    if path == Path::Jobs {
                        return conversations_by_job(ctx, work, writes, fetch, th).await;
                    }
                }
            }
        }
        match next {
            Next::Page(p) => {
                if p == 1 {
                    ctx.counters.refetch_passes.fetch_add(1, Ordering::Relaxed);
                }
                page = p
            }
            Next::Split { total_hits } => return split_outcome(work, ctx, total_hits),
            Next::Finished(t) => return Ok(t),
        }
    }
}

/// Reads the block's totalHits with a one-row query.
async fn count_conversations(ctx: &FetchContext, work: &Work) -> Result<Option<i64>, Stop> {
    let q = conversation_query(work.range, 1, 1);
    Ok(ctx
        .client
        .query_conversations(&q, priority(work))
        .await?
        .total_hits)
}

async fn count_users(ctx: &FetchContext, work: &Work) -> Result<Option<i64>, Stop> {
    let q = users_query(work.range, 1, 1);
    Ok(ctx.client.query_users(&q, priority(work)).await?.total_hits)
}

/// Waits for a job to finish; `Ok(false)` when it failed, expired or was cancelled.
async fn await_job(ctx: &FetchContext, work: &Work, kind: JobKind, id: &str) -> Result<bool, Stop> {
    let mut delay = ctx.settings.job_poll_secs;
    loop {
        tokio::time::sleep(StdDuration::from_secs_f64(delay)).await;
        let status = ctx.client.job_status(kind, id, priority(work)).await?;
        match status.state.as_str() {
            job_state::FULFILLED => return Ok(true),
            job_state::FAILED | job_state::CANCELLED | job_state::EXPIRED => {
                log::warn!(
                    "job {id} for {} ended {}{}; resubmitting",
                    work.range,
                    status.state,
                    status
                        .error_message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
                return Ok(false);
            }
            _ => delay = (delay * 2.0).min(ctx.settings.job_poll_max_secs),
        }
    }
}

async fn conversations_by_job(
    ctx: &FetchContext,
    work: &Work,
    writes: &mut WriteQueue<'_>,
    mut fetch: PagedFetch,
    total_hits: i64,
) -> Result<Tally, Stop> {
    let _slot = ctx.jobs.acquire().await;
    let mut total_hits = total_hits;
    let mut submissions = 0;
    loop {
        submissions += 1;
        let q = AsyncConversationQuery {
            interval: work.range.to_string(),
            order: Some("asc".into()),
            order_by: Some("conversationStart".into()),
            conversation_filters: Vec::new(),
            segment_filters: Vec::new(),
            limit: None,
            start_of_day_interval_matching: Some(true),
        };
        let id = ctx
            .client
            .submit_conversation_job(&q, priority(work))
            .await?;
        ctx.counters.jobs.fetch_add(1, Ordering::Relaxed);
        let mut complete = await_job(ctx, work, JobKind::Conversations, &id).await?;
        let mut cursor: Option<String> = None;
        while complete {
            let res = ctx
                .client
                .conversation_job_results(
                    &id,
                    cursor.as_deref(),
                    ctx.settings.job_page_size as u32,
                    priority(work),
                )
                .await;
            let res = match res {
                Ok(r) => r,
                // Results expired or the job vanished: resubmit.
                Err(ApiError::Client { status: 404, .. }) => {
                    complete = false;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            ctx.faults.on_page();
            ctx.counters.pages.fetch_add(1, Ordering::Relaxed);
            let new: Vec<ReceivedConversation> = res
                .conversations
                .unwrap_or_default()
                .into_iter()
                .filter(|c| fetch.accept(&c.conversation.conversation_id))
                .collect();
            writes.conversations(new).await?;
            cursor = res.cursor;
            if cursor.is_none() {
                break;
            }
        }
        let _ = ctx
            .client
            .delete_job(JobKind::Conversations, &id, priority(work))
            .await;
        if let Some(t) = end_job_pass(
            ctx,
            work,
            JobKind::Conversations,
            &mut fetch,
            &mut total_hits,
            complete,
            submissions,
        )
        .await?
        {
            return Ok(t);
        }
    }
}

/// The end of one job pass, the same for both datasets: a complete pass is verified against
/// totalHits (re-read once on a mismatch) and either ends the partition or starts another
/// pass; an incomplete one (expired, failed) is resubmitted until `job_attempts`.
#[allow(clippy::too_many_arguments)]
async fn end_job_pass(
    ctx: &FetchContext,
    work: &Work,
    kind: JobKind,
    fetch: &mut PagedFetch,
    total_hits: &mut i64,
    complete: bool,
    submissions: u32,
) -> Result<Option<Tally>, Stop> {
    if complete {
        let mut t = fetch.verify_against(*total_hits);
        if !t.verified {
            let recount = match kind {
                JobKind::Conversations => count_conversations(ctx, work).await?,
                JobKind::Users => count_users(ctx, work).await?,
            };
            if let Some(th) = recount {
                *total_hits = th;
                t = fetch.verify_against(th);
            }
        }
        if t.verified || !fetch.next_pass() {
            return Ok(Some(t));
        }
        ctx.counters.refetch_passes.fetch_add(1, Ordering::Relaxed);
    } else if submissions >= ctx.settings.job_attempts {
        return Err(Stop::Api(ApiError::ServerError {
            status: 500,
            message: format!(
                "job for {} did not complete after {submissions} submissions",
                work.range
            ),
        }));
    }
    Ok(None)
}

/// User details (presence and routing status) of one block.
async fn users(
    ctx: &FetchContext,
    work: &Work,
    writes: &mut WriteQueue<'_>,
) -> Result<Tally, Stop> {
    let mut fetch = new_fetch(ctx, work, ctx.settings.page_size, EndRule::Users);
    let mut page = 1;
    let mut first = true;
    loop {
        let q = users_query(work.range, page, fetch.page_size());
        let resp = ctx.client.query_users(&q, priority(work)).await?;
        ctx.faults.on_page();
        ctx.counters.pages.fetch_add(1, Ordering::Relaxed);
        let n = resp.user_details.as_ref().map(Vec::len);
        let details = resp.user_details.unwrap_or_default();
        // Counted once per userId, but every record is written: a user's timeline can come in
        // pieces (day documents), and the writes are upserts by (userId, startTime).
        for u in &details {
            fetch.accept(&u.user_id);
        }
        writes.users(details).await?;
        let next = fetch.end_of_page(n, resp.total_hits);
        if first {
            first = false;
            if let Some(th) = fetch.total_hits() {
                let path = choose_path(
                    work.range,
                    ctx.mode,
                    ctx.availability_for(Dataset::Users),
                    th,
                    ctx.settings.jobs_min_hits,
                );
                if path == Path::Jobs && !matches!(next, Next::Split { .. } | Next::Finished(_)) {
                    return users_by_job(ctx, work, writes, fetch, th).await;
                }
            }
        }
        match next {
            Next::Page(p) => page = p,
            Next::Split { total_hits } => return split_outcome(work, ctx, total_hits),
            Next::Finished(t) => return Ok(t),
        }
    }
}

async fn users_by_job(
    ctx: &FetchContext,
    work: &Work,
    writes: &mut WriteQueue<'_>,
    mut fetch: PagedFetch,
    total_hits: i64,
) -> Result<Tally, Stop> {
    let _slot = ctx.jobs.acquire().await;
    let mut total_hits = total_hits;
    let mut submissions = 0;
    loop {
        submissions += 1;
        let q = AsyncUserDetailsQuery {
            interval: work.range.to_string(),
            order: Some("asc".into()),
            user_filters: Vec::new(),
            presence_filters: Vec::new(),
            routing_status_filters: Vec::new(),
            limit: None,
        };
        let id = ctx.client.submit_user_job(&q, priority(work)).await?;
        ctx.counters.jobs.fetch_add(1, Ordering::Relaxed);
        let mut complete = await_job(ctx, work, JobKind::Users, &id).await?;
        let mut cursor: Option<String> = None;
        while complete {
            let res = match ctx
                .client
                .user_job_results(
                    &id,
                    cursor.as_deref(),
                    ctx.settings.job_page_size as u32,
                    priority(work),
                )
                .await
            {
                Ok(r) => r,
                Err(ApiError::Client { status: 404, .. }) => {
                    complete = false;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            ctx.faults.on_page();
            ctx.counters.pages.fetch_add(1, Ordering::Relaxed);
            let details = res.user_details.unwrap_or_default();
            for u in &details {
                fetch.accept(&u.user_id);
            }
            writes.users(details).await?;
            cursor = res.cursor;
            if cursor.is_none() {
                break;
            }
        }
        let _ = ctx
            .client
            .delete_job(JobKind::Users, &id, priority(work))
            .await;
        if let Some(t) = end_job_pass(
            ctx,
            work,
            JobKind::Users,
            &mut fetch,
            &mut total_hits,
            complete,
            submissions,
        )
        .await?
        {
            return Ok(t);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

/// Fetch this partition under this lease.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FetchPartition {
    pub work: Work,
    pub lease_token: String,
}

/// Stop the current partition now (shutdown); it is reported as `Released`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CancelFetch;

/// A Fetcher's report to the Coordinator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FetchDone {
    pub fetcher: usize,
    pub work: Work,
    pub lease_token: String,
    pub outcome: Outcome,
}

/// One Fetcher of the pool.
pub struct Fetcher {
    index: usize,
    ctx: Arc<FetchContext>,
    report: Recipient<FetchDone>,
    current: Option<tokio::task::AbortHandle>,
}

impl Fetcher {
    pub fn new(index: usize, ctx: Arc<FetchContext>, report: Recipient<FetchDone>) -> Self {
        Fetcher {
            index,
            ctx,
            report,
            current: None,
        }
    }

    /// Starts a supervised Fetcher.
    pub fn start_supervised(
        index: usize,
        ctx: Arc<FetchContext>,
        report: Recipient<FetchDone>,
    ) -> Addr<Fetcher> {
        actix::Supervisor::start(move |_| Fetcher::new(index, ctx, report))
    }
}

impl Actor for Fetcher {
    type Context = Context<Self>;
}

impl actix::Supervised for Fetcher {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::warn!("fetcher {} restarting", self.index);
        if let Some(h) = self.current.take() {
            h.abort();
        }
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let p = e.into_panic();
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

impl Handler<FetchPartition> for Fetcher {
    type Result = ();

    fn handle(&mut self, msg: FetchPartition, ctx: &mut Context<Self>) {
        let FetchPartition { work, lease_token } = msg;
        let task = actix_rt::spawn(fetch_partition(
            self.ctx.clone(),
            work.clone(),
            lease_token.clone(),
        ));
        self.current = Some(task.abort_handle());
        let report = self.report.clone();
        let index = self.index;
        ctx.spawn(task.into_actor(self).map(move |res, act, ctx| {
            act.current = None;
            let outcome = match res {
                Ok(o) => o,
                Err(e) if e.is_cancelled() => Outcome::Released,
                Err(e) => {
                    let why = panic_text(e);
                    log::error!(
                        "fetcher {index} crashed on {:?} {}: {why}; restarting it",
                        work.dataset,
                        work.range
                    );
                    // The Supervisor restarts the actor with fresh state.
                    ctx.stop();
                    Outcome::Retry {
                        error: format!("fetcher crashed: {why}"),
                    }
                }
            };
            report.do_send(FetchDone {
                fetcher: index,
                work,
                lease_token,
                outcome,
            });
        }));
    }
}

impl Handler<CancelFetch> for Fetcher {
    type Result = ();

    fn handle(&mut self, _: CancelFetch, _: &mut Context<Self>) {
        if let Some(h) = self.current.take() {
            h.abort();
        }
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
