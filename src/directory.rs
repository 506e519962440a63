//! The `directory` dataset: users, queues, wrap-up codes and divisions, synced so reports can
//! print names beside the ids the analytics carry.
//!
//! A refresh pages each listing to the end through the engine's client (so through the same
//! RateLimiter and retries as every call) and upserts what it got. It costs a handful of
//! requests (one per 100 entities). `sluice backfill` refreshes once before it starts, `sluice
//! run` then every `directory_refresh_minutes`. A listing that fails (say its permission is
//! missing) is logged and skipped: the others are still stored, and ingestion goes on.
//! Rows are never deleted (see [`crate::storage::directory`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use crate::genesys::directory::{ListedEntity, Listing};
use crate::genesys::{ApiError, GenesysClient, Priority};
use crate::storage::directory::{upsert, DirectoryRow, DirectoryTable};
use crate::storage::{connect, DatabaseUrl, StorageError};

/// Default of `directory_refresh_minutes`.
pub const DEFAULT_REFRESH_MINUTES: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{listing}: {source}")]
    Api {
        listing: &'static str,
        #[source]
        source: ApiError,
    },
    #[error("directory: {0}")]
    Storage(#[from] StorageError),
    #[error("directory: {0}")]
    Internal(String),
}

/// What one refresh did.
#[derive(Debug, Default)]
pub struct RefreshSummary {
    /// Rows written per table.
    pub written: Vec<(DirectoryTable, usize)>,
    /// Requests made (pages read).
    pub pages: u32,
    /// Listings that could not be read; their tables were left as they were.
    pub failed: Vec<DirectoryError>,
}

/// The table a listing fills.
pub fn table_of(listing: Listing) -> DirectoryTable {
    match listing {
        Listing::Users => DirectoryTable::Users,
        Listing::Queues => DirectoryTable::Queues,
        Listing::WrapupCodes => DirectoryTable::WrapupCodes,
        Listing::Divisions => DirectoryTable::Divisions,
    }
}

/// Rows of the entities listed.
pub fn rows(entities: Vec<ListedEntity>) -> Vec<DirectoryRow> {
    entities
        .into_iter()
        .map(|l| DirectoryRow {
            id: l.entity.id,
            name: l.entity.name,
            email: l.entity.email,
            state: l.entity.state,
            division_id: l.entity.division.map(|d| d.id),
            raw_json: l.raw_json,
        })
        .collect()
}

/// Reads every listing and stores what was read (see the module docs).
pub async fn refresh(
    client: &GenesysClient,
    url: &DatabaseUrl,
    now: DateTime<Utc>,
) -> Result<RefreshSummary, DirectoryError> {
    let mut summary = RefreshSummary::default();
    let mut fetched = Vec::new();
    for listing in Listing::ALL {
        match client.list_all(listing, Priority::Backfill).await {
            Ok((entities, pages)) => {
                summary.pages += pages;
                fetched.push((table_of(listing), rows(entities)));
            }
            Err(source) => summary.failed.push(DirectoryError::Api {
                listing: listing.path(),
                source,
            }),
        }
    }
    let url = url.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
        let mut conn = connect(&url)?;
        let mut written = Vec::new();
        for (table, rows) in fetched {
            written.push((table, upsert(&mut conn, table, &rows, now)?));
        }
        Ok(written)
    })
    .await
    .map_err(|e| DirectoryError::Internal(e.to_string()))??;
    summary.written = written;
    Ok(summary)
}

/// Refreshes and logs the outcome; never fails the caller (names are a convenience of the
/// reports, not part of the ingested history).
pub async fn refresh_and_log(client: &GenesysClient, url: &DatabaseUrl, now: DateTime<Utc>) {
    match refresh(client, url, now).await {
        Ok(s) => {
            let counts: Vec<String> = s
                .written
                .iter()
                .map(|(t, n)| format!("{} {n}", t.table()))
                .collect();
            log::info!(
                "directory refreshed in {} requests: {}",
                s.pages,
                counts.join(", ")
            );
            for e in &s.failed {
                log::warn!("directory: could not read {e} (names from it stay as they were)");
            }
        }
        Err(e) => log::warn!("directory refresh failed: {e}"),
    }
}

/// `sluice run`: refreshes every `every` in a task on the current arbiter, until the System
/// stops.
pub fn spawn_periodic(
    client: GenesysClient,
    url: DatabaseUrl,
    clock: SharedClock,
    every: Duration,
) {
    actix_rt::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            refresh_and_log(&client, &url, clock.now()).await;
        }
    });
}
