//! `identify`: resolve ids to one instance, merge what the call says about it, link it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use functionary_config::CompiledConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::{Db, Operation};
use crate::error::{Detail, StoreError, TxError};
use crate::ids::{known_model, normalize_ids};
use crate::properties::{self, Properties};
use crate::queries::{EdgeRow, EventRow, IdRow, InstanceRow, PendingRow};
use crate::{TenantId, new_id};

/// The event recorded on an instance by every successful identify.
pub const IDENTIFY_EVENT: &str = "onFunctionaryIdentify";

/// Longest display name, in characters (what a JSON Schema `maxLength` counts).
pub const MAX_DISPLAY_NAME_CHARS: usize = 255;

/// An identify call, as the API receives it (ids still raw JSON values).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentifyInput {
    pub model: String,
    pub ids: Vec<Value>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub child_ids: Vec<Value>,
    #[serde(default)]
    pub child_model: Option<String>,
    #[serde(default)]
    pub parent_ids: Vec<Value>,
    #[serde(default)]
    pub parent_model: Option<String>,
    /// When the client observed these values; default: when the call was received.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

/// What an identify did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentifyOutcome {
    pub instance_id: String,
    pub created: bool,
    pub model: String,
    /// Every id of the instance, sorted.
    pub ids: Vec<String>,
    /// How many links of this instance still wait for their id to be identified.
    pub pending: u64,
}

/// What the other instance of a link is to the identified one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Child,
    Parent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Child => "child",
            Self::Parent => "parent",
        }
    }
}

#[derive(Debug)]
struct LinkRequest {
    role: Role,
    ids: Vec<String>,
    model: Option<String>,
    pointer: &'static str,
}

/// A validated identify, ready to run in a transaction.
#[derive(Debug)]
pub(crate) struct Identify {
    tenant: TenantId,
    config: Arc<CompiledConfig>,
    model: String,
    ids: Vec<String>,
    display_name: Option<String>,
    properties: Map<String, Value>,
    links: Vec<LinkRequest>,
    at: i64,
    now: i64,
}

impl Identify {
    /// Checks everything that does not need the database; every problem is a 422.
    pub fn prepare(
        tenant: TenantId,
        config: Arc<CompiledConfig>,
        input: IdentifyInput,
        now: i64,
    ) -> Result<Self, StoreError> {
        known_model(&config, &input.model, "/model")?;
        let ids = normalize_ids(&input.ids, "/ids", true, &config)?;
        let mut links = Vec::new();
        for (role, raw, model, pointer, model_pointer) in [
            (
                Role::Child,
                &input.child_ids,
                input.child_model,
                "/childIds",
                "/childModel",
            ),
            (
                Role::Parent,
                &input.parent_ids,
                input.parent_model,
                "/parentIds",
                "/parentModel",
            ),
        ] {
            if let Some(model) = &model {
                known_model(&config, model, model_pointer)?;
            }
            let ids = normalize_ids(raw, pointer, false, &config)?;
            if !ids.is_empty() {
                links.push(LinkRequest {
                    role,
                    ids,
                    model,
                    pointer,
                });
            }
        }
        if let Some(name) = &input.display_name
            && name.chars().count() > MAX_DISPLAY_NAME_CHARS
        {
            return Err(StoreError::invalid(
                "invalid_display_name",
                format!(
                    "displayName is {} characters long; at most {MAX_DISPLAY_NAME_CHARS} are allowed",
                    name.chars().count()
                ),
                vec![Detail::at("/displayName", "too long")],
            ));
        }
        let properties = input.properties.unwrap_or_default();
        properties::check_size(&properties, "/properties", "properties")?;
        Ok(Self {
            tenant,
            config,
            model: input.model,
            ids,
            display_name: input.display_name,
            properties,
            links,
            at: input.timestamp.map_or(now, |at| at.timestamp_micros()),
            now,
        })
    }

    fn tenant(&self) -> &str {
        self.tenant.as_str()
    }

    /// Whether an instance of `parent` may be a parent of an instance of `child`.
    fn allows(&self, parent: &str, child: &str) -> bool {
        self.config
            .model(child)
            .and_then(|model| model.parents())
            .is_none_or(|allowed| allowed.iter().any(|name| name == parent))
    }

    fn merged(&self, stored: Option<&InstanceRow>) -> Result<(InstanceRow, bool), TxError> {
        let (mut properties, mut display_name, mut display_name_at) = match stored {
            Some(row) => (
                Properties::from_stored(&row.properties, &row.property_clock)?,
                row.display_name.clone(),
                row.display_name_at,
            ),
            None => (Properties::default(), None, None),
        };
        let mut changed = properties.merge(&self.properties, self.at);
        if let Some(name) = &self.display_name
            && display_name_at.is_none_or(|stored_at| stored_at <= self.at)
        {
            changed = true;
            display_name = Some(name.clone());
            display_name_at = Some(self.at);
        }
        let model = known_model(&self.config, &self.model, "/model")?;
        let values = Value::Object(properties.values);
        model.validate(&values).map_err(|violations| {
            properties::invalid_properties("/properties", violations, "the merged properties")
        })?;
        let text = properties::check_size(&values, "/properties", "the merged properties")?;
        let row = InstanceRow {
            tenant_id: self.tenant.as_str().to_owned(),
            id: stored.map_or_else(new_id, |row| row.id.clone()),
            model: self.model.clone(),
            display_name,
            display_name_at,
            properties: text,
            property_clock: serde_json::to_string(&properties.clock)?,
            created_at: stored.map_or(self.now, |row| row.created_at),
            updated_at: self.now,
        };
        Ok((row, changed))
    }

    /// Links the identified instance to the instances named by `childIds` / `parentIds`, or
    /// keeps a pending link for ids nobody holds yet.
    /// Returns how many pending links it added.
    async fn link(&self, db: &mut Db<'_>, this: &str) -> Result<usize, TxError> {
        let models: Vec<&str> = self
            .config
            .models()
            .iter()
            .map(|model| model.name())
            .collect();
        let mut edges = Vec::new();
        let mut pending = Vec::new();
        for link in &self.links {
            let searched: Vec<&str> = match &link.model {
                Some(model) => vec![model.as_str()],
                None => models.clone(),
            };
            let holders = db.holders_of(self.tenant(), &link.ids, &searched).await?;
            for id in &link.ids {
                // The first model in config order (or the one named) that holds the id.
                let found = searched.iter().find_map(|model| {
                    holders
                        .iter()
                        .find(|row| &row.external_id == id && row.model == *model)
                });
                let other_model = found
                    .map(|row| row.model.as_str())
                    .or(link.model.as_deref());
                if let Some(other_model) = other_model {
                    let (parent, child) = match link.role {
                        Role::Child => (self.model.as_str(), other_model),
                        Role::Parent => (other_model, self.model.as_str()),
                    };
                    if !self.allows(parent, child) {
                        return Err(
                            parent_not_allowed(link, id, parent, child, &self.config).into()
                        );
                    }
                }
                match found {
                    Some(row) if row.instance_id == this => {
                        return Err(StoreError::invalid(
                            "self_link",
                            format!("an instance can not be its own {}", link.role.as_str()),
                            vec![Detail {
                                id: Some(id.clone()),
                                ..Detail::at(
                                    link.pointer,
                                    format!("{id:?} is an id of this instance"),
                                )
                            }],
                        )
                        .into());
                    }
                    Some(row) => {
                        let (parent_id, child_id) = match link.role {
                            Role::Child => (this.to_owned(), row.instance_id.clone()),
                            Role::Parent => (row.instance_id.clone(), this.to_owned()),
                        };
                        edges.push(EdgeRow {
                            tenant_id: self.tenant.as_str().to_owned(),
                            parent_id,
                            child_id,
                            created_at: self.now,
                        });
                    }
                    None => pending.push(PendingRow {
                        tenant_id: self.tenant.as_str().to_owned(),
                        owner_id: this.to_owned(),
                        role: link.role.as_str().to_owned(),
                        target_external_id: id.clone(),
                        target_model: link.model.clone().unwrap_or_default(),
                        created_at: self.now,
                    }),
                }
            }
        }
        db.insert_edges(&edges).await?;
        Ok(db.insert_pending(&pending).await?)
    }

    /// Pairs the pending links of other instances that waited for one of `new_ids`.
    async fn pair_pending(
        &self,
        db: &mut Db<'_>,
        this: &str,
        new_ids: &[String],
    ) -> Result<(), TxError> {
        let awaiting = db
            .pending_awaiting(self.tenant(), new_ids, &self.model)
            .await?;
        if awaiting.is_empty() {
            return Ok(());
        }
        let owners: Vec<String> = awaiting.iter().map(|link| link.owner_id.clone()).collect();
        let owner_models: HashMap<String, String> = db
            .instances_by_id(self.tenant(), &owners)
            .await?
            .into_iter()
            .map(|row| (row.id, row.model))
            .collect();
        let mut edges = Vec::new();
        for link in awaiting {
            let Some(owner_model) = owner_models.get(&link.owner_id) else {
                continue;
            };
            // A link awaiting an id of its own owner, or one the `parents` rule forbids with
            // this model, stays pending: the id may still appear in another model.
            if link.owner_id == this {
                continue;
            }
            let (parent_id, child_id, parent_model, child_model) =
                if link.role == Role::Child.as_str() {
                    (
                        link.owner_id.clone(),
                        this.to_owned(),
                        owner_model.as_str(),
                        self.model.as_str(),
                    )
                } else {
                    (
                        this.to_owned(),
                        link.owner_id.clone(),
                        self.model.as_str(),
                        owner_model.as_str(),
                    )
                };
            if !self.allows(parent_model, child_model) {
                continue;
            }
            edges.push(EdgeRow {
                tenant_id: self.tenant.as_str().to_owned(),
                parent_id,
                child_id,
                created_at: self.now,
            });
            db.delete_pending(&link).await?;
        }
        db.insert_edges(&edges).await?;
        Ok(())
    }
}

impl Operation for Identify {
    type Output = IdentifyOutcome;

    async fn run(&self, db: &mut Db<'_>) -> Result<IdentifyOutcome, TxError> {
        let tenant = self.tenant();
        let touched: Vec<&str> = self
            .ids
            .iter()
            .chain(self.links.iter().flat_map(|link| &link.ids))
            .map(String::as_str)
            .collect();
        let known = db
            .lock_and_find(tenant, &touched, &self.ids, &self.model)
            .await?;
        let holders: BTreeSet<&str> = known.iter().map(|row| row.instance_id.as_str()).collect();
        if holders.len() > 1 {
            return Err(ids_conflict(&self.ids, &known).into());
        }
        // The instance, every id it holds already (not only the ones this call names) and its
        // pending links.
        let (existing, held, pending_before) = match holders.first() {
            Some(id) => {
                let (row, ids, pending) = db.instance_state(tenant, id).await?;
                let row = row.ok_or_else(|| {
                    StoreError::Internal(format!("instance {id} has ids but no row"))
                })?;
                let ids: Vec<String> = ids.into_iter().map(|id| id.external_id).collect();
                (Some(row), ids, pending)
            }
            None => (None, Vec::new(), 0),
        };
        let (row, changed) = self.merged(existing.as_ref())?;
        let created = existing.is_none();
        let new_ids: Vec<String> = self
            .ids
            .iter()
            .filter(|id| !held.contains(id))
            .cloned()
            .collect();
        let new_rows: Vec<IdRow> = new_ids
            .iter()
            .map(|id| IdRow {
                tenant_id: tenant.to_owned(),
                model: self.model.clone(),
                external_id: id.clone(),
                instance_id: row.id.clone(),
            })
            .collect();
        if created {
            db.create_instance(&row, &new_rows).await?;
        } else {
            db.insert_ids(&new_rows).await?;
        }

        if !new_ids.is_empty() {
            self.pair_pending(db, &row.id, &new_ids).await?;
        }
        let pending_added = self.link(db, &row.id).await?;
        let event = EventRow {
            tenant_id: tenant.to_owned(),
            id: new_id(),
            instance_id: row.id.clone(),
            name: IDENTIFY_EVENT.to_owned(),
            properties: serde_json::to_string(&self.properties)?,
            occurred_at: self.at,
            received_at: self.now,
            message_id: None,
        };
        // The update of an existing instance goes last, with the event: nothing above reads it.
        if !created && changed {
            db.update_and_record(&row, &event).await?;
        } else {
            db.insert_event(&event).await?;
        }
        // Pairing only removes links of other instances, so the count is the one read with
        // the instance plus the links this call added.
        let pending = pending_before + i64::try_from(pending_added).unwrap_or(i64::MAX);

        let mut ids: Vec<String> = held.into_iter().chain(new_ids).collect();
        ids.sort();
        Ok(IdentifyOutcome {
            instance_id: row.id,
            created,
            model: self.model.clone(),
            ids,
            pending: u64::try_from(pending).unwrap_or_default(),
        })
    }
}

/// 409: the ids of one call belong to different instances. Nothing is changed; the details
/// say which id belongs to which instance.
pub(crate) fn ids_conflict(ids: &[String], known: &[IdRow]) -> StoreError {
    let details: Vec<Detail> = ids
        .iter()
        .filter_map(|id| {
            let row = known.iter().find(|row| &row.external_id == id)?;
            Some(Detail {
                id: Some(id.clone()),
                instance_id: Some(row.instance_id.clone()),
                message: format!("{id:?} belongs to instance {}", row.instance_id),
                ..Detail::default()
            })
        })
        .collect();
    let instances: BTreeSet<&str> = details
        .iter()
        .filter_map(|detail| detail.instance_id.as_deref())
        .collect();
    StoreError::Conflict {
        code: "ids_conflict",
        message: format!(
            "the ids belong to {} different instances; instances are never merged silently",
            instances.len()
        ),
        details,
    }
}

fn parent_not_allowed(
    link: &LinkRequest,
    id: &str,
    parent: &str,
    child: &str,
    config: &CompiledConfig,
) -> StoreError {
    let allowed = config
        .model(child)
        .and_then(|model| model.parents())
        .unwrap_or_default()
        .join(", ");
    StoreError::invalid(
        "parent_not_allowed",
        format!("model `{child}` allows parents of the models [{allowed}], not `{parent}`"),
        vec![Detail {
            id: Some(id.to_owned()),
            ..Detail::at(
                link.pointer,
                format!("{id:?} would make `{parent}` a parent of `{child}`"),
            )
        }],
    )
}
