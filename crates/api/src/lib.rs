//! The HTTP API of Functionary: poem-openapi endpoints for tenants (ingest, instances), platform
//! admins (tenants, configs, keys) and operators (health, metrics), and the server around them.
//!
//! Architecture invariant: only this crate knows HTTP. Handlers parse, call the store or the
//! config crate, and map the result; the rules live below.

pub mod admin;
pub mod auth;
mod error;
mod health;
mod id;
mod ingest;
mod instances;
pub mod limits;
pub mod metrics;
mod objects;
mod payload;
mod security;
mod server;
mod state;
mod strict;

pub use error::{ApiError, ErrorBody};
pub use server::{ServerConfig, api_service, app, openapi_json, serve, sync_tenants_dir};
pub use state::AppState;

/// The areas of the API, as the spec groups them.
#[derive(Debug, poem_openapi::Tags)]
enum Tags {
    /// What tenants' backends send: identify calls and events.
    Ingest,
    /// Reading and deleting instances and their events.
    Instances,
    /// Platform administration: tenants, configs, API keys.
    Admin,
    /// Liveness, readiness and metrics.
    Health,
}
