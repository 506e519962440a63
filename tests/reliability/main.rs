//! reliability tests: one test binary per area keeps the suite's build short (each binary links
//! the whole engine once).
#[path = "../common/mod.rs"]
mod common;

mod reliability_bad_input;
mod reliability_crash;
mod reliability_db_restart;
mod reliability_faults;
mod reliability_security;
