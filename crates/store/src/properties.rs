//! Per-key last-write-wins merging of an instance's properties.
//!
//! Each key remembers the client timestamp of its last write, removals included: a value older
//! than the stored one for its key is ignored, a tie goes to the later arrival, and a removal
//! (`null`) can not be undone by an older write that arrives late.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Detail, StoreError};

/// Largest serialized properties object, in bytes, for a call and for a stored instance.
pub const MAX_PROPERTIES_BYTES: usize = 32 * 1024;

/// An instance's properties with the timestamp of the last write of each key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Properties {
    pub values: Map<String, Value>,
    pub clock: BTreeMap<String, i64>,
}

impl Properties {
    pub fn from_stored(values: &str, clock: &str) -> Result<Self, serde_json::Error> {
        Ok(Self {
            values: serde_json::from_str(values)?,
            clock: serde_json::from_str(clock)?,
        })
    }

    /// Applies `update` written at `at` (microseconds); returns whether anything must be
    /// stored, timestamps included: a removal of an absent key still records when it happened.
    pub fn merge(&mut self, update: &Map<String, Value>, at: i64) -> bool {
        let mut applied = false;
        for (key, value) in update {
            if self.clock.get(key).is_some_and(|stored_at| *stored_at > at) {
                continue;
            }
            applied = true;
            self.clock.insert(key.clone(), at);
            if value.is_null() {
                self.values.remove(key);
            } else {
                self.values.insert(key.clone(), value.clone());
            }
        }
        applied
    }
}

/// Refuses a properties object whose JSON text is larger than [`MAX_PROPERTIES_BYTES`].
pub(crate) fn check_size(
    properties: &impl serde::Serialize,
    pointer: &str,
    what: &str,
) -> Result<String, StoreError> {
    let text = serde_json::to_string(properties)
        .map_err(|error| StoreError::Internal(error.to_string()))?;
    if text.len() > MAX_PROPERTIES_BYTES {
        return Err(StoreError::invalid(
            "properties_too_large",
            format!(
                "{what} are {} bytes of JSON; at most {MAX_PROPERTIES_BYTES} are allowed",
                text.len()
            ),
            vec![Detail::at(pointer, "too large")],
        ));
    }
    Ok(text)
}

/// Turns schema violations into a 422 with one detail per violation, pointing into the body.
pub(crate) fn invalid_properties(
    pointer: &str,
    violations: Vec<functionary_config::Violation>,
    what: &str,
) -> StoreError {
    let details: Vec<Detail> = violations
        .into_iter()
        .map(|violation| Detail::at(format!("{pointer}{}", violation.pointer), violation.message))
        .collect();
    StoreError::invalid(
        "invalid_properties",
        format!(
            "{what} do not match the schema: {} violation{}",
            details.len(),
            if details.len() == 1 { "" } else { "s" }
        ),
        details,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn newer_writes_win_per_key_and_ties_go_to_the_later_arrival() {
        let mut properties = Properties::default();
        assert!(properties.merge(&object(json!({"plan": "pro", "seats": 3})), 10));
        assert!(
            !properties.merge(&object(json!({"plan": "free"})), 5),
            "older write ignored"
        );
        assert!(
            properties.merge(&object(json!({"seats": 4})), 10),
            "tie: later arrival wins"
        );
        assert_eq!(
            Value::Object(properties.values.clone()),
            json!({"plan": "pro", "seats": 4})
        );
    }

    #[test]
    fn a_removal_is_not_resurrected_by_an_older_write() {
        let mut properties = Properties::default();
        properties.merge(&object(json!({"coupon": "X"})), 10);
        assert!(properties.merge(&object(json!({"coupon": null})), 20));
        assert!(!properties.merge(&object(json!({"coupon": "Y"})), 15));
        assert_eq!(Value::Object(properties.values.clone()), json!({}));
        assert!(properties.merge(&object(json!({"coupon": "Z"})), 25));
        assert_eq!(Value::Object(properties.values), json!({"coupon": "Z"}));
    }

    #[test]
    fn removing_an_absent_key_is_remembered() {
        let mut properties = Properties::default();
        assert!(
            properties.merge(&object(json!({"tier": null})), 20),
            "the removal's time must be stored"
        );
        assert!(!properties.merge(&object(json!({"tier": 0})), 10));
        assert_eq!(Value::Object(properties.values), json!({}));
    }
}
