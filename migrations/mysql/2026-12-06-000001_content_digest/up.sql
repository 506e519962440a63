-- Content digests (xxh3-128 as 32 hex digits) so a re-fetched conversation or user record that
-- did not change is not rewritten; NULL on rows written before this migration = unknown (the
-- next re-fetch rewrites them once). Per-run counts of upstream changes and deletions.
-- Keep equivalent to migrations/sqlite.
ALTER TABLE conversations ADD COLUMN content_digest CHAR(32) NULL;
ALTER TABLE user_presence ADD COLUMN content_digest CHAR(32) NULL;
ALTER TABLE user_routing_status ADD COLUMN content_digest CHAR(32) NULL;
ALTER TABLE ingest_runs
  ADD COLUMN conversations_changed BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN conversations_deleted BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN user_records_deleted BIGINT NOT NULL DEFAULT 0;
