//! Tenant isolation at the store: two tenants with the same model names and the same ids, their
//! calls alternating over a pool of ONE connection (so a leak through connection state would
//! show), never see or change each other's data.

use std::sync::Arc;

use functionary_store::{EventOutcome, StoreOptions};
use serde_json::{Value, json};

use crate::support::{Backend, TEST_CONFIG, TestStore};

async fn alternate_tenants_over_one_connection(backend: Backend) {
    let options = StoreOptions {
        max_connections: 1,
        ..StoreOptions::default()
    };
    let Some(t) = TestStore::open_with(backend, TEST_CONFIG, options).await else {
        return;
    };
    let other = t.other_tenant().await;
    let config = Arc::clone(&t.config);
    for round in 0..15 {
        let mine = t
            .identify(
                json!({"model": "customer", "ids": ["shared", 7], "properties": {"age": round}}),
            )
            .await
            .expect("identify in the first tenant");
        let theirs = t
            .identify_as(&other, json!({"model": "customer", "ids": ["shared", 7], "properties": {"age": 100 + round}}))
            .await
            .expect("identify in the second tenant");
        assert_ne!(
            mine.instance_id, theirs.instance_id,
            "the same ids in two tenants are two instances"
        );
        assert_eq!(mine.created, round == 0);
        assert_eq!(theirs.created, round == 0);
        let input = serde_json::from_value(
            json!({"name": "ping", "ids": [7], "messageId": format!("m-{round}")}),
        )
        .expect("event body");
        match t
            .store
            .track(&other, Arc::clone(&config), input)
            .await
            .expect("event in the second tenant")
        {
            EventOutcome::Accepted {
                instance_id,
                duplicate: false,
                ..
            } => assert_eq!(instance_id, theirs.instance_id),
            outcome => panic!("unexpected {outcome:?}"),
        }
    }
    let mine = t
        .get("customer", "shared")
        .await
        .expect("first tenant's instance");
    let theirs = t
        .store
        .instance(&other, "customer", "shared")
        .await
        .expect("second tenant's instance");
    assert_eq!(Value::Object(mine.properties), json!({"age": 14}));
    assert_eq!(Value::Object(theirs.properties), json!({"age": 114}));
    let my_events = t
        .store
        .events(&t.tenant, "customer", "7", 100, None)
        .await
        .expect("events");
    let their_events = t
        .store
        .events(&other, "customer", "7", 100, None)
        .await
        .expect("events");
    assert!(
        my_events
            .items
            .iter()
            .all(|event| event.name == "onFunctionaryIdentify"),
        "no ping leaked in"
    );
    assert_eq!(my_events.items.len(), 15);
    assert_eq!(
        their_events
            .items
            .iter()
            .filter(|event| event.name == "ping")
            .count(),
        15
    );
    // Deleting in one tenant leaves the other's instance alone.
    t.store
        .delete_instance(&t.tenant, "customer", "shared")
        .await
        .expect("delete");
    assert!(t.store.instance(&other, "customer", "shared").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tenants_alternating_over_one_connection_stay_apart() {
    alternate_tenants_over_one_connection(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tenants_alternating_over_one_connection_stay_apart() {
    alternate_tenants_over_one_connection(Backend::Postgres).await;
}
