//! One planning round of the Coordinator, run as a future beside the actor: read the
//! checkpoint for the range, plan the new blocks (and their paths) up to the watermark, reopen
//! provisional and settle-due blocks, and return the work in the order it should run. Every
//! change goes through the Writer, so it is ordered with the pages already sent.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::actors::schedule::{plan_round, PlannedView};
use crate::actors::work::{Work, WorkPriority};
use crate::actors::writer::{
    LoadPartitions, PlanPartitions, ReopenForSettle, ReopenPartitions, Writer,
};
use crate::fetch::FetchContext;
use crate::genesys::model::Interval;
use crate::plan::{choose_path, group_job_days, Mode};
use crate::storage::checkpoint::{Dataset, NewPartition, PartitionRow, PartitionStatus};

/// Inputs of one planning round.
pub(crate) struct RoundInput {
    pub(crate) writer: Addr<Writer>,
    pub(crate) fetch: Arc<FetchContext>,
    pub(crate) datasets: Vec<Dataset>,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: Option<DateTime<Utc>>,
    pub(crate) watermark: DateTime<Utc>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) provisional: bool,
    pub(crate) mode: Mode,
    pub(crate) job_block_days: i64,
    pub(crate) priority: WorkPriority,
    /// Whether the round may ask the API (data availability): a standby makes no API call.
    pub(crate) calls_api: bool,
    pub(crate) settle_after: Option<chrono::Duration>,
}

pub(crate) struct Planned {
    pub(crate) work: Vec<Work>,
    pub(crate) total: u64,
    pub(crate) already_done: u64,
}

pub(crate) async fn ask<M>(writer: &Addr<Writer>, msg: M) -> Result<M::Result, String>
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
pub(crate) async fn run_round(input: RoundInput) -> Result<Planned, String> {
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
                let path = choose_path(r.range(), input.mode, availability);
                work.push(Work::of_partition(r, path, *is_final, input.priority));
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
                    let path = choose_path(r.range(), input.mode, availability);
                    let is_final = r.range_end <= input.watermark;
                    work.push(Work::of_partition(r, path, is_final, WorkPriority::Settle));
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
                let path = choose_path(r.range(), input.mode, availability);
                let is_final = r.range_end <= input.watermark;
                work.push(Work::of_partition(&r, path, is_final, input.priority));
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
