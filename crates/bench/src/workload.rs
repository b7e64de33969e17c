//! The scenarios, as the writes they make: the same [`Write`]s go to the server over HTTP and
//! straight to the database for the ceiling, so the two runs do the same work.

use clap::ValueEnum;
use serde::Serialize;

use crate::load::Random;

/// Events per batch request.
pub const BATCH_SIZE: usize = 100;

/// The model every scenario writes; the bench tenant's config declares it with a schema.
pub const MODEL: &str = "customer";

/// The tenant config of the bench: one model with a schema, one declared event with a schema,
/// so every call is validated as a tenant's would be.
pub const CONFIG: &str = "\
tenant: bench
models:
  - name: organization
    schema: {type: object, properties: {plan: {type: string}}}
  - name: customer
    schema:
      type: object
      properties:
        plan: {type: string, enum: [free, pro, enterprise]}
        seats: {type: integer, minimum: 0}
events:
  - name: api_call
    forModels: [customer]
    schema:
      type: object
      properties:
        endpoint: {type: string}
        status: {type: integer}
";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// identify with two fresh ids: creates an instance.
    IdentifyNew,
    /// identify through 1–2 ids of a known instance with changed properties: updates it.
    IdentifyExisting,
    /// one event on a known instance.
    Event,
    /// one batch request of 100 events on known instances.
    Batch,
    /// 70% events, 25% identify-existing, 5% identify-new.
    Mixed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::IdentifyNew => "identify-new",
            Self::IdentifyExisting => "identify-existing",
            Self::Event => "event",
            Self::Batch => "batch",
            Self::Mixed => "mixed",
        }
    }

    /// What the ops/s figure counts.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Batch => "events",
            _ => "calls",
        }
    }
}

/// One write a client makes.
#[derive(Debug, Clone)]
pub enum Write {
    /// Creates an instance holding `ids`.
    IdentifyNew {
        ids: [String; 2],
        plan: &'static str,
        seats: u64,
    },
    /// Updates the instance holding `ids`.
    IdentifyExisting {
        ids: Vec<String>,
        plan: &'static str,
        seats: u64,
    },
    /// An `api_call` event on the instance holding `id`.
    Event { id: String },
    /// `api_call` events on the instances holding `ids`, one each.
    Batch { ids: Vec<String> },
}

/// The ids of the known instances: instance `n` holds `k{n}` and `k{n}@example.com`.
pub fn known_ids(n: u64) -> [String; 2] {
    [format!("k{n}"), format!("k{n}@example.com")]
}

const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

/// The `seq`-th write of `client` in run `run` of `scenario`, over `known` known instances.
/// Deterministic: the same arguments give the same write.
pub fn write(scenario: Scenario, known: u64, run: u64, client: usize, seq: u64) -> Write {
    let mut random = Random::new((run << 40) ^ ((client as u64) << 24) ^ seq);
    let scenario = match scenario {
        Scenario::Mixed => match random.below(100) {
            0..70 => Scenario::Event,
            70..95 => Scenario::IdentifyExisting,
            _ => Scenario::IdentifyNew,
        },
        other => other,
    };
    let plan = PLANS[random.below(3) as usize];
    let seats = random.below(500);
    match scenario {
        Scenario::IdentifyNew => {
            let id = format!("n{run}-{client}-{seq}");
            Write::IdentifyNew {
                ids: [id.clone(), format!("{id}@example.com")],
                plan,
                seats,
            }
        }
        Scenario::IdentifyExisting => {
            let [short, email] = known_ids(random.below(known));
            let ids = match random.below(3) {
                0 => vec![short],
                1 => vec![email],
                _ => vec![short, email],
            };
            Write::IdentifyExisting { ids, plan, seats }
        }
        Scenario::Event => {
            let [short, email] = known_ids(random.below(known));
            Write::Event {
                id: if random.below(2) == 0 { short } else { email },
            }
        }
        Scenario::Batch | Scenario::Mixed => Write::Batch {
            ids: (0..BATCH_SIZE)
                .map(|_| {
                    let [short, _] = known_ids(random.below(known));
                    short
                })
                .collect(),
        },
    }
}
