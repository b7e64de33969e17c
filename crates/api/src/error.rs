//! Error policy of the HTTP layer.
//!
//! Every failure leaves as the envelope of DESIGN §8:
//! `{"statusCode": N, "error": {"code", "message", "details"}}`.
//!
//! - Store errors map by kind: invalid → 422, conflict → 409, not found → 404, unavailable → 503
//!   with `Retry-After`, internal → 500 (logged; the body says nothing about SQL or code).
//! - Extractor errors (malformed JSON, wrong content type, missing or bad token, bad
//!   parameters) reach [`bad_request`], which turns them into the same envelope: 400 for
//!   malformed JSON, 415 for another content type, 401 for authentication, 422 for well-formed
//!   input that breaks the schema (unknown fields included).
//! - Each endpoint's response enum (see [`endpoint_response!`]) declares the statuses it returns.

use functionary_store::StoreError;
use poem::http::StatusCode;
use poem_openapi::Object;
use serde::Serialize;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The error envelope every failure answers with.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The HTTP status, repeated for clients that only see the body.
    pub status_code: u16,
    pub error: ErrorInfo,
}

/// What went wrong.
#[derive(Debug, Clone, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// Stable snake_case identifier, e.g. `ids_conflict`, `invalid_properties`.
    pub code: String,
    /// A sentence for humans about what was wrong with the request.
    pub message: String,
    /// One entry per problem found, when there are several or they have a location; always
    /// present, empty when there is nothing to add.
    // Always sent: the envelope of DESIGN §8 has `details`, and the spec marks it required.
    pub details: Vec<ErrorDetail>,
}

/// One problem of a request.
#[derive(Debug, Clone, Default, Object, Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// JSON pointer into the request body (or the config document, for config errors).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Line in the uploaded config (1-based), for config errors.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Column in the uploaded config (1-based), for config errors.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// An id of the request, for conflicts.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The instance that holds `id`, for conflicts.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub message: String,
}

/// An error on its way to becoming a response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                status_code: status.as_u16(),
                error: ErrorInfo {
                    code: code.to_owned(),
                    message: message.into(),
                    details: Vec::new(),
                },
            },
        }
    }

    pub fn with_details(mut self, details: Vec<ErrorDetail>) -> Self {
        self.body.error.details = details;
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; it has been logged",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.body.error.code,
            self.body.error.message
        )
    }
}

impl std::error::Error for ApiError {}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> poem::Response {
        // The same envelope the endpoints answer with, `details` included.
        // Written like every other answer's envelope (`payload::Json`), fields in one order.
        let body = serde_json::to_string(&self.body).unwrap_or_default();
        let mut response = poem::Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", RETRY_AFTER_SECONDS.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let code = error.code();
        match error {
            StoreError::Invalid {
                message, details, ..
            } => Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
                .with_details(convert(details)),
            StoreError::Conflict {
                message, details, ..
            } => Self::new(StatusCode::CONFLICT, code, message).with_details(convert(details)),
            StoreError::NotFound { message, .. } => Self::new(StatusCode::NOT_FOUND, code, message),
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                Self::unavailable("the store is unavailable; retry shortly")
            }
            StoreError::Internal(reason) => {
                tracing::error!(%reason, "internal store error");
                Self::internal()
            }
        }
    }
}

fn convert(details: Vec<functionary_store::Detail>) -> Vec<ErrorDetail> {
    details
        .into_iter()
        .map(|detail| ErrorDetail {
            pointer: detail.pointer,
            id: detail.id,
            instance_id: detail.instance_id,
            message: detail.message,
            ..ErrorDetail::default()
        })
        .collect()
}

/// The envelope of an error raised by poem or poem-openapi before a handler ran.
pub fn from_poem(error: &poem::Error) -> ApiError {
    if let Some(api) = error.downcast_ref::<ApiError>() {
        return api.clone();
    }
    let status = error.status();
    let text = error.to_string();
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(status, "unsupported_media_type", lower_first(&text))
        }
        StatusCode::UNAUTHORIZED => ApiError::unauthorized("a valid Bearer API key is required"),
        StatusCode::BAD_REQUEST if is_schema_mismatch(&text) => {
            ApiError::unprocessable("invalid_request", lower_first(&text))
        }
        StatusCode::BAD_REQUEST => ApiError::new(status, "malformed_request", lower_first(&text)),
        StatusCode::NOT_FOUND => ApiError::not_found("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "method not allowed on this route",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", lower_first(&text))
        }
        _ if status.is_server_error() => {
            tracing::error!(error = %text, "unhandled server error");
            ApiError::internal()
        }
        _ => ApiError::new(status, "bad_request", lower_first(&text)),
    }
}

/// Whether a 400 from poem-openapi is about well-formed JSON that breaks the schema (422)
/// rather than JSON that does not parse (400).
fn is_schema_mismatch(text: &str) -> bool {
    let syntax = [
        "EOF while parsing",
        "expected value",
        "expected `,`",
        "expected `:`",
        "trailing characters",
        "control character",
        "invalid escape",
        "invalid unicode",
        "key must be a string",
        "invalid number",
        "expected ident",
        "lone leading surrogate",
        "trailing comma",
        "recursion limit exceeded",
        "number out of range",
    ];
    !syntax.iter().any(|marker| text.contains(marker))
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `bad_request_handler` of every response enum: extractor errors as the envelope.
pub fn bad_request<T: From<ApiError>>(error: poem::Error) -> T {
    T::from(from_poem(&error))
}

/// Declares an endpoint's response enum: its success variants, the error statuses it can return
/// (each a variant holding the envelope), and always 500 and 503 (with `Retry-After`).
macro_rules! endpoint_response {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$ok_meta:meta])* $ok:ident $( ($ok_ty:ty) )? = $ok_status:literal, )+
        }
        errors { $( $err:ident = $err_status:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        #[oai(bad_request_handler = "crate::error::bad_request")]
        pub enum $name {
            $( $(#[$ok_meta])* #[oai(status = $ok_status)] $ok $( ($ok_ty) )?, )+
            $(
                #[doc = concat!("The request failed (status ", stringify!($err_status), "); see `error.code`.")]
                #[oai(status = $err_status)]
                $err(crate::payload::Json<crate::error::ErrorBody>),
            )*
            /// The store is unavailable: retry after `Retry-After` seconds.
            #[oai(status = 503)]
            Unavailable(
                crate::payload::Json<crate::error::ErrorBody>,
                #[oai(header = "Retry-After")] u32,
            ),
            /// An unexpected error; it has been logged.
            #[oai(status = 500)]
            Internal(crate::payload::Json<crate::error::ErrorBody>),
        }

        impl From<crate::error::ApiError> for $name {
            fn from(error: crate::error::ApiError) -> Self {
                match error.status.as_u16() {
                    $( $err_status => Self::$err(crate::payload::Json(error.body)), )*
                    503 => Self::Unavailable(crate::payload::Json(error.body), crate::error::RETRY_AFTER_SECONDS),
                    500 => Self::Internal(crate::payload::Json(error.body)),
                    other => {
                        tracing::error!(status = other, code = %error.body.error.code, "status not declared by this endpoint");
                        Self::Internal(crate::payload::Json(crate::error::ApiError::internal().body))
                    }
                }
            }
        }

        impl From<functionary_store::StoreError> for $name {
            fn from(error: functionary_store::StoreError) -> Self {
                crate::error::ApiError::from(error).into()
            }
        }
    };
}
pub(crate) use endpoint_response;
