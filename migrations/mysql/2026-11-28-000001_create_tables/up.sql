-- Sluice schema (MySQL/MariaDB). Instants are DATETIME(3) in UTC. Text compares byte-wise
-- (utf8mb4_bin) like SQLite, so ids are case-sensitive on both backends.
-- Keep equivalent to migrations/sqlite (a test compares tables and columns).

CREATE TABLE conversations (
  conversation_id VARCHAR(128) NOT NULL,
  conversation_start DATETIME(3) NOT NULL,
  conversation_end DATETIME(3) NULL,
  conversation_initiator VARCHAR(32) NULL,
  originating_direction VARCHAR(32) NULL,
  division_ids TEXT NULL,
  media_stats_min_conversation_mos DOUBLE NULL,
  is_final BOOLEAN NOT NULL,
  raw_json LONGTEXT NOT NULL,
  first_ingested_at DATETIME(3) NOT NULL,
  last_ingested_at DATETIME(3) NOT NULL,
  PRIMARY KEY (conversation_id),
  KEY ix_conversations_start (conversation_start),
  KEY ix_conversations_open (is_final, conversation_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE participants (
  conversation_id VARCHAR(128) NOT NULL,
  participant_id VARCHAR(128) NOT NULL,
  participant_name TEXT NULL,
  purpose VARCHAR(32) NULL,
  user_id VARCHAR(128) NULL,
  team_id VARCHAR(128) NULL,
  external_contact_id VARCHAR(128) NULL,
  flagged_reason VARCHAR(64) NULL,
  PRIMARY KEY (conversation_id, participant_id),
  KEY ix_participants_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE sessions (
  conversation_id VARCHAR(128) NOT NULL,
  session_id VARCHAR(128) NOT NULL,
  participant_id VARCHAR(128) NOT NULL,
  purpose VARCHAR(32) NULL,
  user_id VARCHAR(128) NULL,
  media_type VARCHAR(32) NULL,
  direction VARCHAR(16) NULL,
  queue_id VARCHAR(128) NULL,
  session_start DATETIME(3) NULL,
  session_end DATETIME(3) NULL,
  ani TEXT NULL,
  dnis TEXT NULL,
  address_from TEXT NULL,
  address_to TEXT NULL,
  edge_id VARCHAR(128) NULL,
  provider VARCHAR(128) NULL,
  remote TEXT NULL,
  recording BOOLEAN NULL,
  used_routing VARCHAR(32) NULL,
  selected_agent_id VARCHAR(128) NULL,
  peer_id VARCHAR(128) NULL,
  flow_in_type VARCHAR(32) NULL,
  flow_out_type VARCHAR(32) NULL,
  acw_skipped BOOLEAN NULL,
  flow_id VARCHAR(128) NULL,
  flow_name TEXT NULL,
  flow_type VARCHAR(64) NULL,
  PRIMARY KEY (conversation_id, session_id),
  KEY ix_sessions_queue (queue_id, session_start),
  KEY ix_sessions_user (user_id, session_start),
  KEY ix_sessions_media (media_type, session_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE segments (
  conversation_id VARCHAR(128) NOT NULL,
  session_id VARCHAR(128) NOT NULL,
  segment_start DATETIME(3) NOT NULL,
  segment_type VARCHAR(32) NOT NULL,
  participant_id VARCHAR(128) NOT NULL,
  segment_end DATETIME(3) NULL,
  queue_id VARCHAR(128) NULL,
  group_id VARCHAR(128) NULL,
  wrap_up_code VARCHAR(128) NULL,
  wrap_up_note TEXT NULL,
  disconnect_type VARCHAR(32) NULL,
  error_code VARCHAR(128) NULL,
  conference BOOLEAN NULL,
  PRIMARY KEY (conversation_id, session_id, segment_start, segment_type),
  KEY ix_segments_start (segment_start),
  KEY ix_segments_queue (queue_id, segment_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE session_metrics (
  conversation_id VARCHAR(128) NOT NULL,
  session_id VARCHAR(128) NOT NULL,
  name VARCHAR(64) NOT NULL,
  emit_date DATETIME(3) NOT NULL,
  value BIGINT NOT NULL,
  PRIMARY KEY (conversation_id, session_id, name, emit_date),
  KEY ix_session_metrics_emit (emit_date, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE user_presence (
  user_id VARCHAR(128) NOT NULL,
  start_time DATETIME(3) NOT NULL,
  end_time DATETIME(3) NULL,
  system_presence VARCHAR(32) NULL,
  organization_presence_id VARCHAR(128) NULL,
  last_ingested_at DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, start_time),
  KEY ix_user_presence_start (start_time),
  KEY ix_user_presence_end (end_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE user_routing_status (
  user_id VARCHAR(128) NOT NULL,
  start_time DATETIME(3) NOT NULL,
  end_time DATETIME(3) NULL,
  routing_status VARCHAR(32) NULL,
  last_ingested_at DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, start_time),
  KEY ix_user_routing_status_start (start_time),
  KEY ix_user_routing_status_end (end_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE ingest_partitions (
  id BIGINT NOT NULL AUTO_INCREMENT,
  dataset VARCHAR(32) NOT NULL,
  range_start DATETIME(3) NOT NULL,
  range_end DATETIME(3) NOT NULL,
  status VARCHAR(16) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  total_hits BIGINT NULL,
  received BIGINT NULL,
  verified_at DATETIME(3) NULL,
  last_error TEXT NULL,
  lease_owner VARCHAR(255) NULL,
  lease_token VARCHAR(64) NULL,
  lease_expires_at DATETIME(3) NULL,
  updated_at DATETIME(3) NOT NULL,
  is_final BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (id),
  UNIQUE KEY ux_ingest_partitions_range (dataset, range_start, range_end),
  KEY ix_ingest_partitions_status (status, range_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE ingest_runs (
  id BIGINT NOT NULL AUTO_INCREMENT,
  command VARCHAR(32) NOT NULL,
  range_start DATETIME(3) NULL,
  range_end DATETIME(3) NULL,
  started_at DATETIME(3) NOT NULL,
  ended_at DATETIME(3) NULL,
  requests BIGINT NOT NULL DEFAULT 0,
  rate_limited_requests BIGINT NOT NULL DEFAULT 0,
  rows_written BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY ix_ingest_runs_started (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
