-- Settle (issue #14). Keep equivalent to migrations/mysql.
-- fetched_at: when the partition's last fetch completed; is_settled: that completion came at
-- least settle_hours after range_end (Genesys's nightly pipeline no longer rewrites the block),
-- so no settle re-fetch is due. Blocks done before this migration count as settled when their
-- last update came 96 h (the default settle_hours) after their end.
ALTER TABLE ingest_partitions ADD COLUMN fetched_at TIMESTAMP NULL;
ALTER TABLE ingest_partitions ADD COLUMN is_settled BOOLEAN NOT NULL DEFAULT 0;
UPDATE ingest_partitions SET fetched_at = updated_at WHERE status IN ('done', 'unverified');
UPDATE ingest_partitions SET is_settled = 1
  WHERE status = 'done' AND updated_at >= datetime(range_end, '+96 hours');
