//! Rate control, free of actors and I/O: the GCRA token bucket, the adaptive reaction to the
//! 429 ratio, and [`Limiter`], which combines them with the concurrency cap and Retry-After
//! pauses. [`crate::actors::rate_limiter`] wraps a `Limiter` in an actor.
pub mod adaptive;
pub mod gcra;
pub mod limiter;
pub mod settings;
pub mod window;

pub use limiter::{
    Decision, Feedback, Grant, Limiter, LimiterState, Outcome, Priority, RateHeaders, WaitQueue,
    MAX_SERVER_WAIT,
};
pub use settings::{AdaptiveSettings, Pacing, RateLimiterSettings, SettingsError};
