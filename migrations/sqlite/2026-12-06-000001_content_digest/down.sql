ALTER TABLE ingest_runs DROP COLUMN user_records_deleted;
ALTER TABLE ingest_runs DROP COLUMN conversations_deleted;
ALTER TABLE ingest_runs DROP COLUMN conversations_changed;
ALTER TABLE user_routing_status DROP COLUMN content_digest;
ALTER TABLE user_presence DROP COLUMN content_digest;
ALTER TABLE conversations DROP COLUMN content_digest;
