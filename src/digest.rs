//! Content digests: one canonical fingerprint per conversation (its participants, sessions,
//! segments and metrics) and per user presence / routing-status record, so a copy can be
//! compared with the truth by content, not only by counts.
//!
//! The same functions digest both sides: [`conversation_digest`] / [`user_record_digests`]
//! take the API model (the simulator's truth, `GET /__sim/expected/digests`), and
//! [`load_stored_digests`] reads what Sluice stored back from the database into the same
//! canonical content first. The content is what the tables keep: instants to the millisecond,
//! children keyed (and de-duplicated) by the tables' primary keys, a missing segment type as
//! the Writer stores it. Digests are xxh3-64 of a length-prefixed encoding, in hex.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde::{Deserialize, Serialize};
use std::hash::Hasher;

use twox_hash::XxHash3_64;

use crate::genesys::model::{Conversation, Interval, UserDetail};
use crate::storage::models::UNKNOWN_SEGMENT_TYPE;
use crate::storage::schema::{
    conversations, participants, segments, session_metrics, sessions, user_presence,
    user_routing_status,
};
use crate::storage::{connect, DatabaseUrl, StorageError};

/// A segment's natural key: session, start (ms), type.
type SegmentKey = (String, i64, String);
/// A segment's other content: end (ms), queue, wrap-up code, disconnect type.
type SegmentValue = (Option<i64>, Option<String>, Option<String>, Option<String>);

/// The canonical content of one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationContent {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// participant id → (purpose, user id)
    pub participants: BTreeMap<String, (Option<String>, Option<String>)>,
    /// session id → (participant id, media type, direction)
    pub sessions: BTreeMap<String, (String, Option<String>, Option<String>)>,
    pub segments: BTreeMap<SegmentKey, SegmentValue>,
    /// (session id, name, emit date ms) → value
    pub metrics: BTreeMap<(String, String, i64), i64>,
}

impl ConversationContent {
    /// The content of a conversation as the API sends it (later duplicates of a key win, as
    /// in the Writer).
    pub fn of(c: &Conversation) -> Self {
        let mut out = ConversationContent {
            start_ms: c.conversation_start.timestamp_millis(),
            end_ms: c.conversation_end.map(|t| t.timestamp_millis()),
            ..Default::default()
        };
        for p in &c.participants {
            out.participants.insert(
                p.participant_id.clone(),
                (p.purpose.clone(), p.user_id.clone()),
            );
            for s in &p.sessions {
                out.sessions.insert(
                    s.session_id.clone(),
                    (
                        p.participant_id.clone(),
                        s.media_type.clone(),
                        s.direction.clone(),
                    ),
                );
                for g in &s.segments {
                    out.segments.insert(
                        (
                            s.session_id.clone(),
                            g.segment_start.timestamp_millis(),
                            g.segment_type
                                .clone()
                                .unwrap_or_else(|| UNKNOWN_SEGMENT_TYPE.to_owned()),
                        ),
                        (
                            g.segment_end.map(|t| t.timestamp_millis()),
                            g.queue_id.clone(),
                            g.wrap_up_code.clone(),
                            g.disconnect_type.clone(),
                        ),
                    );
                }
                for m in &s.metrics {
                    out.metrics.insert(
                        (
                            s.session_id.clone(),
                            m.name.clone(),
                            m.emit_date.timestamp_millis(),
                        ),
                        m.value,
                    );
                }
            }
        }
        out
    }

    /// The digest of this content (16 hex digits).
    pub fn digest(&self) -> String {
        let mut h = Encoder::default();
        h.int(self.start_ms).opt_int(self.end_ms);
        h.int(self.participants.len() as i64);
        for (id, (purpose, user)) in &self.participants {
            h.str(id).opt_str(purpose).opt_str(user);
        }
        h.int(self.sessions.len() as i64);
        for (id, (pid, media, direction)) in &self.sessions {
            h.str(id).str(pid).opt_str(media).opt_str(direction);
        }
        h.int(self.segments.len() as i64);
        for ((sid, start, kind), (end, queue, wrap_up, disconnect)) in &self.segments {
            h.str(sid).int(*start).str(kind).opt_int(*end);
            h.opt_str(queue).opt_str(wrap_up).opt_str(disconnect);
        }
        h.int(self.metrics.len() as i64);
        for ((sid, name, emit), value) in &self.metrics {
            h.str(sid).str(name).int(*emit).int(*value);
        }
        h.finish()
    }
}

/// The canonical digest of a conversation's content.
pub fn conversation_digest(c: &Conversation) -> String {
    ConversationContent::of(c).digest()
}

/// Key of a presence record in [`ContentDigests::user_records`].
pub fn presence_key(user_id: &str, start: DateTime<Utc>) -> String {
    format!("presence/{user_id}/{}", start.timestamp_millis())
}

/// Key of a routing-status record in [`ContentDigests::user_records`].
pub fn routing_key(user_id: &str, start: DateTime<Utc>) -> String {
    format!("routing/{user_id}/{}", start.timestamp_millis())
}

/// Digest of a presence record's content (end, system presence, organization presence).
pub fn presence_digest(
    end: Option<DateTime<Utc>>,
    system: Option<&str>,
    org: Option<&str>,
) -> String {
    let mut h = Encoder::default();
    h.opt_int(end.map(|t| t.timestamp_millis()));
    h.opt_str(&system.map(str::to_owned))
        .opt_str(&org.map(str::to_owned));
    h.finish()
}

/// Digest of a routing-status record's content (end, status).
pub fn routing_digest(end: Option<DateTime<Utc>>, status: Option<&str>) -> String {
    let mut h = Encoder::default();
    h.opt_int(end.map(|t| t.timestamp_millis()));
    h.opt_str(&status.map(str::to_owned));
    h.finish()
}

/// (key, digest) of every presence and routing-status record of a user.
pub fn user_record_digests(u: &UserDetail) -> Vec<(String, String)> {
    let presence = u.primary_presence.iter().map(|p| {
        (
            presence_key(&u.user_id, p.start_time),
            presence_digest(
                p.end_time,
                p.system_presence.as_deref(),
                p.organization_presence_id.as_deref(),
            ),
        )
    });
    let routing = u.routing_status.iter().map(|r| {
        (
            routing_key(&u.user_id, r.start_time),
            routing_digest(r.end_time, r.routing_status.as_deref()),
        )
    });
    presence.chain(routing).collect()
}

/// Length-prefixed fields into xxh3 (so `("ab","c")` and `("a","bc")` differ).
#[derive(Default)]
struct Encoder(XxHash3_64);

impl Encoder {
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.write(&(s.len() as u64).to_le_bytes());
        self.0.write(s.as_bytes());
        self
    }
    fn opt_str(&mut self, s: &Option<String>) -> &mut Self {
        match s {
            Some(s) => {
                self.0.write(&[1]);
                self.str(s)
            }
            None => {
                self.0.write(&[0]);
                self
            }
        }
    }
    fn int(&mut self, v: i64) -> &mut Self {
        self.0.write(&v.to_le_bytes());
        self
    }
    fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => {
                self.0.write(&[1]);
                self.int(v)
            }
            None => {
                self.0.write(&[0]);
                self
            }
        }
    }
    fn finish(&self) -> String {
        format!("{:016x}", self.0.finish())
    }
}

/// Digests of an interval's records: conversations that started in it (by id) and user records
/// overlapping it (by [`presence_key`] / [`routing_key`]). The answer of
/// `GET /__sim/expected/digests?interval=A/B`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentDigests {
    pub conversations: BTreeMap<String, String>,
    pub user_records: BTreeMap<String, String>,
    /// Records (conversation ids, user record keys) still changing in the truth: conversations
    /// in progress, user records still open at the jobs' data-availability date. A stored copy
    /// may be an older view of them, so only their presence is compared.
    #[serde(default)]
    pub in_progress: BTreeSet<String>,
}

/// What differs between the truth and a copy, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestDiff {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub different: Vec<String>,
}

impl DigestDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.different.is_empty()
    }

    /// One line naming a few of each kind.
    pub fn summary(&self) -> String {
        let few = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        format!(
            "{} missing [{}], {} extra [{}], {} different [{}]",
            self.missing.len(),
            few(&self.missing),
            self.extra.len(),
            few(&self.extra),
            self.different.len(),
            few(&self.different)
        )
    }
}

/// Compares two digest maps by key.
pub fn diff_maps(
    truth: &BTreeMap<String, String>,
    copy: &BTreeMap<String, String>,
    skip_content: &BTreeSet<String>,
) -> DigestDiff {
    let mut d = DigestDiff::default();
    for (k, want) in truth {
        match copy.get(k) {
            None => d.missing.push(k.clone()),
            Some(got) if got != want && !skip_content.contains(k) => d.different.push(k.clone()),
            Some(_) => {}
        }
    }
    d.extra = copy
        .keys()
        .filter(|k| !truth.contains_key(*k))
        .cloned()
        .collect();
    d
}

/// Truth against copy: (conversations, user records).
pub fn compare_digests(truth: &ContentDigests, copy: &ContentDigests) -> (DigestDiff, DigestDiff) {
    (
        diff_maps(
            &truth.conversations,
            &copy.conversations,
            &truth.in_progress,
        ),
        diff_maps(&truth.user_records, &copy.user_records, &truth.in_progress),
    )
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

fn ms(t: NaiveDateTime) -> i64 {
    utc(t).timestamp_millis()
}

/// Conversations whose children are read (and digested) per query.
const DIGEST_CHUNK: usize = 500;

type SessionRow = (String, String, String, Option<String>, Option<String>);
type PresenceRow = (
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<String>,
    Option<String>,
);
type SegmentRow = (
    String,
    String,
    NaiveDateTime,
    String,
    Option<NaiveDateTime>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Reads what the database holds for `interval` (conversations that started in it with their
/// children, user records overlapping it) and digests it with the canonical functions.
/// Blocking: call it off the async runtime for MySQL.
pub fn load_stored_digests(
    url: &DatabaseUrl,
    interval: Interval,
) -> Result<ContentDigests, StorageError> {
    let mut conn = connect(url)?;
    let (a, b) = (interval.start.naive_utc(), interval.end.naive_utc());
    let rows: Vec<(String, NaiveDateTime, Option<NaiveDateTime>)> =
        crate::dispatch!(&mut conn, |c| conversations::table
            .filter(conversations::conversation_start.ge(a))
            .filter(conversations::conversation_start.lt(b))
            .select((
                conversations::conversation_id,
                conversations::conversation_start,
                conversations::conversation_end,
            ))
            .load(c))?;
    let mut content: BTreeMap<String, ConversationContent> = rows
        .into_iter()
        .map(|(id, s, e)| {
            let c = ConversationContent {
                start_ms: ms(s),
                end_ms: e.map(ms),
                ..Default::default()
            };
            (id, c)
        })
        .collect();
    let mut out = ContentDigests::default();
    // Children a chunk of conversations at a time, so memory stays bounded on big copies.
    let ids: Vec<String> = content.keys().cloned().collect();
    for chunk in ids.chunks(DIGEST_CHUNK) {
        let parts: Vec<(String, String, Option<String>, Option<String>)> =
            crate::dispatch!(&mut conn, |c| participants::table
                .filter(participants::conversation_id.eq_any(chunk))
                .select((
                    participants::conversation_id,
                    participants::participant_id,
                    participants::purpose,
                    participants::user_id,
                ))
                .load(c))?;
        for (cid, pid, purpose, user) in parts {
            if let Some(c) = content.get_mut(&cid) {
                c.participants.insert(pid, (purpose, user));
            }
        }
        let sess: Vec<SessionRow> = crate::dispatch!(&mut conn, |c| sessions::table
            .filter(sessions::conversation_id.eq_any(chunk))
            .select((
                sessions::conversation_id,
                sessions::session_id,
                sessions::participant_id,
                sessions::media_type,
                sessions::direction,
            ))
            .load(c))?;
        for (cid, sid, pid, media, direction) in sess {
            if let Some(c) = content.get_mut(&cid) {
                c.sessions.insert(sid, (pid, media, direction));
            }
        }
        let segs: Vec<SegmentRow> = crate::dispatch!(&mut conn, |c| segments::table
            .filter(segments::conversation_id.eq_any(chunk))
            .select((
                segments::conversation_id,
                segments::session_id,
                segments::segment_start,
                segments::segment_type,
                segments::segment_end,
                segments::queue_id,
                segments::wrap_up_code,
                segments::disconnect_type,
            ))
            .load(c))?;
        for (cid, sid, start, kind, end, queue, wrap_up, disconnect) in segs {
            if let Some(c) = content.get_mut(&cid) {
                c.segments.insert(
                    (sid, ms(start), kind),
                    (end.map(ms), queue, wrap_up, disconnect),
                );
            }
        }
        let mets: Vec<(String, String, String, NaiveDateTime, i64)> =
            crate::dispatch!(&mut conn, |c| session_metrics::table
                .filter(session_metrics::conversation_id.eq_any(chunk))
                .select((
                    session_metrics::conversation_id,
                    session_metrics::session_id,
                    session_metrics::name,
                    session_metrics::emit_date,
                    session_metrics::value,
                ))
                .load(c))?;
        for (cid, sid, name, emit, value) in mets {
            if let Some(c) = content.get_mut(&cid) {
                c.metrics.insert((sid, name, ms(emit)), value);
            }
        }
        for id in chunk {
            if let Some(c) = content.remove(id) {
                out.conversations.insert(id.clone(), c.digest());
            }
        }
    }
    let presence: Vec<PresenceRow> = crate::dispatch!(&mut conn, |c| user_presence::table
        .filter(user_presence::start_time.lt(b))
        .select((
            user_presence::user_id,
            user_presence::start_time,
            user_presence::end_time,
            user_presence::system_presence,
            user_presence::organization_presence_id,
        ))
        .load(c))?;
    for (user, start, end, system, org) in presence {
        if end.is_none_or(|e| e > a) {
            out.user_records.insert(
                presence_key(&user, utc(start)),
                presence_digest(end.map(utc), system.as_deref(), org.as_deref()),
            );
        }
    }
    let routing: Vec<(String, NaiveDateTime, Option<NaiveDateTime>, Option<String>)> =
        crate::dispatch!(&mut conn, |c| user_routing_status::table
            .filter(user_routing_status::start_time.lt(b))
            .select((
                user_routing_status::user_id,
                user_routing_status::start_time,
                user_routing_status::end_time,
                user_routing_status::routing_status,
            ))
            .load(c))?;
    for (user, start, end, status) in routing {
        if end.is_none_or(|e| e > a) {
            out.user_records.insert(
                routing_key(&user, utc(start)),
                routing_digest(end.map(utc), status.as_deref()),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Dataset, SimConfig};

    fn some_conversations() -> Vec<Conversation> {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2024, 3, 10, 12, 0, 0).unwrap();
        let ds = Dataset::new(&SimConfig {
            now: Some(now),
            days: 2,
            per_day: 200,
            users: 5,
            ..SimConfig::default()
        });
        ds.conversations_started_in(Interval::new(
            now - chrono::Duration::days(1),
            now - chrono::Duration::hours(12),
        ))
    }

    #[test]
    fn digests_see_every_part_of_the_content() {
        let cs = some_conversations();
        assert!(cs.len() > 20);
        let digests: BTreeSet<String> = cs.iter().map(conversation_digest).collect();
        assert_eq!(digests.len(), cs.len(), "two conversations share a digest");
        let c = cs
            .iter()
            .find(|c| c.participants.len() >= 3)
            .unwrap()
            .clone();
        let d = conversation_digest(&c);
        assert_eq!(conversation_digest(&c.clone()), d);
        type Change = Box<dyn Fn(&mut Conversation)>;
        let changes: Vec<Change> = vec![
            Box::new(|c| c.conversation_end = None),
            Box::new(|c| c.participants[0].purpose = Some("other".into())),
            Box::new(|c| c.participants[0].user_id = Some("u".into())),
            Box::new(|c| c.participants[1].sessions[0].media_type = Some("x".into())),
            Box::new(|c| {
                c.participants[0].sessions[0].segments[0].segment_end = None;
            }),
            Box::new(|c| {
                let g = c.participants[0].sessions[0].segments[0].clone();
                c.participants[0].sessions[0].segments[0].segment_start =
                    g.segment_start + chrono::Duration::milliseconds(1);
            }),
            Box::new(|c| {
                let s = c
                    .participants
                    .last_mut()
                    .unwrap()
                    .sessions
                    .last_mut()
                    .unwrap();
                s.metrics[0].value += 1;
            }),
            Box::new(|c| {
                let s = c
                    .participants
                    .last_mut()
                    .unwrap()
                    .sessions
                    .last_mut()
                    .unwrap();
                s.metrics.pop();
            }),
            Box::new(|c| {
                c.participants.pop();
            }),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut x = c.clone();
            change(&mut x);
            assert_ne!(conversation_digest(&x), d, "change {i} is not seen");
        }
        // What the tables do not keep does not count: sub-millisecond instants, child order.
        let mut x = c.clone();
        x.participants.reverse();
        x.conversation_start += chrono::Duration::microseconds(300);
        assert_eq!(conversation_digest(&x), d);
    }

    #[test]
    fn diffs_name_missing_extra_and_different_ids() {
        let map = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(k, d)| (k.to_string(), d.to_string()))
                .collect()
        };
        let truth = map(&[("a", "1"), ("b", "2"), ("c", "3"), ("p", "4")]);
        let copy = map(&[("a", "1"), ("b", "9"), ("d", "5"), ("p", "0")]);
        let skip: BTreeSet<String> = ["p".to_string()].into();
        let d = diff_maps(&truth, &copy, &skip);
        assert_eq!(d.missing, vec!["c"]);
        assert_eq!(d.extra, vec!["d"]);
        assert_eq!(d.different, vec!["b"]);
        assert!(!d.is_empty());
        assert!(diff_maps(&truth, &truth, &BTreeSet::new()).is_empty());
    }
}
