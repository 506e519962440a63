//! The Generic Cell Rate Algorithm: a token bucket kept as one number, the theoretical arrival
//! time (TAT) of the next cell. There is no refill timer, so nothing drifts: whether a request
//! conforms is computed from the instant it asks.
//!
//! With emission interval `T` and burst `b` (tolerance `τ = T·(b−1)`), at most `b + ⌊W/T⌋`
//! cells conform in any closed window of length `W`; [`super::settings`] sizes `T` and `b` so
//! that this stays below the server's limit for its window.

use std::time::Duration;

use tokio::time::Instant;

/// A GCRA cell limiter with a changeable emission interval.
#[derive(Debug, Clone)]
pub struct Gcra {
    interval: Duration,
    burst: u32,
    tat: Option<Instant>,
}

impl Gcra {
    /// `interval` between cells in steady state, `burst` ≥ 1 cells allowed back to back.
    pub fn new(interval: Duration, burst: u32) -> Self {
        Gcra {
            interval,
            burst: burst.max(1),
            tat: None,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Changes the steady-state rate. The TAT is kept, so cells already admitted still count.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    fn tolerance(&self) -> Duration {
        self.interval * (self.burst - 1)
    }

    /// The earliest instant (≥ `now`) at which one cell conforms.
    pub fn earliest(&self, now: Instant) -> Instant {
        match self.tat {
            None => now,
            Some(tat) => match tat.checked_sub(self.tolerance()) {
                Some(e) if e > now => e,
                _ => now,
            },
        }
    }

    /// Takes one cell at `now` if it conforms; otherwise says when it will.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        let earliest = self.earliest(now);
        if earliest > now {
            return Err(earliest);
        }
        // A cell taken less than one interval after its theoretical time keeps its slot
        // (base = TAT): wake-up latency does not erode the rate. Later than that the bucket
        // is idle and restarts from `now`. Either way the k-th cell after a restart at t0 is
        // never earlier than t0 + k·T, so the window bound b + ⌊W/T⌋ is unchanged.
        let base = match self.tat {
            Some(tat) if tat + self.interval > now => tat,
            _ => now,
        };
        self.tat = Some(base + self.interval);
        Ok(())
    }

    /// Cells that could be taken back to back at `now` (fractional: the bucket's fill level).
    pub fn available(&self, now: Instant) -> f64 {
        let b = f64::from(self.burst);
        match self.tat {
            Some(tat) if tat > now => {
                let owed = (tat - now).as_secs_f64() / self.interval.as_secs_f64().max(1e-9);
                (b - owed).clamp(0.0, b)
            }
            _ => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut g = Gcra::new(Duration::from_millis(200), 3);
        for _ in 0..3 {
            assert!(g.try_take(t0).is_ok());
        }
        let next = g.try_take(t0).unwrap_err();
        assert_eq!(next, t0 + Duration::from_millis(200));
        assert!(g.try_take(next - Duration::from_millis(1)).is_err());
        assert!(g.try_take(next).is_ok());
        assert_eq!(g.earliest(next), next + Duration::from_millis(200));
    }

    #[test]
    fn late_takes_keep_their_slot_but_idle_time_is_not_banked_beyond_the_burst() {
        let t0 = Instant::now();
        let t = Duration::from_millis(100);
        let mut g = Gcra::new(t, 1);
        assert!(g.try_take(t0).is_ok());
        // Taken 30 ms late: the next slot is still t0 + 200 ms, not 230 ms.
        assert!(g.try_take(t0 + Duration::from_millis(130)).is_ok());
        assert_eq!(
            g.earliest(t0 + Duration::from_millis(130)),
            t0 + Duration::from_millis(200)
        );
        // Idle for a second: one cell, then one per interval again.
        let later = t0 + Duration::from_secs(1);
        assert!(g.try_take(later).is_ok());
        assert_eq!(g.try_take(later).unwrap_err(), later + t);
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut g = Gcra::new(Duration::from_secs(1), 2);
        assert!(g.try_take(t0).is_ok());
        assert!((g.available(t0) - 1.0).abs() < 1e-9);
        let later = t0 + Duration::from_secs(3600);
        assert!((g.available(later) - 2.0).abs() < 1e-9);
        assert!(g.try_take(later).is_ok());
        assert!(g.try_take(later).is_ok());
        assert!(g.try_take(later).is_err());
    }

    #[test]
    fn slower_interval_takes_effect_immediately() {
        let t0 = Instant::now();
        let mut g = Gcra::new(Duration::from_millis(100), 1);
        assert!(g.try_take(t0).is_ok());
        g.set_interval(Duration::from_millis(500));
        // The cell already admitted was spaced at the old interval; the next one at the new.
        let t1 = g.try_take(t0).unwrap_err();
        assert_eq!(t1, t0 + Duration::from_millis(100));
        assert!(g.try_take(t1).is_ok());
        assert_eq!(g.try_take(t1).unwrap_err(), t1 + Duration::from_millis(500));
    }
}
