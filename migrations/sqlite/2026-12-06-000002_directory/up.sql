-- The directory: names for the ids the analytics tables carry. Rows are never deleted: an
-- entity that disappears from the API keeps its last name and its last_seen_at.
-- Keep equivalent to migrations/mysql (a test compares tables and columns).

CREATE TABLE users (
  id TEXT NOT NULL,
  name TEXT NULL,
  email TEXT NULL,
  state TEXT NULL,
  division_id TEXT NULL,
  first_seen_at TIMESTAMP NOT NULL,
  last_seen_at TIMESTAMP NOT NULL,
  raw_json TEXT NOT NULL,
  PRIMARY KEY (id)
);

CREATE TABLE queues (
  id TEXT NOT NULL,
  name TEXT NULL,
  division_id TEXT NULL,
  first_seen_at TIMESTAMP NOT NULL,
  last_seen_at TIMESTAMP NOT NULL,
  raw_json TEXT NOT NULL,
  PRIMARY KEY (id)
);

CREATE TABLE wrapup_codes (
  id TEXT NOT NULL,
  name TEXT NULL,
  division_id TEXT NULL,
  first_seen_at TIMESTAMP NOT NULL,
  last_seen_at TIMESTAMP NOT NULL,
  raw_json TEXT NOT NULL,
  PRIMARY KEY (id)
);

CREATE TABLE divisions (
  id TEXT NOT NULL,
  name TEXT NULL,
  first_seen_at TIMESTAMP NOT NULL,
  last_seen_at TIMESTAMP NOT NULL,
  raw_json TEXT NOT NULL,
  PRIMARY KEY (id)
);
