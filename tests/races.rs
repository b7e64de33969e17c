//! Concurrent identify calls on overlapping new ids (DESIGN §2 rule 5), on both backends.
//!
//! Each round starts 48 calls at once on ids nobody holds yet, spread over two store handles on
//! the same database (two server processes, as far as the database can tell). Whatever order the
//! database puts them in, the outcome must be one the rules allow: every id is held by exactly
//! one instance, the instance every successful call reported; each instance is created by
//! exactly one call; and the only refusal is the documented 409 `ids_conflict`, naming ids that
//! really belong to different instances.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use functionary_store::{IdentifyOutcome, Store, StoreError, StoreOptions};
use serde_json::json;
use tokio::sync::Barrier;

use crate::support::{Backend, TestStore};

/// Concurrent calls per round.
const TASKS: usize = 48;
/// Fresh ids per round of overlapping calls.
const POOL: usize = 12;
/// Rounds per test, each on ids of its own.
const ROUNDS: usize = 4;
const MODEL: &str = "customer";
/// Stores opened on the same database: calls of one handle queue in its pool (SQLite: behind its
/// one writer), calls of different handles meet only in the database.
const HANDLES: usize = 2;

/// One call of a round: the ids it named and what the store answered.
type Call = (Vec<String>, Result<IdentifyOutcome, StoreError>);

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    calls: usize,
    created: usize,
    updated: usize,
    conflicts: usize,
    instances: usize,
}

impl Counts {
    fn add(&mut self, other: Self) {
        self.calls += other.calls;
        self.created += other.created;
        self.updated += other.updated;
        self.conflicts += other.conflicts;
        self.instances += other.instances;
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "calls={} created={} updated={} conflicts={} instances={}",
            self.calls, self.created, self.updated, self.conflicts, self.instances
        )
    }
}

/// A small deterministic generator, so each round names the same ids on every run (only the
/// order the database applies them in varies).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).expect("31 bits fit a usize") % bound
    }
}

/// The ids of each call of round `round`: 1–3 distinct ids of a pool of [`POOL`], so that many
/// calls share ids and single-id calls make separate instances that multi-id calls then bridge.
fn overlapping_calls(round: usize) -> Vec<Vec<String>> {
    let mut random = Lcg(0x5eed + round as u64);
    (0..TASKS)
        .map(|task| {
            // Every id of the pool is the first id of some calls.
            let mut picked = vec![task % POOL];
            let wanted = match random.below(10) {
                0..=3 => 1,
                4..=7 => 2,
                _ => 3,
            };
            while picked.len() < wanted {
                let next = random.below(POOL);
                if !picked.contains(&next) {
                    picked.push(next);
                }
            }
            picked
                .into_iter()
                .map(|k| format!("r{round}-{k}"))
                .collect()
        })
        .collect()
}

/// Every call names the same single new id.
fn same_id_calls(round: usize) -> Vec<Vec<String>> {
    vec![vec![format!("solo{round}")]; TASKS]
}

/// [`HANDLES`] stores on one new database (SQLite) or the test database (PostgreSQL), all on one
/// new tenant, as if each were a server process of its own.
async fn open_handles(backend: Backend) -> Option<Vec<Arc<TestStore>>> {
    let first = TestStore::open(backend).await?;
    let url = match &first.dir {
        // The harness's SQLite file.
        Some(dir) => format!("sqlite://{}", dir.path().join("test.db").display()),
        None => crate::support::postgres_url()?,
    };
    let mut handles = Vec::with_capacity(HANDLES);
    for _ in 1..HANDLES {
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("another handle on the database opens");
        handles.push(Arc::new(TestStore {
            store,
            tenant: first.tenant.clone(),
            config: Arc::clone(&first.config),
            backend,
            dir: None,
        }));
    }
    handles.insert(0, Arc::new(first));
    Some(handles)
}

/// Starts every call at once (a barrier releases them together), spread over the handles, and
/// collects the answers.
async fn run_concurrently(handles: &[Arc<TestStore>], calls: Vec<Vec<String>>) -> Vec<Call> {
    let barrier = Arc::new(Barrier::new(calls.len()));
    let tasks: Vec<_> = calls
        .into_iter()
        .enumerate()
        .map(|(task, ids)| {
            let t = Arc::clone(&handles[task % handles.len()]);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let result = t.identify(json!({"model": MODEL, "ids": ids})).await;
                (ids, result)
            })
        })
        .collect();
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        done.push(task.await.expect("identify task"));
    }
    done
}

/// Every instance of the model whose ids start with `prefix`, by instance id, with its ids.
async fn instances_with_prefix(t: &TestStore, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = t
            .store
            .instances(&t.tenant, MODEL, 100, cursor)
            .await
            .expect("instances page");
        for view in page.items {
            assert!(
                !view.ids.is_empty(),
                "instance {} has no ids at all",
                view.instance_id
            );
            if view.ids.iter().any(|id| id.starts_with(prefix)) {
                let previous = found.insert(view.instance_id.clone(), view.ids);
                assert!(
                    previous.is_none(),
                    "instance {} listed twice",
                    view.instance_id
                );
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return found,
        }
    }
}

/// Checks the answers of one round against what the store holds afterwards; `prefix` is what the
/// round's ids (and no other round's) start with.
async fn check_round(t: &TestStore, prefix: &str, calls: &[Call]) -> Counts {
    let mut counts = Counts {
        calls: calls.len(),
        ..Counts::default()
    };
    // The holder of each id, as the successful calls reported it.
    let mut reported: BTreeMap<&str, &str> = BTreeMap::new();
    let mut created_per_instance: BTreeMap<&str, usize> = BTreeMap::new();
    let mut requested_ok: BTreeSet<&str> = BTreeSet::new();
    let mut conflicts = Vec::new();
    for (ids, result) in calls {
        match result {
            Ok(outcome) => {
                assert_eq!(outcome.model, MODEL);
                if outcome.created {
                    counts.created += 1;
                    *created_per_instance
                        .entry(outcome.instance_id.as_str())
                        .or_default() += 1;
                } else {
                    counts.updated += 1;
                }
                for id in ids {
                    assert!(
                        outcome.ids.contains(id),
                        "call {ids:?} answered {outcome:?}, without its own id {id}"
                    );
                    requested_ok.insert(id);
                }
                for id in &outcome.ids {
                    let holder = *reported.entry(id).or_insert(&outcome.instance_id);
                    assert_eq!(
                        holder, outcome.instance_id,
                        "two successful calls put id {id} in different instances"
                    );
                }
            }
            Err(StoreError::Conflict { code, details, .. }) if *code == "ids_conflict" => {
                counts.conflicts += 1;
                conflicts.push((ids, details));
            }
            Err(other) => panic!(
                "call {ids:?} failed with {} ({other:?}); only 409 ids_conflict is allowed",
                other.code()
            ),
        }
    }

    // What the store holds afterwards.
    let instances = instances_with_prefix(t, prefix).await;
    counts.instances = instances.len();
    let mut holder_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (instance, ids) in &instances {
        for id in ids {
            if let Some(other) = holder_of.insert(id, instance) {
                panic!("id {id} is held by two instances: {other} and {instance}");
            }
        }
    }
    for (id, holder) in &holder_of {
        let view = t.get(MODEL, id).await.expect("a held id resolves");
        assert_eq!(
            view.instance_id, *holder,
            "id {id} resolves elsewhere than listed"
        );
    }

    // (a) every id a successful call reported is held by the instance it reported.
    for (id, holder) in &reported {
        assert_eq!(
            holder_of.get(id),
            Some(holder),
            "a successful call put id {id} in {holder}; the store holds it in {:?}",
            holder_of.get(id)
        );
    }
    let held: BTreeSet<&str> = holder_of.keys().copied().collect();
    assert_eq!(
        held, requested_ok,
        "the ids held must be exactly the ids of the successful calls"
    );

    // (b) exactly one `created: true` per instance that exists.
    for instance in instances.keys() {
        assert_eq!(
            created_per_instance.get(instance.as_str()).copied(),
            Some(1),
            "instance {instance} must have been created by exactly one call"
        );
    }
    assert_eq!(
        counts.created,
        instances.len(),
        "a call answered created for an instance that does not exist: {created_per_instance:?}"
    );

    // (c) is checked above; (d) every 409 names ids of at least two different instances, each
    // the id's real holder.
    for (ids, details) in conflicts {
        let mut named = BTreeSet::new();
        for detail in details {
            let id = detail.id.as_deref().expect("a conflict detail names an id");
            let instance = detail
                .instance_id
                .as_deref()
                .expect("a conflict detail names an instance");
            assert!(
                ids.iter().any(|asked| asked == id),
                "409 for {ids:?} names id {id}, which the call did not send"
            );
            assert_eq!(
                holder_of.get(id).copied(),
                Some(instance),
                "409 for {ids:?} says {id} belongs to {instance}; it does not"
            );
            named.insert(instance);
        }
        assert!(
            named.len() >= 2,
            "409 for {ids:?} names fewer than two instances: {details:?}"
        );
    }
    counts
}

/// Rounds of 48 calls on 1–3 ids drawn from 12 new ids.
async fn overlapping_ids(backend: Backend) -> Option<Counts> {
    let handles = open_handles(backend).await?;
    let t = &handles[0];
    let mut total = Counts::default();
    for round in 0..ROUNDS {
        let calls = run_concurrently(&handles, overlapping_calls(round)).await;
        total.add(check_round(t, &format!("r{round}-"), &calls).await);
    }
    assert!(
        total.conflicts > 0,
        "no call conflicted in {ROUNDS} rounds: the race did not reach the conflict path ({total})"
    );
    Some(total)
}

/// Rounds of 48 calls on one and the same new id: one creates, every other one updates.
async fn same_id(backend: Backend) -> Option<Counts> {
    let handles = open_handles(backend).await?;
    let t = &handles[0];
    let mut total = Counts::default();
    for round in 0..ROUNDS {
        let calls = run_concurrently(&handles, same_id_calls(round)).await;
        let counts = check_round(t, &format!("solo{round}"), &calls).await;
        assert_eq!(
            (
                counts.created,
                counts.updated,
                counts.conflicts,
                counts.instances
            ),
            (1, TASKS - 1, 0, 1),
            "one id can not conflict with itself"
        );
        total.add(counts);
    }
    Some(total)
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_identify_on_overlapping_new_ids() {
        let counts = overlapping_ids(Backend::Sqlite)
            .await
            .expect("SQLite is always available");
        println!("races sqlite overlapping ids: {counts}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_identify_on_one_new_id() {
        let counts = same_id(Backend::Sqlite)
            .await
            .expect("SQLite is always available");
        println!("races sqlite one id: {counts}");
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_identify_on_overlapping_new_ids() {
        if let Some(counts) = overlapping_ids(Backend::Postgres).await {
            println!("races postgres overlapping ids: {counts}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_identify_on_one_new_id() {
        if let Some(counts) = same_id(Backend::Postgres).await {
            println!("races postgres one id: {counts}");
        }
    }
}
