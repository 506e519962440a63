-- Several instances, one org (issue #15). Keep equivalent to migrations/sqlite.
-- The leader lease: per OAuth client id, the one instance that fetches. Taken when free or
-- expired, renewed by its holder every third of lease_secs; `token` fences a holder that lost it.
CREATE TABLE instance_leases (
  client_key VARCHAR(255) NOT NULL,
  holder VARCHAR(255) NOT NULL,
  token VARCHAR(64) NOT NULL,
  expires_at DATETIME(3) NOT NULL,
  updated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (client_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every running instance, active or standing by, with its last heartbeat (`sluice status`).
CREATE TABLE instances (
  instance VARCHAR(255) NOT NULL,
  client_key VARCHAR(255) NOT NULL,
  command VARCHAR(32) NOT NULL,
  role VARCHAR(16) NOT NULL,
  started_at DATETIME(3) NOT NULL,
  seen_at DATETIME(3) NOT NULL,
  PRIMARY KEY (instance),
  KEY ix_instances_seen (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
