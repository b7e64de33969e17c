//! [`Json`]: the JSON payload of the ingest endpoints and of every error envelope, read and
//! written with serde directly.
//!
//! poem-openapi's `Json` parses every body into a `serde_json::Value` and builds the typed
//! request from it, and renders every answer through a `Value` too: an allocation for each key
//! and node on the hottest path of the server. This payload is described exactly like it (the
//! spec does not change) but:
//!
//! - reads a body straight into the typed request ([`FastParse`]). Whatever the fast reader does
//!   not take — malformed JSON, a field that breaks the schema, a `null` field, a duplicate key —
//!   is read again the poem-openapi way, so every refusal is the one poem-openapi gives, and the
//!   fast reader only has to be never more lenient than it (the tests compare the two);
//! - writes answers with `serde::Serialize`, which the answer types derive with the names their
//!   `ToJSON` uses (the tests compare those too).
//!
//! The limits of a request object (`minLength`, `maxItems`, …) are written once, in
//! [`request_object!`], which declares them to poem-openapi (spec and `Value` reader) and checks
//! them on the fast reader with poem-openapi's own validators.

use poem::{FromRequest, IntoResponse, Request, RequestBody, Response};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::validation::Validator;
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};
use serde::{Deserialize, Deserializer, Serialize};

/// A JSON request or response body; see the module documentation.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

/// Reads a request straight from its body, or gives up (`None`) for the `Value` reader to
/// answer. It must not take a body that the `Value` reader refuses or reads differently.
pub trait FastParse: Sized {
    fn fast_parse(body: &[u8]) -> Option<Self>;
}

/// A request object declared with [`request_object!`].
pub trait RequestObject: serde::de::DeserializeOwned {
    /// Whether every field keeps the limits the spec declares for it.
    fn within_limits(&self) -> bool;
}

/// A request object is read fast when serde reads it and it keeps its limits.
impl<T: RequestObject> FastParse for crate::strict::NoNullFields<T> {
    fn fast_parse(body: &[u8]) -> Option<Self> {
        let request: T = serde_json::from_slice(body).ok()?;
        request.within_limits().then_some(Self(request))
    }
}

impl<T: Type> Payload for Json<T> {
    const CONTENT_TYPE: &'static str = poem_openapi::payload::Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        poem_openapi::payload::Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + ParseFromJSON + FastParse> ParsePayload for Json<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        if let Some(value) = T::fast_parse(&data) {
            return Ok(Self(value));
        }
        let mut body = RequestBody::new(data.into());
        <poem_openapi::payload::Json<T> as ParsePayload>::from_request(request, &mut body)
            .await
            .map(|json| Self(json.0))
    }
}

impl<'a, T: Type + ParseFromJSON + FastParse> ApiExtractor<'a> for Json<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        poem_openapi::payload::Json::<T>::request_meta()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if Self::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                content_type: content_type.to_owned(),
            }
            .into()),
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}

impl<T: Serialize + Send> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .content_type(RESPONSE_CONTENT_TYPE)
                .body(body),
            Err(error) => {
                tracing::error!(%error, "an answer did not serialize");
                poem::error::ResponseError::as_response(&crate::ApiError::internal())
            }
        }
    }
}

/// The content type answers are sent with, as poem-openapi's `Json` sends them.
const RESPONSE_CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl<T: Type + Serialize + Send> ApiResponse for Json<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// A field of a request object as the fast reader takes it: like serde, except that `null` is
/// never the absence of an optional field (the `Value` reader refuses it, naming the field).
pub trait Field<'de>: Sized {
    fn deserialize_field<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

impl<'de, T: Deserialize<'de>> Field<'de> for Option<T> {
    fn deserialize_field<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Some)
    }
}

impl<'de, T: Deserialize<'de>> Field<'de> for Vec<T> {
    fn deserialize_field<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::deserialize(deserializer)
    }
}

impl<'de> Field<'de> for crate::strict::Text {
    fn deserialize_field<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::deserialize(deserializer)
    }
}

/// `deserialize_with` of every field of a [`request_object!`].
pub fn field<'de, D: Deserializer<'de>, T: Field<'de>>(deserializer: D) -> Result<T, D::Error> {
    T::deserialize_field(deserializer)
}

/// A string field, as `minLength` and `maxLength` see it: the text, when present.
pub trait StringField {
    fn text(&self) -> Option<&str>;
}

impl StringField for crate::strict::Text {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl StringField for Option<crate::strict::Text> {
    fn text(&self) -> Option<&str> {
        self.as_deref()
    }
}

/// Whether the string field `value`, when present, passes `validator`, as poem-openapi checks
/// `minLength` and `maxLength` on a field (without boxing an iterator per check).
pub fn text_within<'a, T: StringField, V: Validator<&'a str>>(value: &'a T, validator: &V) -> bool {
    value.text().is_none_or(|text| validator.check(&text))
}

/// Whether `value`, when present, passes `validator`, as poem-openapi checks `minItems` and
/// `maxItems` on a field.
pub fn whole<T: Type, V: Validator<T::RawValueType>>(value: &T, validator: &V) -> bool {
    value.as_raw_value().is_none_or(|raw| validator.check(raw))
}

/// One limit of a [`request_object!`] field, checked with the validator poem-openapi uses.
macro_rules! limit {
    (min_length, $bound:literal, $value:expr) => {
        $crate::payload::text_within($value, &poem_openapi::validation::MinLength::new($bound))
    };
    (max_length, $bound:literal, $value:expr) => {
        $crate::payload::text_within($value, &poem_openapi::validation::MaxLength::new($bound))
    };
    (min_items, $bound:literal, $value:expr) => {
        $crate::payload::whole($value, &poem_openapi::validation::MinItems::new($bound))
    };
    (max_items, $bound:literal, $value:expr) => {
        $crate::payload::whole($value, &poem_openapi::validation::MaxItems::new($bound))
    };
}
pub(crate) use limit;

/// Declares a request object once for both readers: the poem-openapi `Object` (spec and
/// `Value` reader, `camelCase`, unknown fields refused, each field's `#[limits(...)]` as its
/// validators) and the serde reader of [`FastParse`] with the same names, whose result is
/// taken only when [`RequestObject::within_limits`] holds.
///
/// Fields are read with [`field`], so `null` is refused. A left-out field is its `Default`,
/// which breaks the `min_length` / `min_items` limit every required field has, so the `Value`
/// reader answers for it.
macro_rules! request_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[limits($($limit:ident = $bound:literal),+)])?
                pub $field:ident: $ty:ty,
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, poem_openapi::Object, serde::Deserialize)]
        #[oai(rename_all = "camelCase", deny_unknown_fields)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                $(#[oai(validator($($limit = $bound),+))])?
                #[serde(default, deserialize_with = "crate::payload::field")]
                pub $field: $ty,
            )+
        }

        impl $crate::payload::RequestObject for $name {
            fn within_limits(&self) -> bool {
                true $($( $( && $crate::payload::limit!($limit, $bound, &self.$field) )+ )?)+
            }
        }
    };
}
pub(crate) use request_object;

/// Reads `T` from the JSON object `json`, leaving its `type` key out: how the fast reader takes
/// a batch item (whose `type` says which request it is) with a request object that refuses
/// unknown fields. `None` when it does not read.
pub fn without_type<'de, T: Deserialize<'de>>(json: &'de str) -> Option<T> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = deserializer
        .deserialize_map(WithoutType(std::marker::PhantomData::<T>))
        .ok()?;
    deserializer.end().ok()?;
    Some(value)
}

struct WithoutType<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for WithoutType<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(SkipType(map)))
    }
}

/// The entries of a JSON object but its `type`.
struct SkipType<A>(A);

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for SkipType<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
        while let Some(key) = self.0.next_key::<Key<'de>>()? {
            match key {
                Key::Borrowed("type") => {
                    self.0.next_value::<serde::de::IgnoredAny>()?;
                }
                Key::Borrowed(key) => {
                    return seed
                        .deserialize(BorrowedStrDeserializer::new(key))
                        .map(Some);
                }
                Key::Owned(key) => {
                    return seed.deserialize(StringDeserializer::new(key)).map(Some);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// An object key, borrowed from the body unless it had escapes (an escaped `type` is passed on
/// and refused as an unknown field, so the `Value` reader answers for that item).
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(key))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(key.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::{ParseFromJSON, ToJSON};
    use serde_json::{Value, json};

    use super::FastParse;
    use crate::error::{ApiError, ErrorDetail};
    use crate::objects::{
        BatchItem, BatchItemResult, BatchRequest, BatchResult, EventRequest, EventResult,
        IdentifyRequest, IdentifyResult,
    };
    use crate::strict::NoNullFields;

    /// A small deterministic generator (xorshift), so a failure replays.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, choices: &'a [Value]) -> &'a Value {
            &choices[self.below(choices.len())]
        }
    }

    fn text(length: usize) -> Value {
        Value::String("é".repeat(length))
    }

    fn ids(count: usize) -> Value {
        Value::Array((0..count).map(|n| json!(format!("id-{n}"))).collect())
    }

    /// For each field: values that are valid, at a limit, past a limit, of the wrong type, or
    /// null. `None` leaves the field out.
    fn field_values(field: &str) -> Vec<Value> {
        let strings = |min: usize, max: usize| {
            vec![
                text(min.max(1)),
                text(max),
                text(max + 1),
                text(0),
                json!(7),
                json!(false),
                json!(["a"]),
                Value::Null,
            ]
        };
        let id_lists = |min: usize| {
            vec![
                ids(min.max(1)),
                ids(100),
                ids(101),
                ids(0),
                json!([1, "two", 3.5, null, {"x": 1}]),
                json!("id-1"),
                Value::Null,
            ]
        };
        match field {
            "model" | "childModel" | "parentModel" => strings(1, 64),
            "displayName" => strings(0, 255),
            "name" | "event" | "messageId" => strings(1, 255),
            "ids" => id_lists(1),
            "childIds" | "parentIds" => id_lists(0),
            "properties" => vec![
                json!({"plan": "pro", "gone": null, "nested": {"a": [1, 2]}}),
                json!({}),
                json!([1]),
                json!("plan"),
                Value::Null,
            ],
            "timestamp" => vec![
                json!("2026-12-04T10:00:00Z"),
                json!("2026-12-04T10:00:00.123+02:00"),
                json!("2026-12-04 10:00:00Z"),
                json!("yesterday"),
                json!(1_764_842_400),
                Value::Null,
            ],
            _ => vec![json!(1), Value::Null],
        }
    }

    const IDENTIFY_FIELDS: &[&str] = &[
        "model",
        "ids",
        "displayName",
        "properties",
        "childIds",
        "childModel",
        "parentIds",
        "parentModel",
        "timestamp",
    ];
    const EVENT_FIELDS: &[&str] = &[
        "name",
        "event",
        "ids",
        "model",
        "properties",
        "timestamp",
        "messageId",
    ];

    /// A request object with each field left out or set to one of its test values, now and
    /// then with an unknown field or a `type`.
    fn object(random: &mut Random, fields: &[&str], required: &[&str]) -> Value {
        let mut object = serde_json::Map::new();
        for &field in fields {
            let leave_out = if required.contains(&field) { 8 } else { 2 };
            if random.below(leave_out) != 0 {
                let values = field_values(field);
                // Mostly the first (valid) value, so that whole valid requests come up often.
                let value = if random.below(3) == 0 {
                    random.pick(&values).clone()
                } else {
                    values[0].clone()
                };
                object.insert(field.to_owned(), value);
            }
        }
        match random.below(12) {
            0 => {
                object.insert("unknown".to_owned(), json!(1));
            }
            1 => {
                object.insert("type".to_owned(), json!("event"));
            }
            _ => {}
        }
        Value::Object(object)
    }

    /// The fast reader takes only what the `Value` reader takes, and reads it the same; and it
    /// takes every valid request generated (it is not vacuous).
    fn agrees<T>(body: &[u8]) -> bool
    where
        NoNullFields<T>: FastParse + ParseFromJSON + PartialEq + std::fmt::Debug,
    {
        let slow = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|value| NoNullFields::<T>::parse_from_json(Some(value)).ok());
        let fast = NoNullFields::<T>::fast_parse(body);
        if let Some(fast) = &fast {
            assert_eq!(
                Some(fast),
                slow.as_ref(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        slow.is_some() && fast.is_some()
    }

    #[test]
    fn the_fast_reader_takes_only_what_the_value_reader_takes_and_reads_it_alike() {
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let (mut identify, mut event) = (0, 0);
        for _ in 0..3000 {
            let body = object(&mut random, IDENTIFY_FIELDS, &["model", "ids"]).to_string();
            identify += usize::from(agrees::<IdentifyRequest>(body.as_bytes()));
            let body = object(&mut random, EVENT_FIELDS, &["ids"]).to_string();
            event += usize::from(agrees::<EventRequest>(body.as_bytes()));
        }
        // Valid requests come up often, and the fast reader takes them.
        assert!(identify > 300, "identify: {identify} of 3000 read fast");
        assert!(event > 300, "event: {event} of 3000 read fast");
        for junk in [
            "",
            "null",
            "[]",
            "{",
            r#"{"model": "customer", "ids": ["a"]} x"#,
            r#"{"model": "customer", "model": "customer", "ids": ["a"]}"#,
            r#"{"model": "customer", "ids": ["a"], "type": "identify"}"#,
        ] {
            assert!(
                NoNullFields::<IdentifyRequest>::fast_parse(junk.as_bytes()).is_none(),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_batch_reads_alike_item_by_item() {
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        let mut fast_items = 0;
        for _ in 0..300 {
            let items: Vec<Value> = (0..1 + random.below(6))
                .map(|_| {
                    let (kind, mut item) = if random.below(2) == 0 {
                        (
                            "identify",
                            object(&mut random, IDENTIFY_FIELDS, &["model", "ids"]),
                        )
                    } else {
                        ("event", object(&mut random, EVENT_FIELDS, &["ids"]))
                    };
                    match random.below(10) {
                        0 => item["type"] = json!("person"),
                        1 => {}
                        _ => item["type"] = json!(kind),
                    }
                    if random.below(20) == 0 {
                        item = json!([item]);
                    }
                    item
                })
                .collect();
            let body = json!({"batch": items}).to_string();
            if agrees::<BatchRequest>(body.as_bytes()) {
                let Some(NoNullFields(batch)) =
                    NoNullFields::<BatchRequest>::fast_parse(body.as_bytes())
                else {
                    unreachable!("agrees said it read")
                };
                fast_items += batch
                    .batch
                    .iter()
                    .filter(|item| !matches!(item, BatchItem::Invalid(_)))
                    .count();
            }
        }
        assert!(fast_items > 100, "{fast_items} valid items read");
        let escaped_type = r#"{"batch": [{"ty\u0070e": "event", "name": "a", "ids": [1]}]}"#;
        assert!(agrees::<BatchRequest>(escaped_type.as_bytes()));
    }

    #[test]
    fn answers_serialize_as_their_spec_objects() {
        let identify = IdentifyResult {
            status_code: 200,
            instance_id: "i-1".into(),
            created: true,
            model: "customer".into(),
            ids: vec!["a".into(), "b".into()],
            pending: 2,
        };
        let accepted = EventResult {
            status_code: 200,
            accepted: true,
            event_id: Some("e-1".into()),
            instance_id: Some("i-1".into()),
            duplicate: Some(false),
            reason: None,
        };
        let discarded = EventResult {
            status_code: 200,
            accepted: false,
            event_id: None,
            instance_id: None,
            duplicate: None,
            reason: Some("unknown_instance".into()),
        };
        let error = ApiError::unprocessable("ids_conflict", "two instances").with_details(vec![
            ErrorDetail {
                pointer: Some("/ids/1".into()),
                id: Some("b".into()),
                instance_id: Some("i-2".into()),
                message: "held by another instance".into(),
                ..ErrorDetail::default()
            },
            ErrorDetail {
                line: Some(3),
                column: Some(9),
                message: "at a place".into(),
                ..ErrorDetail::default()
            },
        ]);
        let batch = BatchResult {
            status_code: 200,
            results: vec![
                BatchItemResult::Identify(identify.clone()),
                BatchItemResult::Event(accepted.clone()),
                BatchItemResult::Event(discarded.clone()),
                BatchItemResult::Error(error.body.clone()),
            ],
        };
        fn same<T: serde::Serialize + ToJSON>(answer: &T) {
            assert_eq!(
                serde_json::to_value(answer).ok(),
                answer.to_json(),
                "serde and ToJSON differ"
            );
        }
        same(&identify);
        same(&accepted);
        same(&discarded);
        same(&error.body);
        same(&batch);
    }
}
