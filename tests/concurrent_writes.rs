//! Many concurrent writes of which some break a rule, on both backends: every caller gets the
//! answer to its own call, and exactly the calls answered `Ok` are stored. On SQLite the calls
//! queued together share one transaction (group commit), each in a savepoint of its own, so a
//! refused call must not take the others down with it, nor leave half a write behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use functionary_store::{IdentifyOutcome, StoreError};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::support::{TestStore, on_both_backends};

/// Concurrent calls per round.
const CALLS: usize = 64;
const ROUNDS: usize = 3;

/// What a call of a round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Identifies a new customer: succeeds.
    Create,
    /// Names the ids of two existing customers: 409 `ids_conflict`, before any write.
    Conflict,
    /// Creates an organization that names its own id as a child: 422 `self_link`, after the
    /// instance and its id were written.
    SelfLink,
}

fn kind(call: usize) -> Kind {
    match call % 8 {
        0 => Kind::Conflict,
        4 => Kind::SelfLink,
        _ => Kind::Create,
    }
}

fn created_id(round: usize, call: usize) -> String {
    format!("r{round}-new-{call}")
}

fn self_linked_id(round: usize, call: usize) -> String {
    format!("r{round}-self-{call}")
}

/// The two existing customers a conflicting call names.
fn conflicting_ids(round: usize, call: usize) -> [String; 2] {
    [
        format!("r{round}-left-{call}"),
        format!("r{round}-right-{call}"),
    ]
}

fn body(round: usize, call: usize) -> Value {
    match kind(call) {
        Kind::Create => json!({
            "model": "customer",
            "ids": [created_id(round, call)],
            "properties": {"age": call},
        }),
        Kind::Conflict => json!({
            "model": "customer",
            "ids": conflicting_ids(round, call),
            "properties": {"age": call},
        }),
        Kind::SelfLink => json!({
            "model": "organization",
            "ids": [self_linked_id(round, call)],
            "childIds": [self_linked_id(round, call)],
        }),
    }
}

/// Starts every call of the round at once and collects the answers, in call order.
async fn run_round(t: &Arc<TestStore>, round: usize) -> Vec<Result<IdentifyOutcome, StoreError>> {
    let barrier = Arc::new(Barrier::new(CALLS));
    let tasks: Vec<_> = (0..CALLS)
        .map(|call| {
            let t = Arc::clone(t);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                t.identify(body(round, call)).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(CALLS);
    for task in tasks {
        answers.push(task.await.expect("identify task"));
    }
    answers
}

async fn mixed_successes_and_refusals(t: TestStore) {
    let t = Arc::new(t);
    // Customers stored by all rounds: the ones the calls created and the existing ones.
    let mut created_in_all = 0;
    for round in 0..ROUNDS {
        // The customers the conflicting calls name, each with its instance.
        let mut existing = BTreeMap::new();
        for call in (0..CALLS).filter(|call| kind(*call) == Kind::Conflict) {
            for id in conflicting_ids(round, call) {
                let outcome = t
                    .identify(json!({"model": "customer", "ids": [id]}))
                    .await
                    .expect("an existing customer");
                existing.insert(id, outcome.instance_id);
            }
        }

        let answers = run_round(&t, round).await;

        let mut instances = BTreeSet::new();
        for (call, answer) in answers.into_iter().enumerate() {
            match (kind(call), answer) {
                (Kind::Create, Ok(outcome)) => {
                    let id = created_id(round, call);
                    assert!(outcome.created, "call {call} did not create: {outcome:?}");
                    assert_eq!(outcome.ids, [id.as_str()], "call {call} got another answer");
                    assert!(
                        instances.insert(outcome.instance_id.clone()),
                        "two calls answered with instance {}",
                        outcome.instance_id
                    );
                    let view = t
                        .get("customer", &id)
                        .await
                        .expect("a created id is stored");
                    assert_eq!(view.instance_id, outcome.instance_id);
                    assert_eq!(view.ids, [id.as_str()]);
                    assert_eq!(view.properties["age"], json!(call));
                }
                (Kind::Conflict, Err(StoreError::Conflict { code, details, .. })) => {
                    assert_eq!(code, "ids_conflict");
                    let named: BTreeMap<String, String> = details
                        .into_iter()
                        .map(|detail| {
                            (
                                detail.id.expect("a conflict names an id"),
                                detail.instance_id.expect("a conflict names an instance"),
                            )
                        })
                        .collect();
                    let expected: BTreeMap<String, String> = conflicting_ids(round, call)
                        .into_iter()
                        .map(|id| {
                            let instance = existing[&id].clone();
                            (id, instance)
                        })
                        .collect();
                    assert_eq!(named, expected, "call {call} got another conflict");
                    for (id, instance) in &expected {
                        let view = t.get("customer", id).await.expect("the customer is kept");
                        assert_eq!(&view.instance_id, instance);
                        assert_eq!(view.ids, [id.as_str()], "the conflict changed {id}");
                        assert!(view.properties.is_empty(), "the conflict changed {id}");
                    }
                }
                (Kind::SelfLink, Err(StoreError::Invalid { code, details, .. })) => {
                    assert_eq!(code, "self_link");
                    let id = self_linked_id(round, call);
                    assert_eq!(details[0].id.as_deref(), Some(id.as_str()));
                    for model in ["organization", "customer"] {
                        let stored = t.get(model, &id).await;
                        assert!(
                            matches!(stored, Err(StoreError::NotFound { .. })),
                            "refused call {call} left {id} behind in {model}: {stored:?}"
                        );
                    }
                }
                (kind, answer) => panic!("call {call} ({kind:?}) answered {answer:?}"),
            }
        }
        let created = (0..CALLS)
            .filter(|call| kind(*call) == Kind::Create)
            .count();
        assert_eq!(instances.len(), created);
        created_in_all += created + existing.len();
    }

    // Nothing else was stored: the customers of the rounds, no organization at all.
    assert_eq!(count(&t, "customer").await, created_in_all);
    assert_eq!(count(&t, "organization").await, 0);
}

/// How many instances of `model` the tenant has.
async fn count(t: &TestStore, model: &str) -> usize {
    let mut found = 0;
    let mut cursor = None;
    loop {
        let page = t
            .store
            .instances(&t.tenant, model, 100, cursor)
            .await
            .expect("instances page");
        found += page.items.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return found,
        }
    }
}

on_both_backends! {
    async fn concurrent_writes_succeed_or_fail_alone(t) {
        mixed_successes_and_refusals(t).await;
    }
}
