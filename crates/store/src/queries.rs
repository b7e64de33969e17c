//! The statements the identity rules need, each written once for both backends (through
//! [`on_db!`]) unless the backends differ: row locks and advisory locks exist on PostgreSQL
//! only, where SQLite's single writer already serializes every write transaction.
//!
//! Architecture invariant: every statement is scoped to one tenant.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::{Db, on_db};
use crate::schema::{edges, events, instance_ids, instances, pending_links, tenants};

pub(crate) type QueryResult<T> = Result<T, diesel::result::Error>;

/// Sends independent statements of one transaction to PostgreSQL together and waits once for
/// all their answers (pipelining: the server still runs them in the order written, and when one
/// fails the rest fail with it). Each `$query` is an expression using `$conn` that yields a
/// `QueryResult`; the macro yields a `QueryResult` of the tuple of their values.
macro_rules! pipelined {
    ($connection:expr, $conn:ident => $($query:expr),+ $(,)?) => {{
        let shared: &diesel_async::AsyncPgConnection = $connection;
        tokio::try_join!(biased; $(async move {
            let mut handle = shared;
            let $conn = &mut handle;
            $query
        }),+)
    }};
}

/// The statement that takes the transactional advisory locks of `keys` (sorted, distinct).
macro_rules! lock_keys_statement {
    ($keys:expr) => {
        diesel::sql_query(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>($keys)
    };
}

/// The ids `ids` of `tenant` in one of `models`.
macro_rules! holders_query {
    ($tenant:expr, $ids:expr, $models:expr) => {
        instance_ids::table
            .filter(instance_ids::tenant_id.eq($tenant))
            .filter(instance_ids::external_id.eq_any($ids))
            .filter(instance_ids::model.eq_any($models))
            .select(IdRow::as_select())
    };
}

/// Every id of the instances `owners`, by instance and id.
macro_rules! ids_of_query {
    ($tenant:expr, $owners:expr) => {
        instance_ids::table
            .filter(instance_ids::tenant_id.eq($tenant))
            .filter(instance_ids::instance_id.eq_any($owners))
            .order((instance_ids::instance_id, instance_ids::external_id))
            .select(IdRow::as_select())
    };
}

/// How many pending links `owner` has.
macro_rules! count_pending_query {
    ($tenant:expr, $owner:expr) => {
        pending_links::table
            .filter(pending_links::tenant_id.eq($tenant))
            .filter(pending_links::owner_id.eq($owner))
            .count()
    };
}

/// Writes what an identify changes of an instance row.
macro_rules! update_instance_statement {
    ($row:expr) => {
        diesel::update(
            instances::table
                .filter(instances::tenant_id.eq(&$row.tenant_id))
                .filter(instances::id.eq(&$row.id)),
        )
        .set((
            instances::display_name.eq(&$row.display_name),
            instances::display_name_at.eq($row.display_name_at),
            instances::properties.eq(&$row.properties),
            instances::property_clock.eq(&$row.property_clock),
            instances::updated_at.eq($row.updated_at),
        ))
    };
}

/// The instance `id` of `tenant`.
macro_rules! instance_query {
    ($tenant:expr, $id:expr) => {
        instances::table
            .filter(instances::tenant_id.eq($tenant))
            .filter(instances::id.eq($id))
            .select(InstanceRow::as_select())
    };
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = instances)]
pub(crate) struct InstanceRow {
    pub tenant_id: String,
    pub id: String,
    pub model: String,
    pub display_name: Option<String>,
    pub display_name_at: Option<i64>,
    pub properties: String,
    pub property_clock: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = instance_ids)]
pub(crate) struct IdRow {
    pub tenant_id: String,
    pub model: String,
    pub external_id: String,
    pub instance_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pending_links)]
pub(crate) struct PendingRow {
    pub tenant_id: String,
    pub owner_id: String,
    pub role: String,
    pub target_external_id: String,
    pub target_model: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = edges)]
pub(crate) struct EdgeRow {
    pub tenant_id: String,
    pub parent_id: String,
    pub child_id: String,
    pub created_at: i64,
}

/// An event; a missing `message_id` is written as NULL rather than left to the column default,
/// so that rows of events with and without one go into the same multi-row INSERT.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(crate) struct EventRow {
    pub tenant_id: String,
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub properties: String,
    pub occurred_at: i64,
    pub received_at: i64,
    pub message_id: Option<String>,
}

/// An event of a multi-row insert, borrowing what the run already holds: only its id is new.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(crate) struct NewEvent<'a> {
    pub tenant_id: &'a str,
    pub id: &'a str,
    pub instance_id: &'a str,
    pub name: &'a str,
    pub properties: &'a str,
    pub occurred_at: i64,
    pub received_at: i64,
    pub message_id: Option<&'a str>,
}

impl NewEvent<'_> {
    fn to_row(self) -> EventRow {
        EventRow {
            tenant_id: self.tenant_id.to_owned(),
            id: self.id.to_owned(),
            instance_id: self.instance_id.to_owned(),
            name: self.name.to_owned(),
            properties: self.properties.to_owned(),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            message_id: self.message_id.map(str::to_owned),
        }
    }
}

/// The event stored under a messageId: what a duplicate of it answers.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub(crate) struct MessageRow {
    pub message_id: Option<String>,
    pub id: String,
    pub instance_id: String,
}

/// The most values one SQLite statement binds in an `IN` list (SQLite allows 32766 bound values
/// per statement); PostgreSQL binds a whole list as one array, so it needs no chunks.
const SQLITE_IN_LIST: usize = 10_000;

/// The most rows of one multi-row INSERT of events: 8 values a row stay far below the bound-value
/// limits of both backends (65535 on PostgreSQL, 32766 on SQLite).
pub(crate) const INSERT_CHUNK: usize = 1_000;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub(crate) struct TenantRow {
    pub id: String,
    pub slug: String,
    pub display_name: Option<String>,
    pub created_at: i64,
}

impl Db<'_> {
    /// Serializes, on PostgreSQL, every transaction that touches one of the external ids
    /// `touched` (holding it or waiting for it as a pending link), so an id and a link awaiting
    /// it can not pass each other unseen; then finds the holders of `ids` in `model`. The locks
    /// are taken in one statement, in key order, and on PostgreSQL both statements go in one
    /// round trip, the lookup after the locks. SQLite's single writer needs no locks.
    pub async fn lock_and_find(
        &mut self,
        tenant: &str,
        touched: &[&str],
        ids: &[String],
        model: &str,
    ) -> QueryResult<Vec<IdRow>> {
        let keys = lock_keys(tenant, touched);
        let connection = match self {
            Db::Pg(connection) if !keys.is_empty() => connection,
            _ => return self.holders_of(tenant, ids, &[model]).await,
        };
        let models = [model];
        let (_, found) = pipelined!(&**connection, conn =>
            lock_keys_statement!(&keys).execute(conn).await,
            holders_query!(tenant, ids, &models).load::<IdRow>(conn).await,
        )?;
        Ok(found)
    }

    /// The instance `id` (on PostgreSQL locked until the end of the transaction), all its ids
    /// and the number of its pending links: in one round trip on PostgreSQL, in one call to
    /// the connection's thread on SQLite.
    pub async fn instance_state(
        &mut self,
        tenant: &str,
        id: &str,
    ) -> QueryResult<(Option<InstanceRow>, Vec<IdRow>, i64)> {
        let connection = match self {
            Db::Pg(connection) => connection,
            Db::Sqlite(connection) => {
                let (tenant, id) = (tenant.to_owned(), id.to_owned());
                return connection
                    .spawn_blocking(move |conn| {
                        let owners = [id.as_str()];
                        Ok((
                            diesel::RunQueryDsl::first(instance_query!(&tenant, &id), conn)
                                .optional()?,
                            diesel::RunQueryDsl::load(ids_of_query!(&tenant, &owners), conn)?,
                            diesel::RunQueryDsl::get_result(
                                count_pending_query!(&tenant, &id),
                                conn,
                            )?,
                        ))
                    })
                    .await;
            }
        };
        let owners = [id];
        pipelined!(&**connection, conn =>
            instance_query!(tenant, id)
                .for_no_key_update()
                .first::<InstanceRow>(conn)
                .await
                .optional(),
            ids_of_query!(tenant, &owners).load::<IdRow>(conn).await,
            count_pending_query!(tenant, id).get_result::<i64>(conn).await,
        )
    }

    /// How many values of a list one statement binds (see [`SQLITE_IN_LIST`]).
    fn in_list_chunk(&self) -> usize {
        match self {
            Db::Pg(_) => usize::MAX,
            Db::Sqlite(_) => SQLITE_IN_LIST,
        }
    }

    /// Which instances hold `ids` in any of `models`: one statement on PostgreSQL, one per
    /// [`SQLITE_IN_LIST`] ids on SQLite, none for no ids.
    pub async fn holders_of(
        &mut self,
        tenant: &str,
        ids: &[String],
        models: &[&str],
    ) -> QueryResult<Vec<IdRow>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(self.in_list_chunk()) {
            found.extend(on_db!(self, conn => {
                holders_query!(tenant, chunk, models).load::<IdRow>(conn).await
            })?);
        }
        Ok(found)
    }

    /// All ids of the given instances.
    pub async fn ids_of(
        &mut self,
        tenant: &str,
        instance_ids_: &[String],
    ) -> QueryResult<Vec<IdRow>> {
        on_db!(self, conn => ids_of_query!(tenant, instance_ids_).load(conn).await)
    }

    /// The instance row; on PostgreSQL locked until the end of the transaction when `lock`.
    pub async fn instance(
        &mut self,
        tenant: &str,
        id: &str,
        lock: bool,
    ) -> QueryResult<Option<InstanceRow>> {
        match self {
            Db::Pg(conn) if lock => instance_query!(tenant, id)
                .for_no_key_update()
                .first(*conn)
                .await
                .optional(),
            _ => on_db!(self, conn => instance_query!(tenant, id).first(conn).await.optional()),
        }
    }

    pub async fn instances_by_id(
        &mut self,
        tenant: &str,
        ids: &[String],
    ) -> QueryResult<Vec<InstanceRow>> {
        on_db!(self, conn => {
            instances::table
                .filter(instances::tenant_id.eq(tenant))
                .filter(instances::id.eq_any(ids))
                .select(InstanceRow::as_select())
                .load(conn)
                .await
        })
    }

    /// A page of instances of `model` after the instance id `after`, in id (= creation) order.
    pub async fn instances_page(
        &mut self,
        tenant: &str,
        model: &str,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<InstanceRow>> {
        on_db!(self, conn => {
            let mut query = instances::table
                .filter(instances::tenant_id.eq(tenant))
                .filter(instances::model.eq(model))
                .order(instances::id)
                .limit(limit)
                .select(InstanceRow::as_select())
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(instances::id.gt(after.to_owned()));
            }
            query.load(conn).await
        })
    }

    /// Creates an instance with its ids: one round trip on PostgreSQL, one call to the
    /// connection's thread on SQLite.
    pub async fn create_instance(&mut self, row: &InstanceRow, ids: &[IdRow]) -> QueryResult<()> {
        let connection = match self {
            Db::Pg(connection) => connection,
            Db::Sqlite(connection) => {
                let (row, ids) = (row.clone(), ids.to_vec());
                return connection
                    .spawn_blocking(move |conn| {
                        diesel::RunQueryDsl::execute(
                            diesel::insert_into(instances::table).values(&row),
                            conn,
                        )?;
                        diesel::RunQueryDsl::execute(
                            diesel::insert_into(instance_ids::table).values(&ids),
                            conn,
                        )?;
                        Ok(())
                    })
                    .await;
            }
        };
        pipelined!(&**connection, conn =>
            diesel::insert_into(instances::table).values(row).execute(conn).await,
            diesel::insert_into(instance_ids::table).values(ids).execute(conn).await,
        )?;
        Ok(())
    }

    /// Stores an updated instance and records an event on it: one round trip on PostgreSQL, one
    /// call to the connection's thread on SQLite.
    pub async fn update_and_record(
        &mut self,
        row: &InstanceRow,
        event: &EventRow,
    ) -> QueryResult<()> {
        let connection = match self {
            Db::Pg(connection) => connection,
            Db::Sqlite(connection) => {
                let (row, event) = (row.clone(), event.clone());
                return connection
                    .spawn_blocking(move |conn| {
                        diesel::RunQueryDsl::execute(update_instance_statement!(row), conn)?;
                        diesel::RunQueryDsl::execute(
                            diesel::insert_into(events::table).values(&event),
                            conn,
                        )?;
                        Ok(())
                    })
                    .await;
            }
        };
        pipelined!(&**connection, conn =>
            update_instance_statement!(row).execute(conn).await,
            diesel::insert_into(events::table).values(event).execute(conn).await,
        )?;
        Ok(())
    }

    pub async fn delete_instance(&mut self, tenant: &str, id: &str) -> QueryResult<usize> {
        on_db!(self, conn => {
            diesel::delete(
                instances::table.filter(instances::tenant_id.eq(tenant)).filter(instances::id.eq(id)),
            )
            .execute(conn)
            .await
        })
    }

    /// Adds ids to an instance; a unique violation means another call took an id first.
    /// One statement on PostgreSQL; one per id on SQLite (where diesel's multi-row insert needs
    /// the synchronous connection, and a statement costs no round trip).
    pub async fn insert_ids(&mut self, rows: &[IdRow]) -> QueryResult<()> {
        if let Db::Pg(conn) = self {
            if !rows.is_empty() {
                diesel::insert_into(instance_ids::table)
                    .values(rows)
                    .execute(*conn)
                    .await?;
            }
            return Ok(());
        }
        for row in rows {
            on_db!(self, conn => diesel::insert_into(instance_ids::table).values(row).execute(conn).await)?;
        }
        Ok(())
    }

    /// Pending links that await one of `ids` in `model` (or in any model).
    pub async fn pending_awaiting(
        &mut self,
        tenant: &str,
        ids: &[String],
        model: &str,
    ) -> QueryResult<Vec<PendingRow>> {
        on_db!(self, conn => {
            pending_links::table
                .filter(pending_links::tenant_id.eq(tenant))
                .filter(pending_links::target_external_id.eq_any(ids))
                .filter(pending_links::target_model.eq_any([model, ""]))
                .order(pending_links::created_at)
                .select(PendingRow::as_select())
                .load(conn)
                .await
        })
    }

    /// The pending links the given instances own.
    pub async fn pending_of(
        &mut self,
        tenant: &str,
        owners: &[String],
    ) -> QueryResult<Vec<PendingRow>> {
        on_db!(self, conn => {
            pending_links::table
                .filter(pending_links::tenant_id.eq(tenant))
                .filter(pending_links::owner_id.eq_any(owners))
                .order((pending_links::owner_id, pending_links::role, pending_links::target_external_id))
                .select(PendingRow::as_select())
                .load(conn)
                .await
        })
    }

    /// Keeps pending links; returns how many were new.
    pub async fn insert_pending(&mut self, rows: &[PendingRow]) -> QueryResult<usize> {
        let mut inserted = 0;
        for row in rows {
            inserted += on_db!(self, conn => {
                diesel::insert_into(pending_links::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await
            })?;
        }
        Ok(inserted)
    }

    pub async fn delete_pending(&mut self, row: &PendingRow) -> QueryResult<()> {
        on_db!(self, conn => {
            diesel::delete(
                pending_links::table
                    .filter(pending_links::tenant_id.eq(&row.tenant_id))
                    .filter(pending_links::owner_id.eq(&row.owner_id))
                    .filter(pending_links::role.eq(&row.role))
                    .filter(pending_links::target_external_id.eq(&row.target_external_id))
                    .filter(pending_links::target_model.eq(&row.target_model)),
            )
            .execute(conn)
            .await
        })
        .map(|_| ())
    }

    /// Records parent→child edges; an edge that exists already is left as it is.
    pub async fn insert_edges(&mut self, rows: &[EdgeRow]) -> QueryResult<()> {
        for row in rows {
            on_db!(self, conn => {
                diesel::insert_into(edges::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await
            })?;
        }
        Ok(())
    }

    /// The edges in which one of `instances` is the parent or the child. Two index lookups,
    /// not one `OR`, which planners without statistics answer with a scan of the tenant.
    pub async fn edges_of(
        &mut self,
        tenant: &str,
        instances_: &[String],
    ) -> QueryResult<Vec<EdgeRow>> {
        let mut found: Vec<EdgeRow> = on_db!(self, conn => {
            edges::table
                .filter(edges::tenant_id.eq(tenant))
                .filter(edges::parent_id.eq_any(instances_))
                .select(EdgeRow::as_select())
                .load(conn)
                .await
        })?;
        let as_child: Vec<EdgeRow> = on_db!(self, conn => {
            edges::table
                .filter(edges::tenant_id.eq(tenant))
                .filter(edges::child_id.eq_any(instances_))
                .select(EdgeRow::as_select())
                .load(conn)
                .await
        })?;
        found.extend(
            as_child
                .into_iter()
                .filter(|edge| !instances_.contains(&edge.parent_id)),
        );
        found.sort_by(|a, b| {
            (a.created_at, &a.parent_id, &a.child_id).cmp(&(
                b.created_at,
                &b.parent_id,
                &b.child_id,
            ))
        });
        Ok(found)
    }

    pub async fn insert_event(&mut self, row: &EventRow) -> QueryResult<()> {
        on_db!(self, conn => diesel::insert_into(events::table).values(row).execute(conn).await)
            .map(|_| ())
    }

    /// Inserts events: one statement per [`INSERT_CHUNK`] rows, none for no rows. On
    /// PostgreSQL the rows travel as one array per column through `unnest`, so the statement
    /// text is the same for any number of rows and stays prepared. diesel builds a multi-row
    /// INSERT for SQLite only on its synchronous connection, so there the statement runs on
    /// the connection's own thread.
    pub async fn insert_events<'a>(&mut self, rows: &[NewEvent<'a>]) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text};
        for chunk in rows.chunks(INSERT_CHUNK) {
            match self {
                // One row (a single event call): the plain INSERT binds 8 values, not 8 arrays.
                Db::Pg(conn) if chunk.len() == 1 => {
                    diesel::insert_into(events::table)
                        .values(chunk[0])
                        .execute(*conn)
                        .await?;
                }
                Db::Pg(conn) => {
                    let column = |field: fn(&NewEvent<'a>) -> &'a str| -> Vec<&'a str> {
                        chunk.iter().map(field).collect()
                    };
                    let times = |field: fn(&NewEvent<'a>) -> i64| -> Vec<i64> {
                        chunk.iter().map(field).collect()
                    };
                    diesel::sql_query(
                        "INSERT INTO events (tenant_id, id, instance_id, name, properties, \
                         occurred_at, received_at, message_id) \
                         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                         $5::text[], $6::bigint[], $7::bigint[], $8::text[])",
                    )
                    .bind::<Array<Text>, _>(column(|row| row.tenant_id))
                    .bind::<Array<Text>, _>(column(|row| row.id))
                    .bind::<Array<Text>, _>(column(|row| row.instance_id))
                    .bind::<Array<Text>, _>(column(|row| row.name))
                    .bind::<Array<Text>, _>(column(|row| row.properties))
                    .bind::<Array<BigInt>, _>(times(|row| row.occurred_at))
                    .bind::<Array<BigInt>, _>(times(|row| row.received_at))
                    .bind::<Array<Nullable<Text>>, _>(
                        chunk.iter().map(|row| row.message_id).collect::<Vec<_>>(),
                    )
                    .execute(*conn)
                    .await?;
                }
                Db::Sqlite(conn) => {
                    // SQLite's thread needs the rows owned.
                    let chunk: Vec<EventRow> = chunk.iter().map(|row| row.to_row()).collect();
                    conn.spawn_blocking(move |conn| {
                        let insert = diesel::insert_into(events::table).values(&chunk);
                        diesel::RunQueryDsl::execute(insert, conn)
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// The events stored under any of `message_ids`: one statement on PostgreSQL, one per
    /// [`SQLITE_IN_LIST`] ids on SQLite, none for no ids.
    pub async fn events_by_message_id(
        &mut self,
        tenant: &str,
        message_ids: &[String],
    ) -> QueryResult<Vec<MessageRow>> {
        let mut found = Vec::new();
        for chunk in message_ids.chunks(self.in_list_chunk()) {
            found.extend(on_db!(self, conn => {
                events::table
                    .filter(events::tenant_id.eq(tenant))
                    // The condition of the partial unique index on messageIds, spelled out.
                    .filter(events::message_id.is_not_null())
                    .filter(events::message_id.eq_any(chunk))
                    .select(MessageRow::as_select())
                    .load::<MessageRow>(conn)
                    .await
            })?);
        }
        Ok(found)
    }

    /// A page of an instance's events, newest first, strictly after the `(occurred_at, id)`
    /// position `before`.
    pub async fn events_page(
        &mut self,
        tenant: &str,
        instance: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> QueryResult<Vec<EventRow>> {
        on_db!(self, conn => {
            let mut query = events::table
                .filter(events::tenant_id.eq(tenant))
                .filter(events::instance_id.eq(instance))
                .order((events::occurred_at.desc(), events::id.desc()))
                .limit(limit)
                .select(EventRow::as_select())
                .into_boxed();
            if let Some((at, id)) = before {
                query = query.filter(
                    events::occurred_at
                        .lt(at)
                        .or(events::occurred_at.eq(at).and(events::id.lt(id.to_owned()))),
                );
            }
            query.load(conn).await
        })
    }

    pub async fn insert_tenant(&mut self, row: &TenantRow) -> QueryResult<()> {
        on_db!(self, conn => diesel::insert_into(tenants::table).values(row).execute(conn).await)
            .map(|_| ())
    }

    pub async fn tenant_by_slug(&mut self, slug: &str) -> QueryResult<Option<TenantRow>> {
        on_db!(self, conn => {
            tenants::table
                .filter(tenants::slug.eq(slug))
                .select(TenantRow::as_select())
                .first(conn)
                .await
                .optional()
        })
    }

    pub async fn all_tenants(&mut self) -> QueryResult<Vec<TenantRow>> {
        on_db!(self, conn => {
            tenants::table.order(tenants::slug).select(TenantRow::as_select()).load(conn).await
        })
    }

    pub async fn ping(&mut self) -> QueryResult<()> {
        on_db!(self, conn => diesel::sql_query("SELECT 1").execute(conn).await).map(|_| ())
    }
}

/// FNV-1a of `tenant`, a NUL and `id`: a lock key that every node computes alike.
/// The advisory lock keys of `ids` in `tenant`, sorted and distinct (locks are taken in key
/// order, so two transactions never wait on each other's keys in a cycle).
fn lock_keys(tenant: &str, ids: &[&str]) -> Vec<i64> {
    let mut keys: Vec<i64> = ids.iter().map(|id| lock_key(tenant, id)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn lock_key(tenant: &str, id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tenant.bytes().chain([0]).chain(id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
