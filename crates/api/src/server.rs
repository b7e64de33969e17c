//! Assembling the app, loading tenant configs from a folder, and serving with graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use poem::listener::TcpListener;
use poem::middleware::Tracing;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;

use crate::admin::{AdminApi, checked_config};
use crate::error::from_poem;
use crate::health::HealthApi;
use crate::ingest::IngestApi;
use crate::instances::InstancesApi;
use crate::limits::{BodyLimit, MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES};
use crate::metrics::RecordMetrics;
use crate::state::AppState;

/// How the server listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

type Apis = (IngestApi, InstancesApi, AdminApi, HealthApi);

/// The OpenAPI service: every endpoint, described for generated clients.
pub fn api_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (IngestApi, InstancesApi, AdminApi, HealthApi),
        "Functionary",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Multi-tenant identity and event API. Tenants identify the instances of their models \
             (customers, organizations, ...) and record events on them with a Bearer API key; \
             platform admins manage tenants, configs and keys with an admin token. Every error \
             answers `{\"statusCode\", \"error\": {\"code\", \"message\", \"details\"}}`.",
    )
}

/// Request bodies that refuse unknown fields (`deny_unknown_fields`); poem-openapi does not
/// say so in the spec, so [`openapi_json`] adds `additionalProperties: false` to them.
const CLOSED_REQUEST_SCHEMAS: &[&str] = &[
    "IdentifyRequest",
    "EventRequest",
    "BatchRequest",
    "CreateTenantRequest",
    "CreateKeyRequest",
];

/// The OpenAPI document as JSON, the same text `/openapi.json` serves.
pub fn openapi_json() -> String {
    static SPEC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let spec = api_service().spec();
        let Ok(mut document) = serde_json::from_str::<serde_json::Value>(&spec) else {
            return spec;
        };
        for name in CLOSED_REQUEST_SCHEMAS {
            if let Some(schema) = document.pointer_mut(&format!("/components/schemas/{name}")) {
                schema["additionalProperties"] = serde_json::Value::Bool(false);
            }
        }
        close_union_variants(&mut document);
        exact_id_bounds(&mut document);
        serde_json::to_string_pretty(&document).unwrap_or(spec)
    });
    SPEC.clone()
}

/// The integer ids' bounds, `i64::MIN` and `u64::MAX`, as exact JSON integers: poem-openapi
/// keeps bounds as `f64`, which rounds `u64::MAX` up to 2^64, an integer no id may be.
fn exact_id_bounds(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(object) => {
            if object.get("type").and_then(Value::as_str) == Some("integer")
                && object.get("maximum").and_then(Value::as_f64) == Some(crate::id::ID_INTEGER_MAX)
                && object.get("minimum").and_then(Value::as_f64) == Some(crate::id::ID_INTEGER_MIN)
            {
                object.insert("minimum".to_owned(), Value::from(i64::MIN));
                object.insert("maximum".to_owned(), Value::from(u64::MAX));
            }
            object.values_mut().for_each(exact_id_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(exact_id_bounds),
        _ => {}
    }
}

/// A union variant is `allOf: [{type}, {$ref: Closed}]`, which no value satisfies once
/// `Closed` refuses unknown fields (`type` is one). Each such variant becomes one closed object
/// holding the discriminator and the referenced schema's properties.
fn close_union_variants(document: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(schemas) = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    for (name, schema) in &schemas {
        let Some([discriminator, Value::Object(reference)]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        else {
            continue;
        };
        let Some(target) = reference
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|target| target.rsplit('/').next())
        else {
            continue;
        };
        if !CLOSED_REQUEST_SCHEMAS.contains(&target) {
            continue;
        }
        let Some(closed) = schemas.get(target) else {
            continue;
        };
        let mut properties = discriminator["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        properties.extend(
            closed["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let mut required: Vec<Value> = discriminator["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        required.extend(closed["required"].as_array().cloned().unwrap_or_default());
        let mut merged = serde_json::json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        if let Some(description) = closed.get("description").or(schema.get("description")) {
            merged["description"] = description.clone();
        }
        if let Some(slot) = document.pointer_mut(&format!("/components/schemas/{name}")) {
            *slot = merged;
        }
    }
}

#[poem::handler]
fn spec_endpoint() -> poem::Response {
    poem::Response::builder()
        .content_type("application/json")
        .body(openapi_json())
}

/// The whole HTTP application on `state`.
pub fn app(state: AppState) -> impl Endpoint {
    let api = api_service();
    let docs = api.swagger_ui();
    let metrics = std::sync::Arc::clone(&state.metrics);
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec_endpoint)
        .with(BodyLimit::new(MAX_BODY_BYTES).with_path("/api/v1/batch", MAX_BATCH_BODY_BYTES))
        .catch_all_error(|error: poem::Error| async move {
            poem::error::ResponseError::as_response(&from_poem(&error))
        })
        .around(|endpoint, request| async move {
            // A 405 names the methods the resource does support (RFC 9110 §15.5.6).
            let path = request.uri().path().to_owned();
            let mut response = endpoint.call(request).await?;
            if response.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
                && let Some(allowed) = allowed_methods(&path)
                && let Ok(value) = poem::http::HeaderValue::from_str(&allowed)
            {
                response
                    .headers_mut()
                    .insert(poem::http::header::ALLOW, value);
            }
            Ok(response)
        })
        .with(RecordMetrics { metrics })
        .with(Tracing)
        .data(state)
        .into_endpoint()
}

/// The methods the spec declares for the route that matches `path` (with `HEAD` beside `GET`,
/// which poem answers too), as an `Allow` header value; `None` when no route matches.
fn allowed_methods(path: &str) -> Option<String> {
    static ROUTES: std::sync::LazyLock<Vec<(Vec<String>, String)>> =
        std::sync::LazyLock::new(|| {
            let document: serde_json::Value =
                serde_json::from_str(&openapi_json()).unwrap_or_default();
            let Some(paths) = document["paths"].as_object() else {
                return Vec::new();
            };
            paths
                .iter()
                .map(|(template, operations)| {
                    let segments = template.split('/').map(str::to_owned).collect();
                    let mut methods = Vec::new();
                    for method in operations.as_object().into_iter().flat_map(|o| o.keys()) {
                        methods.push(method.to_uppercase());
                        if method == "get" {
                            methods.push("HEAD".to_owned());
                        }
                    }
                    (segments, methods.join(", "))
                })
                .collect()
        });
    let segments: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find_map(|(template, methods)| {
        let matches = template.len() == segments.len()
            && template.iter().zip(&segments).all(|(expected, actual)| {
                (expected.starts_with('{') && !actual.is_empty()) || expected == actual
            });
        matches.then(|| methods.clone())
    })
}

/// Loads every `*.yaml`/`*.yml` in `dir` as a tenant config: creates missing tenants and stores
/// a changed file as a new version. A file with errors stops the start, with every error.
pub async fn sync_tenants_dir(state: &AppState, dir: &Path) -> Result<Vec<String>, String> {
    let files = functionary_config::config_files_in(dir)
        .map_err(|error| format!("{}: {error}", dir.display()))?;
    let mut report = Vec::new();
    for path in files {
        let file = functionary_config::read_config_file(&path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let config =
            functionary_config::load_config(&file.text, &file.stem).map_err(|findings| {
                findings
                    .iter()
                    .map(|finding| format!("{}:{finding}", path.display()))
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        let slug = config.tenant().to_owned();
        checked_config(&file.text, &slug)
            .map_err(|error| format!("{}: {}", path.display(), error.body.error.message))?;
        let store_error =
            |error: functionary_store::StoreError| format!("{}: {error}", path.display());
        let tenant = match state
            .store
            .tenant_by_slug(&slug)
            .await
            .map_err(store_error)?
        {
            Some(tenant) => tenant,
            None => state
                .store
                .create_tenant(&slug, config.display_name())
                .await
                .map_err(store_error)?,
        };
        let active = state
            .store
            .active_config(&tenant.id)
            .await
            .map_err(store_error)?;
        if active
            .as_ref()
            .is_some_and(|active| active.yaml == file.text)
        {
            report.push(format!(
                "tenant {slug}: config unchanged (version {})",
                active.map_or(0, |a| a.version)
            ));
            continue;
        }
        let version = state
            .store
            .put_config(&tenant.id, &file.text)
            .await
            .map_err(store_error)?;
        state.config_stored(&tenant.id, version).await;
        report.push(format!(
            "tenant {slug}: config version {version} from {}",
            path.display()
        ));
    }
    Ok(report)
}

/// Serves `state` until Ctrl-C or SIGTERM, then lets in-flight requests finish.
pub async fn serve(state: AppState, config: ServerConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind(config.listen);
    tracing::info!(listen = %config.listen, "serving; docs at /docs, spec at /openapi.json");
    poem::Server::new(listener)
        .run_with_graceful_shutdown(app(state), shutdown_signal(), Some(config.shutdown_grace))
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_of_the_matching_route() {
        assert_eq!(
            allowed_methods("/api/v1/models/customer/instances/c-1").as_deref(),
            Some("DELETE, GET, HEAD")
        );
        assert_eq!(allowed_methods("/healthz").as_deref(), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/api/v1/identify").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/api/v1/models//instances"), None);
        assert_eq!(allowed_methods("/nowhere"), None);
    }

    #[test]
    fn integer_ids_are_bounded_exactly() {
        let spec = openapi_json();
        assert!(spec.contains("\"maximum\": 18446744073709551615"), "{spec}");
        assert!(spec.contains("\"minimum\": -9223372036854775808"), "{spec}");
    }
}
