//! `Id`: a string or an integer, as tenants send ids.
//!
//! Written by hand: `#[derive(Union)]` emits `type: object` beside its `oneOf` (a schema no value
//! satisfies) and its string variant swallows numbers and booleans. This type accepts exactly
//! JSON strings and JSON integers and is described as `oneOf: [string, integer/int64]`.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

/// The smallest integer id, `i64::MIN`, as the spec's `minimum`.
pub const ID_INTEGER_MIN: f64 = i64::MIN as f64;
/// The largest integer id, `u64::MAX`, as the spec's `maximum` (rounded up by `f64`; the spec
/// is written with the exact value).
pub const ID_INTEGER_MAX: f64 = u64::MAX as f64;

/// An id of an instance: a non-empty string (at most 255 characters) or an integer (64 bits,
/// signed or unsigned). The integer `10` and the string `"10"` are the same id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Id(pub Value);

impl Type for Id {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        "Id".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "A non-empty string of at most 255 characters, or an integer; `10` and `\"10\"` are the same id.",
            ),
            one_of: vec![
                MetaSchemaRef::Inline(Box::new(MetaSchema {
                    min_length: Some(1),
                    max_length: Some(255),
                    ..MetaSchema::new("string")
                })),
                // `int64` for generated clients (their integer type), with the bounds the server
                // really takes: any integer JSON carries exactly, i64::MIN to u64::MAX
                // (`openapi_json` writes them as exact integers; an f64 can not hold u64::MAX).
                MetaSchemaRef::Inline(Box::new(MetaSchema {
                    minimum: Some(ID_INTEGER_MIN),
                    maximum: Some(ID_INTEGER_MAX),
                    ..MetaSchema::new_with_format("integer", "int64")
                })),
            ],
            ..MetaSchema::ANY
        }))
    }

    fn register(_registry: &mut Registry) {}

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for Id {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            // Strings and integers are ids; anything else is refused by the store as
            // `invalid_id`, with the pointer of the offending item.
            Some(value) => Ok(Self(value)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for Id {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

impl ParseFromParameter for Id {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(Value::String(value.to_owned())))
    }
}
