//! `functionary serve`: the HTTP server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use functionary_api::{AppState, ServerConfig};
use functionary_store::{SqliteSynchronous, Store, StoreOptions};

use crate::{DatabaseArgs, block_on};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FUNCTIONARY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Load every *.yaml / *.yml in this folder as a tenant config (creates missing tenants,
    /// stores a changed file as a new version).
    #[arg(long, env = "FUNCTIONARY_TENANTS_DIR", value_name = "DIR")]
    tenants: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "FUNCTIONARY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// SQLite durability: `full` survives power loss (default); `normal` is faster and may lose
    /// the last commits on power loss (never on a process crash).
    #[arg(long, env = "FUNCTIONARY_SQLITE_SYNCHRONOUS", value_enum, default_value_t = Synchronous::Full)]
    sqlite_synchronous: Synchronous,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Synchronous {
    Full,
    Normal,
}

pub(crate) fn run(args: &ServeArgs, err: &mut dyn Write) -> u8 {
    init_logging(args.log_format);
    block_on(err, serve(args))
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let keys = args.database.signing_keys()?;
    let options = StoreOptions {
        sqlite_synchronous: match args.sqlite_synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        },
        ..StoreOptions::default()
    };
    let store = Store::open(&args.database.url, options)
        .await
        .with_context(|| format!("can not open the database {}", redact(&args.database.url)))?;
    let state = AppState::new(store, keys);
    if let Some(dir) = &args.tenants {
        let report = functionary_api::sync_tenants_dir(&state, dir)
            .await
            .map_err(|errors| {
                anyhow::anyhow!("tenant configs in {} have errors:\n{errors}", dir.display())
            })?;
        for line in report {
            tracing::info!("{line}");
        }
    }
    functionary_api::serve(
        state,
        ServerConfig {
            listen: args.listen,
            shutdown_grace: Duration::from_secs(10),
        },
    )
    .await
    .with_context(|| format!("can not serve on {}", args.listen))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,poem=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
