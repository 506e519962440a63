//! The Writer's settings (the `[writer]` section of the config file) and what else it is
//! started with: clock, sleeper, fault hook. Kept apart from the write path ([`super::write`],
//! which re-exports them) so the defaults and their reasons are in one place.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::connection::{Backend, StorageError};
use crate::clock::{SharedClock, SystemClock};
use crate::rate::SettingsError;

/// Where a test can inject a failure inside the write transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultPoint {
    /// After the fences, before the batch's conversations are locked, looked up and written;
    /// names the partitions whose pages are in the batch.
    BeforeConversations { partitions: Vec<i64> },
    /// After every row of the batch is written, before the completions; names the
    /// partitions whose pages are in the batch, and their conversations.
    BeforeCompletion {
        partitions: Vec<i64>,
        conversations: Vec<String>,
    },
}

/// Called at each [`FaultPoint`]; an `Err` aborts the transaction as a database error would.
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> Result<(), StorageError> + Send + Sync>;

/// How the Writer waits between retries (real sleep by default; tests record instead).
pub type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// Most `writer_connections`.
pub const MAX_WRITER_CONNECTIONS: usize = 16;

/// Tunables of the Writer (the `[writer]` section of the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSettings {
    /// Write a batch as soon as the pages queued behind its first page are buffered (group
    /// commit). When false, batches wait for the size or age limits (or a Flush).
    pub group_commit: bool,
    /// Flush when this many conversations are buffered (unset: the backend's default, see
    /// [`BatchLimits::default_for`]).
    pub batch_max_conversations: Option<usize>,
    /// Flush when this many rows (all tables) are buffered (unset: the backend's default).
    pub batch_max_rows: Option<usize>,
    /// Flush when the oldest buffered page is this old (milliseconds).
    pub batch_max_age_ms: u64,
    /// Most rows per INSERT statement (keeps bind counts under both databases' limits);
    /// statements have one of the [`STATEMENT_ROWS`] sizes at or below it.
    pub rows_per_statement: usize,
    /// Upper bound of one INSERT of conversations (their raw JSON), bytes; keep well under
    /// MySQL's `max_allowed_packet`.
    pub max_statement_bytes: usize,
    /// Retries of a transient error before the batch is answered with `Unavailable`.
    pub retry_max_attempts: u32,
    /// First backoff delay (milliseconds); doubles up to `retry_max_delay_ms`.
    pub retry_initial_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    /// Connections that write pages in parallel (1..=16), each on its own thread; a
    /// partition's pages and its completion always go to the same one. SQLite has a single
    /// writer: always 1 there.
    pub writer_connections: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            group_commit: true,
            batch_max_conversations: None,
            batch_max_rows: None,
            batch_max_age_ms: 200,
            rows_per_statement: 1000,
            max_statement_bytes: 1 << 20,
            retry_max_attempts: 60,
            retry_initial_delay_ms: 100,
            retry_max_delay_ms: 5000,
            writer_connections: 2,
        }
    }
}

/// Where the Writer cuts a batch (besides its age): the settings', else the backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub conversations: usize,
    pub rows: usize,
}

impl BatchLimits {
    /// These bound a transaction and the Writer's memory: pages are acknowledged once
    /// buffered, so a batch fills up to them however few pages each Fetcher keeps in flight
    /// (the page that fills it is answered after the commit). MySQL: one jobs page (1,000
    /// conversations) per batch and lane; five gained ~10 % in the writer bench but took the
    /// engine's peak RSS at 100,000 from 146 to 159 MB, too close to its 200 MB budget at
    /// 1,000,000. SQLite: five jobs pages. Its one writer rewrites, at every commit, each
    /// index page its random keys (conversation UUIDs) touch, so fewer, larger commits write
    /// far less: first ingest in pages of 1,000, 5,140–5,377/s at 1,000 against
    /// 6,308–6,389/s at 5,000 (`cargo bench --bench writer_throughput`, BENCHMARKS.md).
    pub fn default_for(backend: Backend) -> Self {
        match backend {
            Backend::Mysql => BatchLimits {
                conversations: 1000,
                rows: 40_000,
            },
            Backend::Sqlite => BatchLimits {
                conversations: 5000,
                rows: 150_000,
            },
        }
    }
}

impl WriterSettings {
    /// The batch limits on `backend`: each one set in the settings, else the backend's.
    pub fn batch_limits(&self, backend: Backend) -> BatchLimits {
        let d = BatchLimits::default_for(backend);
        BatchLimits {
            conversations: self.batch_max_conversations.unwrap_or(d.conversations),
            rows: self.batch_max_rows.unwrap_or(d.rows),
        }
    }

    /// Checks the values a batch cannot work without; the error names the setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = |v: u64, k: &str| {
            if v > 0 {
                Ok(())
            } else {
                Err(SettingsError::new(k, format!("must be positive, got {v}")))
            }
        };
        if let Some(n) = self.batch_max_conversations {
            positive(n as u64, "batch_max_conversations")?;
        }
        if let Some(n) = self.batch_max_rows {
            positive(n as u64, "batch_max_rows")?;
        }
        positive(self.batch_max_age_ms, "batch_max_age_ms")?;
        positive(self.rows_per_statement as u64, "rows_per_statement")?;
        if self.max_statement_bytes < 64 << 10 {
            return Err(SettingsError::new(
                "max_statement_bytes",
                format!("must be at least 65536, got {}", self.max_statement_bytes),
            ));
        }
        if !(1..=MAX_WRITER_CONNECTIONS).contains(&self.writer_connections) {
            return Err(SettingsError::new(
                "writer_connections",
                format!(
                    "must be 1 to {MAX_WRITER_CONNECTIONS}, got {}",
                    self.writer_connections
                ),
            ));
        }
        if self.retry_initial_delay_ms > self.retry_max_delay_ms {
            return Err(SettingsError::new(
                "retry_initial_delay_ms",
                "must not exceed retry_max_delay_ms",
            ));
        }
        Ok(())
    }

    /// Backoff before retry number `attempt` (1-based): initial × 2^(attempt−1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let ms = self
            .retry_initial_delay_ms
            .saturating_mul(1u64 << exp)
            .min(self.retry_max_delay_ms);
        Duration::from_millis(ms)
    }

    pub fn batch_max_age(&self) -> Duration {
        Duration::from_millis(self.batch_max_age_ms)
    }
}

/// Everything the Writer needs besides the database URL.
#[derive(Clone)]
pub struct WriterConfig {
    pub settings: WriterSettings,
    /// Calendar time for `*_ingested_at`, `updated_at`, lease expiry.
    pub clock: SharedClock,
    pub sleeper: Sleeper,
    pub fault: Option<FaultHook>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            settings: WriterSettings::default(),
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(std::thread::sleep),
            fault: None,
        }
    }
}

impl std::fmt::Debug for WriterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterConfig")
            .field("settings", &self.settings)
            .field("clock", &self.clock)
            .field("fault", &self.fault.is_some())
            .finish()
    }
}

/// Sizes of the statements of one batch.
#[derive(Debug, Clone, Copy)]
pub struct StatementLimits {
    pub rows_per_statement: usize,
    pub max_statement_bytes: usize,
}

impl From<&WriterSettings> for StatementLimits {
    fn from(s: &WriterSettings) -> Self {
        StatementLimits {
            rows_per_statement: s.rows_per_statement.max(1),
            max_statement_bytes: s.max_statement_bytes.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = WriterSettings {
            retry_initial_delay_ms: 100,
            retry_max_delay_ms: 1000,
            ..WriterSettings::default()
        };
        let d: Vec<u64> = (1..=6).map(|a| s.backoff(a).as_millis() as u64).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(s.backoff(200), Duration::from_millis(1000));
    }

    #[test]
    fn batch_limits_are_the_settings_else_the_backends() {
        let unset = WriterSettings::default();
        assert_eq!(
            unset.batch_limits(Backend::Sqlite),
            BatchLimits {
                conversations: 5000,
                rows: 150_000
            }
        );
        assert_eq!(
            unset.batch_limits(Backend::Mysql),
            BatchLimits {
                conversations: 1000,
                rows: 40_000
            }
        );
        let one_set = WriterSettings {
            batch_max_conversations: Some(250),
            ..WriterSettings::default()
        };
        for backend in [Backend::Sqlite, Backend::Mysql] {
            let l = one_set.batch_limits(backend);
            assert_eq!(l.conversations, 250);
            assert_eq!(l.rows, BatchLimits::default_for(backend).rows);
        }
        let zero = WriterSettings {
            batch_max_rows: Some(0),
            ..WriterSettings::default()
        };
        assert!(zero.validate().is_err());
    }
}
