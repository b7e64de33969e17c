//! `functionary migrate [--database URL]`: brings the database schema up to date.

use std::io::Write;

use clap::Args;
use functionary_store::{Store, StoreOptions};

use crate::{DatabaseArgs, block_on};

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

pub(crate) fn run(args: &MigrateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    block_on(err, async {
        Store::open(&args.database.url, StoreOptions::default()).await?;
        writeln!(out, "database is up to date")?;
        Ok(())
    })
}
