//! The two ways load is applied: a closed loop (every client sends its next call as soon as the
//! last one answered: the most the target does) and an open loop (calls are due on a fixed
//! schedule and a call's latency counts from when it was due, so a stalled target is charged
//! for the calls it held back: no coordinated omission).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One call of a scenario: `Ok(units)` with the writes it acknowledged, or what went wrong.
pub type Call = Pin<Box<dyn Future<Output = Result<Acked, String>> + Send>>;

/// Makes the `seq`-th call of client `client`.
pub type Caller = Arc<dyn Fn(usize, u64) -> Call + Send + Sync>;

/// What a call acknowledged, so the run can check afterwards that it was stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acked {
    /// Units of work: calls, or events for a batch.
    pub units: u64,
    /// Event rows the acknowledged writes added (each identify records one too).
    pub events: u64,
    /// Instances the acknowledged writes created.
    pub instances: u64,
}

impl std::ops::AddAssign for Acked {
    fn add_assign(&mut self, other: Self) {
        self.units += other.units;
        self.events += other.events;
        self.instances += other.instances;
    }
}

/// What one phase measured.
#[derive(Debug)]
pub struct Measured {
    pub elapsed: Duration,
    pub calls: u64,
    pub acked: Acked,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Microseconds per call.
    pub latency: Histogram<u64>,
}

impl Measured {
    pub fn units_per_second(&self) -> f64 {
        self.acked.units as f64 / self.elapsed.as_secs_f64()
    }

    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at `quantile`, in milliseconds.
    pub fn millis(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn merge(parts: Vec<Self>, elapsed: Duration) -> Self {
        let mut total = Self::empty();
        total.elapsed = elapsed;
        for part in parts {
            total.calls += part.calls;
            total.acked += part.acked;
            total.errors += part.errors;
            total.first_error = total.first_error.or(part.first_error);
            // Both histograms have the same bounds, so adding never fails.
            let _ = total.latency.add(&part.latency);
        }
        total
    }

    fn empty() -> Self {
        Self {
            elapsed: Duration::ZERO,
            calls: 0,
            acked: Acked::default(),
            errors: 0,
            first_error: None,
            latency: new_histogram(),
        }
    }

    fn record(&mut self, result: Result<Acked, String>, micros: u64) {
        self.calls += 1;
        let _ = self.latency.record(micros.clamp(1, MAX_MICROS));
        match result {
            Ok(acked) => self.acked += acked,
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }
}

/// Longest latency the histograms hold: a minute.
const MAX_MICROS: u64 = 60_000_000;

fn new_histogram() -> Histogram<u64> {
    // Three significant digits from 1 µs to a minute: a fixed, small allocation.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant, valid histogram bounds")
}

/// `clients` clients each send their next call as soon as the last one answered, for `duration`.
pub async fn closed_loop(clients: usize, duration: Duration, caller: &Caller) -> Measured {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let caller = Arc::clone(caller);
            tokio::spawn(async move {
                let mut measured = Measured::empty();
                let mut seq = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let result = caller(client, seq).await;
                    measured.record(result, micros_since(sent));
                    seq += 1;
                }
                measured
            })
        })
        .collect();
    join(tasks, start).await
}

/// Calls are due at `rate` per second in all, spread evenly over `clients` clients, for
/// `duration`; a call's latency counts from when it was due, so time a client spent waiting
/// for an earlier, slow call is charged to the calls it delayed.
pub async fn open_loop(clients: usize, duration: Duration, rate: f64, caller: &Caller) -> Measured {
    let interval = Duration::from_secs_f64(clients as f64 / rate.max(1.0));
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let caller = Arc::clone(caller);
            tokio::spawn(async move {
                let mut measured = Measured::empty();
                let mut due = start + interval.mul_f64(client as f64 / clients as f64);
                let mut seq = 0;
                while due < deadline {
                    tokio::time::sleep_until(due.into()).await;
                    let result = caller(client, seq).await;
                    measured.record(result, micros_since(due));
                    seq += 1;
                    due += interval;
                }
                measured
            })
        })
        .collect();
    let mut measured = join(tasks, start).await;
    measured.elapsed = duration;
    measured
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Measured>>, start: Instant) -> Measured {
    let mut parts = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(part) => parts.push(part),
            Err(error) => {
                let mut failed = Measured::empty();
                failed.errors = 1;
                failed.first_error = Some(format!("a client task failed: {error}"));
                parts.push(failed);
            }
        }
    }
    Measured::merge(parts, start.elapsed())
}

fn micros_since(then: Instant) -> u64 {
    u64::try_from(then.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A small, fast, seeded random sequence (xorshift64*), so runs pick the same ids.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
