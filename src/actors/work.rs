//! What the Coordinator hands a Fetcher and what comes back: shared by both actors, so neither
//! imports the other for it (no import cycle).

use chrono::{DateTime, Utc};

use crate::genesys::model::Interval;
use crate::plan::{Block, Path};
use crate::storage::checkpoint::{Dataset, PartitionRow};
use crate::verify::Tally;

/// Which queue a partition waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkPriority {
    /// Catch-up (newest data, re-fetches of in-progress conversations).
    CatchUp = 0,
    Backfill = 1,
    /// Settle re-fetches ([`crate::settle`]): after backfill, because a block not yet copied
    /// at all is worse than one the nightly pipeline may have revised slightly.
    Settle = 2,
}

/// One partition to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub id: i64,
    pub dataset: Dataset,
    pub range: Interval,
    /// The path planned for it (see [`crate::plan::choose_path`]).
    pub path: Path,
    /// Whether the block lies before the watermark (its data is final).
    pub is_final: bool,
    pub priority: WorkPriority,
    /// Attempts in this run.
    pub attempts: u32,
    /// Not before this instant (a lease still held elsewhere).
    pub not_before: Option<DateTime<Utc>>,
    /// The watermark when it was handed out: a conversation that ended before it is final.
    pub watermark: Option<DateTime<Utc>>,
}

impl Work {
    /// Work on the stored partition `row`, not yet tried in this run.
    pub fn of_partition(
        row: &PartitionRow,
        path: Path,
        is_final: bool,
        priority: WorkPriority,
    ) -> Self {
        Work {
            id: row.id,
            dataset: row.dataset,
            range: row.range(),
            path,
            is_final,
            priority,
            attempts: 0,
            not_before: None,
            watermark: None,
        }
    }

    /// The planned block.
    pub fn block(&self) -> Block {
        Block {
            dataset: self.dataset,
            range: self.range,
            path: self.path,
        }
    }
}

/// How a Fetcher's work on a partition ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Completion committed with the last rows (verified or not, per the tally).
    Completed(Tally),
    /// The block is too big for one query partition: split it into these.
    Split {
        children: Vec<Interval>,
        reason: String,
    },
    /// Transient failure (or the Fetcher crashed): try again later.
    Retry { error: String },
    /// Permanent failure (e.g. a 400 the API will always give): fail it now.
    Fail { error: String },
    /// Given back (shutdown).
    Released,
    /// The lease was lost (another owner took it over): drop it.
    LeaseLost,
}
