//! The `functionary` command line.
//!
//! Exit codes: 0 success, 1 the input has errors (e.g. `check` found mistakes), 2 usage or I/O
//! errors. Output goes to the writers passed to [`run`], so tests read it without a subprocess.

mod check;
mod migrate;

use std::ffi::OsString;
use std::io::Write;

use clap::{Parser, Subcommand};

/// Exit code: the command ran and found nothing wrong.
pub const EXIT_OK: u8 = 0;
/// Exit code: the input has errors.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: the command was used wrongly or could not read or write what it needs.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "functionary",
    version,
    about = "Multi-tenant identity and event platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lint tenant config files: the published schema plus semantic checks, every error with
    /// its file:line:column. Needs no database and no network.
    Check(check::CheckArgs),
    /// Apply the database migrations this binary embeds (also done at server start).
    Migrate(migrate::MigrateArgs),
}

/// Where the database is: `--database`, else `FUNCTIONARY_DATABASE_URL`, else the embedded
/// SQLite default.
#[derive(Debug, clap::Args)]
pub(crate) struct DatabaseArgs {
    /// `sqlite://PATH` (created on first use) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long = "database", env = "FUNCTIONARY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_name = "URL")]
    pub url: String,
}

/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/functionary.db";

/// Runs the command line `args` (including the program name); returns the exit code.
pub fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let rendered = error.render().to_string();
            let target: &mut dyn Write = if error.use_stderr() { err } else { out };
            // Nothing sensible is left to do when the terminal is gone.
            let _ = target.write_all(rendered.as_bytes());
            return u8::try_from(error.exit_code()).unwrap_or(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Check(args) => check::run(&args, out, err),
        Command::Migrate(args) => migrate::run(&args, out, err),
    }
}
