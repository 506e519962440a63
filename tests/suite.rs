//! The integration suite: one test binary, because each binary links the whole engine and the
//! suite's build time is mostly linking and monomorphizing it again per binary. Areas are
//! modules; run one with e.g. `cargo test --release --test suite reliability::`.
//!
//! Tests run in parallel; those that use the shared MariaDB server claim it
//! (`common::db::mariadb_shared`), and the one that stops it waits for the others.
#[path = "common/mod.rs"]
mod common;

#[path = "client/mod.rs"]
mod client;
#[path = "engine/mod.rs"]
mod engine;
#[path = "reliability/mod.rs"]
mod reliability;
#[path = "report/mod.rs"]
mod report;
#[path = "sim/mod.rs"]
mod sim;
#[path = "storage/mod.rs"]
mod storage;
