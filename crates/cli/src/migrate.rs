//! `functionary migrate [--database URL]`: brings the database schema up to date.

use std::io::Write;

use clap::Args;
use functionary_store::{Store, StoreOptions};

use crate::{DatabaseArgs, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

pub(crate) fn run(args: &MigrateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(err, "can not start the async runtime: {error}");
            return EXIT_USAGE;
        }
    };
    match runtime.block_on(Store::open(&args.database.url, StoreOptions::default())) {
        Ok(_) => {
            let _ = writeln!(out, "database is up to date");
            EXIT_OK
        }
        Err(error) => {
            let _ = writeln!(err, "migration failed: {error}");
            EXIT_USAGE
        }
    }
}
