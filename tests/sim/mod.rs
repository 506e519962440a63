//! The simulator's API, jobs, limits and data model.
mod sim_api;
mod sim_jobs;
mod sim_limits;
mod sim_model;
mod sim_pipeline;
mod sim_scale;
