//! The actors: one per file, each with its messages beside it.
pub mod coordinator;
pub mod fetcher;
pub mod rate_limiter;
pub mod work;
pub mod writer;
