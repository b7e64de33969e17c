//! A quick in-process benchmark of the store: identify-new, identify-existing and event, with
//! 16 concurrent callers, on SQLite (temporary file, synchronous=FULL) and, when
//! `FUNCTIONARY_BENCH_DATABASE_URL` names a PostgreSQL database, on PostgreSQL.
//! Run with `cargo bench -p functionary-store --bench ops`.

#![expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]

use std::sync::Arc;
use std::time::Instant;

use functionary_store::{EventInput, IdentifyInput, Store, StoreOptions, TenantId};
use serde_json::json;

const CALLERS: usize = 16;
const OPS_PER_CALLER: usize = 150;

const CONFIG: &str =
    "models:\n  - name: customer\n    schema: {type: object, properties: {plan: {type: string}}}\n";

async fn run<F, Fut>(label: &str, backend: &str, op: F)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                for n in 0..OPS_PER_CALLER {
                    op(caller, n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task");
    }
    let elapsed = start.elapsed();
    let total = CALLERS * OPS_PER_CALLER;
    println!(
        "{backend:<10} {label:<18} {total:>6} ops in {:>6.2} s = {:>7.0} ops/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}

async fn bench(backend: &str, url: &str) {
    let store = Store::open(url, StoreOptions::default())
        .await
        .expect("store opens");
    let slug = format!("bench-{}", std::process::id());
    let tenant: TenantId = store.create_tenant(&slug, None).await.expect("tenant").id;
    let config = Arc::new(functionary_config::load_config(CONFIG, "bench").expect("config"));
    let context = Arc::new((store, tenant, config));

    let ctx = Arc::clone(&context);
    run("identify-new", backend, move |caller, n| {
        let ctx = Arc::clone(&ctx);
        async move {
            let input: IdentifyInput = serde_json::from_value(json!({
                "model": "customer", "ids": [format!("u-{caller}-{n}"), format!("u-{caller}-{n}@example.com")],
                "properties": {"plan": "free"}
            }))
            .expect("input");
            ctx.0.identify(&ctx.1, Arc::clone(&ctx.2), input).await.expect("identify-new");
        }
    })
    .await;

    let ctx = Arc::clone(&context);
    run("identify-existing", backend, move |caller, n| {
        let ctx = Arc::clone(&ctx);
        async move {
            let input: IdentifyInput = serde_json::from_value(json!({
                "model": "customer", "ids": [format!("u-{caller}-{}", (n * 7) % OPS_PER_CALLER)],
                "properties": {"plan": if n % 2 == 0 { "pro" } else { "free" }}
            }))
            .expect("input");
            ctx.0
                .identify(&ctx.1, Arc::clone(&ctx.2), input)
                .await
                .expect("identify-existing");
        }
    })
    .await;

    let ctx = Arc::clone(&context);
    run("event", backend, move |caller, n| {
        let ctx = Arc::clone(&ctx);
        async move {
            let input: EventInput = serde_json::from_value(json!({
                "name": "api_call", "ids": [format!("u-{caller}-{}", (n * 11) % OPS_PER_CALLER)],
                "properties": {"endpoint": "/v1/things", "status": 200}
            }))
            .expect("input");
            ctx.0
                .track(&ctx.1, Arc::clone(&ctx.2), input)
                .await
                .expect("event");
        }
    })
    .await;
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("functionary-bench-{}", std::process::id()));
    bench("sqlite", &format!("sqlite://{}/bench.db", dir.display())).await;
    let _ = std::fs::remove_dir_all(&dir);
    match std::env::var("FUNCTIONARY_BENCH_DATABASE_URL") {
        Ok(url) => bench("postgres", &url).await,
        Err(_) => println!("postgres: skipped (set FUNCTIONARY_BENCH_DATABASE_URL)"),
    }
}
