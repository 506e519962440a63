//! storage tests: one test binary per area keeps the suite's build short (each binary links
//! the whole engine once).
#[path = "../common/mod.rs"]
mod common;

mod storage_cli;
mod storage_reports;
mod storage_schema;
mod storage_writer;
mod storage_writer_actor;
