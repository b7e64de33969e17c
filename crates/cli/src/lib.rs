//! The `functionary` command line.
//!
//! Exit codes: 0 success, 1 the input has errors (e.g. `check` found mistakes), 2 usage or I/O
//! errors. Output goes to the writers passed to [`run`], so tests read it without a subprocess.

mod check;
mod migrate;
mod serve;
mod tokens;

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
    /// Run the HTTP server.
    Serve(serve::ServeArgs),
    /// Print an admin token for the admin API.
    Token(tokens::TokenArgs),
    /// Issue API keys for tenants.
    Keys(tokens::KeysArgs),
    /// Print the OpenAPI document without starting a server.
    Openapi,
}

/// Where the database is: `--database`, else `FUNCTIONARY_DATABASE_URL`, else the embedded
/// SQLite default.
#[derive(Debug, clap::Args)]
pub(crate) struct DatabaseArgs {
    /// `sqlite://PATH` (created on first use) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long = "database", env = "FUNCTIONARY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_name = "URL")]
    pub url: String,
}

impl DatabaseArgs {
    /// The signing keys for this database: `FUNCTIONARY_JWT_SECRET`, or for SQLite the secret
    /// kept beside the database file (generated on first use).
    pub(crate) fn signing_keys(&self) -> anyhow::Result<functionary_api::auth::Keys> {
        use anyhow::Context;
        let env_secret = std::env::var("FUNCTIONARY_JWT_SECRET").ok();
        let data_dir =
            match functionary_store::DatabaseUrl::parse(&self.url).map_err(anyhow::Error::msg)? {
                functionary_store::DatabaseUrl::Sqlite(path) => Some(
                    path.parent()
                        .map(std::path::Path::to_path_buf)
                        .unwrap_or_default(),
                ),
                functionary_store::DatabaseUrl::Postgres(_) => None,
            };
        let secret =
            functionary_api::auth::resolve_secret(env_secret.as_deref(), data_dir.as_deref())
                .context("can not resolve the JWT secret")?;
        functionary_api::auth::Keys::new(&secret).context("can not use the JWT secret")
    }
}

/// Runs `work` on a fresh multi-threaded runtime, reporting errors as exit code 2.
pub(crate) fn block_on<F>(err: &mut dyn Write, work: F) -> u8
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(err, "error: can not start the async runtime: {error}");
            return EXIT_USAGE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            let _ = writeln!(err, "error: {error:#}");
            EXIT_USAGE
        }
    }
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
        Command::Serve(args) => serve::run(&args, err),
        Command::Token(args) => tokens::run_token(&args, out, err),
        Command::Keys(args) => tokens::run_keys(&args, out, err),
        Command::Openapi => match writeln!(out, "{}", functionary_api::openapi_json()) {
            Ok(()) => EXIT_OK,
            Err(_) => EXIT_USAGE,
        },
    }
}
