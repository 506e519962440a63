//! The org's other integration: a steady load under its own OAuth client that draws on the same
//! org concurrency pool as everyone else. Each of its requests that the pool refuses is
//! collateral damage caused by whoever filled the pool; the simulator counts them.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Timelike;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::BACKGROUND_CLIENT_ID;
use super::limits::Cause;
use super::server::SimState;

/// Whether the background integration runs at UTC hour `hour` of the simulated clock.
pub fn active_at(hours: Option<(u32, u32)>, hour: u32) -> bool {
    match hours {
        None => true,
        Some((a, b)) if a <= b => a <= hour && hour < b,
        Some((a, b)) => hour >= a || hour < b,
    }
}

/// Runs the background load on the current actix system until it stops.
pub fn spawn(st: Arc<SimState>) {
    let rps = st.cfg.bg_rps;
    if rps <= 0.0 {
        return;
    }
    actix_rt::spawn(async move {
        let period = Duration::from_secs_f64(1.0 / rps);
        let mut ticker = actix_rt::time::interval(period);
        let active = Arc::new(AtomicU32::new(0));
        let mut rng = ChaCha8Rng::seed_from_u64(st.cfg.seed ^ 0xB6);
        loop {
            ticker.tick().await;
            if !active_at(st.cfg.bg_hours, st.clock.now().hour()) {
                continue;
            }
            if active.load(Ordering::Relaxed) >= st.cfg.bg_concurrency.max(1) {
                continue;
            }
            st.stats.request("background", Some(BACKGROUND_CLIENT_ID));
            match st.limits.admit(BACKGROUND_CLIENT_ID, Instant::now()) {
                Ok(in_flight) => {
                    let service = match st.cfg.latency_ms {
                        Some((a, b)) if a.max(b) > 0 => rng.gen_range(a.min(b)..=a.max(b)),
                        _ => rng.gen_range(100..=500),
                    };
                    active.fetch_add(1, Ordering::Relaxed);
                    let active = active.clone();
                    actix_rt::spawn(async move {
                        actix_rt::time::sleep(Duration::from_millis(service)).await;
                        drop(in_flight);
                        active.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(r) => st.stats.rate_limited(BACKGROUND_CLIENT_ID, r.cause),
            }
        }
    });
}

/// Whether a refusal of the background client counts as collateral damage.
pub fn is_collateral(cause: Cause) -> bool {
    cause == Cause::Concurrency
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_hours_wrap_around_midnight() {
        assert!(active_at(None, 3));
        assert!(active_at(Some((8, 17)), 8));
        assert!(!active_at(Some((8, 17)), 17));
        assert!(active_at(Some((22, 6)), 23));
        assert!(active_at(Some((22, 6)), 5));
        assert!(!active_at(Some((22, 6)), 12));
    }
}
