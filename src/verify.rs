//! Verification of one block, free of I/O so tests feed it records directly.
//!
//! Rules it enforces (see `shared/genesys-api.md` §0, §2.2, §4.1):
//! - Records are de-duplicated by their key (conversationId, userId): rows move between pages
//!   while data lands, and one record is counted once per block.
//! - At the end of a pass, distinct received == totalHits → verified. The query path takes
//!   totalHits from its pages; the jobs path, whose results carry none, from one count query
//!   (pageSize 1) for the same interval and matching rule.
//! - On a mismatch totalHits is re-read once per block (it is approximate while data lands);
//!   still different, the block is fetched again (records already seen are kept: nothing is
//!   deleted from history), up to `max_passes`; then it completes *unverified* with both
//!   numbers.
//! - Paging plan of a query pass: pages 1..=⌈totalHits ÷ pageSize⌉ (never past the paging
//!   cap); only when those leave the count short does the pass go on page by page until a page
//!   comes back empty (user-detail pages can be short mid-way).

use std::collections::HashSet;

/// The numbers a block completes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub total_hits: i64,
    pub received: i64,
    pub verified: bool,
    /// Passes made (1 when the first pass verified).
    pub passes: u32,
}

/// What the caller does at the end of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done: commit the completion with these numbers (verified or not).
    Finished(Tally),
    /// Re-read totalHits with a one-row query, then call [`Verification::recounted`].
    Recount,
    /// Fetch the block again (a new pass has started).
    Again,
}

/// Last page of a query pass: enough pages of `page_size` for `total_hits`, but never past
/// what paging can reach (`paging_cap` results).
pub fn last_page(total_hits: i64, page_size: i64, paging_cap: i64) -> i64 {
    let size = page_size.max(1);
    let wanted = (total_hits.max(0) + size - 1) / size;
    wanted.min(paging_cap.max(size) / size).max(1)
}

/// Verification state for one block.
#[derive(Debug)]
pub struct Verification {
    seen: HashSet<String>,
    max_passes: u32,
    pass: u32,
    total_hits: Option<i64>,
    recounted: bool,
}

impl Verification {
    pub fn new(max_passes: u32) -> Self {
        Verification {
            seen: HashSet::new(),
            max_passes: max_passes.max(1),
            pass: 1,
            total_hits: None,
            recounted: false,
        }
    }

    /// Records a key; true when it was not seen before in this block (write it).
    pub fn accept(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            false
        } else {
            self.seen.insert(key.to_owned());
            true
        }
    }

    /// Distinct records received so far.
    pub fn received(&self) -> i64 {
        self.seen.len() as i64
    }

    pub fn pass(&self) -> u32 {
        self.pass
    }

    pub fn total_hits(&self) -> Option<i64> {
        self.total_hits
    }

    /// The latest totalHits a page (or a count) reported.
    pub fn set_total_hits(&mut self, total_hits: i64) {
        self.total_hits = Some(total_hits);
    }

    fn tally(&self, verified: bool) -> Tally {
        Tally {
            total_hits: self.total_hits.unwrap_or(-1),
            received: self.received(),
            verified,
            passes: self.pass,
        }
    }

    /// The end of a pass: verified, a recount (once per block), another pass, or unverified.
    pub fn end_of_pass(&mut self) -> Verdict {
        if self.total_hits == Some(self.received()) {
            return Verdict::Finished(self.tally(true));
        }
        if !self.recounted {
            self.recounted = true;
            return Verdict::Recount;
        }
        self.again_or_give_up()
    }

    /// After the recount asked for by [`end_of_pass`](Self::end_of_pass) (`None`: the count
    /// carried no totalHits).
    pub fn recounted(&mut self, total_hits: Option<i64>) -> Verdict {
        if let Some(t) = total_hits {
            self.total_hits = Some(t);
        }
        if self.total_hits == Some(self.received()) {
            return Verdict::Finished(self.tally(true));
        }
        self.again_or_give_up()
    }

    fn again_or_give_up(&mut self) -> Verdict {
        if self.pass < self.max_passes {
            self.pass += 1;
            Verdict::Again
        } else {
            Verdict::Finished(self.tally(false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_once() {
        let mut v = Verification::new(3);
        let new: Vec<&str> = ["a", "b", "b", "c", "a"]
            .into_iter()
            .filter(|k| v.accept(k))
            .collect();
        assert_eq!(new, vec!["a", "b", "c"]);
        v.set_total_hits(3);
        assert_eq!(
            v.end_of_pass(),
            Verdict::Finished(Tally {
                total_hits: 3,
                received: 3,
                verified: true,
                passes: 1
            })
        );
    }

    #[test]
    fn a_mismatch_recounts_once_per_block_then_fetches_again() {
        let mut v = Verification::new(3);
        v.accept("a");
        v.set_total_hits(2);
        assert_eq!(v.end_of_pass(), Verdict::Recount);
        // The count still says 2: another pass.
        assert_eq!(v.recounted(Some(2)), Verdict::Again);
        assert_eq!(v.pass(), 2);
        // The second pass is still short: no second recount, a third pass.
        assert_eq!(v.end_of_pass(), Verdict::Again);
        v.accept("b");
        assert!(matches!(
            v.end_of_pass(),
            Verdict::Finished(Tally {
                verified: true,
                passes: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_drifted_total_is_settled_by_the_recount() {
        let mut v = Verification::new(1);
        v.accept("a");
        v.accept("b");
        v.set_total_hits(3);
        assert_eq!(v.end_of_pass(), Verdict::Recount);
        assert!(matches!(
            v.recounted(Some(2)),
            Verdict::Finished(Tally { verified: true, .. })
        ));
    }

    #[test]
    fn persistent_mismatch_ends_unverified_with_both_numbers() {
        let mut v = Verification::new(2);
        v.accept("a");
        v.set_total_hits(3);
        assert_eq!(v.end_of_pass(), Verdict::Recount);
        assert_eq!(v.recounted(Some(3)), Verdict::Again);
        assert_eq!(
            v.end_of_pass(),
            Verdict::Finished(Tally {
                total_hits: 3,
                received: 1,
                verified: false,
                passes: 2
            })
        );
    }

    #[test]
    fn last_page_fits_the_hits_and_the_paging_cap() {
        assert_eq!(last_page(6_000, 100, 10_000), 60);
        assert_eq!(last_page(6_001, 100, 10_000), 61);
        assert_eq!(last_page(0, 100, 10_000), 1);
        assert_eq!(last_page(50_000, 100, 10_000), 100);
        assert_eq!(last_page(400, 100, 150), 1);
    }
}
