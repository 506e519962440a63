//! engine tests: one test binary per area keeps the suite's build short (each binary links
//! the whole engine once).
#[path = "../common/mod.rs"]
mod common;

mod e2e_backfill;
mod e2e_hard;
mod service_metrics;
mod service_readyz;
mod service_status;
