//! `functionary token admin` and `functionary keys issue`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use functionary_api::auth::Scope;
use functionary_store::{Store, StoreOptions};

use crate::{DatabaseArgs, block_on};

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    kind: TokenKind,
}

#[derive(Debug, Subcommand)]
enum TokenKind {
    /// An admin token for /admin/v1 (same secret resolution as `serve`).
    Admin {
        /// How long the token is valid, in hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Issue a new API key for a tenant and print its token.
    Issue {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: ingest (identify, events, batch), read (GET and DELETE).
        #[arg(long, value_delimiter = ',', default_value = "ingest,read")]
        scopes: Vec<String>,
        /// A label for people, e.g. "production backend".
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub(crate) fn run_token(args: &TokenArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let TokenKind::Admin { hours, database } = &args.kind;
    block_on(err, async {
        let keys = database.signing_keys()?;
        let token = keys.issue_admin_token(Duration::from_secs(hours.saturating_mul(3600)))?;
        writeln!(out, "{token}")?;
        Ok(())
    })
}

pub(crate) fn run_keys(args: &KeysArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let KeysAction::Issue {
        tenant,
        scopes,
        name,
        database,
    } = &args.action;
    block_on(err, async {
        let scopes = scopes
            .iter()
            .map(|scope| {
                Scope::parse(scope.trim())
                    .with_context(|| format!("unknown scope {scope:?} (known: ingest, read)"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let keys = database.signing_keys()?;
        let store = Store::open(&database.url, StoreOptions::default()).await?;
        let state = functionary_api::AppState::new(store, keys);
        let tenant = state.store.tenant_by_slug(tenant).await?.with_context(|| {
            format!("no tenant `{tenant}` (create it with the admin API or serve --tenants)")
        })?;
        let issued = functionary_api::admin::issue_key(&state, &tenant, name.as_deref(), &scopes)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        writeln!(out, "{}", issued.token)?;
        Ok(())
    })
}
