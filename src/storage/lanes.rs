//! Parallel writes: which Writer connection ("lane") writes what, and the gate that keeps a
//! verified completion's deletions from racing another lane's writes.
//!
//! - **Routing.** A partition's pages and its completion always go to lane
//!   `partition_id mod lanes` ([`lane_of`]); pages of no partition go to lane 0. One lane
//!   writes its pages in the order they were sent, so the completion rule (a partition is
//!   done only with all its rows, [`super::ledger`]) holds per lane exactly as with one
//!   connection.
//! - **The gate.** Two lanes may write the same conversation at once (the pieces of a split
//!   query overlap; a conversation is returned by the blocks on both sides of its start).
//!   That is safe for plain writes (the second insert waits for the first's row lock, then
//!   fails with a duplicate key and the batch is written again, its lookup now seeing the
//!   committed row). It is not safe for a verified completion: its deletion of what the block
//!   no longer holds upstream reads the stored conversations and then deletes by id, so a
//!   conversation another lane is rewriting at that moment would be read at its old
//!   `last_ingested_at` and deleted right after that lane commits it. So a batch that
//!   carries a verified completion holds the [`LaneGate`] exclusively (no other lane has a
//!   transaction open), and every other batch holds it shared. The deletion then sees every
//!   other lane's writes committed, and skips what they wrote since its lease began (see
//!   `since` in [`super::upstream`]).
//! - **Rewrites meet in order.** On MySQL a batch locks the stored rows of its conversations
//!   before looking them up ([`lock_stored_conversations`]).
//! - **SQLite** has a single writer: one lane whatever the setting ([`lanes_for`]).

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::connection::{Backend, Connection, StorageError};
use super::models::ConversationRecord;
use super::write::WriterSettings;

/// The lane (0-based) that writes the pages of `partition_id` among `lanes` lanes. Pages of
/// no partition (`partition_id <= 0`) go to lane 0.
pub fn lane_of(partition_id: i64, lanes: usize) -> usize {
    if lanes <= 1 || partition_id <= 0 {
        return 0;
    }
    (partition_id as u64 % lanes as u64) as usize
}

/// The number of lanes the Writer runs on `backend`: `writer_connections`, but 1 on SQLite
/// (logged at info when that lowers the setting).
pub fn lanes_for(settings: &WriterSettings, backend: Backend) -> usize {
    let n = settings.writer_connections.max(1);
    if backend == Backend::Sqlite && n > 1 {
        log::info!("SQLite has a single writer: writer_connections {n} lowered to 1");
        return 1;
    }
    n
}

/// Shared between the lanes of one Writer (see the module doc). Cloning shares the gate.
#[derive(Clone, Default, Debug)]
pub struct LaneGate(Arc<RwLock<()>>);

/// A lane's turn at the gate; the gate opens again when it is dropped.
pub enum Turn<'a> {
    Shared(RwLockReadGuard<'a, ()>),
    Exclusive(RwLockWriteGuard<'a, ()>),
}

impl LaneGate {
    /// Waits for a turn: `exclusive` when no other lane may have a transaction open. Holds no
    /// lock of the database meanwhile (taken before the transaction begins), so a lane that
    /// waits here never blocks one that is inside.
    pub fn enter(&self, exclusive: bool) -> Turn<'_> {
        if exclusive {
            Turn::Exclusive(self.0.write().unwrap_or_else(|e| e.into_inner()))
        } else {
            Turn::Shared(self.0.read().unwrap_or_else(|e| e.into_inner()))
        }
    }
}

/// MySQL: locks the stored rows of `recs`, in key order, before they are looked up. With
/// several Writer connections ([`super::lanes`]) one that rewrites a conversation another is
/// rewriting waits here until that one commits, then reads its copy and compares digests,
/// instead of deleting children it cannot see yet. A new conversation has no row to lock: the
/// second insert meets a duplicate key and the batch is written again.
///
/// Sent as plain text (the IN list's length varies: a prepared statement would be prepared
/// anew for every batch), so only ids made of letters, digits, `-` and `_` are locked (the
/// API's are UUIDs); any other is covered by the duplicate-key retry alone.
pub(crate) fn lock_stored_conversations(
    conn: &mut Connection,
    recs: &[&ConversationRecord],
) -> Result<(), StorageError> {
    if !matches!(conn, Connection::Mysql(_)) {
        return Ok(());
    }
    let plain = |id: &&str| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut ids: Vec<&str> = recs
        .iter()
        .map(|r| r.conversation().conversation_id.as_str())
        .filter(plain)
        .collect();
    ids.sort_unstable();
    for chunk in ids.chunks(1000) {
        let list = chunk
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        conn.batch_execute(&format!(
            "SELECT conversation_id FROM conversations WHERE conversation_id IN ({list}) FOR UPDATE"
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_always_goes_to_the_same_lane_and_no_partition_to_lane_0() {
        assert_eq!(lane_of(7, 1), 0, "one lane");
        assert_eq!(lane_of(0, 3), 0, "no partition");
        assert_eq!(lane_of(-5, 3), 0, "no partition");
        let lanes: Vec<usize> = (1..=7).map(|p| lane_of(p, 3)).collect();
        assert_eq!(lanes, vec![1, 2, 0, 1, 2, 0, 1], "spread over every lane");
        assert_eq!(lane_of(41, 4), lane_of(41, 4), "stable");
        assert!((1..1000).all(|p| lane_of(p, 16) < 16));
        assert_eq!(lane_of(i64::MAX, 2), 1);
    }

    #[test]
    fn sqlite_gets_one_lane() {
        let s = WriterSettings {
            writer_connections: 4,
            ..WriterSettings::default()
        };
        assert_eq!(lanes_for(&s, Backend::Sqlite), 1);
        assert_eq!(lanes_for(&s, Backend::Mysql), 4);
    }
}
