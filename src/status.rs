//! `sluice status` and the checkpoint half of the admin server's `/status`.
//!
//! Why: an operator must be able to tell, without calling Genesys and without the service
//! running, which days are complete, what the last run did, and which partitions failed or could
//! not be verified and why. Everything here is read from the checkpoint tables
//! (`ingest_partitions`, `ingest_runs`) only; the CLI and `/status` build the same
//! [`StatusReport`] from the same rows, so they always agree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use crate::metrics::PartitionCount;
use crate::storage::models::utc;
use crate::storage::{connect, Connection, DatabaseUrl, StorageError};

/// One checkpoint partition as the status report needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    pub id: i64,
    pub dataset: String,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    /// pending, running, done, unverified, failed or split.
    pub status: String,
    pub attempts: i64,
    pub total_hits: Option<i64>,
    pub received: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One row of `ingest_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub requests: i64,
    pub rate_limited: i64,
    pub rows_written: i64,
    /// Re-fetched conversations whose content had changed upstream.
    pub conversations_changed: i64,
    /// Conversations (and user records) deleted because Genesys no longer has them.
    pub conversations_deleted: i64,
    pub user_records_deleted: i64,
}

/// Completeness of one UTC day of one dataset. A partition counts towards every day it overlaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCompleteness {
    pub day: NaiveDate,
    pub dataset: String,
    pub partitions: i64,
    pub done: i64,
    pub unverified: i64,
    pub failed: i64,
    /// pending or running.
    pub in_progress: i64,
    /// Records received by the day's finished partitions (distinct per partition; a conversation
    /// spanning midnight counts in both days' partitions).
    pub received: i64,
    /// Every partition of the day is done (verified).
    pub complete: bool,
}

/// A partition that needs attention: failed or unverified, with its numbers and error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionProblem {
    pub id: i64,
    pub dataset: String,
    pub range_start: DateTime<Utc>,
    pub range_end: DateTime<Utc>,
    pub status: String,
    pub attempts: i64,
    pub total_hits: Option<i64>,
    pub received: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What `sluice status` prints and `/status` embeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    /// Partitions by dataset and status (split parents included, as in the table).
    pub partitions: Vec<PartitionCount>,
    pub days: Vec<DayCompleteness>,
    pub last_run: Option<RunView>,
    /// Failed partitions first, then unverified; oldest range first.
    pub problems: Vec<PartitionProblem>,
    /// Instances seen lately (active or standing by), from their heartbeats; empty when the
    /// report was built from rows alone.
    pub instances: Vec<InstanceView>,
}

/// A running instance as its heartbeat shows it (`instances` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceView {
    /// `sluice@HOST:PID`.
    pub instance: String,
    pub command: String,
    /// `active` (holds the OAuth client's leader lease and fetches) or `standby`.
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Heartbeats older than this are not shown (a killed instance's row lingers).
const INSTANCE_SEEN_WITHIN: i64 = 15 * 60;

/// Instances seen within [`INSTANCE_SEEN_WITHIN`] of `now`; empty when the table is missing
/// (a database not migrated to the current version).
fn load_instances(conn: &mut Connection, now: DateTime<Utc>) -> Vec<InstanceView> {
    crate::storage::instances::live_instances(conn, now - Duration::seconds(INSTANCE_SEEN_WITHIN))
        .map(|v| {
            v.into_iter()
                .map(|r| InstanceView {
                    instance: r.instance,
                    command: r.command,
                    role: r.role,
                    started_at: r.started_at,
                    seen_at: r.seen_at,
                })
                .collect()
        })
        .unwrap_or_default()
}

const FINISHED: [&str; 2] = ["done", "unverified"];

impl StatusReport {
    /// Build the report from checkpoint rows.
    pub fn from_rows(
        partitions: &[PartitionView],
        runs: &[RunView],
        now: DateTime<Utc>,
    ) -> StatusReport {
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut days: BTreeMap<(NaiveDate, String), DayCompleteness> = BTreeMap::new();
        for p in partitions {
            *counts
                .entry((p.dataset.clone(), p.status.clone()))
                .or_default() += 1;
            if p.status == "split" {
                continue; // its children stand for it
            }
            for day in days_overlapped(p.range_start, p.range_end) {
                let d = days
                    .entry((day, p.dataset.clone()))
                    .or_insert_with(|| DayCompleteness {
                        day,
                        dataset: p.dataset.clone(),
                        partitions: 0,
                        done: 0,
                        unverified: 0,
                        failed: 0,
                        in_progress: 0,
                        received: 0,
                        complete: false,
                    });
                d.partitions += 1;
                if FINISHED.contains(&p.status.as_str()) {
                    d.received += p.received.unwrap_or(0);
                }
                match p.status.as_str() {
                    "done" => d.done += 1,
                    "unverified" => d.unverified += 1,
                    "failed" => d.failed += 1,
                    _ => d.in_progress += 1,
                }
            }
        }
        let mut problems: Vec<PartitionProblem> = partitions
            .iter()
            .filter(|p| p.status == "failed" || p.status == "unverified")
            .map(|p| PartitionProblem {
                id: p.id,
                dataset: p.dataset.clone(),
                range_start: p.range_start,
                range_end: p.range_end,
                status: p.status.clone(),
                attempts: p.attempts,
                total_hits: p.total_hits,
                received: p.received,
                last_error: p.last_error.clone(),
                updated_at: p.updated_at,
            })
            .collect();
        problems.sort_by(|a, b| {
            (a.status != "failed", a.range_start, &a.dataset).cmp(&(
                b.status != "failed",
                b.range_start,
                &b.dataset,
            ))
        });
        StatusReport {
            generated_at: now,
            partitions: counts
                .into_iter()
                .map(|((dataset, status), count)| PartitionCount {
                    dataset,
                    status,
                    count,
                })
                .collect(),
            days: days
                .into_values()
                .map(|mut d| {
                    d.complete = d.done == d.partitions;
                    d
                })
                .collect(),
            last_run: runs.iter().max_by_key(|r| (r.started_at, r.id)).cloned(),
            problems,
            instances: Vec::new(),
        }
    }

    /// Number of partitions in `status` (all datasets).
    pub fn count(&self, status: &str) -> i64 {
        self.partitions
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.count)
            .sum()
    }

    /// Human-readable rendering for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Sluice status at {}",
            self.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        out.push('\n');
        match &self.last_run {
            Some(r) => {
                let ended = r
                    .ended_at
                    .map(|e| e.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "still running (or interrupted)".into());
                let _ = writeln!(
                    out,
                    "Last run #{}: started {}, ended {}; {} requests, {} answered 429, {} rows written",
                    r.id,
                    r.started_at.format("%Y-%m-%d %H:%M:%S"),
                    ended,
                    r.requests,
                    r.rate_limited,
                    r.rows_written
                );
                let _ = writeln!(
                    out,
                    "  upstream changes: {} conversations changed, {} deleted; {} user records deleted",
                    r.conversations_changed, r.conversations_deleted, r.user_records_deleted
                );
            }
            None => out.push_str("No run recorded yet.\n"),
        }
        for i in &self.instances {
            let _ = writeln!(
                out,
                "Instance {} ({}): {}, last seen {} s ago",
                i.instance,
                i.command,
                if i.role == "standby" {
                    "standing by (another instance holds the leader lease)"
                } else {
                    "active (holds the leader lease, fetches)"
                },
                (self.generated_at - i.seen_at).num_seconds().max(0)
            );
        }
        out.push('\n');
        if self.partitions.is_empty() {
            out.push_str("No partitions planned yet: run `sluice backfill` or `sluice run`.\n");
            return out;
        }
        out.push_str("Partitions:\n");
        for c in &self.partitions {
            let _ = writeln!(out, "  {:<14} {:<11} {:>7}", c.dataset, c.status, c.count);
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<10}  {:<14} {:>5} {:>5} {:>10} {:>6} {:>11} {:>9}  complete",
            "day", "dataset", "parts", "done", "unverified", "failed", "in progress", "records"
        );
        for d in &self.days {
            let _ = writeln!(
                out,
                "{:<10}  {:<14} {:>5} {:>5} {:>10} {:>6} {:>11} {:>9}  {}",
                d.day,
                d.dataset,
                d.partitions,
                d.done,
                d.unverified,
                d.failed,
                d.in_progress,
                d.received,
                if d.complete { "yes" } else { "no" }
            );
        }
        out.push('\n');
        if self.problems.is_empty() {
            out.push_str("No failed or unverified partitions.\n");
        } else {
            out.push_str("Failed and unverified partitions:\n");
            for p in &self.problems {
                let numbers = match (p.received, p.total_hits) {
                    (Some(r), Some(t)) => format!("received {r} of totalHits {t}"),
                    (Some(r), None) => format!("received {r}"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  #{} {} {}..{} {} after {} attempt(s) {}{}",
                    p.id,
                    p.dataset,
                    p.range_start.format("%Y-%m-%dT%H:%M:%SZ"),
                    p.range_end.format("%Y-%m-%dT%H:%M:%SZ"),
                    p.status.to_uppercase(),
                    p.attempts,
                    numbers,
                    p.last_error
                        .as_deref()
                        .map(|e| format!(": {}", one_line(e)))
                        .unwrap_or_default()
                );
            }
        }
        out
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// UTC days that `[start, end)` overlaps (at least the start's day).
pub fn days_overlapped(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<NaiveDate> {
    let first = start.date_naive();
    let last_instant = if end > start {
        end - Duration::milliseconds(1)
    } else {
        start
    };
    let last = last_instant.date_naive();
    first.iter_days().take_while(|d| *d <= last).collect()
}

/// Seconds the ingested history lags the watermark: the watermark minus the start of the earliest
/// partition that is not finished (done or unverified), or minus the end of the plan when all are
/// finished. `None` when nothing is planned. Never negative.
pub fn watermark_lag_seconds(
    partitions: &[PartitionView],
    watermark: DateTime<Utc>,
) -> Option<f64> {
    let live: Vec<&PartitionView> = partitions.iter().filter(|p| p.status != "split").collect();
    if live.is_empty() {
        return None;
    }
    let frontier = live
        .iter()
        .filter(|p| !FINISHED.contains(&p.status.as_str()))
        .map(|p| p.range_start)
        .min()
        .or_else(|| live.iter().map(|p| p.range_end).max())?;
    Some(((watermark - frontier).num_milliseconds() as f64 / 1000.0).max(0.0))
}

/// Reading the status from the database failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no database at {0}: nothing has been ingested yet (or DATABASE_URL / database_url points elsewhere)")]
    NoDatabase(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

type PartitionTuple = (
    i64,
    String,
    NaiveDateTime,
    NaiveDateTime,
    String,
    i32,
    Option<i64>,
    Option<i64>,
    Option<String>,
    NaiveDateTime,
);

type RunTuple = (
    i64,
    NaiveDateTime,
    Option<NaiveDateTime>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// Every checkpoint partition and the latest run, as stored.
pub fn load_rows(
    conn: &mut Connection,
) -> Result<(Vec<PartitionView>, Vec<RunView>), StorageError> {
    use crate::storage::schema::{ingest_partitions as ip, ingest_runs as ir};
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    let parts: Vec<PartitionTuple> = crate::dispatch!(&mut *conn, |c| ip::table
        .select((
            ip::id,
            ip::dataset,
            ip::range_start,
            ip::range_end,
            ip::status,
            ip::attempts,
            ip::total_hits,
            ip::received,
            ip::last_error,
            ip::updated_at,
        ))
        .order((ip::range_start.asc(), ip::dataset.asc(), ip::id.asc()))
        .load(c))?;
    let runs: Vec<RunTuple> = crate::dispatch!(&mut *conn, |c| ir::table
        .select((
            ir::id,
            ir::started_at,
            ir::ended_at,
            ir::requests,
            ir::rate_limited_requests,
            ir::rows_written,
            ir::conversations_changed,
            ir::conversations_deleted,
            ir::user_records_deleted,
        ))
        .order(ir::id.desc())
        .limit(1)
        .load(c))?;
    let parts = parts
        .into_iter()
        .map(|p| PartitionView {
            id: p.0,
            dataset: p.1,
            range_start: utc(p.2),
            range_end: utc(p.3),
            status: p.4,
            attempts: i64::from(p.5),
            total_hits: p.6,
            received: p.7,
            last_error: p.8,
            updated_at: utc(p.9),
        })
        .collect();
    let runs = runs
        .into_iter()
        .map(|r| RunView {
            id: r.0,
            started_at: utc(r.1),
            ended_at: r.2.map(utc),
            requests: r.3,
            rate_limited: r.4,
            rows_written: r.5,
            conversations_changed: r.6,
            conversations_deleted: r.7,
            user_records_deleted: r.8,
        })
        .collect();
    Ok((parts, runs))
}

/// Is the database reachable and does it hold the checkpoint table?
pub fn ping(conn: &mut Connection) -> Result<(), StorageError> {
    use crate::storage::schema::ingest_partitions as ip;
    use diesel::{QueryDsl, RunQueryDsl};
    let _: i64 = crate::dispatch!(&mut *conn, |c| ip::table.count().get_result(c))?;
    Ok(())
}

/// Open the database without creating it: a SQLite file that does not exist is an error, not a
/// new empty database.
pub fn open_existing(url: &DatabaseUrl) -> Result<Connection, StatusError> {
    if let DatabaseUrl::Sqlite(path) = url {
        if path.as_os_str() != ":memory:" && !path.exists() {
            return Err(StatusError::NoDatabase(url.redacted()));
        }
    }
    Ok(connect(url)?)
}

/// The status report read from `url`.
pub fn read_status(url: &DatabaseUrl, now: DateTime<Utc>) -> Result<StatusReport, StatusError> {
    let mut conn = open_existing(url)?;
    let (parts, runs) = load_rows(&mut conn)?;
    let mut report = StatusReport::from_rows(&parts, &runs, now);
    report.instances = load_instances(&mut conn, now);
    Ok(report)
}

/// The admin server's [`CheckpointReader`](crate::admin::CheckpointReader) over a database URL:
/// a fresh connection per call, so a database that went away and came back is seen at once.
#[derive(Debug, Clone)]
pub struct DatabaseCheckpoint {
    url: DatabaseUrl,
}

impl DatabaseCheckpoint {
    pub fn new(url: DatabaseUrl) -> Self {
        DatabaseCheckpoint { url }
    }
}

impl crate::admin::CheckpointReader for DatabaseCheckpoint {
    fn ping(&self) -> Result<(), String> {
        let mut conn = open_existing(&self.url).map_err(|e| e.to_string())?;
        ping(&mut conn).map_err(|e| e.to_string())
    }

    fn load(&self) -> Result<(Vec<PartitionView>, Vec<RunView>), String> {
        let mut conn = open_existing(&self.url).map_err(|e| e.to_string())?;
        load_rows(&mut conn).map_err(|e| e.to_string())
    }
}

/// Output format of `sluice status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

/// `sluice status` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Output format: a table for people, JSON for scripts.
    #[arg(long, value_enum, default_value = "table")]
    pub format: StatusFormat,
    /// Configuration file (its `database_url`); default `sluice.toml` when present.
    /// DATABASE_URL overrides it.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

/// Render a report in `format` (JSON is pretty-printed, one document).
pub fn render(report: &StatusReport, format: StatusFormat) -> String {
    match format {
        StatusFormat::Table => report.to_table(),
        StatusFormat::Json => {
            let mut s = serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn part(id: i64, ds: &str, from: &str, to: &str, status: &str) -> PartitionView {
        PartitionView {
            id,
            dataset: ds.into(),
            range_start: t(from),
            range_end: t(to),
            status: status.into(),
            attempts: 1,
            total_hits: None,
            received: None,
            last_error: None,
            updated_at: t("2026-03-05T00:00:00Z"),
        }
    }

    #[test]
    fn days_overlapped_treats_end_as_exclusive() {
        let d = days_overlapped(t("2026-03-01T00:00:00Z"), t("2026-03-02T00:00:00Z"));
        assert_eq!(d, vec![NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()]);
        let d = days_overlapped(t("2026-03-01T23:00:00Z"), t("2026-03-02T01:00:00Z"));
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn report_counts_days_problems_and_last_run() {
        let mut failed = part(
            4,
            "conversations",
            "2026-03-02T00:00:00Z",
            "2026-03-02T12:00:00Z",
            "failed",
        );
        failed.last_error = Some("HTTP 400: interval\n too long".into());
        let mut unverified = part(
            5,
            "conversations",
            "2026-03-02T12:00:00Z",
            "2026-03-03T00:00:00Z",
            "unverified",
        );
        unverified.received = Some(98);
        unverified.total_hits = Some(100);
        let rows = vec![
            part(
                1,
                "conversations",
                "2026-03-01T00:00:00Z",
                "2026-03-02T00:00:00Z",
                "done",
            ),
            part(
                2,
                "users",
                "2026-03-01T00:00:00Z",
                "2026-03-02T00:00:00Z",
                "pending",
            ),
            part(
                3,
                "conversations",
                "2026-03-02T00:00:00Z",
                "2026-03-03T00:00:00Z",
                "split",
            ),
            failed,
            unverified,
        ];
        let runs = vec![
            RunView {
                id: 1,
                started_at: t("2026-03-04T00:00:00Z"),
                ended_at: Some(t("2026-03-04T01:00:00Z")),
                requests: 10,
                rate_limited: 0,
                rows_written: 5,
                conversations_changed: 0,
                conversations_deleted: 0,
                user_records_deleted: 0,
            },
            RunView {
                id: 2,
                started_at: t("2026-03-05T00:00:00Z"),
                ended_at: None,
                requests: 3,
                rate_limited: 1,
                rows_written: 0,
                conversations_changed: 4,
                conversations_deleted: 2,
                user_records_deleted: 1,
            },
        ];
        let r = StatusReport::from_rows(&rows, &runs, t("2026-03-05T01:00:00Z"));
        assert_eq!(r.count("split"), 1);
        assert_eq!(r.count("done"), 1);
        assert_eq!(r.last_run.as_ref().map(|r| r.id), Some(2));
        assert_eq!(r.days.len(), 3);
        let mar1 = &r.days[0];
        assert_eq!(
            (mar1.dataset.as_str(), mar1.complete),
            ("conversations", true)
        );
        let mar2 = &r.days[2];
        assert_eq!(
            (mar2.partitions, mar2.failed, mar2.unverified, mar2.complete),
            (2, 1, 1, false)
        );
        assert_eq!(mar2.received, 98);
        assert_eq!(r.problems.len(), 2);
        assert_eq!(r.problems[0].status, "failed");
        let table = r.to_table();
        assert!(table.contains("HTTP 400: interval too long"), "{table}");
        assert!(table.contains("received 98 of totalHits 100"), "{table}");
        assert!(table.contains("Last run #2"), "{table}");
        assert!(
            table.contains("4 conversations changed, 2 deleted; 1 user records deleted"),
            "{table}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["problems"][1]["total_hits"], 100);
    }

    #[test]
    fn watermark_lag_stops_at_first_unfinished_partition() {
        let wm = t("2026-03-05T00:00:00Z");
        assert_eq!(watermark_lag_seconds(&[], wm), None);
        let rows = vec![
            part(
                1,
                "conversations",
                "2026-03-01T00:00:00Z",
                "2026-03-02T00:00:00Z",
                "done",
            ),
            part(
                2,
                "conversations",
                "2026-03-02T00:00:00Z",
                "2026-03-03T00:00:00Z",
                "pending",
            ),
            part(
                3,
                "conversations",
                "2026-03-03T00:00:00Z",
                "2026-03-04T00:00:00Z",
                "done",
            ),
        ];
        assert_eq!(watermark_lag_seconds(&rows, wm), Some(3.0 * 86400.0));
        let all_done: Vec<_> = rows
            .into_iter()
            .map(|mut p| {
                p.status = "done".into();
                p
            })
            .collect();
        assert_eq!(watermark_lag_seconds(&all_done, wm), Some(86400.0));
        assert_eq!(
            watermark_lag_seconds(&all_done, t("2026-03-03T00:00:00Z")),
            Some(0.0)
        );
    }
}
