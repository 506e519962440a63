//! diesel table definitions for the migrations in `migrations/mysql` and `migrations/sqlite`
//! (`diesel.toml` points here). Table and column names are a product interface: reports and
//! users' own queries depend on them.
// @generated-style file: keep in step with the migrations (a test checks both backends).

diesel::table! {
    /// One row per conversation, replaced whole on every re-ingest.
    conversations (conversation_id) {
        conversation_id -> Text,
        conversation_start -> Timestamp,
        /// NULL while the conversation is in progress.
        conversation_end -> Nullable<Timestamp>,
        conversation_initiator -> Nullable<Text>,
        originating_direction -> Nullable<Text>,
        /// JSON array of division ids, e.g. `["d-1","d-2"]`.
        division_ids -> Nullable<Text>,
        media_stats_min_conversation_mos -> Nullable<Double>,
        is_final -> Bool,
        /// The conversation exactly as the API sent it.
        raw_json -> Text,
        first_ingested_at -> Timestamp,
        last_ingested_at -> Timestamp,
        /// xxh3-128 of `raw_json` (32 hex digits); NULL for rows written before it existed.
        content_digest -> Nullable<Text>,
    }
}

diesel::table! {
    /// Clustered on `id` (append order); natural key `(conversation_id, participant_id)` unique.
    participants (id) {
        conversation_id -> Text,
        participant_id -> Text,
        participant_name -> Nullable<Text>,
        purpose -> Nullable<Text>,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        external_contact_id -> Nullable<Text>,
        flagged_reason -> Nullable<Text>,
        /// Surrogate key, assigned by the database (never inserted by Sluice).
        id -> BigInt,
    }
}

diesel::table! {
    /// A participant's session. `purpose`/`user_id` are copied from the participant and
    /// `queue_id` is the first queue among the session's segments, so per-queue and per-agent
    /// reports need a single join from `session_metrics`.
    sessions (conversation_id, session_id) {
        conversation_id -> Text,
        session_id -> Text,
        participant_id -> Text,
        purpose -> Nullable<Text>,
        user_id -> Nullable<Text>,
        media_type -> Nullable<Text>,
        direction -> Nullable<Text>,
        queue_id -> Nullable<Text>,
        /// Earliest segment start.
        session_start -> Nullable<Timestamp>,
        /// Latest segment end; NULL while a segment is open.
        session_end -> Nullable<Timestamp>,
        ani -> Nullable<Text>,
        dnis -> Nullable<Text>,
        address_from -> Nullable<Text>,
        address_to -> Nullable<Text>,
        edge_id -> Nullable<Text>,
        provider -> Nullable<Text>,
        remote -> Nullable<Text>,
        recording -> Nullable<Bool>,
        used_routing -> Nullable<Text>,
        selected_agent_id -> Nullable<Text>,
        peer_id -> Nullable<Text>,
        flow_in_type -> Nullable<Text>,
        flow_out_type -> Nullable<Text>,
        acw_skipped -> Nullable<Bool>,
        flow_id -> Nullable<Text>,
        flow_name -> Nullable<Text>,
        flow_type -> Nullable<Text>,
    }
}

diesel::table! {
    /// Natural key (unique): session + start + type (segments carry no id upstream).
    segments (id) {
        conversation_id -> Text,
        session_id -> Text,
        segment_start -> Timestamp,
        segment_type -> Text,
        participant_id -> Text,
        /// NULL while the segment is open.
        segment_end -> Nullable<Timestamp>,
        queue_id -> Nullable<Text>,
        group_id -> Nullable<Text>,
        wrap_up_code -> Nullable<Text>,
        wrap_up_note -> Nullable<Text>,
        disconnect_type -> Nullable<Text>,
        error_code -> Nullable<Text>,
        conference -> Nullable<Bool>,
        /// Surrogate key, assigned by the database (never inserted by Sluice).
        id -> BigInt,
    }
}

diesel::table! {
    /// Natural key (unique): session + name + emitDate. `t*` values are milliseconds.
    session_metrics (id) {
        conversation_id -> Text,
        session_id -> Text,
        name -> Text,
        emit_date -> Timestamp,
        value -> BigInt,
        /// Surrogate key, assigned by the database (never inserted by Sluice).
        id -> BigInt,
    }
}

diesel::table! {
    /// `end_time` NULL for the user's current presence.
    user_presence (user_id, start_time) {
        user_id -> Text,
        start_time -> Timestamp,
        end_time -> Nullable<Timestamp>,
        system_presence -> Nullable<Text>,
        organization_presence_id -> Nullable<Text>,
        last_ingested_at -> Timestamp,
        /// xxh3-128 of the record's fields (32 hex digits); NULL for older rows.
        content_digest -> Nullable<Text>,
    }
}

diesel::table! {
    /// `end_time` NULL for the user's current routing status.
    user_routing_status (user_id, start_time) {
        user_id -> Text,
        start_time -> Timestamp,
        end_time -> Nullable<Timestamp>,
        routing_status -> Nullable<Text>,
        last_ingested_at -> Timestamp,
        /// xxh3-128 of the record's fields (32 hex digits); NULL for older rows.
        content_digest -> Nullable<Text>,
    }
}

diesel::table! {
    /// The checkpoint: one row per time block of a dataset.
    ingest_partitions (id) {
        id -> BigInt,
        dataset -> Text,
        range_start -> Timestamp,
        range_end -> Timestamp,
        status -> Text,
        attempts -> Integer,
        total_hits -> Nullable<BigInt>,
        received -> Nullable<BigInt>,
        verified_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_token -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        is_final -> Bool,
        fetched_at -> Nullable<Timestamp>,
        is_settled -> Bool,
    }
}

diesel::table! {
    /// One row per `sluice backfill`/`run` invocation.
    ingest_runs (id) {
        id -> BigInt,
        command -> Text,
        range_start -> Nullable<Timestamp>,
        range_end -> Nullable<Timestamp>,
        started_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        requests -> BigInt,
        rate_limited_requests -> BigInt,
        rows_written -> BigInt,
        /// Re-fetched conversations whose content differed from the stored copy.
        conversations_changed -> BigInt,
        /// Stored conversations absent from their block's verified re-fetch (deleted upstream).
        conversations_deleted -> BigInt,
        /// Presence and routing-status records deleted the same way.
        user_records_deleted -> BigInt,
    }
}

diesel::table! {
    /// Directory: users (agents), including inactive and deleted ones. Never deleted.
    users (id) {
        id -> Text,
        name -> Nullable<Text>,
        email -> Nullable<Text>,
        /// `active`, `inactive` or `deleted`.
        state -> Nullable<Text>,
        division_id -> Nullable<Text>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        raw_json -> Text,
    }
}

diesel::table! {
    /// Directory: routing queues. Never deleted.
    queues (id) {
        id -> Text,
        name -> Nullable<Text>,
        division_id -> Nullable<Text>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        raw_json -> Text,
    }
}

diesel::table! {
    /// Directory: wrap-up codes. Never deleted.
    wrapup_codes (id) {
        id -> Text,
        name -> Nullable<Text>,
        division_id -> Nullable<Text>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        raw_json -> Text,
    }
}

diesel::table! {
    /// Directory: divisions. Never deleted.
    divisions (id) {
        id -> Text,
        name -> Nullable<Text>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        raw_json -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    conversations,
    participants,
    sessions,
    segments,
    session_metrics,
    user_presence,
    user_routing_status,
    ingest_partitions,
    ingest_runs,
    users,
    queues,
    wrapup_codes,
    divisions,
);

diesel::table! {
    /// The leader lease per OAuth client id: the one instance that fetches (issue #15).
    instance_leases (client_key) {
        client_key -> Text,
        holder -> Text,
        token -> Text,
        expires_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Every running instance (active or standing by) with its last heartbeat.
    instances (instance) {
        instance -> Text,
        client_key -> Text,
        command -> Text,
        role -> Text,
        started_at -> Timestamp,
        seen_at -> Timestamp,
    }
}
