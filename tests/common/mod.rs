//! Helpers shared by the integration tests (each helper file declares itself here).
#![allow(dead_code)]
pub mod content;
pub mod convs;
pub mod db;
pub mod engine;
pub mod limiter_sim;
pub mod process;
pub mod proxy;
pub mod scrape;
pub mod sim;
pub mod stub;
