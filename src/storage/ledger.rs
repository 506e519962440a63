//! The Writer's ledger of partition leases in flight, keyed by (partition, lease token).
//!
//! Two guarantees rest on it:
//! - **No completion without all its rows.** A lease any of whose pages was not written (the
//!   database stayed down past the retry budget, a permanent error, a lost lease) is marked
//!   with the first error; its completion is then refused ([`LeaseLedger::lease_failure`]),
//!   so the partition is fetched again under a new lease (or fails, or is left to the lease's
//!   new holder) instead of being marked done with rows missing. The Writer acknowledges a
//!   partition's pages once they are buffered, before they commit, so this refusal is how a
//!   Fetcher learns that one of them was lost.
//! - **Deletions only from a complete, verified fetch.** The keys of every page a lease wrote
//!   are kept (as 128-bit hashes: 16 bytes a key, bounded by the partition's size), so the
//!   transaction that completes a verified block can delete what is stored for the block but
//!   was not received: what Genesys deleted upstream ([`super::upstream`]).
//!
//! An entry lives from the lease (or its first page) to its completion, or until the
//! partition is leased again, released, failed or split.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;

use super::connection::StorageError;
use super::digest::key_hash;
use super::models::db_time;
use super::write::{PageRecords, PageWrite};

/// Hashes of the keys a lease's pages carried.
#[derive(Debug, Default, Clone)]
pub struct ReceivedKeys {
    conversations: HashSet<u128>,
    presence: HashSet<(u128, NaiveDateTime)>,
    routing: HashSet<(u128, NaiveDateTime)>,
}

impl ReceivedKeys {
    /// The keys of `pages`.
    pub fn of_pages<'a>(pages: impl IntoIterator<Item = &'a PageWrite>) -> Self {
        let mut k = ReceivedKeys::default();
        for p in pages {
            k.add(&p.page);
        }
        k
    }

    pub fn add(&mut self, page: &PageRecords) {
        match page {
            PageRecords::Conversations(v) => self.conversations.extend(
                v.iter()
                    .map(|c| key_hash(&c.conversation().conversation_id)),
            ),
            PageRecords::Users(v) => {
                for u in v {
                    let user = key_hash(&u.user_id);
                    self.presence.extend(
                        u.primary_presence
                            .iter()
                            .map(|p| (user, db_time(p.start_time))),
                    );
                    self.routing.extend(
                        u.routing_status
                            .iter()
                            .map(|r| (user, db_time(r.start_time))),
                    );
                }
            }
        }
    }

    pub fn has_conversation(&self, id: &str) -> bool {
        self.conversations.contains(&key_hash(id))
    }

    pub fn has_presence(&self, user_id: &str, start: NaiveDateTime) -> bool {
        self.presence.contains(&(key_hash(user_id), start))
    }

    pub fn has_routing_status(&self, user_id: &str, start: NaiveDateTime) -> bool {
        self.routing.contains(&(key_hash(user_id), start))
    }

    pub fn len(&self) -> usize {
        self.conversations.len() + self.presence.len() + self.routing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the Writer knows of one lease.
#[derive(Debug, Clone)]
pub struct LeaseEntry {
    /// When the lease was taken (or its first page committed, when it was taken elsewhere):
    /// only rows last ingested before it can be deleted by this lease's completion, so rows
    /// another partition's fetch stored meanwhile are never.
    pub since: NaiveDateTime,
    /// Keys of the pages committed under the lease.
    pub received: ReceivedKeys,
    /// Why the first page of the lease that was not written failed: its completion is refused.
    pub failure: Option<StorageError>,
}

/// The ledger (see the module doc).
#[derive(Debug, Default)]
pub struct LeaseLedger {
    leases: HashMap<(i64, String), LeaseEntry>,
}

impl LeaseLedger {
    /// Partition `id` was leased with `token` at `at`: older leases of it are dead.
    pub fn leased(&mut self, id: i64, token: &str, at: NaiveDateTime) {
        self.forget_partition(id);
        self.leases.insert(
            (id, token.to_owned()),
            LeaseEntry {
                since: at,
                received: ReceivedKeys::default(),
                failure: None,
            },
        );
    }

    /// Drops every lease of partition `id` (released, failed, split, leased again).
    pub fn forget_partition(&mut self, id: i64) {
        self.leases.retain(|(p, _), _| *p != id);
    }

    pub fn entry(&self, id: i64, token: &str) -> Option<&LeaseEntry> {
        self.leases.get(&(id, token.to_owned()))
    }

    /// What the Fetcher of `page`'s lease is told once a page of that lease was not written:
    /// the lease is lost ([`StorageError::LeaseLost`]: another holder fetches the partition),
    /// a permanent error (the partition failed with it), or, after a transient one,
    /// [`StorageError::IncompletePartition`] (fetch the partition again). `None` while every
    /// page of the lease was written (or for an unfenced page).
    pub fn lease_failure(&self, page: &PageWrite) -> Option<StorageError> {
        if page.partition_id <= 0 {
            return None;
        }
        let first = self
            .entry(page.partition_id, &page.lease_token)?
            .failure
            .as_ref()?;
        Some(match first {
            StorageError::LeaseLost { .. } => StorageError::LeaseLost {
                partition_id: page.partition_id,
            },
            e if !e.is_transient() => e.clone(),
            _ => StorageError::IncompletePartition {
                partition_id: page.partition_id,
            },
        })
    }

    /// When the lease of `page` began (its first page at `now` if the ledger has not seen it).
    pub fn since(&self, page: &PageWrite, now: NaiveDateTime) -> NaiveDateTime {
        self.entry(page.partition_id, &page.lease_token)
            .map_or(now, |e| e.since)
    }

    /// `page` was committed at `now`: keep its keys, or forget the lease when the page
    /// completed it.
    pub fn committed(&mut self, page: &PageWrite, now: NaiveDateTime) {
        if page.partition_id <= 0 {
            return;
        }
        let key = (page.partition_id, page.lease_token.clone());
        if page.completion.is_some() {
            self.leases.remove(&key);
            return;
        }
        self.leases
            .entry(key)
            .or_insert_with(|| LeaseEntry {
                since: now,
                received: ReceivedKeys::default(),
                failure: None,
            })
            .received
            .add(&page.page);
    }

    /// `page` was not written (`why`): its lease can no longer complete (its keys are
    /// dropped). The first failure of a lease is kept.
    pub fn not_written(&mut self, page: &PageWrite, why: &StorageError, now: NaiveDateTime) {
        if page.partition_id <= 0 {
            return;
        }
        let e = self
            .leases
            .entry((page.partition_id, page.lease_token.clone()))
            .or_insert_with(|| LeaseEntry {
                since: now,
                received: ReceivedKeys::default(),
                failure: None,
            });
        e.failure.get_or_insert_with(|| why.clone());
        e.received = ReceivedKeys::default();
    }

    /// Leases tracked (for tests and stats).
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(id: i64, token: &str) -> PageWrite {
        PageWrite {
            partition_id: id,
            lease_token: token.into(),
            page: PageRecords::Conversations(Vec::new()),
            completion: None,
        }
    }

    #[test]
    fn a_lease_that_lost_a_page_is_answered_with_the_reason_it_was_lost() {
        let at = NaiveDateTime::default();
        let mut l = LeaseLedger::default();
        let (lost, failed, down) = (page(1, "a"), page(2, "b"), page(3, "c"));
        for p in [&lost, &failed, &down] {
            l.leased(p.partition_id, &p.lease_token, at);
            assert_eq!(l.lease_failure(p), None, "every page written so far");
        }
        l.not_written(&lost, &StorageError::LeaseLost { partition_id: 1 }, at);
        let permanent = StorageError::Database {
            message: "Data too long for column 'queue_id'".into(),
            transient: false,
        };
        l.not_written(&failed, &permanent, at);
        let gave_up = StorageError::Unavailable {
            attempts: 61,
            last: "Lost connection".into(),
        };
        l.not_written(&down, &gave_up, at);
        // A later failure does not replace the first.
        l.not_written(&failed, &gave_up, at);

        assert_eq!(
            l.lease_failure(&lost),
            Some(StorageError::LeaseLost { partition_id: 1 })
        );
        assert_eq!(l.lease_failure(&failed), Some(permanent));
        assert_eq!(
            l.lease_failure(&down),
            Some(StorageError::IncompletePartition { partition_id: 3 })
        );
        // Another lease of the same partition, and an unfenced page, are not concerned.
        assert_eq!(l.lease_failure(&page(3, "d")), None);
        assert_eq!(l.lease_failure(&page(0, "")), None);
        // Leased again: the new lease starts clean.
        l.leased(3, "e", at);
        assert_eq!(l.lease_failure(&page(3, "e")), None);
    }
}
