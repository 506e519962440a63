-- A schema sized for ingest (issue #17). Keep equivalent to migrations/sqlite.
-- participants, segments and session_metrics are clustered on a compact auto-increment `id`
-- (appended: their rows land on the right edge of the tree instead of a random page of a
-- UUID-keyed one); their natural keys stay, as UNIQUE keys, so a conversation's children are
-- still one key range and the Writer compares children by natural key. `sessions` keeps its
-- natural primary key: every metric and wrap-up report joins it by (conversation_id,
-- session_id), and a clustered key lookup there saves each report row a second descent.
-- Secondary indexes that no report query and no Writer statement uses are dropped; kept:
--   ix_conversations_start  completeness, upstream deletion, `sluice digest`, demo (conversation_start range)
--   ix_conversations_open   open conversations for the settle re-fetch (checkpoint.rs: is_final, conversation_start)
--   ix_segments_start       wrapup-daily (segment_start range)
--   ix_session_metrics_emit queue-daily and agent-daily (emit_date range, name IN …)
--   ix_sessions_queue       queue-daily --queue: MariaDB drives the report from the queue's
--                           sessions (EXPLAIN; without it a year's --queue report took 2.5×)
--   ix_sessions_user        agent-daily --agent, the same way
-- Dropped: ix_participants_user, ix_sessions_media, ix_segments_queue (no query filters or
-- joins on them: no report reads participants or filters by media type, and wrap-up's queue is
-- COALESCE(segment's, session's), which no index on segments serves).
-- The tables are rebuilt in place (data kept); down.sql restores the previous keys.
ALTER TABLE participants
  DROP PRIMARY KEY,
  DROP KEY ix_participants_user,
  ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT,
  ADD PRIMARY KEY (id),
  ADD UNIQUE KEY ux_participants_key (conversation_id, participant_id);

ALTER TABLE sessions DROP KEY ix_sessions_media;

ALTER TABLE segments
  DROP PRIMARY KEY,
  DROP KEY ix_segments_queue,
  ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT,
  ADD PRIMARY KEY (id),
  ADD UNIQUE KEY ux_segments_key (conversation_id, session_id, segment_start, segment_type);

ALTER TABLE session_metrics
  DROP PRIMARY KEY,
  ADD COLUMN id BIGINT NOT NULL AUTO_INCREMENT,
  ADD PRIMARY KEY (id),
  ADD UNIQUE KEY ux_session_metrics_key (conversation_id, session_id, name, emit_date);
