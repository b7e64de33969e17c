//! A model check of the identity and event rules (DESIGN §2–3).
//!
//! Random sequences of identify and event calls are run against a fresh store (a tenant of its
//! own; on SQLite a file of its own) and against a small in-memory model of the rules, and every
//! outcome is compared as it happens. The pools are small on purpose: three models, six ids
//! (`1` and `"1"` are the same id), three property keys and five timestamps, so that ids collide
//! across and within models, calls conflict, and writes of one key race by timestamp. At the end
//! of each sequence every instance is read back (its ids, properties, display name, events) and
//! the lists of instances and the store's counters are compared with the model.
//!
//! The sequences come from proptest with a fixed seed, so a run is reproducible; a failure is
//! shrunk to a short sequence, printed as the JSON bodies of its calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use functionary_store::{EventOutcome, IDENTIFY_EVENT, IdentifyOutcome, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Map, Value, json};

use crate::support::{Backend, TestStore, postgres_url};

/// Sequences run per backend; `PROPTEST_CASES` may ask for more (or fewer).
const CASES: u32 = 48;
/// Longest sequence of calls.
const MAX_OPS: usize = 40;
/// The models of `TEST_CONFIG`, in config order (the order events search them in).
const MODELS: [&str; 3] = ["organization", "customer", "project"];
/// The model whose schema requires `age` to be an integer >= 0.
const CUSTOMER: usize = 1;
/// The ids the calls draw from, as sent: integer `1` and text `"1"` are one id.
const IDS: [IdSpec; 6] = [
    IdSpec::Text("a"),
    IdSpec::Text("b"),
    IdSpec::Text("c"),
    IdSpec::Integer(1),
    IdSpec::Integer(2),
    IdSpec::Text("1"),
];
const KEYS: [&str; 3] = ["age", "nick", "tier"];
const DISPLAY_NAMES: [&str; 2] = ["Ada", "Bob"];
/// Explicit timestamps, all in the past: a call without one is newer than all of them.
const TIMESTAMPS: [&str; 5] = [
    "2020-01-01T00:00:00Z",
    "2020-01-01T00:00:01Z",
    "2020-01-01T00:00:02Z",
    "2020-01-01T00:00:03Z",
    "2020-01-01T00:00:04Z",
];
/// The event the sequences track (undeclared, so accepted on any model).
const EVENT: &str = "ping";

#[derive(Debug, Clone, Copy)]
enum IdSpec {
    Text(&'static str),
    Integer(u64),
}

impl IdSpec {
    fn json(self) -> Value {
        match self {
            Self::Text(text) => json!(text),
            Self::Integer(number) => json!(number),
        }
    }

    /// The id as the store keeps it.
    fn text(self) -> String {
        match self {
            Self::Text(text) => text.to_owned(),
            Self::Integer(number) => number.to_string(),
        }
    }
}

/// One call of a sequence; indexes point into the pools above.
#[derive(Clone)]
enum Op {
    Identify {
        model: usize,
        ids: Vec<usize>,
        /// Key → value; `None` sends `null` (removes the key).
        properties: Option<BTreeMap<usize, Option<i64>>>,
        display_name: Option<usize>,
        timestamp: Option<usize>,
    },
    Event {
        model: Option<usize>,
        ids: Vec<usize>,
        timestamp: Option<usize>,
    },
}

impl Op {
    /// The body of the call, as a client would send it.
    fn body(&self) -> Value {
        let ids = |ids: &[usize]| -> Vec<Value> { ids.iter().map(|&id| IDS[id].json()).collect() };
        let mut body = Map::new();
        match self {
            Self::Identify {
                model,
                ids: call_ids,
                properties,
                display_name,
                timestamp,
            } => {
                body.insert("model".into(), json!(MODELS[*model]));
                body.insert("ids".into(), json!(ids(call_ids)));
                if let Some(properties) = properties {
                    let object: Map<String, Value> = properties
                        .iter()
                        .map(|(&key, value)| (KEYS[key].to_owned(), json!(value)))
                        .collect();
                    body.insert("properties".into(), Value::Object(object));
                }
                if let Some(name) = display_name {
                    body.insert("displayName".into(), json!(DISPLAY_NAMES[*name]));
                }
                if let Some(at) = timestamp {
                    body.insert("timestamp".into(), json!(TIMESTAMPS[*at]));
                }
            }
            Self::Event {
                model,
                ids: call_ids,
                timestamp,
            } => {
                body.insert("name".into(), json!(EVENT));
                body.insert("ids".into(), json!(ids(call_ids)));
                if let Some(model) = model {
                    body.insert("model".into(), json!(MODELS[*model]));
                }
                if let Some(at) = timestamp {
                    body.insert("timestamp".into(), json!(TIMESTAMPS[*at]));
                }
            }
        }
        Value::Object(body)
    }
}

/// Printed as the call it makes, so a shrunk failure reads as a script.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self {
            Self::Identify { .. } => "identify",
            Self::Event { .. } => "event",
        };
        write!(f, "{verb} {}", self.body())
    }
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop_oneof![
        2 => Just(None),
        6 => (0..=3_i64).prop_map(Some),
        // Breaks the customer schema (age >= 0) when it wins the merge there.
        2 => Just(Some(-1)),
    ];
    let timestamp = || prop::option::weighted(0.85, 0..TIMESTAMPS.len());
    let identify = (
        0..MODELS.len(),
        prop::collection::vec(0..IDS.len(), 1..=3),
        prop::option::weighted(
            0.8,
            prop::collection::btree_map(0..KEYS.len(), value, 0..=2),
        ),
        prop::option::weighted(0.3, 0..DISPLAY_NAMES.len()),
        timestamp(),
    )
        .prop_map(
            |(model, ids, properties, display_name, timestamp)| Op::Identify {
                model,
                ids,
                properties,
                display_name,
                timestamp,
            },
        );
    let event = (
        prop::option::of(0..MODELS.len()),
        prop::collection::vec(0..IDS.len(), 1..=2),
        timestamp(),
    )
        .prop_map(|(model, ids, timestamp)| Op::Event {
            model,
            ids,
            timestamp,
        });
    prop_oneof![3 => identify, 1 => event]
}

fn sequence() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=MAX_OPS)
}

/// Normalizes the ids of a call: their text, duplicates folded, first occurrence first.
fn normalized(ids: &[usize]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for &id in ids {
        let text = IDS[id].text();
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    texts
}

/// The model's clock: an explicit timestamp is its index; a call without one is "now", newer
/// than every explicit timestamp and than every earlier call.
type Clock = u64;

/// One instance of the model.
#[derive(Debug, Clone)]
struct Instance {
    model: usize,
    ids: BTreeSet<String>,
    properties: Map<String, Value>,
    /// When each key was last written, removals included.
    clock: BTreeMap<String, Clock>,
    display_name: Option<String>,
    display_name_at: Option<Clock>,
    /// Successful identifies (each records an `onFunctionaryIdentify` event).
    identifies: usize,
    /// Accepted `ping` events.
    pings: usize,
}

/// What the store's counters should say.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    created: u64,
    updated: u64,
    conflicts: u64,
    accepted: u64,
    discarded: u64,
}

/// The outcome of a call, with instances named by their number in the model (creation order).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Created(usize),
    Updated(usize),
    /// `ids_conflict`, with which id of the call belongs to which instance.
    Conflict(BTreeSet<(String, usize)>),
    /// A 422 with this code; nothing changed.
    Invalid(&'static str),
    Accepted(usize),
    Discarded,
}

/// The rules of DESIGN §2–3, restricted to what the sequences send (no links).
#[derive(Debug, Default)]
struct Model {
    instances: Vec<Instance>,
    /// (model, id) → instance number.
    holders: BTreeMap<(usize, String), usize>,
    calls: u64,
    tally: Tally,
    /// Identifies refused for their merged properties (the store does not count them).
    invalid: u64,
    /// Events whose ids belong to two instances (the store does not count them).
    event_conflicts: u64,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Expected {
        self.calls += 1;
        let now = 1_000 + self.calls;
        let at = |timestamp: &Option<usize>| -> Clock {
            timestamp.map_or(now, |index| Clock::try_from(index).unwrap_or(Clock::MAX))
        };
        match op {
            Op::Identify {
                model,
                ids,
                properties,
                display_name,
                timestamp,
            } => self.identify(
                *model,
                &normalized(ids),
                properties.as_ref(),
                display_name.map(|name| DISPLAY_NAMES[name]),
                at(timestamp),
            ),
            Op::Event { model, ids, .. } => self.event(*model, &normalized(ids)),
        }
    }

    /// Which id of `ids` belongs to which instance of `model`.
    fn held(&self, model: usize, ids: &[String]) -> BTreeSet<(String, usize)> {
        ids.iter()
            .filter_map(|id| {
                let instance = self.holders.get(&(model, id.clone()))?;
                Some((id.clone(), *instance))
            })
            .collect()
    }

    fn identify(
        &mut self,
        model: usize,
        ids: &[String],
        properties: Option<&BTreeMap<usize, Option<i64>>>,
        display_name: Option<&str>,
        at: Clock,
    ) -> Expected {
        let held = self.held(model, ids);
        let holders: BTreeSet<usize> = held.iter().map(|(_, instance)| *instance).collect();
        if holders.len() > 1 {
            self.tally.conflicts += 1;
            return Expected::Conflict(held);
        }
        let existing = holders.first().copied();
        let mut instance = match existing {
            Some(number) => self.instances[number].clone(),
            None => Instance {
                model,
                ids: BTreeSet::new(),
                properties: Map::new(),
                clock: BTreeMap::new(),
                display_name: None,
                display_name_at: None,
                identifies: 0,
                pings: 0,
            },
        };
        // Last write wins per key; a tie goes to the later arrival; null removes the key and
        // still records when.
        for (&key, value) in properties.into_iter().flatten() {
            let key = KEYS[key].to_owned();
            if instance.clock.get(&key).is_some_and(|stored| *stored > at) {
                continue;
            }
            instance.clock.insert(key.clone(), at);
            match value {
                Some(value) => instance.properties.insert(key, json!(value)),
                None => instance.properties.remove(&key),
            };
        }
        if let Some(name) = display_name
            && instance.display_name_at.is_none_or(|stored| stored <= at)
        {
            instance.display_name = Some(name.to_owned());
            instance.display_name_at = Some(at);
        }
        // The merged properties must match the schema; only the customer one can fail here.
        if model == CUSTOMER
            && instance
                .properties
                .get("age")
                .is_some_and(|age| age.as_i64().is_none_or(|age| age < 0))
        {
            self.invalid += 1;
            return Expected::Invalid("invalid_properties");
        }
        instance.ids.extend(ids.iter().cloned());
        instance.identifies += 1;
        let number = existing.unwrap_or(self.instances.len());
        for id in ids {
            self.holders.insert((model, id.clone()), number);
        }
        if existing.is_some() {
            self.instances[number] = instance;
            self.tally.updated += 1;
            Expected::Updated(number)
        } else {
            self.instances.push(instance);
            self.tally.created += 1;
            Expected::Created(number)
        }
    }

    fn event(&mut self, model: Option<usize>, ids: &[String]) -> Expected {
        let searched: Vec<usize> = match model {
            Some(model) => vec![model],
            None => (0..MODELS.len()).collect(),
        };
        // The first model, in the order searched, that holds any of the ids.
        let Some(held) = searched
            .into_iter()
            .map(|model| self.held(model, ids))
            .find(|held| !held.is_empty())
        else {
            self.tally.discarded += 1;
            return Expected::Discarded;
        };
        let holders: BTreeSet<usize> = held.iter().map(|(_, instance)| *instance).collect();
        match holders.first() {
            Some(&number) if holders.len() == 1 => {
                self.instances[number].pings += 1;
                self.tally.accepted += 1;
                Expected::Accepted(number)
            }
            _ => {
                self.event_conflicts += 1;
                Expected::Conflict(held)
            }
        }
    }
}

/// The store's instance ids ↔ the model's instance numbers, learnt as instances are created.
#[derive(Debug, Default)]
struct Bijection {
    numbers: HashMap<String, usize>,
    store_ids: Vec<String>,
}

impl Bijection {
    fn learn(&mut self, store_id: &str, number: usize) -> Result<(), String> {
        if let Some(known) = self.numbers.get(store_id) {
            return Err(format!(
                "the store created instance {store_id}, which it had already given as #{known}"
            ));
        }
        if number != self.store_ids.len() {
            return Err(format!(
                "the model created #{number} but the store had created {} instances",
                self.store_ids.len()
            ));
        }
        self.numbers.insert(store_id.to_owned(), number);
        self.store_ids.push(store_id.to_owned());
        Ok(())
    }

    fn number(&self, store_id: &str) -> Result<usize, String> {
        self.numbers
            .get(store_id)
            .copied()
            .ok_or_else(|| format!("the store named instance {store_id}, which it never created"))
    }
}

/// The store's answer to a call, whichever kind of call it was.
#[derive(Debug)]
enum Answer {
    Identify(Result<IdentifyOutcome, StoreError>),
    Event(Result<EventOutcome, StoreError>),
}

/// Compares the store's answer with the model's; learns the instances the store created.
fn compare(
    expected: &Expected,
    answer: Answer,
    model: &Model,
    bijection: &mut Bijection,
) -> Result<(), String> {
    let mismatch = |answer: &dyn fmt::Debug| {
        format!("the model expected {expected:?}, the store answered {answer:?}")
    };
    match (expected, answer) {
        (Expected::Created(number) | Expected::Updated(number), Answer::Identify(Ok(outcome))) => {
            let created = matches!(expected, Expected::Created(_));
            if outcome.created != created {
                return Err(mismatch(&outcome));
            }
            if created {
                bijection.learn(&outcome.instance_id, *number)?;
            } else if bijection.number(&outcome.instance_id)? != *number {
                return Err(mismatch(&outcome));
            }
            let instance = &model.instances[*number];
            let ids: Vec<String> = instance.ids.iter().cloned().collect();
            if outcome.ids != ids || outcome.model != MODELS[instance.model] || outcome.pending != 0
            {
                return Err(format!(
                    "the model expected ids {ids:?} of a `{}` and nothing pending, the store answered {outcome:?}",
                    MODELS[instance.model]
                ));
            }
            Ok(())
        }
        (Expected::Accepted(number), Answer::Event(Ok(outcome))) => match &outcome {
            EventOutcome::Accepted {
                instance_id,
                duplicate: false,
                ..
            } if bijection.number(instance_id)? == *number => Ok(()),
            _ => Err(mismatch(&outcome)),
        },
        (Expected::Discarded, Answer::Event(Ok(outcome))) => match &outcome {
            EventOutcome::Discarded {
                reason: "unknown_instance",
            } => Ok(()),
            _ => Err(mismatch(&outcome)),
        },
        (Expected::Conflict(held), Answer::Identify(Err(error)) | Answer::Event(Err(error))) => {
            let StoreError::Conflict {
                code: "ids_conflict",
                details,
                ..
            } = &error
            else {
                return Err(mismatch(&error));
            };
            let mut named = BTreeSet::new();
            for detail in details {
                let (Some(id), Some(instance)) = (&detail.id, &detail.instance_id) else {
                    return Err(format!(
                        "a conflict detail without id or instance: {detail:?}"
                    ));
                };
                named.insert((id.clone(), bijection.number(instance)?));
            }
            if &named == held {
                Ok(())
            } else {
                Err(format!(
                    "the model expected the conflict {held:?}, the store named {named:?}"
                ))
            }
        }
        (Expected::Invalid(code), Answer::Identify(Err(error))) if error.code() == *code => Ok(()),
        (_, answer) => Err(mismatch(&answer)),
    }
}

/// Reads instance `number` of the model back through `id` and compares it.
async fn check_instance(
    t: &TestStore,
    model: &Model,
    bijection: &Bijection,
    number: usize,
    id: &str,
) -> Result<(), String> {
    let instance = &model.instances[number];
    let name = MODELS[instance.model];
    let view = t
        .get(name, id)
        .await
        .map_err(|error| format!("reading `{name}` {id:?}: {error:?}"))?;
    let ids: Vec<String> = instance.ids.iter().cloned().collect();
    let mut view_ids = view.ids.clone();
    view_ids.sort();
    let same = bijection.number(&view.instance_id)? == number
        && view.model == name
        && view_ids == ids
        && view.properties == instance.properties
        && view.display_name == instance.display_name
        && view.parents.is_empty()
        && view.children.is_empty()
        && view.pending.is_empty();
    if !same {
        return Err(format!(
            "reading `{name}` {id:?}: the model holds #{number} with ids {ids:?}, properties {} and \
             display name {:?}; the store answered #{:?} {view:?}",
            Value::Object(instance.properties.clone()),
            instance.display_name,
            bijection.number(&view.instance_id),
        ));
    }
    Ok(())
}

/// Compares everything readable with the model: each (model, id), the lists, events, counters.
async fn check_state(t: &TestStore, model: &Model, bijection: &Bijection) -> Result<(), String> {
    for (index, name) in MODELS.iter().enumerate() {
        for spec in IDS {
            let id = spec.text();
            match model.holders.get(&(index, id.clone())) {
                Some(&number) => check_instance(t, model, bijection, number, &id).await?,
                None => match t.get(name, &id).await {
                    Err(StoreError::NotFound { .. }) => {}
                    other => {
                        return Err(format!(
                            "reading `{name}` {id:?}: no instance holds it in the model, the store answered {other:?}"
                        ));
                    }
                },
            }
        }

        // The list of the model's instances, oldest first, read two at a time.
        let expected: Vec<usize> = (0..model.instances.len())
            .filter(|&number| model.instances[number].model == index)
            .collect();
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let page = t
                .store
                .instances(&t.tenant, name, 2, cursor)
                .await
                .map_err(|error| format!("listing `{name}`: {error:?}"))?;
            for view in &page.items {
                listed.push(bijection.number(&view.instance_id)?);
            }
            cursor = page.next_cursor;
            if cursor.is_none() || listed.len() > model.instances.len() {
                break;
            }
        }
        if listed != expected {
            return Err(format!(
                "listing `{name}`: the model holds {expected:?}, the store listed {listed:?}"
            ));
        }
    }

    for (number, instance) in model.instances.iter().enumerate() {
        let name = MODELS[instance.model];
        let id = instance.ids.first().ok_or("an instance without ids")?;
        let page = t
            .store
            .events(&t.tenant, name, id, 100, None)
            .await
            .map_err(|error| format!("events of `{name}` {id:?}: {error:?}"))?;
        let count = |wanted: &str| page.items.iter().filter(|e| e.name == wanted).count();
        let (identifies, pings) = (count(IDENTIFY_EVENT), count(EVENT));
        if (identifies, pings, page.items.len())
            != (instance.identifies, instance.pings, identifies + pings)
            || page.next_cursor.is_some()
        {
            return Err(format!(
                "events of #{number} (`{name}` {id:?}): the model expects {} identify and {} `{EVENT}` events, \
                 the store listed {:?}",
                instance.identifies,
                instance.pings,
                page.items.iter().map(|e| &e.name).collect::<Vec<_>>()
            ));
        }
    }

    let stats = t.store.stats();
    let counted = Tally {
        created: stats.identify_created.load(Ordering::Relaxed),
        updated: stats.identify_updated.load(Ordering::Relaxed),
        conflicts: stats.identify_conflicts.load(Ordering::Relaxed),
        accepted: stats.events_accepted.load(Ordering::Relaxed),
        discarded: stats.events_discarded.load(Ordering::Relaxed),
    };
    if counted != model.tally || stats.events_duplicate.load(Ordering::Relaxed) != 0 {
        return Err(format!(
            "counters: the model expects {:?}, the store counted {counted:?}",
            model.tally
        ));
    }
    Ok(())
}

/// Runs one sequence on a fresh store and the model; the error says where they parted. Answers
/// what the sequence did, by kind of outcome.
async fn run_case(backend: Backend, ops: &[Op]) -> Result<Outcomes, String> {
    let t = TestStore::open(backend)
        .await
        .ok_or_else(|| format!("{backend:?} is not available"))?;
    let mut model = Model::default();
    let mut bijection = Bijection::default();
    for (step, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let answer = match op {
            Op::Identify { .. } => Answer::Identify(t.identify(op.body()).await),
            Op::Event { .. } => Answer::Event(t.track(op.body()).await),
        };
        let at = |problem: String| format!("call {step} ({op:?}): {problem}");
        compare(&expected, answer, &model, &mut bijection).map_err(at)?;
        // Read the instance the call touched back at once, to stop where a difference appears.
        if let (Expected::Created(number) | Expected::Updated(number), Op::Identify { ids, .. }) =
            (&expected, op)
        {
            let id = IDS[ids[0]].text();
            check_instance(&t, &model, &bijection, *number, &id)
                .await
                .map_err(at)?;
        }
    }
    check_state(&t, &model, &bijection)
        .await
        .map_err(|problem| format!("after all {} calls: {problem}", ops.len()))?;
    Ok(Outcomes {
        tally: model.tally,
        invalid: model.invalid,
        event_conflicts: model.event_conflicts,
    })
}

/// How many calls of a run ended each way, to show what the run exercised.
#[derive(Debug, Default, Clone, Copy)]
struct Outcomes {
    tally: Tally,
    invalid: u64,
    event_conflicts: u64,
}

impl Outcomes {
    fn add(&mut self, other: Self) {
        self.tally.created += other.tally.created;
        self.tally.updated += other.tally.updated;
        self.tally.conflicts += other.tally.conflicts;
        self.tally.accepted += other.tally.accepted;
        self.tally.discarded += other.tally.discarded;
        self.invalid += other.invalid;
        self.event_conflicts += other.event_conflicts;
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Tally {
            created,
            updated,
            conflicts,
            accepted,
            discarded,
        } = self.tally;
        write!(
            f,
            "identifies: {created} created, {updated} updated, {conflicts} conflicts, {} refused \
             by the schema; events: {accepted} accepted, {discarded} discarded, {} conflicts",
            self.invalid, self.event_conflicts
        )
    }
}

/// Runs [`CASES`] sequences on `backend`, with a fixed seed, and fails with the shortest
/// sequence found on which the store and the model disagree.
fn check_backend(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let runs = AtomicUsize::new(0);
    let calls = AtomicUsize::new(0);
    let outcomes = Mutex::new(Outcomes::default());
    let started = Instant::now();
    let result = runner.run(&sequence(), |ops| {
        runs.fetch_add(1, Ordering::Relaxed);
        calls.fetch_add(ops.len(), Ordering::Relaxed);
        let done = runtime
            .block_on(run_case(backend, &ops))
            .map_err(TestCaseError::fail)?;
        outcomes.lock().expect("outcomes lock").add(done);
        Ok(())
    });
    let elapsed = started.elapsed();
    let (runs, calls) = (runs.into_inner(), calls.into_inner());
    let outcomes = outcomes.into_inner().expect("outcomes lock");
    // Straight to stderr, past the harness's capture: how much was checked.
    let _ = writeln!(
        std::io::stderr(),
        "model check on {backend:?}: {runs} sequences ({cases} to pass, the rest shrinking), \
         {calls} calls in {elapsed:.1?}; passing sequences: {outcomes}"
    );
    if let Err(error) = result {
        panic!("{backend:?}: the store disagrees with the model of DESIGN §2–3: {error}");
    }
}

#[test]
fn sqlite_store_agrees_with_the_model() {
    check_backend(Backend::Sqlite);
}

#[test]
fn postgres_store_agrees_with_the_model() {
    if postgres_url().is_some() {
        check_backend(Backend::Postgres);
    }
}

/// The model itself, on the rules the sequences rely on.
#[test]
fn the_model_follows_the_rules() {
    let identify =
        |model, ids: &[usize], properties: &[(usize, Option<i64>)], timestamp| Op::Identify {
            model,
            ids: ids.to_vec(),
            properties: Some(properties.iter().copied().collect()),
            display_name: None,
            timestamp,
        };
    let mut model = Model::default();
    // Integer 1 and text "1" are one id; "a" joins the same instance.
    assert_eq!(
        model.apply(&identify(1, &[3], &[(0, Some(3))], Some(2))),
        Expected::Created(0)
    );
    assert_eq!(
        model.apply(&identify(1, &[5, 0], &[], None)),
        Expected::Updated(0)
    );
    assert_eq!(
        model.instances[0].ids,
        BTreeSet::from(["1".to_owned(), "a".to_owned()])
    );
    // An older write is ignored, a tie goes to the later arrival, null removes.
    model.apply(&identify(1, &[0], &[(0, Some(1)), (1, Some(5))], Some(1)));
    model.apply(&identify(1, &[0], &[(1, Some(6))], Some(1)));
    assert_eq!(
        Value::Object(model.instances[0].properties.clone()),
        json!({"age": 3, "nick": 6})
    );
    model.apply(&identify(1, &[0], &[(1, None)], Some(4)));
    model.apply(&identify(1, &[0], &[(1, Some(7))], Some(3)));
    assert_eq!(
        Value::Object(model.instances[0].properties.clone()),
        json!({"age": 3})
    );
    // A negative age breaks the customer schema only, and only when it wins.
    assert_eq!(
        model.apply(&identify(1, &[0], &[(0, Some(-1))], None)),
        Expected::Invalid("invalid_properties")
    );
    assert_eq!(
        model.apply(&identify(1, &[0], &[(0, Some(-1))], Some(0))),
        Expected::Updated(0)
    );
    assert_eq!(
        model.apply(&identify(0, &[0], &[(0, Some(-1))], None)),
        Expected::Created(1)
    );
    // Two instances of one model conflict; the same ids in another model do not.
    assert_eq!(
        model.apply(&identify(1, &[1], &[], None)),
        Expected::Created(2)
    );
    assert_eq!(
        model.apply(&identify(1, &[0, 1, 2], &[], None)),
        Expected::Conflict(BTreeSet::from([("a".to_owned(), 0), ("b".to_owned(), 2)]))
    );
    assert!(
        !model.holders.contains_key(&(1, "c".to_owned())),
        "nothing changed"
    );
    // Events search the models in config order unless one is named.
    let event = |model, ids: &[usize]| Op::Event {
        model,
        ids: ids.to_vec(),
        timestamp: None,
    };
    assert_eq!(model.apply(&event(None, &[0, 1])), Expected::Accepted(1));
    assert_eq!(
        model.apply(&event(Some(1), &[0, 1])),
        Expected::Conflict(BTreeSet::from([("a".to_owned(), 0), ("b".to_owned(), 2)]))
    );
    assert_eq!(model.apply(&event(Some(2), &[0])), Expected::Discarded);
    assert_eq!(model.apply(&event(None, &[2])), Expected::Discarded);
}
