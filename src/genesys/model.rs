//! Serde types for the Genesys Cloud Analytics payloads Sluice reads and the simulator serves.
//!
//! Field names follow the official models (camelCase, see `shared/genesys-api.md`). Types are
//! tolerant: unknown fields are ignored, optional fields may be missing, and enum-like fields are
//! kept as strings so a value Genesys adds tomorrow does not break ingestion. They are strict only
//! where the engine depends on a field (`conversationId`, `conversationStart`, a segment's start,
//! a metric's name/value/emitDate, a status record's `startTime`). On output, absent values are
//! left out (never `null`) and instants are written as Genesys does: UTC with milliseconds.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Instants on the wire: `2024-03-01T08:00:00.120Z`.
pub mod instant {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_instant(&s).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<DateTime<Utc>>` fields.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            s.map(|s| super::super::parse_instant(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Parses an ISO-8601 / RFC 3339 instant (`Z` or an offset; fractional seconds optional).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("invalid instant {s:?}: {e}"))
}

/// A query interval `start/end` (ISO-8601 instants joined by `/`), end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Interval { start, end }
    }

    /// Parses `a/b`; rejects a missing half, unparsable instants and `end <= start`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('/')
            .ok_or_else(|| format!("interval {s:?} is not two ISO-8601 instants joined by '/'"))?;
        let start = parse_instant(a)?;
        let end = parse_instant(b)?;
        if end <= start {
            return Err(format!("interval {s:?} ends before it starts"));
        }
        Ok(Interval { start, end })
    }

    pub fn duration(&self) -> chrono::Duration {
        self.end - self.start
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            self.end.to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Interval::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------------------------

/// `AnalyticsConversation` (jobs) / `AnalyticsConversationWithoutAttributes` (query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub conversation_id: String,
    #[serde(with = "instant")]
    pub conversation_start: DateTime<Utc>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation_end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_initiator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originating_direction: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub division_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_stats_min_conversation_mos: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_stats_min_conversation_r_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_participation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_served: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Participant>,
}

/// `AnalyticsParticipant[WithoutAttributes]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub participant_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_name: Option<String>,
    /// `customer`, `ivr`, `acd`, `agent`, … (kept as text: new values must not break ingestion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged_reason: Option<String>,
    /// Only in job results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
}

/// `AnalyticsSession` (the ingestion-relevant subset; unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ani: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_routings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_routing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_in_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_out_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acw_skipped: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<SessionMetric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
}

/// `AnalyticsConversationSegment`. Segments carry no id: key them by session + start + type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    #[serde(with = "instant")]
    pub segment_start: DateTime<Utc>,
    /// Absent while the segment is still open.
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up_note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_routing_skill_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sip_response_codes: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q850_response_codes: Vec<i64>,
}

/// `AnalyticsSessionMetric`: `t*` durations in milliseconds, `n*` counts, `o*` observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMetric {
    pub name: String,
    pub value: i64,
    #[serde(with = "instant")]
    pub emit_date: DateTime<Utc>,
}

/// `AnalyticsFlow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_target_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_target_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending_language: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Queries (request bodies)
// ---------------------------------------------------------------------------------------------

/// `PagingSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    pub page_size: i64,
    pub page_number: i64,
}

/// A filter (`type` and/or, nested `clauses`, `predicates`), same shape for every `*Filters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clauses: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicates: Vec<Predicate>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<serde_json::Value>,
}

/// `ConversationQuery`: body of `POST /api/v2/analytics/conversations/details/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQuery {
    pub interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<Filter>,
}

/// `AsyncConversationQuery`: body of `POST /api/v2/analytics/conversations/details/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncConversationQuery {
    pub interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_of_day_interval_matching: Option<bool>,
}

/// `UserDetailsQuery`: body of `POST /api/v2/analytics/users/details/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDetailsQuery {
    pub interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presence_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_status_filters: Vec<Filter>,
}

/// `AsyncUserDetailsQuery`: body of `POST /api/v2/analytics/users/details/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncUserDetailsQuery {
    pub interval: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presence_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_status_filters: Vec<Filter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A conversation as received: the typed view the engine relies on, plus the exact JSON text of
/// that conversation as the API sent it (stored as `raw_json`). Deserialising fails when the
/// typed view cannot be built, so a page is never half-used.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedConversation {
    pub conversation: Conversation,
    pub raw_json: String,
}

impl<'de> Deserialize<'de> for ReceivedConversation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <Box<serde_json::value::RawValue>>::deserialize(d)?;
        let conversation = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(ReceivedConversation {
            conversation,
            raw_json: raw.get().to_owned(),
        })
    }
}

impl Serialize for ReceivedConversation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.raw_json.clone()) {
            Ok(raw) => raw.serialize(s),
            Err(_) => self.conversation.serialize(s),
        }
    }
}

/// `AnalyticsConversationQueryResponse`. Generic over the conversation so the engine can keep
/// each conversation's raw bytes (`Box<RawValue>`) while the simulator serialises typed ones.
/// A page past the end has no `conversations` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQueryResponse<C = Conversation> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversations: Option<Vec<C>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<i64>,
}

/// `AnalyticsConversationAsyncQueryResponse`: a page of job results; `cursor` absent on the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationJobResults<C = Conversation> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversations: Option<Vec<C>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_availability_date: Option<DateTime<Utc>>,
}

/// `AnalyticsUserDetail`: one user's presence and routing-status timelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDetail {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_presence: Vec<PresenceRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_status: Vec<RoutingStatusRecord>,
}

/// `AnalyticsUserPresenceRecord`; the current record has no `endTime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceRecord {
    #[serde(with = "instant")]
    pub start_time: DateTime<Utc>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_presence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_presence_id: Option<String>,
}

/// `AnalyticsRoutingStatusRecord`; the current record has no `endTime`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingStatusRecord {
    #[serde(with = "instant")]
    pub start_time: DateTime<Utc>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_status: Option<String>,
}

/// `AnalyticsUserDetailsQueryResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDetailsQueryResponse<U = UserDetail> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_details: Option<Vec<U>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hits: Option<i64>,
}

/// `AnalyticsUserDetailsAsyncQueryResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserJobResults<U = UserDetail> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_details: Option<Vec<U>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_availability_date: Option<DateTime<Utc>>,
}

/// `AsyncQueryResponse`: answer to a job submission (HTTP 202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncQueryResponse {
    pub job_id: String,
}

/// Job states of `AsyncQueryStatus`.
pub mod job_state {
    pub const QUEUED: &str = "QUEUED";
    pub const PENDING: &str = "PENDING";
    pub const FAILED: &str = "FAILED";
    pub const CANCELLED: &str = "CANCELLED";
    pub const FULFILLED: &str = "FULFILLED";
    pub const EXPIRED: &str = "EXPIRED";
}

/// A job's `state` as Sluice acts on it. Parsing never fails: a state Genesys adds later (or
/// garbage) is [`JobState::Unknown`], which callers treat as "not ready yet, poll again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Pending,
    Fulfilled,
    Failed,
    Cancelled,
    Expired,
    Unknown,
}

impl JobState {
    /// The state named by `s` (surrounding blanks and letter case ignored).
    pub fn parse(s: &str) -> JobState {
        let s = s.trim();
        let is = |name: &str| s.eq_ignore_ascii_case(name);
        if is(job_state::QUEUED) {
            JobState::Queued
        } else if is(job_state::PENDING) {
            JobState::Pending
        } else if is(job_state::FULFILLED) {
            JobState::Fulfilled
        } else if is(job_state::FAILED) {
            JobState::Failed
        } else if is(job_state::CANCELLED) {
            JobState::Cancelled
        } else if is(job_state::EXPIRED) {
            JobState::Expired
        } else {
            JobState::Unknown
        }
    }

    /// The job ended without results (they will never come: submit a new job or fall back).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Cancelled | JobState::Expired
        )
    }
}

/// `AsyncQueryStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncQueryStatus {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub submission_date: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_date: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_date: Option<DateTime<Utc>>,
}

impl AsyncQueryStatus {
    /// The typed [`JobState`] of `state`.
    pub fn job_state(&self) -> JobState {
        JobState::parse(&self.state)
    }
}

/// `DataAvailabilityResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataAvailability {
    #[serde(
        default,
        with = "instant::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_availability_date: Option<DateTime<Utc>>,
}

/// OAuth token answer.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    pub expires_in: i64,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// `ErrorBody`: every Genesys error answer (400, 401, 404, 429, 5xx …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_with_params: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_params: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
    #[serde(default)]
    pub errors: Vec<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_name: Option<String>,
}

/// The optional `limit` object of a 429 body (since June 2023).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitInfo {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub value: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_round_trips_and_rejects_garbage() {
        let i = Interval::parse("2024-03-01T00:00:00Z/2024-03-02T00:00:00.000Z").unwrap();
        assert_eq!(
            i.to_string(),
            "2024-03-01T00:00:00.000Z/2024-03-02T00:00:00.000Z"
        );
        assert!(Interval::parse("2024-03-01T00:00:00Z").is_err());
        assert!(Interval::parse("2024-03-02T00:00:00Z/2024-03-01T00:00:00Z").is_err());
        assert!(Interval::parse("yesterday/today").is_err());
    }

    #[test]
    fn in_progress_conversation_omits_absent_fields() {
        let json = r#"{"conversationId":"c-1","conversationStart":"2024-03-01T08:00:00.120Z",
            "unknownField":{"x":1},"participants":[{"participantId":"p","sessions":[{"sessionId":"s",
            "segments":[{"segmentStart":"2024-03-01T08:00:00.120Z","segmentType":"interact"}]}]}]}"#;
        let c: Conversation = serde_json::from_str(json).unwrap();
        assert!(c.conversation_end.is_none());
        let out = serde_json::to_string(&c).unwrap();
        assert!(!out.contains("null"), "{out}");
        assert!(!out.contains("conversationEnd"));
        assert!(out.contains(r#""conversationStart":"2024-03-01T08:00:00.120Z""#));
    }

    #[test]
    fn received_conversation_keeps_raw_text_and_rejects_broken_ones() {
        let body = r#"{"totalHits":2,"conversations":[{"conversationId":"a","conversationStart":"2024-03-01T08:00:00.000Z","extra":[1, 2]}]}"#;
        let page: ConversationQueryResponse<ReceivedConversation> =
            serde_json::from_str(body).unwrap();
        let c = &page.conversations.unwrap()[0];
        assert_eq!(c.conversation.conversation_id, "a");
        assert!(c.raw_json.contains(r#""extra":[1, 2]"#));
        let broken =
            r#"{"totalHits":1,"conversations":[{"conversationStart":"2024-03-01T08:00:00.000Z"}]}"#;
        assert!(
            serde_json::from_str::<ConversationQueryResponse<ReceivedConversation>>(broken)
                .is_err()
        );
    }

    #[test]
    fn conversation_without_id_is_rejected() {
        let json = r#"{"conversationStart":"2024-03-01T08:00:00.120Z"}"#;
        assert!(serde_json::from_str::<Conversation>(json).is_err());
    }

    #[test]
    fn job_states_parse_and_unknown_ones_do_not_fail() {
        assert_eq!(JobState::parse("FULFILLED"), JobState::Fulfilled);
        assert_eq!(JobState::parse(" pending "), JobState::Pending);
        assert!(JobState::parse("EXPIRED").is_failure());
        assert_eq!(JobState::parse("SOMETHING_NEW"), JobState::Unknown);
        assert!(!JobState::Unknown.is_failure());
    }

    /// Every parser of server input takes any text without panicking; what parses is sane.
    mod hostile_input {
        use super::super::*;
        use proptest::prelude::*;

        fn instant_like() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,40}",
                "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
            ]
        }

        proptest! {
            #[test]
            fn instants_parse_or_err(s in instant_like()) {
                if let Ok(t) = parse_instant(&s) {
                    // What parses prints and parses back to the same millisecond.
                    let again = parse_instant(&instant::format(&t)).unwrap();
                    prop_assert_eq!(again.timestamp_millis(), t.timestamp_millis());
                }
            }

            #[test]
            fn intervals_parse_or_err(a in instant_like(), b in instant_like(), junk in "\\PC{0,30}") {
                for s in [format!("{a}/{b}"), junk.clone(), format!("{junk}/{a}")] {
                    if let Ok(i) = Interval::parse(&s) {
                        prop_assert!(i.start < i.end);
                        prop_assert!(i.duration() > chrono::Duration::zero());
                    }
                }
            }

            #[test]
            fn job_states_never_fail(s in "\\PC{0,20}") {
                let st = JobState::parse(&s);
                let known = [job_state::QUEUED, job_state::PENDING, job_state::FULFILLED,
                    job_state::FAILED, job_state::CANCELLED, job_state::EXPIRED];
                prop_assert_eq!(st == JobState::Unknown,
                    !known.iter().any(|k| s.trim().eq_ignore_ascii_case(k)));
            }

            #[test]
            fn response_bodies_parse_or_err(body in "\\PC{0,200}", state in "\\PC{0,12}", date in instant_like()) {
                let _ = serde_json::from_str::<ConversationQueryResponse<ReceivedConversation>>(&body);
                let _ = serde_json::from_str::<ConversationJobResults<ReceivedConversation>>(&body);
                let _ = serde_json::from_str::<UserDetailsQueryResponse>(&body);
                let _ = serde_json::from_str::<UserJobResults>(&body);
                let _ = serde_json::from_str::<AsyncQueryResponse>(&body);
                let _ = serde_json::from_str::<DataAvailability>(&body);
                let _ = serde_json::from_str::<ErrorBody>(&body);
                let status = serde_json::json!({"state": state, "submissionDate": date}).to_string();
                if let Ok(s) = serde_json::from_str::<AsyncQueryStatus>(&status) {
                    let _ = s.job_state();
                }
                let page = serde_json::json!({"conversations": [{"conversationId": "c", "conversationStart": date}]}).to_string();
                let _ = serde_json::from_str::<ConversationQueryResponse<ReceivedConversation>>(&page);
            }
        }
    }
}
