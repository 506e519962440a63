-- Several instances, one org (issue #15). Keep equivalent to migrations/mysql.
-- The leader lease: per OAuth client id, the one instance that fetches. Taken when free or
-- expired, renewed by its holder every third of lease_secs; `token` fences a holder that lost it.
CREATE TABLE instance_leases (
  client_key TEXT NOT NULL,
  holder TEXT NOT NULL,
  token TEXT NOT NULL,
  expires_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  PRIMARY KEY (client_key)
);

-- Every running instance, active or standing by, with its last heartbeat (`sluice status`).
CREATE TABLE instances (
  instance TEXT NOT NULL,
  client_key TEXT NOT NULL,
  command TEXT NOT NULL,
  role TEXT NOT NULL,
  started_at TIMESTAMP NOT NULL,
  seen_at TIMESTAMP NOT NULL,
  PRIMARY KEY (instance)
);
CREATE INDEX ix_instances_seen ON instances (seen_at);
