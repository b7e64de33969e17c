-- Identity store. Every table is keyed by tenant_id first and every query names one tenant, so
-- the tables can be distributed by tenant_id (Citus) without changing a query.
-- Ids are opaque text (UUIDv7 for rows we create); times are microseconds since the Unix epoch.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,
    display_name TEXT,
    created_at   BIGINT NOT NULL
);

CREATE TABLE instances (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    model           TEXT NOT NULL,
    display_name    TEXT,
    -- client timestamp of the stored display name (last write wins by it)
    display_name_at BIGINT,
    -- the properties object, JSON text
    properties      TEXT NOT NULL,
    -- JSON object: property key -> client timestamp of its last write, removals included, so an
    -- older update can neither overwrite a newer value nor resurrect a removed key
    property_clock  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX instances_by_model ON instances (tenant_id, model, id);

-- The ids (aliases) of instances: unique per (tenant, model), enforced here.
CREATE TABLE instance_ids (
    tenant_id   TEXT NOT NULL,
    model       TEXT NOT NULL,
    external_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, model, external_id),
    FOREIGN KEY (tenant_id, instance_id) REFERENCES instances (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX instance_ids_by_external_id ON instance_ids (tenant_id, external_id);
CREATE INDEX instance_ids_by_instance ON instance_ids (tenant_id, instance_id, external_id);

CREATE TABLE edges (
    tenant_id  TEXT NOT NULL,
    parent_id  TEXT NOT NULL,
    child_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, parent_id, child_id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES instances (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, child_id) REFERENCES instances (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX edges_by_child ON edges (tenant_id, child_id);

-- Links that name an id no instance holds yet; paired when the id is identified.
CREATE TABLE pending_links (
    tenant_id          TEXT NOT NULL,
    owner_id           TEXT NOT NULL,
    -- what the awaited instance will be to the owner
    role               TEXT NOT NULL CHECK (role IN ('child', 'parent')),
    target_external_id TEXT NOT NULL,
    -- the model the awaited id must appear in; '' for any model
    target_model       TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, owner_id, role, target_external_id, target_model),
    FOREIGN KEY (tenant_id, owner_id) REFERENCES instances (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX pending_links_by_target ON pending_links (tenant_id, target_external_id);

CREATE TABLE events (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    properties  TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    message_id  TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, instance_id) REFERENCES instances (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX events_by_instance ON events (tenant_id, instance_id, occurred_at DESC, id DESC);
CREATE UNIQUE INDEX events_by_message_id ON events (tenant_id, message_id) WHERE message_id IS NOT NULL;
