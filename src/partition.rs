//! Planning of atomic time blocks ("partitions"): pure functions, no I/O, so every calendar
//! decision the Coordinator takes can be tested on fixed instants.
//!
//! What it guarantees:
//! - Blocks never cross a UTC midnight: the synchronous query matches conversations that
//!   *started on a day touched by the interval*, so a day-aligned block [D, D+1) returns exactly
//!   the conversations started on D, and totalHits is checked per block.
//! - A block is 1 day by default; a busy day is split into hours, and a block whose totalHits
//!   would pass the paging cap (or that the API calls too large) is split again, down to
//!   `min_block` (15 minutes by default). Splits are aligned to UTC hours / `min_block`.
//! - Nothing newer than the watermark (now − 4 h by default) is ever planned as final.
//! - The path per block: history older than the jobs' `dataAvailabilityDate` may go through the
//!   async jobs API, the rest through the synchronous query (`--mode auto|query|jobs`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::genesys::model::{parse_instant, Interval};

/// Sizing rules for blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRules {
    /// totalHits above which a block longer than an hour is split into hours ("busy day").
    pub busy_hits: i64,
    /// Results reachable by paging (pageNumber × pageSize); a block above it must be split.
    pub paging_cap: i64,
    /// The smallest block the planner produces.
    pub min_block: Duration,
}

impl Default for BlockRules {
    fn default() -> Self {
        BlockRules {
            busy_hits: 5_000,
            paging_cap: 10_000,
            min_block: Duration::minutes(15),
        }
    }
}

/// Start of the UTC day holding `t`.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::days(1)).unwrap_or(t)
}

/// The watermark: data that started before it is treated as final.
pub fn watermark(now: DateTime<Utc>, lag: Duration) -> DateTime<Utc> {
    now - lag
}

/// Cuts `range` at every UTC midnight. The first and last block may be partial days.
pub fn day_blocks(range: Interval) -> Vec<Interval> {
    cut_at(range, Duration::days(1))
}

/// Cuts `range` at every multiple of `step` since the Unix epoch (UTC-aligned for hours and
/// divisors of an hour).
fn cut_at(range: Interval, step: Duration) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let aligned = start.duration_trunc(step).unwrap_or(start);
        let next = (aligned + step).min(range.end);
        out.push(Interval::new(start, next));
        start = next;
    }
    out
}

/// The next finer split of a block: a block longer than an hour becomes hours, a block of an
/// hour or less becomes `min_block` pieces; `None` when it is already at the minimum.
pub fn split_block(block: Interval, min_block: Duration) -> Option<Vec<Interval>> {
    let len = block.duration();
    let step = if len > Duration::hours(1) && min_block < Duration::hours(1) {
        Duration::hours(1)
    } else if len > min_block {
        min_block
    } else {
        return None;
    };
    let pieces = cut_at(block, step);
    if pieces.len() < 2 {
        // e.g. [00:30, 01:30) cut at hours gives two pieces; a block that does not cross a
        // boundary of `step` is cut at `min_block` instead.
        let finer = cut_at(block, min_block);
        return (finer.len() >= 2).then_some(finer);
    }
    Some(pieces)
}

/// Whether a block must be split before paging through it, given its totalHits.
pub fn needs_split(block: Interval, total_hits: i64, rules: &BlockRules) -> bool {
    let len = block.duration();
    if len <= rules.min_block {
        return false;
    }
    total_hits > rules.paging_cap || (len > Duration::hours(1) && total_hits > rules.busy_hits)
}

/// The pieces of `range` that no interval of `covered` covers (in order).
pub fn uncovered(range: Interval, covered: &[Interval]) -> Vec<Interval> {
    let mut cov: Vec<Interval> = covered
        .iter()
        .filter(|c| c.end > range.start && c.start < range.end)
        .copied()
        .collect();
    cov.sort();
    let mut out = Vec::new();
    let mut cursor = range.start;
    for c in cov {
        if c.start > cursor {
            out.push(Interval::new(cursor, c.start.min(range.end)));
        }
        cursor = cursor.max(c.end);
        if cursor >= range.end {
            break;
        }
    }
    if cursor < range.end {
        out.push(Interval::new(cursor, range.end));
    }
    out
}

/// New blocks to plan for `range`, given the blocks already planned: the uncovered gaps, cut
/// at UTC midnights.
pub fn plan_blocks(range: Interval, planned: &[Interval]) -> Vec<Interval> {
    uncovered(range, planned)
        .into_iter()
        .flat_map(day_blocks)
        .collect()
}

/// How blocks are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Jobs for big blocks older than the jobs' dataAvailabilityDate, the query for the rest.
    #[default]
    Auto,
    /// Only the synchronous query.
    Query,
    /// Jobs for every block older than the dataAvailabilityDate; the query for the rest (the
    /// jobs API has no newer data).
    Jobs,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Mode::Auto),
            "query" => Ok(Mode::Query),
            "jobs" => Ok(Mode::Jobs),
            other => Err(format!("expected auto, query or jobs, got {other:?}")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Query => "query",
            Mode::Jobs => "jobs",
        })
    }
}

/// The API path a block takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Query,
    Jobs,
}

/// Whether the jobs API can serve a block: it must end at or before the dataAvailabilityDate.
pub fn jobs_can_serve(block: Interval, availability: Option<DateTime<Utc>>) -> bool {
    availability.is_some_and(|a| block.end <= a)
}

/// The path for a block once its totalHits is known (the first query page gives it).
///
/// In `auto` mode a job is worth it only when the block is big: a job costs a submission, a few
/// status polls, a deletion and one results page per `job_page_size` conversations, while the
/// query costs one request per `page_size` conversations. `jobs_min_hits` is that break-even.
pub fn choose_path(
    block: Interval,
    mode: Mode,
    availability: Option<DateTime<Utc>>,
    total_hits: i64,
    jobs_min_hits: i64,
) -> Path {
    if !jobs_can_serve(block, availability) {
        return Path::Query;
    }
    match mode {
        Mode::Query => Path::Query,
        Mode::Jobs => Path::Jobs,
        Mode::Auto if total_hits >= jobs_min_hits => Path::Jobs,
        Mode::Auto => Path::Query,
    }
}

/// Parses a command-line bound: a UTC day (`2026-01-01`, midnight) or an RFC 3339 instant.
pub fn parse_bound(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| format!("invalid day {s:?}"))?;
        return Ok(Utc.from_utc_datetime(&midnight));
    }
    parse_instant(s)
        .map_err(|_| format!("{s:?} is neither a UTC day (YYYY-MM-DD) nor an RFC 3339 instant"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_bound(s).unwrap()
    }
    fn iv(a: &str, b: &str) -> Interval {
        Interval::new(t(a), t(b))
    }

    #[test]
    fn day_blocks_cut_at_midnight_with_partial_ends() {
        let blocks = day_blocks(iv("2026-01-01T06:00:00Z", "2026-01-03T10:00:00Z"));
        assert_eq!(
            blocks,
            vec![
                iv("2026-01-01T06:00:00Z", "2026-01-02"),
                iv("2026-01-02", "2026-01-03"),
                iv("2026-01-03", "2026-01-03T10:00:00Z"),
            ]
        );
        assert!(day_blocks(iv("2026-01-01", "2026-01-01T00:00:00.001Z")).len() == 1);
    }

    #[test]
    fn day_blocks_cover_the_range_exactly() {
        let r = iv("2026-01-01", "2026-03-01");
        let b = day_blocks(r);
        assert_eq!(b.len(), 59);
        assert_eq!(b[0].start, r.start);
        assert_eq!(b.last().unwrap().end, r.end);
        for w in b.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }

    #[test]
    fn split_goes_day_then_hours_then_quarter_hours_then_stops() {
        let min = Duration::minutes(15);
        let hours = split_block(iv("2026-01-01", "2026-01-02"), min).unwrap();
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[3], iv("2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z"));
        let quarters = split_block(hours[3], min).unwrap();
        assert_eq!(quarters.len(), 4);
        assert_eq!(
            quarters[1],
            iv("2026-01-01T03:15:00Z", "2026-01-01T03:30:00Z")
        );
        assert_eq!(split_block(quarters[1], min), None);
    }

    #[test]
    fn split_of_an_unaligned_block_stays_aligned_and_covers_it() {
        let min = Duration::minutes(15);
        let b = iv("2026-01-01T00:30:00Z", "2026-01-01T01:10:00Z");
        let pieces = split_block(b, min).unwrap();
        assert_eq!(pieces.first().unwrap().start, b.start);
        assert_eq!(pieces.last().unwrap().end, b.end);
        assert!(pieces.iter().all(|p| p.duration() <= min));
        // 40 minutes spanning 01:00 cut into 15-minute aligned pieces.
        assert_eq!(pieces.len(), 3);
    }

    #[test]
    fn needs_split_on_paging_cap_and_busy_days_only() {
        let rules = BlockRules::default();
        let day = iv("2026-01-01", "2026-01-02");
        let hour = iv("2026-01-01T05:00:00Z", "2026-01-01T06:00:00Z");
        let quarter = iv("2026-01-01T05:00:00Z", "2026-01-01T05:15:00Z");
        assert!(!needs_split(day, 2_000, &rules));
        assert!(needs_split(day, 5_001, &rules));
        assert!(!needs_split(hour, 9_000, &rules));
        assert!(needs_split(hour, 10_001, &rules));
        // At the minimum nothing more can be done by splitting.
        assert!(!needs_split(quarter, 50_000, &rules));
    }

    #[test]
    fn uncovered_finds_the_gaps() {
        let r = iv("2026-01-01", "2026-01-05");
        let cov = [
            iv("2026-01-02", "2026-01-03"),
            iv("2025-12-30", "2026-01-01T06:00:00Z"),
            iv("2026-01-02T12:00:00Z", "2026-01-03T06:00:00Z"),
        ];
        assert_eq!(
            uncovered(r, &cov),
            vec![
                iv("2026-01-01T06:00:00Z", "2026-01-02"),
                iv("2026-01-03T06:00:00Z", "2026-01-05"),
            ]
        );
        assert_eq!(uncovered(r, &[r]), vec![]);
        assert_eq!(uncovered(r, &[]), vec![r]);
    }

    #[test]
    fn plan_blocks_skips_what_is_planned_and_extends_a_partial_day() {
        // An earlier run planned up to a watermark of 10:00 on Jan 3; now the range reaches 14:00.
        let planned = day_blocks(iv("2026-01-01", "2026-01-03T10:00:00Z"));
        let new = plan_blocks(iv("2026-01-01", "2026-01-03T14:00:00Z"), &planned);
        assert_eq!(
            new,
            vec![iv("2026-01-03T10:00:00Z", "2026-01-03T14:00:00Z")]
        );
    }

    #[test]
    fn watermark_is_now_minus_lag() {
        assert_eq!(
            watermark(t("2026-01-02T04:00:00Z"), Duration::hours(4)),
            t("2026-01-02")
        );
        assert_eq!(day_start(t("2026-01-02T23:59:59Z")), t("2026-01-02"));
    }

    #[test]
    fn path_choice_follows_mode_availability_and_volume() {
        let old = iv("2026-01-01", "2026-01-02");
        let recent = iv("2026-01-05", "2026-01-06");
        let avail = Some(t("2026-01-05T18:00:00Z"));
        assert_eq!(
            choose_path(old, Mode::Auto, avail, 5_000, 1_000),
            Path::Jobs
        );
        assert_eq!(choose_path(old, Mode::Auto, avail, 300, 1_000), Path::Query);
        assert_eq!(choose_path(old, Mode::Jobs, avail, 3, 1_000), Path::Jobs);
        assert_eq!(
            choose_path(old, Mode::Query, avail, 5_000, 1_000),
            Path::Query
        );
        // Newer than the availability date: the jobs API has no data there.
        assert_eq!(
            choose_path(recent, Mode::Jobs, avail, 5_000, 1_000),
            Path::Query
        );
        assert_eq!(
            choose_path(old, Mode::Jobs, None, 5_000, 1_000),
            Path::Query
        );
    }

    #[test]
    fn bounds_accept_days_and_instants_only() {
        assert_eq!(t("2026-03-01"), t("2026-03-01T00:00:00Z"));
        assert_eq!(
            parse_bound("2026-03-01T02:00:00+02:00").unwrap(),
            t("2026-03-01T00:00:00Z")
        );
        assert!(parse_bound("March 1").is_err());
        assert!(parse_bound("2026-02-30").is_err());
        assert_eq!("JOBS".parse::<Mode>(), Ok(Mode::Jobs));
        assert!("fast".parse::<Mode>().is_err());
    }
}
