//! `sluice report <name> [--from --to] [--format table|csv|json]`: the four contact-centre
//! reports, each one query (plus, for presence, splitting at midnight) on either backend.
//!
//! Days are UTC calendar days; `--from` is inclusive, `--to` exclusive (a date means its
//! midnight UTC). How things that cross midnight are counted:
//! - **queue-daily** and **agent-daily** count each metric on the day of its `emitDate`, as
//!   Genesys' own aggregates do: a call offered at 23:58 and handled until 00:09 counts as
//!   offered (and answered, at answer time) on the first day and handled (tHandle, tTalk, tAcw
//!   emitted when the work ends) on the second. Each day's numbers are final once the day's
//!   conversations are.
//!   - offered = Σ nOffered; answered = count of tAnswered; abandoned = count of tAbandon;
//!   - avg handle / talk / hold / ACW = Σ tHandle / count, Σ tTalk / count, Σ tHeld / count
//!     (conversations that had a hold), Σ tAcw / count — in seconds.
//!   - A session belongs to the first queue among its segments (`sessions.queue_id`).
//!   - agent: sessions of purpose `agent`/`user`; handled = count of tHandle; handle, talk and
//!     ACW are totals in seconds.
//! - **presence-daily**: each presence / routing-status record is cut at every midnight, so its
//!   time lands on the day it was spent; a current record (no end) counts up to now.
//! - **completeness**: a partition counts on every day its range touches; conversations count
//!   on the day they started.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use diesel::sql_types::{BigInt, Date, Nullable, Text, Timestamp};
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl, QueryableByName, RunQueryDsl};
use serde::Serialize;
use serde_json::{json, Value};

use crate::dispatch;
use crate::storage::checkpoint::{load_partitions, Dataset, PartitionStatus};
use crate::storage::models::{db_time, utc};
use crate::storage::schema::{user_presence, user_routing_status};
use crate::storage::{connect, Backend, Connection, DatabaseUrl, StorageError};

/// The reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportName {
    /// Offered, answered, abandoned and average handle/talk/hold/ACW per queue per day.
    QueueDaily,
    /// Handled, handle/talk/ACW time per agent per day.
    AgentDaily,
    /// Time per system presence and routing status per user per day.
    PresenceDaily,
    /// Per day: partitions verified, conversations stored, in progress, unverified partitions.
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
    /// First day (YYYY-MM-DD, UTC) or instant (RFC 3339); default: 7 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End, exclusive (YYYY-MM-DD or RFC 3339); default: tomorrow (UTC), so today is included.
    #[arg(long)]
    pub to: Option<String>,
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
    #[error("cannot write the report: {0}")]
    Output(String),
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 instant.
pub fn parse_time(flag: &'static str, s: &str) -> Result<DateTime<Utc>, ReportError> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(midnight(d));
    }
    crate::genesys::model::parse_instant(s).map_err(|_| ReportError::BadTime {
        flag,
        value: s.to_string(),
    })
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    utc(d.and_time(NaiveTime::MIN))
}

/// The range a report covers: `[from, to)`.
pub fn resolve_range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ReportError> {
    let to = match to {
        Some(s) => parse_time("to", s)?,
        None => midnight(now.date_naive()) + Duration::days(1),
    };
    let from = match from {
        Some(s) => parse_time("from", s)?,
        None => to - Duration::days(7),
    };
    if from >= to {
        return Err(ReportError::EmptyRange);
    }
    Ok((from, to))
}

/// `sluice report`: connects to `DATABASE_URL` and prints the report on stdout.
pub fn run_cli(args: ReportArgs) -> Result<(), ReportError> {
    let url = DatabaseUrl::from_env_or_default()?;
    let now = Utc::now();
    let (from, to) = resolve_range(args.from.as_deref(), args.to.as_deref(), now)?;
    let mut conn = connect(&url)?;
    let table = build(&mut conn, args.name, from, to, now)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    table
        .write(&mut out, args.format)
        .map_err(|e| ReportError::Output(e.to_string()))
}

/// Runs report `name` over `[from, to)` and returns it as a table.
pub fn build(
    conn: &mut Connection,
    name: ReportName,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<ReportTable, StorageError> {
    Ok(match name {
        ReportName::QueueDaily => ReportTable::from_rows(&queue_daily(conn, from, to)?),
        ReportName::AgentDaily => ReportTable::from_rows(&agent_daily(conn, from, to)?),
        ReportName::PresenceDaily => ReportTable::from_rows(&presence_daily(conn, from, to, now)?),
        ReportName::Completeness => ReportTable::from_rows(&completeness(conn, from, to)?),
    })
}

// --- metric reports ----------------------------------------------------------------------------

#[derive(QueryableByName, Debug)]
struct MetricGroup {
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    total: Option<i64>,
}

/// Count and sum of each metric in `names`, per (key column of `sessions`, UTC day of
/// emitDate), for sessions matching `session_filter`.
fn metric_groups(
    conn: &mut Connection,
    key: &str,
    session_filter: &str,
    names: &[&str],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<MetricGroup>, StorageError> {
    // SUM of a BIGINT is DECIMAL on MySQL; bring it back to an integer there.
    let sum = match conn.backend() {
        Backend::Mysql => "CAST(SUM(m.value) AS SIGNED)",
        Backend::Sqlite => "SUM(m.value)",
    };
    let in_list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT s.{key} AS key_id, DATE(m.emit_date) AS day, m.name AS name, \
                COUNT(*) AS n, {sum} AS total \
         FROM session_metrics m \
         JOIN sessions s ON s.conversation_id = m.conversation_id AND s.session_id = m.session_id \
         WHERE m.emit_date >= ? AND m.emit_date < ? AND m.name IN ({in_list}) \
           AND s.{key} IS NOT NULL {session_filter} \
         GROUP BY s.{key}, DATE(m.emit_date), m.name"
    );
    let (from, to) = (db_time(from), db_time(to));
    let rows = dispatch!(conn, |c| diesel::sql_query(&sql)
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load::<MetricGroup>(c))?;
    Ok(rows)
}

/// (count, sum) of a metric in a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: i64,
    pub total_ms: i64,
}

impl Tally {
    /// Average in seconds, `None` when nothing was counted.
    pub fn avg_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_ms as f64 / self.count as f64 / 1000.0)
    }
}

/// One queue on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueDailyRow {
    pub day: NaiveDate,
    pub queue_id: String,
    pub offered: i64,
    pub answered: i64,
    pub abandoned: i64,
    pub handle: Tally,
    pub talk: Tally,
    pub hold: Tally,
    pub acw: Tally,
}

pub fn queue_daily(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<QueueDailyRow>, StorageError> {
    let names = [
        "nOffered",
        "tAnswered",
        "tAbandon",
        "tHandle",
        "tTalk",
        "tHeld",
        "tAcw",
    ];
    let groups = metric_groups(conn, "queue_id", "", &names, from, to)?;
    let mut out: BTreeMap<(NaiveDate, String), QueueDailyRow> = BTreeMap::new();
    for g in groups {
        let row = out
            .entry((g.day, g.key_id.clone()))
            .or_insert_with(|| QueueDailyRow {
                day: g.day,
                queue_id: g.key_id.clone(),
                ..QueueDailyRow::default()
            });
        let tally = Tally {
            count: g.n,
            total_ms: g.total.unwrap_or(0),
        };
        match g.name.as_str() {
            "nOffered" => row.offered = tally.total_ms,
            "tAnswered" => row.answered = g.n,
            "tAbandon" => row.abandoned = g.n,
            "tHandle" => row.handle = tally,
            "tTalk" => row.talk = tally,
            "tHeld" => row.hold = tally,
            "tAcw" => row.acw = tally,
            _ => {}
        }
    }
    Ok(out.into_values().collect())
}

/// One agent on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentDailyRow {
    pub day: NaiveDate,
    pub user_id: String,
    /// Interactions whose handling ended that day (count of tHandle).
    pub handled: i64,
    pub handle_ms: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub acw_ms: i64,
}

pub fn agent_daily(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AgentDailyRow>, StorageError> {
    let names = ["tHandle", "tTalk", "tHeld", "tAcw"];
    let groups = metric_groups(
        conn,
        "user_id",
        "AND s.purpose IN ('agent', 'user')",
        &names,
        from,
        to,
    )?;
    let mut out: BTreeMap<(NaiveDate, String), AgentDailyRow> = BTreeMap::new();
    for g in groups {
        let row = out
            .entry((g.day, g.key_id.clone()))
            .or_insert_with(|| AgentDailyRow {
                day: g.day,
                user_id: g.key_id.clone(),
                ..AgentDailyRow::default()
            });
        let total = g.total.unwrap_or(0);
        match g.name.as_str() {
            "tHandle" => {
                row.handled = g.n;
                row.handle_ms = total;
            }
            "tTalk" => row.talk_ms = total,
            "tHeld" => row.hold_ms = total,
            "tAcw" => row.acw_ms = total,
            _ => {}
        }
    }
    Ok(out.into_values().collect())
}

// --- presence ------------------------------------------------------------------------------------

/// Time a user spent in one presence or routing status on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceDailyRow {
    pub day: NaiveDate,
    pub user_id: String,
    /// `presence` or `routing`.
    pub kind: &'static str,
    pub status: String,
    pub ms: i64,
}

/// Adds the part of `[start, end)` inside `[from, to)` to `acc`, cut at each UTC midnight.
pub fn split_by_day(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut add: impl FnMut(NaiveDate, i64),
) {
    let mut s = start.max(from);
    let e = end.min(to);
    while s < e {
        let next_midnight = midnight(s.date_naive()) + Duration::days(1);
        let cut = next_midnight.min(e);
        add(s.date_naive(), (cut - s).num_milliseconds());
        s = cut;
    }
}

pub fn presence_daily(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<PresenceDailyRow>, StorageError> {
    let (f, t) = (db_time(from), db_time(to));
    type Rec = (String, NaiveDateTime, Option<NaiveDateTime>, Option<String>);
    let presence: Vec<Rec> = dispatch!(&mut *conn, |c| user_presence::table
        .filter(user_presence::start_time.lt(t))
        .filter(
            user_presence::end_time
                .is_null()
                .or(user_presence::end_time.gt(f))
        )
        .select((
            user_presence::user_id,
            user_presence::start_time,
            user_presence::end_time,
            user_presence::system_presence,
        ))
        .load(c))?;
    let routing: Vec<Rec> = dispatch!(&mut *conn, |c| user_routing_status::table
        .filter(user_routing_status::start_time.lt(t))
        .filter(
            user_routing_status::end_time
                .is_null()
                .or(user_routing_status::end_time.gt(f))
        )
        .select((
            user_routing_status::user_id,
            user_routing_status::start_time,
            user_routing_status::end_time,
            user_routing_status::routing_status,
        ))
        .load(c))?;
    let mut acc: BTreeMap<(NaiveDate, String, &'static str, String), i64> = BTreeMap::new();
    for (kind, recs) in [("presence", presence), ("routing", routing)] {
        for (user, start, end, status) in recs {
            let end = end.map(utc).unwrap_or(now);
            let status = status.unwrap_or_else(|| "UNKNOWN".into());
            split_by_day(utc(start), end, from, to, |day, ms| {
                *acc.entry((day, user.clone(), kind, status.clone()))
                    .or_insert(0) += ms;
            });
        }
    }
    Ok(acc
        .into_iter()
        .map(|((day, user_id, kind, status), ms)| PresenceDailyRow {
            day,
            user_id,
            kind,
            status,
            ms,
        })
        .collect())
}

// --- completeness --------------------------------------------------------------------------------

/// What is stored and verified for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompletenessRow {
    pub day: NaiveDate,
    /// Conversation partitions touching the day, by status.
    pub partitions: i64,
    pub verified: i64,
    pub unverified: i64,
    pub failed: i64,
    pub pending: i64,
    /// User-status partitions touching the day, and how many are verified.
    pub user_partitions: i64,
    pub user_verified: i64,
    /// Conversations that started that day; those still without an end; those not final.
    pub conversations: i64,
    pub in_progress: i64,
    pub not_final: i64,
    /// `id range received/total_hits` of each unverified partition.
    pub unverified_partitions: Vec<String>,
}

#[derive(QueryableByName, Debug)]
struct DayCounts {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    stored: i64,
    #[diesel(sql_type = BigInt)]
    in_progress: i64,
    #[diesel(sql_type = BigInt)]
    not_final: i64,
}

pub fn completeness(
    conn: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<CompletenessRow>, StorageError> {
    let mut days: BTreeMap<NaiveDate, CompletenessRow> = BTreeMap::new();
    let mut d = from.date_naive();
    while midnight(d) < to {
        days.insert(
            d,
            CompletenessRow {
                day: d,
                ..CompletenessRow::default()
            },
        );
        d += Duration::days(1);
    }
    let parts = load_partitions(conn, &[Dataset::Conversations, Dataset::Users], from, to)?;
    for p in &parts {
        let mut d = p.range_start.date_naive();
        while midnight(d) < p.range_end {
            if let Some(row) = days.get_mut(&d) {
                match p.dataset {
                    Dataset::Users => {
                        row.user_partitions += 1;
                        row.user_verified += (p.status == PartitionStatus::Done) as i64;
                    }
                    Dataset::Conversations => {
                        row.partitions += 1;
                        match p.status {
                            PartitionStatus::Done => row.verified += 1,
                            PartitionStatus::Unverified => {
                                row.unverified += 1;
                                row.unverified_partitions.push(format!(
                                    "#{} {}/{} received {} of {}",
                                    p.id,
                                    crate::genesys::model::instant::format(&p.range_start),
                                    crate::genesys::model::instant::format(&p.range_end),
                                    p.received.unwrap_or(0),
                                    p.total_hits.unwrap_or(0)
                                ));
                            }
                            PartitionStatus::Failed => row.failed += 1,
                            PartitionStatus::Pending | PartitionStatus::Running => row.pending += 1,
                            PartitionStatus::Split => {}
                        }
                    }
                }
            }
            d += Duration::days(1);
        }
    }
    let sum = |expr: &str| match conn.backend() {
        Backend::Mysql => format!("CAST(SUM({expr}) AS SIGNED)"),
        Backend::Sqlite => format!("SUM({expr})"),
    };
    let sql = format!(
        "SELECT DATE(conversation_start) AS day, COUNT(*) AS stored, \
                {} AS in_progress, {} AS not_final \
         FROM conversations WHERE conversation_start >= ? AND conversation_start < ? \
         GROUP BY DATE(conversation_start)",
        sum("CASE WHEN conversation_end IS NULL THEN 1 ELSE 0 END"),
        sum("CASE WHEN is_final THEN 0 ELSE 1 END"),
    );
    let (f, t) = (db_time(from), db_time(to));
    let counts = dispatch!(conn, |c| diesel::sql_query(&sql)
        .bind::<Timestamp, _>(f)
        .bind::<Timestamp, _>(t)
        .load::<DayCounts>(c))?;
    for c in counts {
        if let Some(row) = days.get_mut(&c.day) {
            row.conversations = c.stored;
            row.in_progress = c.in_progress;
            row.not_final = c.not_final;
        }
    }
    Ok(days.into_values().collect())
}

// --- output --------------------------------------------------------------------------------------

/// A report ready to print: named columns and rows of JSON values.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTable {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

/// A report row as printed.
pub trait ReportRow {
    fn columns() -> Vec<&'static str>;
    fn values(&self) -> Vec<Value>;
}

fn secs(ms: i64) -> Value {
    json!((ms as f64 / 1000.0 * 1000.0).round() / 1000.0)
}

fn avg(t: &Tally) -> Value {
    t.avg_seconds()
        .map(|s| json!((s * 1000.0).round() / 1000.0))
        .unwrap_or(Value::Null)
}

impl ReportRow for QueueDailyRow {
    fn columns() -> Vec<&'static str> {
        vec![
            "day",
            "queue_id",
            "offered",
            "answered",
            "abandoned",
            "avg_handle_s",
            "avg_talk_s",
            "avg_hold_s",
            "avg_acw_s",
        ]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.queue_id),
            json!(self.offered),
            json!(self.answered),
            json!(self.abandoned),
            avg(&self.handle),
            avg(&self.talk),
            avg(&self.hold),
            avg(&self.acw),
        ]
    }
}

impl ReportRow for AgentDailyRow {
    fn columns() -> Vec<&'static str> {
        vec![
            "day", "user_id", "handled", "handle_s", "talk_s", "hold_s", "acw_s",
        ]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.user_id),
            json!(self.handled),
            secs(self.handle_ms),
            secs(self.talk_ms),
            secs(self.hold_ms),
            secs(self.acw_ms),
        ]
    }
}

impl ReportRow for PresenceDailyRow {
    fn columns() -> Vec<&'static str> {
        vec!["day", "user_id", "kind", "status", "seconds"]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.user_id),
            json!(self.kind),
            json!(self.status),
            secs(self.ms),
        ]
    }
}

impl ReportRow for CompletenessRow {
    fn columns() -> Vec<&'static str> {
        vec![
            "day",
            "partitions",
            "verified",
            "unverified",
            "failed",
            "pending",
            "user_partitions",
            "user_verified",
            "conversations",
            "in_progress",
            "not_final",
            "unverified_partitions",
        ]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.partitions),
            json!(self.verified),
            json!(self.unverified),
            json!(self.failed),
            json!(self.pending),
            json!(self.user_partitions),
            json!(self.user_verified),
            json!(self.conversations),
            json!(self.in_progress),
            json!(self.not_final),
            json!(self.unverified_partitions.join("; ")),
        ]
    }
}

impl ReportTable {
    pub fn from_rows<R: ReportRow>(rows: &[R]) -> Self {
        ReportTable {
            columns: R::columns(),
            rows: rows.iter().map(|r| r.values()).collect(),
        }
    }

    fn cell(v: &Value) -> String {
        match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Writes the report in `format`: an aligned text table, CSV with a header line, or a JSON
    /// array of objects.
    pub fn write(&self, out: &mut dyn Write, format: OutputFormat) -> std::io::Result<()> {
        match format {
            OutputFormat::Json => {
                let objs: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        Value::Object(
                            self.columns
                                .iter()
                                .map(|c| c.to_string())
                                .zip(r.iter().cloned())
                                .collect(),
                        )
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut *out, &objs)?;
                writeln!(out)
            }
            OutputFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.columns)?;
                for r in &self.rows {
                    w.write_record(r.iter().map(Self::cell))?;
                }
                w.flush()
            }
            OutputFormat::Table => {
                let cells: Vec<Vec<String>> = self
                    .rows
                    .iter()
                    .map(|r| r.iter().map(Self::cell).collect())
                    .collect();
                let mut widths: Vec<usize> = self.columns.iter().map(|c| c.len()).collect();
                for r in &cells {
                    for (w, c) in widths.iter_mut().zip(r) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let line = |vals: Vec<&str>| {
                    vals.iter()
                        .zip(&widths)
                        .map(|(v, w)| format!("{v:<w$}"))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
                writeln!(out, "{}", line(self.columns.clone()))?;
                writeln!(
                    out,
                    "{}",
                    line(
                        widths
                            .iter()
                            .map(|w| "-".repeat(*w))
                            .collect::<Vec<_>>()
                            .iter()
                            .map(|s| s.as_str())
                            .collect()
                    )
                )?;
                for r in &cells {
                    writeln!(out, "{}", line(r.iter().map(|s| s.as_str()).collect()))?;
                }
                if self.rows.is_empty() {
                    writeln!(out, "(no data in the range)")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_is_split_at_each_midnight_and_clipped_to_the_range() {
        let t = |d, h, m| Utc.with_ymd_and_hms(2024, 3, d, h, m, 0).unwrap();
        let mut got = Vec::new();
        split_by_day(
            t(1, 23, 30),
            t(3, 0, 15),
            t(1, 0, 0),
            t(4, 0, 0),
            |d, ms| got.push((d.to_string(), ms / 60_000)),
        );
        assert_eq!(
            got,
            vec![
                ("2024-03-01".to_string(), 30),
                ("2024-03-02".to_string(), 1440),
                ("2024-03-03".to_string(), 15)
            ]
        );
        let mut got = Vec::new();
        split_by_day(
            t(1, 23, 30),
            t(2, 0, 15),
            t(2, 0, 0),
            t(3, 0, 0),
            |d, ms| got.push((d.to_string(), ms / 60_000)),
        );
        assert_eq!(got, vec![("2024-03-02".to_string(), 15)]);
    }

    #[test]
    fn ranges_accept_dates_and_instants() {
        let now = Utc.with_ymd_and_hms(2024, 3, 10, 15, 0, 0).unwrap();
        let (f, t) = resolve_range(None, None, now).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2024, 3, 11, 0, 0, 0).unwrap());
        assert_eq!(f, Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap());
        let (f, _) = resolve_range(Some("2024-03-09T12:00:00Z"), None, now).unwrap();
        assert_eq!(f, Utc.with_ymd_and_hms(2024, 3, 9, 12, 0, 0).unwrap());
        assert!(matches!(
            resolve_range(Some("yesterday"), None, now),
            Err(ReportError::BadTime { flag: "from", .. })
        ));
        assert!(matches!(
            resolve_range(Some("2024-03-12"), Some("2024-03-11"), now),
            Err(ReportError::EmptyRange)
        ));
    }

    #[test]
    fn formats_print_every_row() {
        let rows = vec![AgentDailyRow {
            day: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            user_id: "u,1".into(),
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
            "day,user_id,handled,handle_s,talk_s,hold_s,acw_s\n2024-03-01,\"u,1\",2,1.5,0.0,0.0,0.0\n"
        );
        let mut js = Vec::new();
        t.write(&mut js, OutputFormat::Json).unwrap();
        let v: Value = serde_json::from_slice(&js).unwrap();
        assert_eq!(v[0]["handle_s"], json!(1.5));
        let mut tab = Vec::new();
        t.write(&mut tab, OutputFormat::Table).unwrap();
        let text = String::from_utf8(tab).unwrap();
        assert!(text.lines().nth(2).unwrap().starts_with("2024-03-01  u,1"));
    }
}
