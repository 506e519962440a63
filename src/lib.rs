//! Sluice pulls Genesys Cloud analytics history (conversation details, user presence and routing
//! status) into MySQL — or an embedded SQLite file — without tripping the org's rate limits, then
//! keeps it in sync.
//!
//! Architecture (an actix actor system, one actor per file under [`actors`]):
//! - **Coordinator** partitions the time range into atomic blocks, keeps the checkpoint, hands
//!   blocks to Fetchers, applies the watermark, and switches from backfill to catch-up polling.
//! - **RateLimiter** hands out tokens under a concurrency cap, obeys Retry-After, and throttles
//!   adaptively on the 429 ratio.
//! - **Fetchers** do the HTTP requests and pagination and verify what they received (totalHits).
//! - **Writer** batches diesel inserts, committing a partition's completion with its last rows.
//!
//! [`genesys`] is the API client and its serde types, [`storage`] the schema, migrations and
//! checkpoint, [`sim`] the simulator of the Analytics API used by tests, benchmarks and the demo.
pub mod actors;
pub mod admin;
pub mod bench;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod directory;
pub mod engine;
pub mod fetch;
pub mod genesys;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod rate;
pub mod report;
pub mod settle;
pub mod sim;
pub mod status;
pub mod storage;
pub mod verify;

/// The planning module's former name, kept for code written against it.
pub use plan as partition;
