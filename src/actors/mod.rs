//! The actors: one per file, each with its messages beside it (the Writer's checkpoint
//! messages and its lanes have files of their own); `work`, `schedule` and `round` hold the
//! plain types and logic the Coordinator and Fetchers drive (tested without a runtime).
pub mod coordinator;
pub mod fetcher;
pub mod rate_limiter;
pub mod round;
pub mod schedule;
pub mod work;
pub mod writer;
pub mod writer_checkpoint;
mod writer_lanes;
