//! JSON Schema handling: the published schema of the config file, and the hardened compilation of
//! the schemas that tenants embed in their configs.
//!
//! Tenant schemas are untrusted input. They are compiled for draft 2020-12 with formats asserted
//! (a user who writes `format: email` expects it enforced), unknown formats refused (a typo must
//! not silently disable a check), `pattern` on the linear-time `regex` engine (no ReDoS), and no
//! retriever: a `$ref` never reaches the network or the file system.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, ValidationError, Validator};
use serde_json::Value;

/// The published schema of a tenant config file (`schemas/tenant-config.schema.json`).
pub const TENANT_CONFIG_SCHEMA: &str = include_str!("../../../schemas/tenant-config.schema.json");

/// The `format` values the validators enforce (JSON Schema 2020-12's vocabulary).
pub const KNOWN_FORMATS: &[&str] = &[
    "date",
    "date-time",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// How deeply an embedded schema may nest objects and arrays.
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// One way a JSON value breaks a schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// JSON pointer of the offending value inside the validated value.
    pub pointer: String,
    pub message: String,
}

/// Why an embedded schema was refused; `pointer` is relative to the schema's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaProblem {
    pub pointer: String,
    pub message: String,
}

fn hardened_options() -> jsonschema::ValidationOptions<'static> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_pattern_options(PatternOptions::regex())
        .offline()
}

/// The validator of the published config schema, compiled once per process.
pub(crate) fn config_file_validator() -> &'static Validator {
    static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
        let schema: Value = serde_json::from_str(TENANT_CONFIG_SCHEMA)
            .expect("schemas/tenant-config.schema.json is valid JSON (checked by tests)");
        hardened_options()
            .build(&schema)
            .expect("schemas/tenant-config.schema.json compiles (checked by tests)")
    });
    &VALIDATOR
}

/// The validator of a model or event that declares no schema: any object.
pub(crate) fn any_object_validator() -> Validator {
    static ANY_OBJECT: LazyLock<Validator> = LazyLock::new(|| {
        hardened_options()
            .build(&serde_json::json!({"type": "object"}))
            .expect("a constant schema compiles")
    });
    ANY_OBJECT.clone()
}

/// Compiles a tenant's properties schema, or says every reason why it can not guard a tenant's
/// properties: too deep, not valid against the 2020-12 meta-schema, or not compilable (bad
/// regex, unknown format, non-local `$ref`).
pub(crate) fn check_properties_schema(schema: &Value) -> Result<Validator, Vec<SchemaProblem>> {
    if let Some(pointer) = too_deep(schema, "", 0) {
        return Err(vec![SchemaProblem {
            pointer,
            message: format!("schema nests deeper than {MAX_SCHEMA_DEPTH} levels"),
        }]);
    }
    let meta_problems: Vec<SchemaProblem> = jsonschema::draft202012::meta::validator()
        .iter_errors(schema)
        .map(|error| SchemaProblem {
            pointer: error.instance_path().as_str().to_owned(),
            message: describe_meta_error(&error),
        })
        .collect();
    if !meta_problems.is_empty() {
        return Err(meta_problems);
    }
    let first_problem = match compile_properties_schema(schema) {
        Ok(validator) => return Ok(validator),
        Err(problem) => problem,
    };
    // A build stops at its first problem; compile each pattern and format alone so that every
    // bad one is reported at once.
    let mut problems = Vec::new();
    each_pattern_and_format(schema, "", &mut |pointer, probe| {
        if let Err(mut problem) = compile_properties_schema(&probe) {
            problem.pointer = pointer.to_owned();
            problems.push(problem);
        }
    });
    if problems.is_empty() {
        problems.push(first_problem);
    }
    Err(problems)
}

/// Compiles a tenant's properties schema with the hardened options.
fn compile_properties_schema(schema: &Value) -> Result<Validator, SchemaProblem> {
    hardened_options()
        .build(schema)
        .map_err(|error| describe_build_error(schema, &error))
}

/// Calls `visit` with the pointer and a one-keyword probe schema for every `pattern`, every
/// `patternProperties` key and every `format` in `value`.
fn each_pattern_and_format(value: &Value, pointer: &str, visit: &mut dyn FnMut(&str, Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_pointer = crate::diagnostic::push_token(pointer, key);
                match (key.as_str(), child) {
                    ("pattern", Value::String(pattern)) => {
                        visit(&child_pointer, serde_json::json!({"pattern": pattern}));
                    }
                    ("format", Value::String(format)) => {
                        visit(&child_pointer, serde_json::json!({"format": format}));
                    }
                    ("patternProperties", Value::Object(patterns)) => {
                        for pattern in patterns.keys() {
                            let pattern_pointer =
                                crate::diagnostic::push_token(&child_pointer, pattern);
                            visit(&pattern_pointer, serde_json::json!({"pattern": pattern}));
                        }
                    }
                    _ => {}
                }
                each_pattern_and_format(child, &child_pointer, visit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                each_pattern_and_format(child, &format!("{pointer}/{index}"), visit);
            }
        }
        _ => {}
    }
}

/// Every violation of `validator` by `instance`, each with its JSON pointer.
pub(crate) fn violations(validator: &Validator, instance: &Value) -> Result<(), Vec<Violation>> {
    // The common case first: `is_valid` stops at the first failure and collects nothing.
    if validator.is_valid(instance) {
        return Ok(());
    }
    let found: Vec<Violation> = validator
        .iter_errors(instance)
        .map(|error| Violation {
            pointer: error.instance_path().as_str().to_owned(),
            message: error.to_string(),
        })
        .collect();
    if found.is_empty() { Ok(()) } else { Err(found) }
}

fn too_deep(value: &Value, pointer: &str, depth: usize) -> Option<String> {
    if depth > MAX_SCHEMA_DEPTH {
        return Some(pointer.to_owned());
    }
    match value {
        Value::Object(map) => map.iter().find_map(|(key, child)| {
            too_deep(
                child,
                &crate::diagnostic::push_token(pointer, key),
                depth + 1,
            )
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, child)| too_deep(child, &format!("{pointer}/{index}"), depth + 1)),
        _ => None,
    }
}

fn describe_meta_error(error: &ValidationError<'_>) -> String {
    match error.kind() {
        // `"type": "integr"` fails an `anyOf` whose message says nothing useful: name the cause.
        ValidationErrorKind::AnyOf { .. } if error.instance_path().as_str().ends_with("/type") => {
            format!(
                "{} is not a JSON Schema type (expected one of array, boolean, integer, null, \
                 number, object, string)",
                error.instance()
            )
        }
        _ => format!("not a valid JSON Schema 2020-12: {error}"),
    }
}

fn describe_build_error(schema: &Value, error: &ValidationError<'_>) -> SchemaProblem {
    match error.kind() {
        ValidationErrorKind::Referencing(_) => {
            let pointer = first_non_local_ref(schema, "").unwrap_or_default();
            let target = schema
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or("an external resource");
            SchemaProblem {
                message: format!(
                    "`$ref` to {target:?} is not allowed: a schema may only refer to its own \
                     definitions (`#/$defs/...`)"
                ),
                pointer,
            }
        }
        ValidationErrorKind::Format { format } if format == "regex" => SchemaProblem {
            pointer: error.instance_path().as_str().to_owned(),
            message: format!(
                "{} is not a supported regular expression (look-around and back-references are \
                 not allowed: patterns run on a linear-time engine)",
                error.instance()
            ),
        },
        ValidationErrorKind::Custom { message, .. } if message.starts_with("Unknown format") => {
            SchemaProblem {
                pointer: error.instance_path().as_str().to_owned(),
                message: match error.instance().as_str().and_then(|format| {
                    crate::suggest::suggest(format, KNOWN_FORMATS.iter().copied())
                }) {
                    Some(known) => format!(
                        "unknown format {} (did you mean `{known}`?): formats are enforced, so \
                         an unknown one is refused rather than ignored",
                        error.instance()
                    ),
                    None => format!(
                        "unknown format {} (known formats: {})",
                        error.instance(),
                        KNOWN_FORMATS.join(", ")
                    ),
                },
            }
        }
        _ => SchemaProblem {
            pointer: error.instance_path().as_str().to_owned(),
            message: lower_first(&error.to_string()),
        },
    }
}

/// The pointer of the first `$ref`/`$dynamicRef` string in `value` that leaves the document.
fn first_non_local_ref(value: &Value, pointer: &str) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, child)| {
            let child_pointer = crate::diagnostic::push_token(pointer, key);
            match child {
                Value::String(target)
                    if (key == "$ref" || key == "$dynamicRef") && !target.starts_with('#') =>
                {
                    Some(child_pointer)
                }
                _ => first_non_local_ref(child, &child_pointer),
            }
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, child)| first_non_local_ref(child, &format!("{pointer}/{index}"))),
        _ => None,
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
