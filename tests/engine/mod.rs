//! The engine end to end (backfill, hard cases) and the service's /status, /metrics, /readyz.
mod e2e_backfill;
mod e2e_content;
mod e2e_hard;
mod e2e_paths;
mod e2e_settle;
mod service_metrics;
mod service_readyz;
mod service_status;
