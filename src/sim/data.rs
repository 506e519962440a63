//! The simulated org's history, generated deterministically from the seed and lazily per hour.
//!
//! Each hour's conversations are drawn from a ChaCha RNG seeded with `(seed, hour index)`, so any
//! hour can be rebuilt on its own and a year at 20,000 conversations a day never sits in memory:
//! hours are kept as small *skeletons* (id, start, phase durations) in a bounded LRU, and a full
//! [`Conversation`] is built from its skeleton only when served. The final JSON of finished
//! conversations is cached (bounded) so paging is mostly memcpy.
//!
//! The simulated clock decides what a reader sees: [`Dataset::view_at`] cuts a conversation at
//! `now` (no `conversationEnd`, open segments without `segmentEnd`/`disconnectType`, only the
//! metrics emitted so far). User presence and routing-status timelines are continuous per user
//! and stored per UTC day; a status spanning midnight is stored in every day it touches, which is
//! what makes user-detail pages come back short (see `shared/genesys-api.md` §4.1).
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use lru::LruCache;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::SimConfig;
use super::pipeline::{self, PipelineError, PipelineRequest, PipelineRun};
use crate::genesys::model::{
    Conversation, Flow, Interval, Participant, PresenceRecord, RoutingStatusRecord, Segment,
    Session, SessionMetric, UserDetail,
};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// No conversation lasts longer than this; overlap scans look back this far.
pub const MAX_CONVERSATION_MS: i64 = 36 * HOUR_MS;

/// Relative conversation volume per UTC hour of day (the daytime curve).
const DAY_CURVE: [u32; 24] = [
    1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 11, 10, 11, 12, 11, 10, 8, 6, 4, 3, 2, 1, 1,
];
const QUEUES: usize = 12;
const WRAPUP_CODES: usize = 10;
pub const DIVISION_ID: &str = "5f2c6a1e-0d43-4b7e-9a51-3c0e1d2b7f10";
const ORG_PRESENCE_IDS: [(&str, &str); 7] = [
    ("AVAILABLE", "6a3af858-942f-489d-9700-5f9bcdcdae9b"),
    ("ON_QUEUE", "e08eaf1b-ee47-4fa9-a231-1200e284798f"),
    ("BREAK", "2b2b7b0b-1c5f-4e2e-8d0f-36b7a5c2c8c1"),
    ("MEAL", "3fd96123-badb-4f69-bc03-1b1ccc6d8014"),
    ("MEETING", "3b894b9d-ba2b-4e0b-ab6b-9b2c8f1e4c9a"),
    ("OFFLINE", "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5"),
    ("TRAINING", "7f7c5f2a-2f4e-4b8a-a0b6-1b9d6b6f5e3d"),
];

/// Media of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Voice,
    Chat,
    Email,
    Message,
    Callback,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Voice => "voice",
            Media::Chat => "chat",
            Media::Email => "email",
            Media::Message => "message",
            Media::Callback => "callback",
        }
    }
}

/// The cheap, numeric plan of one conversation; the full record is built from it on demand.
#[derive(Debug, Clone)]
pub struct Skeleton {
    pub id: u128,
    pub start_ms: i64,
    pub end_ms: i64,
    pub media: Media,
    pub outbound: bool,
    pub abandoned: bool,
    pub queue: u8,
    pub wrapup_code: u8,
    pub agent: u32,
    /// Phase lengths (ms): ivr, queue wait, alert, talk before hold, hold, talk after, wrap-up.
    pub ivr: u32,
    pub wait: u32,
    pub alert: u32,
    pub talk1: u32,
    pub hold: u32,
    pub talk2: u32,
    pub wrapup: u32,
    pub detail_seed: u64,
    /// How many pipeline runs revised it (see [`super::pipeline`]); 0 = as first generated.
    pub revision: u32,
}

impl Skeleton {
    pub fn conversation_id(&self) -> String {
        uuid(self.id)
    }
    pub fn start(&self) -> DateTime<Utc> {
        ms(self.start_ms)
    }
    pub fn end(&self) -> DateTime<Utc> {
        ms(self.end_ms)
    }
}

/// Milliseconds since the epoch to an instant.
pub fn ms(t: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn uuid(v: u128) -> String {
    let h = format!("{v:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The id bits of a conversation id written by [`uuid`].
fn parse_uuid(s: &str) -> Option<u128> {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    if h.len() != 32 {
        return None;
    }
    Some(u128::from_str_radix(&h, 16).ok()? & ID_MASK)
}

/// [`uuid`] writes the version (hex digit 12) and variant (digit 16) over the random bits.
const ID_MASK: u128 = !((0xF << ((31 - 12) * 4)) | (0xF << ((31 - 16) * 4)));

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 of the pair: independent streams for (seed, hour), (seed, user, day), ...
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_for(seed: u64, kind: u64, a: i64, b: i64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(mix(mix(seed, kind), a as u64), b as u64))
}

/// Log-normal-ish duration: `median * e^(sigma*z)` clamped to `[lo, hi]`.
fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64, lo: f64, hi: f64) -> u32 {
    let u1: f64 = rng.gen_range(1e-9..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (median * (sigma * z).exp()).clamp(lo, hi) as u32
}

/// An hour of skeletons plus the lazily filled cache of their final JSON.
pub struct Hour {
    pub index: i64,
    pub skeletons: Vec<Skeleton>,
}

/// The final JSON of an hour's conversations, filled as they are served.
type HourJson = Vec<OnceLock<Arc<[u8]>>>;

/// The deterministic dataset of one simulator. Cheap to clone (shared caches).
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    per_day: u32,
    history_start_ms: i64,
    users: Vec<User>,
    queue_ids: Vec<String>,
    wrapup_ids: Vec<String>,
    hours: Mutex<LruCache<i64, Arc<Hour>>>,
    json: Mutex<LruCache<i64, Arc<HourJson>>>,
    user_days: Mutex<LruCache<i64, Arc<Vec<UserDay>>>>,
    pipeline: Mutex<PipelineState>,
}

/// The pipeline runs so far (applied to every hour and user day built) and, with
/// `--pipeline-nightly`, the last simulated midnight it ran at.
struct PipelineState {
    runs: Vec<PipelineRun>,
    nightly_after_ms: Option<i64>,
}

/// What `POST /__sim/pipeline` answers: the run and what it did to conversations.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineReport {
    pub run: u32,
    pub at: DateTime<Utc>,
    /// Conversations that ended at or before this instant were candidates.
    pub cutoff: DateTime<Utc>,
    pub conversations_changed: usize,
    pub conversations_deleted: usize,
}

/// A simulated agent.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Minutes after midnight UTC the shift normally starts.
    shift_start_min: i64,
    off_weekday: i64,
}

impl Dataset {
    /// Builds the dataset of `cfg`; history starts at the UTC midnight `cfg.days` before the
    /// simulated now (`cfg.now`, else the real clock at this call).
    pub fn new(cfg: &SimConfig) -> Self {
        let now = cfg.now.unwrap_or_else(Utc::now);
        let start = now.timestamp_millis() - cfg.days as i64 * DAY_MS;
        let history_start_ms = start.div_euclid(DAY_MS) * DAY_MS;
        let seed = cfg.seed;
        let mut users: Vec<User> = (0..cfg.users.max(1) as i64)
            .map(|i| {
                let mut r = rng_for(seed, 1, i, 0);
                let late = r.gen_bool(0.2);
                let shift_start_min = if late {
                    r.gen_range(14 * 60..20 * 60)
                } else {
                    r.gen_range(6 * 60..10 * 60)
                };
                User {
                    id: uuid(r.gen()),
                    name: format!(
                        "{} {}",
                        FIRST[r.gen_range(0..FIRST.len())],
                        LAST[r.gen_range(0..LAST.len())]
                    ),
                    shift_start_min,
                    off_weekday: i % 7,
                }
            })
            .collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        let mut r = rng_for(seed, 2, 0, 0);
        let queue_ids = (0..QUEUES).map(|_| uuid(r.gen())).collect();
        let wrapup_ids = (0..WRAPUP_CODES).map(|_| uuid(r.gen())).collect();
        let per_hour = (cfg.per_day as usize / 24).max(1);
        let json_hours = (30_000 / per_hour).clamp(4, 2000);
        let cap = |n: usize| NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
        Dataset {
            inner: Arc::new(Inner {
                seed,
                per_day: cfg.per_day,
                history_start_ms,
                users,
                queue_ids,
                wrapup_ids,
                hours: Mutex::new(LruCache::new(cap(24 * 40))),
                json: Mutex::new(LruCache::new(cap(json_hours))),
                user_days: Mutex::new(LruCache::new(cap(40))),
                pipeline: Mutex::new(PipelineState {
                    runs: Vec::new(),
                    nightly_after_ms: cfg.pipeline_nightly.then(|| now.timestamp_millis()),
                }),
            }),
        }
    }

    pub fn history_start(&self) -> DateTime<Utc> {
        ms(self.inner.history_start_ms)
    }

    pub fn users(&self) -> &[User] {
        &self.inner.users
    }

    pub fn queue_ids(&self) -> &[String] {
        &self.inner.queue_ids
    }

    pub fn wrapup_ids(&self) -> &[String] {
        &self.inner.wrapup_ids
    }

    /// Conversations of the hour starting at `index * 1h`, sorted by start.
    pub fn hour(&self, index: i64) -> Arc<Hour> {
        if let Some(h) = lock(&self.inner.hours).get(&index) {
            return h.clone();
        }
        let h = Arc::new(self.generate_hour(index));
        lock(&self.inner.hours).put(index, h.clone());
        h
    }

    fn hour_count(&self, index: i64) -> usize {
        let total: u64 = DAY_CURVE.iter().map(|&w| w as u64).sum();
        let hod = index.rem_euclid(24) as usize;
        let cum = |k: usize| -> u64 {
            DAY_CURVE[..k].iter().map(|&w| w as u64).sum::<u64>() * self.inner.per_day as u64
                / total
        };
        (cum(hod + 1) - cum(hod)) as usize
    }

    fn generate_hour(&self, index: i64) -> Hour {
        let mut hour = self.generate_raw_hour(index);
        let runs = lock(&self.inner.pipeline).runs.clone();
        pipeline::apply(self.inner.seed, &runs, &mut hour.skeletons);
        hour
    }

    /// The hour as first generated, before any pipeline run.
    fn generate_raw_hour(&self, index: i64) -> Hour {
        let hour_start = index * HOUR_MS;
        if hour_start < self.inner.history_start_ms {
            return Hour {
                index,
                skeletons: Vec::new(),
            };
        }
        let n = self.hour_count(index);
        let mut rng = rng_for(self.inner.seed, 3, index, 0);
        let mut starts: Vec<i64> = (0..n)
            .map(|_| hour_start + rng.gen_range(0..HOUR_MS))
            .collect();
        starts.sort_unstable();
        let skeletons = starts
            .into_iter()
            .map(|start| self.plan(&mut rng, start))
            .collect();
        Hour { index, skeletons }
    }

    fn plan(&self, rng: &mut ChaCha8Rng, start_ms: i64) -> Skeleton {
        let id: u128 = rng.gen();
        let media = match rng.gen_range(0..100) {
            0..=59 => Media::Voice,
            60..=74 => Media::Chat,
            75..=84 => Media::Email,
            85..=94 => Media::Message,
            _ => Media::Callback,
        };
        let outbound = media == Media::Voice && rng.gen_bool(0.12);
        let long_tail = rng.gen_bool(0.01);
        let (ivr, wait) = match media {
            Media::Voice if !outbound => (
                lognormal(rng, 35_000.0, 0.5, 5_000.0, 300_000.0),
                lognormal(rng, 40_000.0, 1.0, 2_000.0, 1_800_000.0),
            ),
            Media::Voice => (0, 0),
            Media::Chat => (0, lognormal(rng, 30_000.0, 1.0, 2_000.0, 1_800_000.0)),
            Media::Message => (
                0,
                lognormal(rng, 120_000.0, 1.5, 5_000.0, 8.0 * 3_600_000.0),
            ),
            Media::Email => (
                0,
                lognormal(rng, 3_600_000.0, 1.2, 60_000.0, 20.0 * 3_600_000.0),
            ),
            Media::Callback => (
                0,
                lognormal(rng, 600_000.0, 1.0, 30_000.0, 6.0 * 3_600_000.0),
            ),
        };
        let abandoned = !outbound && media != Media::Email && rng.gen_bool(0.08);
        let alert = if abandoned {
            0
        } else {
            rng.gen_range(2_000..15_000)
        };
        let talk_median = match media {
            Media::Voice | Media::Callback => 240_000.0,
            Media::Chat => 480_000.0,
            Media::Message => 600_000.0,
            Media::Email => 300_000.0,
        };
        let mut talk = if abandoned {
            0
        } else {
            lognormal(rng, talk_median, 0.7, 10_000.0, 2.0 * 3_600_000.0)
        };
        if long_tail && !abandoned {
            talk = rng.gen_range(2 * 3_600_000..8 * 3_600_000);
        }
        let hold =
            if !abandoned && matches!(media, Media::Voice | Media::Callback) && rng.gen_bool(0.2) {
                rng.gen_range(15_000..240_000)
            } else {
                0
            };
        let (talk1, talk2) = if hold > 0 {
            let t1 = talk / 2;
            (t1, talk - t1)
        } else {
            (talk, 0)
        };
        let wrapup = if abandoned {
            0
        } else {
            rng.gen_range(5_000..120_000)
        };
        let queue = rng.gen_range(0..QUEUES as u8);
        let wrapup_code = rng.gen_range(0..WRAPUP_CODES as u8);
        let agent = rng.gen_range(0..self.inner.users.len() as u32);
        let detail_seed: u64 = rng.gen();
        let total = ivr as i64
            + wait as i64
            + alert as i64
            + talk1 as i64
            + hold as i64
            + talk2 as i64
            + wrapup as i64;
        let total = if outbound {
            total + 10_000 // dialing
        } else {
            total
        };
        Skeleton {
            id,
            start_ms,
            end_ms: start_ms + total.clamp(1_000, MAX_CONVERSATION_MS),
            media,
            outbound,
            abandoned,
            queue,
            wrapup_code,
            agent,
            ivr,
            wait,
            alert,
            talk1,
            hold,
            talk2,
            wrapup,
            detail_seed,
            revision: 0,
        }
    }

    /// Every conversation (final version) whose conversationStart lies in `interval`, by start.
    pub fn conversations_started_in(&self, interval: Interval) -> Vec<Conversation> {
        let mut out = Vec::new();
        self.for_each_started_in(
            interval.start.timestamp_millis(),
            interval.end.timestamp_millis(),
            |_, s| out.push(self.build(s, false)),
        );
        out
    }

    /// Calls `f(hour, skeleton)` for every conversation started in `[from, to)` (ms), by start.
    pub fn for_each_started_in(
        &self,
        from: i64,
        to: i64,
        mut f: impl FnMut(&Arc<Hour>, &Skeleton),
    ) {
        let first = from.div_euclid(HOUR_MS);
        let last = (to - 1).div_euclid(HOUR_MS);
        for h in first..=last {
            let hour = self.hour(h);
            for s in &hour.skeletons {
                if s.start_ms >= from && s.start_ms < to {
                    f(&hour, s);
                }
            }
        }
    }

    /// Finds a conversation's skeleton by id and start (the id alone would need a scan).
    pub fn find(&self, id: &str, start: DateTime<Utc>) -> Option<Skeleton> {
        let t = start.timestamp_millis();
        let hour = self.hour(t.div_euclid(HOUR_MS));
        hour.skeletons
            .iter()
            .find(|s| s.start_ms == t && s.conversation_id() == id)
            .cloned()
    }

    /// Finds conversations by id among those started up to `now_ms`, newest hours first (the
    /// ones clients look up again are the recent, unfinished ones). Returns the skeletons found,
    /// in the order of `ids`; unknown ids are left out.
    pub fn find_ids(&self, ids: &[String], now_ms: i64) -> Vec<Skeleton> {
        let wanted: Vec<Option<u128>> = ids.iter().map(|i| parse_uuid(i)).collect();
        let mut found: Vec<Option<Skeleton>> = vec![None; ids.len()];
        let mut missing = wanted.iter().filter(|w| w.is_some()).count();
        let first = self.inner.history_start_ms.div_euclid(HOUR_MS);
        let mut h = now_ms.div_euclid(HOUR_MS);
        while missing > 0 && h >= first {
            let hour = self.hour(h);
            for s in &hour.skeletons {
                if s.start_ms > now_ms {
                    continue;
                }
                for (i, w) in wanted.iter().enumerate() {
                    if *w == Some(s.id & ID_MASK) && found[i].is_none() {
                        found[i] = Some(s.clone());
                        missing -= 1;
                    }
                }
            }
            h -= 1;
        }
        found.into_iter().flatten().collect()
    }

    /// The conversation as a reader sees it at `now`: `None` if it has not started; otherwise cut
    /// at `now` (see the module doc).
    pub fn view_at(&self, c: &Conversation, now: DateTime<Utc>) -> Option<Conversation> {
        view_at(c, now)
    }

    /// Full (final) record of a skeleton; `with_attributes` for job results.
    pub fn build(&self, s: &Skeleton, with_attributes: bool) -> Conversation {
        build_conversation(&self.inner, s, with_attributes)
    }

    /// JSON (query flavour, no attributes) of `s` as seen at `now`. Finished conversations come
    /// from a bounded cache.
    pub fn query_json(&self, hour: &Hour, idx: usize, now_ms: i64) -> Arc<[u8]> {
        let Some(s) = hour.skeletons.get(idx) else {
            return Arc::from(&b"{}"[..]);
        };
        let json =
            |c: &Conversation| -> Arc<[u8]> { serde_json::to_vec(c).unwrap_or_default().into() };
        if s.end_ms > now_ms {
            let c = self.build(s, false);
            return json(&view_at(&c, ms(now_ms)).unwrap_or(c));
        }
        let slots = {
            let mut cache = lock(&self.inner.json);
            match cache.get(&hour.index) {
                Some(v) => v.clone(),
                None => {
                    let v: Arc<HourJson> =
                        Arc::new((0..hour.skeletons.len()).map(|_| OnceLock::new()).collect());
                    cache.put(hour.index, v.clone());
                    v
                }
            }
        };
        match slots.get(idx) {
            Some(slot) => slot.get_or_init(|| json(&self.build(s, false))).clone(),
            None => json(&self.build(s, false)),
        }
    }

    /// Millisecond of the first instant with data (UTC midnight `days` before the start now).
    pub fn history_start_ms(&self) -> i64 {
        self.inner.history_start_ms
    }

    // -----------------------------------------------------------------------------------------
    // Users
    // -----------------------------------------------------------------------------------------

    /// The stored user documents of UTC day `day` (days since the epoch): every user's presence
    /// and routing records touching that day, final versions (ends may lie in the future).
    pub fn user_day(&self, day: i64) -> Arc<Vec<UserDay>> {
        if let Some(d) = lock(&self.inner.user_days).get(&day) {
            return d.clone();
        }
        let d = Arc::new(self.generate_user_day(day));
        lock(&self.inner.user_days).put(day, d.clone());
        d
    }

    fn shift(&self, u: usize, day: i64) -> Option<(i64, i64)> {
        let user = &self.inner.users[u];
        if day * DAY_MS < self.inner.history_start_ms - 4 * DAY_MS {
            return None;
        }
        let wd = day.rem_euclid(7);
        if wd == user.off_weekday || wd == (user.off_weekday + 1) % 7 {
            return None;
        }
        let mut r = rng_for(self.inner.seed, 4, u as i64, day);
        let start = day * DAY_MS + user.shift_start_min * 60_000 + r.gen_range(-30..=30) * 60_000;
        let len = r.gen_range(480..=540) * 60_000;
        Some((start, start + len))
    }

    fn generate_user_day(&self, day: i64) -> Vec<UserDay> {
        let (d0, d1) = (day * DAY_MS, (day + 1) * DAY_MS);
        let runs = lock(&self.inner.pipeline).runs.clone();
        let seed = self.inner.seed;
        (0..self.inner.users.len())
            .map(|u| {
                let (presence, routing) = self.timeline(u, day - 3, day + 3);
                let user_id = self.inner.users[u].id.as_str();
                let keep = |r: &Rec, kind: u8| {
                    r.start < d1
                        && r.end.is_none_or(|e| e > d0)
                        && !pipeline::user_record_deleted(
                            seed, &runs, user_id, kind, r.start, r.end,
                        )
                };
                UserDay {
                    user: u as u32,
                    day,
                    presence: presence.into_iter().filter(|r| keep(r, 0)).collect(),
                    routing: routing.into_iter().filter(|r| keep(r, 1)).collect(),
                }
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // The analytics pipeline
    // -----------------------------------------------------------------------------------------

    /// Runs the pipeline once at `now` (see [`super::pipeline`]); every read path sees its
    /// result from now on. `count`: report how many conversations it changed and deleted (a
    /// scan of the history up to the cutoff).
    pub fn run_pipeline(
        &self,
        request: PipelineRequest,
        now: DateTime<Utc>,
        count: bool,
    ) -> Result<PipelineReport, PipelineError> {
        let runs = {
            let mut p = lock(&self.inner.pipeline);
            let run = request.at(p.runs.len() as u32 + 1, now)?;
            p.runs.push(run);
            p.runs.clone()
        };
        self.forget_built_data();
        let Some(run) = runs.last().copied() else {
            return Err(PipelineError::MinAge(request.min_age_hours));
        };
        let (mut changed, mut deleted) = (0, 0);
        if count && run.cutoff_ms > self.inner.history_start_ms {
            let first = self.inner.history_start_ms.div_euclid(HOUR_MS);
            let last = run.cutoff_ms.div_euclid(HOUR_MS);
            for h in first..=last {
                let mut hour = self.generate_raw_hour(h);
                let (c, d) = pipeline::apply(self.inner.seed, &runs, &mut hour.skeletons);
                changed += c;
                deleted += d;
            }
        }
        log::info!(
            "sim: pipeline run {} at {now}: conversations ended by {} revised/deleted{}",
            run.number,
            ms(run.cutoff_ms),
            if count {
                format!(": {changed} changed, {deleted} deleted")
            } else {
                String::new()
            }
        );
        Ok(PipelineReport {
            run: run.number,
            at: now,
            cutoff: ms(run.cutoff_ms),
            conversations_changed: changed,
            conversations_deleted: deleted,
        })
    }

    /// With `--pipeline-nightly`: runs the pipeline (default shares) once for every simulated
    /// midnight passed since the last call. Cheap when none was passed.
    pub fn run_nightly(&self, now: DateTime<Utc>) {
        let due: Vec<i64> = {
            let mut p = lock(&self.inner.pipeline);
            let Some(after) = p.nightly_after_ms else {
                return;
            };
            let due: Vec<i64> = pipeline::midnights(after, now.timestamp_millis()).collect();
            if let Some(last) = due.last() {
                p.nightly_after_ms = Some(*last);
            }
            due
        };
        for midnight in due {
            let _ = self.run_pipeline(PipelineRequest::default(), ms(midnight), false);
        }
    }

    /// Drops the cached hours, JSON and user days so they are rebuilt with the pipeline runs.
    fn forget_built_data(&self) {
        lock(&self.inner.hours).clear();
        lock(&self.inner.json).clear();
        lock(&self.inner.user_days).clear();
    }

    /// Continuous presence and routing timelines of user `u` over the shifts of days
    /// `[from_day, to_day]` (records before the first shift are left out).
    fn timeline(&self, u: usize, from_day: i64, to_day: i64) -> (Vec<Rec>, Vec<Rec>) {
        let mut presence: Vec<Rec> = Vec::new();
        let mut routing: Vec<Rec> = Vec::new();
        for day in from_day..=to_day {
            let Some((s, e)) = self.shift(u, day) else {
                continue;
            };
            // Close the OFFLINE record left open by the previous shift (OFF_QUEUE runs on until the
            // first block on queue).
            if let Some(last) = presence.last_mut() {
                last.end = Some(s);
            }
            let mut r = rng_for(self.inner.seed, 5, u as i64, day);
            let mut t = s;
            let push_p = |presence: &mut Vec<Rec>, kind: u8, from: i64, to: Option<i64>| {
                presence.push(Rec {
                    start: from,
                    end: to,
                    kind,
                })
            };
            let avail = r.gen_range(30_000..300_000);
            push_p(&mut presence, P_AVAILABLE, t, Some(t + avail));
            t += avail;
            // Work blocks on queue separated by a break, a meal and maybe a meeting.
            let mut pauses = vec![
                (P_BREAK, 15 * 60_000),
                (P_MEAL, 30 * 60_000),
                (P_BREAK, 15 * 60_000),
            ];
            if r.gen_bool(0.25) {
                pauses.insert(1, (P_MEETING, r.gen_range(30..=60) * 60_000));
            } else if r.gen_bool(0.1) {
                pauses.insert(1, (P_TRAINING, 60 * 60_000));
            }
            let end_on_queue = e - r.gen_range(60_000..300_000);
            let pause_total: i64 = pauses.iter().map(|p| p.1).sum();
            let block = ((end_on_queue - t - pause_total) / (pauses.len() as i64 + 1)).max(60_000);
            for i in 0..=pauses.len() {
                let block_end = if i == pauses.len() {
                    end_on_queue.max(t + 60_000)
                } else {
                    t + block
                };
                push_p(&mut presence, P_ON_QUEUE, t, Some(block_end));
                // Routing: OFF_QUEUE until now, then IDLE / INTERACTING / NOT_RESPONDING.
                if let Some(last) = routing.last_mut() {
                    if last.end.is_none() {
                        last.end = Some(t);
                    }
                }
                let mut rt = t;
                while rt < block_end {
                    let (kind, len) = match r.gen_range(0..100) {
                        0..=44 => (R_IDLE, r.gen_range(5_000..240_000)),
                        45..=94 => (R_INTERACTING, r.gen_range(60_000..900_000)),
                        _ => (R_NOT_RESPONDING, r.gen_range(10_000..30_000)),
                    };
                    let until = (rt + len).min(block_end);
                    routing.push(Rec {
                        start: rt,
                        end: Some(until),
                        kind,
                    });
                    rt = until;
                }
                routing.push(Rec {
                    start: block_end,
                    end: None,
                    kind: R_OFF_QUEUE,
                });
                t = block_end;
                if i < pauses.len() {
                    let (kind, len) = pauses[i];
                    push_p(&mut presence, kind, t, Some(t + len));
                    t += len;
                }
            }
            let end = e.max(t + 1_000);
            push_p(&mut presence, P_AVAILABLE, t, Some(end));
            push_p(&mut presence, P_OFFLINE, end, None);
        }
        (presence, routing)
    }

    /// Users' records overlapping `interval` as seen at `now`, one merged entry per user (by
    /// userId), duplicates removed: the ground truth of a user-details scan.
    pub fn user_details(&self, interval: Interval, now: DateTime<Utc>) -> Vec<UserDetail> {
        let docs = self.user_docs(interval, now, &|_| true);
        let mut merged: BTreeMap<u32, UserDetail> = BTreeMap::new();
        for d in docs {
            let e = merged.entry(d.user).or_insert_with(|| UserDetail {
                user_id: self.inner.users[d.user as usize].id.clone(),
                primary_presence: Vec::new(),
                routing_status: Vec::new(),
            });
            merge_into(e, d.detail);
        }
        merged.into_values().collect()
    }

    /// Stored documents `(user, day)` with records overlapping `interval` at `now`, ordered by
    /// userId then day. `keep_user` filters by user index.
    pub fn user_docs(
        &self,
        interval: Interval,
        now: DateTime<Utc>,
        keep_user: &dyn Fn(&User) -> bool,
    ) -> Vec<UserDoc> {
        let (a, b) = (
            interval.start.timestamp_millis(),
            interval.end.timestamp_millis(),
        );
        let now_ms = now.timestamp_millis();
        let first_day = a
            .div_euclid(DAY_MS)
            .max(self.inner.history_start_ms.div_euclid(DAY_MS) - 4);
        let last_day = ((b - 1).min(now_ms)).div_euclid(DAY_MS);
        let days: Vec<Arc<Vec<UserDay>>> =
            (first_day..=last_day).map(|d| self.user_day(d)).collect();
        let mut out = Vec::new();
        for u in 0..self.inner.users.len() {
            let user = &self.inner.users[u];
            if !keep_user(user) {
                continue;
            }
            for day in &days {
                let ud = &day[u];
                let presence: Vec<PresenceRecord> = ud
                    .presence
                    .iter()
                    .filter_map(|r| r.cut(a, b, now_ms))
                    .map(|(s, e, k)| PresenceRecord {
                        start_time: ms(s),
                        end_time: e.map(ms),
                        system_presence: Some(presence_name(k).to_string()),
                        organization_presence_id: Some(org_presence_id(k).to_string()),
                    })
                    .collect();
                let routing: Vec<RoutingStatusRecord> = ud
                    .routing
                    .iter()
                    .filter_map(|r| r.cut(a, b, now_ms))
                    .map(|(s, e, k)| RoutingStatusRecord {
                        start_time: ms(s),
                        end_time: e.map(ms),
                        routing_status: Some(routing_name(k).to_string()),
                    })
                    .collect();
                if presence.is_empty() && routing.is_empty() {
                    continue;
                }
                out.push(UserDoc {
                    user: u as u32,
                    day: ud.day,
                    detail: UserDetail {
                        user_id: user.id.clone(),
                        primary_presence: presence,
                        routing_status: routing,
                    },
                });
            }
        }
        out
    }
}

/// Merges `add` into `into` (same user), dropping records already present (same startTime).
pub fn merge_into(into: &mut UserDetail, add: UserDetail) {
    for p in add.primary_presence {
        if !into
            .primary_presence
            .iter()
            .any(|x| x.start_time == p.start_time)
        {
            into.primary_presence.push(p);
        }
    }
    for r in add.routing_status {
        if !into
            .routing_status
            .iter()
            .any(|x| x.start_time == r.start_time)
        {
            into.routing_status.push(r);
        }
    }
    into.primary_presence.sort_by_key(|p| p.start_time);
    into.routing_status.sort_by_key(|r| r.start_time);
}

/// One user's stored records for one UTC day (day-spanning records are in every day touched).
pub struct UserDay {
    pub user: u32,
    pub day: i64,
    presence: Vec<Rec>,
    routing: Vec<Rec>,
}

/// A stored user document as returned by a scan (already cut at `now`).
pub struct UserDoc {
    pub user: u32,
    pub day: i64,
    pub detail: UserDetail,
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    start: i64,
    end: Option<i64>,
    kind: u8,
}

impl Rec {
    /// The record as seen at `now` if it overlaps `[a, b)`: `(start, end, kind)`, end absent
    /// while current.
    fn cut(&self, a: i64, b: i64, now: i64) -> Option<(i64, Option<i64>, u8)> {
        if self.start > now || self.start >= b {
            return None;
        }
        let end = self.end.filter(|&e| e <= now);
        let active_until = end.unwrap_or(i64::MAX);
        if active_until <= a {
            return None;
        }
        Some((self.start, end, self.kind))
    }
}

const P_AVAILABLE: u8 = 0;
const P_ON_QUEUE: u8 = 1;
const P_BREAK: u8 = 2;
const P_MEAL: u8 = 3;
const P_MEETING: u8 = 4;
const P_OFFLINE: u8 = 5;
const P_TRAINING: u8 = 6;
const R_OFF_QUEUE: u8 = 0;
const R_IDLE: u8 = 1;
const R_INTERACTING: u8 = 2;
const R_NOT_RESPONDING: u8 = 3;

fn presence_name(k: u8) -> &'static str {
    ORG_PRESENCE_IDS[k as usize].0
}
fn org_presence_id(k: u8) -> &'static str {
    ORG_PRESENCE_IDS[k as usize].1
}
fn routing_name(k: u8) -> &'static str {
    match k {
        R_OFF_QUEUE => "OFF_QUEUE",
        R_IDLE => "IDLE",
        R_INTERACTING => "INTERACTING",
        _ => "NOT_RESPONDING",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const FIRST: [&str; 16] = [
    "Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kira", "Liam",
    "Maya", "Noah", "Olga", "Priya",
];
const LAST: [&str; 16] = [
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hale", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nagy", "Okafor", "Patel",
];

// ---------------------------------------------------------------------------------------------
// Building a conversation record from its skeleton
// ---------------------------------------------------------------------------------------------

pub(super) fn seg(start: i64, end: i64, kind: &str) -> Segment {
    Segment {
        segment_start: ms(start),
        segment_end: Some(ms(end)),
        segment_type: Some(kind.to_string()),
        queue_id: None,
        group_id: None,
        wrap_up_code: None,
        wrap_up_note: None,
        disconnect_type: None,
        error_code: None,
        conference: None,
        requested_routing_skill_ids: Vec::new(),
        sip_response_codes: Vec::new(),
        q850_response_codes: Vec::new(),
    }
}

fn metric(name: &str, value: i64, at: i64) -> SessionMetric {
    SessionMetric {
        name: name.to_string(),
        value,
        emit_date: ms(at),
    }
}

fn session(id: String, media: Media, direction: &str) -> Session {
    Session {
        session_id: id,
        media_type: Some(media.as_str().to_string()),
        direction: Some(direction.to_string()),
        ani: None,
        dnis: None,
        address_from: None,
        address_to: None,
        edge_id: None,
        provider: None,
        remote: None,
        recording: None,
        requested_routings: Vec::new(),
        used_routing: None,
        selected_agent_id: None,
        peer_id: None,
        flow_in_type: None,
        flow_out_type: None,
        acw_skipped: None,
        metrics: Vec::new(),
        segments: Vec::new(),
        flow: None,
    }
}

fn participant(id: String, purpose: &str, name: Option<String>) -> Participant {
    Participant {
        participant_id: id,
        participant_name: name,
        purpose: Some(purpose.to_string()),
        user_id: None,
        team_id: None,
        external_contact_id: None,
        flagged_reason: None,
        attributes: None,
        sessions: Vec::new(),
    }
}

fn build_conversation(inner: &Inner, s: &Skeleton, with_attributes: bool) -> Conversation {
    let mut c = build_original(inner, s, with_attributes);
    if s.revision > 0 {
        let code = &inner.wrapup_ids[s.wrapup_code as usize];
        pipeline::revise(&mut c, s.revision, code);
    }
    c
}

/// The conversation as first generated (before any pipeline revision).
fn build_original(inner: &Inner, s: &Skeleton, with_attributes: bool) -> Conversation {
    let mut r = ChaCha8Rng::seed_from_u64(s.detail_seed);
    let mut id = || uuid(r.gen());
    let (cust_pid, cust_sid, ivr_pid, ivr_sid, acd_pid, acd_sid, ag_pid, ag_sid) =
        (id(), id(), id(), id(), id(), id(), id(), id());
    let mut r = ChaCha8Rng::seed_from_u64(s.detail_seed ^ 0x5a5a);
    let queue_id = inner.queue_ids[s.queue as usize].clone();
    let user = &inner.users[s.agent as usize];
    let media = s.media;
    let voice = matches!(media, Media::Voice | Media::Callback);
    let t0 = s.start_ms;
    let end = s.end_ms;
    let phone = format!("tel:+1555{:07}", r.gen_range(0..10_000_000));
    let dnis = format!("tel:+1800{:07}", 5_550_000 + s.queue as u32);
    let direction = if s.outbound { "outbound" } else { "inbound" };
    let mut participants = Vec::with_capacity(4);

    // Times of the phases.
    let ivr_end = t0 + s.ivr as i64;
    let dial_end = if s.outbound { t0 + 10_000 } else { t0 };
    let answer = ivr_end + s.wait as i64 + s.alert as i64;
    let alert_start = answer - s.alert as i64;
    let talk1_end = (answer + s.talk1 as i64).min(end);
    let hold_end = (talk1_end + s.hold as i64).min(end);
    let talk_end = (hold_end + s.talk2 as i64).min(end);

    // Customer (or the external party of an outbound call).
    let mut cust = participant(
        cust_pid,
        if s.outbound { "external" } else { "customer" },
        Some(match media {
            Media::Email => "Email Customer".to_string(),
            Media::Chat | Media::Message => "Web Visitor".to_string(),
            _ => "Mobile Caller".to_string(),
        }),
    );
    let mut cs = session(cust_sid.clone(), media, direction);
    match media {
        Media::Voice | Media::Callback => {
            cs.ani = Some(phone.clone());
            cs.dnis = Some(dnis.clone());
            cs.edge_id = Some(uuid(mix(inner.seed, 77) as u128));
            cs.provider = Some("Edge".into());
        }
        Media::Email => {
            cs.address_from = Some(format!("customer{}@example.com", r.gen_range(0..100_000)));
            cs.address_to = Some("support@example.com".into());
            cs.provider = Some("PureCloud Email".into());
        }
        Media::Chat | Media::Message => {
            cs.address_from = Some(format!("visitor-{}", r.gen_range(0..1_000_000)));
            cs.provider = Some("PureCloud Messaging".into());
        }
    }
    let cust_end = if s.abandoned {
        end
    } else {
        talk_end.max(t0 + 1)
    };
    let cust_start = if s.outbound {
        dial_end.min(cust_end - 1)
    } else {
        t0
    };
    let mut sg = seg(cust_start, cust_end, "interact");
    sg.disconnect_type = Some(if s.outbound { "peer" } else { "endpoint" }.into());
    cs.segments.push(sg);
    cust.sessions.push(cs);
    if with_attributes {
        let mut a = BTreeMap::new();
        a.insert("language".to_string(), "en-US".to_string());
        a.insert(
            "customerTier".to_string(),
            ["bronze", "silver", "gold"][r.gen_range(0..3)].to_string(),
        );
        cust.attributes = Some(a);
    }
    participants.push(cust);

    // IVR for inbound voice.
    if s.ivr > 0 {
        let mut p = participant(ivr_pid, "ivr", Some("Main Menu".into()));
        let mut ss = session(ivr_sid, media, "inbound");
        ss.ani = Some(phone.clone());
        ss.dnis = Some(dnis.clone());
        let mut sg = seg(t0, ivr_end.min(end), "ivr");
        sg.disconnect_type = Some("transfer".into());
        ss.segments.push(sg);
        ss.metrics = vec![
            metric("nFlow", 1, t0),
            metric("tIvr", s.ivr as i64, ivr_end),
            metric("tFlow", s.ivr as i64, ivr_end),
        ];
        ss.flow = Some(Flow {
            flow_id: Some(uuid(mix(inner.seed, 99) as u128)),
            flow_name: Some("Main Menu".into()),
            flow_version: Some("12.0".into()),
            flow_type: Some("INBOUNDCALL".into()),
            entry_type: Some("dnis".into()),
            entry_reason: Some(dnis.clone()),
            exit_reason: Some("TRANSFER".into()),
            transfer_type: Some("ACD".into()),
            transfer_target_name: Some(format!("Queue {}", s.queue + 1)),
            transfer_target_address: None,
            starting_language: Some("en-us".into()),
            ending_language: Some("en-us".into()),
        });
        p.sessions.push(ss);
        participants.push(p);
    }

    // ACD (queue) for every inbound conversation.
    if !s.outbound {
        let q0 = ivr_end;
        let q_end = if s.abandoned { end } else { answer };
        let mut p = participant(acd_pid, "acd", Some(format!("Queue {}", s.queue + 1)));
        let mut ss = session(acd_sid, media, "inbound");
        ss.requested_routings = vec!["Standard".into()];
        ss.used_routing = if s.abandoned {
            None
        } else {
            Some("Standard".into())
        };
        if !s.abandoned {
            ss.selected_agent_id = Some(user.id.clone());
        }
        let mut sg = seg(q0, q_end.max(q0 + 1), "interact");
        sg.queue_id = Some(queue_id.clone());
        sg.disconnect_type = Some(if s.abandoned { "peer" } else { "transfer" }.into());
        ss.segments.push(sg);
        ss.metrics.push(metric("nOffered", 1, q0));
        if q_end - q0 > 20_000 {
            ss.metrics.push(metric("nOverSla", 1, q0 + 20_000));
        }
        ss.metrics.push(metric("tAcd", q_end - q0, q_end));
        if s.abandoned {
            ss.metrics.push(metric("tAbandon", q_end - q0, q_end));
        }
        p.sessions.push(ss);
        participants.push(p);
    }

    // Agent.
    if !s.abandoned {
        let mut p = participant(ag_pid, "agent", Some(user.name.clone()));
        p.user_id = Some(user.id.clone());
        let mut ss = session(ag_sid, media, direction);
        ss.peer_id = Some(cust_sid);
        ss.requested_routings = if s.outbound {
            Vec::new()
        } else {
            vec!["Standard".into()]
        };
        if voice {
            ss.recording = Some(true);
        }
        let mut segs = Vec::with_capacity(5);
        let mut mets = Vec::with_capacity(10);
        if s.outbound {
            let mut d = seg(t0, dial_end, "dialing");
            d.queue_id = Some(queue_id.clone());
            segs.push(d);
            mets.push(metric("nOutbound", 1, t0));
            mets.push(metric("nOutboundAttempted", 1, t0));
            mets.push(metric("tDialing", dial_end - t0, dial_end));
            mets.push(metric("nOutboundConnected", 1, dial_end));
        } else {
            let mut a = seg(alert_start, answer, "alert");
            a.queue_id = Some(queue_id.clone());
            segs.push(a);
            mets.push(metric("tAlert", s.alert as i64, answer));
            mets.push(metric("tAnswered", answer - ivr_end, answer));
        }
        let talk_start = if s.outbound { dial_end } else { answer };
        mets.push(metric("nConnected", 1, talk_start));
        let mut i1 = seg(talk_start, talk1_end.max(talk_start + 1), "interact");
        i1.queue_id = Some(queue_id.clone());
        if s.hold > 0 {
            segs.push(i1);
            let mut h = seg(talk1_end, hold_end, "hold");
            h.queue_id = Some(queue_id.clone());
            segs.push(h);
            let mut i2 = seg(hold_end, talk_end.max(hold_end + 1), "interact");
            i2.queue_id = Some(queue_id.clone());
            i2.disconnect_type = Some("peer".into());
            segs.push(i2);
            mets.push(metric("tHeld", hold_end - talk1_end, hold_end));
            mets.push(metric("tHeldComplete", hold_end - talk1_end, hold_end));
        } else {
            i1.disconnect_type = Some("peer".into());
            segs.push(i1);
        }
        let talk_ms = talk_end - talk_start - (hold_end - talk1_end);
        mets.push(metric("tTalk", talk_ms, talk_end));
        mets.push(metric("tTalkComplete", talk_ms, talk_end));
        let wrap_end = end.max(talk_end + 1);
        let mut w = seg(talk_end, wrap_end, "wrapup");
        w.queue_id = Some(queue_id.clone());
        w.wrap_up_code = Some(inner.wrapup_ids[s.wrapup_code as usize].clone());
        segs.push(w);
        mets.push(metric("tAcw", wrap_end - talk_end, wrap_end));
        mets.push(metric("tHandle", wrap_end - talk_start, wrap_end));
        mets.sort_by_key(|m| m.emit_date);
        ss.segments = segs;
        ss.metrics = mets;
        p.sessions.push(ss);
        participants.push(p);
    }

    Conversation {
        conversation_id: s.conversation_id(),
        conversation_start: ms(t0),
        conversation_end: Some(ms(end)),
        conversation_initiator: Some(if s.outbound { "agent" } else { "customer" }.into()),
        originating_direction: Some(direction.into()),
        division_ids: vec![DIVISION_ID.to_string()],
        external_tag: None,
        media_stats_min_conversation_mos: if voice && !s.abandoned {
            Some(3.5 + (s.detail_seed % 100) as f64 / 100.0)
        } else {
            None
        },
        media_stats_min_conversation_r_factor: None,
        customer_participation: Some(!s.outbound || !s.abandoned),
        self_served: None,
        participants,
    }
}

/// `c` as seen at `now` (see [`Dataset::view_at`]).
pub fn view_at(c: &Conversation, now: DateTime<Utc>) -> Option<Conversation> {
    if c.conversation_start > now {
        return None;
    }
    if c.conversation_end.is_some_and(|e| e <= now) {
        return Some(c.clone());
    }
    let mut v = c.clone();
    v.conversation_end = None;
    v.media_stats_min_conversation_mos = None;
    v.participants.retain_mut(|p| {
        p.sessions.retain_mut(|s| {
            s.segments.retain_mut(|g| {
                if g.segment_start > now {
                    return false;
                }
                if g.segment_end.is_some_and(|e| e > now) {
                    g.segment_end = None;
                    g.disconnect_type = None;
                    g.wrap_up_code = None;
                }
                true
            });
            s.metrics.retain(|m| m.emit_date <= now);
            if let Some(f) = s.flow.as_mut() {
                if s.segments.iter().any(|g| g.segment_end.is_none()) {
                    f.exit_reason = None;
                    f.transfer_type = None;
                    f.transfer_target_name = None;
                    f.ending_language = None;
                }
            }
            !s.segments.is_empty()
        });
        !p.sessions.is_empty()
    });
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SimConfig {
        SimConfig {
            now: Some(Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap()),
            days: 5,
            per_day: 2000,
            users: 20,
            ..SimConfig::default()
        }
    }

    #[test]
    fn per_day_volume_is_exact_and_follows_the_daytime_curve() {
        let d = Dataset::new(&cfg());
        let day = Utc.with_ymd_and_hms(2024, 3, 8, 0, 0, 0).unwrap();
        let all = d.conversations_started_in(Interval::new(day, day + chrono::Duration::days(1)));
        assert_eq!(all.len(), 2000);
        let night = all
            .iter()
            .filter(|c| c.conversation_start.format("%H").to_string() == "02")
            .count();
        let noon = all
            .iter()
            .filter(|c| c.conversation_start.format("%H").to_string() == "10")
            .count();
        assert!(noon > 5 * night, "noon {noon} night {night}");
        assert!(all
            .windows(2)
            .all(|w| w[0].conversation_start <= w[1].conversation_start));
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = Dataset::new(&cfg());
        let b = Dataset::new(&cfg());
        let c = Dataset::new(&SimConfig { seed: 2, ..cfg() });
        let h = Utc.with_ymd_and_hms(2024, 3, 8, 9, 0, 0).unwrap();
        let i = Interval::new(h, h + chrono::Duration::hours(1));
        let (x, y, z) = (
            a.conversations_started_in(i),
            b.conversations_started_in(i),
            c.conversations_started_in(i),
        );
        assert_eq!(
            serde_json::to_string(&x).unwrap(),
            serde_json::to_string(&y).unwrap()
        );
        assert_ne!(x[0].conversation_id, z[0].conversation_id);
    }

    #[test]
    fn nothing_before_history_start() {
        let d = Dataset::new(&cfg());
        let hs = d.history_start();
        assert_eq!(hs, Utc.with_ymd_and_hms(2024, 3, 5, 0, 0, 0).unwrap());
        let before = Interval::new(hs - chrono::Duration::days(1), hs);
        assert!(d.conversations_started_in(before).is_empty());
    }

    #[test]
    fn in_progress_view_hides_what_has_not_happened() {
        let d = Dataset::new(&cfg());
        let h = Utc.with_ymd_and_hms(2024, 3, 8, 9, 0, 0).unwrap();
        let all = d.conversations_started_in(Interval::new(h, h + chrono::Duration::hours(1)));
        let c = all
            .iter()
            .find(|c| {
                !c.participants
                    .iter()
                    .all(|p| p.purpose.as_deref() != Some("agent"))
            })
            .unwrap();
        let end = c.conversation_end.unwrap();
        let mid = c.conversation_start + (end - c.conversation_start) / 2;
        let v = d.view_at(c, mid).unwrap();
        assert!(v.conversation_end.is_none());
        let segs: Vec<&Segment> = v
            .participants
            .iter()
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.segments)
            .collect();
        assert!(segs.iter().all(|g| g.segment_start <= mid));
        assert!(segs
            .iter()
            .any(|g| g.segment_end.is_none() && g.disconnect_type.is_none()));
        let mets = v
            .participants
            .iter()
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.metrics);
        assert!(mets.clone().all(|m| m.emit_date <= mid));
        assert!(!mets.clone().any(|m| m.name == "tHandle"));
        assert_eq!(d.view_at(c, end).as_ref(), Some(c));
        assert!(d
            .view_at(c, c.conversation_start - chrono::Duration::milliseconds(1))
            .is_none());
    }

    #[test]
    fn conversations_have_realistic_shape() {
        let d = Dataset::new(&cfg());
        let day = Utc.with_ymd_and_hms(2024, 3, 8, 0, 0, 0).unwrap();
        let all = d.conversations_started_in(Interval::new(day, day + chrono::Duration::days(1)));
        let purposes: std::collections::BTreeSet<_> = all
            .iter()
            .flat_map(|c| &c.participants)
            .filter_map(|p| p.purpose.clone())
            .collect();
        for p in ["customer", "ivr", "acd", "agent"] {
            assert!(purposes.contains(p), "{p}");
        }
        let media: std::collections::BTreeSet<_> = all
            .iter()
            .flat_map(|c| &c.participants)
            .flat_map(|p| &p.sessions)
            .filter_map(|s| s.media_type.clone())
            .collect();
        assert_eq!(media.len(), 5, "{media:?}");
        let types: std::collections::BTreeSet<_> = all
            .iter()
            .flat_map(|c| &c.participants)
            .flat_map(|p| &p.sessions)
            .flat_map(|s| &s.segments)
            .filter_map(|s| s.segment_type.clone())
            .collect();
        for t in ["ivr", "alert", "interact", "hold", "wrapup"] {
            assert!(types.contains(t), "{t}");
        }
        let cross = all
            .iter()
            .filter(|c| {
                c.conversation_end.unwrap().date_naive() != c.conversation_start.date_naive()
            })
            .count();
        assert!(cross > 0, "some conversations cross midnight");
        assert!(all
            .iter()
            .all(|c| c.conversation_end.unwrap() - c.conversation_start
                <= chrono::Duration::milliseconds(MAX_CONVERSATION_MS)));
    }

    #[test]
    fn user_timelines_are_continuous_and_current_record_is_open() {
        let d = Dataset::new(&cfg());
        let now = Utc.with_ymd_and_hms(2024, 3, 10, 12, 0, 0).unwrap();
        let iv = Interval::new(now - chrono::Duration::days(3), now);
        let users = d.user_details(iv, now);
        assert_eq!(users.len(), 20);
        for u in &users {
            for w in u.primary_presence.windows(2) {
                assert_eq!(w[0].end_time, Some(w[1].start_time), "{}", u.user_id);
            }
            assert!(u.primary_presence.last().unwrap().end_time.is_none());
            assert!(u.routing_status.last().unwrap().end_time.is_none());
            assert!(u.primary_presence[..u.primary_presence.len() - 1]
                .iter()
                .all(|p| p.end_time.is_some()));
        }
        // Day documents repeat day-spanning records: more stored records than distinct ones.
        let docs = d.user_docs(iv, now, &|_| true);
        let stored: usize = docs.iter().map(|d| d.detail.primary_presence.len()).sum();
        let distinct: usize = users.iter().map(|u| u.primary_presence.len()).sum();
        assert!(stored > distinct);
    }
}
