ALTER TABLE ingest_partitions DROP COLUMN is_settled, DROP COLUMN fetched_at;
