//! The Genesys Cloud API client and its serde types.
//!
//! - [`client::GenesysClient`]: the Analytics endpoints Sluice uses, every attempt paced by the
//!   RateLimiter, transient failures retried inside, outcomes classified in [`error`].
//! - [`auth`]: the OAuth client-credentials token cache; [`secret`]: secrets that never print;
//!   [`region`]: the 18 regions and URL overrides; [`model`]: the payload types.
pub mod auth;
pub mod client;
pub mod directory;
pub mod error;
pub mod model;
pub mod region;
pub mod secret;

pub use crate::rate::Priority;
pub use client::{GenesysClient, GenesysSettings, JobKind, RequestObserver, USER_AGENT};
pub use error::ApiError;
pub use region::{Endpoints, Region};
pub use secret::{Credentials, CredentialsError, Secret};
