//! Adaptive throttling on the 429 ratio: when more than `threshold` of the recent responses
//! were 429s, the refill rate is multiplied by `factor` and the concurrency cap lowered by one
//! for `hold_secs`; a further breach lowers both again. After the hold the rate climbs back by
//! `recovery_step` of the configured rate (and the cap by one) every `recovery_interval_secs`.
//!
//! The ratio cannot see a server limit that bites once per window (200 requests, then one
//! 429 and a Retry-After pause: 0.5 %). So a second signal counts as a breach too: `episodes`
//! separate 429 *episodes* (a 429 that starts a new pause) within the adaptive window.
//!
//! A breach is judged only on evidence gathered after the previous reduction: responses to
//! requests granted before it (one burst of 429s from requests already in flight) cannot cause
//! a second reduction. Each grant carries the `generation` it was made in for that reason.

use std::time::Duration;

use tokio::time::Instant;

use super::settings::AdaptiveSettings;
use super::window::SlidingCounts;

/// What a response did to the adaptive state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjustment {
    None,
    /// Breach: the rate multiplier dropped to this value.
    Reduced {
        multiplier: f64,
        ratio: f64,
    },
}

#[derive(Debug, Clone)]
pub struct Adaptive {
    settings: AdaptiveSettings,
    multiplier: f64,
    cap_reduction: u32,
    recent: SlidingCounts,
    evidence: SlidingCounts,
    generation: u64,
    reductions: u64,
    held_until: Option<Instant>,
    next_recovery: Option<Instant>,
    episodes: std::collections::VecDeque<Instant>,
}

impl Adaptive {
    pub fn new(settings: AdaptiveSettings) -> Self {
        let width = Duration::from_secs(settings.window_secs);
        Adaptive {
            settings,
            multiplier: 1.0,
            cap_reduction: 0,
            recent: SlidingCounts::new(width),
            evidence: SlidingCounts::new(width),
            generation: 0,
            reductions: 0,
            held_until: None,
            next_recovery: None,
            episodes: std::collections::VecDeque::new(),
        }
    }

    /// The current rate multiplier (floor ≤ m ≤ 1).
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// How many slots the concurrency cap is currently lowered by.
    pub fn cap_reduction(&self) -> u32 {
        self.cap_reduction
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn reductions(&self) -> u64 {
        self.reductions
    }

    pub fn held_until(&self) -> Option<Instant> {
        self.held_until
    }

    /// The next instant at which [`Self::tick`] will change something.
    pub fn next_recovery(&self) -> Option<Instant> {
        self.next_recovery
    }

    /// The 429 ratio over the sliding window.
    pub fn ratio(&mut self, now: Instant) -> f64 {
        self.recent.ratio(now)
    }

    /// Records one response to a request granted in `generation`; `new_episode`: this 429
    /// started a new pause (the limiter was not already paused).
    pub fn on_response(
        &mut self,
        now: Instant,
        generation: u64,
        rate_limited: bool,
        new_episode: bool,
    ) -> Adjustment {
        self.recent.record(now, rate_limited);
        if generation != self.generation {
            return Adjustment::None;
        }
        self.evidence.record(now, rate_limited);
        let width = Duration::from_secs(self.settings.window_secs);
        if rate_limited && new_episode {
            self.episodes.push_back(now);
        }
        while self.episodes.front().is_some_and(|t| *t + width <= now) {
            self.episodes.pop_front();
        }
        if !self.settings.enabled {
            return Adjustment::None;
        }
        let (n, l) = self.evidence.totals(now);
        let ratio = if n == 0 { 0.0 } else { l as f64 / n as f64 };
        let ratio_breach = l > 0
            && n >= u64::from(self.settings.min_samples.max(1))
            && ratio > self.settings.threshold;
        let episode_breach =
            self.settings.episodes > 0 && self.episodes.len() >= self.settings.episodes as usize;
        if !(ratio_breach || episode_breach) {
            return Adjustment::None;
        }
        self.multiplier = (self.multiplier * self.settings.factor).max(self.settings.floor);
        self.cap_reduction += 1;
        self.generation += 1;
        self.reductions += 1;
        self.evidence.clear();
        self.episodes.clear();
        let until = now + Duration::from_secs(self.settings.hold_secs);
        self.held_until = Some(until);
        self.next_recovery = Some(until);
        Adjustment::Reduced {
            multiplier: self.multiplier,
            ratio,
        }
    }

    /// Applies recovery steps that are due at `now`; true when something changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(due) = self.next_recovery {
            if due > now {
                break;
            }
            self.multiplier = (self.multiplier + self.settings.recovery_step).min(1.0);
            self.cap_reduction = self.cap_reduction.saturating_sub(1);
            changed = true;
            if self.multiplier >= 1.0 && self.cap_reduction == 0 {
                self.next_recovery = None;
                self.held_until = None;
            } else {
                self.next_recovery =
                    Some(due + Duration::from_secs(self.settings.recovery_interval_secs));
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AdaptiveSettings {
        AdaptiveSettings::default()
    }

    #[test]
    fn ratio_above_threshold_reduces_once_per_breach_then_recovers_in_steps() {
        let t0 = Instant::now();
        let mut a = Adaptive::new(settings());
        let sec = Duration::from_secs(1);
        // 99 OK + 1 429 = 1 %: not above the threshold.
        for i in 0..99 {
            assert_eq!(
                a.on_response(t0 + sec * i, 0, false, false),
                Adjustment::None
            );
        }
        assert_eq!(
            a.on_response(t0 + sec * 99, 0, true, false),
            Adjustment::None
        );
        // A second 429 makes it 2/101 ≈ 2 %: breach.
        let adj = a.on_response(t0 + sec * 100, 0, true, false);
        assert!(
            matches!(adj, Adjustment::Reduced { multiplier, .. } if (multiplier - 0.8).abs() < 1e-9)
        );
        assert_eq!(a.cap_reduction(), 1);
        // More 429s from requests granted before the reduction do not reduce again.
        for _ in 0..10 {
            assert_eq!(
                a.on_response(t0 + sec * 100, 0, true, false),
                Adjustment::None
            );
        }
        assert!((a.multiplier() - 0.8).abs() < 1e-9);
        // A fresh breach (new generation) does.
        let g = a.generation();
        for i in 0..19 {
            a.on_response(t0 + sec * (101 + i), g, false, false);
        }
        let adj = a.on_response(t0 + sec * 121, g, true, false);
        assert!(
            matches!(adj, Adjustment::Reduced { multiplier, .. } if (multiplier - 0.64).abs() < 1e-9)
        );
        let breach_at = t0 + sec * 121;
        // Held for an hour.
        assert!(!a.tick(breach_at + Duration::from_secs(3599)));
        assert!((a.multiplier() - 0.64).abs() < 1e-9);
        // Then +5 % of the configured rate every 5 minutes, up to 1.0.
        assert!(a.tick(breach_at + Duration::from_secs(3600)));
        assert!((a.multiplier() - 0.69).abs() < 1e-9);
        assert_eq!(a.cap_reduction(), 1);
        a.tick(breach_at + Duration::from_secs(3600 + 300 * 7));
        assert!((a.multiplier() - 1.0).abs() < 1e-9);
        assert_eq!(a.cap_reduction(), 0);
        assert_eq!(a.next_recovery(), None);
        assert_eq!(a.reductions(), 2);
    }

    #[test]
    fn repeated_429_episodes_are_a_breach_even_at_a_low_ratio() {
        let t0 = Instant::now();
        let mut a = Adaptive::new(settings());
        let sec = Duration::from_secs(1);
        for i in 0..200 {
            a.on_response(t0 + sec / 5 * i, 0, false, false);
        }
        assert_eq!(
            a.on_response(t0 + sec * 41, 0, true, true),
            Adjustment::None
        );
        // The same pause's other 429s are not new episodes.
        assert_eq!(
            a.on_response(t0 + sec * 41, 0, true, false),
            Adjustment::None
        );
        for i in 0..200 {
            a.on_response(t0 + sec * 60 + sec / 5 * i, 0, false, false);
        }
        // A second episode 60 s later (within the 120 s window): breach.
        let adj = a.on_response(t0 + sec * 101, 0, true, true);
        assert!(matches!(adj, Adjustment::Reduced { .. }), "{adj:?}");
        // Episodes further apart than the window are not.
        let mut a = Adaptive::new(settings());
        a.on_response(t0, 0, true, true);
        for i in 1..=200 {
            a.on_response(t0 + sec * i, 0, false, false);
        }
        assert_eq!(
            a.on_response(t0 + sec * 200, 0, true, true),
            Adjustment::None
        );
    }

    #[test]
    fn floor_bounds_the_reduction_and_disabled_never_reduces() {
        let t0 = Instant::now();
        let mut s = settings();
        s.min_samples = 1;
        s.floor = 0.5;
        let mut a = Adaptive::new(s.clone());
        for _ in 0..10 {
            let g = a.generation();
            a.on_response(t0, g, true, false);
        }
        assert!((a.multiplier() - 0.5).abs() < 1e-9);

        s.enabled = false;
        let mut a = Adaptive::new(s);
        for _ in 0..10 {
            a.on_response(t0, 0, true, true);
        }
        assert_eq!(a.multiplier(), 1.0);
        assert!((a.ratio(t0) - 1.0).abs() < 1e-9);
    }
}
