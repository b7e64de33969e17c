//! Connections, transactions and migrations for both backends.
//!
//! The identity rules are written once against [`Db`], a borrowed connection of either backend;
//! [`on_db!`] expands a diesel query for both arms, so a query is written once too and only the
//! few statements that differ (advisory locks, row locks) are spelled per backend.
//!
//! Writes run one transaction each on PostgreSQL (which groups concurrent commits itself); on
//! SQLite they go through the pool's writer task, which commits them in groups
//! ([`group_commit`]).

mod group_commit;
mod sqlite_thread;

use std::path::Path;
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool as DeadPool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::error::{StoreError, TxError};

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection, sqlite_thread::SqliteThread>;

/// A connection of either backend, borrowed for one operation or transaction.
pub(crate) enum Db<'c> {
    Pg(&'c mut AsyncPgConnection),
    Sqlite(&'c mut SqliteConn),
}

/// Runs `$body` with `$conn` bound to the concrete connection of `$db`'s backend.
macro_rules! on_db {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Pg(connection) => {
                let $conn = &mut **connection;
                $body
            }
            $crate::db::Db::Sqlite(connection) => {
                let $conn = &mut **connection;
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// Durability of SQLite commits: `Full` survives power loss (the default); `Normal` may lose
/// the last commits on power loss, never on a process crash, and is several times faster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest number of pooled connections.
    pub max_connections: usize,
    /// How long a request waits for a pooled connection before the store is called unavailable.
    pub acquire_timeout: Duration,
    pub sqlite_synchronous: SqliteSynchronous,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            sqlite_synchronous: SqliteSynchronous::Full,
        }
    }
}

/// A pool of connections to one database.
#[derive(Clone)]
pub(crate) enum Pool {
    Pg(DeadPool<AsyncPgConnection>),
    Sqlite {
        pool: DeadPool<SqliteConn>,
        /// SQLite has one writer at a time: writes queue for this pool's writer task, which
        /// applies them in groups of one transaction each.
        writer: group_commit::Writer,
    },
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pg(_) => "Pool::Pg",
            Self::Sqlite { .. } => "Pool::Sqlite",
        })
    }
}

/// Where a database URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(std::path::PathBuf),
}

impl DatabaseUrl {
    /// `sqlite://PATH` (relative or absolute) or `postgres://…` / `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(
                    "sqlite:// needs a file path, e.g. sqlite://data/functionary.db".to_owned(),
                );
            }
            Ok(Self::Sqlite(path.into()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err("database URL must start with sqlite:// or postgres://".to_owned())
        }
    }
}

impl Pool {
    pub(crate) async fn open(
        url: &DatabaseUrl,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        match url {
            DatabaseUrl::Postgres(url) => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.clone());
                let pool = DeadPool::builder(manager)
                    .max_size(options.max_connections)
                    .wait_timeout(Some(options.acquire_timeout))
                    .create_timeout(Some(options.acquire_timeout))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|error| StoreError::Internal(error.to_string()))?;
                Ok(Self::Pg(pool))
            }
            DatabaseUrl::Sqlite(path) => {
                create_parent_dir(path)?;
                let synchronous = match options.sqlite_synchronous {
                    SqliteSynchronous::Full => "FULL",
                    SqliteSynchronous::Normal => "NORMAL",
                };
                let pragmas = format!(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
                );
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.custom_setup = Box::new(move |url| {
                    let pragmas = pragmas.clone();
                    let url = url.to_owned();
                    Box::pin(async move {
                        let mut conn = SqliteConn::establish(&url).await?;
                        SimpleAsyncConnection::batch_execute(&mut conn, &pragmas)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path.to_string_lossy(),
                    config,
                );
                let pool = DeadPool::builder(manager)
                    .max_size(options.max_connections.min(8))
                    .wait_timeout(Some(options.acquire_timeout))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|error| StoreError::Internal(error.to_string()))?;
                Ok(Self::Sqlite {
                    writer: group_commit::Writer::spawn(&pool),
                    pool,
                })
            }
        }
    }

    /// Runs `op` in a write transaction, retrying it when the database says a retry can succeed
    /// (a lost race on a unique id, a serialization failure, a deadlock, a busy file). On SQLite
    /// the transaction may hold other writes too, each in its own savepoint ([`group_commit`]).
    pub(crate) async fn write<O>(&self, op: O) -> Result<O::Output, StoreError>
    where
        O: Operation + Send + 'static,
    {
        match self {
            Self::Pg(pool) => write_pg(pool, &op).await,
            Self::Sqlite { writer, .. } => writer.write(op).await,
        }
    }

    /// Runs `op` outside a transaction: for reads.
    pub(crate) async fn read<O: Operation>(&self, op: &O) -> Result<O::Output, StoreError> {
        let result = match self {
            Self::Pg(pool) => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                op.run(&mut Db::Pg(&mut conn)).await
            }
            Self::Sqlite { pool, .. } => {
                let mut conn = pool.get().await.map_err(unavailable)?;
                op.run(&mut Db::Sqlite(&mut conn)).await
            }
        };
        result.map_err(|error| match error {
            TxError::Rule(error) => error,
            TxError::Db(error) => classify(error),
        })
    }

    /// Applies the migrations this binary embeds that the database has not seen yet.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        self.write(Migrate).await
    }
}

/// Runs `op` in a PostgreSQL transaction of its own, retrying as [`Pool::write`] says.
async fn write_pg<O: Operation>(
    pool: &DeadPool<AsyncPgConnection>,
    op: &O,
) -> Result<O::Output, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut conn = pool.get().await.map_err(unavailable)?;
        let result = if op.needs_transaction() {
            conn.transaction(async |conn| op.run(&mut Db::Pg(conn)).await)
                .await
        } else {
            op.run(&mut Db::Pg(&mut conn)).await
        };
        match result {
            Ok(output) => return Ok(output),
            Err(TxError::Rule(error)) => return Err(error),
            Err(TxError::Db(error)) if is_retryable(&error) && attempt < MAX_ATTEMPTS => {
                drop(conn);
                tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
            }
            Err(TxError::Db(error)) => return Err(classify(error)),
        }
    }
}

/// One store operation, run on a connection of either backend.
pub(crate) trait Operation: Sync {
    type Output: Send;
    fn run<'a>(
        &'a self,
        db: &'a mut Db<'_>,
    ) -> impl Future<Output = Result<Self::Output, TxError>> + Send + 'a;

    /// Whether a write must run in a transaction. An operation whose only change is one
    /// statement (atomic by itself), and whose reads a concurrent write can only invalidate by
    /// making that statement fail with a retryable error, runs without one on PostgreSQL:
    /// no BEGIN and COMMIT round trips. (SQLite writes always share a group transaction.)
    fn needs_transaction(&self) -> bool {
        true
    }
}

const MAX_ATTEMPTS: u32 = 6;

fn is_retryable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
            _,
        ) => true,
        // A row referenced by a new row was deleted meanwhile: the retry sees the deletion.
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.contains("deadlock detected")
                || message.contains("database is locked")
                || message.contains("database table is locked")
        }
        _ => false,
    }
}

fn classify(error: DieselError) -> StoreError {
    if lost_the_database(&error) {
        return StoreError::Unavailable(format!("the database connection failed: {error}"));
    }
    if is_retryable(&error) {
        return StoreError::Unavailable("the database stayed busy".to_owned());
    }
    StoreError::Internal(error.to_string())
}

/// Whether the error says the database went away (closed connection, server shutting down or
/// starting up): the request answers 503 and the pool reconnects when the database is back.
fn lost_the_database(error: &DieselError) -> bool {
    match error {
        // `UnableToSendCommand`: what diesel-async reports for a tokio-postgres error without
        // an SQLSTATE, i.e. the connection itself failed.
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message().to_lowercase();
            [
                "connection closed",
                "connection reset",
                "communicating with",
                "terminating connection",
                "shutting down",
                "starting up",
                "broken pipe",
                "unable to open database",
                "disk i/o error",
            ]
            .iter()
            .any(|marker| message.contains(marker))
        }
        _ => false,
    }
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Unavailable(format!("can not create {}: {error}", parent.display()))
            })
        }
        _ => Ok(()),
    }
}

/// A migration: its version (the folder name under `migrations/<backend>/`) and its SQL.
struct Migration {
    version: &'static str,
    up_postgres: &'static str,
    up_sqlite: &'static str,
}

macro_rules! migration {
    ($version:literal) => {
        Migration {
            version: $version,
            up_postgres: include_str!(concat!(
                "../../../migrations/postgres/",
                $version,
                "/up.sql"
            )),
            up_sqlite: include_str!(concat!("../../../migrations/sqlite/", $version, "/up.sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!("2026-12-04-000001_identity"),
    migration!("2026-12-04-000002_tenant_admin"),
];

struct Migrate;

impl Operation for Migrate {
    type Output = ();

    async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;

        diesel::table! {
            functionary_migrations (version) {
                version -> Text,
                applied_at -> BigInt,
            }
        }
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS functionary_migrations \
                              (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)";
        if let Db::Pg(conn) = db {
            // Two servers starting at once: the second waits, then finds everything applied.
            conn.batch_execute("SELECT pg_advisory_xact_lock(7204031970)")
                .await?;
        }
        on_db!(db, conn => conn.batch_execute(CREATE).await)?;
        let applied: Vec<String> = on_db!(db, conn => {
            functionary_migrations::table
                .select(functionary_migrations::version)
                .load(conn)
                .await
        })?;
        for migration in MIGRATIONS {
            if applied.iter().any(|version| version == migration.version) {
                continue;
            }
            let sql = match db {
                Db::Pg(_) => migration.up_postgres,
                Db::Sqlite(_) => migration.up_sqlite,
            };
            on_db!(db, conn => conn.batch_execute(sql).await)?;
            on_db!(db, conn => {
                diesel::insert_into(functionary_migrations::table)
                    .values((
                        functionary_migrations::version.eq(migration.version),
                        functionary_migrations::applied_at.eq(crate::now_micros()),
                    ))
                    .execute(conn)
                    .await
            })?;
        }
        Ok(())
    }
}
