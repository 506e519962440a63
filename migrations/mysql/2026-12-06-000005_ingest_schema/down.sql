-- Back to the natural primary keys and the reporting indexes of 2026-11-28-000001; data kept.
ALTER TABLE session_metrics
  DROP PRIMARY KEY,
  DROP COLUMN id,
  DROP KEY ux_session_metrics_key,
  ADD PRIMARY KEY (conversation_id, session_id, name, emit_date);

ALTER TABLE segments
  DROP PRIMARY KEY,
  DROP COLUMN id,
  DROP KEY ux_segments_key,
  ADD PRIMARY KEY (conversation_id, session_id, segment_start, segment_type),
  ADD KEY ix_segments_queue (queue_id, segment_start);

ALTER TABLE sessions ADD KEY ix_sessions_media (media_type, session_start);

ALTER TABLE participants
  DROP PRIMARY KEY,
  DROP COLUMN id,
  DROP KEY ux_participants_key,
  ADD PRIMARY KEY (conversation_id, participant_id),
  ADD KEY ix_participants_user (user_id);
