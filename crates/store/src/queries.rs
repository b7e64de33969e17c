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

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
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

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub(crate) struct TenantRow {
    pub id: String,
    pub slug: String,
    pub display_name: Option<String>,
    pub created_at: i64,
}

impl Db<'_> {
    /// Serializes, on PostgreSQL, every transaction that touches one of these external ids
    /// (holding it or waiting for it as a pending link), so an id and a link awaiting it can
    /// not pass each other unseen. Locks are taken in one statement, in key order.
    pub async fn lock_external_ids(&mut self, tenant: &str, ids: &[&str]) -> QueryResult<()> {
        let Db::Pg(conn) = self else { return Ok(()) };
        let mut keys: Vec<i64> = ids.iter().map(|id| lock_key(tenant, id)).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        diesel::sql_query(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(keys)
        .execute(*conn)
        .await
        .map(|_| ())
    }

    /// Which instances hold `ids` in any of `models`.
    pub async fn holders_of(
        &mut self,
        tenant: &str,
        ids: &[String],
        models: &[&str],
    ) -> QueryResult<Vec<IdRow>> {
        on_db!(self, conn => {
            instance_ids::table
                .filter(instance_ids::tenant_id.eq(tenant))
                .filter(instance_ids::external_id.eq_any(ids))
                .filter(instance_ids::model.eq_any(models))
                .select(IdRow::as_select())
                .load(conn)
                .await
        })
    }

    /// All ids of the given instances.
    pub async fn ids_of(
        &mut self,
        tenant: &str,
        instance_ids_: &[String],
    ) -> QueryResult<Vec<IdRow>> {
        on_db!(self, conn => {
            instance_ids::table
                .filter(instance_ids::tenant_id.eq(tenant))
                .filter(instance_ids::instance_id.eq_any(instance_ids_))
                .order((instance_ids::instance_id, instance_ids::external_id))
                .select(IdRow::as_select())
                .load(conn)
                .await
        })
    }

    /// The instance row; on PostgreSQL locked until the end of the transaction when `lock`.
    pub async fn instance(
        &mut self,
        tenant: &str,
        id: &str,
        lock: bool,
    ) -> QueryResult<Option<InstanceRow>> {
        macro_rules! query {
            () => {
                instances::table
                    .filter(instances::tenant_id.eq(tenant))
                    .filter(instances::id.eq(id))
                    .select(InstanceRow::as_select())
            };
        }
        match self {
            Db::Pg(conn) if lock => query!().for_no_key_update().first(*conn).await.optional(),
            _ => on_db!(self, conn => query!().first(conn).await.optional()),
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

    pub async fn insert_instance(&mut self, row: &InstanceRow) -> QueryResult<()> {
        on_db!(self, conn => diesel::insert_into(instances::table).values(row).execute(conn).await)
            .map(|_| ())
    }

    pub async fn update_instance(&mut self, row: &InstanceRow) -> QueryResult<()> {
        on_db!(self, conn => {
            diesel::update(
                instances::table
                    .filter(instances::tenant_id.eq(&row.tenant_id))
                    .filter(instances::id.eq(&row.id)),
            )
            .set((
                instances::display_name.eq(&row.display_name),
                instances::display_name_at.eq(row.display_name_at),
                instances::properties.eq(&row.properties),
                instances::property_clock.eq(&row.property_clock),
                instances::updated_at.eq(row.updated_at),
            ))
            .execute(conn)
            .await
        })
        .map(|_| ())
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
    pub async fn insert_ids(&mut self, rows: &[IdRow]) -> QueryResult<()> {
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

    pub async fn count_pending(&mut self, tenant: &str, owner: &str) -> QueryResult<i64> {
        on_db!(self, conn => {
            pending_links::table
                .filter(pending_links::tenant_id.eq(tenant))
                .filter(pending_links::owner_id.eq(owner))
                .count()
                .get_result(conn)
                .await
        })
    }

    pub async fn insert_pending(&mut self, rows: &[PendingRow]) -> QueryResult<()> {
        for row in rows {
            on_db!(self, conn => {
                diesel::insert_into(pending_links::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await
            })?;
        }
        Ok(())
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

    pub async fn event_by_message_id(
        &mut self,
        tenant: &str,
        message_id: &str,
    ) -> QueryResult<Option<EventRow>> {
        on_db!(self, conn => {
            events::table
                .filter(events::tenant_id.eq(tenant))
                .filter(events::message_id.eq(message_id))
                .select(EventRow::as_select())
                .first(conn)
                .await
                .optional()
        })
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
fn lock_key(tenant: &str, id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tenant.bytes().chain([0]).chain(id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
