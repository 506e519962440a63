//! Verification of one partition: the paging state machine the Fetchers drive, free of I/O so
//! tests feed it pages directly.
//!
//! Rules it enforces (see `shared/genesys-api.md` §0, §2.2, §4.1):
//! - Records are de-duplicated by their key (conversationId, userId): rows move between pages
//!   while data lands, and one record is counted once per partition.
//! - A pass pages with pageNumber until the page past the end (no records). For conversations
//!   a short page whose totalHits equals the distinct count also ends the pass (that page *is*
//!   the re-read of totalHits at the end); user details never stop on a short page.
//! - At the end of a pass, distinct received == the latest totalHits → verified. Otherwise the
//!   partition is paged again from page 1 (records already seen are kept: nothing is deleted
//!   from history), up to `max_passes`; then it completes *unverified* with both numbers.
//! - A block whose first page reports more hits than paging can reach (or, for a long block, a
//!   busy day) asks to be split instead.

use std::collections::HashSet;

use crate::genesys::model::Interval;
use crate::partition::{needs_split, BlockRules};

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Request this page number.
    Page(i64),
    /// Ask the Coordinator to split the block (the first page said it is too big).
    Split { total_hits: i64 },
    /// Paging is over: commit the completion with these numbers.
    Finished(Tally),
}

/// The numbers a partition completes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub total_hits: i64,
    pub received: i64,
    pub verified: bool,
    /// Passes made (1 when the first pass verified).
    pub passes: u32,
}

/// How a pass ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRule {
    /// Past-the-end page, or a short page whose totalHits equals the distinct count.
    Conversations,
    /// Past-the-end (empty) page only: user-detail pages can be short mid-way.
    Users,
}

/// Paging and verification state for one partition.
#[derive(Debug)]
pub struct PagedFetch {
    block: Interval,
    rules: BlockRules,
    page_size: i64,
    max_passes: u32,
    end_rule: EndRule,
    /// Whether the Coordinator may still split this block.
    splittable: bool,
    seen: HashSet<String>,
    page: i64,
    pass: u32,
    total_hits: Option<i64>,
}

impl PagedFetch {
    pub fn new(
        block: Interval,
        rules: BlockRules,
        page_size: i64,
        max_passes: u32,
        end_rule: EndRule,
    ) -> Self {
        PagedFetch {
            block,
            rules,
            page_size: page_size.max(1),
            max_passes: max_passes.max(1),
            end_rule,
            splittable: true,
            seen: HashSet::new(),
            page: 1,
            pass: 1,
            total_hits: None,
        }
    }

    /// Never ask for a split (e.g. the block is already at the minimum, or a job serves it).
    pub fn without_split(mut self) -> Self {
        self.splittable = false;
        self
    }

    /// The page to request now.
    pub fn page(&self) -> i64 {
        self.page
    }

    pub fn page_size(&self) -> i64 {
        self.page_size
    }

    pub fn pass(&self) -> u32 {
        self.pass
    }

    /// Distinct records received so far.
    pub fn received(&self) -> i64 {
        self.seen.len() as i64
    }

    pub fn total_hits(&self) -> Option<i64> {
        self.total_hits
    }

    /// Records a key; true when it was not seen before in this partition (write it).
    pub fn accept(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            false
        } else {
            self.seen.insert(key.to_owned());
            true
        }
    }

    /// After a page's records went through [`accept`](Self::accept): `records` is the number of
    /// records on the page (`None` when the key was absent), `total_hits` what the page said.
    pub fn end_of_page(&mut self, records: Option<usize>, total_hits: Option<i64>) -> Next {
        if let Some(t) = total_hits {
            self.total_hits = Some(t);
        }
        let n = records.unwrap_or(0) as i64;
        if self.pass == 1 && self.page == 1 && self.splittable {
            if let Some(t) = self.total_hits {
                if needs_split(self.block, t, &self.rules) {
                    return Next::Split { total_hits: t };
                }
            }
        }
        let past_end = n == 0;
        let short_and_counted = self.end_rule == EndRule::Conversations
            && n < self.page_size
            && self.total_hits == Some(self.received());
        // The API refuses pages beyond the paging cap: the pass ends there.
        let at_cap = self.page * self.page_size >= self.rules.paging_cap;
        if past_end || short_and_counted || at_cap {
            return self.end_of_pass();
        }
        self.page += 1;
        Next::Page(self.page)
    }

    fn end_of_pass(&mut self) -> Next {
        let received = self.received();
        let total_hits = self.total_hits.unwrap_or(-1);
        if total_hits == received {
            return Next::Finished(Tally {
                total_hits,
                received,
                verified: true,
                passes: self.pass,
            });
        }
        if self.pass < self.max_passes {
            self.pass += 1;
            self.page = 1;
            return Next::Page(1);
        }
        Next::Finished(Tally {
            total_hits,
            received,
            verified: false,
            passes: self.pass,
        })
    }

    /// For paths without totalHits on their pages (jobs): verify the distinct count against a
    /// totalHits read separately (the synchronous query's count for the same block and rule).
    pub fn verify_against(&mut self, total_hits: i64) -> Tally {
        self.total_hits = Some(total_hits);
        Tally {
            total_hits,
            received: self.received(),
            verified: total_hits == self.received(),
            passes: self.pass,
        }
    }

    /// Starts another pass (jobs: resubmit); false when the passes are used up.
    pub fn next_pass(&mut self) -> bool {
        if self.pass < self.max_passes {
            self.pass += 1;
            self.page = 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::parse_bound;

    fn day() -> Interval {
        Interval::new(
            parse_bound("2026-01-01").unwrap(),
            parse_bound("2026-01-02").unwrap(),
        )
    }

    /// Feeds a page of keys; returns the keys that were new.
    fn feed(f: &mut PagedFetch, keys: &[&str], total_hits: i64) -> (Vec<String>, Next) {
        let new: Vec<String> = keys
            .iter()
            .filter(|k| f.accept(k))
            .map(|k| k.to_string())
            .collect();
        let n = (!keys.is_empty()).then_some(keys.len());
        (new, f.end_of_page(n, Some(total_hits)))
    }

    fn keys(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn pages_to_the_end_and_verifies() {
        let mut f = PagedFetch::new(day(), BlockRules::default(), 3, 3, EndRule::Users);
        let all = keys(0..7);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        assert_eq!(feed(&mut f, &refs[0..3], 7).1, Next::Page(2));
        assert_eq!(feed(&mut f, &refs[3..6], 7).1, Next::Page(3));
        // A short page does not end a users pass.
        assert_eq!(feed(&mut f, &refs[6..7], 7).1, Next::Page(4));
        let (_, next) = feed(&mut f, &[], 7);
        assert_eq!(
            next,
            Next::Finished(Tally {
                total_hits: 7,
                received: 7,
                verified: true,
                passes: 1
            })
        );
    }

    #[test]
    fn duplicates_across_pages_are_written_once_and_counted_once() {
        let mut f = PagedFetch::new(day(), BlockRules::default(), 3, 1, EndRule::Conversations);
        let (new1, _) = feed(&mut f, &["a", "b", "c"], 4);
        // "c" moved down a page while data landed.
        let (new2, next) = feed(&mut f, &["c", "d"], 4);
        assert_eq!(new1, vec!["a", "b", "c"]);
        assert_eq!(new2, vec!["d"]);
        // Short page and the count matches totalHits: done without a past-the-end request.
        assert!(matches!(
            next,
            Next::Finished(Tally {
                verified: true,
                received: 4,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_record_triggers_a_second_pass_that_finds_it() {
        let mut f = PagedFetch::new(day(), BlockRules::default(), 2, 3, EndRule::Conversations);
        feed(&mut f, &["a", "b"], 4);
        // "c" moved from page 2 to page 1 between requests: page 2 shows "d" only.
        let (_, next) = feed(&mut f, &["d"], 4);
        assert_eq!(next, Next::Page(3));
        let (_, next) = feed(&mut f, &[], 4);
        assert_eq!(next, Next::Page(1), "3 of 4 seen: page again");
        assert_eq!(f.pass(), 2);
        let (new, _) = feed(&mut f, &["a", "b"], 4);
        assert!(new.is_empty());
        let (new, next) = feed(&mut f, &["c", "d"], 4);
        assert_eq!(new, vec!["c"]);
        assert_eq!(next, Next::Page(3));
        let (_, next) = feed(&mut f, &[], 4);
        assert!(matches!(
            next,
            Next::Finished(Tally {
                verified: true,
                passes: 2,
                ..
            })
        ));
    }

    #[test]
    fn persistent_mismatch_ends_unverified_with_both_numbers() {
        let mut f = PagedFetch::new(day(), BlockRules::default(), 10, 2, EndRule::Conversations);
        feed(&mut f, &["a", "b"], 3);
        assert_eq!(feed(&mut f, &[], 3).1, Next::Page(1));
        feed(&mut f, &["a", "b"], 3);
        let (_, next) = feed(&mut f, &[], 3);
        assert_eq!(
            next,
            Next::Finished(Tally {
                total_hits: 3,
                received: 2,
                verified: false,
                passes: 2
            })
        );
    }

    #[test]
    fn drifted_total_hits_on_a_middle_page_is_reread_at_the_end() {
        let mut f = PagedFetch::new(day(), BlockRules::default(), 2, 1, EndRule::Conversations);
        feed(&mut f, &["a", "b"], 4);
        feed(&mut f, &["c", "d"], 5); // drift
        let (_, next) = feed(&mut f, &[], 4); // the past-the-end page re-reads it
        assert!(matches!(
            next,
            Next::Finished(Tally {
                verified: true,
                total_hits: 4,
                ..
            })
        ));
    }

    #[test]
    fn too_many_hits_on_the_first_page_asks_for_a_split() {
        let rules = BlockRules {
            busy_hits: 50,
            paging_cap: 100,
            ..BlockRules::default()
        };
        let mut f = PagedFetch::new(day(), rules, 10, 1, EndRule::Conversations);
        assert_eq!(feed(&mut f, &["a"], 51).1, Next::Split { total_hits: 51 });
        // An unsplittable block pages up to the cap and ends unverified.
        let mut f = PagedFetch::new(day(), rules, 50, 1, EndRule::Conversations).without_split();
        let page: Vec<String> = keys(0..50);
        let refs: Vec<&str> = page.iter().map(String::as_str).collect();
        assert_eq!(feed(&mut f, &refs, 150).1, Next::Page(2));
        let page: Vec<String> = keys(50..100);
        let refs: Vec<&str> = page.iter().map(String::as_str).collect();
        assert!(matches!(
            feed(&mut f, &refs, 150).1,
            Next::Finished(Tally {
                verified: false,
                received: 100,
                total_hits: 150,
                ..
            })
        ));
    }

    #[test]
    fn jobs_verify_against_a_separate_count() {
        let mut f = PagedFetch::new(
            day(),
            BlockRules::default(),
            1000,
            2,
            EndRule::Conversations,
        );
        for k in ["a", "b", "b", "c"] {
            f.accept(k);
        }
        assert!(f.verify_against(3).verified);
        assert!(!f.verify_against(4).verified);
        assert!(f.next_pass());
        assert!(!f.next_pass());
    }
}
