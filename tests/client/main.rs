//! client tests: one test binary per area keeps the suite's build short (each binary links
//! the whole engine once).
#[path = "../common/mod.rs"]
mod common;

mod client_http;
mod client_sim_faults;
mod rate_limiter_actor;
mod rate_limiter_model;
mod rate_limiter_sim;
