//! Injected trouble: 502/503/504 answers, 200 answers with a truncated JSON body, added latency,
//! totalHits that drift between pages, jobs that end FAILED, job results that expire early. Draws come from one ChaCha stream
//! seeded from the simulator's seed, so a sequential client sees the same faults every run.
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::SimConfig;

/// What happens to one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Answer with this 5xx status instead.
    pub server_error: Option<u16>,
    /// Cut the 200 body short.
    pub malformed: bool,
    /// Report a totalHits off by this much.
    pub hits_drift: i64,
    pub latency: Duration,
}

#[derive(Debug)]
pub struct Faults {
    p_5xx: f64,
    p_malformed: f64,
    p_drift: f64,
    p_job_failed: f64,
    p_job_expired: f64,
    latency_ms: Option<(u64, u64)>,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    pub fn new(cfg: &SimConfig) -> Self {
        Faults {
            p_5xx: cfg.fault_5xx,
            p_malformed: cfg.fault_malformed,
            p_drift: cfg.total_hits_drift,
            p_job_failed: cfg.fault_job_failed,
            p_job_expired: cfg.fault_job_expired,
            latency_ms: cfg.latency_ms,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xFA17_5EED)),
        }
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draws the fate of one API request.
    pub fn plan(&self) -> Plan {
        let mut r = self.rng();
        let server_error = (self.p_5xx > 0.0 && r.gen_bool(self.p_5xx))
            .then(|| [503, 502, 504][r.gen_range(0..3)]);
        let malformed = self.p_malformed > 0.0 && r.gen_bool(self.p_malformed);
        let hits_drift = if self.p_drift > 0.0 && r.gen_bool(self.p_drift) {
            let d = r.gen_range(1..=3);
            if r.gen_bool(0.5) {
                d
            } else {
                -d
            }
        } else {
            0
        };
        let latency = match self.latency_ms {
            Some((a, b)) if a.max(b) > 0 => Duration::from_millis(r.gen_range(a.min(b)..=a.max(b))),
            _ => Duration::ZERO,
        };
        Plan {
            server_error,
            malformed,
            hits_drift,
            latency,
        }
    }

    /// Whether a job that is about to complete fails instead.
    pub fn job_fails(&self) -> bool {
        self.p_job_failed > 0.0 && self.rng().gen_bool(self.p_job_failed)
    }

    /// Whether (and how) a job's results expire early.
    pub fn job_expires_early(&self) -> Option<EarlyExpiry> {
        let mut r = self.rng();
        (self.p_job_expired > 0.0 && r.gen_bool(self.p_job_expired)).then(|| {
            if r.gen_bool(0.5) {
                EarlyExpiry::AtCompletion
            } else {
                EarlyExpiry::AfterFirstFulfilled
            }
        })
    }
}

/// How an injected early expiry shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyExpiry {
    /// The job's first status after completion is already EXPIRED.
    AtCompletion,
    /// The job says FULFILLED once; from then on it is EXPIRED (results 404).
    AfterFirstFulfilled,
}

/// The malformed version of a body: cut in the middle.
pub fn truncate(body: &mut Vec<u8>) {
    let keep = (body.len() / 2).max(1).min(body.len().saturating_sub(1));
    body.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_close_to_the_settings_and_deterministic() {
        let cfg = SimConfig {
            fault_5xx: 0.1,
            fault_malformed: 0.05,
            latency_ms: Some((1, 3)),
            ..SimConfig::default()
        };
        let f = Faults::new(&cfg);
        let plans: Vec<Plan> = (0..10_000).map(|_| f.plan()).collect();
        let e = plans.iter().filter(|p| p.server_error.is_some()).count();
        let m = plans.iter().filter(|p| p.malformed).count();
        assert!((900..1100).contains(&e), "{e}");
        assert!((400..600).contains(&m), "{m}");
        assert!(plans
            .iter()
            .all(|p| (1..=3).contains(&(p.latency.as_millis() as u64))));
        let g = Faults::new(&cfg);
        let again: Vec<Plan> = (0..10_000).map(|_| g.plan()).collect();
        assert_eq!(plans, again);
    }

    #[test]
    fn truncated_bodies_do_not_parse() {
        let mut b = br#"{"totalHits":1,"conversations":[]}"#.to_vec();
        truncate(&mut b);
        assert!(serde_json::from_slice::<serde_json::Value>(&b).is_err());
    }
}
