//! The identity store: tenant-scoped instances with many ids, parent/child links (pending until
//! their ids appear) and events, on PostgreSQL or an embedded SQLite file.
//!
//! The identity rules are written once (`identify`, `events`, `read`) against a connection of
//! either backend; `queries` holds the statements, the few backend-specific ones included.
//! Every operation runs to completion on its own task, so a caller that goes away (a client
//! that hangs up) never leaves a transaction half done.

mod admin;
mod db;
mod error;
mod events;
mod identify;
mod ids;
mod properties;
mod queries;
mod read;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use functionary_config::CompiledConfig;
use serde::{Deserialize, Serialize};

pub use admin::{ApiKey, ConfigVersion};
pub use db::{DatabaseUrl, SqliteSynchronous, StoreOptions};
pub use error::{Detail, StoreError};
pub use events::{EventInput, EventOutcome, MAX_NAME_CHARS};
pub use identify::{IDENTIFY_EVENT, IdentifyInput, IdentifyOutcome, MAX_DISPLAY_NAME_CHARS};
pub use ids::{MAX_ID_CHARS, MAX_IDS};
pub use properties::MAX_PROPERTIES_BYTES;
pub use read::{EventView, InstanceView, LinkedInstance, MAX_PAGE, Page, PendingLink};

use db::{Db, Operation, Pool};
use error::TxError;
use queries::TenantRow;

/// The store's own id of a tenant (not its slug). Shared, not copied: every call of a tenant
/// carries it from the key check through the caches to the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(pub std::sync::Arc<str>);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub display_name: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One item of a batch call.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BatchItem {
    Identify(IdentifyInput),
    Event(EventInput),
}

/// The result of one batch item: what the single call would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BatchOutcome {
    Identify(IdentifyOutcome),
    Event(EventOutcome),
}

/// Counts of what the store did since it was opened (exported as metrics).
#[derive(Debug, Default)]
pub struct Stats {
    pub identify_created: AtomicU64,
    pub identify_updated: AtomicU64,
    pub identify_conflicts: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_discarded: AtomicU64,
    pub events_duplicate: AtomicU64,
}

/// A handle on the database; cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    stats: Arc<Stats>,
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH` or `postgres://…`), creating an SQLite file
    /// and its folder when missing, and applies pending migrations.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let url = DatabaseUrl::parse(url)
            .map_err(|message| StoreError::invalid("invalid_database_url", message, Vec::new()))?;
        let store = Self {
            pool: Pool::open(&url, &options).await?,
            stats: Arc::default(),
        };
        store.pool.migrate().await?;
        Ok(store)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.read(&Ping).await
    }

    pub async fn create_tenant(
        &self,
        slug: &str,
        display_name: Option<&str>,
    ) -> Result<Tenant, StoreError> {
        let op = CreateTenant {
            row: TenantRow {
                id: new_id(),
                slug: slug.to_owned(),
                display_name: display_name.map(str::to_owned),
                created_at: now_micros(),
            },
        };
        self.detached(move |pool| async move { pool.write(op).await })
            .await
            .map(tenant)
    }

    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let op = TenantBySlug(slug.to_owned());
        Ok(self.pool.read(&op).await?.map(tenant))
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        Ok(self
            .pool
            .read(&AllTenants)
            .await?
            .into_iter()
            .map(tenant)
            .collect())
    }

    /// Stores `yaml` (already checked) as the tenant's next config version; returns its number.
    pub async fn put_config(&self, tenant: &TenantId, yaml: &str) -> Result<i64, StoreError> {
        let op = admin::PutConfig {
            tenant: tenant.clone(),
            yaml: yaml.to_owned(),
            now: now_micros(),
        };
        self.detached(move |pool| async move { pool.write(op).await })
            .await
    }

    /// The tenant's active (latest) config, if it has one.
    pub async fn active_config(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ConfigVersion>, StoreError> {
        self.pool.read(&admin::ActiveConfig(tenant.clone())).await
    }

    /// One stored version of the tenant's config.
    pub async fn config_version(
        &self,
        tenant: &TenantId,
        version: i64,
    ) -> Result<Option<ConfigVersion>, StoreError> {
        self.pool
            .read(&admin::ConfigAt {
                tenant: tenant.clone(),
                version,
            })
            .await
    }

    /// The number of the tenant's active config version: a cheap check for a newer config.
    pub async fn active_config_version(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<i64>, StoreError> {
        self.pool
            .read(&admin::ActiveConfigVersion(tenant.clone()))
            .await
    }

    pub async fn create_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        name: Option<&str>,
        scopes: &[&str],
    ) -> Result<ApiKey, StoreError> {
        let op = admin::CreateKey {
            tenant: tenant.clone(),
            key_id: key_id.to_owned(),
            name: name.map(str::to_owned),
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            now: now_micros(),
        };
        self.detached(move |pool| async move { pool.write(op).await })
            .await
    }

    pub async fn keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        self.pool.read(&admin::ListKeys(tenant.clone())).await
    }

    pub async fn key(&self, tenant: &TenantId, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.pool
            .read(&admin::GetKey {
                tenant: tenant.clone(),
                key_id: key_id.to_owned(),
            })
            .await
    }

    /// Revokes a key; revoking a revoked key is fine, an unknown one is `key_not_found`.
    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<(), StoreError> {
        let op = admin::RevokeKey {
            tenant: tenant.clone(),
            key_id: key_id.to_owned(),
            now: now_micros(),
        };
        self.detached(move |pool| async move { pool.write(op).await })
            .await
    }

    /// Resolves the ids of `input` to one instance of its model and applies the call (§2).
    pub async fn identify(
        &self,
        tenant: &TenantId,
        config: Arc<CompiledConfig>,
        input: IdentifyInput,
    ) -> Result<IdentifyOutcome, StoreError> {
        let op = identify::Identify::prepare(tenant.clone(), config, input, now_micros())?;
        self.apply_identify(op).await
    }

    /// Records an event on the instance its ids resolve to (§3).
    pub async fn track(
        &self,
        tenant: &TenantId,
        config: Arc<CompiledConfig>,
        input: EventInput,
    ) -> Result<EventOutcome, StoreError> {
        let event = events::Track::prepare(&config, input, now_micros())?;
        self.record_events(tenant, vec![event])
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Internal(
                    "an event without an outcome".to_owned(),
                ))
            })
    }

    /// Applies the items in order; each succeeds or fails on its own, with what the single call
    /// would have answered. Consecutive events are recorded together, in one write; each
    /// identify is a write of its own, so the events after it see what it did.
    pub async fn batch(
        &self,
        tenant: &TenantId,
        config: Arc<CompiledConfig>,
        items: Vec<BatchItem>,
    ) -> Vec<Result<BatchOutcome, StoreError>> {
        // What needs no database is checked first, in order; an item that fails it fails alone
        // and changes nothing, so it does not end a run of events.
        let prepared: Vec<Result<Prepared, StoreError>> = items
            .into_iter()
            .map(|item| match item {
                BatchItem::Identify(input) => identify::Identify::prepare(
                    tenant.clone(),
                    Arc::clone(&config),
                    input,
                    now_micros(),
                )
                .map(Prepared::Identify),
                BatchItem::Event(input) => {
                    events::Track::prepare(&config, input, now_micros()).map(Prepared::Event)
                }
            })
            .collect();
        let mut results: Vec<Option<Result<BatchOutcome, StoreError>>> =
            prepared.iter().map(|_| None).collect();
        let mut run = Vec::new();
        for (position, item) in prepared.into_iter().enumerate() {
            match item {
                Ok(Prepared::Event(event)) => run.push((position, event)),
                Ok(Prepared::Identify(op)) => {
                    self.record_run(tenant, std::mem::take(&mut run), &mut results)
                        .await;
                    let outcome = self.apply_identify(op).await;
                    results[position] = Some(outcome.map(BatchOutcome::Identify));
                }
                Err(error) => results[position] = Some(Err(error)),
            }
        }
        self.record_run(tenant, run, &mut results).await;
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(StoreError::Internal(
                        "a batch item without an outcome".to_owned(),
                    ))
                })
            })
            .collect()
    }

    /// Runs one identify in a write of its own, and counts what it did.
    async fn apply_identify(&self, op: identify::Identify) -> Result<IdentifyOutcome, StoreError> {
        let stats = Arc::clone(&self.stats);
        self.detached(move |pool| async move {
            let outcome = pool.write(op).await;
            let counter = match &outcome {
                Ok(done) if done.created => &stats.identify_created,
                Ok(_) => &stats.identify_updated,
                Err(StoreError::Conflict { .. }) => &stats.identify_conflicts,
                Err(_) => return outcome,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            outcome
        })
        .await
    }

    /// Records a run of a batch's events (given with their positions) and puts each outcome at
    /// its position.
    async fn record_run(
        &self,
        tenant: &TenantId,
        run: Vec<(usize, events::Track)>,
        results: &mut [Option<Result<BatchOutcome, StoreError>>],
    ) {
        if run.is_empty() {
            return;
        }
        let (positions, events): (Vec<usize>, Vec<events::Track>) = run.into_iter().unzip();
        let outcomes = self.record_events(tenant, events).await;
        for (position, outcome) in positions.into_iter().zip(outcomes) {
            if let Some(slot) = results.get_mut(position) {
                *slot = Some(outcome.map(BatchOutcome::Event));
            }
        }
    }

    /// Records consecutive events in one write and counts each outcome; one outcome per event,
    /// in order. When the write fails as a whole, each event gets its error.
    async fn record_events(
        &self,
        tenant: &TenantId,
        events: Vec<events::Track>,
    ) -> Vec<Result<EventOutcome, StoreError>> {
        let op = events::TrackMany::new(tenant.clone(), events);
        let count = op.len();
        let stats = Arc::clone(&self.stats);
        let written = self
            .detached(move |pool| async move {
                let outcomes = pool.write(op).await?;
                for outcome in &outcomes {
                    let counter = match outcome {
                        Ok(EventOutcome::Accepted {
                            duplicate: false, ..
                        }) => &stats.events_accepted,
                        Ok(EventOutcome::Accepted {
                            duplicate: true, ..
                        }) => &stats.events_duplicate,
                        Ok(EventOutcome::Discarded { .. }) => &stats.events_discarded,
                        Err(_) => continue,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(outcomes)
            })
            .await;
        written.unwrap_or_else(|error| vec![Err(error); count])
    }

    /// The instance of `model` that holds `id`, with its ids, links and pending links.
    pub async fn instance(
        &self,
        tenant: &TenantId,
        model: &str,
        id: &str,
    ) -> Result<InstanceView, StoreError> {
        let op = read::GetInstance {
            tenant: tenant.clone(),
            model: model.to_owned(),
            id: id.to_owned(),
        };
        self.pool.read(&op).await
    }

    /// A page of the instances of `model`, oldest first.
    pub async fn instances(
        &self,
        tenant: &TenantId,
        model: &str,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page<InstanceView>, StoreError> {
        let op = read::ListInstances {
            tenant: tenant.clone(),
            model: model.to_owned(),
            limit,
            cursor,
        };
        self.pool.read(&op).await
    }

    /// A page of the events of the instance of `model` that holds `id`, newest first.
    pub async fn events(
        &self,
        tenant: &TenantId,
        model: &str,
        id: &str,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page<EventView>, StoreError> {
        let op = read::ListEvents {
            tenant: tenant.clone(),
            model: model.to_owned(),
            id: id.to_owned(),
            limit,
            cursor,
        };
        self.pool.read(&op).await
    }

    /// Deletes the instance with its ids, links, pending links and events.
    pub async fn delete_instance(
        &self,
        tenant: &TenantId,
        model: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let op = read::DeleteInstance {
            tenant: tenant.clone(),
            model: model.to_owned(),
            id: id.to_owned(),
        };
        self.detached(move |pool| async move { pool.write(op).await })
            .await
    }

    /// Runs a write on its own task: dropping the caller's future does not cancel it halfway.
    async fn detached<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        tokio::spawn(work(self.pool.clone()))
            .await
            .map_err(|error| StoreError::Internal(format!("store task failed: {error}")))?
    }
}

fn tenant(row: TenantRow) -> Tenant {
    Tenant {
        id: TenantId(row.id.into()),
        slug: row.slug,
        display_name: row.display_name,
        created_at: read::micros_to_time(row.created_at),
    }
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A new opaque id: a UUIDv7, so ids sort by creation time.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A batch item checked and ready to run.
enum Prepared {
    Identify(identify::Identify),
    Event(events::Track),
}

struct Ping;

impl Operation for Ping {
    type Output = ();

    async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
        Ok(db.ping().await?)
    }
}

struct CreateTenant {
    row: TenantRow,
}

impl Operation for CreateTenant {
    type Output = TenantRow;

    async fn run(&self, db: &mut Db<'_>) -> Result<TenantRow, TxError> {
        if db.tenant_by_slug(&self.row.slug).await?.is_some() {
            return Err(StoreError::Conflict {
                code: "tenant_exists",
                message: format!("tenant `{}` exists already", self.row.slug),
                details: Vec::new(),
            }
            .into());
        }
        db.insert_tenant(&self.row).await?;
        Ok(self.row.clone())
    }
}

struct TenantBySlug(String);

impl Operation for TenantBySlug {
    type Output = Option<TenantRow>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Option<TenantRow>, TxError> {
        Ok(db.tenant_by_slug(&self.0).await?)
    }
}

struct AllTenants;

impl Operation for AllTenants {
    type Output = Vec<TenantRow>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Vec<TenantRow>, TxError> {
        Ok(db.all_tenants().await?)
    }
}
