//! Storage: the database Sluice fills and users report from.
//!
//! Two backends serve the same schema: MySQL/MariaDB for production (`DATABASE_URL=mysql://…`)
//! and an embedded SQLite file by default (`sluice.db`). Both are driven through diesel's sync
//! API — MySQL via diesel-async's pure-Rust `AsyncConnectionWrapper`, SQLite bundled — so every
//! query is written once and run on either arm of [`Connection`] by the [`dispatch!`] macro.
//!
//! Guarantees:
//! - re-ingesting a conversation replaces it and all its children in one transaction
//!   ([`write`], [`rewrite`]: only the rows that differ are rewritten, children no longer
//!   sent are deleted), so the tables never hold duplicates or stale children;
//! - a partition's completion is committed in the same transaction as its last rows, fenced by
//!   its lease token ([`checkpoint`], [`write`]);
//! - a partition is never completed when a page of its lease was not written ([`ledger`]);
//! - a re-fetched conversation whose content digest is unchanged is not rewritten, and what a
//!   block's verified re-fetch no longer holds was deleted upstream and is deleted here, in the
//!   completing transaction ([`digest`], [`upstream`]);
//! - with several Writer connections, a partition's pages and completion go to one of them in
//!   order, and a verified completion's deletions never race another one's writes ([`lanes`]);
//! - migrations are embedded in the binary and run at start ([`migrations`]).
pub mod batch_writer;
pub mod checkpoint;
pub mod connection;
pub mod digest;
pub mod directory;
pub mod instances;
pub mod lanes;
pub mod ledger;
pub mod migrations;
pub mod models;
pub mod prepared;
pub mod reopen;
pub mod rewrite;
pub mod runs;
pub mod schema;
pub mod stored_time;
pub mod upstream;
pub mod wal;
pub mod write;
pub mod writer_settings;

pub use checkpoint::{Dataset, NewPartition, PartitionRow, PartitionStatus};
pub use connection::{connect, Backend, Connection, DatabaseUrl, StorageError};
pub use migrations::run_migrations;
