//! The ceiling: the same writes issued straight to the database as raw SQL through the same
//! driver (diesel), with nothing in between — no HTTP, no auth, no validation, and only the
//! statements the write itself needs. Also the bulk preload and the row counts of the check.
//!
//! PostgreSQL: a pool with one connection per client; each identify is one transaction
//! (lookup, insert or lock + update, event), an event is a lookup and an insert, a batch is one
//! transaction with a lookup of all ids and one multi-row insert. SQLite: one writer connection
//! (SQLite has one writer), each write one `BEGIN IMMEDIATE` transaction run synchronously on
//! the connection's thread, in the same `synchronous` mode as the server.
//!
//! The statements use `$n` placeholders numbered in order of first use, which SQLite also
//! binds by position, so both backends run the same text except where PostgreSQL takes an
//! array (`= ANY($n)`, `unnest`).

use std::sync::Arc;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryableByName};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use functionary_store::SqliteSynchronous;
use serde_json::{Value, json};

use crate::load::Acked;
use crate::workload::{MODEL, Write};

type SqliteWriter = SyncConnectionWrapper<SqliteConnection>;
type Result<T> = std::result::Result<T, diesel::result::Error>;

/// Raw SQL access to the bench database.
#[derive(Clone)]
pub enum Ceiling {
    Pg(Pool<AsyncPgConnection>),
    Sqlite(Arc<tokio::sync::Mutex<SqliteWriter>>),
}

impl std::fmt::Debug for Ceiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pg(_) => "Ceiling::Pg",
            Self::Sqlite(_) => "Ceiling::Sqlite",
        })
    }
}

const HOLDERS_PG: &str = "SELECT external_id, instance_id FROM instance_ids \
     WHERE tenant_id = $1 AND model = $2 AND external_id = ANY($3)";
const HOLDER: &str = "SELECT external_id, instance_id FROM instance_ids \
     WHERE tenant_id = $1 AND model = $2 AND external_id = $3";
const INSERT_INSTANCE: &str = "INSERT INTO instances \
     (tenant_id, id, model, properties, property_clock, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6)";
const INSERT_IDS: &str = "INSERT INTO instance_ids (tenant_id, model, external_id, instance_id) \
     VALUES ($1, $2, $3, $4), ($1, $2, $5, $4)";
const LOCK_INSTANCE_PG: &str = "SELECT properties, property_clock FROM instances \
     WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE";
const READ_INSTANCE: &str =
    "SELECT properties, property_clock FROM instances WHERE tenant_id = $1 AND id = $2";
const UPDATE_INSTANCE: &str = "UPDATE instances SET properties = $1, property_clock = $2, \
     updated_at = $3 WHERE tenant_id = $4 AND id = $5";
const INSERT_EVENT: &str = "INSERT INTO events \
     (tenant_id, id, instance_id, name, properties, occurred_at, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6)";
const INSERT_EVENTS_PG: &str = "INSERT INTO events \
     (tenant_id, id, instance_id, name, properties, occurred_at, received_at) \
     SELECT $1, e.id, e.instance_id, $2, $3, $4, $4 FROM unnest($5::text[], $6::text[]) AS e(id, instance_id)";
const COUNT_INSTANCES: &str = "SELECT count(*) AS n FROM instances WHERE tenant_id = $1";
const COUNT_EVENTS: &str = "SELECT count(*) AS n FROM events WHERE tenant_id = $1";
const TENANT_ID: &str = "SELECT id FROM tenants WHERE slug = $1";

/// Placeholders: `$1..$2` the range, `$3` the tenant, `$4` the model (numbered in order of
/// first use, for SQLite). Instance `n` of the preload has the store id `00000000-0000-7000-8000-{n:012}`.
const PRELOAD_INSTANCES_PG: &str = "INSERT INTO instances \
     (tenant_id, id, model, properties, property_clock, created_at, updated_at) \
     SELECT $3, '00000000-0000-7000-8000-' || lpad(n::text, 12, '0'), $4, \
     '{\"plan\":\"free\",\"seats\":1}', '{\"plan\":0,\"seats\":0}', 0, 0 \
     FROM generate_series($1::bigint, $2::bigint - 1) AS n";
const PRELOAD_IDS_PG: &str = "INSERT INTO instance_ids (tenant_id, model, external_id, instance_id) \
     SELECT $3, $4, 'k' || n || s.suffix, '00000000-0000-7000-8000-' || lpad(n::text, 12, '0') \
     FROM generate_series($1::bigint, $2::bigint - 1) AS n, (VALUES (''), ('@example.com')) AS s(suffix)";
const PRELOAD_INSTANCES_SQLITE: &str = "WITH RECURSIVE seq(n) AS \
     (SELECT $1 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $2) \
     INSERT INTO instances (tenant_id, id, model, properties, property_clock, created_at, updated_at) \
     SELECT $3, printf('00000000-0000-7000-8000-%012d', n), $4, \
     '{\"plan\":\"free\",\"seats\":1}', '{\"plan\":0,\"seats\":0}', 0, 0 FROM seq";
const PRELOAD_IDS_SQLITE: &str = "WITH RECURSIVE seq(n) AS \
     (SELECT $1 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $2) \
     INSERT INTO instance_ids (tenant_id, model, external_id, instance_id) \
     SELECT $3, $4, 'k' || n || s.suffix, printf('00000000-0000-7000-8000-%012d', n) \
     FROM seq, (SELECT '' AS suffix UNION ALL SELECT '@example.com') AS s";

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    external_id: String,
    #[diesel(sql_type = Text)]
    instance_id: String,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    properties: String,
    #[diesel(sql_type = Text)]
    property_clock: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

impl Ceiling {
    /// Connects to the database the server was started on.
    pub async fn open(
        url: &str,
        connections: usize,
        synchronous: SqliteSynchronous,
    ) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let mode = match synchronous {
                SqliteSynchronous::Full => "FULL",
                SqliteSynchronous::Normal => "NORMAL",
            };
            let mut conn = SqliteConnection::establish(path)?;
            conn.batch_execute(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {mode}; \
                 PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;"
            ))?;
            Ok(Self::Sqlite(Arc::new(tokio::sync::Mutex::new(
                SyncConnectionWrapper::new(conn),
            ))))
        } else {
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
            let pool = Pool::builder(manager)
                .max_size(connections.max(1))
                .build()
                .context("can not build the ceiling's connection pool")?;
            Ok(Self::Pg(pool))
        }
    }

    /// The PostgreSQL server's version.
    pub async fn postgres_version(&self) -> anyhow::Result<String> {
        let Self::Pg(pool) = self else {
            anyhow::bail!("not a PostgreSQL database")
        };
        let query = diesel::sql_query("SELECT current_setting('server_version') AS id");
        let row: Id = diesel_async::RunQueryDsl::get_result(query, &mut *pool.get().await?).await?;
        Ok(row.id)
    }

    /// The store id of the tenant `slug`.
    pub async fn tenant_id(&self, slug: &str) -> anyhow::Result<String> {
        let query = diesel::sql_query(TENANT_ID).bind::<Text, _>(slug.to_owned());
        let rows: Vec<Id> = match self {
            Self::Pg(pool) => {
                diesel_async::RunQueryDsl::load(query, &mut *pool.get().await?).await?
            }
            Self::Sqlite(writer) => {
                let load =
                    move |conn: &mut SqliteConnection| diesel::RunQueryDsl::load(query, conn);
                writer.lock().await.spawn_blocking(load).await?
            }
        };
        rows.into_iter()
            .next()
            .map(|row| row.id)
            .context("the bench tenant is not in the database")
    }

    /// How many instances and events the tenant has.
    pub async fn counts(&self, tenant: &str) -> anyhow::Result<(u64, u64)> {
        let mut counts = [0; 2];
        for (slot, sql) in counts.iter_mut().zip([COUNT_INSTANCES, COUNT_EVENTS]) {
            let query = diesel::sql_query(sql).bind::<Text, _>(tenant.to_owned());
            let rows: Vec<Count> = match self {
                Self::Pg(pool) => {
                    diesel_async::RunQueryDsl::load(query, &mut *pool.get().await?).await?
                }
                Self::Sqlite(writer) => {
                    let load =
                        move |conn: &mut SqliteConnection| diesel::RunQueryDsl::load(query, conn);
                    writer.lock().await.spawn_blocking(load).await?
                }
            };
            *slot = rows
                .first()
                .map_or(0, |row| u64::try_from(row.n).unwrap_or(0));
        }
        Ok((counts[0], counts[1]))
    }

    /// Inserts the known instances `from..to` in bulk (each with two ids), a chunk per
    /// transaction.
    pub async fn preload(&self, tenant: &str, from: u64, to: u64) -> anyhow::Result<()> {
        const CHUNK: u64 = 100_000;
        let mut start = from;
        while start < to {
            let end = (start + CHUNK).min(to);
            let (first, last) = (i64::try_from(start)?, i64::try_from(end)?);
            match self {
                Self::Pg(pool) => {
                    let mut conn = pool.get().await?;
                    let tenant = tenant.to_owned();
                    conn.transaction(async |conn| {
                        for sql in [PRELOAD_INSTANCES_PG, PRELOAD_IDS_PG] {
                            diesel_async::RunQueryDsl::execute(
                                bulk!(sql, &tenant, first, last),
                                conn,
                            )
                            .await?;
                        }
                        Result::Ok(())
                    })
                    .await?;
                }
                Self::Sqlite(writer) => {
                    let tenant = tenant.to_owned();
                    writer
                        .lock()
                        .await
                        .spawn_blocking(move |conn| {
                            conn.immediate_transaction(|conn| {
                                for sql in [PRELOAD_INSTANCES_SQLITE, PRELOAD_IDS_SQLITE] {
                                    diesel::RunQueryDsl::execute(
                                        bulk!(sql, &tenant, first, last),
                                        conn,
                                    )?;
                                }
                                Result::Ok(())
                            })
                        })
                        .await?;
                }
            }
            start = end;
        }
        if let Self::Pg(pool) = self {
            // What autovacuum would do soon after a bulk load.
            diesel_async::SimpleAsyncConnection::batch_execute(
                &mut *pool.get().await?,
                "ANALYZE instances; ANALYZE instance_ids",
            )
            .await?;
        }
        Ok(())
    }

    /// Applies `write` for `tenant` with raw SQL; says what it stored.
    pub async fn send(&self, tenant: &str, write: Write) -> std::result::Result<Acked, String> {
        let result = match self {
            Self::Pg(pool) => match pool.get().await {
                Ok(mut conn) => pg::apply(&mut conn, tenant, write).await,
                Err(error) => return Err(error.to_string()),
            },
            Self::Sqlite(writer) => {
                let tenant = tenant.to_owned();
                writer
                    .lock()
                    .await
                    .spawn_blocking(move |conn| sqlite::apply(conn, &tenant, write))
                    .await
            }
        };
        result.map_err(|error| error.to_string())
    }
}

/// Runs `sql` on the PostgreSQL server `server` (creating and dropping bench databases).
pub async fn admin(server: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(server)
        .await
        .with_context(|| format!("can not connect to {server}"))?;
    diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, sql)
        .await
        .with_context(|| format!("{sql} failed"))?;
    Ok(())
}

/// A preload statement bound to the tenant, the model and the range of instances.
macro_rules! bulk {
    ($sql:expr, $tenant:expr, $first:expr, $last:expr) => {
        diesel::sql_query($sql)
            .bind::<BigInt, _>($first)
            .bind::<BigInt, _>($last)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>(MODEL)
    };
}
use bulk;

/// The properties an identify leaves: the stored ones with `plan` and `seats` written at `at`.
fn merged(stored: &Stored, plan: &str, seats: u64, at: i64) -> (String, String) {
    let mut values: serde_json::Map<String, Value> =
        serde_json::from_str(&stored.properties).unwrap_or_default();
    let mut clock: serde_json::Map<String, Value> =
        serde_json::from_str(&stored.property_clock).unwrap_or_default();
    values.insert("plan".to_owned(), json!(plan));
    values.insert("seats".to_owned(), json!(seats));
    clock.insert("plan".to_owned(), json!(at));
    clock.insert("seats".to_owned(), json!(at));
    (
        Value::Object(values).to_string(),
        Value::Object(clock).to_string(),
    )
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The properties an identify of `plan` and `seats` sends, as stored on its event.
fn sent(plan: &str, seats: u64) -> String {
    json!({"plan": plan, "seats": seats}).to_string()
}

/// The answer to ids that name no instance or two: the ceiling's writes never expect either.
fn unexpected(what: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(what.into())
}

/// The one instance `held` names.
fn one_instance(held: &[Holder]) -> Result<String> {
    match held {
        [] => Err(unexpected("no instance holds the ids")),
        [first, rest @ ..] if rest.iter().all(|row| row.instance_id == first.instance_id) => {
            Ok(first.instance_id.clone())
        }
        _ => Err(unexpected("the ids belong to two instances")),
    }
}

const IDENTIFY_EVENT: &str = "onFunctionaryIdentify";
const EVENT: &str = "api_call";
const EVENT_PROPERTIES: &str = r#"{"endpoint":"/v1/things","status":200}"#;

/// The ceiling's statements with their binds, written once for both backends (only the call
/// that runs them differs: awaited on PostgreSQL, synchronous on SQLite's thread).
macro_rules! insert_instance {
    ($tenant:expr, $instance:expr, $properties:expr, $clock:expr, $now:expr) => {
        diesel::sql_query(INSERT_INSTANCE)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>($instance)
            .bind::<Text, _>(MODEL)
            .bind::<Text, _>($properties)
            .bind::<Text, _>($clock)
            .bind::<BigInt, _>($now)
    };
}
macro_rules! insert_ids {
    ($tenant:expr, $ids:expr, $instance:expr) => {
        diesel::sql_query(INSERT_IDS)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>(MODEL)
            .bind::<Text, _>(&$ids[0])
            .bind::<Text, _>($instance)
            .bind::<Text, _>(&$ids[1])
    };
}
macro_rules! instance_row {
    ($sql:expr, $tenant:expr, $instance:expr) => {
        diesel::sql_query($sql)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>($instance)
    };
}
macro_rules! update_instance {
    ($tenant:expr, $instance:expr, $properties:expr, $clock:expr, $now:expr) => {
        diesel::sql_query(UPDATE_INSTANCE)
            .bind::<Text, _>($properties)
            .bind::<Text, _>($clock)
            .bind::<BigInt, _>($now)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>($instance)
    };
}
macro_rules! holder {
    ($tenant:expr, $id:expr) => {
        diesel::sql_query(HOLDER)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>(MODEL)
            .bind::<Text, _>($id)
    };
}
macro_rules! insert_event {
    ($tenant:expr, $instance:expr, $name:expr, $properties:expr, $now:expr) => {
        diesel::sql_query(INSERT_EVENT)
            .bind::<Text, _>($tenant)
            .bind::<Text, _>(new_id())
            .bind::<Text, _>($instance)
            .bind::<Text, _>($name)
            .bind::<Text, _>($properties)
            .bind::<BigInt, _>($now)
    };
}

mod pg {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    use super::*;

    pub(super) async fn apply(
        conn: &mut AsyncPgConnection,
        tenant: &str,
        write: Write,
    ) -> Result<Acked> {
        let holders = async |conn: &mut AsyncPgConnection, ids: Vec<String>| {
            diesel::sql_query(HOLDERS_PG)
                .bind::<Text, _>(tenant)
                .bind::<Text, _>(MODEL)
                .bind::<Array<Text>, _>(ids)
                .load::<Holder>(conn)
                .await
        };
        match write {
            Write::IdentifyNew { ids, plan, seats } => {
                conn.transaction(async |conn| {
                    if !holders(conn, ids.to_vec()).await?.is_empty() {
                        return Err(unexpected("a new id is held already"));
                    }
                    let (instance, now, properties) = (new_id(), now_micros(), sent(plan, seats));
                    let clock = json!({"plan": now, "seats": now}).to_string();
                    insert_instance!(tenant, &instance, &properties, &clock, now)
                        .execute(conn)
                        .await?;
                    insert_ids!(tenant, ids, &instance).execute(conn).await?;
                    insert_event(conn, tenant, &instance, IDENTIFY_EVENT, &properties, now).await?;
                    Ok(Acked {
                        units: 1,
                        events: 1,
                        instances: 1,
                    })
                })
                .await
            }
            Write::IdentifyExisting { ids, plan, seats } => {
                conn.transaction(async |conn| {
                    let instance = one_instance(&holders(conn, ids).await?)?;
                    let stored: Stored = instance_row!(LOCK_INSTANCE_PG, tenant, &instance)
                        .get_result(conn)
                        .await?;
                    let now = now_micros();
                    let (properties, clock) = merged(&stored, plan, seats, now);
                    update_instance!(tenant, &instance, &properties, &clock, now)
                        .execute(conn)
                        .await?;
                    let sent = sent(plan, seats);
                    insert_event(conn, tenant, &instance, IDENTIFY_EVENT, &sent, now).await?;
                    Ok(Acked {
                        units: 1,
                        events: 1,
                        instances: 0,
                    })
                })
                .await
            }
            Write::Event { id } => {
                let held: Vec<Holder> = holder!(tenant, &id).load(conn).await?;
                let instance = one_instance(&held)?;
                insert_event(
                    conn,
                    tenant,
                    &instance,
                    EVENT,
                    EVENT_PROPERTIES,
                    now_micros(),
                )
                .await?;
                Ok(Acked {
                    units: 1,
                    events: 1,
                    instances: 0,
                })
            }
            Write::Batch { ids } => {
                conn.transaction(async |conn| {
                    let mut distinct = ids.clone();
                    distinct.sort();
                    distinct.dedup();
                    let held = holders(conn, distinct).await?;
                    let instances = ids
                        .iter()
                        .map(|id| {
                            held.iter()
                                .find(|row| &row.external_id == id)
                                .map(|row| row.instance_id.clone())
                                .ok_or_else(|| unexpected("no instance holds an id"))
                        })
                        .collect::<Result<Vec<String>>>()?;
                    let event_ids: Vec<String> = ids.iter().map(|_| new_id()).collect();
                    diesel::sql_query(INSERT_EVENTS_PG)
                        .bind::<Text, _>(tenant)
                        .bind::<Text, _>(EVENT)
                        .bind::<Text, _>(EVENT_PROPERTIES)
                        .bind::<BigInt, _>(now_micros())
                        .bind::<Array<Text>, _>(&event_ids)
                        .bind::<Array<Text>, _>(&instances)
                        .execute(conn)
                        .await?;
                    let n = ids.len() as u64;
                    Ok(Acked {
                        units: n,
                        events: n,
                        instances: 0,
                    })
                })
                .await
            }
        }
    }

    async fn insert_event(
        conn: &mut AsyncPgConnection,
        tenant: &str,
        instance: &str,
        name: &str,
        properties: &str,
        now: i64,
    ) -> Result<usize> {
        insert_event!(tenant, instance, name, properties, now)
            .execute(conn)
            .await
    }
}

mod sqlite {
    use diesel::RunQueryDsl;

    use super::*;

    pub(super) fn apply(conn: &mut SqliteConnection, tenant: &str, write: Write) -> Result<Acked> {
        let holders = |conn: &mut SqliteConnection, ids: &[String]| -> Result<Vec<Holder>> {
            let mut found = Vec::new();
            for id in ids {
                found.extend(holder!(tenant, id).load::<Holder>(conn)?);
            }
            Ok(found)
        };
        match write {
            Write::IdentifyNew { ids, plan, seats } => conn.immediate_transaction(|conn| {
                if !holders(conn, &ids)?.is_empty() {
                    return Err(unexpected("a new id is held already"));
                }
                let (instance, now, properties) = (new_id(), now_micros(), sent(plan, seats));
                let clock = json!({"plan": now, "seats": now}).to_string();
                insert_instance!(tenant, &instance, &properties, &clock, now).execute(conn)?;
                insert_ids!(tenant, ids, &instance).execute(conn)?;
                insert_event(conn, tenant, &instance, IDENTIFY_EVENT, &properties, now)?;
                Ok(Acked {
                    units: 1,
                    events: 1,
                    instances: 1,
                })
            }),
            Write::IdentifyExisting { ids, plan, seats } => conn.immediate_transaction(|conn| {
                let instance = one_instance(&holders(conn, &ids)?)?;
                let stored: Stored =
                    instance_row!(READ_INSTANCE, tenant, &instance).get_result(conn)?;
                let now = now_micros();
                let (properties, clock) = merged(&stored, plan, seats, now);
                update_instance!(tenant, &instance, &properties, &clock, now).execute(conn)?;
                insert_event(
                    conn,
                    tenant,
                    &instance,
                    IDENTIFY_EVENT,
                    &sent(plan, seats),
                    now,
                )?;
                Ok(Acked {
                    units: 1,
                    events: 1,
                    instances: 0,
                })
            }),
            Write::Event { id } => {
                let instance = one_instance(&holders(conn, std::slice::from_ref(&id))?)?;
                insert_event(
                    conn,
                    tenant,
                    &instance,
                    EVENT,
                    EVENT_PROPERTIES,
                    now_micros(),
                )?;
                Ok(Acked {
                    units: 1,
                    events: 1,
                    instances: 0,
                })
            }
            Write::Batch { ids } => conn.immediate_transaction(|conn| {
                let now = now_micros();
                for id in &ids {
                    let instance = one_instance(&holders(conn, std::slice::from_ref(id))?)?;
                    insert_event(conn, tenant, &instance, EVENT, EVENT_PROPERTIES, now)?;
                }
                let n = ids.len() as u64;
                Ok(Acked {
                    units: n,
                    events: n,
                    instances: 0,
                })
            }),
        }
    }

    fn insert_event(
        conn: &mut SqliteConnection,
        tenant: &str,
        instance: &str,
        name: &str,
        properties: &str,
        now: i64,
    ) -> Result<usize> {
        insert_event!(tenant, instance, name, properties, now).execute(conn)
    }
}
