//! `identify`, `events` and `batch`: what tenants' backends send.

use std::sync::Arc;

use functionary_config::CompiledConfig;
use functionary_store::{
    BatchItem as StoreBatchItem, BatchOutcome as StoreBatchOutcome, EventInput, EventOutcome,
    IdentifyInput, IdentifyOutcome,
};
use poem::web::Data;
use poem_openapi::OpenApi;
use serde_json::Value;

use crate::Tags;
use crate::auth::Scope;
use crate::error::{ApiError, endpoint_response};
use crate::id::Id;
use crate::objects::{
    BatchItem, BatchItemResult, BatchRequest, BatchResult, EventRequest, EventResult,
    IdentifyRequest, IdentifyResult,
};
use crate::payload::Json;
use crate::security::{Principal, TenantKey};
use crate::state::AppState;
use crate::strict::NoNullFields;

endpoint_response! {
    IdentifyResponse {
        /// The instance was created or updated.
        Ok(Json<IdentifyResult>) = 200,
    }
    errors {
        BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409,
        PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422,
    }
}

endpoint_response! {
    EventResponse {
        /// The event was stored (`accepted: true`) or thrown out because no instance holds
        /// its ids (`accepted: false`, `reason: unknown_instance`).
        Ok(Json<EventResult>) = 200,
    }
    errors {
        BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409,
        PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422,
    }
}

endpoint_response! {
    BatchResponse {
        /// Every item was applied or refused on its own; see `results`.
        Ok(Json<BatchResult>) = 200,
    }
    errors {
        BadRequest = 400, Unauthorized = 401, Forbidden = 403,
        PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422,
    }
}

/// The ingest endpoints.
#[derive(Debug)]
pub struct IngestApi;

#[OpenApi(prefix_path = "/api/v1", tag = "Tags::Ingest")]
impl IngestApi {
    /// Identify an instance
    ///
    /// Creates an instance of a model, or updates the one its ids select: new ids are added,
    /// properties are merged key by key (last write wins per key by `timestamp`), and parent and
    /// child links are recorded (or kept pending until their ids are identified). Ids that belong
    /// to two different instances are refused with 409 and change nothing.
    #[oai(path = "/identify", method = "post", operation_id = "identify")]
    async fn identify(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        body: Json<NoNullFields<IdentifyRequest>>,
    ) -> IdentifyResponse {
        match identify(&state, &key.0, body.0.0).await {
            Ok(result) => IdentifyResponse::Ok(Json(result)),
            Err(error) => error.into(),
        }
    }

    /// Record an event
    ///
    /// Records an event on the instance its ids select. Events never create instances: when no
    /// instance holds the ids, the event is thrown out (`accepted: false`).
    #[oai(path = "/events", method = "post", operation_id = "track")]
    async fn track(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        body: Json<NoNullFields<EventRequest>>,
    ) -> EventResponse {
        match track(&state, &key.0, body.0.0).await {
            Ok(result) => EventResponse::Ok(Json(result)),
            Err(error) => error.into(),
        }
    }

    /// Record an event (deprecated path)
    ///
    /// The same as `POST /api/v1/events`, kept for older clients.
    #[oai(
        path = "/event",
        method = "post",
        operation_id = "trackLegacy",
        deprecated
    )]
    async fn track_legacy(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        body: Json<NoNullFields<EventRequest>>,
    ) -> EventResponse {
        self.track(state, key, body).await
    }

    /// Send many calls at once
    ///
    /// Applies up to 1000 identify and event items in order. Each item succeeds or fails on its
    /// own, and its result is what the single call would have answered.
    #[oai(path = "/batch", method = "post", operation_id = "batch")]
    async fn batch(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        body: Json<NoNullFields<BatchRequest>>,
    ) -> BatchResponse {
        if let Err(error) = key.0.require(Scope::Ingest) {
            return error.into();
        }
        let principal = &key.0;
        // The items the store applies, in order; a malformed item fails alone, in its place.
        let mut calls = Vec::new();
        let mut malformed = Vec::with_capacity(body.0.0.batch.len());
        for item in body.0.0.batch {
            malformed.push(match item {
                BatchItem::Identify(request) => {
                    calls.push(StoreBatchItem::Identify(identify_input(request)));
                    None
                }
                BatchItem::Event(request) => {
                    calls.push(StoreBatchItem::Event(event_input(request)));
                    None
                }
                BatchItem::Invalid(reason) => Some(reason),
            });
        }
        let mut applied = if calls.is_empty() {
            Vec::new()
        } else {
            match config_of(&state, principal).await {
                Ok(config) => state
                    .store
                    .batch(&principal.tenant, config, calls)
                    .await
                    .into_iter()
                    .map(|outcome| match outcome {
                        Ok(StoreBatchOutcome::Identify(outcome)) => {
                            BatchItemResult::Identify(identify_result(outcome))
                        }
                        Ok(StoreBatchOutcome::Event(outcome)) => {
                            BatchItemResult::Event(event_result(outcome))
                        }
                        Err(error) => BatchItemResult::Error(ApiError::from(error).body),
                    })
                    .collect(),
                // Each call would have failed alike.
                Err(error) => calls
                    .iter()
                    .map(|_| BatchItemResult::Error(error.body.clone()))
                    .collect(),
            }
        }
        .into_iter();
        let results = malformed
            .into_iter()
            .map(|malformed| match malformed {
                Some(reason) => {
                    BatchItemResult::Error(ApiError::unprocessable("invalid_request", reason).body)
                }
                None => applied
                    .next()
                    .unwrap_or_else(|| BatchItemResult::Error(ApiError::internal().body)),
            })
            .collect();
        BatchResponse::Ok(Json(BatchResult {
            status_code: 200,
            results,
        }))
    }
}

/// The tenant's config, or the 422 a tenant without one gets for naming any model.
async fn config_of(
    state: &AppState,
    principal: &Principal,
) -> Result<Arc<CompiledConfig>, ApiError> {
    state.config(&principal.tenant, &principal.slug).await?.ok_or_else(|| {
        ApiError::unprocessable(
            "unknown_model",
            format!(
                "tenant `{}` has no config yet: upload one with PUT /admin/v1/tenants/{}/config",
                principal.slug, principal.slug
            ),
        )
    })
}

fn ids(ids: Vec<Id>) -> Vec<Value> {
    ids.into_iter().map(|id| id.0).collect()
}

async fn identify(
    state: &AppState,
    principal: &Principal,
    request: IdentifyRequest,
) -> Result<IdentifyResult, ApiError> {
    principal.require(Scope::Ingest)?;
    let config = config_of(state, principal).await?;
    let outcome = state
        .store
        .identify(&principal.tenant, config, identify_input(request))
        .await?;
    Ok(identify_result(outcome))
}

async fn track(
    state: &AppState,
    principal: &Principal,
    request: EventRequest,
) -> Result<EventResult, ApiError> {
    principal.require(Scope::Ingest)?;
    let config = config_of(state, principal).await?;
    let outcome = state
        .store
        .track(&principal.tenant, config, event_input(request))
        .await?;
    Ok(event_result(outcome))
}

fn identify_input(request: IdentifyRequest) -> IdentifyInput {
    IdentifyInput {
        model: request.model.into(),
        ids: ids(request.ids),
        display_name: request.display_name.map(String::from),
        properties: request
            .properties
            .map(|properties| properties.into_iter().collect()),
        child_ids: ids(request.child_ids.unwrap_or_default()),
        child_model: request.child_model.map(String::from),
        parent_ids: ids(request.parent_ids.unwrap_or_default()),
        parent_model: request.parent_model.map(String::from),
        timestamp: request.timestamp,
    }
}

fn identify_result(outcome: IdentifyOutcome) -> IdentifyResult {
    IdentifyResult {
        status_code: 200,
        instance_id: outcome.instance_id,
        created: outcome.created,
        model: outcome.model,
        ids: outcome.ids,
        pending: outcome.pending,
    }
}

fn event_input(request: EventRequest) -> EventInput {
    EventInput {
        name: request.name.map(String::from),
        event: request.event.map(String::from),
        ids: ids(request.ids),
        model: request.model.map(String::from),
        properties: request
            .properties
            .map(|properties| properties.into_iter().collect()),
        timestamp: request.timestamp,
        message_id: request.message_id.map(String::from),
    }
}

fn event_result(outcome: EventOutcome) -> EventResult {
    match outcome {
        EventOutcome::Accepted {
            event_id,
            instance_id,
            duplicate,
        } => EventResult {
            status_code: 200,
            accepted: true,
            event_id: Some(event_id),
            instance_id: Some(instance_id),
            duplicate: Some(duplicate),
            reason: None,
        },
        EventOutcome::Discarded { reason } => EventResult {
            status_code: 200,
            accepted: false,
            event_id: None,
            instance_id: None,
            duplicate: None,
            reason: Some(reason.to_owned()),
        },
    }
}
