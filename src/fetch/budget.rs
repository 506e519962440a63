//! The results held in memory by all Fetchers together, counted in records.
//!
//! A job's results page holds up to 1,000 conversations, and several jobs read at once: each
//! page is held from its request (body, then parsed records) until the Writer acknowledged it.
//! A per-Fetcher bound (`max_outstanding_pages`) multiplies with the jobs in flight; this budget
//! does not. A reader reserves a whole page before requesting it, keeps only what the page
//! actually held once parsed, and gives it back when the Writer answers, so however many jobs
//! run, the records held on the bulk path never pass the budget. (Pages the Writer has
//! acknowledged but not yet committed are its batch, bounded by its batch limits.)

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Records (conversations or users) that may be held in memory across all Fetchers.
#[derive(Debug, Clone)]
pub struct RecordBudget {
    permits: Arc<Semaphore>,
    capacity: usize,
}

/// A share of the budget, given back on drop.
#[derive(Debug)]
pub struct Held(OwnedSemaphorePermit);

/// The budget for pages of `page_size` records: `outstanding` pages awaiting the Writer plus
/// the one being read, for all jobs together.
pub fn records_for(page_size: usize, outstanding: usize) -> usize {
    page_size
        .max(1)
        .saturating_mul(outstanding.max(1).saturating_add(1))
}

impl RecordBudget {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        RecordBudget {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits until `records` (at most the whole budget, at least one) are free and takes them.
    pub async fn reserve(&self, records: usize) -> Held {
        let n = records.clamp(1, self.capacity) as u32;
        match self.permits.clone().acquire_many_owned(n).await {
            Ok(p) => Held(p),
            // The budget owns its semaphore and never closes it.
            Err(_) => unreachable!("the record budget's semaphore is never closed"),
        }
    }

    /// Records free right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

impl Held {
    /// Keeps `records` of the reservation (at least one) and gives the rest back at once.
    pub fn keep(&mut self, records: usize) {
        let excess = self.0.num_permits().saturating_sub(records.max(1));
        drop(self.0.split(excess));
    }

    pub fn records(&self) -> usize {
        self.0.num_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_outstanding_pages_plus_the_one_being_read() {
        assert_eq!(records_for(1000, 2), 3000);
        assert_eq!(records_for(1000, 0), 2000);
        assert_eq!(records_for(0, 2), 3);
    }

    #[tokio::test]
    async fn pages_wait_for_the_budget_and_return_what_they_do_not_hold() {
        let budget = RecordBudget::new(3000);
        let mut a = budget.reserve(1000).await;
        let b = budget.reserve(1000).await;
        let c = budget.reserve(1000).await;
        assert_eq!(budget.available(), 0);
        // A fourth page waits while three are held.
        let fourth = budget.reserve(1000);
        tokio::pin!(fourth);
        assert!(futures_util::poll!(fourth.as_mut()).is_pending());
        // A short last page keeps only its records; the rest goes to the waiting page (the
        // queue is fair), which still waits for its whole page.
        a.keep(200);
        assert_eq!(a.records(), 200);
        assert!(futures_util::poll!(fourth.as_mut()).is_pending());
        assert_eq!(budget.available(), 0);
        drop(b);
        let d = fourth.await;
        assert_eq!(budget.available(), 800);
        drop((a, c, d));
        assert_eq!(budget.available(), 3000);
    }

    #[tokio::test]
    async fn a_page_larger_than_the_budget_takes_all_of_it_instead_of_waiting_forever() {
        let budget = RecordBudget::new(500);
        let mut h = budget.reserve(1000).await;
        assert_eq!(h.records(), 500);
        assert_eq!(budget.available(), 0);
        // An empty page still holds one record's share until it is answered.
        h.keep(0);
        assert_eq!(h.records(), 1);
    }
}
