//! The tenant config language of Functionary.
//!
//! A tenant declares its models and events in one YAML file. This crate loads that file safely
//! (size cap, duplicate keys, tags and non-finite numbers refused), checks it against the published
//! schema (`schemas/tenant-config.schema.json`) and the semantic rules the schema can not express,
//! reports every mistake with its JSON pointer and line:column, and compiles a valid config into a
//! [`CompiledConfig`]: one hardened JSON Schema validator per model and event.
//!
//! It needs no database and no network: `functionary check` runs on it alone.

mod check;
mod compiled;
mod diagnostic;
mod document;
mod files;
mod schema;
mod suggest;
mod yaml;

pub use check::{MAX_CONFIG_BYTES, is_valid_slug, load_config};
pub use compiled::{BUILT_IN_BLOCKED_IDS, CompiledConfig, CompiledEvent, CompiledModel};
pub use diagnostic::{Diagnostic, DiagnosticCode, Location};
pub use document::UndeclaredEvents;
pub use files::{ConfigFile, ReadError, config_files_in, read_config_file};
pub use schema::{MAX_SCHEMA_DEPTH, TENANT_CONFIG_SCHEMA, Violation};
