-- A schema sized for ingest (issue #17). Keep equivalent to migrations/mysql.
-- participants, segments and session_metrics get an `id INTEGER PRIMARY KEY` (SQLite's rowid,
-- which these rowid tables already had: the physical layout is unchanged) so both backends
-- have the same columns; their natural keys stay as UNIQUE indexes (the Writer compares
-- children by them). `sessions` keeps its natural key. Secondary indexes that no report query
-- and no Writer statement uses are dropped (the list and the query each kept one serves are
-- in migrations/mysql/2026-12-06-000005_ingest_schema/up.sql).
-- SQLite cannot add a primary-key column in place: the three tables are copied into new ones
-- (existing rowids become the ids) and renamed, inside the migration's transaction.
DROP INDEX ix_participants_user;
DROP INDEX ix_sessions_media;
DROP INDEX ix_segments_queue;
DROP INDEX ix_segments_start;

CREATE TABLE participants_new (
  conversation_id TEXT NOT NULL,
  participant_id TEXT NOT NULL,
  participant_name TEXT NULL,
  purpose TEXT NULL,
  user_id TEXT NULL,
  team_id TEXT NULL,
  external_contact_id TEXT NULL,
  flagged_reason TEXT NULL,
  id INTEGER PRIMARY KEY NOT NULL
);
INSERT INTO participants_new
  SELECT conversation_id, participant_id, participant_name, purpose, user_id, team_id,
         external_contact_id, flagged_reason, rowid
  FROM participants;
DROP TABLE participants;
ALTER TABLE participants_new RENAME TO participants;
CREATE UNIQUE INDEX ux_participants_key ON participants (conversation_id, participant_id);

CREATE TABLE segments_new (
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
  id INTEGER PRIMARY KEY NOT NULL
);
INSERT INTO segments_new
  SELECT conversation_id, session_id, segment_start, segment_type, participant_id, segment_end,
         queue_id, group_id, wrap_up_code, wrap_up_note, disconnect_type, error_code,
         conference, rowid
  FROM segments;
DROP TABLE segments;
ALTER TABLE segments_new RENAME TO segments;
CREATE UNIQUE INDEX ux_segments_key ON segments (conversation_id, session_id, segment_start, segment_type);
CREATE INDEX ix_segments_start ON segments (segment_start);

CREATE TABLE session_metrics_new (
  conversation_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  name TEXT NOT NULL,
  emit_date TIMESTAMP NOT NULL,
  value BIGINT NOT NULL,
  id INTEGER PRIMARY KEY NOT NULL
);
INSERT INTO session_metrics_new
  SELECT conversation_id, session_id, name, emit_date, value, rowid FROM session_metrics;
DROP TABLE session_metrics;
ALTER TABLE session_metrics_new RENAME TO session_metrics;
CREATE UNIQUE INDEX ux_session_metrics_key ON session_metrics (conversation_id, session_id, name, emit_date);
CREATE INDEX ix_session_metrics_emit ON session_metrics (emit_date, name);
