//! The id rules: what an id may be, how integers become text, and which ids are junk.

use functionary_config::CompiledConfig;
use serde_json::Value;

use crate::error::{Detail, StoreError};

/// Most ids one list of a call may hold.
pub const MAX_IDS: usize = 100;
/// Longest id, in characters (what a JSON Schema `maxLength` counts, so a schema-valid id
/// is never refused for its length).
pub const MAX_ID_CHARS: usize = 255;

/// Normalizes the id list at `pointer` of a request: strings as they are, JSON integers as their
/// decimal text (so `10` and `"10"` are the same id), duplicates folded, first occurrence first.
/// Every invalid id is reported. `required` lists must hold at least one id.
pub(crate) fn normalize_ids(
    raw: &[Value],
    pointer: &str,
    required: bool,
    config: &CompiledConfig,
) -> Result<Vec<String>, StoreError> {
    if required && raw.is_empty() {
        return Err(invalid(vec![Detail::at(
            pointer,
            "at least one id is required",
        )]));
    }
    if raw.len() > MAX_IDS {
        return Err(invalid(vec![Detail::at(
            pointer,
            format!("at most {MAX_IDS} ids are allowed, got {}", raw.len()),
        )]));
    }
    let mut ids: Vec<String> = Vec::with_capacity(raw.len());
    let mut problems = Vec::new();
    for (index, value) in raw.iter().enumerate() {
        let at = format!("{pointer}/{index}");
        match normalize_id(value, config) {
            Ok(id) => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Err(message) => problems.push(Detail::at(at, message)),
        }
    }
    if problems.is_empty() {
        Ok(ids)
    } else {
        Err(invalid(problems))
    }
}

fn normalize_id(value: &Value, config: &CompiledConfig) -> Result<String, String> {
    let id = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) if number.is_i64() || number.is_u64() => number.to_string(),
        Value::Number(number) => {
            return Err(format!(
                "{number} is not an id: ids are strings or integers"
            ));
        }
        other => {
            return Err(format!(
                "{other} is not an id: ids are non-empty strings or integers"
            ));
        }
    };
    if id.chars().count() > MAX_ID_CHARS {
        return Err(format!(
            "id is {} characters long; at most {MAX_ID_CHARS} are allowed",
            id.chars().count()
        ));
    }
    if config.is_blocked_id(&id) {
        return Err(format!(
            "{id:?} is a junk id: one such id shared by many users would tie them all to one instance"
        ));
    }
    Ok(id)
}

fn invalid(details: Vec<Detail>) -> StoreError {
    let message = match details.as_slice() {
        [one] => one.message.clone(),
        _ => format!("{} ids are invalid", details.len()),
    };
    StoreError::invalid("invalid_id", message, details)
}

/// Refuses a model the tenant's config does not declare.
pub(crate) fn known_model<'c>(
    config: &'c CompiledConfig,
    model: &str,
    pointer: &str,
) -> Result<&'c functionary_config::CompiledModel, StoreError> {
    config.model(model).ok_or_else(|| {
        let declared: Vec<&str> = config.models().iter().map(|model| model.name()).collect();
        StoreError::invalid(
            "unknown_model",
            format!(
                "model `{model}` is not declared in the tenant's config (declared: {})",
                declared.join(", ")
            ),
            vec![Detail::at(pointer, format!("unknown model `{model}`"))],
        )
    })
}
