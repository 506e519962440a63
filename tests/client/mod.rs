//! GenesysClient and RateLimiter: HTTP, faults, pacing on a virtual clock and against the simulator.
mod client_http;
mod client_sim_faults;
mod rate_limiter_actor;
mod rate_limiter_hostile;
mod rate_limiter_model;
mod rate_limiter_sim;
