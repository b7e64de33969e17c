//! Liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::payload::{Json, PlainText};

use crate::Tags;
use crate::error::{ApiError, endpoint_response};
use crate::objects::Health;
use crate::state::AppState;

endpoint_response! {
    HealthResponse {
        Ok(Json<Health>) = 200,
    }
    errors {}
}

endpoint_response! {
    MetricsResponse {
        /// Prometheus text exposition format.
        Ok(PlainText<String>) = 200,
    }
    errors {}
}

/// Health and metrics endpoints; they need no credentials.
#[derive(Debug)]
pub struct HealthApi;

#[OpenApi(tag = "Tags::Health")]
impl HealthApi {
    /// Liveness: the process answers
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: "ok".to_owned(),
        }))
    }

    /// Readiness: the store answers
    ///
    /// 503 with `Retry-After` while the database can not be reached.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&AppState>) -> HealthResponse {
        match state.store.ping().await {
            Ok(()) => HealthResponse::Ok(Json(Health {
                status: "ok".to_owned(),
            })),
            Err(error) => ApiError::from(error).into(),
        }
    }

    /// Metrics in Prometheus text format
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        let stats = state.store.stats();
        let counter = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed) as f64;
        let extra = [
            (
                "functionary_identify_created_total",
                "Identify calls that created an instance.",
                "counter",
                counter(&stats.identify_created),
            ),
            (
                "functionary_identify_updated_total",
                "Identify calls that updated an instance.",
                "counter",
                counter(&stats.identify_updated),
            ),
            (
                "functionary_identify_conflicts_total",
                "Identify calls refused with ids_conflict.",
                "counter",
                counter(&stats.identify_conflicts),
            ),
            (
                "functionary_events_accepted_total",
                "Events stored.",
                "counter",
                counter(&stats.events_accepted),
            ),
            (
                "functionary_events_discarded_total",
                "Events thrown out: no instance holds their ids.",
                "counter",
                counter(&stats.events_discarded),
            ),
            (
                "functionary_events_duplicate_total",
                "Events not stored again: their messageId was seen.",
                "counter",
                counter(&stats.events_duplicate),
            ),
        ];
        MetricsResponse::Ok(PlainText(state.metrics.render(&extra)))
    }
}
