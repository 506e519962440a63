//! Crash-exact resume, database restart, simulator faults, bad input, secrets (long versions
//! with SLUICE_LONG_TESTS=1).
mod reliability_bad_input;
mod reliability_completion;
mod reliability_crash;
mod reliability_db_restart;
mod reliability_faults;
mod reliability_instances;
mod reliability_leases;
mod reliability_security;
