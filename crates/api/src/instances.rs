//! Reading and deleting instances and their events.

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;

use crate::Tags;
use crate::auth::Scope;
use crate::error::{ApiError, endpoint_response};
use crate::objects::{Event, EventPage, Instance, InstancePage};
use crate::security::TenantKey;
use crate::state::AppState;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 20;

endpoint_response! {
    InstanceResponse {
        Ok(Json<Instance>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Unprocessable = 422 }
}

endpoint_response! {
    InstancePageResponse {
        Ok(Json<InstancePage>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Unprocessable = 422 }
}

endpoint_response! {
    EventPageResponse {
        Ok(Json<EventPage>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Unprocessable = 422 }
}

endpoint_response! {
    DeleteResponse {
        /// The instance, its ids, links, pending links and events are gone.
        Deleted = 204,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404 }
}

/// The read and delete endpoints.
#[derive(Debug)]
pub struct InstancesApi;

#[OpenApi(prefix_path = "/api/v1/models", tag = "Tags::Instances")]
impl InstancesApi {
    /// Get an instance
    ///
    /// The instance of `model` that holds `id` (any of its ids), with its ids, properties,
    /// parents, children and pending links.
    #[oai(
        path = "/:model/instances/:id",
        method = "get",
        operation_id = "getInstance"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        model: Path<String>,
        id: Path<String>,
    ) -> InstanceResponse {
        let result = async {
            key.0.require(Scope::Read)?;
            Ok::<_, ApiError>(state.store.instance(&key.0.tenant, &model, &id).await?)
        };
        match result.await {
            Ok(view) => InstanceResponse::Ok(Json(view.into())),
            Err(error) => error.into(),
        }
    }

    /// List instances
    ///
    /// The instances of `model`, oldest first, `limit` at a time (1–100, default 20).
    #[oai(
        path = "/:model/instances",
        method = "get",
        operation_id = "listInstances"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        model: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> InstancePageResponse {
        let result = async {
            key.0.require(Scope::Read)?;
            Ok::<_, ApiError>(
                state
                    .store
                    .instances(&key.0.tenant, &model, page_size(limit.0), cursor.0)
                    .await?,
            )
        };
        match result.await {
            Ok(page) => InstancePageResponse::Ok(Json(InstancePage {
                instances: page.items.into_iter().map(Instance::from).collect(),
                next_cursor: page.next_cursor,
            })),
            Err(error) => error.into(),
        }
    }

    /// List an instance's events
    ///
    /// The events of the instance of `model` that holds `id`, newest first, `limit` at a time.
    #[oai(
        path = "/:model/instances/:id/events",
        method = "get",
        operation_id = "listEvents"
    )]
    async fn events(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        model: Path<String>,
        id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> EventPageResponse {
        let result = async {
            key.0.require(Scope::Read)?;
            Ok::<_, ApiError>(
                state
                    .store
                    .events(&key.0.tenant, &model, &id, page_size(limit.0), cursor.0)
                    .await?,
            )
        };
        match result.await {
            Ok(page) => EventPageResponse::Ok(Json(EventPage {
                events: page.items.into_iter().map(Event::from).collect(),
                next_cursor: page.next_cursor,
            })),
            Err(error) => error.into(),
        }
    }

    /// Delete an instance
    ///
    /// Deletes the instance of `model` that holds `id` with all its ids, links, pending links and
    /// events (a privacy deletion).
    #[oai(
        path = "/:model/instances/:id",
        method = "delete",
        operation_id = "deleteInstance"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        key: TenantKey,
        model: Path<String>,
        id: Path<String>,
    ) -> DeleteResponse {
        let result = async {
            key.0.require(Scope::Read)?;
            Ok::<_, ApiError>(
                state
                    .store
                    .delete_instance(&key.0.tenant, &model, &id)
                    .await?,
            )
        };
        match result.await {
            Ok(()) => DeleteResponse::Deleted,
            Err(error) => error.into(),
        }
    }
}

fn page_size(limit: Option<u32>) -> usize {
    limit.map_or(DEFAULT_PAGE, |limit| {
        usize::try_from(limit).unwrap_or(DEFAULT_PAGE)
    })
}
