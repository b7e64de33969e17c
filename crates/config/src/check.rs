//! The checks a config must pass: the published schema, then the semantic rules the schema can
//! not express. Every finding is collected, not just the first, each with its location.

use std::collections::HashMap;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::compiled::CompiledConfig;
use crate::diagnostic::{Diagnostic, DiagnosticCode, push_token};
use crate::document::ConfigDocument;
use crate::schema;
use crate::suggest::suggest;
use crate::yaml::{self, Locations};

/// The largest config file accepted, checked before parsing.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Loads, checks and compiles one config.
///
/// `default_tenant` is the slug used when the file has no `tenant` key (the file's stem, or the
/// tenant a config is uploaded for).
pub fn load_config(text: &str, default_tenant: &str) -> Result<CompiledConfig, Vec<Diagnostic>> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(vec![Diagnostic {
            code: DiagnosticCode::TooLarge,
            pointer: String::new(),
            location: crate::Location::START,
            message: format!(
                "config is {} bytes; the limit is {MAX_CONFIG_BYTES} bytes",
                text.len()
            ),
        }]);
    }
    let loaded = yaml::load(text)?;
    let mut findings = Findings {
        locations: &loaded.locations,
        found: Vec::new(),
        validators: HashMap::new(),
    };
    if loaded.value.is_null() {
        findings.value(
            DiagnosticCode::InvalidValue,
            "",
            "the config is empty: it needs at least `models`".to_owned(),
        );
        return Err(findings.found);
    }
    findings.schema_errors(&loaded.value);
    findings.names_and_references(&loaded.value);
    findings.embedded_schemas(&loaded.value);
    findings.tenant(&loaded.value, default_tenant);
    if !findings.found.is_empty() {
        findings.found.sort_by_key(|finding| finding.location);
        return Err(findings.found);
    }
    let document: ConfigDocument = serde_json::from_value(loaded.value).map_err(|error| {
        vec![Diagnostic {
            code: DiagnosticCode::InvalidValue,
            pointer: String::new(),
            location: crate::Location::START,
            message: format!("config does not match its schema: {error}"),
        }]
    })?;
    Ok(CompiledConfig::new(
        document,
        default_tenant,
        findings.validators,
    ))
}

/// Whether `slug` is a valid tenant slug: `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn is_valid_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    let valid_first = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
    valid_first
        && slug.len() <= 63
        && chars.all(|rest| rest.is_ascii_lowercase() || rest.is_ascii_digit() || rest == '-')
}

struct Findings<'a> {
    locations: &'a Locations,
    found: Vec<Diagnostic>,
    /// The compiled embedded schemas, by the pointer of their `schema` key.
    validators: HashMap<String, jsonschema::Validator>,
}

impl Findings<'_> {
    fn value(&mut self, code: DiagnosticCode, pointer: &str, message: String) {
        let location = self.locations.value(pointer);
        self.found.push(Diagnostic {
            code,
            pointer: pointer.to_owned(),
            location,
            message,
        });
    }

    fn key(&mut self, code: DiagnosticCode, pointer: &str, message: String) {
        let location = self.locations.key(pointer);
        self.found.push(Diagnostic {
            code,
            pointer: pointer.to_owned(),
            location,
            message,
        });
    }

    fn schema_errors(&mut self, document: &Value) {
        for error in schema::config_file_validator().iter_errors(document) {
            let pointer = error.instance_path().as_str().to_owned();
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let allowed = allowed_keys(&pointer);
                    for key in unexpected {
                        let hint = suggest(key, allowed.iter().map(String::as_str))
                            .map(|known| format!(" (did you mean `{known}`?)"))
                            .unwrap_or_default();
                        self.key(
                            DiagnosticCode::UnknownKey,
                            &push_token(&pointer, key),
                            format!("unknown key `{key}`{hint}"),
                        );
                    }
                }
                ValidationErrorKind::Not { .. } if pointer.ends_with("/name") => self.value(
                    DiagnosticCode::InvalidValue,
                    &pointer,
                    format!(
                        "event name {} is reserved: names starting with `onFunctionary` belong \
                         to system events",
                        error.instance()
                    ),
                ),
                ValidationErrorKind::Constant { .. } if pointer.ends_with("/$schema") => self
                    .value(
                        DiagnosticCode::InvalidSchema,
                        &pointer,
                        format!(
                            "embedded schemas are JSON Schema 2020-12: `$schema` must be \
                         \"https://json-schema.org/draft/2020-12/schema\" or left out, not {}",
                            error.instance()
                        ),
                    ),
                _ => self.value(DiagnosticCode::InvalidValue, &pointer, error.to_string()),
            }
        }
    }

    fn names_and_references(&mut self, document: &Value) {
        let models = self.unique_names(document, "models", "model");
        let model_names: Vec<&str> = models.keys().copied().collect();
        for (list, field, what) in [
            ("models", "parents", "parent"),
            ("events", "forModels", "model"),
        ] {
            for (index, entry) in items(document, list) {
                for (position, reference) in items(entry, field) {
                    let Some(name) = reference.as_str() else {
                        continue;
                    };
                    if models.contains_key(name) {
                        continue;
                    }
                    let hint = suggest(name, model_names.iter().copied())
                        .map(|known| format!(" (did you mean `{known}`?)"))
                        .unwrap_or_default();
                    self.value(
                        DiagnosticCode::UnknownModel,
                        &format!("/{list}/{index}/{field}/{position}"),
                        format!("{what} `{name}` is not a model declared in `models`{hint}"),
                    );
                }
            }
        }
        self.unique_names(document, "events", "event");
    }

    /// Reports names declared twice in `document[list]`; returns the first pointer of each name.
    fn unique_names<'v>(
        &mut self,
        document: &'v Value,
        list: &str,
        what: &str,
    ) -> HashMap<&'v str, String> {
        let mut first_seen: HashMap<&str, String> = HashMap::new();
        for (index, entry) in items(document, list) {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            let pointer = format!("/{list}/{index}/name");
            if let Some(first) = first_seen.get(name) {
                let first_at = self.locations.value(first);
                self.value(
                    DiagnosticCode::DuplicateName,
                    &pointer,
                    format!(
                        "{what} `{name}` is declared twice (first at line {})",
                        first_at.line
                    ),
                );
            } else {
                first_seen.insert(name, pointer);
            }
        }
        first_seen
    }

    fn embedded_schemas(&mut self, document: &Value) {
        for list in ["models", "events"] {
            for (index, entry) in items(document, list) {
                let Some(embedded @ (Value::Object(_) | Value::Bool(_))) = entry.get("schema")
                else {
                    continue;
                };
                let base = format!("/{list}/{index}/schema");
                match schema::check_properties_schema(embedded) {
                    Ok(validator) => {
                        self.validators.insert(base, validator);
                    }
                    Err(problems) => {
                        for problem in problems {
                            self.value(
                                DiagnosticCode::InvalidSchema,
                                &format!("{base}{}", problem.pointer),
                                problem.message,
                            );
                        }
                    }
                }
            }
        }
    }

    fn tenant(&mut self, document: &Value, default_tenant: &str) {
        if document.get("tenant").is_none() && !is_valid_slug(default_tenant) {
            self.value(
                DiagnosticCode::InvalidTenant,
                "",
                format!(
                    "no `tenant` key, and {default_tenant:?} (the file name) is not a valid \
                             tenant slug: add `tenant:` with lower-case letters, digits and hyphens"
                ),
            );
        }
    }
}

/// The `(index, item)` pairs of the array at `value[key]`, or nothing when it is not an array.
fn items<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = (usize, &'v Value)> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// The keys the published schema allows in the object at `pointer` of a config document.
fn allowed_keys(pointer: &str) -> Vec<String> {
    let Ok(root) = serde_json::from_str::<Value>(schema::TENANT_CONFIG_SCHEMA) else {
        return Vec::new();
    };
    let resolve = |node: &Value| -> Option<Value> {
        match node.get("$ref").and_then(Value::as_str) {
            Some(target) => root.pointer(target.strip_prefix('#')?).cloned(),
            None => Some(node.clone()),
        }
    };
    let mut node = root.clone();
    for token in pointer.split('/').skip(1) {
        let next = if token.parse::<usize>().is_ok() {
            node.get("items")
        } else {
            node.get("properties")
                .and_then(|properties| properties.get(token))
        };
        let Some(resolved) = next.and_then(resolve) else {
            return Vec::new();
        };
        node = resolved;
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}
