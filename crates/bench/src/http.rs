//! The server side of a run: a real `functionary` server in this process (on its own runtime,
//! so it is scheduled apart from the load), set up and called over HTTP as a tenant would.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use functionary_api::AppState;
use functionary_api::auth::Keys;
use functionary_store::{SqliteSynchronous, Store, StoreOptions};
use serde_json::{Value, json};

use crate::allocations::Counting;
use crate::load::Acked;
use crate::workload::{self, MODEL, Write};

/// A server running in this process until dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Server {
    /// Opens (and migrates) the store at `url` and serves it on a free loopback port, on a
    /// runtime of `threads` worker threads.
    pub async fn start(
        url: &str,
        synchronous: SqliteSynchronous,
        threads: usize,
        keys: Keys,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("server")
            .on_thread_start(Counting::mark_server_thread)
            .enable_all()
            .build()?;
        let options = StoreOptions {
            sqlite_synchronous: synchronous,
            ..StoreOptions::default()
        };
        let url = url.to_owned();
        let addr = runtime
            .spawn(async move {
                let store = Store::open(&url, options)
                    .await
                    .with_context(|| format!("can not open {url}"))?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
                let app = functionary_api::app(AppState::new(store, keys));
                tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
                anyhow::Ok(addr)
            })
            .await??;
        Ok(Self {
            addr,
            runtime: Some(runtime),
        })
    }
}

/// A tenant's view of the server: its key and a pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Tenant {
    client: reqwest::Client,
    base: String,
    authorization: String,
}

impl Tenant {
    /// Creates the bench tenant with its config through the admin API and issues a key.
    pub async fn onboard(server: &Server, keys: &Keys, slug: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://{}", server.addr);
        let admin = format!(
            "Bearer {}",
            keys.issue_admin_token(Duration::from_secs(3600))?
        );
        let config = workload::CONFIG.replace("tenant: bench", &format!("tenant: {slug}"));
        admin_call(
            client
                .post(format!("{base}/admin/v1/tenants"))
                .header("authorization", &admin)
                .json(&json!({"slug": slug, "config": config})),
        )
        .await?;
        let issued: Value = admin_call(
            client
                .post(format!("{base}/admin/v1/tenants/{slug}/keys"))
                .header("authorization", &admin)
                .json(&json!({"name": "bench", "scopes": ["ingest", "read"]})),
        )
        .await?;
        let Some(token) = issued["token"].as_str() else {
            bail!("no token in the key issued: {issued}");
        };
        Ok(Self {
            client,
            base,
            authorization: format!("Bearer {token}"),
        })
    }

    /// Sends `write` as the tenant's backend would, and says what the answer acknowledged.
    pub async fn send(&self, write: Write) -> Result<Acked, String> {
        let (path, body) = match &write {
            Write::IdentifyNew { ids, plan, seats } => (
                "identify",
                json!({"model": MODEL, "ids": ids, "properties": {"plan": plan, "seats": seats}}),
            ),
            Write::IdentifyExisting { ids, plan, seats } => (
                "identify",
                json!({"model": MODEL, "ids": ids, "properties": {"plan": plan, "seats": seats}}),
            ),
            Write::Event { id } => ("events", event(id)),
            Write::Batch { ids } => (
                "batch",
                json!({"batch": ids.iter().map(|id| {
                    let mut item = event(id);
                    item["type"] = json!("event");
                    item
                }).collect::<Vec<_>>()}),
            ),
        };
        let response = self
            .client
            .post(format!("{}/api/v1/{path}", self.base))
            .header("authorization", &self.authorization)
            .json(&body)
            .send()
            .await
            .map_err(|error| format!("{path}: {error}"))?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|error| format!("{path}: {error}"))?;
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&text)
            ));
        }
        let answered = |needle: &str| count(&text, needle.as_bytes()) as u64;
        let acked = match write {
            Write::IdentifyNew { .. } if answered("\"created\":true") == 1 => Acked {
                units: 1,
                events: 1,
                instances: 1,
            },
            Write::IdentifyExisting { .. } if answered("\"created\":false") == 1 => Acked {
                units: 1,
                events: 1,
                instances: 0,
            },
            Write::Event { .. } if answered("\"accepted\":true") == 1 => Acked {
                units: 1,
                events: 1,
                instances: 0,
            },
            Write::Batch { ids } => {
                let accepted = answered("\"accepted\":true");
                if accepted != ids.len() as u64 {
                    return Err(format!(
                        "batch: {accepted} of {} events accepted: {}",
                        ids.len(),
                        String::from_utf8_lossy(&text)
                    ));
                }
                Acked {
                    units: accepted,
                    events: accepted,
                    instances: 0,
                }
            }
            _ => {
                return Err(format!(
                    "{path}: unexpected answer {}",
                    String::from_utf8_lossy(&text)
                ));
            }
        };
        Ok(acked)
    }
}

fn event(id: &str) -> Value {
    json!({"name": "api_call", "ids": [id], "properties": {"endpoint": "/v1/things", "status": 200}})
}

async fn admin_call(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("admin API answered {status}: {body}");
    }
    Ok(body)
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}
