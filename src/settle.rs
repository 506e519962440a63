//! Settling: Genesys's nightly analytics pipeline rewrites conversations at least 48 hours old
//! (corrections, late wrap-up segments, deletions), so a block first fetched while younger than
//! `settle_hours` (default 96) is fetched once more after it passes that age. These are the
//! plain decisions behind it, tested on fixed instants:
//! - [`settled_at`]: whether a verified completion at `now` settles its block.
//! - [`due`]: which done blocks need their settle re-fetch now.
//!
//! A settle re-fetch is an ordinary fetch with the normal verification (the Writer replaces
//! changed conversations and deletes what the verified re-fetch no longer returns); blocks that
//! old are past the jobs' dataAvailabilityDate, so `choose_path` sends them through a job.

use chrono::{DateTime, Duration, Utc};

use crate::storage::checkpoint::{PartitionRow, PartitionStatus};

/// Whether a block ending at `range_end`, fetched (and verified) at `now`, is settled:
/// `now ≥ range_end + settle`. Settling off (`None`): always.
pub fn settled_at(range_end: DateTime<Utc>, now: DateTime<Utc>, settle: Option<Duration>) -> bool {
    match settle {
        None => true,
        Some(s) => now >= range_end + s,
    }
}

/// The done partitions of `rows` whose settle re-fetch is due at `now`: not settled, and at
/// least `settle` old. Nothing when settling is off.
pub fn due<'a>(
    rows: impl IntoIterator<Item = &'a PartitionRow>,
    now: DateTime<Utc>,
    settle: Option<Duration>,
) -> Vec<i64> {
    let Some(s) = settle else {
        return Vec::new();
    };
    rows.into_iter()
        .filter(|r| r.status == PartitionStatus::Done && !r.is_settled)
        .filter(|r| now >= r.range_end + s)
        .map(|r| r.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::checkpoint::Dataset;

    fn t(s: &str) -> DateTime<Utc> {
        crate::plan::parse_bound(s).expect("instant")
    }

    fn row(id: i64, day: &str, status: PartitionStatus, is_settled: bool) -> PartitionRow {
        let start = t(day);
        PartitionRow {
            id,
            dataset: Dataset::Conversations,
            range_start: start,
            range_end: start + Duration::days(1),
            status,
            attempts: 1,
            total_hits: Some(10),
            received: Some(10),
            verified_at: None,
            last_error: None,
            lease_owner: None,
            lease_token: None,
            lease_expires_at: None,
            updated_at: start,
            is_final: true,
            fetched_at: None,
            is_settled,
        }
    }

    #[test]
    fn a_completion_settles_its_block_only_once_it_is_settle_hours_old() {
        let end = t("2026-01-02");
        let h96 = Some(Duration::hours(96));
        assert!(!settled_at(end, t("2026-01-02T05:00:00Z"), h96));
        assert!(!settled_at(end, t("2026-01-05T23:59:59Z"), h96));
        assert!(settled_at(end, t("2026-01-06"), h96));
        assert!(
            settled_at(end, t("2026-01-02T05:00:00Z"), None),
            "off: settled at once"
        );
    }

    #[test]
    fn due_are_the_unsettled_done_blocks_past_settle_hours() {
        let rows = [
            row(1, "2026-01-01", PartitionStatus::Done, false), // ends 01-02: due 01-06
            row(2, "2026-01-02", PartitionStatus::Done, false), // ends 01-03: due 01-07
            row(3, "2026-01-01", PartitionStatus::Done, true),  // settled already
            row(4, "2026-01-01", PartitionStatus::Pending, false), // not fetched yet
            row(5, "2026-01-01", PartitionStatus::Unverified, false), // retried anyway
        ];
        let h96 = Some(Duration::hours(96));
        assert!(due(&rows, t("2026-01-05T23:00:00Z"), h96).is_empty());
        assert_eq!(due(&rows, t("2026-01-06"), h96), vec![1]);
        assert_eq!(due(&rows, t("2026-01-07T12:00:00Z"), h96), vec![1, 2]);
        assert!(
            due(&rows, t("2026-02-01"), None).is_empty(),
            "0 turns it off"
        );
    }
}
