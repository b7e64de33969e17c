//! Durability under `kill -9` (DESIGN §2 rule 5, §9): no acknowledged write is lost.
//!
//! A child process writes with 4 concurrent tasks (identify a new customer `w-{n}`, sometimes add
//! an alias `a-{n}` to an earlier one, track an event with messageId `m-{n}` on it) and prints an
//! `ack` line after every call the store answered `Ok`. The test kills it with SIGKILL while
//! transactions are in flight, reopens the store and checks that every acknowledged id resolves
//! to the acknowledged instance and every acknowledged event is stored exactly once.
//!
//! The child is this test binary, re-run on the test [`writer_child`] (which does nothing unless
//! `FUNCTIONARY_CRASH_WRITER_URL` is set), so no extra binary target is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use functionary_config::CompiledConfig;
use functionary_store::{
    EventInput, EventOutcome, IDENTIFY_EVENT, IdentifyInput, Store, StoreOptions, TenantId,
};
use serde_json::{Map, Value, json};

use crate::support;

const URL_VAR: &str = "FUNCTIONARY_CRASH_WRITER_URL";
const TENANT_VAR: &str = "FUNCTIONARY_CRASH_WRITER_TENANT";
/// Concurrent writer tasks in the child.
const WRITERS: usize = 4;
/// Acknowledged writes seen before the kill.
const ACKS_BEFORE_KILL: usize = 300;
/// How long the child may take to acknowledge them.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The child stops on its own after this long, should nobody kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(180);
const MODEL: &str = "customer";
const EVENT: &str = "crash_probe";

// ---------------------------------------------------------------------------------------------
// The child.

/// The writer process: a no-op in a normal test run, the writer when the parent re-runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_child() {
    let Ok(url) = std::env::var(URL_VAR) else {
        return;
    };
    // The test harness printed `test crash::writer_child ... ` without a newline: end that line
    // so the first acknowledgement starts one of its own.
    ack("writer started").expect("stdout");
    let slug = std::env::var(TENANT_VAR).expect("the parent names the tenant");
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("the child opens the store");
    let tenant = store
        .tenant_by_slug(&slug)
        .await
        .expect("tenant lookup")
        .expect("the parent created the tenant")
        .id;
    let config = support::compile(support::TEST_CONFIG);
    let next = Arc::new(AtomicU64::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        writers.spawn(write_until_killed(
            store.clone(),
            tenant.clone(),
            Arc::clone(&config),
            Arc::clone(&next),
        ));
    }
    while let Some(done) = writers.join_next().await {
        if let Err(error) = done.expect("writer task") {
            panic!("writer failed: {error}");
        }
    }
}

/// Writes until killed (or [`CHILD_LIFETIME`] passed, or stdout is gone), acknowledging each
/// write on stdout after the store answered `Ok`.
async fn write_until_killed(
    store: Store,
    tenant: TenantId,
    config: Arc<CompiledConfig>,
    next: Arc<AtomicU64>,
) -> Result<(), String> {
    let started = Instant::now();
    // The last customer this task created: (id, instance id).
    let mut earlier: Option<(String, String)> = None;
    while started.elapsed() < CHILD_LIFETIME {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let id = format!("w-{n}");
        let input = IdentifyInput {
            model: MODEL.to_owned(),
            ids: vec![Value::from(id.as_str())],
            properties: Some(object(json!({"age": n % 100}))),
            ..IdentifyInput::default()
        };
        let outcome = store
            .identify(&tenant, Arc::clone(&config), input)
            .await
            .map_err(|error| format!("identify {id}: {error:?}"))?;
        if !outcome.created {
            return Err(format!("identify {id} did not create: {outcome:?}"));
        }
        ack(&format!("ack identify {id} {}", outcome.instance_id))?;

        if n % 5 == 4
            && let Some((earlier_id, earlier_instance)) = &earlier
        {
            let alias = format!("a-{n}");
            let input = IdentifyInput {
                model: MODEL.to_owned(),
                ids: vec![
                    Value::from(earlier_id.as_str()),
                    Value::from(alias.as_str()),
                ],
                ..IdentifyInput::default()
            };
            let outcome = store
                .identify(&tenant, Arc::clone(&config), input)
                .await
                .map_err(|error| format!("alias {alias} for {earlier_id}: {error:?}"))?;
            if outcome.created || outcome.instance_id != *earlier_instance {
                return Err(format!(
                    "alias {alias} for {earlier_id} ({earlier_instance}) answered {outcome:?}"
                ));
            }
            ack(&format!("ack identify {alias} {}", outcome.instance_id))?;
        }

        let message_id = format!("m-{n}");
        match store
            .track(&tenant, Arc::clone(&config), probe(&id, &message_id))
            .await
            .map_err(|error| format!("track {message_id}: {error:?}"))?
        {
            EventOutcome::Accepted {
                event_id,
                instance_id,
                duplicate: false,
            } if instance_id == outcome.instance_id => {
                ack(&format!("ack event {message_id} {event_id}"))?;
            }
            other => return Err(format!("track {message_id} answered {other:?}")),
        }
        earlier = Some((id, outcome.instance_id));
    }
    Ok(())
}

/// One line on stdout, written at once and flushed; straight to the file descriptor, so the test
/// harness does not capture it.
fn ack(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| format!("stdout: {error}"))
}

/// The probe event with messageId `message_id` on customer `id`; the messageId is in its
/// properties too, since event views do not show it.
fn probe(id: &str, message_id: &str) -> EventInput {
    EventInput {
        name: Some(EVENT.to_owned()),
        ids: vec![Value::from(id)],
        model: Some(MODEL.to_owned()),
        properties: Some(object(json!({"messageId": message_id}))),
        message_id: Some(message_id.to_owned()),
        ..EventInput::default()
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// The child process; killed when dropped, so a failing test leaves no writer behind.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the child acknowledged before it died.
#[derive(Debug, Default)]
struct Acks {
    /// Acknowledged ids (`w-…` and aliases `a-…`) and their instance ids.
    identify: BTreeMap<String, String>,
    /// Acknowledged messageIds and their event ids.
    events: BTreeMap<String, String>,
    /// Of those, how many were read after the kill (written before it, still in the pipe).
    after_kill: usize,
    /// How long the child wrote before it was killed.
    ran: Duration,
}

impl Acks {
    fn record(&mut self, line: &str) {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("ack"), Some("identify"), Some(id), Some(instance)) => {
                let previous = self.identify.insert(id.to_owned(), instance.to_owned());
                assert!(previous.is_none(), "id {id} acknowledged twice");
            }
            (Some("ack"), Some("event"), Some(message_id), Some(event)) => {
                let previous = self.events.insert(message_id.to_owned(), event.to_owned());
                assert!(
                    previous.is_none(),
                    "messageId {message_id} acknowledged twice"
                );
            }
            _ => {}
        }
    }

    fn len(&self) -> usize {
        self.identify.len() + self.events.len()
    }
}

/// Runs the writer child on `url` and tenant `slug` until it acknowledged [`ACKS_BEFORE_KILL`]
/// writes, kills it with SIGKILL and returns every write it acknowledged.
fn run_writer_and_kill(url: &str, slug: &str) -> Acks {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([
            "crash::writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(URL_VAR, url)
        .env(TENANT_VAR, slug)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the writer child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut writer = Writer(child);
    let started = Instant::now();

    // Complete lines only: a line cut by the kill was never an acknowledgement.
    let (lines, received) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if !line.ends_with('\n') => return,
                Ok(_) => {
                    line.pop();
                    if lines.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut acks = Acks::default();
    let mut other_output = Vec::new();
    let deadline = started + ACK_TIMEOUT;
    while acks.len() < ACKS_BEFORE_KILL {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("ack ") => acks.record(&line),
            Ok(line) => other_output.push(line),
            Err(RecvTimeoutError::Timeout) => {
                drop(writer);
                panic!(
                    "the writer child acknowledged only {} writes in {ACK_TIMEOUT:?}; stderr:\n{}",
                    acks.len(),
                    errors.join().unwrap_or_default()
                );
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = writer.0.wait().expect("the writer child's status");
                panic!(
                    "the writer child ended on its own ({status}) after {} acknowledged writes\n\
                     stdout:\n{}\nstderr:\n{}",
                    acks.len(),
                    other_output.join("\n"),
                    errors.join().unwrap_or_default()
                );
            }
        }
    }
    // Let the load run on for a varying 0–24 ms, so the kill lands anywhere in a transaction.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.subsec_nanos() % 25)
        .unwrap_or_default();
    std::thread::sleep(Duration::from_millis(jitter.into()));
    acks.ran = started.elapsed();
    writer.0.kill().expect("SIGKILL the writer child");
    let status = writer.0.wait().expect("the killed writer child's status");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the writer child was not killed by SIGKILL but ended with {status}; stderr:\n{}",
            errors.join().unwrap_or_default()
        );
    }
    #[cfg(not(unix))]
    assert!(!status.success(), "the writer child was not killed");
    // Acknowledgements written before the kill and still in the pipe count too.
    let before = acks.len();
    for line in received {
        acks.record(&line);
    }
    acks.after_kill = acks.len() - before;
    acks
}

/// What the store held after the kill.
#[derive(Debug, Default)]
struct Found {
    identify: usize,
    events: usize,
    instances: usize,
    /// Committed but never acknowledged: in flight when the child was killed.
    unacknowledged_ids: usize,
    unacknowledged_events: usize,
}

/// Every instance of the model with its ids, and for every probe event its (event id, instance
/// id), grouped by messageId; checks each instance has the event of the identify that made it.
async fn read_back(
    store: &Store,
    tenant: &TenantId,
) -> (
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, Vec<(String, String)>>,
) {
    let mut instances = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .instances(tenant, MODEL, 100, cursor)
            .await
            .expect("instances page");
        for view in page.items {
            instances.insert(view.instance_id, view.ids);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut probes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (instance, ids) in &instances {
        let id = ids.first().expect("an instance has an id");
        let mut identified = 0;
        let mut cursor = None;
        loop {
            let page = store
                .events(tenant, MODEL, id, 100, cursor)
                .await
                .expect("events page");
            for event in page.items {
                if event.name == IDENTIFY_EVENT {
                    identified += 1;
                } else if event.name == EVENT {
                    let message_id = event.properties["messageId"]
                        .as_str()
                        .expect("the probe's messageId")
                        .to_owned();
                    probes
                        .entry(message_id)
                        .or_default()
                        .push((event.event_id, instance.clone()));
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(
            identified >= 1,
            "instance {instance} ({ids:?}) exists without its identify event: a torn transaction"
        );
    }
    (instances, probes)
}

/// Kills a writer on the database at `url` mid-load and checks every acknowledged write.
async fn acknowledged_writes_survive_kill(url: String) -> String {
    let slug = format!("crash-{}", support::unique_suffix());
    let tenant = {
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("the store opens");
        store
            .create_tenant(&slug, None)
            .await
            .expect("tenant created")
            .id
    };
    let acks = tokio::task::spawn_blocking({
        let (url, slug) = (url.clone(), slug.clone());
        move || run_writer_and_kill(&url, &slug)
    })
    .await
    .expect("the writer child ran");

    let checking = Instant::now();
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("the store reopens after the kill");
    let config = support::compile(support::TEST_CONFIG);
    let mut found = Found::default();
    let mut lost = Vec::new();

    for (id, instance) in &acks.identify {
        match store.instance(&tenant, MODEL, id).await {
            Ok(view) if view.instance_id == *instance => found.identify += 1,
            other => lost.push(format!("identify {id} -> {instance}: now {other:?}")),
        }
    }

    let (instances, probes) = read_back(&store, &tenant).await;
    found.instances = instances.len();
    let acknowledged: BTreeSet<&str> = acks.identify.keys().map(String::as_str).collect();
    found.unacknowledged_ids = instances
        .values()
        .flatten()
        .filter(|id| !acknowledged.contains(id.as_str()))
        .count();
    for (message_id, stored) in &probes {
        assert_eq!(
            stored.len(),
            1,
            "messageId {message_id} is stored {} times: {stored:?}",
            stored.len()
        );
        if !acks.events.contains_key(message_id) {
            found.unacknowledged_events += 1;
        }
    }
    for (message_id, event) in &acks.events {
        let id = message_id.replacen("m-", "w-", 1);
        let instance = acks
            .identify
            .get(&id)
            .expect("the event's customer was acked");
        match probes.get(message_id).map(Vec::as_slice) {
            Some([(stored, on)]) if stored == event && on == instance => {}
            other => {
                lost.push(format!(
                    "event {message_id} = {event} on {instance}: now {other:?}"
                ));
                continue;
            }
        }
        // The messageId dedupe answers with the same event, so it is stored exactly once.
        match store
            .track(&tenant, Arc::clone(&config), probe(&id, message_id))
            .await
        {
            Ok(EventOutcome::Accepted {
                event_id,
                instance_id,
                duplicate: true,
            }) if event_id == *event && instance_id == *instance => found.events += 1,
            other => lost.push(format!("event {message_id} = {event} re-sent: {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are lost or changed after kill -9, e.g.:\n{}",
        lost.len(),
        acks.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(found.identify, acks.identify.len());
    assert_eq!(found.events, acks.events.len());
    format!(
        "{} acknowledged writes checked ({} identify, {} events; {} read after the kill), {} found \
         ({} identify, {} events exactly once); store holds {} instances, {} ids and {} events \
         committed without an ack; child ran {:.2?}, checks took {:.2?}",
        acks.len(),
        acks.identify.len(),
        acks.events.len(),
        acks.after_kill,
        found.identify + found.events,
        found.identify,
        found.events,
        found.instances,
        found.unacknowledged_ids,
        found.unacknowledged_events,
        acks.ran,
        checking.elapsed()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_writes_survive_kill() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let summary = acknowledged_writes_survive_kill(url).await;
    println!("crash sqlite: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_writes_survive_kill() {
    let Some(url) = support::postgres_url() else {
        return;
    };
    let summary = acknowledged_writes_survive_kill(url).await;
    println!("crash postgres: {summary}");
}
