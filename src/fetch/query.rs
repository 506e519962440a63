//! One block through the synchronous query.
//!
//! Page 1 gives totalHits. Over the paging cap, planning splits the block
//! ([`crate::plan::split_for_cap`]) and the pieces are fetched as their own partitions.
//! Otherwise the remaining pages, 2..=⌈totalHits ÷ pageSize⌉, are requested at once (up to
//! `page_concurrency`, each through the RateLimiter, whose concurrency cap and pacing still
//! hold), their records de-duplicated and streamed to the Writer as they arrive. Then
//! [`crate::verify`] decides: verified, one totalHits re-read, another pass, or unverified.

use std::ops::RangeInclusive;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::sink::Sink;
use super::{priority, Dataset, FetchContext, QueryPage, Stop};
use crate::actors::work::Work;
use crate::genesys::ApiError;
use crate::plan::{split_for_cap, BlockRules};
use crate::verify::{last_page, Tally, Verification};

/// Fetches `work` (a query block) to its end.
pub async fn block<D: Dataset>(
    ctx: &Arc<FetchContext>,
    work: &Work,
    sink: &mut Sink<'_>,
) -> Result<Tally, Stop> {
    let rules = ctx.settings.block_rules();
    let size = ctx.settings.page_size.max(1);
    let mut v = Verification::new(ctx.settings.verify_passes);
    loop {
        let first = page::<D>(ctx, work, 1)
            .await
            .map_err(|e| too_large(work, e, 1, size, None, rules.min_block))?;
        ctx.page_received();
        if let Some(th) = first.total_hits {
            v.set_total_hits(th);
            if v.pass() == 1 {
                if let Some(children) = split_for_cap(work.range, th, &rules) {
                    return Err(Stop::Split {
                        reason: format!(
                            "{th} results, over the paging cap of {}: {} pieces",
                            rules.paging_cap,
                            children.len()
                        ),
                        children,
                    });
                }
            }
        }
        let mut ended = is_empty(&first);
        sink.take::<D>(&mut v, first.records.unwrap_or_default())
            .await?;
        let last = v
            .total_hits()
            .map_or(1, |th| last_page(th, size, rules.paging_cap));
        if !ended {
            ended = pages_at_once::<D>(ctx, work, sink, &mut v, 2..=last).await?;
        }
        // Only when the pages planned left the count short: on, page by page, to an empty page.
        let mut next = last + 1;
        while !ended
            && v.total_hits().is_none_or(|th| v.received() < th)
            && next * size <= rules.paging_cap
        {
            let p = page::<D>(ctx, work, next)
                .await
                .map_err(|e| too_large(work, e, next, size, v.total_hits(), rules.min_block))?;
            ctx.page_received();
            if let Some(th) = p.total_hits {
                v.set_total_hits(th);
            }
            ended = is_empty(&p);
            sink.take::<D>(&mut v, p.records.unwrap_or_default())
                .await?;
            next += 1;
        }
        if let Some(t) = super::end_of_pass::<D>(ctx, work, &mut v).await? {
            return Ok(t);
        }
    }
}

fn is_empty<R>(p: &QueryPage<R>) -> bool {
    p.records.as_ref().is_none_or(Vec::is_empty)
}

async fn page<D: Dataset>(
    ctx: &FetchContext,
    work: &Work,
    n: i64,
) -> Result<QueryPage<D::Record>, ApiError> {
    D::query_page(
        &ctx.client,
        work.range,
        n,
        ctx.settings.page_size,
        priority(work),
    )
    .await
}

/// Requests `pages` at once (as many as the shared page slots allow) and takes each as it
/// arrives; true when one of them was empty (the end was passed).
async fn pages_at_once<D: Dataset>(
    ctx: &Arc<FetchContext>,
    work: &Work,
    sink: &mut Sink<'_>,
    v: &mut Verification,
    mut pages: RangeInclusive<i64>,
) -> Result<bool, Stop> {
    let size = ctx.settings.page_size;
    // Dropping the set (an error, a cancelled fetch) aborts the requests still in flight.
    let mut in_flight = JoinSet::new();
    let mut ended = false;
    let mut waiting = pages.next();
    loop {
        // A page slot (shared by all Fetchers) per request: wait for one only when this block
        // has nothing in flight, else take what is free and go on with the answers.
        while let Some(n) = waiting {
            let slot = if in_flight.is_empty() {
                ctx.page_slots.clone().acquire_owned().await.ok()
            } else {
                ctx.page_slots.clone().try_acquire_owned().ok()
            };
            let Some(slot) = slot else { break };
            let (ctx, range, p) = (ctx.clone(), work.range, priority(work));
            in_flight.spawn_local(async move {
                let page = D::query_page(&ctx.client, range, n, size, p).await;
                drop(slot);
                (n, page)
            });
            waiting = pages.next();
        }
        let Some(joined) = in_flight.join_next().await else {
            return Ok(ended);
        };
        let (n, result) = match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(Stop::Api(ApiError::Transport(e.to_string()))),
        };
        let min_block = ctx.settings.block_rules().min_block;
        let p = result.map_err(|e| too_large(work, e, n, size, v.total_hits(), min_block))?;
        ctx.page_received();
        if let Some(th) = p.total_hits {
            v.set_total_hits(th);
        }
        ended |= is_empty(&p);
        sink.take::<D>(v, p.records.unwrap_or_default()).await?;
    }
}

/// The API refused page `n` as too large (its paging cap is lower than configured, or the
/// interval is too long): planning splits the block for the cap the answer revealed.
fn too_large(
    work: &Work,
    e: ApiError,
    n: i64,
    size: i64,
    total_hits: Option<i64>,
    min_block: chrono::Duration,
) -> Stop {
    if !e.must_split() {
        return Stop::Api(e);
    }
    let reachable = ((n - 1) * size).max(1);
    let rules = BlockRules {
        paging_cap: reachable,
        min_block,
    };
    let hits = total_hits.unwrap_or(2 * reachable).max(reachable + 1);
    match split_for_cap(work.range, hits, &rules) {
        Some(children) => Stop::Split {
            reason: e.to_string(),
            children,
        },
        None => Stop::Api(e),
    }
}
