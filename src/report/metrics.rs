//! queue-daily, agent-daily and wrapup-daily: one grouped query each, names joined from the
//! directory tables, grouped by the report's intervals ([`super::zone`]).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use diesel::mysql::Mysql;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;

use super::zone::{int, Bucket, IntervalStart};
use super::ReportSpec;
use crate::dispatch;
use crate::storage::models::db_time;
use crate::storage::{Backend, Connection, StorageError};

/// A value bound into a report query.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Time(NaiveDateTime),
    Text(String),
}

/// Runs `sql` with `binds` on either backend.
pub(crate) fn load<T>(
    conn: &mut Connection,
    sql: &str,
    binds: &[Bind],
) -> Result<Vec<T>, StorageError>
where
    T: QueryableByName<Mysql> + QueryableByName<Sqlite> + 'static,
{
    let rows = dispatch!(conn, |c| {
        let mut q = diesel::sql_query(sql).into_boxed();
        for b in binds {
            q = match b {
                Bind::Time(t) => q.bind::<Timestamp, _>(*t),
                Bind::Text(s) => q.bind::<Text, _>(s.clone()),
            };
        }
        q.load::<T>(c)
    })?;
    Ok(rows)
}

/// ` AND (id_col IN (…) OR LOWER(name_col) IN (…))` for `--queue`/`--agent` values (ids match
/// exactly, names without regard to case); empty when no value is given.
pub(crate) fn name_filter(
    id_col: &str,
    name_col: &str,
    values: &[String],
    binds: &mut Vec<Bind>,
) -> String {
    if values.is_empty() {
        return String::new();
    }
    let ph = vec!["?"; values.len()].join(", ");
    binds.extend(values.iter().map(|v| Bind::Text(v.clone())));
    binds.extend(values.iter().map(|v| Bind::Text(v.to_lowercase())));
    format!(" AND ({id_col} IN ({ph}) OR LOWER({name_col}) IN ({ph}))")
}

/// `SUM(expr)` as BIGINT on both backends.
pub(crate) fn sum(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::Mysql => format!("CAST(SUM({expr}) AS SIGNED)"),
        Backend::Sqlite => format!("SUM({expr})"),
    }
}

#[derive(QueryableByName, Debug)]
struct MetricGroup {
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    key_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = BigInt)]
    utc_offset: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    total: Option<i64>,
}

/// Count and sum of each metric in `names`, per (key column of `sessions`, interval of
/// emitDate), for sessions matching `session_filter`; names from `directory` (`queues` or
/// `users`).
fn metric_groups(
    conn: &mut Connection,
    spec: &ReportSpec,
    key: &str,
    directory: &str,
    session_filter: &str,
    names: &[&str],
) -> Result<Vec<MetricGroup>, StorageError> {
    let backend = conn.backend();
    let cut = spec.cutter().sql(backend, "m.emit_date");
    let in_list = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut binds = vec![Bind::Time(db_time(spec.from)), Bind::Time(db_time(spec.to))];
    let mut filter = name_filter("s.queue_id", "q.name", &spec.queues, &mut binds);
    filter += &name_filter("s.user_id", "u.name", &spec.agents, &mut binds);
    // Join a directory table only when its names are shown or filtered on.
    let mut joins = String::new();
    if directory == "q" || !spec.queues.is_empty() {
        joins += "LEFT JOIN queues q ON q.id = s.queue_id ";
    }
    if directory == "u" || !spec.agents.is_empty() {
        joins += "LEFT JOIN users u ON u.id = s.user_id ";
    }
    let sql = format!(
        "SELECT t.key_id AS key_id, MAX(t.key_name) AS key_name, {bucket} AS bucket, \
                {offset} AS utc_offset, t.name AS name, COUNT(*) AS n, {total} AS total \
         FROM (SELECT s.{key} AS key_id, {directory}.name AS key_name, m.name AS name, \
                      m.value AS value, {epoch} AS epoch_s, {case} AS utc_offset \
               FROM session_metrics m \
               JOIN sessions s ON s.conversation_id = m.conversation_id \
                              AND s.session_id = m.session_id \
               {joins} \
               WHERE m.emit_date >= ? AND m.emit_date < ? AND m.name IN ({in_list}) \
                 AND s.{key} IS NOT NULL {session_filter} {filter}) t \
         GROUP BY t.key_id, t.utc_offset, {bucket}, t.name",
        bucket = cut.bucket("t.epoch_s", "t.utc_offset"),
        offset = int(backend, "t.utc_offset"),
        total = sum(backend, "t.value"),
        epoch = cut.epoch,
        case = cut.offset,
    );
    load(conn, &sql, &binds)
}

fn interval(spec: &ReportSpec, g: &MetricGroup) -> IntervalStart {
    spec.cutter().interval_of_bucket(Bucket {
        local_start: g.bucket,
        offset: i32::try_from(g.utc_offset).unwrap_or(0),
    })
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

/// One queue in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueDailyRow {
    /// The interval's local day.
    pub day: NaiveDate,
    /// The interval's start in the report's zone, with its offset.
    pub interval_start: DateTime<FixedOffset>,
    pub queue_id: String,
    /// The queue's name, or its id when the directory does not know it.
    pub queue: String,
    pub offered: i64,
    pub answered: i64,
    pub abandoned: i64,
    pub handle: Tally,
    pub talk: Tally,
    pub hold: Tally,
    pub acw: Tally,
}

/// queue-daily over `spec`.
pub fn queue_report(
    conn: &mut Connection,
    spec: &ReportSpec,
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
    let groups = metric_groups(conn, spec, "queue_id", "q", "", &names)?;
    let mut out: BTreeMap<(IntervalStart, String), QueueDailyRow> = BTreeMap::new();
    for g in groups {
        let i = interval(spec, &g);
        let row = out
            .entry((i, g.key_id.clone()))
            .or_insert_with(|| QueueDailyRow {
                day: i.day,
                interval_start: i.start,
                queue: g.key_name.clone().unwrap_or_else(|| g.key_id.clone()),
                queue_id: g.key_id.clone(),
                ..QueueDailyRow::default()
            });
        let total = g.total.unwrap_or(0);
        let add = |t: &mut Tally| {
            t.count += g.n;
            t.total_ms += total;
        };
        match g.name.as_str() {
            "nOffered" => row.offered += total,
            "tAnswered" => row.answered += g.n,
            "tAbandon" => row.abandoned += g.n,
            "tHandle" => add(&mut row.handle),
            "tTalk" => add(&mut row.talk),
            "tHeld" => add(&mut row.hold),
            "tAcw" => add(&mut row.acw),
            _ => {}
        }
    }
    Ok(out.into_values().collect())
}

/// One agent in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentDailyRow {
    pub day: NaiveDate,
    pub interval_start: DateTime<FixedOffset>,
    pub user_id: String,
    /// The agent's name, or the id when unknown.
    pub agent: String,
    /// Interactions whose handling ended in the interval (count of tHandle).
    pub handled: i64,
    pub handle_ms: i64,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub acw_ms: i64,
}

/// agent-daily over `spec`.
pub fn agent_report(
    conn: &mut Connection,
    spec: &ReportSpec,
) -> Result<Vec<AgentDailyRow>, StorageError> {
    let names = ["tHandle", "tTalk", "tHeld", "tAcw"];
    let groups = metric_groups(
        conn,
        spec,
        "user_id",
        "u",
        "AND s.purpose IN ('agent', 'user')",
        &names,
    )?;
    let mut out: BTreeMap<(IntervalStart, String), AgentDailyRow> = BTreeMap::new();
    for g in groups {
        let i = interval(spec, &g);
        let row = out
            .entry((i, g.key_id.clone()))
            .or_insert_with(|| AgentDailyRow {
                day: i.day,
                interval_start: i.start,
                agent: g.key_name.clone().unwrap_or_else(|| g.key_id.clone()),
                user_id: g.key_id.clone(),
                ..AgentDailyRow::default()
            });
        let total = g.total.unwrap_or(0);
        match g.name.as_str() {
            "tHandle" => {
                row.handled += g.n;
                row.handle_ms += total;
            }
            "tTalk" => row.talk_ms += total,
            "tHeld" => row.hold_ms += total,
            "tAcw" => row.acw_ms += total,
            _ => {}
        }
    }
    Ok(out.into_values().collect())
}

/// One wrap-up code of one queue in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WrapupDailyRow {
    pub day: NaiveDate,
    pub interval_start: DateTime<FixedOffset>,
    pub queue_id: String,
    pub queue: String,
    pub wrap_up_code: String,
    /// The code's name, or its id when unknown.
    pub wrap_up: String,
    /// Wrap-ups with this code (wrapup segments that started in the interval).
    pub count: i64,
    /// `count` over all wrap-ups of the queue in the interval.
    pub share: f64,
}

#[derive(QueryableByName, Debug)]
struct WrapupGroup {
    #[diesel(sql_type = Text)]
    queue_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    queue_name: Option<String>,
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Nullable<Text>)]
    code_name: Option<String>,
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = BigInt)]
    utc_offset: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// wrapup-daily over `spec`: per queue and wrap-up code, the count and its share of the queue.
/// A wrap-up counts in the interval its segment started; its queue is the segment's (else the
/// session's).
pub fn wrapup_report(
    conn: &mut Connection,
    spec: &ReportSpec,
) -> Result<Vec<WrapupDailyRow>, StorageError> {
    let backend = conn.backend();
    let cut = spec.cutter().sql(backend, "g.segment_start");
    let mut binds = vec![Bind::Time(db_time(spec.from)), Bind::Time(db_time(spec.to))];
    let mut filter = name_filter(
        "COALESCE(g.queue_id, s.queue_id)",
        "q.name",
        &spec.queues,
        &mut binds,
    );
    filter += &name_filter("s.user_id", "u.name", &spec.agents, &mut binds);
    let sql = format!(
        "SELECT t.queue_id AS queue_id, MAX(t.queue_name) AS queue_name, t.code AS code, \
                MAX(t.code_name) AS code_name, {bucket} AS bucket, {offset} AS utc_offset, \
                COUNT(*) AS n \
         FROM (SELECT COALESCE(g.queue_id, s.queue_id) AS queue_id, q.name AS queue_name, \
                      g.wrap_up_code AS code, w.name AS code_name, \
                      {epoch} AS epoch_s, {case} AS utc_offset \
               FROM segments g \
               JOIN sessions s ON s.conversation_id = g.conversation_id \
                              AND s.session_id = g.session_id \
               LEFT JOIN queues q ON q.id = COALESCE(g.queue_id, s.queue_id) \
               LEFT JOIN wrapup_codes w ON w.id = g.wrap_up_code \
               LEFT JOIN users u ON u.id = s.user_id \
               WHERE g.segment_start >= ? AND g.segment_start < ? \
                 AND g.wrap_up_code IS NOT NULL \
                 AND COALESCE(g.queue_id, s.queue_id) IS NOT NULL {filter}) t \
         GROUP BY t.queue_id, t.code, t.utc_offset, {bucket}",
        bucket = cut.bucket("t.epoch_s", "t.utc_offset"),
        offset = int(backend, "t.utc_offset"),
        epoch = cut.epoch,
        case = cut.offset,
    );
    let groups: Vec<WrapupGroup> = load(conn, &sql, &binds)?;
    let cutter = spec.cutter();
    let mut out: BTreeMap<(IntervalStart, String, String), WrapupDailyRow> = BTreeMap::new();
    for g in groups {
        let i = cutter.interval_of_bucket(Bucket {
            local_start: g.bucket,
            offset: i32::try_from(g.utc_offset).unwrap_or(0),
        });
        out.entry((i, g.queue_id.clone(), g.code.clone()))
            .or_insert_with(|| WrapupDailyRow {
                day: i.day,
                interval_start: i.start,
                queue: g.queue_name.clone().unwrap_or_else(|| g.queue_id.clone()),
                queue_id: g.queue_id.clone(),
                wrap_up: g.code_name.clone().unwrap_or_else(|| g.code.clone()),
                wrap_up_code: g.code.clone(),
                ..WrapupDailyRow::default()
            })
            .count += g.n;
    }
    let mut per_queue: BTreeMap<(IntervalStart, String), i64> = BTreeMap::new();
    for ((i, q, _), r) in &out {
        *per_queue.entry((*i, q.clone())).or_default() += r.count;
    }
    Ok(out
        .into_iter()
        .map(|((i, q, _), mut r)| {
            let all = per_queue.get(&(i, q)).copied().unwrap_or(0);
            r.share = if all > 0 {
                r.count as f64 / all as f64
            } else {
                0.0
            };
            r
        })
        .collect())
}
