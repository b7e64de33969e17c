-- Tenant configs (every accepted version is kept; the highest is active) and API keys.

CREATE TABLE config_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    yaml       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- A key is a signed token; the row holds what the token can not: its name and revocation.
CREATE TABLE api_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id     TEXT NOT NULL,
    name       TEXT,
    -- comma-separated scopes: ingest, read
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (tenant_id, key_id)
);
