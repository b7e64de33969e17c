//! `event`: record what happened to an identified instance.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use functionary_config::{CompiledConfig, UndeclaredEvents};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::{Db, Operation};
use crate::error::{Detail, StoreError, TxError};
use crate::identify::ids_conflict;
use crate::ids::{known_model, normalize_ids};
use crate::properties;
use crate::queries::EventRow;
use crate::{TenantId, new_id};

/// Longest event name and messageId, in characters (what a JSON Schema `maxLength` counts).
pub const MAX_NAME_CHARS: usize = 255;

/// An event call, as the API receives it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventInput {
    #[serde(default)]
    pub name: Option<String>,
    /// Alias of `name`; exactly one of the two is given.
    #[serde(default)]
    pub event: Option<String>,
    pub ids: Vec<Value>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub message_id: Option<String>,
}

/// What an event call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventOutcome {
    /// Stored (or, with `duplicate`, stored before under the same `messageId`).
    #[serde(rename_all = "camelCase")]
    Accepted {
        event_id: String,
        instance_id: String,
        duplicate: bool,
    },
    /// No instance holds the ids: the event is thrown out and counted.
    Discarded { reason: &'static str },
}

#[derive(Debug)]
pub(crate) struct Track {
    tenant: TenantId,
    name: String,
    ids: Vec<String>,
    /// The models searched for the ids, in order.
    models: Vec<String>,
    properties: String,
    at: i64,
    now: i64,
    message_id: Option<String>,
}

impl Track {
    /// Checks everything that does not need the database; every problem is a 422.
    pub fn prepare(
        tenant: TenantId,
        config: &Arc<CompiledConfig>,
        input: EventInput,
        now: i64,
    ) -> Result<Self, StoreError> {
        let (name, pointer) = match (input.name, input.event) {
            (Some(name), None) => (name, "/name"),
            (None, Some(name)) => (name, "/event"),
            (Some(_), Some(_)) => {
                return Err(invalid_name(
                    "/event",
                    "give the event name as `name` or as `event`, not both",
                ));
            }
            (None, None) => {
                return Err(invalid_name("/name", "the event name is required (`name`)"));
            }
        };
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid_name(
                pointer,
                &format!("an event name is 1 to {MAX_NAME_CHARS} characters long"),
            ));
        }
        if name.starts_with("onFunctionary") {
            return Err(invalid_name(
                pointer,
                "names starting with `onFunctionary` are reserved for system events",
            ));
        }
        let ids = normalize_ids(&input.ids, "/ids", true, config)?;
        if let Some(model) = &input.model {
            known_model(config, model, "/model")?;
        }
        let properties = input.properties.unwrap_or_default();
        let text = properties::check_size(&properties, "/properties", "properties")?;
        let declared = config.event(&name);
        let for_models = declared.and_then(|event| event.for_models());
        match declared {
            Some(event) => event
                .validate(&Value::Object(properties))
                .map_err(|violations| {
                    properties::invalid_properties(
                        "/properties",
                        violations,
                        "the event's properties",
                    )
                })?,
            None if config.undeclared_events() == UndeclaredEvents::Reject => {
                return Err(StoreError::invalid(
                    "undeclared_event",
                    format!(
                        "event `{name}` is not declared in the tenant's config, which rejects undeclared events"
                    ),
                    vec![Detail::at(pointer, "undeclared event")],
                ));
            }
            None => {}
        }
        let models: Vec<String> = match (&input.model, for_models) {
            (Some(model), Some(allowed)) if !allowed.contains(model) => {
                return Err(StoreError::invalid(
                    "event_not_for_model",
                    format!(
                        "event `{name}` happens to the models [{}], not to `{model}`",
                        allowed.join(", ")
                    ),
                    vec![Detail::at("/model", "model not allowed for this event")],
                ));
            }
            (Some(model), _) => vec![model.clone()],
            (None, Some(allowed)) => config
                .models()
                .iter()
                .map(|model| model.name().to_owned())
                .filter(|model| allowed.contains(model))
                .collect(),
            (None, None) => config
                .models()
                .iter()
                .map(|model| model.name().to_owned())
                .collect(),
        };
        if let Some(message_id) = &input.message_id
            && (message_id.is_empty() || message_id.chars().count() > MAX_NAME_CHARS)
        {
            return Err(StoreError::invalid(
                "invalid_message_id",
                format!("messageId is 1 to {MAX_NAME_CHARS} characters long"),
                vec![Detail::at("/messageId", "invalid length")],
            ));
        }
        Ok(Self {
            tenant,
            name,
            ids,
            models,
            properties: text,
            at: input.timestamp.map_or(now, |at| at.timestamp_micros()),
            now,
            message_id: input.message_id,
        })
    }
}

impl Operation for Track {
    type Output = EventOutcome;

    async fn run(&self, db: &mut Db<'_>) -> Result<EventOutcome, TxError> {
        let tenant = self.tenant.as_str();
        if let Some(message_id) = &self.message_id
            && let Some(first) = db.event_by_message_id(tenant, message_id).await?
        {
            return Ok(EventOutcome::Accepted {
                event_id: first.id,
                instance_id: first.instance_id,
                duplicate: true,
            });
        }
        let models: Vec<&str> = self.models.iter().map(String::as_str).collect();
        let holders = db.holders_of(tenant, &self.ids, &models).await?;
        // The first model, in the order searched, that holds any of the ids.
        let Some(model) = models
            .iter()
            .find(|model| holders.iter().any(|row| row.model == **model))
        else {
            return Ok(EventOutcome::Discarded {
                reason: "unknown_instance",
            });
        };
        let in_model: Vec<_> = holders
            .into_iter()
            .filter(|row| row.model == *model)
            .collect();
        let instances: BTreeSet<&str> = in_model
            .iter()
            .map(|row| row.instance_id.as_str())
            .collect();
        let [instance_id] = instances.into_iter().collect::<Vec<_>>()[..] else {
            return Err(ids_conflict(&self.ids, &in_model).into());
        };
        let row = EventRow {
            tenant_id: tenant.to_owned(),
            id: new_id(),
            instance_id: instance_id.to_owned(),
            name: self.name.clone(),
            properties: self.properties.clone(),
            occurred_at: self.at,
            received_at: self.now,
            message_id: self.message_id.clone(),
        };
        db.insert_event(&row).await?;
        Ok(EventOutcome::Accepted {
            event_id: row.id,
            instance_id: row.instance_id,
            duplicate: false,
        })
    }
}

fn invalid_name(pointer: &str, message: &str) -> StoreError {
    StoreError::invalid(
        "invalid_event_name",
        message,
        vec![Detail::at(pointer, message)],
    )
}
