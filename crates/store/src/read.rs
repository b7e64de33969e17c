//! Reading and deleting instances and their events.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::TenantId;
use crate::db::{Db, Operation};
use crate::error::{StoreError, TxError};
use crate::queries::{EventRow, InstanceRow};

/// Most items one page may hold.
pub const MAX_PAGE: usize = 100;

/// An instance with its ids, links and pending links.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub instance_id: String,
    pub model: String,
    pub ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub properties: Map<String, Value>,
    pub parents: Vec<LinkedInstance>,
    pub children: Vec<LinkedInstance>,
    pub pending: Vec<PendingLink>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The other end of a parent/child link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedInstance {
    pub instance_id: String,
    pub model: String,
    pub ids: Vec<String>,
}

/// A link that waits for an id to be identified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingLink {
    /// What the awaited instance will be to this one: `child` or `parent`.
    pub role: String,
    pub id: String,
    /// The model the id must appear in; absent for any model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub event_id: String,
    pub name: String,
    pub properties: Map<String, Value>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// One page of a list; `next_cursor` is absent on the last page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

pub(crate) fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn not_found(model: &str, id: &str) -> StoreError {
    StoreError::not_found(
        "instance_not_found",
        format!("no `{model}` instance has the id {id:?}"),
    )
}

/// Finds the instance of `model` that holds `id`.
async fn find(
    db: &mut Db<'_>,
    tenant: &str,
    model: &str,
    id: &str,
) -> Result<InstanceRow, TxError> {
    let holders = db.holders_of(tenant, &[id.to_owned()], &[model]).await?;
    let Some(holder) = holders.first() else {
        return Err(not_found(model, id).into());
    };
    db.instance(tenant, &holder.instance_id, false)
        .await?
        .ok_or_else(|| not_found(model, id).into())
}

/// Builds the views of `rows` with a fixed number of queries, whatever their number.
async fn views(
    db: &mut Db<'_>,
    tenant: &str,
    rows: Vec<InstanceRow>,
) -> Result<Vec<InstanceView>, TxError> {
    let own: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let edges = db.edges_of(tenant, &own).await?;
    let linked: BTreeSet<String> = edges
        .iter()
        .flat_map(|edge| [edge.parent_id.clone(), edge.child_id.clone()])
        .filter(|id| !own.contains(id))
        .collect();
    let linked: Vec<String> = linked.into_iter().collect();
    let linked_models: HashMap<String, String> = db
        .instances_by_id(tenant, &linked)
        .await?
        .into_iter()
        .map(|row| (row.id, row.model))
        .chain(rows.iter().map(|row| (row.id.clone(), row.model.clone())))
        .collect();
    let everyone: Vec<String> = own.iter().chain(&linked).cloned().collect();
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for row in db.ids_of(tenant, &everyone).await? {
        ids.entry(row.instance_id)
            .or_default()
            .push(row.external_id);
    }
    let mut pending: HashMap<String, Vec<PendingLink>> = HashMap::new();
    for row in db.pending_of(tenant, &own).await? {
        pending.entry(row.owner_id).or_default().push(PendingLink {
            role: row.role,
            id: row.target_external_id,
            model: Some(row.target_model).filter(|model| !model.is_empty()),
        });
    }
    let linked_instance = |id: &String| LinkedInstance {
        instance_id: id.clone(),
        model: linked_models.get(id).cloned().unwrap_or_default(),
        ids: ids.get(id).cloned().unwrap_or_default(),
    };
    rows.into_iter()
        .map(|row| {
            let parents = edges
                .iter()
                .filter(|edge| edge.child_id == row.id)
                .map(|edge| linked_instance(&edge.parent_id))
                .collect();
            let children = edges
                .iter()
                .filter(|edge| edge.parent_id == row.id)
                .map(|edge| linked_instance(&edge.child_id))
                .collect();
            Ok(InstanceView {
                ids: ids.get(&row.id).cloned().unwrap_or_default(),
                pending: pending.remove(&row.id).unwrap_or_default(),
                properties: serde_json::from_str(&row.properties)?,
                instance_id: row.id,
                model: row.model,
                display_name: row.display_name,
                parents,
                children,
                created_at: micros_to_time(row.created_at),
                updated_at: micros_to_time(row.updated_at),
            })
        })
        .collect()
}

pub(crate) struct GetInstance {
    pub tenant: TenantId,
    pub model: String,
    pub id: String,
}

impl Operation for GetInstance {
    type Output = InstanceView;

    async fn run(&self, db: &mut Db<'_>) -> Result<InstanceView, TxError> {
        let row = find(db, self.tenant.as_str(), &self.model, &self.id).await?;
        let mut views = views(db, self.tenant.as_str(), vec![row]).await?;
        views
            .pop()
            .ok_or_else(|| not_found(&self.model, &self.id).into())
    }
}

pub(crate) struct ListInstances {
    pub tenant: TenantId,
    pub model: String,
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Operation for ListInstances {
    type Output = Page<InstanceView>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Page<InstanceView>, TxError> {
        let limit = self.limit.clamp(1, MAX_PAGE);
        let mut rows = db
            .instances_page(
                self.tenant.as_str(),
                &self.model,
                self.cursor.as_deref(),
                page_query_limit(limit),
            )
            .await?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map(|row| row.id.clone())
        });
        let items = views(db, self.tenant.as_str(), rows).await?;
        Ok(Page {
            items,
            next_cursor: next_cursor.flatten(),
        })
    }
}

pub(crate) struct ListEvents {
    pub tenant: TenantId,
    pub model: String,
    pub id: String,
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Operation for ListEvents {
    type Output = Page<EventView>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Page<EventView>, TxError> {
        let before = match &self.cursor {
            Some(cursor) => Some(parse_event_cursor(cursor)?),
            None => None,
        };
        let instance = find(db, self.tenant.as_str(), &self.model, &self.id).await?;
        let limit = self.limit.clamp(1, MAX_PAGE);
        let mut rows = db
            .events_page(
                self.tenant.as_str(),
                &instance.id,
                before.as_ref().map(|(at, id)| (*at, id.as_str())),
                page_query_limit(limit),
            )
            .await?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last()
                .map(|row| format!("{}_{}", row.occurred_at, row.id))
        });
        let items = rows
            .into_iter()
            .map(event_view)
            .collect::<Result<_, TxError>>()?;
        Ok(Page {
            items,
            next_cursor: next_cursor.flatten(),
        })
    }
}

fn page_query_limit(limit: usize) -> i64 {
    i64::try_from(limit + 1).unwrap_or(i64::MAX)
}

fn event_view(row: EventRow) -> Result<EventView, TxError> {
    Ok(EventView {
        event_id: row.id,
        name: row.name,
        properties: serde_json::from_str(&row.properties)?,
        timestamp: micros_to_time(row.occurred_at),
        received_at: micros_to_time(row.received_at),
    })
}

fn parse_event_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    cursor
        .split_once('_')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| {
            StoreError::invalid(
                "invalid_cursor",
                "cursor is not one this API returned",
                vec![crate::error::Detail::at("/cursor", "unknown cursor")],
            )
        })
}

pub(crate) struct DeleteInstance {
    pub tenant: TenantId,
    pub model: String,
    pub id: String,
}

impl Operation for DeleteInstance {
    type Output = ();

    async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
        let instance = find(db, self.tenant.as_str(), &self.model, &self.id).await?;
        db.delete_instance(self.tenant.as_str(), &instance.id)
            .await?;
        Ok(())
    }
}
