//! `functionary-bench`: the server over HTTP, side by side with the same writes issued as raw
//! SQL to the same database (the ceiling), so every figure is a ratio measured in one run.
//!
//! For each backend and store (empty, or preloaded with many instances) and each scenario and
//! client count: a closed-loop phase measures throughput, an open-loop phase at a fraction of
//! that throughput measures latency (from when each call was due), then the rows the database
//! holds are counted against what was acknowledged. Server first, ceiling right after.

#![expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]

mod allocations;
mod ceiling;
mod http;
mod load;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use functionary_api::auth::Keys;
use functionary_store::SqliteSynchronous;
use serde::Serialize;

use crate::allocations::Counting;
use crate::ceiling::Ceiling;
use crate::http::{Server, Tenant};
use crate::load::{Caller, Measured};
use crate::workload::Scenario;

#[derive(Debug, Parser)]
#[command(name = "functionary-bench", version, about)]
struct Args {
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_values = ["sqlite", "postgres"])]
    backends: Vec<Backend>,
    /// A PostgreSQL server to create the bench databases on (each is dropped afterwards).
    /// Without it, PostgreSQL is skipped.
    #[arg(long, env = "FUNCTIONARY_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Scenarios to run.
    #[arg(long, value_delimiter = ',', default_values = ["identify-new", "identify-existing", "event", "batch", "mixed"])]
    scenarios: Vec<Scenario>,
    /// Concurrent clients.
    #[arg(long, value_delimiter = ',', default_values = ["1", "16", "64"])]
    clients: Vec<usize>,
    /// Store states: `empty` (only `--known` instances) and `preloaded` (`--preload`).
    #[arg(long, value_delimiter = ',', default_values = ["empty", "preloaded"])]
    stores: Vec<StoreState>,
    /// Known instances of the empty store (the ids updates and events name).
    #[arg(long, default_value_t = 10_000)]
    known: u64,
    /// Instances of the preloaded store (two ids each).
    #[arg(long, default_value_t = 1_000_000)]
    preload: u64,
    /// Seconds of each closed-loop (throughput) phase.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of each open-loop (latency) phase; 0 skips them.
    #[arg(long, default_value_t = 5.0)]
    latency_duration: f64,
    /// The open-loop rate, as a fraction of the closed-loop throughput of the same target.
    #[arg(long, default_value_t = 0.7)]
    latency_load: f64,
    /// SQLite durability, for the server and the ceiling alike.
    #[arg(long, value_enum, default_value_t = Synchronous::Full)]
    sqlite_synchronous: Synchronous,
    /// Worker threads of the server's runtime (the load has its own).
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Writes the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum StoreState {
    Empty,
    Preloaded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Synchronous {
    Full,
    Normal,
}

/// One target's figures in one row.
#[derive(Debug, Serialize)]
struct Figures {
    /// Units per second in the closed loop (calls, or events for `batch`).
    ops_per_second: f64,
    calls_per_second: f64,
    /// The open-loop rate, calls per second.
    latency_rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    first_error: Option<String>,
    /// Allocations on the server's threads per call (server only), over
    /// [`ALLOCATION_CALLS`] calls made one after the other.
    allocations_per_call: Option<f64>,
    allocated_bytes_per_call: Option<f64>,
    /// Whether every acknowledged write is stored (and nothing else).
    stored_as_acknowledged: bool,
    check: String,
}

#[derive(Debug, Serialize)]
struct Row {
    backend: Backend,
    store: StoreState,
    instances: u64,
    scenario: Scenario,
    unit: &'static str,
    clients: usize,
    server: Figures,
    ceiling: Figures,
    /// server ÷ ceiling throughput.
    ratio: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    settings: Settings,
    preloads: Vec<Preload>,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    postgres_version: Option<String>,
    sqlite_synchronous: Synchronous,
}

#[derive(Debug, Serialize)]
struct Settings {
    duration_seconds: f64,
    latency_duration_seconds: f64,
    latency_load: f64,
    server_threads: usize,
    known: u64,
    preload: u64,
}

#[derive(Debug, Serialize)]
struct Preload {
    backend: Backend,
    store: StoreState,
    instances: u64,
    ids: u64,
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The load runs here; the server gets a runtime of its own (see `Server::start`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&args))?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("can not write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    print_table(&report.rows);
    let failed: Vec<&Row> = report
        .rows
        .iter()
        .filter(|row| !row.server.stored_as_acknowledged || row.server.errors > 0)
        .collect();
    if !failed.is_empty() {
        bail!("{} run(s) failed their check", failed.len());
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let synchronous = match args.sqlite_synchronous {
        Synchronous::Full => SqliteSynchronous::Full,
        Synchronous::Normal => SqliteSynchronous::Normal,
    };
    let mut rows = Vec::new();
    let mut preloads = Vec::new();
    let mut postgres_version = None;
    println!("{HEADER}");
    let scratch = std::env::temp_dir().join(format!("functionary-bench-{}", std::process::id()));
    for &backend in &args.backends {
        for &store in &args.stores {
            let instances = match store {
                StoreState::Empty => args.known,
                StoreState::Preloaded => args.preload,
            };
            let database = match backend {
                Backend::Sqlite => Database::sqlite(&scratch, store)?,
                Backend::Postgres => match &args.postgres {
                    Some(server) => Database::postgres(server, store).await?,
                    None => {
                        println!(
                            "postgres: skipped (give --postgres URL or FUNCTIONARY_BENCH_POSTGRES_URL)"
                        );
                        continue;
                    }
                },
            };
            println!("{backend:?} / {store:?}: {}", database.label());
            let keys = Keys::new(secret().as_bytes())?;
            let server = Server::start(
                database.url(),
                synchronous,
                args.server_threads,
                keys.clone(),
            )
            .await?;
            let tenant = Tenant::onboard(&server, &keys, "bench").await?;
            let ceiling = Ceiling::open(database.url(), max_clients(args), synchronous).await?;
            let tenant_id = ceiling.tenant_id("bench").await?;
            if backend == Backend::Postgres {
                postgres_version = Some(ceiling.postgres_version().await?);
            }
            let started = Instant::now();
            ceiling.preload(&tenant_id, 0, instances).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "  preloaded {instances} instances / {} ids in {seconds:.1} s",
                2 * instances
            );
            preloads.push(Preload {
                backend,
                store,
                instances,
                ids: 2 * instances,
                seconds,
            });
            let mut run_no = 0;
            for &scenario in &args.scenarios {
                for &clients in &args.clients {
                    let context = Measurement {
                        args,
                        tenant: &tenant,
                        ceiling: &ceiling,
                        tenant_id: &tenant_id,
                        scenario,
                        known: instances,
                        clients,
                    };
                    let server_figures = context.measure(Target::Server, &mut run_no).await?;
                    let ceiling_figures = context.measure(Target::Ceiling, &mut run_no).await?;
                    let row = Row {
                        backend,
                        store,
                        instances,
                        scenario,
                        unit: scenario.unit(),
                        clients,
                        ratio: server_figures.ops_per_second
                            / ceiling_figures.ops_per_second.max(f64::MIN_POSITIVE),
                        server: server_figures,
                        ceiling: ceiling_figures,
                    };
                    print_row(&row);
                    rows.push(row);
                }
            }
            drop(server);
            database.drop().await?;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Report {
        machine: Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpu_model(),
            postgres_version,
            sqlite_synchronous: args.sqlite_synchronous,
        },
        settings: Settings {
            duration_seconds: args.duration,
            latency_duration_seconds: args.latency_duration,
            latency_load: args.latency_load,
            server_threads: args.server_threads,
            known: args.known,
            preload: args.preload,
        },
        preloads,
        rows,
    })
}

fn max_clients(args: &Args) -> usize {
    args.clients.iter().copied().max().unwrap_or(1)
}

/// Calls made one after the other to count the server's allocations per call.
const ALLOCATION_CALLS: u64 = 100;

#[derive(Debug, Clone, Copy)]
enum Target {
    Server,
    Ceiling,
}

/// What one row of measurements needs.
struct Measurement<'a> {
    args: &'a Args,
    tenant: &'a Tenant,
    ceiling: &'a Ceiling,
    tenant_id: &'a str,
    scenario: Scenario,
    known: u64,
    clients: usize,
}

impl Measurement<'_> {
    /// The throughput phase, then the latency phase, then the check, for one target.
    async fn measure(&self, target: Target, run_no: &mut u64) -> anyhow::Result<Figures> {
        let before = self.ceiling.counts(self.tenant_id).await?;
        *run_no += 1;
        let throughput = load::closed_loop(
            self.clients,
            Duration::from_secs_f64(self.args.duration),
            &self.caller(target, *run_no),
        )
        .await;
        *run_no += 1;
        let rate = throughput.calls_per_second() * self.args.latency_load;
        let latency = if self.args.latency_duration > 0.0 {
            Some(
                load::open_loop(
                    self.clients,
                    Duration::from_secs_f64(self.args.latency_duration),
                    rate,
                    &self.caller(target, *run_no),
                )
                .await,
            )
        } else {
            None
        };
        *run_no += 1;
        let mut allocations = None;
        if let Target::Server = target {
            let caller = self.caller(target, *run_no);
            let (outcomes, allocated) = Counting::measure(async {
                let mut outcomes = Vec::with_capacity(ALLOCATION_CALLS as usize);
                for seq in 0..ALLOCATION_CALLS {
                    outcomes.push(caller(0, seq).await);
                }
                outcomes
            })
            .await;
            allocations = Some((allocated, outcomes));
        }
        let after = self.ceiling.counts(self.tenant_id).await?;
        let mut acked = throughput.acked;
        let mut errors = throughput.errors;
        let mut first_error = throughput.first_error.clone();
        let per_call = |total: u64| Some(total as f64 / ALLOCATION_CALLS as f64);
        let (allocations_per_call, allocated_bytes_per_call) = match allocations {
            Some((allocated, outcomes)) => {
                for outcome in outcomes {
                    match outcome {
                        Ok(call) => acked += call,
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                }
                (per_call(allocated.count), per_call(allocated.bytes))
            }
            None => (None, None),
        };
        if let Some(latency) = &latency {
            acked += latency.acked;
            errors += latency.errors;
            first_error = first_error.or_else(|| latency.first_error.clone());
        }
        let stored = (after.0 - before.0, after.1 - before.1);
        let stored_as_acknowledged = stored == (acked.instances, acked.events);
        let check = if stored_as_acknowledged {
            format!("ok: {} instances, {} events", stored.0, stored.1)
        } else {
            format!(
                "MISMATCH: acknowledged {} instances / {} events, stored {} / {}",
                acked.instances, acked.events, stored.0, stored.1
            )
        };
        let shown: &Measured = latency.as_ref().unwrap_or(&throughput);
        Ok(Figures {
            ops_per_second: throughput.units_per_second(),
            calls_per_second: throughput.calls_per_second(),
            latency_rate: if latency.is_some() { rate } else { 0.0 },
            p50_ms: shown.millis(0.5),
            p99_ms: shown.millis(0.99),
            p999_ms: shown.millis(0.999),
            errors,
            first_error,
            allocations_per_call,
            allocated_bytes_per_call,
            stored_as_acknowledged,
            check,
        })
    }

    fn caller(&self, target: Target, run_no: u64) -> Caller {
        let (scenario, known) = (self.scenario, self.known);
        match target {
            Target::Server => {
                let tenant = self.tenant.clone();
                Arc::new(move |client, seq| {
                    let tenant = tenant.clone();
                    let write = workload::write(scenario, known, run_no, client, seq);
                    Box::pin(async move { tenant.send(write).await })
                })
            }
            Target::Ceiling => {
                let ceiling = self.ceiling.clone();
                let tenant_id = self.tenant_id.to_owned();
                Arc::new(move |client, seq| {
                    let (ceiling, tenant_id) = (ceiling.clone(), tenant_id.clone());
                    let write = workload::write(scenario, known, run_no, client, seq);
                    Box::pin(async move { ceiling.send(&tenant_id, write).await })
                })
            }
        }
    }
}

/// A database made for one store state of the bench, removed afterwards.
enum Database {
    Sqlite {
        url: String,
        dir: PathBuf,
    },
    Postgres {
        url: String,
        server: String,
        name: String,
    },
}

impl Database {
    fn sqlite(scratch: &std::path::Path, store: StoreState) -> anyhow::Result<Self> {
        let dir = scratch.join(format!("{store:?}").to_lowercase());
        std::fs::create_dir_all(&dir)?;
        Ok(Self::Sqlite {
            url: format!("sqlite://{}/bench.db", dir.display()),
            dir,
        })
    }

    async fn postgres(server: &str, store: StoreState) -> anyhow::Result<Self> {
        let name = format!(
            "functionary_bench_{}_{}",
            std::process::id(),
            format!("{store:?}").to_lowercase()
        );
        ceiling::admin(
            server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await?;
        ceiling::admin(server, &format!("CREATE DATABASE {name}")).await?;
        let url = match server.rfind('/') {
            Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &server[..slash]),
            _ => format!("{server}/{name}"),
        };
        Ok(Self::Postgres {
            url,
            server: server.to_owned(),
            name,
        })
    }

    fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Sqlite { url, .. } => url.clone(),
            Self::Postgres { name, .. } => format!("database {name}"),
        }
    }

    async fn drop(self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { server, name, .. } => {
                ceiling::admin(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A signing secret for this run only.
fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::now_v7().simple(),
        uuid::Uuid::now_v7().simple()
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

const HEADER: &str = "backend  store      scenario           clients |   server/s  ceiling/s  ratio | server p50/p99/p99.9 ms (at /s)     | ceiling p50/p99/p99.9 ms (at /s)    | allocs/call | check";

fn print_row(row: &Row) {
    let latency = |figures: &Figures| {
        format!(
            "{:>6.2} {:>6.2} {:>7.2} ({:>7.0})",
            figures.p50_ms, figures.p99_ms, figures.p999_ms, figures.latency_rate
        )
    };
    let check = if row.server.stored_as_acknowledged && row.server.errors == 0 {
        "ok".to_owned()
    } else {
        format!(
            "{}; {} errors {}",
            row.server.check,
            row.server.errors,
            row.server.first_error.as_deref().unwrap_or("")
        )
    };
    println!(
        "{:<8} {:<10} {:<18} {:>7} | {:>10.0} {:>10.0} {:>5.0}% | {:<35} | {:<35} | {:>11.0} | {}",
        format!("{:?}", row.backend).to_lowercase(),
        format!("{:?}", row.store).to_lowercase(),
        row.scenario.name(),
        row.clients,
        row.server.ops_per_second,
        row.ceiling.ops_per_second,
        row.ratio * 100.0,
        latency(&row.server),
        latency(&row.ceiling),
        row.server.allocations_per_call.unwrap_or(0.0),
        check,
    );
}

fn print_table(rows: &[Row]) {
    println!();
    println!("{HEADER}");
    for row in rows {
        print_row(row);
    }
}
