//! The two Bearer schemes: tenant API keys and admin tokens.

use functionary_store::TenantId;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::auth::{Scope, TenantClaims};
use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a tenant endpoint, from a verified, unrevoked API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub slug: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Refuses the call (403) unless the key carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this API key lacks the `{}` scope", scope.as_str()),
            ))
        }
    }
}

/// A tenant API key: `Authorization: Bearer <key>`, issued by the admin API or
/// `functionary keys issue`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_tenant_key")]
pub struct TenantKey(pub Principal);

/// A platform admin token: `Authorization: Bearer <token>` from `functionary token admin`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_admin_token")]
pub struct AdminToken(pub crate::auth::AdminClaims);

fn state(req: &Request) -> Result<&AppState, poem::Error> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::internal().into())
}

async fn check_tenant_key(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = state(req)?;
    let claims: TenantClaims = state.keys.verify_tenant(&bearer.token).map_err(|error| {
        tracing::debug!(%error, "tenant key refused");
        ApiError::unauthorized("the API key is invalid, expired or revoked")
    })?;
    let tenant = TenantId(claims.tid.as_str().into());
    match state.api_key(&tenant, &claims.jti).await? {
        Some(key) if key.revoked_at.is_none() => {
            tracing::debug!(tenant = %claims.sub, key = %claims.jti, "tenant key accepted");
            Ok(Principal {
                tenant,
                slug: claims.sub,
                scopes: claims.scopes,
            })
        }
        _ => Err(ApiError::unauthorized("the API key is invalid, expired or revoked").into()),
    }
}

async fn check_admin_token(
    req: &Request,
    bearer: Bearer,
) -> poem::Result<crate::auth::AdminClaims> {
    let state = state(req)?;
    match state.keys.verify_admin(&bearer.token) {
        Ok(claims) => Ok(claims),
        Err(error) => {
            tracing::debug!(%error, "admin token refused");
            if state.keys.verify_tenant(&bearer.token).is_ok() {
                return Err(ApiError::forbidden(
                    "admin_only",
                    "tenant API keys can not call the admin API",
                )
                .into());
            }
            Err(ApiError::unauthorized("the admin token is invalid or expired").into())
        }
    }
}
