//! Error policy of the store.
//!
//! - Queries return diesel's `QueryResult`; a transaction body returns [`TxError`], which is either
//!   a rule the input broke (rolls back, never retried) or a database error.
//! - Database errors that a retry can cure (a lost unique-insert race, a serialization failure, a
//!   deadlock, a busy SQLite file) are retried a bounded number of times inside the store.
//! - What reaches the caller is a [`StoreError`]: `Invalid` (422), `Conflict` (409), `NotFound`
//!   (404), `Unavailable` (503: the database could not be reached or stayed busy) or `Internal`.
//!   Messages describe the input, never SQL.

use serde::Serialize;

/// One entry of an error's `details`: which part of the input, and what about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// JSON pointer into the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// An id of the request, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The instance that holds `id`, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub message: String,
}

impl Detail {
    pub fn at(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: Some(pointer.into()),
            message: message.into(),
            ..Self::default()
        }
    }
}

/// What the caller of the store gets back when an operation did not succeed. Nothing was
/// changed by a failed operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The input is well-formed but breaks a rule (unknown model, junk id, schema violation, …).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Vec<Detail>,
    },
    /// The input contradicts what is stored (ids of two instances, a tenant that exists).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Vec<Detail>,
    },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The database could not be reached, or stayed busy through every retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected database state; the message is for logs, not for clients.
    #[error("internal store error: {0}")]
    Internal(String),
}

impl StoreError {
    pub(crate) fn invalid(
        code: &'static str,
        message: impl Into<String>,
        details: Vec<Detail>,
    ) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            details,
        }
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// The stable snake_case code of this error (the `error.code` of the API envelope).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. }
            | Self::Conflict { code, .. }
            | Self::NotFound { code, .. } => code,
            Self::Unavailable(_) => "store_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// The error of a transaction body: a broken rule (rolled back as is) or a database error.
#[derive(Debug)]
pub(crate) enum TxError {
    Rule(StoreError),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for TxError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error)
    }
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        Self::Rule(error)
    }
}

impl From<serde_json::Error> for TxError {
    fn from(error: serde_json::Error) -> Self {
        Self::Rule(StoreError::Internal(format!(
            "stored JSON is unreadable: {error}"
        )))
    }
}
