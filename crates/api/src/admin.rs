//! The admin API: onboard tenants, upload configs, issue and revoke keys.

use functionary_config::{CompiledConfig, Diagnostic};
use functionary_store::{Tenant as StoredTenant, TenantId};
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use poem_openapi::payload::{Json, PlainText};

use crate::Tags;
use crate::auth::Scope;
use crate::error::{ApiError, ErrorDetail, endpoint_response};
use crate::objects::{
    ConfigDocument, ConfigVersion, CreateKeyRequest, CreateTenantRequest, IssuedKey, KeyInfo,
    KeyList, Tenant, TenantList,
};
use crate::security::AdminToken;
use crate::state::AppState;
use crate::strict::NoNullFields;

endpoint_response! {
    CreateTenantResponse {
        /// The tenant was created (with its config as version 1 when one was given).
        Created(Json<Tenant>) = 201,
    }
    errors {
        BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409,
        PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422,
    }
}

endpoint_response! {
    TenantListResponse {
        Ok(Json<TenantList>) = 200,
    }
    errors { Unauthorized = 401, Forbidden = 403 }
}

endpoint_response! {
    TenantResponse {
        Ok(Json<Tenant>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404 }
}

endpoint_response! {
    PutConfigResponse {
        /// The config was checked and stored as a new version, now active.
        Ok(Json<ConfigVersion>) = 200,
    }
    errors {
        BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404,
        PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422,
    }
}

endpoint_response! {
    GetConfigResponse {
        Ok(Json<ConfigDocument>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404 }
}

endpoint_response! {
    IssueKeyResponse {
        /// The key was issued; its token is in the body and is not shown again.
        Created(Json<IssuedKey>) = 201,
    }
    errors {
        BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404,
        PayloadTooLarge = 413, UnsupportedMediaType = 415, Unprocessable = 422,
    }
}

endpoint_response! {
    KeyListResponse {
        Ok(Json<KeyList>) = 200,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404 }
}

endpoint_response! {
    RevokeKeyResponse {
        /// The key is revoked; calls with it now answer 401.
        Revoked = 204,
    }
    errors { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404 }
}

/// The admin endpoints; they take an admin token, never a tenant key.
#[derive(Debug)]
pub struct AdminApi;

#[OpenApi(prefix_path = "/admin/v1/tenants", tag = "Tags::Admin")]
impl AdminApi {
    /// Create a tenant
    #[oai(path = "/", method = "post", operation_id = "createTenant")]
    async fn create_tenant(
        &self,
        state: Data<&AppState>,
        admin: AdminToken,
        body: Json<NoNullFields<CreateTenantRequest>>,
    ) -> CreateTenantResponse {
        let request = body.0.0;
        tracing::info!(admin = %admin.0.jti, tenant = %request.slug, "create tenant");
        let result = async {
            if let Some(yaml) = &request.config {
                checked_config(yaml, &request.slug)?;
            }
            let tenant = state
                .store
                .create_tenant(&request.slug, request.display_name.as_deref())
                .await?;
            let mut version = None;
            if let Some(yaml) = &request.config {
                let stored = state.store.put_config(&tenant.id, yaml).await?;
                state.config_stored(&tenant.id, stored).await;
                version = Some(stored);
            }
            Ok::<_, ApiError>(tenant_view(tenant, version))
        };
        match result.await {
            Ok(tenant) => CreateTenantResponse::Created(Json(tenant)),
            Err(error) => error.into(),
        }
    }

    /// List tenants
    #[oai(path = "/", method = "get", operation_id = "listTenants")]
    async fn list_tenants(&self, state: Data<&AppState>, _admin: AdminToken) -> TenantListResponse {
        let result = async {
            let mut tenants = Vec::new();
            for tenant in state.store.tenants().await? {
                let version = state.store.active_config_version(&tenant.id).await?;
                tenants.push(tenant_view(tenant, version));
            }
            Ok::<_, ApiError>(tenants)
        };
        match result.await {
            Ok(tenants) => TenantListResponse::Ok(Json(TenantList { tenants })),
            Err(error) => error.into(),
        }
    }

    /// Get a tenant
    #[oai(path = "/:slug", method = "get", operation_id = "getTenant")]
    async fn get_tenant(
        &self,
        state: Data<&AppState>,
        _admin: AdminToken,
        slug: Path<String>,
    ) -> TenantResponse {
        let result = async {
            let tenant = tenant(&state, &slug).await?;
            let version = state.store.active_config_version(&tenant.id).await?;
            Ok::<_, ApiError>(tenant_view(tenant, version))
        };
        match result.await {
            Ok(tenant) => TenantResponse::Ok(Json(tenant)),
            Err(error) => error.into(),
        }
    }

    /// Upload a tenant's config
    ///
    /// The body is the YAML text. It is checked like `functionary check` does; errors come back
    /// as 422 with one detail per error (JSON pointer, line and column). An accepted config is
    /// stored as a new version and is active for the next request.
    #[oai(path = "/:slug/config", method = "put", operation_id = "putConfig")]
    async fn put_config(
        &self,
        state: Data<&AppState>,
        admin: AdminToken,
        slug: Path<String>,
        body: PlainText<String>,
    ) -> PutConfigResponse {
        tracing::info!(admin = %admin.0.jti, tenant = %slug.0, "upload config");
        let result = async {
            let tenant = tenant(&state, &slug).await?;
            checked_config(&body.0, &slug)?;
            let version = state.store.put_config(&tenant.id, &body.0).await?;
            state.config_stored(&tenant.id, version).await;
            Ok::<_, ApiError>(version)
        };
        match result.await {
            Ok(version) => PutConfigResponse::Ok(Json(ConfigVersion { version })),
            Err(error) => error.into(),
        }
    }

    /// Get a tenant's active config
    #[oai(path = "/:slug/config", method = "get", operation_id = "getConfig")]
    async fn get_config(
        &self,
        state: Data<&AppState>,
        _admin: AdminToken,
        slug: Path<String>,
    ) -> GetConfigResponse {
        let result = async {
            let tenant = tenant(&state, &slug).await?;
            state.store.active_config(&tenant.id).await?.ok_or_else(|| {
                ApiError::not_found(
                    "config_not_found",
                    format!("tenant `{}` has no config yet", slug.0),
                )
            })
        };
        match result.await {
            Ok(config) => GetConfigResponse::Ok(Json(ConfigDocument {
                version: config.version,
                yaml: config.yaml,
            })),
            Err(error) => error.into(),
        }
    }

    /// Issue an API key
    #[oai(path = "/:slug/keys", method = "post", operation_id = "issueKey")]
    async fn issue_key(
        &self,
        state: Data<&AppState>,
        admin: AdminToken,
        slug: Path<String>,
        body: Json<NoNullFields<CreateKeyRequest>>,
    ) -> IssueKeyResponse {
        tracing::info!(admin = %admin.0.jti, tenant = %slug.0, "issue key");
        let request = body.0.0;
        let result = async {
            let tenant = tenant(&state, &slug).await?;
            let scopes = request.scopes.unwrap_or_else(|| Scope::ALL.to_vec());
            issue_key(&state, &tenant, request.name.as_deref(), &scopes).await
        };
        match result.await {
            Ok(issued) => IssueKeyResponse::Created(Json(issued)),
            Err(error) => error.into(),
        }
    }

    /// List a tenant's keys
    #[oai(path = "/:slug/keys", method = "get", operation_id = "listKeys")]
    async fn list_keys(
        &self,
        state: Data<&AppState>,
        _admin: AdminToken,
        slug: Path<String>,
    ) -> KeyListResponse {
        let result = async {
            let tenant = tenant(&state, &slug).await?;
            Ok::<_, ApiError>(state.store.keys(&tenant.id).await?)
        };
        match result.await {
            Ok(keys) => KeyListResponse::Ok(Json(KeyList {
                keys: keys
                    .into_iter()
                    .map(|key| KeyInfo {
                        key_id: key.key_id,
                        name: key.name,
                        scopes: key.scopes,
                        created_at: key.created_at,
                        revoked_at: key.revoked_at,
                    })
                    .collect(),
            })),
            Err(error) => error.into(),
        }
    }

    /// Revoke an API key
    #[oai(
        path = "/:slug/keys/:key_id",
        method = "delete",
        operation_id = "revokeKey"
    )]
    async fn revoke_key(
        &self,
        state: Data<&AppState>,
        admin: AdminToken,
        slug: Path<String>,
        key_id: Path<String>,
    ) -> RevokeKeyResponse {
        tracing::info!(admin = %admin.0.jti, tenant = %slug.0, key = %key_id.0, "revoke key");
        let result = async {
            let tenant = tenant(&state, &slug).await?;
            state.store.revoke_key(&tenant.id, &key_id).await?;
            state.forget_key(&tenant.id, &key_id).await;
            Ok::<_, ApiError>(())
        };
        match result.await {
            Ok(()) => RevokeKeyResponse::Revoked,
            Err(error) => error.into(),
        }
    }
}

/// Issues a key: stores its record, then signs its token.
pub async fn issue_key(
    state: &AppState,
    tenant: &StoredTenant,
    name: Option<&str>,
    scopes: &[Scope],
) -> Result<IssuedKey, ApiError> {
    let key_id = uuid::Uuid::now_v7().to_string();
    let scope_names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    state
        .store
        .create_key(&tenant.id, &key_id, name, &scope_names)
        .await?;
    let token = state
        .keys
        .issue_tenant_key(&tenant.id.0, &tenant.slug, &key_id, scopes)
        .map_err(|error| {
            tracing::error!(%error, "can not sign a key");
            ApiError::internal()
        })?;
    Ok(IssuedKey {
        key_id,
        token,
        scopes: scopes.to_vec(),
        name: name.map(str::to_owned),
    })
}

async fn tenant(state: &AppState, slug: &str) -> Result<StoredTenant, ApiError> {
    state
        .store
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant `{slug}`")))
}

fn tenant_view(tenant: StoredTenant, config_version: Option<i64>) -> Tenant {
    Tenant {
        slug: tenant.slug,
        display_name: tenant.display_name,
        created_at: tenant.created_at,
        config_version,
    }
}

/// Checks an uploaded config for tenant `slug`: every error is a located 422 detail.
pub fn checked_config(yaml: &str, slug: &str) -> Result<CompiledConfig, ApiError> {
    let config = functionary_config::load_config(yaml, slug).map_err(|findings| {
        ApiError::unprocessable(
            "invalid_config",
            format!("the config has {} error(s)", findings.len()),
        )
        .with_details(findings.iter().map(located).collect())
    })?;
    if config.tenant() != slug {
        return Err(ApiError::unprocessable(
            "invalid_config",
            format!(
                "the config declares tenant `{}`, but is uploaded for `{slug}`",
                config.tenant()
            ),
        )
        .with_details(vec![ErrorDetail {
            pointer: Some("/tenant".to_owned()),
            message: format!("must be `{slug}` or left out"),
            ..ErrorDetail::default()
        }]));
    }
    Ok(config)
}

fn located(finding: &Diagnostic) -> ErrorDetail {
    ErrorDetail {
        pointer: Some(finding.pointer.clone()),
        line: u64::try_from(finding.location.line).ok(),
        column: u64::try_from(finding.location.column).ok(),
        message: finding.message.clone(),
        ..ErrorDetail::default()
    }
}

/// The store id of a tenant, for code that only has its slug.
pub async fn tenant_id(state: &AppState, slug: &str) -> Result<TenantId, ApiError> {
    Ok(tenant(state, slug).await?.id)
}
