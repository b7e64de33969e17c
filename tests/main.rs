//! The workspace-wide integration suite, compiled as one test binary.

mod support;

mod check_cli;
mod concurrent_writes;
mod crash;
mod http_api;
mod identity;
mod isolation;
mod model_check;
mod openapi;
mod races;
