//! The request and response bodies of the API, as tenants' generated clients see them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{Object, Union};
use serde_json::Value;

use serde::Serialize;

use crate::error::ErrorBody;
use crate::id::Id;
use crate::payload::{RequestObject, request_object, without_type};
use crate::strict::{Text, refuse_null_fields};

/// A properties object: any JSON object.
pub type Properties = BTreeMap<String, Value>;

request_object! {
    /// Create or update an instance of a model, and link it to parents and children.
    pub struct IdentifyRequest {
        /// A model declared in the tenant's config, e.g. `customer`.
        #[limits(min_length = 1, max_length = 64)]
        pub model: Text,
        /// The ids of the instance (1–100). Ids already held by an instance of this model select it;
        /// the others are added to it. Ids of two different instances are a 409.
        #[limits(min_items = 1, max_items = 100)]
        pub ids: Vec<Id>,
        /// Human-readable name; overwritten when sent (last write wins by `timestamp`).
        #[limits(max_length = 255)]
        pub display_name: Option<Text>,
        /// Merged into the stored properties key by key (last write wins per key by `timestamp`);
        /// a key sent as `null` is removed. The merged object must match the model's schema.
        pub properties: Option<Properties>,
        /// Ids of this instance's children; an id nobody holds yet is linked when it appears.
        #[limits(max_items = 100)]
        pub child_ids: Option<Vec<Id>>,
        /// The model the child ids belong to; default: the first model, in config order, holding the id.
        #[limits(min_length = 1, max_length = 64)]
        pub child_model: Option<Text>,
        /// Ids of this instance's parents; an id nobody holds yet is linked when it appears.
        #[limits(max_items = 100)]
        pub parent_ids: Option<Vec<Id>>,
        /// The model the parent ids belong to; default: the first model, in config order, holding the id.
        #[limits(min_length = 1, max_length = 64)]
        pub parent_model: Option<Text>,
        /// When the client observed these values (RFC 3339); default: when the call was received.
        pub timestamp: Option<DateTime<Utc>>,
    }
}

/// What an identify did.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct IdentifyResult {
    pub status_code: u16,
    /// The instance's opaque id.
    pub instance_id: String,
    /// Whether this call created the instance.
    pub created: bool,
    pub model: String,
    /// Every id of the instance.
    pub ids: Vec<String>,
    /// How many links of this instance wait for an id to be identified.
    pub pending: u64,
}

request_object! {
    /// Record an event that happened to an identified instance.
    pub struct EventRequest {
        /// The event name (1–255 characters). Give `name` or `event`, not both.
        #[limits(min_length = 1, max_length = 255)]
        pub name: Option<Text>,
        /// Alias of `name`.
        #[limits(min_length = 1, max_length = 255)]
        pub event: Option<Text>,
        /// Ids of the instance the event happened to (1–100).
        #[limits(min_items = 1, max_items = 100)]
        pub ids: Vec<Id>,
        /// Restricts the lookup to this model; default: models in config order, first match wins.
        #[limits(min_length = 1, max_length = 64)]
        pub model: Option<Text>,
        /// Checked against the event's schema when the config declares the event.
        pub properties: Option<Properties>,
        /// When it happened (RFC 3339); default: when the call was received.
        pub timestamp: Option<DateTime<Utc>>,
        /// Idempotency key: an event with a messageId already seen in this tenant is not stored
        /// again and answers `duplicate: true` with the first event's id.
        #[limits(min_length = 1, max_length = 255)]
        pub message_id: Option<Text>,
    }
}

/// What an event call did.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct EventResult {
    pub status_code: u16,
    /// False when no instance holds the ids: the event was thrown out.
    pub accepted: bool,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// True when an event with the same messageId was stored before.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Why the event was not accepted, e.g. `unknown_instance`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One item of a batch: an identify or an event, told apart by `type`.
///
/// Parsed by hand: poem-openapi's `Union` hands the whole object, `type` included, to the
/// variant, whose `deny_unknown_fields` then refuses `type`. The spec still comes from the
/// derived [`BatchItemSchema`]; `openapi_json` flattens its variants into closed objects.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchItem {
    Identify(IdentifyRequest),
    Event(EventRequest),
    /// An item that does not match its schema: it fails alone, with this reason (422).
    Invalid(String),
}

/// The documented shape of [`BatchItem`].
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type", rename = "BatchItem")]
pub enum BatchItemSchema {
    #[oai(mapping = "identify")]
    Identify(IdentifyRequest),
    #[oai(mapping = "event")]
    Event(EventRequest),
}

impl poem_openapi::types::Type for BatchItem {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        BatchItemSchema::name()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        BatchItemSchema::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        BatchItemSchema::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl poem_openapi::types::ParseFromJSON for BatchItem {
    fn parse_from_json(value: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        let Some(Value::Object(mut object)) = value else {
            return Ok(Self::Invalid(
                "a batch item is an object with a `type`".to_owned(),
            ));
        };
        let kind = object.remove("type");
        let rest = Some(Value::Object(object));
        if let Err(reason) = refuse_null_fields(rest.as_ref()) {
            return Ok(Self::Invalid(reason));
        }
        // A malformed item fails alone: the others of the batch still apply.
        let parsed = match kind.as_ref().and_then(Value::as_str) {
            Some("identify") => IdentifyRequest::parse_from_json(rest)
                .map(Self::Identify)
                .map_err(|error| error.into_message()),
            Some("event") => EventRequest::parse_from_json(rest)
                .map(Self::Event)
                .map_err(|error| error.into_message()),
            _ => Err("a batch item's `type` is `identify` or `event`".to_owned()),
        };
        Ok(parsed.unwrap_or_else(Self::Invalid))
    }
}

impl poem_openapi::types::ToJSON for BatchItem {
    fn to_json(&self) -> Option<Value> {
        let (kind, mut value) = match self {
            Self::Identify(request) => ("identify", request.to_json()?),
            Self::Event(request) => ("event", request.to_json()?),
            Self::Invalid(_) => return None,
        };
        value
            .as_object_mut()?
            .insert("type".to_owned(), Value::String(kind.to_owned()));
        Some(value)
    }
}

request_object! {
    /// Up to 1000 identify and event calls, applied in order.
    pub struct BatchRequest {
        #[limits(min_items = 1, max_items = 1000)]
        pub batch: Vec<BatchItem>,
    }
}

/// A batch item on the fast reader: read from its own text, straight into the request its
/// `type` names; an item that does not read so is read from a `Value` by
/// [`BatchItem::parse_from_json`], which says what is wrong with it.
impl<'de> serde::Deserialize<'de> for BatchItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<&'a str>,
        }
        let item: &'de serde_json::value::RawValue = serde::Deserialize::deserialize(deserializer)?;
        let json = item.get();
        let fast = match serde_json::from_str::<Kind<'_>>(json)
            .ok()
            .and_then(|kind| kind.kind)
        {
            Some("identify") => without_type::<IdentifyRequest>(json)
                .filter(RequestObject::within_limits)
                .map(Self::Identify),
            Some("event") => without_type::<EventRequest>(json)
                .filter(RequestObject::within_limits)
                .map(Self::Event),
            _ => None,
        };
        Ok(fast.unwrap_or_else(|| {
            let value = serde_json::from_str(json).ok();
            poem_openapi::types::ParseFromJSON::parse_from_json(value).unwrap_or_else(
                |error: poem_openapi::types::ParseError<Self>| Self::Invalid(error.into_message()),
            )
        }))
    }
}

/// The answer to one batch item: what the single call would have answered.
#[derive(Debug, Clone, Union, Serialize)]
#[serde(untagged)]
pub enum BatchItemResult {
    Identify(IdentifyResult),
    Event(EventResult),
    Error(ErrorBody),
}

#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub status_code: u16,
    /// One result per item, in order.
    pub results: Vec<BatchItemResult>,
}

/// The other end of a parent/child link.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct LinkedInstance {
    pub instance_id: String,
    pub model: String,
    pub ids: Vec<String>,
}

/// A link waiting for an id to be identified.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct PendingLink {
    /// What the awaited instance will be to this one: `child` or `parent`.
    pub role: String,
    pub id: String,
    /// The model the id must appear in; absent when any model will do.
    #[oai(skip_serializing_if_is_none)]
    pub model: Option<String>,
}

/// An instance with its ids, properties and links.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Instance {
    pub instance_id: String,
    pub model: String,
    pub ids: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    pub display_name: Option<String>,
    pub properties: Properties,
    pub parents: Vec<LinkedInstance>,
    pub children: Vec<LinkedInstance>,
    pub pending: Vec<PendingLink>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct InstancePage {
    pub instances: Vec<Instance>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub name: String,
    pub properties: Properties,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<Event>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl From<functionary_store::InstanceView> for Instance {
    fn from(view: functionary_store::InstanceView) -> Self {
        let linked = |links: Vec<functionary_store::LinkedInstance>| {
            links
                .into_iter()
                .map(|link| LinkedInstance {
                    instance_id: link.instance_id,
                    model: link.model,
                    ids: link.ids,
                })
                .collect()
        };
        Self {
            instance_id: view.instance_id,
            model: view.model,
            ids: view.ids,
            display_name: view.display_name,
            properties: view.properties.into_iter().collect(),
            parents: linked(view.parents),
            children: linked(view.children),
            pending: view
                .pending
                .into_iter()
                .map(|link| PendingLink {
                    role: link.role,
                    id: link.id,
                    model: link.model,
                })
                .collect(),
            created_at: view.created_at,
            updated_at: view.updated_at,
        }
    }
}

impl From<functionary_store::EventView> for Event {
    fn from(view: functionary_store::EventView) -> Self {
        Self {
            event_id: view.event_id,
            name: view.name,
            properties: view.properties.into_iter().collect(),
            timestamp: view.timestamp,
            received_at: view.received_at,
        }
    }
}

/// A tenant to create.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Lower-case letters, digits and hyphens; starts with a letter or digit; at most 63.
    #[oai(validator(pattern = "^[a-z0-9][a-z0-9-]{0,62}$"))]
    pub slug: Text,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub display_name: Option<Text>,
    /// The tenant's config (YAML text), stored as version 1 when given.
    #[oai(validator(max_length = 1048576))]
    pub config: Option<Text>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Tenant {
    pub slug: String,
    #[oai(skip_serializing_if_is_none)]
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The active config version; absent while the tenant has no config.
    #[oai(skip_serializing_if_is_none)]
    pub config_version: Option<i64>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConfigVersion {
    pub version: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ConfigDocument {
    pub version: i64,
    /// The YAML text as uploaded.
    pub yaml: String,
}

/// A key to issue.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label for people, e.g. `production backend`.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: Option<Text>,
    /// `ingest` (identify, events, batch) and/or `read` (reading and deleting); default both.
    #[oai(validator(min_items = 1, max_items = 2))]
    pub scopes: Option<Vec<crate::auth::Scope>>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct IssuedKey {
    pub key_id: String,
    /// The Bearer token. It is shown once: only its id is stored.
    pub token: String,
    pub scopes: Vec<crate::auth::Scope>,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct KeyInfo {
    pub key_id: String,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Health {
    /// `ok`.
    pub status: String,
}
