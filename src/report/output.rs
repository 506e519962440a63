//! Printing a report: named columns, rows of JSON values, written as an aligned table, CSV or
//! JSON.

use std::io::Write;

use serde_json::{json, Value};

use super::metrics::{AgentDailyRow, QueueDailyRow, Tally, WrapupDailyRow};
use super::presence::{CompletenessRow, PresenceDailyRow};
use super::OutputFormat;

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
            "interval_start",
            "queue_id",
            "queue",
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
            json!(self.interval_start.to_rfc3339()),
            json!(self.queue_id),
            json!(self.queue),
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
            "day",
            "interval_start",
            "user_id",
            "agent",
            "handled",
            "handle_s",
            "talk_s",
            "hold_s",
            "acw_s",
        ]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.interval_start.to_rfc3339()),
            json!(self.user_id),
            json!(self.agent),
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
        vec![
            "day",
            "interval_start",
            "user_id",
            "agent",
            "kind",
            "status",
            "seconds",
        ]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.interval_start.to_rfc3339()),
            json!(self.user_id),
            json!(self.agent),
            json!(self.kind),
            json!(self.status),
            secs(self.ms),
        ]
    }
}

impl ReportRow for WrapupDailyRow {
    fn columns() -> Vec<&'static str> {
        vec![
            "day",
            "interval_start",
            "queue_id",
            "queue",
            "wrap_up_code",
            "wrap_up",
            "count",
            "share",
        ]
    }
    fn values(&self) -> Vec<Value> {
        vec![
            json!(self.day.to_string()),
            json!(self.interval_start.to_rfc3339()),
            json!(self.queue_id),
            json!(self.queue),
            json!(self.wrap_up_code),
            json!(self.wrap_up),
            json!(self.count),
            json!((self.share * 10_000.0).round() / 10_000.0),
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
