//! The Writer's lanes: parallel writes over `writer_connections` connections (one on SQLite).
//!
//! With one connection the [`Writer`] that [`start_writer_with`](super::writer::start_writer_with)
//! returns writes everything itself. With `n > 1` it becomes the **router**: it starts `n`
//! lanes, more `Writer`s, each on its own `SyncArbiter` thread with its own connection, runs
//! every checkpoint message on its own connection, and forwards the pages of partition `p` to
//! lane [`lane_of`]`(p, n)` ([`crate::storage::lanes`]) with the page's deferred reply, which
//! that lane answers after its commit. Every caller still talks to the router only. The router
//! never writes a batch, so it forwards pages while the lanes write: no lane waits behind
//! another's commit. Messages from one sender arrive in the order sent, so a lane receives a
//! partition's pages, its completion (on its last page) and its ledger updates (lease, forget)
//! in order: the completion rule holds per lane.
//!
//! A message that must apply after the pages sent before it makes the router wait at a
//! **barrier** until the lanes concerned have written theirs ([`Barrier`]: every lane, or the
//! one of a partition). Lanes never wait for the router, so this cannot deadlock. Counters are
//! summed over the lanes: each publishes its own after every change, so
//! [`WriterStats`](super::writer::WriterStats) never waits for a busy lane.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Addr, Handler, Message};
use chrono::{DateTime, Utc};

use super::writer::{Slot, Writer, WriterStatsSnapshot};
use crate::storage::lanes::lane_of;
use crate::storage::write::PageWrite;

/// The router's handle on a lane.
#[derive(Clone)]
pub(super) struct Lane {
    pub(super) addr: Addr<Writer>,
    /// The lane's counters, as it last published them.
    pub(super) stats: Arc<Mutex<WriterStatsSnapshot>>,
    /// Pages sent to the lane and not yet written (in its mailbox or its buffer).
    pub(super) queued: Arc<AtomicUsize>,
}

/// Which lanes must have written the pages sent before a message.
#[derive(Debug, Clone, Copy)]
pub(super) enum Barrier {
    All,
    /// Only the lane writing this partition.
    Partition(i64),
}

/// A page for the lane, with the reply its sender awaits.
pub(super) struct LaneWrite {
    pub(super) page: PageWrite,
    pub(super) slot: Slot,
}
impl Message for LaneWrite {
    type Result = ();
}

/// The lane's ledger: partition `id` was leased with `token` at `at`.
pub(super) struct LaneLeased {
    id: i64,
    token: String,
    at: DateTime<Utc>,
}
impl Message for LaneLeased {
    type Result = ();
}

/// The lane's ledger: partition `id` was released, failed or split.
pub(super) struct LaneForget(i64);
impl Message for LaneForget {
    type Result = ();
}

/// Write everything buffered, then say so.
pub(super) struct LaneFlush(mpsc::Sender<()>);
impl Message for LaneFlush {
    type Result = ();
}

/// How often a barrier checks that a lane it waits for still exists.
const BARRIER_CHECK: Duration = Duration::from_secs(1);

impl Writer {
    /// The lane writing `partition_id`; `None` when this Writer writes its pages itself (one
    /// connection).
    fn lane_for(&self, partition_id: i64) -> Option<&Lane> {
        if self.lanes.is_empty() {
            return None;
        }
        self.lanes.get(lane_of(partition_id, self.lanes.len()))
    }

    /// Sends `page` to its lane; gives it back when it is this lane's to write.
    pub(super) fn route(&self, page: PageWrite, slot: Slot) -> Option<(PageWrite, Slot)> {
        let Some(lane) = self.lane_for(page.partition_id) else {
            return Some((page, slot));
        };
        if lane.addr.connected() {
            lane.queued.fetch_add(1, Ordering::AcqRel);
            lane.addr.do_send(LaneWrite { page, slot });
        } else {
            slot.resolve(Err(crate::storage::StorageError::WriterGone));
        }
        None
    }

    /// Writes this lane's buffer, then waits until the lanes `which` names have written every
    /// page sent to them before now.
    pub(super) fn barrier(&mut self, which: Barrier) {
        self.flush();
        let lanes: Vec<Lane> = match which {
            Barrier::All => self.lanes.clone(),
            Barrier::Partition(id) => self.lane_for(id).cloned().into_iter().collect(),
        };
        // Ask every lane first, so they flush in parallel; then wait for each.
        let waits: Vec<(Lane, mpsc::Receiver<()>)> = lanes
            .into_iter()
            .map(|lane| {
                let (tx, rx) = mpsc::channel();
                lane.addr.do_send(LaneFlush(tx));
                (lane, rx)
            })
            .collect();
        for (lane, rx) in waits {
            loop {
                match rx.recv_timeout(BARRIER_CHECK) {
                    // Flushed, or the lane dropped the request (it has stopped).
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) if !lane.addr.connected() => {
                        log::warn!("a writer lane stopped during a flush");
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            }
        }
    }

    /// Partition `id` was leased with `token` at `at`: tell the ledger of its lane.
    pub(super) fn leased(&mut self, id: i64, token: &str, at: DateTime<Utc>) {
        match self.lane_for(id) {
            None => self.core.leased_at(id, token, at),
            Some(lane) => lane.addr.do_send(LaneLeased {
                id,
                token: token.to_owned(),
                at,
            }),
        }
    }

    /// Partition `id`'s lease ended: its lane's ledger forgets it.
    pub(super) fn forget_partition(&mut self, id: i64) {
        match self.lane_for(id) {
            None => self.core.forget_partition(id),
            Some(lane) => lane.addr.do_send(LaneForget(id)),
        }
    }

    /// This lane's counters plus what the other lanes last published.
    pub(super) fn stats(&self) -> WriterStatsSnapshot {
        let mut s = self.local_stats();
        for lane in &self.lanes {
            let mut o = *lane.stats.lock().unwrap_or_else(|e| e.into_inner());
            o.queue_depth = lane.queued.load(Ordering::Acquire);
            s = sum(s, o);
        }
        s
    }
}

/// Counters of two lanes together (`last_batch_ms`: the longer).
fn sum(a: WriterStatsSnapshot, b: WriterStatsSnapshot) -> WriterStatsSnapshot {
    WriterStatsSnapshot {
        queue_depth: a.queue_depth + b.queue_depth,
        buffered_rows: a.buffered_rows + b.buffered_rows,
        batches: a.batches + b.batches,
        rows_written: a.rows_written + b.rows_written,
        conversations_written: a.conversations_written + b.conversations_written,
        completions: a.completions + b.completions,
        last_batch_ms: a.last_batch_ms.max(b.last_batch_ms),
        reconnects: a.reconnects + b.reconnects,
        transient_errors: a.transient_errors + b.transient_errors,
        failed_pages: a.failed_pages + b.failed_pages,
        conversations_changed: a.conversations_changed + b.conversations_changed,
        conversations_unchanged: a.conversations_unchanged + b.conversations_unchanged,
        user_records_unchanged: a.user_records_unchanged + b.user_records_unchanged,
        conversations_deleted: a.conversations_deleted + b.conversations_deleted,
        user_records_deleted: a.user_records_deleted + b.user_records_deleted,
        refused_completions: a.refused_completions + b.refused_completions,
        conflict_retries: a.conflict_retries + b.conflict_retries,
    }
}

impl Handler<LaneWrite> for Writer {
    type Result = ();
    fn handle(&mut self, m: LaneWrite, ctx: &mut Self::Context) {
        self.buffer_page(m.page, m.slot, ctx);
    }
}

impl Handler<LaneLeased> for Writer {
    type Result = ();
    fn handle(&mut self, m: LaneLeased, _: &mut Self::Context) {
        // The pages of the earlier lease are written first, as a lone Writer does.
        self.flush();
        self.core.leased_at(m.id, &m.token, m.at);
    }
}

impl Handler<LaneForget> for Writer {
    type Result = ();
    fn handle(&mut self, m: LaneForget, _: &mut Self::Context) {
        self.flush();
        self.core.forget_partition(m.0);
    }
}

impl Handler<LaneFlush> for Writer {
    type Result = ();
    fn handle(&mut self, m: LaneFlush, _: &mut Self::Context) {
        self.flush();
        let _ = m.0.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_counters_add_up() {
        let a = WriterStatsSnapshot {
            batches: 2,
            rows_written: 10,
            last_batch_ms: 7,
            conversations_deleted: 1,
            ..WriterStatsSnapshot::default()
        };
        let b = WriterStatsSnapshot {
            batches: 3,
            rows_written: 5,
            last_batch_ms: 4,
            conflict_retries: 2,
            ..WriterStatsSnapshot::default()
        };
        let s = sum(a, b);
        assert_eq!((s.batches, s.rows_written, s.last_batch_ms), (5, 15, 7));
        assert_eq!((s.conversations_deleted, s.conflict_retries), (1, 2));
    }
}
