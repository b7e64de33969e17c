//! The typed form of a tenant config file, read only after the file passed every check.

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConfigDocument {
    pub tenant: Option<String>,
    pub display_name: Option<String>,
    pub models: Vec<ModelDocument>,
    #[serde(default)]
    pub events: Vec<EventDocument>,
    #[serde(default)]
    pub settings: SettingsDocument,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ModelDocument {
    pub name: String,
    #[expect(
        dead_code,
        reason = "documentation for humans; parsed so that it is checked"
    )]
    pub display_name: Option<String>,
    #[expect(
        dead_code,
        reason = "documentation for humans; parsed so that it is checked"
    )]
    pub description: Option<String>,
    pub parents: Option<Vec<String>>,
    #[expect(dead_code, reason = "compiled from the JSON value while checking")]
    pub schema: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventDocument {
    pub name: String,
    #[expect(
        dead_code,
        reason = "documentation for humans; parsed so that it is checked"
    )]
    pub description: Option<String>,
    pub for_models: Option<Vec<String>>,
    #[expect(dead_code, reason = "compiled from the JSON value while checking")]
    pub schema: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SettingsDocument {
    #[serde(default)]
    pub undeclared_events: UndeclaredEvents,
    #[serde(default)]
    pub blocked_ids: Vec<String>,
}

/// What happens to an event whose name the config does not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UndeclaredEvents {
    /// Stored without a properties schema (the default).
    #[default]
    Accept,
    /// Refused with 422.
    Reject,
}
