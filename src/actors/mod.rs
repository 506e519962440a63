//! The actors: one per file, each with its messages beside it (the Writer's checkpoint
//! messages and its lanes have files of their own).
pub mod coordinator;
pub mod fetcher;
pub mod rate_limiter;
pub mod work;
pub mod writer;
pub mod writer_checkpoint;
mod writer_lanes;
