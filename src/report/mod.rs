//! `sluice report <name> [--from --to] [--tz ZONE] [--interval 15m|30m|1h|1d] [--queue Q]…
//! [--agent A]… [--format table|csv|json]`: the contact-centre reports, each one query (plus the
//! cutting into intervals) on either backend.
//!
//! Names: every report shows the directory's name beside each id (`queue`, `agent`, `wrap_up`)
//! and the id itself when the directory does not know it. `--queue` and `--agent` take a name
//! (any case) or an id, and may be repeated.
//!
//! Time: days and intervals are cut in the report's zone (`--tz`, else `report_tz`, else UTC),
//! on the zone's wall clock, so a daylight-saving day has 23 or 25 hours (see [`zone`]). Each
//! row names its interval's local `day` and its `interval_start` with the offset. `--from` is
//! inclusive, `--to` exclusive; a date means local midnight in the zone.
//!
//! How things that cross an interval boundary are counted:
//! - **queue-daily** and **agent-daily** count each metric in the interval of its `emitDate`,
//!   as Genesys' own aggregates do: a call offered at 23:58 and handled until 00:09 counts as
//!   offered (and answered, at answer time) on the first day and handled (tHandle, tTalk, tAcw
//!   emitted when the work ends) on the second.
//!   - offered = Σ nOffered; answered = count of tAnswered; abandoned = count of tAbandon;
//!   - avg handle / talk / hold / ACW = Σ tHandle / count, Σ tTalk / count, Σ tHeld / count
//!     (conversations that had a hold), Σ tAcw / count — in seconds.
//!   - A session belongs to the first queue among its segments (`sessions.queue_id`).
//!   - agent: sessions of purpose `agent`/`user`; handled = count of tHandle; handle, talk and
//!     ACW are totals in seconds.
//! - **wrapup-daily**: wrap-up segments per queue and code in the interval they started; share
//!   = the code's count over the queue's in that interval.
//! - **presence-daily**: each presence / routing-status record is cut at every interval
//!   boundary, so its time lands in the interval it was spent in; a current record (no end)
//!   counts up to now.
//! - **completeness**: UTC days (partitions are UTC blocks); a partition counts on every day
//!   its range touches; conversations count on the day they started.

pub mod metrics;
pub mod output;
pub mod presence;
pub mod zone;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

pub use metrics::{
    agent_report, queue_report, wrapup_report, AgentDailyRow, QueueDailyRow, Tally, WrapupDailyRow,
};
pub use output::{ReportRow, ReportTable};
pub use presence::{completeness, presence_report, CompletenessRow, PresenceDailyRow};
pub use zone::{Cutter, Interval};

use crate::storage::{connect, Connection, DatabaseUrl, StorageError};

/// The reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportName {
    /// Offered, answered, abandoned and average handle/talk/hold/ACW per queue per interval.
    QueueDaily,
    /// Handled, handle/talk/ACW time per agent per interval.
    AgentDaily,
    /// Time per system presence and routing status per user per interval.
    PresenceDaily,
    /// Per queue and wrap-up code per interval: count and share of the queue's wrap-ups.
    WrapupDaily,
    /// Per UTC day: partitions verified, conversations stored, in progress, unverified partitions.
    Completeness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// `sluice report` flags. The database comes from `DATABASE_URL` (never a flag: it may hold
/// a password).
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Which report.
    #[arg(value_enum)]
    pub name: ReportName,
    /// First day (YYYY-MM-DD, local to --tz) or instant (RFC 3339); default: 7 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End, exclusive (YYYY-MM-DD or RFC 3339); default: tomorrow in --tz, so today is included.
    #[arg(long)]
    pub to: Option<String>,
    /// IANA time zone days and intervals are cut in (default: report_tz / SLUICE_REPORT_TZ,
    /// else UTC).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Interval length of queue-daily, agent-daily, presence-daily and wrapup-daily.
    #[arg(long, value_enum, default_value = "1d")]
    pub interval: Interval,
    /// Only these queues (name or id; repeatable).
    #[arg(long = "queue", value_name = "NAME_OR_ID")]
    pub queues: Vec<String>,
    /// Only these agents (name or id; repeatable).
    #[arg(long = "agent", value_name = "NAME_OR_ID")]
    pub agents: Vec<String>,
    /// TOML configuration file read for `report_tz` (default: sluice.toml, if present).
    #[arg(long, value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("invalid --{flag} {value:?}: expected YYYY-MM-DD or an RFC 3339 instant")]
    BadTime { flag: &'static str, value: String },
    #[error("--from must be before --to")]
    EmptyRange,
    #[error("invalid --tz: {0}")]
    BadZone(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot write the report: {0}")]
    Output(String),
}

/// What a report covers and how it is cut.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    /// `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tz: Tz,
    pub interval: Interval,
    /// `--queue` values (names or ids); empty: all.
    pub queues: Vec<String>,
    /// `--agent` values (names or ids); empty: all.
    pub agents: Vec<String>,
}

impl ReportSpec {
    /// UTC days over `[from, to)`, no filter.
    pub fn utc_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        ReportSpec {
            from,
            to,
            tz: chrono_tz::UTC,
            interval: Interval::D1,
            queues: Vec::new(),
            agents: Vec::new(),
        }
    }

    pub fn cutter(&self) -> Cutter {
        Cutter {
            tz: self.tz,
            interval: self.interval,
            from: self.from,
            to: self.to,
        }
    }
}

/// Parses `YYYY-MM-DD` (local midnight in `tz`) or an RFC 3339 instant.
pub fn parse_time(flag: &'static str, s: &str, tz: Tz) -> Result<DateTime<Utc>, ReportError> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(zone::day_start(tz, d));
    }
    crate::genesys::model::parse_instant(s).map_err(|_| ReportError::BadTime {
        flag,
        value: s.to_string(),
    })
}

/// The range a report covers: `[from, to)`, dates read in `tz`.
pub fn resolve_range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ReportError> {
    let today = now.with_timezone(&tz).date_naive();
    let to = match to {
        Some(s) => parse_time("to", s, tz)?,
        None => zone::day_start(tz, today + Duration::days(1)),
    };
    let from = match from {
        Some(s) => parse_time("from", s, tz)?,
        None => {
            let to_day = to.with_timezone(&tz).date_naive();
            zone::day_start(tz, to_day - Duration::days(7))
        }
    };
    if from >= to {
        return Err(ReportError::EmptyRange);
    }
    Ok((from, to))
}

/// The zone of `--tz`, else of the configuration (`report_tz`, `SLUICE_REPORT_TZ`).
fn zone_of(args: &ReportArgs) -> Result<Tz, ReportError> {
    if let Some(z) = &args.tz {
        return crate::config::parse_tz(z).map_err(ReportError::BadZone);
    }
    Ok(crate::config::Config::load(args.config.as_deref())?.report_tz)
}

/// `sluice report`: connects to `DATABASE_URL` and prints the report on stdout.
pub fn run_cli(args: ReportArgs) -> Result<(), ReportError> {
    let tz = zone_of(&args)?;
    let url = DatabaseUrl::from_env_or_default()?;
    let now = Utc::now();
    let (from, to) = resolve_range(args.from.as_deref(), args.to.as_deref(), now, tz)?;
    let spec = ReportSpec {
        from,
        to,
        tz,
        interval: args.interval,
        queues: args.queues.clone(),
        agents: args.agents.clone(),
    };
    let mut conn = connect(&url)?;
    let table = build_spec(&mut conn, args.name, &spec, now)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    table
        .write(&mut out, args.format)
        .map_err(|e| ReportError::Output(e.to_string()))
}

/// Runs report `name` over `spec` and returns it as a table.
pub fn build_spec(
    conn: &mut Connection,
    name: ReportName,
    spec: &ReportSpec,
    now: DateTime<Utc>,
) -> Result<ReportTable, StorageError> {
    Ok(match name {
        ReportName::QueueDaily => ReportTable::from_rows(&queue_report(conn, spec)?),
        ReportName::AgentDaily => ReportTable::from_rows(&agent_report(conn, spec)?),
        ReportName::PresenceDaily => ReportTable::from_rows(&presence_report(conn, spec, now)?),
        ReportName::WrapupDaily => ReportTable::from_rows(&wrapup_report(conn, spec)?),
        ReportName::Completeness => {
            ReportTable::from_rows(&completeness(conn, spec.from, spec.to)?)
        }
    })
}

/// Runs report `name` over `[from, to)` in UTC days and returns it as a table.
pub fn build(
    conn: &mut Connection,
    name: ReportName,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ReportTable, StorageError> {
    build_spec(conn, name, &ReportSpec::utc_days(from, to), now)
}

/// queue-daily over `[from, to)` in UTC days.
pub fn queue_daily(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<QueueDailyRow>, StorageError> {
    queue_report(conn, &ReportSpec::utc_days(from, to))
}

/// agent-daily over `[from, to)` in UTC days.
pub fn agent_daily(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AgentDailyRow>, StorageError> {
    agent_report(conn, &ReportSpec::utc_days(from, to))
}

/// presence-daily over `[from, to)` in UTC days.
pub fn presence_daily(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<PresenceDailyRow>, StorageError> {
    presence_report(conn, &ReportSpec::utc_days(from, to), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::{json, Value};

    #[test]
    fn ranges_accept_dates_and_instants() {
        let now = Utc.with_ymd_and_hms(2024, 3, 10, 15, 0, 0).unwrap();
        let utc = chrono_tz::UTC;
        let (f, t) = resolve_range(None, None, now, utc).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2024, 3, 11, 0, 0, 0).unwrap());
        assert_eq!(f, Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap());
        let (f, _) = resolve_range(Some("2024-03-09T12:00:00Z"), None, now, utc).unwrap();
        assert_eq!(f, Utc.with_ymd_and_hms(2024, 3, 9, 12, 0, 0).unwrap());
        assert!(matches!(
            resolve_range(Some("yesterday"), None, now, utc),
            Err(ReportError::BadTime { flag: "from", .. })
        ));
        assert!(matches!(
            resolve_range(Some("2024-03-12"), Some("2024-03-11"), now, utc),
            Err(ReportError::EmptyRange)
        ));
    }

    #[test]
    fn dates_are_local_midnights_in_the_zone() {
        let now = Utc.with_ymd_and_hms(2024, 3, 10, 15, 0, 0).unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let (f, t) = resolve_range(Some("2024-03-10"), Some("2024-03-11"), now, ny).unwrap();
        assert_eq!(f, Utc.with_ymd_and_hms(2024, 3, 10, 5, 0, 0).unwrap());
        assert_eq!(t, Utc.with_ymd_and_hms(2024, 3, 11, 4, 0, 0).unwrap());
        assert_eq!(t - f, Duration::hours(23));
    }

    #[test]
    fn formats_print_every_row() {
        let rows = vec![AgentDailyRow {
            day: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            interval_start: Utc
                .with_ymd_and_hms(2024, 3, 1, 0, 0, 0)
                .unwrap()
                .fixed_offset(),
            user_id: "u,1".into(),
            agent: "Ann Lee".into(),
            handled: 2,
            handle_ms: 1500,
            ..AgentDailyRow::default()
        }];
        let t = ReportTable::from_rows(&rows);
        let mut csv_out = Vec::new();
        t.write(&mut csv_out, OutputFormat::Csv).unwrap();
        let csv_text = String::from_utf8(csv_out).unwrap();
        assert_eq!(
            csv_text,
            "day,interval_start,user_id,agent,handled,handle_s,talk_s,hold_s,acw_s\n\
             2024-03-01,2024-03-01T00:00:00+00:00,\"u,1\",Ann Lee,2,1.5,0.0,0.0,0.0\n"
        );
        let mut js = Vec::new();
        t.write(&mut js, OutputFormat::Json).unwrap();
        let v: Value = serde_json::from_slice(&js).unwrap();
        assert_eq!(v[0]["handle_s"], json!(1.5));
        assert_eq!(v[0]["agent"], json!("Ann Lee"));
        let mut tab = Vec::new();
        t.write(&mut tab, OutputFormat::Table).unwrap();
        let text = String::from_utf8(tab).unwrap();
        assert!(text
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("2024-03-01  2024-03-01T00:00:00+00:00  u,1"));
    }
}
