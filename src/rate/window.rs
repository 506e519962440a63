//! Sliding-window counts of responses and 429s, kept in time bins so memory stays bounded
//! whatever the request rate.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

const BINS: u32 = 20;

/// Responses and 429s over the last `width`.
#[derive(Debug, Clone)]
pub struct SlidingCounts {
    width: Duration,
    bin: Duration,
    bins: VecDeque<(Instant, u64, u64)>,
}

impl SlidingCounts {
    pub fn new(width: Duration) -> Self {
        let width = width.max(Duration::from_millis(BINS.into()));
        SlidingCounts {
            width,
            bin: width / BINS,
            bins: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(start, _, _)) = self.bins.front() {
            if start + self.bin + self.width <= now {
                self.bins.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records one response at `now`.
    pub fn record(&mut self, now: Instant, rate_limited: bool) {
        self.prune(now);
        let limited = u64::from(rate_limited);
        match self.bins.back_mut() {
            Some((start, n, l)) if now < *start + self.bin => {
                *n += 1;
                *l += limited;
            }
            _ => self.bins.push_back((now, 1, limited)),
        }
    }

    /// (responses, 429s) within the window ending at `now` (bin-granular).
    pub fn totals(&mut self, now: Instant) -> (u64, u64) {
        self.prune(now);
        self.bins
            .iter()
            .fold((0, 0), |(n, l), &(_, bn, bl)| (n + bn, l + bl))
    }

    /// 429s ÷ responses over the window (0 when empty).
    pub fn ratio(&mut self, now: Instant) -> f64 {
        let (n, l) = self.totals(now);
        if n == 0 {
            0.0
        } else {
            l as f64 / n as f64
        }
    }

    pub fn clear(&mut self) {
        self.bins.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_samples_leave_the_window() {
        let t0 = Instant::now();
        let mut w = SlidingCounts::new(Duration::from_secs(100));
        for i in 0..100 {
            w.record(t0 + Duration::from_secs(i), i % 10 == 0);
        }
        assert_eq!(w.totals(t0 + Duration::from_secs(99)), (100, 10));
        assert!((w.ratio(t0 + Duration::from_secs(99)) - 0.1).abs() < 1e-9);
        let (n, _) = w.totals(t0 + Duration::from_secs(150));
        assert!((45..=55).contains(&n), "{n}");
        assert_eq!(w.totals(t0 + Duration::from_secs(300)), (0, 0));
    }
}
