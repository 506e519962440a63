//! presence-daily (one query, records cut at interval boundaries here) and completeness.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use diesel::sql_types::{BigInt, Date, Nullable, Text, Timestamp};
use diesel::QueryableByName;
use serde::Serialize;

use super::metrics::{load, name_filter, sum, Bind};
use super::ReportSpec;
use crate::storage::checkpoint::{load_partitions, Dataset, PartitionStatus};
use crate::storage::models::{db_time, utc};
use crate::storage::{Connection, StorageError};

/// Time a user spent in one presence or routing status in one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceDailyRow {
    pub day: NaiveDate,
    pub interval_start: DateTime<FixedOffset>,
    pub user_id: String,
    /// The user's name, or the id when unknown.
    pub agent: String,
    /// `presence` or `routing`.
    pub kind: &'static str,
    pub status: String,
    pub ms: i64,
}

#[derive(QueryableByName, Debug)]
struct StatusRecord {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    user_name: Option<String>,
    #[diesel(sql_type = Timestamp)]
    start_time: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    end_time: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

/// presence-daily over `spec`: every presence and routing-status record overlapping the range,
/// cut at each interval boundary so its time lands in the interval it was spent in; a current
/// record (no end) counts up to `now`.
pub fn presence_report(
    conn: &mut Connection,
    spec: &ReportSpec,
    now: DateTime<Utc>,
) -> Result<Vec<PresenceDailyRow>, StorageError> {
    let mut binds = Vec::new();
    let select = |kind: &str, table: &str, status: &str, binds: &mut Vec<Bind>| {
        binds.push(Bind::Time(db_time(spec.to)));
        binds.push(Bind::Time(db_time(spec.from)));
        let filter = name_filter("p.user_id", "u.name", &spec.agents, binds);
        format!(
            "SELECT '{kind}' AS kind, p.user_id AS user_id, u.name AS user_name, \
                    p.start_time AS start_time, p.end_time AS end_time, p.{status} AS status \
             FROM {table} p LEFT JOIN users u ON u.id = p.user_id \
             WHERE p.start_time < ? AND (p.end_time IS NULL OR p.end_time > ?) {filter}"
        )
    };
    let sql = format!(
        "{} UNION ALL {}",
        select("presence", "user_presence", "system_presence", &mut binds),
        select(
            "routing",
            "user_routing_status",
            "routing_status",
            &mut binds
        )
    );
    let records: Vec<StatusRecord> = load(conn, &sql, &binds)?;
    let cutter = spec.cutter();
    let grid = cutter.grid();
    // Names interned so cutting a year into 15-minute pieces adds integers, not strings.
    let mut users: Vec<(String, String)> = Vec::new();
    let mut user_index: HashMap<String, u32> = HashMap::new();
    let mut statuses: Vec<String> = Vec::new();
    let mut status_index: HashMap<String, u32> = HashMap::new();
    let mut acc: HashMap<(usize, u32, bool, u32), i64> = HashMap::new();
    for r in records {
        let routing = r.kind == "routing";
        let end = r.end_time.map(utc).unwrap_or(now);
        let user = *user_index.entry(r.user_id.clone()).or_insert_with(|| {
            let name = r.user_name.clone().unwrap_or_else(|| r.user_id.clone());
            users.push((r.user_id.clone(), name));
            (users.len() - 1) as u32
        });
        let status_text = r.status.unwrap_or_else(|| "UNKNOWN".into());
        let status = *status_index.entry(status_text.clone()).or_insert_with(|| {
            statuses.push(status_text);
            (statuses.len() - 1) as u32
        });
        cutter.split(&grid, utc(r.start_time), end, |i, ms| {
            *acc.entry((i, user, routing, status)).or_insert(0) += ms;
        });
    }
    let mut rows: Vec<((usize, u32, bool, u32), i64)> = acc.into_iter().collect();
    rows.sort_by(|a, b| {
        let (ka, kb) = (&a.0, &b.0);
        (
            ka.0,
            &users[ka.1 as usize].0,
            ka.2,
            &statuses[ka.3 as usize],
        )
            .cmp(&(
                kb.0,
                &users[kb.1 as usize].0,
                kb.2,
                &statuses[kb.3 as usize],
            ))
    });
    Ok(rows
        .into_iter()
        .map(|((i, user, routing, status), ms)| {
            let interval = grid.intervals[i];
            let (user_id, agent) = users[user as usize].clone();
            PresenceDailyRow {
                day: interval.day,
                interval_start: interval.start,
                user_id,
                agent,
                kind: if routing { "routing" } else { "presence" },
                status: statuses[status as usize].clone(),
                ms,
            }
        })
        .collect())
}

// --- completeness --------------------------------------------------------------------------------

/// What is stored and verified for one UTC day.
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

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    utc(d.and_time(chrono::NaiveTime::MIN))
}

/// completeness over `[from, to)` in UTC days (partitions are UTC blocks).
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
    let backend = conn.backend();
    let sql = format!(
        "SELECT DATE(conversation_start) AS day, COUNT(*) AS stored, \
                {} AS in_progress, {} AS not_final \
         FROM conversations WHERE conversation_start >= ? AND conversation_start < ? \
         GROUP BY DATE(conversation_start)",
        sum(
            backend,
            "CASE WHEN conversation_end IS NULL THEN 1 ELSE 0 END"
        ),
        sum(backend, "CASE WHEN is_final THEN 0 ELSE 1 END"),
    );
    let counts: Vec<DayCounts> = load(
        conn,
        &sql,
        &[Bind::Time(db_time(from)), Bind::Time(db_time(to))],
    )?;
    for c in counts {
        if let Some(row) = days.get_mut(&c.day) {
            row.conversations = c.stored;
            row.in_progress = c.in_progress;
            row.not_final = c.not_final;
        }
    }
    Ok(days.into_values().collect())
}
