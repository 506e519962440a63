ALTER TABLE ingest_partitions DROP COLUMN is_settled;
ALTER TABLE ingest_partitions DROP COLUMN fetched_at;
