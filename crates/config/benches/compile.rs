//! How long loading and compiling the example configs takes, and one properties validation.
//! Run with `cargo bench -p functionary-config`; prints medians of repeated runs.

#![expect(clippy::print_stdout, reason = "a bench binary reports on stdout")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use functionary_config::load_config;
use serde_json::json;

fn median_of(runs: usize, iterations: u32, mut body: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                body();
            }
            start.elapsed() / iterations
        })
        .collect();
    samples.sort();
    samples[runs / 2]
}

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tenants.example");
    for name in ["acme", "bazaar"] {
        let text = std::fs::read_to_string(format!("{root}/{name}.yaml")).expect("example config");
        let time = median_of(11, 20, || {
            black_box(load_config(black_box(&text), name).expect("example compiles"));
        });
        println!(
            "load + check + compile {name}.yaml ({} bytes): {time:?}",
            text.len()
        );
    }

    let text = std::fs::read_to_string(format!("{root}/acme.yaml")).expect("example config");
    let config = load_config(&text, "acme").expect("example compiles");
    let customer = config.model("customer").expect("declared");
    let properties = json!({
        "email": "ada@example.com", "name": "Ada Lovelace", "role": "developer",
        "signedUpAt": "2026-12-04T10:00:00Z", "marketingOptIn": true,
    });
    let time = median_of(11, 100_000, || {
        black_box(customer.validate(black_box(&properties)).is_ok());
    });
    println!(
        "validate one customer properties object (5 keys, email + date-time formats): {time:?}"
    );
    let invalid = json!({"email": "nope", "role": "captain"});
    let time = median_of(11, 100_000, || {
        black_box(customer.validate(black_box(&invalid)).is_err());
    });
    println!("validate an invalid object, collecting both violations: {time:?}");
}
