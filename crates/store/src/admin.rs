//! Tenant configs (versioned) and API key records.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::TenantId;
use crate::db::{Db, Operation, on_db};
use crate::error::{StoreError, TxError};
use crate::read::micros_to_time;
use crate::schema::{api_keys, config_versions};

/// One accepted config of a tenant. The highest version is the active one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVersion {
    pub version: i64,
    pub yaml: String,
    pub created_at: DateTime<Utc>,
}

/// The record of an API key: the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: String,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = config_versions)]
struct ConfigRow {
    tenant_id: String,
    version: i64,
    yaml: String,
    created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
struct KeyRow {
    tenant_id: String,
    key_id: String,
    name: Option<String>,
    scopes: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<ConfigRow> for ConfigVersion {
    fn from(row: ConfigRow) -> Self {
        Self {
            version: row.version,
            yaml: row.yaml,
            created_at: micros_to_time(row.created_at),
        }
    }
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> Self {
        Self {
            key_id: row.key_id,
            name: row.name,
            scopes: row
                .scopes
                .split(',')
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect(),
            created_at: micros_to_time(row.created_at),
            revoked_at: row.revoked_at.map(micros_to_time),
        }
    }
}

async fn latest_config(db: &mut Db<'_>, tenant: &str) -> Result<Option<ConfigRow>, TxError> {
    Ok(on_db!(db, conn => {
        config_versions::table
            .filter(config_versions::tenant_id.eq(tenant))
            .order(config_versions::version.desc())
            .select(ConfigRow::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

/// Stores a new config version (the caller checked it); returns its number.
pub(crate) struct PutConfig {
    pub tenant: TenantId,
    pub yaml: String,
    pub now: i64,
}

impl Operation for PutConfig {
    type Output = i64;

    async fn run(&self, db: &mut Db<'_>) -> Result<i64, TxError> {
        let version = latest_config(db, self.tenant.as_str())
            .await?
            .map_or(1, |row| row.version + 1);
        let row = ConfigRow {
            tenant_id: self.tenant.as_str().to_owned(),
            version,
            yaml: self.yaml.clone(),
            created_at: self.now,
        };
        on_db!(db, conn => diesel::insert_into(config_versions::table).values(&row).execute(conn).await)?;
        Ok(version)
    }
}

pub(crate) struct ActiveConfig(pub TenantId);

impl Operation for ActiveConfig {
    type Output = Option<ConfigVersion>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Option<ConfigVersion>, TxError> {
        Ok(latest_config(db, self.0.as_str())
            .await?
            .map(ConfigVersion::from))
    }
}

/// One stored version of a tenant's config.
pub(crate) struct ConfigAt {
    pub tenant: TenantId,
    pub version: i64,
}

impl Operation for ConfigAt {
    type Output = Option<ConfigVersion>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Option<ConfigVersion>, TxError> {
        let row: Option<ConfigRow> = on_db!(db, conn => {
            config_versions::table
                .filter(config_versions::tenant_id.eq(self.tenant.as_str()))
                .filter(config_versions::version.eq(self.version))
                .select(ConfigRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row.map(ConfigVersion::from))
    }
}

pub(crate) struct ActiveConfigVersion(pub TenantId);

impl Operation for ActiveConfigVersion {
    type Output = Option<i64>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Option<i64>, TxError> {
        Ok(on_db!(db, conn => {
            config_versions::table
                .filter(config_versions::tenant_id.eq(self.0.as_str()))
                .select(diesel::dsl::max(config_versions::version))
                .first::<Option<i64>>(conn)
                .await
        })?)
    }
}

pub(crate) struct CreateKey {
    pub tenant: TenantId,
    pub key_id: String,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub now: i64,
}

impl Operation for CreateKey {
    type Output = ApiKey;

    async fn run(&self, db: &mut Db<'_>) -> Result<ApiKey, TxError> {
        let row = KeyRow {
            tenant_id: self.tenant.as_str().to_owned(),
            key_id: self.key_id.clone(),
            name: self.name.clone(),
            scopes: self.scopes.join(","),
            created_at: self.now,
            revoked_at: None,
        };
        on_db!(db, conn => diesel::insert_into(api_keys::table).values(&row).execute(conn).await)?;
        Ok(row.into())
    }
}

pub(crate) struct ListKeys(pub TenantId);

impl Operation for ListKeys {
    type Output = Vec<ApiKey>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Vec<ApiKey>, TxError> {
        let rows: Vec<KeyRow> = on_db!(db, conn => {
            api_keys::table
                .filter(api_keys::tenant_id.eq(self.0.as_str()))
                .order((api_keys::created_at, api_keys::key_id))
                .select(KeyRow::as_select())
                .load(conn)
                .await
        })?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }
}

/// Looks a key up; `None` when this tenant has no such key.
pub(crate) struct GetKey {
    pub tenant: TenantId,
    pub key_id: String,
}

impl Operation for GetKey {
    type Output = Option<ApiKey>;

    async fn run(&self, db: &mut Db<'_>) -> Result<Option<ApiKey>, TxError> {
        let row: Option<KeyRow> = on_db!(db, conn => {
            api_keys::table
                .filter(api_keys::tenant_id.eq(self.tenant.as_str()))
                .filter(api_keys::key_id.eq(&self.key_id))
                .select(KeyRow::as_select())
                .first(conn)
                .await
                .optional()
        })?;
        Ok(row.map(ApiKey::from))
    }
}

/// Revokes a key (idempotent); 404 when the tenant has no such key.
pub(crate) struct RevokeKey {
    pub tenant: TenantId,
    pub key_id: String,
    pub now: i64,
}

impl Operation for RevokeKey {
    type Output = ();

    async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
        let found = on_db!(db, conn => {
            api_keys::table
                .filter(api_keys::tenant_id.eq(self.tenant.as_str()))
                .filter(api_keys::key_id.eq(&self.key_id))
                .select(api_keys::revoked_at)
                .first::<Option<i64>>(conn)
                .await
                .optional()
        })?;
        match found {
            None => Err(StoreError::not_found(
                "key_not_found",
                format!("no key {:?}", self.key_id),
            )
            .into()),
            Some(Some(_)) => Ok(()),
            Some(None) => {
                on_db!(db, conn => {
                    diesel::update(
                        api_keys::table
                            .filter(api_keys::tenant_id.eq(self.tenant.as_str()))
                            .filter(api_keys::key_id.eq(&self.key_id)),
                    )
                    .set(api_keys::revoked_at.eq(Some(self.now)))
                    .execute(conn)
                    .await
                })?;
                Ok(())
            }
        }
    }
}
