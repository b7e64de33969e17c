//! What every request shares: the store, the signing keys and the caches.
//!
//! Caches hold only what can be rebuilt from the database. Compiled configs are keyed by
//! (tenant, version) and never recompiled per request; the active version of a tenant is
//! re-read after a few seconds, so other nodes notice a new config. Key records are cached
//! briefly and dropped on revoke, so a revoked key stops working at once on the node that
//! revoked it and within seconds elsewhere.

use std::sync::Arc;
use std::time::Duration;

use functionary_config::CompiledConfig;
use functionary_store::{ApiKey, Store, TenantId};
use moka::future::Cache;

use crate::auth::Keys;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long this node trusts its idea of a tenant's active config version.
pub const ACTIVE_VERSION_TTL: Duration = Duration::from_secs(2);
/// How long a key record (and so a revocation done on another node) is cached.
pub const KEY_TTL: Duration = Duration::from_secs(5);

/// The shared state of the server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub keys: Keys,
    pub metrics: Arc<Metrics>,
    configs: Cache<(TenantId, i64), Arc<CompiledConfig>>,
    active_versions: Cache<TenantId, Option<i64>>,
    api_keys: Cache<(TenantId, String), Option<Arc<ApiKey>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(store: Store, keys: Keys) -> Self {
        Self {
            store,
            keys,
            metrics: Arc::default(),
            configs: Cache::builder().max_capacity(10_000).build(),
            active_versions: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ACTIVE_VERSION_TTL)
                .build(),
            api_keys: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_TTL)
                .build(),
        }
    }

    /// The tenant's active compiled config, or `None` when it has none yet.
    pub async fn config(
        &self,
        tenant: &TenantId,
        slug: &str,
    ) -> Result<Option<Arc<CompiledConfig>>, ApiError> {
        let version = self
            .active_versions
            .try_get_with(tenant.clone(), async {
                self.store.active_config_version(tenant).await
            })
            .await
            .map_err(|error| ApiError::from((*error).clone()))?;
        let Some(version) = version else {
            return Ok(None);
        };
        let metrics = Arc::clone(&self.metrics);
        let mut compiled_now = false;
        let config = self
            .configs
            .try_get_with((tenant.clone(), version), async {
                compiled_now = true;
                compile_version(self.store.clone(), tenant.clone(), slug.to_owned(), version).await
            })
            .await
            .map_err(|error| (*error).clone())?;
        let result = if compiled_now { "miss" } else { "hit" };
        metrics.incr("functionary_config_cache_total", &[("result", result)]);
        Ok(Some(config))
    }

    /// Makes a config version stored on this node visible to its next request.
    pub async fn config_stored(&self, tenant: &TenantId, version: i64) {
        self.active_versions
            .insert(tenant.clone(), Some(version))
            .await;
    }

    /// The record of a tenant's key, cached for [`KEY_TTL`].
    pub async fn api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
    ) -> Result<Option<Arc<ApiKey>>, ApiError> {
        let mut looked_up = false;
        let found = self
            .api_keys
            .try_get_with((tenant.clone(), key_id.to_owned()), async {
                looked_up = true;
                Ok::<_, functionary_store::StoreError>(
                    self.store.key(tenant, key_id).await?.map(Arc::new),
                )
            })
            .await
            .map_err(|error| ApiError::from((*error).clone()))?;
        let result = if looked_up { "miss" } else { "hit" };
        self.metrics
            .incr("functionary_key_cache_total", &[("result", result)]);
        Ok(found)
    }

    /// Forgets a key record, so a revocation takes effect at once on this node.
    pub async fn forget_key(&self, tenant: &TenantId, key_id: &str) {
        self.api_keys
            .invalidate(&(tenant.clone(), key_id.to_owned()))
            .await;
    }
}

/// Loads a stored config version and compiles it off the async worker threads.
async fn compile_version(
    store: Store,
    tenant: TenantId,
    slug: String,
    version: i64,
) -> Result<Arc<CompiledConfig>, ApiError> {
    let stored = store
        .config_version(&tenant, version)
        .await?
        .ok_or_else(ApiError::internal)?;
    let compiled =
        tokio::task::spawn_blocking(move || functionary_config::load_config(&stored.yaml, &slug))
            .await
            .map_err(|_| ApiError::internal())?;
    match compiled {
        Ok(config) => Ok(Arc::new(config)),
        Err(findings) => {
            // Stored configs were checked on upload; a failure here means the rules changed.
            tracing::error!(
                findings = findings.len(),
                "stored config no longer compiles"
            );
            Err(ApiError::internal())
        }
    }
}
