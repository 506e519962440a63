//! Rows as diesel inserts them, built from the shared Genesys serde types
//! (`crate::genesys::model`), and the conversions between API instants and database columns.
//!
//! Rows borrow their text from the received payloads, so building a batch copies no strings.
//! Within one conversation, rows that share a natural key (participant id, session id,
//! segment session+start+type, metric session+name+emitDate) are collapsed, the last one
//! winning: a malformed payload never makes a whole batch fail on a duplicate key.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use diesel::prelude::Insertable;

use super::digest::{conversation_digest, user_record_digest};
use super::schema::{
    conversations, participants, segments, session_metrics, sessions, user_presence,
    user_routing_status,
};
use super::stored_time::StoredTime;
use crate::genesys::model::{Conversation, ReceivedConversation, UserDetail};

/// An API instant as stored: UTC, truncated to milliseconds (the precision of `DATETIME(3)`,
/// applied to SQLite too so both backends hold identical values).
pub fn db_time(t: DateTime<Utc>) -> NaiveDateTime {
    let n = t.naive_utc();
    let ms = n.nanosecond() / 1_000_000 * 1_000_000;
    n.with_nanosecond(ms).unwrap_or(n)
}

/// An API instant as the Writer binds it ([`db_time`] in a [`StoredTime`]).
pub fn stored(t: DateTime<Utc>) -> StoredTime {
    StoredTime(db_time(t))
}

/// A stored instant back as UTC.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// Segment type stored when the API leaves it out (it is part of the segment's key).
pub const UNKNOWN_SEGMENT_TYPE: &str = "unknown";

/// A conversation to store, as received, with the engine's verdict on whether it is final
/// (ended and past the point where Genesys still changes it).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRecord {
    pub received: ReceivedConversation,
    pub is_final: bool,
}

impl ConversationRecord {
    pub fn conversation(&self) -> &Conversation {
        &self.received.conversation
    }

    /// The digest of its raw JSON as received (see [`super::digest`]).
    pub fn content_digest(&self) -> String {
        conversation_digest(&self.received.raw_json)
    }

    /// Rows this conversation becomes (conversation, participants, sessions, segments,
    /// metrics), before de-duplication.
    pub fn row_count(&self) -> usize {
        let c = self.conversation();
        1 + c
            .participants
            .iter()
            .map(|p| {
                1 + p
                    .sessions
                    .iter()
                    .map(|s| 1 + s.segments.len() + s.metrics.len())
                    .sum::<usize>()
            })
            .sum::<usize>()
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = conversations, treat_none_as_default_value = false)]
pub struct NewConversation<'a> {
    pub conversation_id: &'a str,
    pub conversation_start: StoredTime,
    pub conversation_end: Option<StoredTime>,
    pub conversation_initiator: Option<&'a str>,
    pub originating_direction: Option<&'a str>,
    pub division_ids: Option<String>,
    pub media_stats_min_conversation_mos: Option<f64>,
    pub is_final: bool,
    pub raw_json: &'a str,
    pub first_ingested_at: StoredTime,
    pub last_ingested_at: StoredTime,
    pub content_digest: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = participants, treat_none_as_default_value = false)]
pub struct NewParticipant<'a> {
    pub conversation_id: &'a str,
    pub participant_id: &'a str,
    pub participant_name: Option<&'a str>,
    pub purpose: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub external_contact_id: Option<&'a str>,
    pub flagged_reason: Option<&'a str>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub struct NewSession<'a> {
    pub conversation_id: &'a str,
    pub session_id: &'a str,
    pub participant_id: &'a str,
    pub purpose: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub media_type: Option<&'a str>,
    pub direction: Option<&'a str>,
    pub queue_id: Option<&'a str>,
    pub session_start: Option<StoredTime>,
    pub session_end: Option<StoredTime>,
    pub ani: Option<&'a str>,
    pub dnis: Option<&'a str>,
    pub address_from: Option<&'a str>,
    pub address_to: Option<&'a str>,
    pub edge_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub remote: Option<&'a str>,
    pub recording: Option<bool>,
    pub used_routing: Option<&'a str>,
    pub selected_agent_id: Option<&'a str>,
    pub peer_id: Option<&'a str>,
    pub flow_in_type: Option<&'a str>,
    pub flow_out_type: Option<&'a str>,
    pub acw_skipped: Option<bool>,
    pub flow_id: Option<&'a str>,
    pub flow_name: Option<&'a str>,
    pub flow_type: Option<&'a str>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = segments, treat_none_as_default_value = false)]
pub struct NewSegment<'a> {
    pub conversation_id: &'a str,
    pub session_id: &'a str,
    pub segment_start: StoredTime,
    pub segment_type: &'a str,
    pub participant_id: &'a str,
    pub segment_end: Option<StoredTime>,
    pub queue_id: Option<&'a str>,
    pub group_id: Option<&'a str>,
    pub wrap_up_code: Option<&'a str>,
    pub wrap_up_note: Option<&'a str>,
    pub disconnect_type: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub conference: Option<bool>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = session_metrics, treat_none_as_default_value = false)]
pub struct NewSessionMetric<'a> {
    pub conversation_id: &'a str,
    pub session_id: &'a str,
    pub name: &'a str,
    pub emit_date: StoredTime,
    pub value: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = user_presence, treat_none_as_default_value = false)]
pub struct NewPresence<'a> {
    pub user_id: &'a str,
    pub start_time: NaiveDateTime,
    pub end_time: Option<NaiveDateTime>,
    pub system_presence: Option<&'a str>,
    pub organization_presence_id: Option<&'a str>,
    pub last_ingested_at: NaiveDateTime,
    pub content_digest: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = user_routing_status, treat_none_as_default_value = false)]
pub struct NewRoutingStatus<'a> {
    pub user_id: &'a str,
    pub start_time: NaiveDateTime,
    pub end_time: Option<NaiveDateTime>,
    pub routing_status: Option<&'a str>,
    pub last_ingested_at: NaiveDateTime,
    pub content_digest: Option<String>,
}

/// All rows of a set of conversations, ready for multi-row inserts.
#[derive(Debug, Default)]
pub struct ConversationRows<'a> {
    pub conversations: Vec<NewConversation<'a>>,
    pub participants: Vec<NewParticipant<'a>>,
    pub sessions: Vec<NewSession<'a>>,
    pub segments: Vec<NewSegment<'a>>,
    pub metrics: Vec<NewSessionMetric<'a>>,
}

impl<'a> ConversationRows<'a> {
    pub fn len(&self) -> usize {
        self.conversations.len()
            + self.participants.len()
            + self.sessions.len()
            + self.segments.len()
            + self.metrics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the rows of one conversation. `first_ingested_at` is the stored value when the
    /// conversation was already in the database (re-ingest), else `now`.
    pub fn push(
        &mut self,
        rec: &'a ConversationRecord,
        now: NaiveDateTime,
        first_ingested_at: Option<NaiveDateTime>,
    ) {
        let c = &rec.received.conversation;
        let cid = c.conversation_id.as_str();
        self.conversations.push(NewConversation {
            conversation_id: cid,
            conversation_start: stored(c.conversation_start),
            conversation_end: c.conversation_end.map(stored),
            conversation_initiator: c.conversation_initiator.as_deref(),
            originating_direction: c.originating_direction.as_deref(),
            division_ids: (!c.division_ids.is_empty())
                .then(|| serde_json::to_string(&c.division_ids).unwrap_or_default()),
            media_stats_min_conversation_mos: c
                .media_stats_min_conversation_mos
                .filter(|m| m.is_finite()),
            is_final: rec.is_final,
            raw_json: rec.received.raw_json.as_str(),
            first_ingested_at: StoredTime(first_ingested_at.unwrap_or(now)),
            last_ingested_at: StoredTime(now),
            content_digest: Some(rec.content_digest()),
        });

        let (p0, s0, g0, m0) = (
            self.participants.len(),
            self.sessions.len(),
            self.segments.len(),
            self.metrics.len(),
        );
        for p in &c.participants {
            let pid = p.participant_id.as_str();
            self.participants.push(NewParticipant {
                conversation_id: cid,
                participant_id: pid,
                participant_name: p.participant_name.as_deref(),
                purpose: p.purpose.as_deref(),
                user_id: p.user_id.as_deref(),
                team_id: p.team_id.as_deref(),
                external_contact_id: p.external_contact_id.as_deref(),
                flagged_reason: p.flagged_reason.as_deref(),
            });
            for s in &p.sessions {
                let sid = s.session_id.as_str();
                let session_start = s.segments.iter().map(|g| g.segment_start).min();
                let session_end = if s.segments.iter().all(|g| g.segment_end.is_some()) {
                    s.segments.iter().filter_map(|g| g.segment_end).max()
                } else {
                    None
                };
                let flow = s.flow.as_ref();
                self.sessions.push(NewSession {
                    conversation_id: cid,
                    session_id: sid,
                    participant_id: pid,
                    purpose: p.purpose.as_deref(),
                    user_id: p.user_id.as_deref(),
                    media_type: s.media_type.as_deref(),
                    direction: s.direction.as_deref(),
                    queue_id: s.segments.iter().find_map(|g| g.queue_id.as_deref()),
                    session_start: session_start.map(stored),
                    session_end: session_end.map(stored),
                    ani: s.ani.as_deref(),
                    dnis: s.dnis.as_deref(),
                    address_from: s.address_from.as_deref(),
                    address_to: s.address_to.as_deref(),
                    edge_id: s.edge_id.as_deref(),
                    provider: s.provider.as_deref(),
                    remote: s.remote.as_deref(),
                    recording: s.recording,
                    used_routing: s.used_routing.as_deref(),
                    selected_agent_id: s.selected_agent_id.as_deref(),
                    peer_id: s.peer_id.as_deref(),
                    flow_in_type: s.flow_in_type.as_deref(),
                    flow_out_type: s.flow_out_type.as_deref(),
                    acw_skipped: s.acw_skipped,
                    flow_id: flow.and_then(|f| f.flow_id.as_deref()),
                    flow_name: flow.and_then(|f| f.flow_name.as_deref()),
                    flow_type: flow.and_then(|f| f.flow_type.as_deref()),
                });
                for g in &s.segments {
                    self.segments.push(NewSegment {
                        conversation_id: cid,
                        session_id: sid,
                        segment_start: stored(g.segment_start),
                        segment_type: g.segment_type.as_deref().unwrap_or(UNKNOWN_SEGMENT_TYPE),
                        participant_id: pid,
                        segment_end: g.segment_end.map(stored),
                        queue_id: g.queue_id.as_deref(),
                        group_id: g.group_id.as_deref(),
                        wrap_up_code: g.wrap_up_code.as_deref(),
                        wrap_up_note: g.wrap_up_note.as_deref(),
                        disconnect_type: g.disconnect_type.as_deref(),
                        error_code: g.error_code.as_deref(),
                        conference: g.conference,
                    });
                }
                for m in &s.metrics {
                    self.metrics.push(NewSessionMetric {
                        conversation_id: cid,
                        session_id: sid,
                        name: m.name.as_str(),
                        emit_date: stored(m.emit_date),
                        value: m.value,
                    });
                }
            }
        }
        dedup_tail(&mut self.participants, p0, |r| r.participant_id);
        dedup_tail(&mut self.sessions, s0, |r| r.session_id);
        dedup_tail(&mut self.segments, g0, |r| {
            (r.session_id, r.segment_start, r.segment_type)
        });
        dedup_tail(&mut self.metrics, m0, |r| {
            (r.session_id, r.name, r.emit_date)
        });
    }
}

/// Collapses rows `v[from..]` that share a key, keeping the last occurrence in the position
/// of the first. Allocation-free when there are no duplicates among small groups.
fn dedup_tail<T, K: std::hash::Hash + Eq>(v: &mut Vec<T>, from: usize, key: impl Fn(&T) -> K) {
    let n = v.len() - from;
    if n < 2 {
        return;
    }
    let mut seen: HashMap<K, usize> = HashMap::with_capacity(n);
    let mut dup = false;
    for (i, r) in v[from..].iter().enumerate() {
        if seen.insert(key(r), i).is_some() {
            dup = true;
        }
    }
    if !dup {
        return;
    }
    // Keep index i only when it is the last occurrence of its key; order by first occurrence
    // is not needed by the database, so keep the surviving rows in their own order.
    let tail: Vec<T> = v.drain(from..).collect();
    let keep: Vec<bool> = tail
        .iter()
        .enumerate()
        .map(|(i, r)| seen.get(&key(r)) == Some(&i))
        .collect();
    v.extend(
        tail.into_iter()
            .zip(keep)
            .filter_map(|(r, k)| k.then_some(r)),
    );
}

/// Presence and routing-status rows of a set of users, collapsed by `(user_id, start_time)`
/// (a status spanning midnight may arrive twice; the one with an end time, else the last,
/// wins).
#[derive(Debug, Default)]
pub struct UserRows<'a> {
    pub presence: Vec<NewPresence<'a>>,
    pub routing: Vec<NewRoutingStatus<'a>>,
}

impl<'a> UserRows<'a> {
    pub fn len(&self) -> usize {
        self.presence.len() + self.routing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn from_users(users: impl IntoIterator<Item = &'a UserDetail>, now: NaiveDateTime) -> Self {
        let mut presence: HashMap<(&'a str, NaiveDateTime), NewPresence<'a>> = HashMap::new();
        let mut routing: HashMap<(&'a str, NaiveDateTime), NewRoutingStatus<'a>> = HashMap::new();
        for u in users {
            let uid = u.user_id.as_str();
            for p in &u.primary_presence {
                let (start_time, end_time) = (db_time(p.start_time), p.end_time.map(db_time));
                let (system_presence, organization_presence_id) = (
                    p.system_presence.as_deref(),
                    p.organization_presence_id.as_deref(),
                );
                let row = NewPresence {
                    user_id: uid,
                    start_time,
                    end_time,
                    system_presence,
                    organization_presence_id,
                    last_ingested_at: now,
                    content_digest: Some(user_record_digest(
                        uid,
                        start_time,
                        end_time,
                        &[system_presence, organization_presence_id],
                    )),
                };
                let key = (uid, row.start_time);
                match presence.get(&key) {
                    Some(old) if old.end_time.is_some() && row.end_time.is_none() => {}
                    _ => {
                        presence.insert(key, row);
                    }
                }
            }
            for r in &u.routing_status {
                let (start_time, end_time) = (db_time(r.start_time), r.end_time.map(db_time));
                let routing_status = r.routing_status.as_deref();
                let row = NewRoutingStatus {
                    user_id: uid,
                    start_time,
                    end_time,
                    routing_status,
                    last_ingested_at: now,
                    content_digest: Some(user_record_digest(
                        uid,
                        start_time,
                        end_time,
                        &[routing_status],
                    )),
                };
                let key = (uid, row.start_time);
                match routing.get(&key) {
                    Some(old) if old.end_time.is_some() && row.end_time.is_none() => {}
                    _ => {
                        routing.insert(key, row);
                    }
                }
            }
        }
        let mut presence: Vec<_> = presence.into_values().collect();
        presence.sort_by(|a, b| (a.user_id, a.start_time).cmp(&(b.user_id, b.start_time)));
        let mut routing: Vec<_> = routing.into_values().collect();
        routing.sort_by(|a, b| (a.user_id, a.start_time).cmp(&(b.user_id, b.start_time)));
        UserRows { presence, routing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_time_truncates_to_milliseconds() {
        let t = crate::genesys::model::parse_instant("2024-03-01T08:00:00.123456789Z").unwrap();
        assert_eq!(
            db_time(t).to_string(),
            "2024-03-01 08:00:00.123",
            "stored instants keep milliseconds only"
        );
        assert_eq!(utc(db_time(t)).timestamp_millis(), t.timestamp_millis());
    }

    #[test]
    fn duplicate_children_collapse_to_the_last() {
        let json = r#"{"conversationId":"c","conversationStart":"2024-03-01T08:00:00Z",
          "participants":[{"participantId":"p","purpose":"agent","userId":"u","sessions":[{"sessionId":"s",
            "segments":[{"segmentStart":"2024-03-01T08:00:00Z","segmentType":"interact","queueId":"q1"},
                        {"segmentStart":"2024-03-01T08:00:00Z","segmentType":"interact","queueId":"q2"},
                        {"segmentStart":"2024-03-01T08:01:00Z","segmentType":"wrapup","wrapUpCode":"w"}],
            "metrics":[{"name":"tTalk","value":1,"emitDate":"2024-03-01T08:01:00Z"},
                       {"name":"tTalk","value":2,"emitDate":"2024-03-01T08:01:00Z"}]}]}]}"#;
        let rec = ConversationRecord {
            received: serde_json::from_str(json).unwrap(),
            is_final: false,
        };
        let now = db_time(Utc::now());
        let mut rows = ConversationRows::default();
        rows.push(&rec, now, None);
        assert_eq!(rows.segments.len(), 2);
        assert_eq!(rows.segments[0].queue_id, Some("q2"));
        assert_eq!(rows.metrics.len(), 1);
        assert_eq!(rows.metrics[0].value, 2);
        assert_eq!(
            rows.sessions[0].queue_id,
            Some("q1"),
            "first queue of the session"
        );
        assert_eq!(
            rows.sessions[0].session_end, None,
            "a segment is still open"
        );
        assert_eq!(rows.sessions[0].user_id, Some("u"));
    }
}

#[cfg(test)]
mod batch_shape_tests {
    use super::*;
    use crate::storage::schema::*;

    #[test]
    fn sqlite_batch_inserts_are_one_statement() {
        let json = r#"{"conversationId":"c","conversationStart":"2024-03-01T08:00:00Z",
          "participants":[{"participantId":"p","purpose":"agent","userId":"u","sessions":[{"sessionId":"s",
            "segments":[{"segmentStart":"2024-03-01T08:00:00Z","segmentType":"interact","queueId":"q1"},
                        {"segmentStart":"2024-03-01T08:01:00Z","segmentType":"wrapup","wrapUpCode":"w"}],
            "metrics":[{"name":"tTalk","value":1,"emitDate":"2024-03-01T08:01:00Z"},
                       {"name":"tAcw","value":2,"emitDate":"2024-03-01T08:01:00Z"}]}]}]}"#;
        let rec = ConversationRecord {
            received: serde_json::from_str(json).unwrap(),
            is_final: false,
        };
        let mut rows = ConversationRows::default();
        rows.push(&rec, db_time(Utc::now()), None);
        rows.push(&rec, db_time(Utc::now()), None);
        let q = diesel::insert_into(segments::table).values(&rows.segments[..]);
        let s = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&q).to_string();
        assert!(!s.starts_with("BEGIN"), "{s}");
        let q = diesel::insert_into(sessions::table).values(&rows.sessions[..]);
        let s = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&q).to_string();
        assert!(!s.starts_with("BEGIN"), "{s}");
        let q = diesel::insert_into(conversations::table).values(&rows.conversations[..]);
        let s = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&q).to_string();
        assert!(!s.starts_with("BEGIN"), "{s}");
    }
}
