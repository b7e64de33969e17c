//! `event`: record what happened to an identified instance.

use std::collections::{BTreeSet, HashMap};
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
use crate::queries::{IdRow, NewEvent};
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

/// A validated event, ready to be recorded (by [`TrackMany`], alone or with others).
#[derive(Debug)]
pub(crate) struct Track {
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
            name,
            ids,
            models,
            properties: text,
            at: input.timestamp.map_or(now, |at| at.timestamp_micros()),
            now,
            message_id: input.message_id,
        })
    }

    /// The instance this event happened to, from `holders` (rows holding ids, sorted by id;
    /// rows of other ids and models may be among them): the first model searched, in order,
    /// that holds any of the ids, when one instance of it holds them all; `None` when no
    /// searched model holds any; 409 `ids_conflict` when the ids are in two instances of that
    /// model.
    fn resolve<'r>(&self, holders: &'r [IdRow]) -> Result<Option<&'r str>, StoreError> {
        let mine = || {
            self.ids
                .iter()
                .flat_map(|id| holding(holders, id))
                .filter(|row| self.models.contains(&row.model))
        };
        let Some(model) = self
            .models
            .iter()
            .find(|model| mine().any(|row| &row.model == *model))
        else {
            return Ok(None);
        };
        let in_model = || mine().filter(|row| &row.model == model);
        let mut instance_ids = in_model().map(|row| row.instance_id.as_str());
        let first = instance_ids.next();
        if instance_ids.all(|instance_id| Some(instance_id) == first) {
            return Ok(first);
        }
        let known: Vec<IdRow> = in_model().cloned().collect();
        Err(ids_conflict(&self.ids, &known))
    }

    /// This event as a row of `instance_id`, under the new event id `id`.
    fn row<'a>(&'a self, tenant: &'a str, id: &'a str, instance_id: &'a str) -> NewEvent<'a> {
        NewEvent {
            tenant_id: tenant,
            id,
            instance_id,
            name: &self.name,
            properties: &self.properties,
            occurred_at: self.at,
            received_at: self.now,
            message_id: self.message_id.as_deref(),
        }
    }
}

/// The rows of `holders` (sorted by id) that hold `id`.
fn holding<'r>(holders: &'r [IdRow], id: &str) -> &'r [IdRow] {
    let start = holders.partition_point(|row| row.external_id.as_str() < id);
    let end = start + holders[start..].partition_point(|row| row.external_id == id);
    &holders[start..end]
}

/// Consecutive events of one tenant (one event call, or a run of a batch), recorded in one
/// transaction with the same few statements however many they are: one lookup of their
/// messageIds, one of the holders of their ids, one multi-row INSERT of the new events
/// (lookups and inserts are cut in chunks only far beyond a batch's size).
///
/// Each event ends as it would have alone, in order: a duplicate of an event stored before, or
/// of an earlier event of the run with the same messageId; thrown out when no instance holds its
/// ids; 409 when its ids are in two instances (that event alone fails); else stored.
#[derive(Debug)]
pub(crate) struct TrackMany {
    tenant: TenantId,
    items: Vec<Track>,
}

impl TrackMany {
    pub fn new(tenant: TenantId, items: Vec<Track>) -> Self {
        Self { tenant, items }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

impl Operation for TrackMany {
    /// One outcome per event, in order.
    type Output = Vec<Result<EventOutcome, StoreError>>;

    /// Reads, then one INSERT of every new event: atomic on its own. A concurrent event with
    /// the same messageId makes it fail on the unique index (retried, and the retry answers
    /// `duplicate`); a concurrent deletion of the instance makes it fail on the foreign key
    /// (retried, and the retry throws the event out). More rows than one statement inserts
    /// need a transaction.
    fn needs_transaction(&self) -> bool {
        self.items.len() > crate::queries::INSERT_CHUNK
    }

    async fn run(&self, db: &mut Db<'_>) -> Result<Self::Output, TxError> {
        let tenant = self.tenant.as_str();
        let message_ids: BTreeSet<&String> = self
            .items
            .iter()
            .filter_map(|item| item.message_id.as_ref())
            .collect();
        let message_ids: Vec<String> = message_ids.into_iter().cloned().collect();
        // The event first stored under each messageId, as (event id, instance id): before this
        // transaction, and below also by the earlier events of the run.
        let mut first: HashMap<String, (String, String)> = db
            .events_by_message_id(tenant, &message_ids)
            .await?
            .into_iter()
            .filter_map(|row| Some((row.message_id?, (row.id, row.instance_id))))
            .collect();

        // The holders of the ids of every event not already a duplicate, in every model one of
        // them searches.
        let mut ids = BTreeSet::new();
        let mut models = BTreeSet::new();
        for item in self.items.iter().filter(|item| {
            item.message_id
                .as_ref()
                .is_none_or(|message_id| !first.contains_key(message_id))
        }) {
            ids.extend(item.ids.iter().map(String::as_str));
            models.extend(item.models.iter().map(String::as_str));
        }
        let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
        let models: Vec<&str> = models.into_iter().collect();
        let mut holders = db.holders_of(tenant, &ids, &models).await?;
        holders.sort_by(|a, b| a.external_id.cmp(&b.external_id));

        // The events to store: (event, instance id, new event id).
        let mut stored: Vec<(&Track, &str, String)> = Vec::new();
        let mut outcomes = Vec::with_capacity(self.items.len());
        for item in &self.items {
            if let Some((event_id, instance_id)) = item
                .message_id
                .as_ref()
                .and_then(|message_id| first.get(message_id))
            {
                outcomes.push(Ok(EventOutcome::Accepted {
                    event_id: event_id.clone(),
                    instance_id: instance_id.clone(),
                    duplicate: true,
                }));
                continue;
            }
            outcomes.push(match item.resolve(&holders) {
                Err(conflict) => Err(conflict),
                Ok(None) => Ok(EventOutcome::Discarded {
                    reason: "unknown_instance",
                }),
                Ok(Some(instance_id)) => {
                    let event_id = new_id();
                    if let Some(message_id) = &item.message_id {
                        first.insert(
                            message_id.clone(),
                            (event_id.clone(), instance_id.to_owned()),
                        );
                    }
                    let outcome = EventOutcome::Accepted {
                        event_id: event_id.clone(),
                        instance_id: instance_id.to_owned(),
                        duplicate: false,
                    };
                    stored.push((item, instance_id, event_id));
                    Ok(outcome)
                }
            });
        }
        let rows: Vec<NewEvent<'_>> = stored
            .iter()
            .map(|(item, instance_id, event_id)| item.row(tenant, event_id, instance_id))
            .collect();
        db.insert_events(&rows).await?;
        Ok(outcomes)
    }
}

fn invalid_name(pointer: &str, message: &str) -> StoreError {
    StoreError::invalid(
        "invalid_event_name",
        message,
        vec![Detail::at(pointer, message)],
    )
}
