//! Request bodies parsed as strictly as the spec describes them (well-formed input that breaks
//! the schema is a 422, DESIGN §8); poem-openapi is laxer in two ways:
//!
//! - Its `String` also takes JSON numbers and booleans and turns them into their text
//!   (`{"slug": false}` would create the tenant `false`). [`Text`] is described exactly like
//!   `String` and takes JSON strings only.
//! - Its `Option` reads `null` as absent, while the spec's optional fields are not nullable.
//!   [`NoNullFields`] refuses a request object with a top-level field set to `null`, naming it;
//!   an optional field is left out instead. (Values inside `properties` are not fields: a
//!   property sent as `null` is removed, DESIGN §2.)

use std::borrow::Cow;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A JSON string of a request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A request object whose top-level fields may be absent but never `null`; described as `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct NoNullFields<T>(pub T);

impl<T: Type> Type for NoNullFields<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: ParseFromJSON> ParseFromJSON for NoNullFields<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        refuse_null_fields(value.as_ref()).map_err(ParseError::custom)?;
        T::parse_from_json(value)
            .map(Self)
            .map_err(ParseError::propagate)
    }
}

impl<T: ToJSON> ToJSON for NoNullFields<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// Refuses an object with a field set to `null`, naming the first such field.
pub fn refuse_null_fields(value: Option<&Value>) -> Result<(), String> {
    let Some(Value::Object(object)) = value else {
        return Ok(());
    };
    match object.iter().find(|(_, value)| value.is_null()) {
        Some((name, _)) => Err(format!(
            "`{name}` is null: leave an optional field out instead of sending null"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strings_parse() {
        assert_eq!(
            Text::parse_from_json(Some(Value::String("st".into()))).ok(),
            Some(Text("st".into()))
        );
        for other in [
            serde_json::json!(false),
            serde_json::json!(12),
            serde_json::json!(1.5),
            serde_json::json!([]),
            serde_json::json!({}),
        ] {
            assert!(
                Text::parse_from_json(Some(other.clone())).is_err(),
                "{other}"
            );
        }
    }

    #[test]
    fn null_fields_are_refused_by_name() {
        let refused = refuse_null_fields(Some(&serde_json::json!({"a": 1, "config": null})));
        assert!(refused.is_err_and(|message| message.contains("`config`")));
        assert!(refuse_null_fields(Some(&serde_json::json!({"properties": {"k": null}}))).is_ok());
        assert!(refuse_null_fields(Some(&serde_json::json!([null]))).is_ok());
    }
}
