//! Ground-truth counters served at `GET /__sim/stats` (requests and 429s by client and cause,
//! peak concurrency (all clients, and per client), requests per window, collateral 429s, bytes
//! served, faults). Requests to
//! `/__sim/*` are not counted. `collateral429s` are the background integration's requests refused
//! because the org's concurrency pool was full (its own rate window is its own business).
//!
//! `served` says how much of what the API sent was new: per dataset, the records served over
//! query pages and job results, and how many distinct records they were (conversations by id;
//! user presence and routing-status records by user, kind and start). A client that reads
//! overlapping blocks serves the same records twice. `inFlightMean` is the time-weighted mean of
//! analytics requests in flight (the org's concurrency slots in use) from the first admitted
//! request to the last one's end; `peakConcurrency` its peak.
use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::genesys::model::instant;

use crate::genesys::model::UserDetail;

use super::config::BACKGROUND_CLIENT_ID;
use super::limits::{Cause, LimitState};

#[derive(Debug, Default)]
struct Counters {
    requests: u64,
    by_client: BTreeMap<String, u64>,
    by_endpoint: BTreeMap<&'static str, u64>,
    limited: u64,
    limited_by_client: BTreeMap<String, u64>,
    limited_by_cause: BTreeMap<&'static str, u64>,
    bytes: u64,
    fault_5xx: u64,
    fault_malformed: u64,
    jobs_failed: u64,
    jobs_expired: u64,
    unauthorized: u64,
    collateral: u64,
    conversations: Served,
    users: Served,
}

/// Records served of one dataset and the distinct keys among them.
#[derive(Debug, Default)]
struct Served {
    served: u64,
    unique: HashSet<u128>,
}

impl Served {
    fn add(&mut self, key: u128) {
        self.served += 1;
        self.unique.insert(key);
    }
    fn snapshot(&self) -> Value {
        let unique = self.unique.len() as u64;
        json!({
            "served": self.served,
            "unique": unique,
            "servedPerUnique": if unique == 0 { 0.0 } else { self.served as f64 / unique as f64 },
        })
    }
}

/// The key of one presence or routing-status record: user, kind and start.
fn status_key(user: &str, kind: u8, start: &impl Hash) -> u128 {
    let mut h = DefaultHasher::new();
    (user, kind, start).hash(&mut h);
    let a = h.finish();
    (kind, start, user).hash(&mut h);
    (u128::from(a) << 64) | u128::from(h.finish())
}

/// The simulator's counters.
#[derive(Debug)]
pub struct Stats {
    counters: Mutex<Counters>,
    /// Wall-clock time of the first rate window's start (the simulator's start).
    started_at: DateTime<Utc>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(Utc::now())
    }
}

impl Stats {
    pub fn new(started_at: DateTime<Utc>) -> Self {
        Stats {
            counters: Mutex::new(Counters::default()),
            started_at,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request arrived at `endpoint` (client known once authenticated).
    pub fn request(&self, endpoint: &'static str, client: Option<&str>) {
        let mut c = self.lock();
        c.requests += 1;
        *c.by_endpoint.entry(endpoint).or_default() += 1;
        if let Some(id) = client {
            *c.by_client.entry(id.to_string()).or_default() += 1;
        }
    }

    /// An authenticated request's client (counted after the token check).
    pub fn client(&self, client: &str) {
        *self.lock().by_client.entry(client.to_string()).or_default() += 1;
    }

    pub fn rate_limited(&self, client: &str, cause: Cause) {
        let mut c = self.lock();
        c.limited += 1;
        *c.limited_by_client.entry(client.to_string()).or_default() += 1;
        *c.limited_by_cause.entry(cause.as_str()).or_default() += 1;
        if client == BACKGROUND_CLIENT_ID && super::background::is_collateral(cause) {
            c.collateral += 1;
        }
    }

    pub fn unauthorized(&self) {
        self.lock().unauthorized += 1;
    }
    pub fn bytes(&self, n: usize) {
        self.lock().bytes += n as u64;
    }
    pub fn fault_5xx(&self) {
        self.lock().fault_5xx += 1;
    }
    pub fn fault_malformed(&self) {
        self.lock().fault_malformed += 1;
    }
    pub fn job_failed(&self) {
        self.lock().jobs_failed += 1;
    }
    /// A status or results answer that found the job's results expired.
    pub fn job_expired(&self) {
        self.lock().jobs_expired += 1;
    }

    /// Conversations served (query pages, job results), by id.
    pub fn conversations_served(&self, ids: impl IntoIterator<Item = u128>) {
        let mut c = self.lock();
        for id in ids {
            c.conversations.add(id);
        }
    }

    /// User details served: each presence and routing-status record counts once.
    pub fn user_details_served<'a>(&self, details: impl IntoIterator<Item = &'a UserDetail>) {
        let mut c = self.lock();
        for d in details {
            for p in &d.primary_presence {
                c.users.add(status_key(&d.user_id, 0, &p.start_time));
            }
            for r in &d.routing_status {
                c.users.add(status_key(&d.user_id, 1, &r.start_time));
            }
        }
    }

    /// The `/__sim/stats` document.
    pub fn snapshot(&self, limits: &LimitState) -> Value {
        let c = self.lock();
        let bg_requests = c.by_client.get(BACKGROUND_CLIENT_ID).copied().unwrap_or(0);
        let bg_limited = c
            .limited_by_client
            .get(BACKGROUND_CLIENT_ID)
            .copied()
            .unwrap_or(0);
        let mut by_cause: BTreeMap<&str, u64> = [("rate", 0), ("concurrency", 0), ("jobs", 0)]
            .into_iter()
            .collect();
        for (k, v) in &c.limited_by_cause {
            by_cause.insert(k, *v);
        }
        let (in_flight_mean, in_flight_span) = limits.in_flight_mean();
        let windows: Vec<Value> = limits
            .history()
            .iter()
            .map(|(i, w)| {
                let offset = limits.window.as_secs_f64() * *i as f64;
                let start =
                    self.started_at + chrono::Duration::milliseconds((offset * 1000.0) as i64);
                json!({
                    "window": i,
                    "start": instant::format(&start),
                    "startOffsetSecs": offset,
                    "requests": w.requests,
                    "rateLimited": w.rate_limited,
                    "byClient": w.by_client,
                })
            })
            .collect();
        json!({
            "requests": {"total": c.requests, "byClient": c.by_client, "byEndpoint": c.by_endpoint},
            "rateLimited": {"total": c.limited, "byClient": c.limited_by_client, "byCause": by_cause},
            "unauthorized": c.unauthorized,
            "inFlight": limits.in_flight(),
            "peakConcurrency": limits.peak(),
            "peakConcurrencyByClient": limits.peak_by_client(),
            "inFlightMean": in_flight_mean,
            "inFlightSpanSecs": in_flight_span,
            "served": {"conversations": c.conversations.snapshot(), "users": c.users.snapshot()},
            "concurrencyBreaches": limits.breaches(),
            "windowSecs": limits.window.as_secs_f64(),
            "startedAt": instant::format(&self.started_at),
            "requestsPerWindow": windows,
            "collateral429s": c.collateral,
            "background": {"requests": bg_requests, "rateLimited": bg_limited},
            "bytesServed": c.bytes,
            "faults": {"5xx": c.fault_5xx, "malformed": c.fault_malformed, "jobsFailed": c.jobs_failed, "jobsExpired": c.jobs_expired},
        })
    }
}
