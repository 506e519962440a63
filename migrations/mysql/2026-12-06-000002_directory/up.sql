-- The directory: names for the ids the analytics tables carry. Rows are never deleted: an
-- entity that disappears from the API keeps its last name and its last_seen_at.
-- Keep equivalent to migrations/sqlite (a test compares tables and columns).

CREATE TABLE users (
  id VARCHAR(128) NOT NULL,
  name TEXT NULL,
  email TEXT NULL,
  state VARCHAR(32) NULL,
  division_id VARCHAR(128) NULL,
  first_seen_at DATETIME(3) NOT NULL,
  last_seen_at DATETIME(3) NOT NULL,
  raw_json LONGTEXT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE queues (
  id VARCHAR(128) NOT NULL,
  name TEXT NULL,
  division_id VARCHAR(128) NULL,
  first_seen_at DATETIME(3) NOT NULL,
  last_seen_at DATETIME(3) NOT NULL,
  raw_json LONGTEXT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE wrapup_codes (
  id VARCHAR(128) NOT NULL,
  name TEXT NULL,
  division_id VARCHAR(128) NULL,
  first_seen_at DATETIME(3) NOT NULL,
  last_seen_at DATETIME(3) NOT NULL,
  raw_json LONGTEXT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE divisions (
  id VARCHAR(128) NOT NULL,
  name TEXT NULL,
  first_seen_at DATETIME(3) NOT NULL,
  last_seen_at DATETIME(3) NOT NULL,
  raw_json LONGTEXT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
