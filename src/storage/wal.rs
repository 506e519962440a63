//! Background WAL checkpoints for the SQLite backend.
//!
//! In WAL mode every commit appends pages to the `-wal` file, and a checkpoint copies them
//! into the database file and syncs it. Left to SQLite, the committing connection runs that
//! checkpoint itself, inside the Writer's commit, so the Writer stalls on I/O while the
//! second core idles. [`WalCheckpointer`] runs passive checkpoints on its own thread and
//! connection after commits instead (at most ten a second: each syncs two files); the Writer
//! only tells it that it committed. Measured with `cargo bench --bench writer_throughput`:
//! SQLite first ingest 2,300–2,800 → 3,300–3,700 conversations/s.
//!
//! Why promptly: SQLite's automatic checkpoint fires on the WAL's length, not on the frames
//! still to copy, and the WAL only starts over when a transaction begins with every frame
//! already copied. With a checkpoint at most once a second a busy Writer never saw that, the
//! WAL reached the automatic threshold every eight batches or so and the Writer stalled about
//! 450 ms copying and syncing it (5 of 25 batches of a 20,000 first ingest). Checkpointing
//! within 100 ms of a commit (and a higher backstop, see
//! [`SQLITE_AUTOCHECKPOINT_PAGES`](super::connection::SQLITE_AUTOCHECKPOINT_PAGES)) took
//! that ingest from 3,842–4,046 to 4,993–5,160 conversations/s in the same minutes.
//!
//! Guarantees: a passive checkpoint never blocks the writer nor waits for readers, and it
//! changes no data, only where committed pages live, so crash safety is SQLite's own. If the
//! thread cannot keep up (or fails), the connections' automatic checkpoint at
//! [`SQLITE_AUTOCHECKPOINT_PAGES`](super::connection::SQLITE_AUTOCHECKPOINT_PAGES) bounds the
//! WAL as before.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::connection::{connect, Connection, DatabaseUrl, StorageError};

/// Owner of the checkpoint thread; dropping it stops the thread after a last checkpoint.
#[derive(Debug)]
pub struct WalCheckpointer {
    commits: Option<SyncSender<()>>,
    thread: Option<JoinHandle<u64>>,
}

impl WalCheckpointer {
    /// Starts checkpointing the SQLite database at `path` (its own connection). `None` for an
    /// in-memory database, which has no WAL.
    pub fn start(path: &Path) -> Result<Option<Self>, StorageError> {
        if path.as_os_str() == ":memory:" || path.as_os_str().is_empty() {
            return Ok(None);
        }
        let conn = connect(&DatabaseUrl::sqlite(path))?;
        let (tx, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sluice-wal-checkpoint".into())
            .spawn(move || checkpoint_loop(conn, rx))
            .map_err(|e| StorageError::Database {
                message: format!("cannot start the WAL checkpoint thread: {e}"),
                transient: false,
            })?;
        Ok(Some(WalCheckpointer {
            commits: Some(tx),
            thread: Some(thread),
        }))
    }

    /// Tells the thread a transaction committed. Never blocks: commits that arrive while a
    /// checkpoint runs are covered by the next one.
    pub fn committed(&self) {
        if let Some(tx) = &self.commits {
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    log::debug!("WAL checkpoint thread has stopped");
                }
            }
        }
    }

    /// Stops the thread after a last checkpoint; returns how many checkpoints it ran.
    pub fn stop(mut self) -> u64 {
        self.shutdown()
    }

    fn shutdown(&mut self) -> u64 {
        self.commits = None;
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Checkpoints at most this often: each one syncs the database file and the WAL.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

fn checkpoint_loop(mut conn: Connection, commits: Receiver<()>) -> u64 {
    let mut runs = 0;
    let mut last: Option<Instant> = None;
    // Ends when the sender is dropped (even mid-wait); then one last checkpoint.
    'commits: while commits.recv().is_ok() {
        if let Some(deadline) = last.map(|t| t + MIN_INTERVAL) {
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match commits.recv_timeout(deadline - now) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break 'commits,
                }
            }
        }
        runs += checkpoint(&mut conn);
        last = Some(Instant::now());
    }
    runs + checkpoint(&mut conn)
}

fn checkpoint(conn: &mut Connection) -> u64 {
    match conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
        Ok(()) => 1,
        Err(e) => {
            // Busy (another checkpoint runs) or I/O trouble: the automatic checkpoint remains.
            log::debug!("background WAL checkpoint skipped: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_len(db: &Path) -> u64 {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn commits_are_checkpointed_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut conn = connect(&DatabaseUrl::sqlite(&path)).unwrap();
        conn.batch_execute("CREATE TABLE t (x TEXT)").unwrap();
        let cp = WalCheckpointer::start(&path).unwrap().unwrap();
        let db_before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..20 {
            conn.batch_execute(
                "BEGIN; INSERT INTO t SELECT hex(randomblob(2000)) FROM \
                 (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) \
                 SELECT i FROM n); COMMIT;",
            )
            .unwrap();
            cp.committed();
        }
        assert!(wal_len(&path) > 0, "commits went to the WAL first");
        let runs = cp.stop();
        assert!(runs >= 1, "{runs} checkpoints");
        // 20 × 50 rows of 4,000 characters: the pages are in the database file now.
        let db_after = std::fs::metadata(&path).unwrap().len();
        assert!(
            db_after > db_before + 3_000_000,
            "database file {db_before} -> {db_after} bytes"
        );
        drop(conn);
        let n: i64 = {
            let mut c = connect(&DatabaseUrl::sqlite(&path)).unwrap();
            crate::dispatch!(&mut c, |c| {
                use diesel::RunQueryDsl;
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "(SELECT count(*) FROM t)",
                ))
                .get_result(c)
            })
            .unwrap()
        };
        assert_eq!(n, 1000);
    }

    #[test]
    fn in_memory_databases_need_none() {
        assert!(WalCheckpointer::start(Path::new(":memory:"))
            .unwrap()
            .is_none());
    }
}
