// The tables of `migrations/*/…/up.sql`, in the form `diesel print-schema` writes them.

diesel::table! {
    api_keys (tenant_id, key_id) {
        tenant_id -> Text,
        key_id -> Text,
        name -> Nullable<Text>,
        scopes -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    config_versions (tenant_id, version) {
        tenant_id -> Text,
        version -> BigInt,
        yaml -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    edges (tenant_id, parent_id, child_id) {
        tenant_id -> Text,
        parent_id -> Text,
        child_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    events (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        instance_id -> Text,
        name -> Text,
        properties -> Text,
        occurred_at -> BigInt,
        received_at -> BigInt,
        message_id -> Nullable<Text>,
    }
}

diesel::table! {
    instance_ids (tenant_id, model, external_id) {
        tenant_id -> Text,
        model -> Text,
        external_id -> Text,
        instance_id -> Text,
    }
}

diesel::table! {
    instances (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        model -> Text,
        display_name -> Nullable<Text>,
        display_name_at -> Nullable<BigInt>,
        properties -> Text,
        property_clock -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    pending_links (tenant_id, owner_id, role, target_external_id, target_model) {
        tenant_id -> Text,
        owner_id -> Text,
        role -> Text,
        target_external_id -> Text,
        target_model -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    tenants (id) {
        id -> Text,
        slug -> Text,
        display_name -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    edges,
    events,
    instance_ids,
    instances,
    pending_links,
    tenants
);
