//! Planning: which blocks to fetch and by which path, decided before any request is made.
//! Pure functions, no I/O, so every calendar decision can be tested on fixed instants.
//!
//! What it guarantees:
//! - Blocks never cross a UTC midnight unless they are job blocks of several whole days: the
//!   synchronous query matches conversations that *started on a day touched by the interval*,
//!   so a day-aligned block [D, D+1) returns exactly the conversations started on D.
//! - The path comes first ([`choose_path`]): a block older than the jobs'
//!   `dataAvailabilityDate` goes through a job (in `auto`, when it is made of whole UTC days;
//!   in `jobs`, always), the rest through the synchronous query (`--mode auto|query|jobs`).
//! - The split rule belongs to the path. A job block is never split (the paging cap is the
//!   synchronous query's, not the jobs API's); job blocks are day-aligned and fetched with
//!   `startOfDayIntervalMatching`, so each conversation comes back once. A query block is
//!   split only when its totalHits (from its first page) passes the paging cap, into the
//!   fewest equal pieces that fit ([`split_for_cap`]), so pages are full and pieces do not
//!   overlap.
//! - Nothing newer than the watermark (now − 4 h by default) is ever planned as final.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::genesys::model::{parse_instant, Interval};
use crate::storage::checkpoint::Dataset;

/// Sizing rules for query blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRules {
    /// Results reachable by paging (pageNumber × pageSize); a query block above it is split.
    pub paging_cap: i64,
    /// The smallest block the planner produces.
    pub min_block: Duration,
}

impl Default for BlockRules {
    fn default() -> Self {
        BlockRules {
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

/// How many pieces a query block of `total_hits` needs so that each fits under `cap`:
/// the fewest that fit (1: no split).
pub fn pieces_for(total_hits: i64, cap: i64) -> i64 {
    let cap = cap.max(1);
    ((total_hits.max(0) + cap - 1) / cap).max(1)
}

/// The query path's split: `block` into the fewest equal pieces that keep each under the
/// paging cap (boundaries on whole minutes, no piece shorter than `min_block`). `None` when no
/// split is needed or the block cannot be cut any finer.
pub fn split_for_cap(
    block: Interval,
    total_hits: i64,
    rules: &BlockRules,
) -> Option<Vec<Interval>> {
    let wanted = pieces_for(total_hits, rules.paging_cap);
    if wanted < 2 {
        return None;
    }
    let len = block.duration().num_seconds();
    let min = rules.min_block.num_seconds().max(60);
    let n = wanted.min(len / min);
    if n < 2 {
        return None;
    }
    let cut = |i: i64| {
        let at = block.start + Duration::seconds(len * i / n);
        at.duration_trunc(Duration::minutes(1)).unwrap_or(at)
    };
    let mut pieces = Vec::with_capacity(n as usize);
    let mut start = block.start;
    for i in 1..=n {
        let end = if i == n { block.end } else { cut(i) };
        if end > start {
            pieces.push(Interval::new(start, end));
            start = end;
        }
    }
    (pieces.len() >= 2).then_some(pieces)
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
    /// Jobs for whole UTC days older than the jobs' dataAvailabilityDate, the query for the
    /// rest.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// The synchronous details query, paged.
    Query,
    /// An async details job (never split).
    Job,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Query => "query",
            Path::Job => "job",
        }
    }
}

/// A block of history and the path planned for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub dataset: Dataset,
    pub range: Interval,
    pub path: Path,
}

/// Whether the jobs API can serve a block: it must end at or before the dataAvailabilityDate.
pub fn jobs_can_serve(block: Interval, availability: Option<DateTime<Utc>>) -> bool {
    availability.is_some_and(|a| block.end <= a)
}

/// Whether `range` is made of whole UTC days (starts and ends at midnight).
pub fn whole_days(range: Interval) -> bool {
    range.duration() >= Duration::days(1)
        && day_start(range.start) == range.start
        && day_start(range.end) == range.end
}

/// The path for a block, from its range, the mode and the jobs' dataAvailabilityDate.
///
/// In `auto` a job serves whole UTC days older than the availability date (a job costs a
/// submission, a few polls, a deletion and a count, then one request per 1,000 results; a
/// partial day is usually small, and the query serves it in a page or two).
pub fn choose_path(range: Interval, mode: Mode, availability: Option<DateTime<Utc>>) -> Path {
    if !jobs_can_serve(range, availability) {
        return Path::Query;
    }
    match mode {
        Mode::Query => Path::Query,
        Mode::Jobs => Path::Job,
        Mode::Auto if whole_days(range) => Path::Job,
        Mode::Auto => Path::Query,
    }
}

/// Groups consecutive whole days that a job will serve into blocks of up to `days` days
/// (`days` = 1 leaves them as they are). Other blocks pass through unchanged.
pub fn group_job_days(
    blocks: Vec<Interval>,
    mode: Mode,
    availability: Option<DateTime<Utc>>,
    days: i64,
) -> Vec<Interval> {
    if days <= 1 {
        return blocks;
    }
    let mut out: Vec<Interval> = Vec::with_capacity(blocks.len());
    for b in blocks {
        let joins = choose_path(b, mode, availability) == Path::Job && whole_days(b);
        if let Some(last) = out.last_mut() {
            let grown = Interval::new(last.start, b.end);
            if joins
                && last.end == b.start
                && whole_days(*last)
                && choose_path(*last, mode, availability) == Path::Job
                && grown.duration() <= Duration::days(days)
            {
                *last = grown;
                continue;
            }
        }
        out.push(b);
    }
    out
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
    fn query_split_is_the_fewest_equal_pieces_under_the_cap() {
        let rules = BlockRules::default();
        let day = iv("2026-01-01", "2026-01-02");
        // A busy day under the cap is not split at all.
        assert_eq!(split_for_cap(day, 6_000, &rules), None);
        assert_eq!(split_for_cap(day, 10_000, &rules), None);
        let three = split_for_cap(day, 30_000, &rules).unwrap();
        assert_eq!(
            three,
            vec![
                iv("2026-01-01", "2026-01-01T08:00:00Z"),
                iv("2026-01-01T08:00:00Z", "2026-01-01T16:00:00Z"),
                iv("2026-01-01T16:00:00Z", "2026-01-02"),
            ]
        );
        // Seven pieces of a day: whole-minute boundaries, tiling the day exactly.
        let seven = split_for_cap(day, 60_001, &rules).unwrap();
        assert_eq!(seven.len(), 7);
        assert_eq!(seven[0].start, day.start);
        assert_eq!(seven[6].end, day.end);
        for w in seven.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(w[0].end.timestamp() % 60, 0);
        }
        assert_eq!(pieces_for(0, 100), 1);
        assert_eq!(pieces_for(101, 100), 2);
    }

    #[test]
    fn query_split_stops_at_the_minimum_block() {
        let rules = BlockRules {
            paging_cap: 100,
            min_block: Duration::minutes(15),
        };
        let half_hour = iv("2026-01-01T05:00:00Z", "2026-01-01T05:30:00Z");
        // 50 pieces wanted, 2 possible.
        let p = split_for_cap(half_hour, 5_000, &rules).unwrap();
        assert_eq!(p.len(), 2);
        let quarter = iv("2026-01-01T05:00:00Z", "2026-01-01T05:15:00Z");
        assert_eq!(split_for_cap(quarter, 5_000, &rules), None);
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
    fn path_is_chosen_from_range_mode_and_availability() {
        let old = iv("2026-01-01", "2026-01-02");
        let old_part = iv("2026-01-01T06:00:00Z", "2026-01-02");
        let recent = iv("2026-01-05", "2026-01-06");
        let avail = Some(t("2026-01-05T18:00:00Z"));
        assert_eq!(choose_path(old, Mode::Auto, avail), Path::Job);
        assert_eq!(choose_path(old_part, Mode::Auto, avail), Path::Query);
        assert_eq!(choose_path(old_part, Mode::Jobs, avail), Path::Job);
        assert_eq!(choose_path(old, Mode::Query, avail), Path::Query);
        // Newer than the availability date: the jobs API has no data there.
        assert_eq!(choose_path(recent, Mode::Jobs, avail), Path::Query);
        assert_eq!(choose_path(old, Mode::Jobs, None), Path::Query);
    }

    #[test]
    fn old_whole_days_are_grouped_into_longer_job_blocks_when_allowed() {
        let avail = Some(t("2026-01-05T18:00:00Z"));
        let days = day_blocks(iv("2026-01-01T12:00:00Z", "2026-01-06T06:00:00Z"));
        assert_eq!(group_job_days(days.clone(), Mode::Auto, avail, 1), days);
        let g = group_job_days(days.clone(), Mode::Auto, avail, 3);
        assert_eq!(
            g,
            vec![
                iv("2026-01-01T12:00:00Z", "2026-01-02"),
                iv("2026-01-02", "2026-01-05"),
                iv("2026-01-05", "2026-01-06"),
                iv("2026-01-06", "2026-01-06T06:00:00Z"),
            ]
        );
        // The query mode never groups.
        assert_eq!(group_job_days(days.clone(), Mode::Query, avail, 3), days);
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
