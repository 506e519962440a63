//! sim tests: one test binary per area keeps the suite's build short (each binary links
//! the whole engine once).
#[path = "../common/mod.rs"]
mod common;

mod sim_api;
mod sim_jobs;
mod sim_limits;
mod sim_model;
