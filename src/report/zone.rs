//! Cutting time into the report's intervals in its zone (`--tz`, `--interval`).
//!
//! Intervals are wall-clock intervals of the zone: a day runs from local midnight to local
//! midnight, so a spring-forward day has 23 hours and a fall-back day 25; a 15-minute interval
//! starts at :00, :15, :30 or :45 local time. Sub-day intervals are also told apart by their
//! offset, so the repeated hour of a fall-back day gives two rows (01:00-04:00 and
//! 01:00-05:00), each named by its start with its offset.
//!
//! The database does the grouping: [`SqlCut`] turns the zone's offsets over the report's range
//! into a `CASE` on the instant column (one branch per offset change in the range), and the
//! query groups by `(local seconds - local seconds % interval, offset)`. [`Cutter`] maps those
//! groups back to interval starts and cuts time spans (presence) at interval boundaries.

use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::storage::Backend;

/// The length of a report's intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Interval {
    #[value(name = "15m")]
    M15,
    #[value(name = "30m")]
    M30,
    #[value(name = "1h")]
    H1,
    #[default]
    #[value(name = "1d")]
    D1,
}

impl Interval {
    pub fn seconds(self) -> i64 {
        match self {
            Interval::M15 => 900,
            Interval::M30 => 1800,
            Interval::H1 => 3600,
            Interval::D1 => 86_400,
        }
    }
}

/// The UTC offset of `tz` at `t`, in seconds east.
pub fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The first instant of local day `d` in `tz` (midnight, or the end of a gap that swallows it).
pub fn day_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let mut local = d.and_time(NaiveTime::MIN);
    for _ in 0..(4 * 24) {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(15);
    }
    // No valid local time that day (never happens with real zones): fall back to UTC midnight.
    DateTime::from_naive_utc_and_offset(d.and_time(NaiveTime::MIN), Utc)
}

/// `(from, offset)` spans: the offset in force from each start until the next.
pub fn offset_spans(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, i32)> {
    let mut spans = vec![(from, offset_at(tz, from))];
    let mut t = from;
    while t < to {
        let next = (t + Duration::hours(1)).min(to);
        let current = spans.last().map_or(0, |s| s.1);
        let off = offset_at(tz, next);
        if off != current && next < to {
            // The change lies in (t, next]: find its first second.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            spans.push((hi, offset_at(tz, hi)));
        }
        t = next;
    }
    spans
}

/// A group key the database returns: local seconds of the interval start and the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub local_start: i64,
    pub offset: i32,
}

/// An interval: its local day and its start in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IntervalStart {
    /// Sorts by instant first.
    pub start: DateTime<FixedOffset>,
    pub day: NaiveDate,
}

/// A range cut into intervals: `intervals[i]` runs from `bounds[i - 1]` (or the range's
/// start) to `bounds[i]` (or its end).
#[derive(Debug, Clone)]
pub struct Grid {
    pub bounds: Vec<DateTime<Utc>>,
    pub intervals: Vec<IntervalStart>,
}

/// The report's zone, interval and range.
#[derive(Debug, Clone, Copy)]
pub struct Cutter {
    pub tz: Tz,
    pub interval: Interval,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Cutter {
    /// The interval a database group belongs to.
    pub fn interval_of_bucket(&self, b: Bucket) -> IntervalStart {
        let local = DateTime::from_timestamp(b.local_start, 0)
            .map(|t| t.naive_utc())
            .unwrap_or_default();
        self.interval_of_local(local, b.offset)
    }

    fn interval_of_local(&self, local: NaiveDateTime, offset: i32) -> IntervalStart {
        let day = local.date();
        if self.interval == Interval::D1 {
            let start = day_start(self.tz, day)
                .with_timezone(&self.tz)
                .fixed_offset();
            return IntervalStart { start, day };
        }
        let fixed = FixedOffset::east_opt(offset).unwrap_or(Utc.fix());
        let start = fixed
            .from_local_datetime(&local)
            .single()
            .unwrap_or_else(|| DateTime::<Utc>::default().fixed_offset());
        IntervalStart { start, day }
    }

    /// The interval instant `t` falls in.
    pub fn interval_of(&self, t: DateTime<Utc>) -> IntervalStart {
        let offset = offset_at(self.tz, t);
        let local = t.timestamp() + i64::from(offset);
        let secs = self.interval.seconds();
        self.interval_of_bucket(Bucket {
            local_start: local - local.rem_euclid(secs),
            offset,
        })
    }

    /// The range's intervals: every boundary strictly inside `(from, to)` and the interval
    /// each stretch between them belongs to.
    pub fn grid(&self) -> Grid {
        let step = Duration::minutes(15);
        let mut t =
            DateTime::from_timestamp(self.from.timestamp() - self.from.timestamp() % 900, 0)
                .unwrap_or(self.from);
        let mut bounds = Vec::new();
        let mut current = self.interval_of(self.from);
        let mut intervals = vec![current];
        while t < self.to {
            t += step;
            if t <= self.from || t >= self.to {
                continue;
            }
            let i = self.interval_of(t);
            if i != current {
                bounds.push(t);
                intervals.push(i);
                current = i;
            }
        }
        Grid { bounds, intervals }
    }

    /// Cuts `[start, end)`, clipped to the range, at the grid's boundaries and gives each
    /// piece's interval (an index into `grid.intervals`) and length in ms to `add`.
    pub fn split(
        &self,
        grid: &Grid,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut add: impl FnMut(usize, i64),
    ) {
        let mut s = start.max(self.from);
        let e = end.min(self.to);
        let mut i = grid.bounds.partition_point(|b| *b <= s);
        while s < e {
            let cut = grid.bounds.get(i).copied().unwrap_or(e).min(e);
            add(i, (cut - s).num_milliseconds());
            s = cut;
            i += 1;
        }
    }

    /// SQL pieces grouping rows of `column` (an instant) by interval on `backend`.
    pub fn sql(&self, backend: Backend, column: &str) -> SqlCut {
        let spans = offset_spans(self.tz, self.from, self.to);
        let offset = if spans.len() == 1 {
            spans[0].1.to_string()
        } else {
            let mut case = String::from("CASE");
            for w in spans.windows(2) {
                case += &format!(
                    " WHEN {column} < '{}' THEN {}",
                    w[1].0.naive_utc().format("%Y-%m-%d %H:%M:%S"),
                    w[0].1
                );
            }
            case += &format!(" ELSE {} END", spans.last().map_or(0, |s| s.1));
            case
        };
        let epoch = match backend {
            Backend::Mysql => format!("TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {column})"),
            Backend::Sqlite => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
        };
        SqlCut {
            epoch,
            offset,
            interval: self.interval.seconds(),
            backend,
        }
    }
}

/// Expressions for an inner query (`epoch`, `offset`) and the outer grouping
/// ([`SqlCut::bucket`]).
#[derive(Debug, Clone)]
pub struct SqlCut {
    /// Seconds since 1970 of the instant column.
    pub epoch: String,
    /// The zone's offset (seconds) at the instant.
    pub offset: String,
    interval: i64,
    backend: Backend,
}

impl SqlCut {
    /// The local start of the interval, from the inner query's `epoch_s` and `utc_offset`.
    pub fn bucket(&self, epoch: &str, offset: &str) -> String {
        let i = self.interval;
        int(
            self.backend,
            &format!("(({epoch} + {offset}) - (({epoch} + {offset}) % {i}))"),
        )
    }
}

/// An integer expression as BIGINT on both backends.
pub fn int(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::Mysql => format!("CAST({expr} AS SIGNED)"),
        Backend::Sqlite => expr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> Tz {
        "America/New_York".parse().unwrap()
    }

    #[test]
    fn days_of_23_and_25_hours_across_new_york_dst() {
        let tz = ny();
        for (d, hours) in [((2024, 3, 10), 23), ((2024, 11, 3), 25), ((2024, 6, 1), 24)] {
            let day = NaiveDate::from_ymd_opt(d.0, d.1, d.2).unwrap();
            let len = day_start(tz, day.succ_opt().unwrap()) - day_start(tz, day);
            assert_eq!(len, Duration::hours(hours), "{day}");
        }
    }

    #[test]
    fn offset_changes_are_found_to_the_second() {
        let from = Utc.with_ymd_and_hms(2024, 3, 9, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2024, 11, 5, 0, 0, 0).unwrap();
        let spans = offset_spans(ny(), from, to);
        assert_eq!(
            spans,
            vec![
                (from, -5 * 3600),
                (
                    Utc.with_ymd_and_hms(2024, 3, 10, 7, 0, 0).unwrap(),
                    -4 * 3600
                ),
                (
                    Utc.with_ymd_and_hms(2024, 11, 3, 6, 0, 0).unwrap(),
                    -5 * 3600
                ),
            ]
        );
    }

    #[test]
    fn the_repeated_hour_gives_two_intervals_named_with_their_offsets() {
        let c = Cutter {
            tz: ny(),
            interval: Interval::H1,
            from: Utc.with_ymd_and_hms(2024, 11, 3, 4, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2024, 11, 3, 8, 0, 0).unwrap(),
        };
        let names: Vec<String> = [4, 5, 6, 7]
            .iter()
            .map(|h| {
                c.interval_of(Utc.with_ymd_and_hms(2024, 11, 3, *h, 30, 0).unwrap())
                    .start
                    .to_rfc3339()
            })
            .collect();
        assert_eq!(
            names,
            [
                "2024-11-03T00:00:00-04:00",
                "2024-11-03T01:00:00-04:00",
                "2024-11-03T01:00:00-05:00",
                "2024-11-03T02:00:00-05:00"
            ]
        );
        assert_eq!(c.grid().bounds.len(), 3);
    }

    #[test]
    fn kathmandu_hours_start_at_quarter_past_utc_and_spans_are_cut_there() {
        let tz: Tz = "Asia/Kathmandu".parse().unwrap();
        let c = Cutter {
            tz,
            interval: Interval::H1,
            from: Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2024, 3, 1, 3, 0, 0).unwrap(),
        };
        let grid = c.grid();
        assert_eq!(
            grid.bounds[0],
            Utc.with_ymd_and_hms(2024, 3, 1, 0, 15, 0).unwrap()
        );
        let mut got = Vec::new();
        c.split(
            &grid,
            Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 3, 1, 1, 30, 0).unwrap(),
            |i, ms| got.push((grid.intervals[i].start.to_rfc3339(), ms / 60_000)),
        );
        assert_eq!(
            got,
            vec![
                ("2024-03-01T05:00:00+05:45".to_string(), 15),
                ("2024-03-01T06:00:00+05:45".to_string(), 60),
                ("2024-03-01T07:00:00+05:45".to_string(), 15),
            ]
        );
    }
}
