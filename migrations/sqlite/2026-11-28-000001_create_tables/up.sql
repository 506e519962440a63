-- Sluice schema (SQLite). Instants are stored by diesel as UTC text 'YYYY-MM-DD HH:MM:SS.fff'.
-- Tables keep their rowid (appends are cheap); the primary keys are unique indexes, so deleting
-- a conversation's children reads one key range. (WITHOUT ROWID measured ~20 % slower here:
-- random UUID keys split pages of the clustered tree.)
-- Keep equivalent to migrations/mysql (a test compares tables and columns).

CREATE TABLE conversations (
  conversation_id TEXT NOT NULL,
  conversation_start TIMESTAMP NOT NULL,
  conversation_end TIMESTAMP NULL,
  conversation_initiator TEXT NULL,
  originating_direction TEXT NULL,
  division_ids TEXT NULL,
  media_stats_min_conversation_mos DOUBLE NULL,
  is_final BOOLEAN NOT NULL,
  raw_json TEXT NOT NULL,
  first_ingested_at TIMESTAMP NOT NULL,
  last_ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (conversation_id)
);
CREATE INDEX ix_conversations_start ON conversations (conversation_start);
CREATE INDEX ix_conversations_open ON conversations (is_final, conversation_start);

CREATE TABLE participants (
  conversation_id TEXT NOT NULL,
  participant_id TEXT NOT NULL,
  participant_name TEXT NULL,
  purpose TEXT NULL,
  user_id TEXT NULL,
  team_id TEXT NULL,
  external_contact_id TEXT NULL,
  flagged_reason TEXT NULL,
  PRIMARY KEY (conversation_id, participant_id)
);
CREATE INDEX ix_participants_user ON participants (user_id);

CREATE TABLE sessions (
  conversation_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  participant_id TEXT NOT NULL,
  purpose TEXT NULL,
  user_id TEXT NULL,
  media_type TEXT NULL,
  direction TEXT NULL,
  queue_id TEXT NULL,
  session_start TIMESTAMP NULL,
  session_end TIMESTAMP NULL,
  ani TEXT NULL,
  dnis TEXT NULL,
  address_from TEXT NULL,
  address_to TEXT NULL,
  edge_id TEXT NULL,
  provider TEXT NULL,
  remote TEXT NULL,
  recording BOOLEAN NULL,
  used_routing TEXT NULL,
  selected_agent_id TEXT NULL,
  peer_id TEXT NULL,
  flow_in_type TEXT NULL,
  flow_out_type TEXT NULL,
  acw_skipped BOOLEAN NULL,
  flow_id TEXT NULL,
  flow_name TEXT NULL,
  flow_type TEXT NULL,
  PRIMARY KEY (conversation_id, session_id)
);
CREATE INDEX ix_sessions_queue ON sessions (queue_id, session_start);
CREATE INDEX ix_sessions_user ON sessions (user_id, session_start);
CREATE INDEX ix_sessions_media ON sessions (media_type, session_start);

CREATE TABLE segments (
  conversation_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  segment_start TIMESTAMP NOT NULL,
  segment_type TEXT NOT NULL,
  participant_id TEXT NOT NULL,
  segment_end TIMESTAMP NULL,
  queue_id TEXT NULL,
  group_id TEXT NULL,
  wrap_up_code TEXT NULL,
  wrap_up_note TEXT NULL,
  disconnect_type TEXT NULL,
  error_code TEXT NULL,
  conference BOOLEAN NULL,
  PRIMARY KEY (conversation_id, session_id, segment_start, segment_type)
);
CREATE INDEX ix_segments_start ON segments (segment_start);
CREATE INDEX ix_segments_queue ON segments (queue_id, segment_start);

CREATE TABLE session_metrics (
  conversation_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  name TEXT NOT NULL,
  emit_date TIMESTAMP NOT NULL,
  value BIGINT NOT NULL,
  PRIMARY KEY (conversation_id, session_id, name, emit_date)
);
CREATE INDEX ix_session_metrics_emit ON session_metrics (emit_date, name);

CREATE TABLE user_presence (
  user_id TEXT NOT NULL,
  start_time TIMESTAMP NOT NULL,
  end_time TIMESTAMP NULL,
  system_presence TEXT NULL,
  organization_presence_id TEXT NULL,
  last_ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (user_id, start_time)
);
CREATE INDEX ix_user_presence_start ON user_presence (start_time);
CREATE INDEX ix_user_presence_end ON user_presence (end_time);

CREATE TABLE user_routing_status (
  user_id TEXT NOT NULL,
  start_time TIMESTAMP NOT NULL,
  end_time TIMESTAMP NULL,
  routing_status TEXT NULL,
  last_ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (user_id, start_time)
);
CREATE INDEX ix_user_routing_status_start ON user_routing_status (start_time);
CREATE INDEX ix_user_routing_status_end ON user_routing_status (end_time);

CREATE TABLE ingest_partitions (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  dataset TEXT NOT NULL,
  range_start TIMESTAMP NOT NULL,
  range_end TIMESTAMP NOT NULL,
  status TEXT NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  total_hits BIGINT NULL,
  received BIGINT NULL,
  verified_at TIMESTAMP NULL,
  last_error TEXT NULL,
  lease_owner TEXT NULL,
  lease_token TEXT NULL,
  lease_expires_at TIMESTAMP NULL,
  updated_at TIMESTAMP NOT NULL,
  is_final BOOLEAN NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX ux_ingest_partitions_range ON ingest_partitions (dataset, range_start, range_end);
CREATE INDEX ix_ingest_partitions_status ON ingest_partitions (status, range_start);

CREATE TABLE ingest_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  command TEXT NOT NULL,
  range_start TIMESTAMP NULL,
  range_end TIMESTAMP NULL,
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP NULL,
  requests BIGINT NOT NULL DEFAULT 0,
  rate_limited_requests BIGINT NOT NULL DEFAULT 0,
  rows_written BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ix_ingest_runs_started ON ingest_runs (started_at);
