//! A checked tenant config, compiled once into the validators that guard every write.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::document::{ConfigDocument, UndeclaredEvents};
use crate::schema::{self, Violation};

/// Ids refused for every tenant: one junk id shared by many users would tie them all to one
/// instance. Compared case-insensitively after trimming; empty and all-blank ids are refused too.
pub const BUILT_IN_BLOCKED_IDS: &[&str] = &[
    "null",
    "undefined",
    "none",
    "nan",
    "0",
    "-1",
    "anonymous",
    "unknown",
    "[object object]",
];

/// A tenant config that passed every check, with one compiled validator per model and event.
#[derive(Debug)]
pub struct CompiledConfig {
    tenant: String,
    display_name: Option<String>,
    models: Vec<CompiledModel>,
    events: HashMap<String, CompiledEvent>,
    undeclared_events: UndeclaredEvents,
    blocked_ids: HashSet<String>,
}

/// A model of a tenant: its name, the models allowed as its parents and its properties validator.
#[derive(Debug)]
pub struct CompiledModel {
    name: String,
    parents: Option<Vec<String>>,
    validator: jsonschema::Validator,
}

/// A declared event: the models it may happen to and its properties validator.
#[derive(Debug)]
pub struct CompiledEvent {
    name: String,
    for_models: Option<Vec<String>>,
    validator: jsonschema::Validator,
}

impl CompiledConfig {
    /// Assembles a document that passed the checks in [`crate::load_config`], with the
    /// validators compiled there, keyed by the JSON pointer of each `schema`.
    pub(crate) fn new(
        document: ConfigDocument,
        default_tenant: &str,
        mut validators: HashMap<String, jsonschema::Validator>,
    ) -> Self {
        let mut validator_at = |pointer: String| {
            validators
                .remove(&pointer)
                .unwrap_or_else(schema::any_object_validator)
        };
        let models = document
            .models
            .into_iter()
            .enumerate()
            .map(|(index, model)| CompiledModel {
                validator: validator_at(format!("/models/{index}/schema")),
                name: model.name,
                parents: model.parents,
            })
            .collect();
        let events = document
            .events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                let compiled = CompiledEvent {
                    validator: validator_at(format!("/events/{index}/schema")),
                    name: event.name.clone(),
                    for_models: event.for_models,
                };
                (event.name, compiled)
            })
            .collect();
        let blocked_ids = BUILT_IN_BLOCKED_IDS
            .iter()
            .map(|id| (*id).to_owned())
            .chain(
                document
                    .settings
                    .blocked_ids
                    .iter()
                    .map(|id| normalize_blocked(id)),
            )
            .collect();
        Self {
            tenant: document.tenant.unwrap_or_else(|| default_tenant.to_owned()),
            display_name: document.display_name,
            models,
            events,
            undeclared_events: document.settings.undeclared_events,
            blocked_ids,
        }
    }

    /// The tenant slug: the `tenant` key, or the file's stem when the key is absent.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The models in the order the config declares them: the lookup order when no model is given.
    pub fn models(&self) -> &[CompiledModel] {
        &self.models
    }

    pub fn model(&self, name: &str) -> Option<&CompiledModel> {
        self.models.iter().find(|model| model.name == name)
    }

    pub fn event(&self, name: &str) -> Option<&CompiledEvent> {
        self.events.get(name)
    }

    pub fn undeclared_events(&self) -> UndeclaredEvents {
        self.undeclared_events
    }

    /// Whether `id` is a junk id (built-in list, the tenant's `settings.blockedIds`, or blank).
    pub fn is_blocked_id(&self, id: &str) -> bool {
        let trimmed = id.trim();
        // Most ids are lower case already: compared as they are, without a lowered copy.
        let lowered = trimmed
            .chars()
            .flat_map(char::to_lowercase)
            .eq(trimmed.chars());
        trimmed.is_empty()
            || if lowered {
                self.blocked_ids.contains(trimmed)
            } else {
                self.blocked_ids.contains(&normalize_blocked(trimmed))
            }
    }
}

impl CompiledModel {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The models allowed as parents of this model; `None` allows every model.
    pub fn parents(&self) -> Option<&[String]> {
        self.parents.as_deref()
    }

    /// Checks a properties object; every violation is reported, each with its JSON pointer.
    pub fn validate(&self, properties: &Value) -> Result<(), Vec<Violation>> {
        schema::violations(&self.validator, properties)
    }
}

impl CompiledEvent {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The models this event may happen to; `None` allows every model.
    pub fn for_models(&self) -> Option<&[String]> {
        self.for_models.as_deref()
    }

    /// Checks a properties object; every violation is reported, each with its JSON pointer.
    pub fn validate(&self, properties: &Value) -> Result<(), Vec<Violation>> {
        schema::violations(&self.validator, properties)
    }
}

fn normalize_blocked(id: &str) -> String {
    id.trim().to_lowercase()
}
