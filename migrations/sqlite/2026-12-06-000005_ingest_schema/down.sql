-- Back to the natural primary keys and the reporting indexes of 2026-11-28-000001; data kept.
CREATE TABLE session_metrics_old (
  conversation_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  name TEXT NOT NULL,
  emit_date TIMESTAMP NOT NULL,
  value BIGINT NOT NULL,
  PRIMARY KEY (conversation_id, session_id, name, emit_date)
);
INSERT INTO session_metrics_old
  SELECT conversation_id, session_id, name, emit_date, value FROM session_metrics ORDER BY id;
DROP TABLE session_metrics;
ALTER TABLE session_metrics_old RENAME TO session_metrics;
CREATE INDEX ix_session_metrics_emit ON session_metrics (emit_date, name);

CREATE TABLE segments_old (
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
INSERT INTO segments_old
  SELECT conversation_id, session_id, segment_start, segment_type, participant_id, segment_end,
         queue_id, group_id, wrap_up_code, wrap_up_note, disconnect_type, error_code, conference
  FROM segments ORDER BY id;
DROP TABLE segments;
ALTER TABLE segments_old RENAME TO segments;
CREATE INDEX ix_segments_start ON segments (segment_start);
CREATE INDEX ix_segments_queue ON segments (queue_id, segment_start);

CREATE INDEX ix_sessions_media ON sessions (media_type, session_start);

CREATE TABLE participants_old (
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
INSERT INTO participants_old
  SELECT conversation_id, participant_id, participant_name, purpose, user_id, team_id,
         external_contact_id, flagged_reason
  FROM participants ORDER BY id;
DROP TABLE participants;
ALTER TABLE participants_old RENAME TO participants;
CREATE INDEX ix_participants_user ON participants (user_id);
