//! The actors: one per file, each with its messages beside it; `work`, `schedule` and `round`
//! hold the plain types and logic the Coordinator and Fetchers drive (tested without a runtime).
pub mod coordinator;
pub mod fetcher;
pub mod rate_limiter;
pub mod round;
pub mod schedule;
pub mod work;
pub mod writer;
