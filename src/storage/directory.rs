//! The directory tables (`users`, `queues`, `wrapup_codes`, `divisions`): names for the ids
//! the analytics tables carry.
//!
//! Guarantees: a refresh upserts what the API listed (name and attributes replaced, `last_seen_at`
//! moved to the refresh time, `first_seen_at` kept); nothing is ever deleted, so an entity that
//! disappears keeps its last name and the time it was last seen.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Text, Timestamp};
use diesel::RunQueryDsl;

use super::models::db_time;
use super::{Backend, Connection, StorageError};

/// One of the four directory tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DirectoryTable {
    Users,
    Queues,
    WrapupCodes,
    Divisions,
}

impl DirectoryTable {
    pub const ALL: [DirectoryTable; 4] = [
        DirectoryTable::Divisions,
        DirectoryTable::Queues,
        DirectoryTable::WrapupCodes,
        DirectoryTable::Users,
    ];

    pub fn table(self) -> &'static str {
        match self {
            DirectoryTable::Users => "users",
            DirectoryTable::Queues => "queues",
            DirectoryTable::WrapupCodes => "wrapup_codes",
            DirectoryTable::Divisions => "divisions",
        }
    }

    /// The attribute columns besides id, name, the seen times and raw_json.
    fn attributes(self) -> &'static [&'static str] {
        match self {
            DirectoryTable::Users => &["email", "state", "division_id"],
            DirectoryTable::Queues | DirectoryTable::WrapupCodes => &["division_id"],
            DirectoryTable::Divisions => &[],
        }
    }
}

/// One entity as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryRow {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub state: Option<String>,
    pub division_id: Option<String>,
    /// The entity exactly as the API sent it.
    pub raw_json: String,
}

impl DirectoryRow {
    fn attribute(&self, column: &str) -> Option<String> {
        match column {
            "email" => self.email.clone(),
            "state" => self.state.clone(),
            "division_id" => self.division_id.clone(),
            _ => None,
        }
    }
}

/// Upserts `rows` into `table` in one transaction; returns how many were written.
pub fn upsert(
    conn: &mut Connection,
    table: DirectoryTable,
    rows: &[DirectoryRow],
    seen_at: DateTime<Utc>,
) -> Result<usize, StorageError> {
    let attrs = table.attributes();
    let mut columns = vec!["id", "name"];
    columns.extend_from_slice(attrs);
    columns.extend_from_slice(&["first_seen_at", "last_seen_at", "raw_json"]);
    let placeholders = vec!["?"; columns.len()].join(", ");
    let updated: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| *c != "id" && *c != "first_seen_at")
        .collect();
    let update = match conn.backend() {
        Backend::Mysql => updated
            .iter()
            .map(|c| format!("{c} = VALUES({c})"))
            .collect::<Vec<_>>()
            .join(", "),
        Backend::Sqlite => updated
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let conflict = match conn.backend() {
        Backend::Mysql => "ON DUPLICATE KEY UPDATE",
        Backend::Sqlite => "ON CONFLICT (id) DO UPDATE SET",
    };
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({placeholders}) {conflict} {update}",
        table.table(),
        columns.join(", ")
    );
    let seen = db_time(seen_at);
    conn.transaction(|conn| {
        for row in rows {
            let attr: Vec<Option<String>> = attrs.iter().map(|a| row.attribute(a)).collect();
            crate::dispatch!(&mut *conn, |c| {
                let mut q = diesel::sql_query(&sql)
                    .into_boxed()
                    .bind::<Text, _>(row.id.clone())
                    .bind::<Nullable<Text>, _>(row.name.clone());
                for a in &attr {
                    q = q.bind::<Nullable<Text>, _>(a.clone());
                }
                q.bind::<Timestamp, _>(seen)
                    .bind::<Timestamp, _>(seen)
                    .bind::<Text, _>(row.raw_json.clone())
                    .execute(c)
            })?;
        }
        Ok(rows.len())
    })
}
