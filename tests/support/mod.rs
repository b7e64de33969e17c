//! Shared test helpers: a fresh store on either backend, with one tenant of its own.
//!
//! SQLite runs everywhere on a temporary file. PostgreSQL runs when
//! `FUNCTIONARY_TEST_DATABASE_URL` names a database (`.ci/run` creates one per run); each test
//! gets its own tenant in it, so tests are isolated the same way tenants are. Without the
//! variable the PostgreSQL tests are skipped with a note on stderr, except under CI (`CI` set),
//! where a missing PostgreSQL is a failure.

#![expect(
    dead_code,
    reason = "each test module uses a different part of the helpers"
)]

use std::io::Write;
use std::sync::{Arc, Once};

use functionary_config::CompiledConfig;
use functionary_store::{
    EventInput, EventOutcome, IdentifyInput, IdentifyOutcome, InstanceView, Store, StoreError,
    StoreOptions, TenantId,
};
use serde_json::Value;

pub const POSTGRES_URL_VAR: &str = "FUNCTIONARY_TEST_DATABASE_URL";

/// The config of the behavioural tests: two models with a `parents` rule, one without, and a
/// declared event.
pub const TEST_CONFIG: &str = r#"
models:
  - name: organization
    schema: {type: object, properties: {plan: {enum: [free, pro, enterprise]}}}
  - name: customer
    parents: [organization]
    schema:
      type: object
      properties:
        email: {type: string, format: email}
        age: {type: integer, minimum: 0}
  - name: project
events:
  - name: sign_up
    forModels: [customer]
    schema: {type: object, required: [plan], properties: {plan: {type: string}}}
settings:
  blockedIds: [guest]
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store on one backend with a tenant of its own and the test config.
pub struct TestStore {
    pub store: Store,
    pub tenant: TenantId,
    pub config: Arc<CompiledConfig>,
    pub backend: Backend,
    /// Where the SQLite file lives; kept alive as long as the store.
    pub dir: Option<tempfile::TempDir>,
}

pub fn compile(yaml: &str) -> Arc<CompiledConfig> {
    Arc::new(functionary_config::load_config(yaml, "test").expect("test config compiles"))
}

/// The PostgreSQL URL of the test run, or `None` (with a note) when PostgreSQL tests are skipped.
pub fn postgres_url() -> Option<String> {
    static NOTE: Once = Once::new();
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {POSTGRES_URL_VAR} is not: the PostgreSQL suite must run in CI")
        }
        _ => {
            NOTE.call_once(|| {
                // Straight to stderr: the test harness captures `eprintln!`, not this.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL suite skipped: set {POSTGRES_URL_VAR}=postgres://… to run it"
                );
            });
            None
        }
    }
}

impl TestStore {
    pub async fn open(backend: Backend) -> Option<Self> {
        Self::open_with(backend, TEST_CONFIG, StoreOptions::default()).await
    }

    pub async fn open_with(backend: Backend, config: &str, options: StoreOptions) -> Option<Self> {
        let (store, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (
                    Store::open(&url, options)
                        .await
                        .expect("SQLite store opens"),
                    Some(dir),
                )
            }
            Backend::Postgres => {
                let url = postgres_url()?;
                (
                    Store::open(&url, options)
                        .await
                        .expect("PostgreSQL store opens"),
                    None,
                )
            }
        };
        let slug = format!("t-{}", unique_suffix());
        let tenant = store
            .create_tenant(&slug, None)
            .await
            .expect("tenant created")
            .id;
        Some(Self {
            store,
            tenant,
            config: compile(config),
            backend,
            dir,
        })
    }

    /// Another tenant in the same database, with the same config.
    pub async fn other_tenant(&self) -> TenantId {
        let slug = format!("t-{}", unique_suffix());
        self.store
            .create_tenant(&slug, None)
            .await
            .expect("tenant created")
            .id
    }

    pub async fn identify(&self, body: Value) -> Result<IdentifyOutcome, StoreError> {
        self.identify_as(&self.tenant, body).await
    }

    pub async fn identify_as(
        &self,
        tenant: &TenantId,
        body: Value,
    ) -> Result<IdentifyOutcome, StoreError> {
        let input: IdentifyInput = serde_json::from_value(body).expect("identify body parses");
        self.store
            .identify(tenant, Arc::clone(&self.config), input)
            .await
    }

    pub async fn track(&self, body: Value) -> Result<EventOutcome, StoreError> {
        let input: EventInput = serde_json::from_value(body).expect("event body parses");
        self.store
            .track(&self.tenant, Arc::clone(&self.config), input)
            .await
    }

    pub async fn get(&self, model: &str, id: &str) -> Result<InstanceView, StoreError> {
        self.store.instance(&self.tenant, model, id).await
    }
}

/// A suffix no other test of this run uses, for tenant slugs.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "{:x}-{}-{}",
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Defines each test twice: `sqlite::NAME` and `postgres::NAME`, with `$store` a [`TestStore`].
macro_rules! on_both_backends {
    ($(async fn $name:ident($store:ident) $body:block)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $store = $crate::support::TestStore::open($crate::support::Backend::Sqlite)
                        .await
                        .expect("SQLite is always available");
                    $body
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($store) =
                        $crate::support::TestStore::open($crate::support::Backend::Postgres).await
                    else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;
