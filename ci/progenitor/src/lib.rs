//! The clients progenitor generates from `functionary openapi` (see build.rs), in both interface
//! styles. Compiling this crate is the check: the spec is accepted, the generated code builds, and
//! the calls below have the shapes the spec promises (typed bodies, string-or-integer ids, typed
//! error bodies). Nothing here runs; ci/ts-client exercises a generated client against a server.

#![allow(clippy::all, dead_code, unused)]

/// `client.identify(&body)`: progenitor's default interface.
pub mod positional {
    include!(concat!(env!("OUT_DIR"), "/positional.rs"));
}

/// `client.identify().body(body).send()`.
pub mod builder {
    include!(concat!(env!("OUT_DIR"), "/builder.rs"));
}

/// Calls through the positional client, never run: they must compile.
async fn positional_calls(
    client: &positional::Client,
) -> Result<(), positional::Error<positional::types::ErrorBody>> {
    use positional::types::{
        CreateKeyRequest, CreateTenantRequest, EventRequest, IdentifyRequest,
        IdentifyRequestIdsItem, Scope,
    };

    let tenant = client
        .create_tenant(&CreateTenantRequest {
            slug: "acme".parse().expect("a valid slug"),
            display_name: None,
            config: None,
        })
        .await?;
    let _: Option<i64> = tenant.config_version;
    let _ = client
        .put_config("acme", "models: []\n".to_string())
        .await?;
    let key = client
        .issue_key(
            "acme",
            &CreateKeyRequest {
                name: None,
                scopes: vec![Scope::Ingest, Scope::Read],
            },
        )
        .await?;
    let _: &str = &key.token;

    // ids are strings or integers
    let body = IdentifyRequest {
        model: "customer".parse().expect("a valid model name"),
        ids: vec![
            IdentifyRequestIdsItem::String("usr_1".parse().expect("a valid id")),
            IdentifyRequestIdsItem::Int64(42),
        ],
        child_ids: vec![],
        child_model: None,
        display_name: None,
        parent_ids: vec![],
        parent_model: None,
        properties: serde_json::Map::new(),
        timestamp: None,
    };
    match client.identify(&body).await {
        Ok(done) => {
            let _: bool = done.created;
            let _: u64 = done.pending;
        }
        // a typed error envelope: `error.error.code`
        Err(positional::Error::ErrorResponse(error)) => {
            let _: u16 = error.status().as_u16();
            let _: &str = &error.error.code;
        }
        Err(other) => return Err(other),
    }
    let event: EventRequest = serde_json::from_value(serde_json::json!({
        "name": "sign_up", "ids": ["usr_1", 42]
    }))
    .expect("an event request");
    let result = client.track(&event).await?;
    let _: bool = result.accepted;
    let instance = client.get_instance("customer", "42").await?;
    let _: &Vec<String> = &instance.ids;
    let _: chrono::DateTime<chrono::Utc> = instance.created_at;
    Ok(())
}

/// The same through the builder client.
async fn builder_calls(
    client: &builder::Client,
) -> Result<(), builder::Error<builder::types::ErrorBody>> {
    let done = client
        .identify()
        .body(builder::types::IdentifyRequest {
            model: "customer".parse().expect("a valid model name"),
            ids: vec![builder::types::IdentifyRequestIdsItem::Int64(42)],
            child_ids: vec![],
            child_model: None,
            display_name: None,
            parent_ids: vec![],
            parent_model: None,
            properties: serde_json::Map::new(),
            timestamp: None,
        })
        .send()
        .await?;
    let _: bool = done.created;
    let page = client
        .list_events()
        .model("customer")
        .id("42")
        .send()
        .await?;
    let _: usize = page.events.len();
    Ok(())
}
