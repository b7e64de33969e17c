//! The workspace-wide integration suite, compiled as one test binary.

mod check_cli;
