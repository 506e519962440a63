//! [`BatchWriter`]: the Writer's connection, its retries, and its [`LeaseLedger`].
//!
//! Transient errors (lost link, server restart, deadlock) drop the connection, wait with
//! exponential backoff and run the whole batch again — safe, because the batch replaces rather
//! than appends, and a completion stays fenced by a token that completion does not clear. A
//! permanent error is pinned on its page by retrying the pages one by one; that page's
//! partition is marked `failed` with the message in `last_error`, and the other pages are
//! written. Every page not written marks its lease in the ledger, whose completion is then
//! refused ([`LeaseLedger::lease_failure`]): a partition is never done without all its rows.
//!
//! With several Writer connections ([`super::lanes`]) each has its own `BatchWriter`, sharing a
//! [`LaneGate`]; a duplicate key from a row another connection inserted meanwhile is a write
//! conflict: the batch is written again at once (its lookup then sees the row), up to
//! [`CONFLICT_RETRIES`] times. On MySQL those connections read committed (no gap locks, so
//! fewer deadlocks between them), unless statement-based binary logging forbids it.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::checkpoint::fail_partition;
use super::connection::{connect, Connection, DatabaseUrl, StorageError};
use super::lanes::LaneGate;
use super::ledger::LeaseLedger;
use super::models::db_time;
use super::wal::WalCheckpointer;
use super::write::{write_batch, BatchError, PageWrite, StatementLimits, WriterConfig};

/// Counters of a [`BatchWriter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounters {
    pub batches: u64,
    pub rows_written: u64,
    pub conversations_written: u64,
    pub completions: u64,
    pub last_batch_ms: u64,
    pub reconnects: u64,
    pub transient_errors: u64,
    pub failed_pages: u64,
    /// Re-fetched conversations whose content differed from the stored copy.
    pub conversations_changed: u64,
    /// Re-fetched conversations found unchanged (not rewritten).
    pub conversations_unchanged: u64,
    /// Re-fetched presence and routing-status records found unchanged (not rewritten).
    pub user_records_unchanged: u64,
    /// Conversations deleted because their verified block no longer holds them upstream.
    pub conversations_deleted: u64,
    /// Presence and routing-status records deleted the same way.
    pub user_records_deleted: u64,
    /// Completions refused because a page of their lease was not written.
    pub refused_completions: u64,
    /// Batches written again because another Writer connection had just inserted one of
    /// their rows (duplicate key).
    pub conflict_retries: u64,
}

/// Times a batch is written again after a write conflict before the error counts as
/// permanent. Each conflict means another connection committed one of the batch's rows, which
/// the next attempt finds stored, so retries make progress; a busy overlap (several lanes
/// writing the conversations around one midnight) can need more than two or three.
pub const CONFLICT_RETRIES: u32 = 8;

/// Owns the Writer's connection and runs batches and checkpoint operations with reconnects
/// and retries. Plain struct: the actor is a thin shell around it, and tests drive it
/// directly.
pub struct BatchWriter {
    url: DatabaseUrl,
    conn: Option<Connection>,
    /// SQLite only: checkpoints the WAL off the Writer's thread.
    checkpointer: Option<WalCheckpointer>,
    config: WriterConfig,
    counters: WriteCounters,
    ledger: LeaseLedger,
    /// Shared with the other connections of the same Writer (None: the only one).
    gate: Option<LaneGate>,
}

impl BatchWriter {
    /// Does not connect yet: the first operation does (and every one after a lost link).
    pub fn new(url: DatabaseUrl, config: WriterConfig) -> Self {
        BatchWriter {
            url,
            conn: None,
            checkpointer: None,
            config,
            counters: WriteCounters::default(),
            ledger: LeaseLedger::default(),
            gate: None,
        }
    }

    /// One of several connections of a Writer: batches take turns at `gate` (see
    /// [`super::lanes`]).
    pub fn with_gate(mut self, gate: LaneGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The leases in flight (see [`LeaseLedger`]).
    pub fn ledger(&self) -> &LeaseLedger {
        &self.ledger
    }

    /// Partition `id` was leased with `token` now (by this Writer): its older leases are dead.
    pub fn leased(&mut self, id: i64, token: &str) {
        self.leased_at(id, token, self.now());
    }

    /// Partition `id` was leased with `token` at `at` (by another connection of this Writer).
    pub fn leased_at(&mut self, id: i64, token: &str, at: DateTime<Utc>) {
        self.ledger.leased(id, token, db_time(at));
    }

    /// Partition `id` was released, failed or split: forget its leases.
    pub fn forget_partition(&mut self, id: i64) {
        self.ledger.forget_partition(id);
    }

    pub fn counters(&self) -> WriteCounters {
        self.counters
    }

    pub fn config(&self) -> &WriterConfig {
        &self.config
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    /// Drops the connection (the next operation reconnects).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn connection(&mut self) -> Result<&mut Connection, StorageError> {
        if self.conn.is_none() {
            let mut c = connect(&self.url)?;
            if self.config.settings.writer_connections > 1 {
                read_committed(&mut c)?;
            }
            if self.counters.batches > 0 || self.counters.transient_errors > 0 {
                self.counters.reconnects += 1;
                log::info!("writer reconnected to {}", self.url);
            }
            self.conn = Some(c);
            if let (DatabaseUrl::Sqlite(path), None) = (&self.url, &self.checkpointer) {
                match WalCheckpointer::start(path) {
                    Ok(cp) => self.checkpointer = cp,
                    Err(e) => log::warn!(
                        "no background WAL checkpoints ({e}); SQLite checkpoints in the Writer"
                    ),
                }
            }
        }
        self.conn.as_mut().ok_or(StorageError::WriterGone)
    }

    /// Runs `op` on the connection, retrying transient errors (after dropping the connection
    /// and waiting) up to the configured number of attempts.
    pub fn with_retry<T>(
        &mut self,
        mut op: impl FnMut(&mut Connection, DateTime<Utc>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut attempt = 0;
        loop {
            let now = self.now();
            let r = self.connection().and_then(|c| op(c, now));
            match r {
                Err(e) if e.is_transient() => {
                    attempt += 1;
                    if !self.retry_after(&e, attempt) {
                        return Err(StorageError::Unavailable {
                            attempts: attempt,
                            last: e.to_string(),
                        });
                    }
                }
                r => return r,
            }
        }
    }

    /// Notes a transient error, drops the connection and sleeps; false when out of attempts.
    fn retry_after(&mut self, e: &StorageError, attempt: u32) -> bool {
        self.counters.transient_errors += 1;
        self.conn = None;
        if attempt > self.config.settings.retry_max_attempts {
            log::error!("database still failing after {attempt} attempts: {e}");
            return false;
        }
        let delay = self.config.settings.backoff(attempt);
        log::warn!("transient database error (attempt {attempt}), retrying in {delay:?}: {e}");
        (self.config.sleeper)(delay);
        true
    }

    /// The error `page` is answered with, unwritten, because a page of its lease was not
    /// written ([`LeaseLedger::lease_failure`]): a completion is refused, and so is any later
    /// page (its Fetcher learns to stop).
    pub fn refusal(&mut self, page: &PageWrite) -> Option<StorageError> {
        let e = self.ledger.lease_failure(page)?;
        if page.completion.is_some() {
            log::warn!("completion of partition {} refused: {e}", page.partition_id);
            self.counters.refused_completions += 1;
        }
        Some(e)
    }

    /// Writes `pages` as one batch; returns one result per page, in order. `Ok` means the
    /// page's rows (and completion) are committed. A completion whose lease lost a page is
    /// refused ([`LeaseLedger::lease_failure`]) and not written.
    pub fn write_pages(&mut self, pages: &[&PageWrite]) -> Vec<Result<(), StorageError>> {
        let mut results: Vec<Option<Result<(), StorageError>>> = vec![None; pages.len()];
        let mut live: Vec<usize> = Vec::with_capacity(pages.len());
        for (i, p) in pages.iter().enumerate() {
            match self.refusal(p) {
                Some(e) => results[i] = Some(Err(e)),
                None => live.push(i),
            }
        }
        let mut attempt = 0;
        let mut conflicts = 0;
        let limits = StatementLimits::from(&self.config.settings);
        let gate = self.gate.clone();
        while !live.is_empty() {
            let now = self.now();
            let started = Instant::now();
            let fault = self.config.fault.clone();
            let batch: Vec<&PageWrite> = live.iter().map(|&i| pages[i]).collect();
            let r = match self.connection().map(|_| ()) {
                // Disjoint borrows of the connection and the ledger.
                Ok(()) => match self.conn.as_mut() {
                    Some(c) => {
                        let _turn = gate.as_ref().map(|g| g.enter(completes_verified(&batch)));
                        write_batch(c, &batch, now, limits, fault.as_ref(), &self.ledger)
                    }
                    None => Err(BatchError::Storage(StorageError::WriterGone)),
                },
                Err(e) => Err(BatchError::Storage(e)),
            };
            match r {
                Ok(outcome) => {
                    if let Some(cp) = &self.checkpointer {
                        cp.committed();
                    }
                    let c = &mut self.counters;
                    c.batches += 1;
                    c.rows_written += outcome.rows_written;
                    c.conversations_written += outcome.conversations_written;
                    c.completions += outcome.completions;
                    c.conversations_changed += outcome.conversations_changed;
                    c.conversations_unchanged += outcome.conversations_unchanged;
                    c.user_records_unchanged += outcome.user_records_unchanged;
                    c.conversations_deleted += outcome.conversations_deleted;
                    c.user_records_deleted += outcome.user_records_deleted;
                    c.last_batch_ms = started.elapsed().as_millis() as u64;
                    log::debug!(
                        "batch of {} pages committed in {} ms ({} rows)",
                        live.len(),
                        c.last_batch_ms,
                        outcome.rows_written
                    );
                    let at = db_time(now);
                    for &i in &live {
                        self.ledger.committed(pages[i], at);
                        results[i] = Some(Ok(()));
                    }
                    live.clear();
                }
                Err(BatchError::LeaseLost(ids)) => {
                    log::warn!("dropping pages of partitions {ids:?}: lease lost");
                    let at = db_time(now);
                    let ledger = &mut self.ledger;
                    live.retain(|&i| {
                        let lost = ids.contains(&pages[i].partition_id);
                        if lost {
                            let e = StorageError::LeaseLost {
                                partition_id: pages[i].partition_id,
                            };
                            ledger.not_written(pages[i], &e, at);
                            results[i] = Some(Err(e));
                        }
                        !lost
                    });
                }
                Err(BatchError::Storage(e))
                    if e.is_write_conflict() && conflicts < CONFLICT_RETRIES =>
                {
                    conflicts += 1;
                    self.counters.conflict_retries += 1;
                    log::info!("another writer connection wrote the same rows ({e}): writing the batch again");
                }
                Err(BatchError::Storage(e)) if e.is_transient() => {
                    attempt += 1;
                    if !self.retry_after(&e, attempt) {
                        let at = db_time(self.now());
                        let gave_up = StorageError::Unavailable {
                            attempts: attempt,
                            last: e.to_string(),
                        };
                        for &i in &live {
                            self.ledger.not_written(pages[i], &gave_up, at);
                            results[i] = Some(Err(gave_up.clone()));
                        }
                        live.clear();
                    }
                }
                Err(BatchError::Storage(e)) => {
                    if live.len() > 1 {
                        // Find the culprit: one transaction per page, in order (a page that
                        // fails refuses its lease's completion later in the batch).
                        log::warn!(
                            "batch of {} pages failed ({e}); retrying page by page",
                            live.len()
                        );
                        for &i in &live {
                            let r = self.write_pages(&[pages[i]]);
                            results[i] = r.into_iter().next();
                        }
                    } else {
                        let i = live[0];
                        let at = db_time(self.now());
                        self.ledger.not_written(pages[i], &e, at);
                        self.fail_page(pages[i], &e);
                        results[i] = Some(Err(e));
                    }
                    live.clear();
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(StorageError::WriterGone)))
            .collect()
    }

    /// A page failed permanently: mark its partition `failed` with the message.
    fn fail_page(&mut self, page: &PageWrite, e: &StorageError) {
        self.counters.failed_pages += 1;
        log::error!("partition {} failed: {e}", page.partition_id);
        if page.partition_id <= 0 {
            return;
        }
        let msg = e.to_string();
        let (id, token) = (page.partition_id, page.lease_token.clone());
        if let Err(e2) = self.with_retry(|c, now| fail_partition(c, id, &token, &msg, now)) {
            log::error!("could not record the failure of partition {id}: {e2}");
        }
    }
}

/// Whether `batch` completes a partition verified (its deletions must not race other lanes).
fn completes_verified(batch: &[&PageWrite]) -> bool {
    batch
        .iter()
        .any(|p| p.partition_id > 0 && p.completion.as_ref().is_some_and(|c| c.verified))
}

/// Sets a MySQL Writer connection to READ COMMITTED: its deletions by conversation lock the
/// rows they delete and not the gaps between index entries, so the inserts of another Writer
/// connection into those gaps do not wait or deadlock. Left at the server's level when the
/// binary log is statement-based (InnoDB refuses to log writes made under READ COMMITTED).
fn read_committed(conn: &mut Connection) -> Result<(), StorageError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Binlog {
        #[diesel(sql_type = diesel::sql_types::Text)]
        format: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        log_bin: i64,
    }
    let Connection::Mysql(c) = conn else {
        return Ok(());
    };
    let b: Binlog = diesel::sql_query(
        "SELECT CAST(@@session.binlog_format AS CHAR) AS format, \
         CAST(@@log_bin AS SIGNED) AS log_bin",
    )
    .get_result(c)?;
    if b.log_bin != 0 && b.format.eq_ignore_ascii_case("STATEMENT") {
        log::info!(
            "statement-based binary log: writer connections keep the server's isolation level"
        );
        return Ok(());
    }
    conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
}
