//! The HTTP API over a real socket (DESIGN §2–§9), on both backends: every endpoint's answer,
//! every error status of §8 with its envelope, tenant isolation, tokens, body limits (with and
//! without `Content-Length`), and configs and revocations taking effect on the very next request.
//!
//! Each test starts its own server on 127.0.0.1 (random port) over its own store, and creates its
//! own tenants with unique slugs through the admin API, so tests sharing a PostgreSQL database
//! never see each other's data.
//!
//! Not covered here: an *expired* tenant key. Keys issued by the platform have no `exp`, and
//! forging one that has needs HMAC-SHA256, which no dev-dependency of this package offers; the
//! unit tests of `functionary_api::auth` cover it (`expired_tenant_key_refused`), and the HTTP
//! layer answers every verification failure the same way (401, checked here for the others).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use functionary_api::AppState;
use functionary_api::auth::{Keys, Scope};
use functionary_store::{Store, StoreOptions, TenantId};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Backend, TEST_CONFIG, postgres_url, unique_suffix};

/// The platform secret of the test servers.
const SECRET: [u8; 32] = [7; 32];
/// Another secret: tokens signed with it are forgeries.
const OTHER_SECRET: [u8; 32] = [9; 32];
/// base64url of `{"alg":"none","typ":"JWT"}`.
const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
/// One mebibyte, the unit of the body limits of DESIGN §9.
const MIB: usize = 1024 * 1024;

/// A server on a real socket, over a store of its own.
struct TestServer {
    addr: SocketAddr,
    http: reqwest::Client,
    /// The platform keys, to mint admin tokens and forge or re-sign tenant keys.
    keys: Keys,
    /// A valid admin token.
    admin: String,
    /// The store behind the server, for what HTTP does not show (a tenant's store id).
    store: Store,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Where the SQLite file lives; kept as long as the server.
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An answer: status, content type and body text.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }
}

/// A tenant created for one test, with a key holding both scopes.
#[derive(Debug)]
struct Tenant {
    slug: String,
    token: String,
}

/// An issued key.
#[derive(Debug)]
struct Key {
    key_id: String,
    token: String,
}

impl TestServer {
    /// A server over a fresh SQLite file, or over the PostgreSQL database of the test run
    /// (`None` when PostgreSQL tests are skipped).
    async fn start(backend: Backend) -> Option<Self> {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (url, Some(dir))
            }
            Backend::Postgres => (postgres_url()?, None),
        };
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("the store opens");
        let keys = Keys::new(&SECRET).expect("the test secret is valid");
        let admin = keys
            .issue_admin_token(Duration::from_secs(600))
            .expect("an admin token");
        let state = AppState::new(store.clone(), keys.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("the bound address");
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("an acceptor");
        let server = tokio::spawn(
            poem::Server::new_with_acceptor(acceptor).run(functionary_api::app(state)),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Some(Self {
            addr,
            http,
            keys,
            admin,
            store,
            server,
            _dir: dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("the body is text");
        Reply {
            status,
            content_type,
            text,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::GET, path, token)).await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::DELETE, path, token)).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(self.request(Method::POST, path, token).json(body))
            .await
    }

    /// A POST with a raw body and content type.
    async fn post_raw(&self, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.request(Method::POST, path, Some(token))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// `POST /api/v1/identify`, which must succeed; its body.
    async fn identify(&self, token: &str, body: Value) -> Value {
        ok(&self.post("/api/v1/identify", Some(token), &body).await)
    }

    /// `POST /api/v1/events`, which must answer 200; its body.
    async fn track(&self, token: &str, body: Value) -> Value {
        ok(&self.post("/api/v1/events", Some(token), &body).await)
    }

    /// `GET` of one instance, which must exist; its body.
    async fn instance(&self, token: &str, model: &str, id: &str) -> Value {
        ok_with(
            &self
                .get(
                    &format!("/api/v1/models/{model}/instances/{id}"),
                    Some(token),
                )
                .await,
            200,
        )
    }

    /// `PUT /admin/v1/tenants/{slug}/config` with `yaml` as the body.
    async fn put_config(&self, slug: &str, yaml: &str) -> Reply {
        self.send(
            self.request(
                Method::PUT,
                &format!("/admin/v1/tenants/{slug}/config"),
                Some(&self.admin),
            )
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(yaml.to_owned()),
        )
        .await
    }

    /// A new tenant with `config` (version 1); its slug.
    async fn create_tenant(&self, config: &str) -> String {
        let slug = format!("t-{}", unique_suffix());
        let reply = self
            .post(
                "/admin/v1/tenants",
                Some(&self.admin),
                &json!({"slug": slug, "config": config}),
            )
            .await;
        let body = ok_with(&reply, 201);
        assert_eq!(body["slug"], slug.as_str());
        slug
    }

    /// Issues a key of `slug` with `scopes`.
    async fn key(&self, slug: &str, scopes: &[&str]) -> Key {
        let reply = self
            .post(
                &format!("/admin/v1/tenants/{slug}/keys"),
                Some(&self.admin),
                &json!({"scopes": scopes}),
            )
            .await;
        let body = ok_with(&reply, 201);
        Key {
            key_id: body["keyId"].as_str().expect("keyId").to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// A new tenant with the test config and a key with both scopes.
    async fn tenant(&self) -> Tenant {
        let slug = self.create_tenant(TEST_CONFIG).await;
        let token = self.key(&slug, &["ingest", "read"]).await.token;
        Tenant { slug, token }
    }

    /// The store id of a tenant (the `tid` claim of its keys), which HTTP never shows.
    async fn tenant_id(&self, slug: &str) -> TenantId {
        self.store
            .tenant_by_slug(slug)
            .await
            .expect("the store answers")
            .expect("the tenant exists")
            .id
    }

    /// Sends one raw HTTP/1.1 request on a new connection and reads the answer. The request is
    /// written while the answer is read, so an early answer (a 413 before the whole body was
    /// sent) is read even if the server stops reading.
    async fn raw(&self, request: Vec<u8>) -> Reply {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect to the server");
        let (mut reader, mut writer) = stream.into_split();
        let writing = tokio::spawn(async move {
            // A server that answered early may close before reading everything: not an error.
            let _ = writer.write_all(&request).await;
            let _ = writer.flush().await;
            // Keep the write half open until the answer is read: no half-close mid-request.
            writer
        });
        let mut received = Vec::new();
        let mut buffer = vec![0_u8; 64 * 1024];
        let reply = loop {
            if let Some(reply) = parse_response(&received) {
                break reply;
            }
            let read = tokio::time::timeout(Duration::from_secs(30), reader.read(&mut buffer))
                .await
                .expect("the server answers within 30 s");
            match read {
                Ok(0) | Err(_) => {
                    break parse_response(&received).unwrap_or_else(|| {
                        panic!("incomplete answer: {}", String::from_utf8_lossy(&received))
                    });
                }
                Ok(count) => received.extend_from_slice(&buffer[..count]),
            }
        };
        writing.abort();
        reply
    }
}

/// A POST of `body` to `path` with `Content-Length`, as raw bytes.
fn sized_request(path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A POST of `body` to `path` in 64 KiB chunks, without `Content-Length`.
fn chunked_request(path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// The answer in `bytes`, once it is complete (by `Content-Length` or chunked encoding).
fn parse_response(bytes: &[u8]) -> Option<Reply> {
    let end = bytes.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let body = &bytes[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .split(' ')
        .nth(1)?
        .parse()
        .expect("a numeric status");
    let mut content_type = String::new();
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-type" => value.clone_into(&mut content_type),
            "content-length" => length = Some(value.parse::<usize>().expect("a length")),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        decode_chunked(body)?
    } else {
        body.get(..length.unwrap_or(0))?.to_vec()
    };
    Some(Reply {
        status,
        content_type,
        text: String::from_utf8(body).expect("a UTF-8 body"),
    })
}

/// The payload of a complete chunked body; `None` while incomplete.
fn decode_chunked(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|window| window == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&bytes[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size + 2..)?;
    }
}

/// `json` padded with spaces to exactly `size` bytes: still valid JSON.
fn padded(json: &Value, size: usize) -> Vec<u8> {
    let mut bytes = json.to_string().into_bytes();
    assert!(
        bytes.len() <= size,
        "the JSON is already larger than {size}"
    );
    bytes.resize(size, b' ');
    bytes
}

/// Asserts a success with `status` and a JSON body with no `null` anywhere; the body.
#[track_caller]
fn ok_with(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "unexpected answer: {}", reply.text);
    assert!(
        reply.content_type.starts_with("application/json"),
        "content type {:?}",
        reply.content_type
    );
    let body = reply.json();
    assert_no_nulls(&body, "");
    body
}

/// Asserts a 200 whose body repeats it in `statusCode`; the body.
#[track_caller]
fn ok(reply: &Reply) -> Value {
    let body = ok_with(reply, 200);
    assert_eq!(body["statusCode"], 200, "{body}");
    body
}

/// Optional fields without a value are left out, never sent as `null` (DESIGN §8).
#[track_caller]
fn assert_no_nulls(value: &Value, at: &str) {
    match value {
        Value::Null => panic!("null at {at:?}"),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                assert_no_nulls(item, &format!("{at}/{index}"));
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                assert_no_nulls(field, &format!("{at}/{name}"));
            }
        }
        _ => {}
    }
}

/// Asserts the error envelope `{"statusCode": status, "error": {"code": code, "message", ...}}`;
/// its `error` object.
#[track_caller]
fn error(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "unexpected answer: {}", reply.text);
    assert!(
        reply.content_type.starts_with("application/json"),
        "content type {:?} of {}",
        reply.content_type,
        reply.text
    );
    let body = reply.json();
    assert_envelope(&body, status, code);
    body["error"].clone()
}

/// Asserts that `body` is the error envelope with `status` and `code`.
#[track_caller]
fn assert_envelope(body: &Value, status: u16, code: &str) {
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "no message: {body}");
    let fields: BTreeSet<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, BTreeSet::from(["error", "statusCode"]), "{body}");
    for leak in ["SELECT", "INSERT", "diesel", "panicked", "src/"] {
        assert!(!body.to_string().contains(leak), "{leak} in {body}");
    }
}

/// The `details` of an error object, each as its `field` values (`""` when absent).
fn details(error: &Value, field: &str) -> Vec<String> {
    error["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {error}"))
        .iter()
        .map(|detail| detail[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The ids of an `ids` array, in no particular order (the contract sets none).
fn id_set(ids: &Value) -> BTreeSet<String> {
    ids.as_array()
        .unwrap_or_else(|| panic!("not an array: {ids}"))
        .iter()
        .map(text)
        .collect()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// The `alg: none` variant of `token`: its real claims, no signature.
fn unsigned(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    format!("{NONE_HEADER}.{payload}.")
}

/// Defines each named test twice, `sqlite::NAME` and `postgres::NAME`, each calling the async fn
/// `NAME` with a [`TestServer`] on that backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = super::TestServer::start(super::Backend::Sqlite)
                        .await
                        .expect("SQLite is always available");
                    super::$name(server).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = super::TestServer::start(super::Backend::Postgres).await
                    else {
                        return;
                    };
                    super::$name(server).await;
                }
            )*
        }
    };
}

const NEW_CONFIG: &str = "models:\n  - name: organization\n  - name: customer\n  - name: widget\n";

on_both_backends!(
    identify_creates_then_updates_with_mixed_ids,
    events_are_accepted_discarded_deduplicated_and_listed,
    batch_applies_items_in_order,
    batch_of_events_answers_as_the_single_calls,
    instance_shows_parents_children_and_pending_links,
    instances_are_listed_page_by_page,
    delete_removes_the_instance,
    admin_creates_lists_and_reads_tenants,
    config_upload_takes_effect_on_the_next_request,
    keys_are_issued_listed_and_revoked_at_once,
    health_metrics_spec_and_docs,
    malformed_unknown_and_unsupported_requests,
    credentials_and_scopes_are_checked,
    ids_of_two_instances_conflict,
    invalid_input_is_422_with_details,
    body_limits_hold_with_and_without_content_length,
    another_tenants_key_sees_nothing,
    forged_unsigned_and_wrong_kind_tokens_are_refused,
    ids_that_are_neither_strings_nor_integers_are_invalid_id,
    every_json_syntax_error_is_400,
);

// §2: created, then updated through a string or an integer spelling of the same id.
async fn identify_creates_then_updates_with_mixed_ids(s: TestServer) {
    let t = s.tenant().await;
    let created = s
        .identify(
            &t.token,
            json!({
                "model": "customer",
                "ids": [42, "ada@example.com"],
                "displayName": "Ada",
                "properties": {"email": "ada@example.com"},
            }),
        )
        .await;
    assert_eq!(created["created"], true);
    assert_eq!(created["model"], "customer");
    assert_eq!(
        created["ids"],
        json!(["42", "ada@example.com"]),
        "42 is normalised to \"42\""
    );
    assert_eq!(created["pending"], 0);
    let instance_id = text(&created["instanceId"]);
    assert!(!instance_id.is_empty());
    let fields: BTreeSet<&str> = created
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "created",
            "ids",
            "instanceId",
            "model",
            "pending",
            "statusCode"
        ])
    );

    let updated = s
        .identify(
            &t.token,
            json!({"model": "customer", "ids": ["42", 7], "properties": {"age": 36}}),
        )
        .await;
    assert_eq!(updated["created"], false);
    assert_eq!(updated["instanceId"], instance_id.as_str());
    assert_eq!(
        id_set(&updated["ids"]),
        id_set(&json!(["42", "ada@example.com", "7"]))
    );

    let view = s.instance(&t.token, "customer", "7").await;
    assert_eq!(view["instanceId"], instance_id.as_str());
    assert_eq!(view["displayName"], "Ada");
    assert_eq!(
        view["properties"],
        json!({"email": "ada@example.com", "age": 36})
    );
    // A key sent as null is removed.
    s.identify(
        &t.token,
        json!({"model": "customer", "ids": [42], "properties": {"age": null}}),
    )
    .await;
    let view = s.instance(&t.token, "customer", "ada@example.com").await;
    assert_eq!(view["properties"], json!({"email": "ada@example.com"}));
}

// §3: accepted, thrown out, deduplicated, the alias `event`, the deprecated path, and §4:
// the instance's events newest first, page by page.
async fn events_are_accepted_discarded_deduplicated_and_listed(s: TestServer) {
    let t = s.tenant().await;
    let customer = s
        .identify(&t.token, json!({"model": "customer", "ids": ["e-1"]}))
        .await;
    let instance_id = text(&customer["instanceId"]);

    let first = s
        .track(
            &t.token,
            json!({
                "name": "sign_up", "ids": ["e-1"], "properties": {"plan": "pro"},
                "timestamp": "2024-01-01T00:00:01Z", "messageId": "m-1",
            }),
        )
        .await;
    assert_eq!(first["accepted"], true);
    assert_eq!(first["instanceId"], instance_id.as_str());
    assert_eq!(first["duplicate"], false);
    assert!(first.get("reason").is_none(), "{first}");
    let event_id = text(&first["eventId"]);

    let again = s
        .track(
            &t.token,
            json!({
                "name": "sign_up", "ids": ["e-1"], "properties": {"plan": "pro"},
                "timestamp": "2024-01-01T00:00:01Z", "messageId": "m-1",
            }),
        )
        .await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["eventId"], event_id.as_str());

    let unknown = s
        .track(&t.token, json!({"name": "login", "ids": ["nobody"]}))
        .await;
    assert_eq!(
        unknown,
        json!({"statusCode": 200, "accepted": false, "reason": "unknown_instance"})
    );

    let alias = s
        .track(
            &t.token,
            json!({"event": "login", "ids": ["e-1"], "timestamp": "2024-01-01T00:00:02Z"}),
        )
        .await;
    assert_eq!(alias["accepted"], true);
    let legacy = ok(&s
        .post(
            "/api/v1/event",
            Some(&t.token),
            &json!({
                "name": "logout", "ids": ["e-1"], "model": "customer",
                "timestamp": "2024-01-01T00:00:03Z",
            }),
        )
        .await);
    assert_eq!(legacy["accepted"], true);
    assert_eq!(legacy["instanceId"], instance_id.as_str());
    s.track(
        &t.token,
        json!({"name": "login", "ids": ["e-1"], "timestamp": "2024-01-01T00:00:04Z"}),
    )
    .await;

    // Five events: the identify's own (now), then 04, 03, 02, 01.
    let mut names = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => {
                format!("/api/v1/models/customer/instances/e-1/events?limit=2&cursor={cursor}")
            }
            None => "/api/v1/models/customer/instances/e-1/events?limit=2".to_owned(),
        };
        let page = ok_with(&s.get(&path, Some(&t.token)).await, 200);
        let events = page["events"].as_array().expect("events").clone();
        pages.push(events.len());
        for event in &events {
            names.push(text(&event["name"]));
            for field in ["eventId", "timestamp", "receivedAt"] {
                assert!(event[field].is_string(), "{field} of {event}");
            }
            assert!(event["properties"].is_object());
        }
        match page.get("nextCursor") {
            Some(next) => cursor = Some(text(next)),
            None => break,
        }
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(
        names,
        [
            "onFunctionaryIdentify",
            "login",
            "logout",
            "login",
            "sign_up"
        ]
    );
    let all = ok_with(
        &s.get(
            "/api/v1/models/customer/instances/e-1/events?limit=5",
            Some(&t.token),
        )
        .await,
        200,
    );
    assert!(
        all.get("nextCursor").is_none(),
        "a full last page has no cursor: {all}"
    );
    assert_eq!(all["events"][4]["eventId"], event_id.as_str());
    assert_eq!(all["events"][4]["properties"], json!({"plan": "pro"}));
    let bad = s
        .get(
            "/api/v1/models/customer/instances/e-1/events?cursor=garbage",
            Some(&t.token),
        )
        .await;
    error(&bad, 422, "invalid_cursor");
}

// §3: items applied in order, each answering what the single call would; a bad item is an
// error envelope among the results and fails nothing else.
async fn batch_applies_items_in_order(s: TestServer) {
    let t = s.tenant().await;
    let reply = s
        .post("/api/v1/batch", Some(&t.token), &json!({"batch": [
            {"type": "event", "name": "early", "ids": ["b-1"]},
            {"type": "identify", "model": "customer", "ids": ["b-1"], "properties": {"age": 3}},
            {"type": "event", "name": "login", "ids": ["b-1"], "messageId": "bm-1"},
            {"type": "identify", "model": "spaceship", "ids": ["b-2"]},
            {"type": "identify", "model": "customer", "ids": ["b-1", "b-1@example.com"]},
            {"type": "event", "name": "login", "ids": ["b-1@example.com"], "messageId": "bm-1"},
            {"type": "identify", "model": "customer", "ids": ["b-3"], "properties": {"age": -1}},
            {"type": "identify", "model": "customer", "ids": ["b-4"], "childID": ["b-1"]},
            {"type": "merge", "ids": ["b-1"]},
            {"type": "identify", "model": "project", "ids": ["b-5"]},
        ]}))
        .await;
    let body = ok(&reply);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 10, "{body}");
    assert_eq!(
        results[0],
        json!({"statusCode": 200, "accepted": false, "reason": "unknown_instance"})
    );
    assert_eq!(results[1]["statusCode"], 200);
    assert_eq!(results[1]["created"], true);
    let instance_id = text(&results[1]["instanceId"]);
    assert_eq!(results[2]["accepted"], true);
    assert_eq!(results[2]["instanceId"], instance_id.as_str());
    assert_envelope(&results[3], 422, "unknown_model");
    assert_eq!(results[4]["created"], false);
    assert_eq!(results[4]["instanceId"], instance_id.as_str());
    assert_eq!(
        id_set(&results[4]["ids"]),
        id_set(&json!(["b-1", "b-1@example.com"]))
    );
    assert_eq!(results[5]["duplicate"], true);
    assert_eq!(results[5]["eventId"], results[2]["eventId"]);
    assert_envelope(&results[6], 422, "invalid_properties");
    assert_envelope(&results[7], 422, "invalid_request");
    assert_envelope(&results[8], 422, "invalid_request");
    assert_eq!(
        results[9]["created"], true,
        "items after bad ones still apply"
    );

    let view = s.instance(&t.token, "customer", "b-1@example.com").await;
    assert_eq!(view["properties"], json!({"age": 3}));
    for id in ["b-3", "b-4"] {
        let missing = s
            .get(
                &format!("/api/v1/models/customer/instances/{id}"),
                Some(&t.token),
            )
            .await;
        error(&missing, 404, "instance_not_found");
    }
}

// §3: events of a batch, applied together, answer byte for byte what the single calls would:
// an identify is visible to the events after it, a messageId seen earlier in the batch is a
// duplicate, a conflict is an error entry in its place, and only new events are stored.
async fn batch_of_events_answers_as_the_single_calls(s: TestServer) {
    let t = s.tenant().await;
    let a = s
        .identify(&t.token, json!({"model": "customer", "ids": ["ba-1"]}))
        .await;
    s.identify(&t.token, json!({"model": "customer", "ids": ["ba-2"]}))
        .await;
    let mut batch = vec![
        json!({"type": "identify", "model": "customer", "ids": ["bf-1"]}),
        json!({"type": "event", "name": "login", "ids": ["bf-1"], "messageId": "bx-1"}),
        json!({"type": "event", "name": "login", "ids": ["nobody"]}),
        json!({"type": "event", "name": "login", "ids": ["ba-1", "ba-2"]}),
        json!({"type": "event", "name": "retry", "ids": ["bf-1"], "messageId": "bx-1"}),
        json!({"type": "event", "name": "login", "idz": ["bf-1"]}),
        json!({"type": "event", "name": "sign_up", "ids": ["ba-1"]}),
    ];
    batch.extend((0..100).map(
        |n| json!({"type": "event", "name": "view", "ids": ["ba-1"], "properties": {"n": n}}),
    ));
    let body = ok(&s
        .post("/api/v1/batch", Some(&t.token), &json!({"batch": batch}))
        .await);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 107, "{body}");
    assert_eq!(results[0]["created"], true);
    let fresh = text(&results[0]["instanceId"]);
    let stored = &results[1];
    assert_eq!(stored["accepted"], true);
    assert_eq!(stored["duplicate"], false);
    assert_eq!(stored["instanceId"], fresh.as_str());
    assert_eq!(
        results[4],
        json!({"statusCode": 200, "accepted": true, "eventId": stored["eventId"], "instanceId": fresh, "duplicate": true})
    );
    assert_envelope(&results[5], 422, "invalid_request");
    assert_envelope(&results[6], 422, "invalid_properties");
    for result in &results[7..] {
        assert_eq!(result["instanceId"], a["instanceId"], "{result}");
        assert_eq!(result["duplicate"], false, "{result}");
    }
    // The single calls, on the state the batch left, answer the same bodies.
    for (position, call) in [
        (2, &batch[2]),
        (3, &batch[3]),
        (4, &batch[4]),
        (6, &batch[6]),
    ] {
        let mut call = call.clone();
        call.as_object_mut().expect("an object").remove("type");
        let single = s.post("/api/v1/events", Some(&t.token), &call).await;
        assert_eq!(results[position], single.json(), "item {position}");
        assert_eq!(
            results[position]["statusCode"], single.status,
            "item {position}"
        );
    }
    let events = ok_with(
        &s.get(
            "/api/v1/models/customer/instances/bf-1/events",
            Some(&t.token),
        )
        .await,
        200,
    );
    let names: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["login", "onFunctionaryIdentify"]);
    let mut views = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => {
                format!("/api/v1/models/customer/instances/ba-1/events?limit=100&cursor={cursor}")
            }
            None => "/api/v1/models/customer/instances/ba-1/events?limit=100".to_owned(),
        };
        let page = ok_with(&s.get(&path, Some(&t.token)).await, 200);
        views += page["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|event| event["name"] == "view")
            .count();
        match page.get("nextCursor") {
            Some(next) => cursor = Some(text(next)),
            None => break,
        }
    }
    assert_eq!(views, 100);
}

// §4: one instance with its parents, children and pending links; absent optional fields.
async fn instance_shows_parents_children_and_pending_links(s: TestServer) {
    let t = s.tenant().await;
    let org = s
        .identify(
            &t.token,
            json!({
                "model": "organization", "ids": ["acme"], "properties": {"plan": "pro"},
                "childIds": ["c-1", "c-2"], "childModel": "customer",
            }),
        )
        .await;
    assert_eq!(org["pending"], 2);
    let customer = s
        .identify(&t.token, json!({"model": "customer", "ids": ["c-1"]}))
        .await;

    let view = s.instance(&t.token, "organization", "acme").await;
    assert_eq!(view["instanceId"], org["instanceId"]);
    assert_eq!(view["model"], "organization");
    assert_eq!(view["ids"], json!(["acme"]));
    assert!(
        view.get("displayName").is_none(),
        "absent, not null: {view}"
    );
    assert_eq!(view["properties"], json!({"plan": "pro"}));
    assert_eq!(view["parents"], json!([]));
    assert_eq!(
        view["children"],
        json!([{"instanceId": customer["instanceId"], "model": "customer", "ids": ["c-1"]}])
    );
    assert_eq!(
        view["pending"],
        json!([{"role": "child", "id": "c-2", "model": "customer"}])
    );
    assert!(
        view["createdAt"].is_string() && view["updatedAt"].is_string(),
        "{view}"
    );

    let child = s.instance(&t.token, "customer", "c-1").await;
    assert_eq!(
        child["parents"],
        json!([{"instanceId": org["instanceId"], "model": "organization", "ids": ["acme"]}])
    );
    // A pending link without a model: any model will do, and `model` is left out.
    let project = s
        .identify(
            &t.token,
            json!({"model": "project", "ids": ["p-1"], "parentIds": ["later"]}),
        )
        .await;
    assert_eq!(project["pending"], 1);
    let view = s.instance(&t.token, "project", "p-1").await;
    assert_eq!(view["pending"], json!([{"role": "parent", "id": "later"}]));
}

// §4: every instance of a model, page by page, the last page without a cursor.
async fn instances_are_listed_page_by_page(s: TestServer) {
    let t = s.tenant().await;
    let mut created = BTreeSet::new();
    for n in 0..5 {
        let body = s
            .identify(
                &t.token,
                json!({"model": "project", "ids": [format!("p-{n}")]}),
            )
            .await;
        created.insert(text(&body["instanceId"]));
    }
    s.identify(
        &t.token,
        json!({"model": "customer", "ids": ["not-a-project"]}),
    )
    .await;

    let mut seen = BTreeSet::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/models/project/instances?limit=2&cursor={cursor}"),
            None => "/api/v1/models/project/instances?limit=2".to_owned(),
        };
        let page = ok_with(&s.get(&path, Some(&t.token)).await, 200);
        let instances = page["instances"].as_array().expect("instances");
        pages.push(instances.len());
        for instance in instances {
            assert_eq!(instance["model"], "project");
            assert!(
                seen.insert(text(&instance["instanceId"])),
                "listed twice: {instance}"
            );
        }
        match page.get("nextCursor") {
            Some(next) => cursor = Some(text(next)),
            None => break,
        }
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen, created);
    let all = ok_with(
        &s.get("/api/v1/models/project/instances?limit=5", Some(&t.token))
            .await,
        200,
    );
    assert_eq!(all["instances"].as_array().map(Vec::len), Some(5));
    assert!(
        all.get("nextCursor").is_none(),
        "a full last page has no cursor: {all}"
    );
    let default = ok_with(
        &s.get("/api/v1/models/project/instances", Some(&t.token))
            .await,
        200,
    );
    assert_eq!(default["instances"].as_array().map(Vec::len), Some(5));
    let empty = ok_with(
        &s.get("/api/v1/models/organization/instances", Some(&t.token))
            .await,
        200,
    );
    assert_eq!(empty, json!({"instances": []}));
    let zero = s
        .get("/api/v1/models/project/instances?limit=0", Some(&t.token))
        .await;
    error(&zero, 422, "invalid_request");
}

// §4: a privacy deletion answers 204 and the instance is gone with its ids and events.
async fn delete_removes_the_instance(s: TestServer) {
    let t = s.tenant().await;
    let before = s
        .identify(
            &t.token,
            json!({"model": "customer", "ids": ["d-1", "d-2"]}),
        )
        .await;
    s.track(&t.token, json!({"name": "login", "ids": ["d-1"]}))
        .await;
    let reply = s
        .delete("/api/v1/models/customer/instances/d-2", Some(&t.token))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
    assert!(reply.text.is_empty(), "{}", reply.text);
    for path in [
        "/api/v1/models/customer/instances/d-1",
        "/api/v1/models/customer/instances/d-2",
        "/api/v1/models/customer/instances/d-1/events",
    ] {
        error(
            &s.get(path, Some(&t.token)).await,
            404,
            "instance_not_found",
        );
    }
    error(
        &s.delete("/api/v1/models/customer/instances/d-1", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
    let gone = s
        .track(&t.token, json!({"name": "login", "ids": ["d-1"]}))
        .await;
    assert_eq!(gone["accepted"], false);
    let after = s
        .identify(&t.token, json!({"model": "customer", "ids": ["d-1"]}))
        .await;
    assert_eq!(after["created"], true);
    assert_ne!(after["instanceId"], before["instanceId"]);
}

// §5: creating, listing and reading tenants.
async fn admin_creates_lists_and_reads_tenants(s: TestServer) {
    let slug = format!("t-{}", unique_suffix());
    let reply = s
        .post(
            "/admin/v1/tenants",
            Some(&s.admin),
            &json!({"slug": slug, "displayName": "Acme", "config": TEST_CONFIG}),
        )
        .await;
    let created = ok_with(&reply, 201);
    assert_eq!(created["slug"], slug.as_str());
    assert_eq!(created["displayName"], "Acme");
    assert_eq!(created["configVersion"], 1);
    assert!(created["createdAt"].is_string());

    let again = s
        .post("/admin/v1/tenants", Some(&s.admin), &json!({"slug": slug}))
        .await;
    error(&again, 409, "tenant_exists");

    let bare = format!("t-{}", unique_suffix());
    let reply = s
        .post("/admin/v1/tenants", Some(&s.admin), &json!({"slug": bare}))
        .await;
    let bare_view = ok_with(&reply, 201);
    assert!(
        bare_view.get("configVersion").is_none(),
        "no config yet: {bare_view}"
    );
    assert!(bare_view.get("displayName").is_none(), "{bare_view}");
    let key = s.key(&bare, &["ingest"]).await;
    let no_config = s
        .post(
            "/api/v1/identify",
            Some(&key.token),
            &json!({"model": "customer", "ids": [1]}),
        )
        .await;
    error(&no_config, 422, "unknown_model");
    error(
        &s.get(&format!("/admin/v1/tenants/{bare}/config"), Some(&s.admin))
            .await,
        404,
        "config_not_found",
    );

    let broken = format!("t-{}", unique_suffix());
    let config = "models:\n  - name: customer\n    schemaa: {type: object}\n";
    let reply = s
        .post(
            "/admin/v1/tenants",
            Some(&s.admin),
            &json!({"slug": broken, "config": config}),
        )
        .await;
    let refused = error(&reply, 422, "invalid_config");
    assert!(
        refused["details"]
            .as_array()
            .expect("details")
            .iter()
            .any(|detail| detail["line"] == 3
                && detail["column"].as_u64().is_some_and(|column| column >= 1)
                && detail["pointer"]
                    .as_str()
                    .is_some_and(|pointer| pointer.starts_with("/models/0"))),
        "located details: {refused}"
    );
    error(
        &s.get(&format!("/admin/v1/tenants/{broken}"), Some(&s.admin))
            .await,
        404,
        "tenant_not_found",
    );
    let bad_slug = s
        .post(
            "/admin/v1/tenants",
            Some(&s.admin),
            &json!({"slug": "Not A Slug"}),
        )
        .await;
    error(&bad_slug, 422, "invalid_request");

    let list = ok_with(&s.get("/admin/v1/tenants", Some(&s.admin)).await, 200);
    let listed: Vec<&Value> = list["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter(|tenant| tenant["slug"] == slug.as_str() || tenant["slug"] == bare.as_str())
        .collect();
    assert_eq!(listed.len(), 2, "{list}");
    assert!(
        list["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .all(|tenant| tenant["slug"] != broken.as_str())
    );

    let one = ok_with(
        &s.get(&format!("/admin/v1/tenants/{slug}"), Some(&s.admin))
            .await,
        200,
    );
    assert_eq!(one, created);
    let unknown = s
        .get("/admin/v1/tenants/no-such-tenant-here", Some(&s.admin))
        .await;
    error(&unknown, 404, "tenant_not_found");
}

// §5: a config upload is a new version, active on the very next request.
async fn config_upload_takes_effect_on_the_next_request(s: TestServer) {
    let t = s.tenant().await;
    s.identify(&t.token, json!({"model": "project", "ids": ["kept"]}))
        .await;
    let widget = s
        .post(
            "/api/v1/identify",
            Some(&t.token),
            &json!({"model": "widget", "ids": ["w-1"]}),
        )
        .await;
    error(&widget, 422, "unknown_model");

    let put = ok_with(&s.put_config(&t.slug, NEW_CONFIG).await, 200);
    assert_eq!(put, json!({"version": 2}));
    let widget = s
        .identify(&t.token, json!({"model": "widget", "ids": ["w-1"]}))
        .await;
    assert_eq!(widget["created"], true);
    let project = s
        .post(
            "/api/v1/identify",
            Some(&t.token),
            &json!({"model": "project", "ids": ["kept"]}),
        )
        .await;
    let refused = error(&project, 422, "unknown_model");
    assert_eq!(details(&refused, "pointer"), ["/model"]);
    // `customer` lost its schema: what was invalid is now accepted.
    s.identify(
        &t.token,
        json!({"model": "customer", "ids": ["c"], "properties": {"age": -1}}),
    )
    .await;

    let config = ok_with(
        &s.get(
            &format!("/admin/v1/tenants/{}/config", t.slug),
            Some(&s.admin),
        )
        .await,
        200,
    );
    assert_eq!(config, json!({"version": 2, "yaml": NEW_CONFIG}));

    let broken = s
        .put_config(
            &t.slug,
            "models:\n  - name: customer\n  - name: customer\n    parents: [nowhere]\n",
        )
        .await;
    let refused = error(&broken, 422, "invalid_config");
    let located = refused["details"].as_array().expect("details");
    assert!(!located.is_empty());
    for detail in located {
        assert!(
            detail["line"].as_u64().is_some_and(|line| line >= 2),
            "{detail}"
        );
        assert!(
            detail["column"].as_u64().is_some_and(|column| column >= 1),
            "{detail}"
        );
        assert!(
            detail["pointer"].is_string() && detail["message"].is_string(),
            "{detail}"
        );
    }
    let syntax = s.put_config(&t.slug, "models: [\n").await;
    let refused = error(&syntax, 422, "invalid_config");
    assert!(refused["details"][0]["line"].is_u64(), "{refused}");
    let other = s
        .put_config(
            &t.slug,
            "tenant: someone-else\nmodels: [{name: customer}]\n",
        )
        .await;
    error(&other, 422, "invalid_config");
    let config = ok_with(
        &s.get(
            &format!("/admin/v1/tenants/{}/config", t.slug),
            Some(&s.admin),
        )
        .await,
        200,
    );
    assert_eq!(config["version"], 2, "refused uploads store nothing");
    let tenant = ok_with(
        &s.get(&format!("/admin/v1/tenants/{}", t.slug), Some(&s.admin))
            .await,
        200,
    );
    assert_eq!(tenant["configVersion"], 2);
    error(
        &s.put_config("no-such-tenant-here", NEW_CONFIG).await,
        404,
        "tenant_not_found",
    );
}

// §5: keys are issued, listed and revoked; a revoked key is refused on the next request.
async fn keys_are_issued_listed_and_revoked_at_once(s: TestServer) {
    let t = s.tenant().await;
    let reply = s
        .post(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            Some(&s.admin),
            &json!({"name": "backend", "scopes": ["ingest"]}),
        )
        .await;
    let issued = ok_with(&reply, 201);
    assert_eq!(issued["scopes"], json!(["ingest"]));
    assert_eq!(issued["name"], "backend");
    let key = Key {
        key_id: text(&issued["keyId"]),
        token: text(&issued["token"]),
    };
    let default = ok_with(
        &s.post(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            Some(&s.admin),
            &json!({}),
        )
        .await,
        201,
    );
    assert_eq!(default["scopes"], json!(["ingest", "read"]));

    s.identify(&key.token, json!({"model": "customer", "ids": ["k-1"]}))
        .await;
    let list = ok_with(
        &s.get(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            Some(&s.admin),
        )
        .await,
        200,
    );
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3, "{list}");
    let listed = keys
        .iter()
        .find(|listed| listed["keyId"] == key.key_id.as_str())
        .expect("the key is listed");
    assert_eq!(listed["name"], "backend");
    assert_eq!(listed["scopes"], json!(["ingest"]));
    assert!(
        listed["createdAt"].is_string() && listed.get("revokedAt").is_none(),
        "{listed}"
    );
    assert!(
        !list.to_string().contains(&key.token),
        "tokens are never listed"
    );

    let revoked = s
        .delete(
            &format!("/admin/v1/tenants/{}/keys/{}", t.slug, key.key_id),
            Some(&s.admin),
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    let refused = s
        .post(
            "/api/v1/identify",
            Some(&key.token),
            &json!({"model": "customer", "ids": ["k-1"]}),
        )
        .await;
    error(&refused, 401, "unauthorized");
    // The tenant's other keys still work.
    s.identify(&t.token, json!({"model": "customer", "ids": ["k-1"]}))
        .await;
    let list = ok_with(
        &s.get(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            Some(&s.admin),
        )
        .await,
        200,
    );
    let listed = list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|listed| listed["keyId"] == key.key_id.as_str())
        .cloned()
        .expect("still listed");
    assert!(listed["revokedAt"].is_string(), "{listed}");

    let unknown_key = s
        .delete(
            &format!("/admin/v1/tenants/{}/keys/no-such-key", t.slug),
            Some(&s.admin),
        )
        .await;
    error(&unknown_key, 404, "key_not_found");
    let unknown_tenant = s
        .post(
            "/admin/v1/tenants/no-such-tenant-here/keys",
            Some(&s.admin),
            &json!({}),
        )
        .await;
    error(&unknown_tenant, 404, "tenant_not_found");
    error(
        &s.get("/admin/v1/tenants/no-such-tenant-here/keys", Some(&s.admin))
            .await,
        404,
        "tenant_not_found",
    );
    let bad_scope = s
        .post(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            Some(&s.admin),
            &json!({"scopes": ["admin"]}),
        )
        .await;
    error(&bad_scope, 422, "invalid_request");
}

// §7: health, readiness, metrics, the spec and the docs UI need no credentials.
async fn health_metrics_spec_and_docs(s: TestServer) {
    let health = ok_with(&s.get("/healthz", None).await, 200);
    assert_eq!(health, json!({"status": "ok"}));
    let ready = ok_with(&s.get("/readyz", None).await, 200);
    assert_eq!(ready, json!({"status": "ok"}));

    let t = s.tenant().await;
    s.identify(&t.token, json!({"model": "project", "ids": ["m-1"]}))
        .await;
    let metrics = s.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.content_type.starts_with("text/plain"),
        "{}",
        metrics.content_type
    );
    assert!(
        metrics
            .text
            .lines()
            .any(|line| line.starts_with("functionary_http_requests_total{")
                && line.contains("status=\"200\"")),
        "{}",
        metrics.text
    );
    let created = metrics
        .text
        .lines()
        .find_map(|line| line.strip_prefix("functionary_identify_created_total "))
        .and_then(|value| value.trim().parse::<f64>().ok());
    assert_eq!(created, Some(1.0), "{}", metrics.text);

    let spec = s.get("/openapi.json", None).await;
    assert_eq!(spec.status, 200);
    assert!(
        spec.content_type.starts_with("application/json"),
        "{}",
        spec.content_type
    );
    let spec = spec.json();
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    for path in [
        "/api/v1/identify",
        "/api/v1/events",
        "/api/v1/batch",
        "/admin/v1/tenants",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is in the spec");
    }
    let docs = s.get("/docs", None).await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.content_type.starts_with("text/html"),
        "{}",
        docs.content_type
    );
    assert!(docs.text.to_lowercase().contains("swagger"), "the docs UI");
}

// §8: 400, 404, 405 and 415.
async fn malformed_unknown_and_unsupported_requests(s: TestServer) {
    let t = s.tenant().await;
    for body in [
        &b"{\"model\": \"customer\", \"ids\": [1"[..],
        b"not json",
        b"{\"model\" \"customer\"}",
    ] {
        let reply = s
            .post_raw(
                "/api/v1/identify",
                &t.token,
                "application/json",
                body.to_vec(),
            )
            .await;
        error(&reply, 400, "malformed_request");
    }
    let reply = s
        .post_raw(
            "/api/v1/events",
            &t.token,
            "application/json",
            b"[1, 2".to_vec(),
        )
        .await;
    error(&reply, 400, "malformed_request");

    let text_body = s
        .post_raw(
            "/api/v1/identify",
            &t.token,
            "text/plain",
            br#"{"model": "customer", "ids": [1]}"#.to_vec(),
        )
        .await;
    error(&text_body, 415, "unsupported_media_type");
    let form = s
        .post_raw(
            "/api/v1/events",
            &t.token,
            "application/x-www-form-urlencoded",
            b"name=x".to_vec(),
        )
        .await;
    error(&form, 415, "unsupported_media_type");

    error(
        &s.get("/api/v1/nothing-here", Some(&t.token)).await,
        404,
        "not_found",
    );
    error(&s.get("/nothing-here", None).await, 404, "not_found");
    error(
        &s.get("/api/v1/models/customer/instances/nobody", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
    error(
        &s.get(
            "/api/v1/models/customer/instances/nobody/events",
            Some(&t.token),
        )
        .await,
        404,
        "instance_not_found",
    );
    error(
        &s.delete("/api/v1/models/customer/instances/nobody", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
    error(
        &s.get("/api/v1/identify", Some(&t.token)).await,
        405,
        "method_not_allowed",
    );
}

// §8: 401 for missing and invalid credentials; §5: 403 for a key without the scope.
async fn credentials_and_scopes_are_checked(s: TestServer) {
    let t = s.tenant().await;
    s.identify(&t.token, json!({"model": "customer", "ids": ["s-1"]}))
        .await;
    let body = json!({"model": "customer", "ids": ["s-1"]});
    error(
        &s.post("/api/v1/identify", None, &body).await,
        401,
        "unauthorized",
    );
    error(
        &s.post("/api/v1/identify", Some("garbage"), &body).await,
        401,
        "unauthorized",
    );
    let basic = s
        .send(
            s.request(Method::POST, "/api/v1/identify", None)
                .basic_auth("user", Some("pass"))
                .json(&body),
        )
        .await;
    error(&basic, 401, "unauthorized");
    error(
        &s.get("/api/v1/models/customer/instances/s-1", None).await,
        401,
        "unauthorized",
    );
    error(&s.get("/admin/v1/tenants", None).await, 401, "unauthorized");
    error(
        &s.get("/admin/v1/tenants", Some("garbage")).await,
        401,
        "unauthorized",
    );

    let ingest = s.key(&t.slug, &["ingest"]).await;
    s.identify(&ingest.token, body.clone()).await;
    for path in [
        "/api/v1/models/customer/instances/s-1",
        "/api/v1/models/customer/instances",
        "/api/v1/models/customer/instances/s-1/events",
    ] {
        error(
            &s.get(path, Some(&ingest.token)).await,
            403,
            "insufficient_scope",
        );
    }
    let delete = s
        .delete("/api/v1/models/customer/instances/s-1", Some(&ingest.token))
        .await;
    error(&delete, 403, "insufficient_scope");
    s.instance(&t.token, "customer", "s-1").await;

    let read = s.key(&t.slug, &["read"]).await;
    s.instance(&read.token, "customer", "s-1").await;
    error(
        &s.post(
            "/api/v1/identify",
            Some(&read.token),
            &json!({"model": "customer", "ids": ["s-2"]}),
        )
        .await,
        403,
        "insufficient_scope",
    );
    error(
        &s.post(
            "/api/v1/events",
            Some(&read.token),
            &json!({"name": "x", "ids": ["s-1"]}),
        )
        .await,
        403,
        "insufficient_scope",
    );
    error(
        &s.post(
            "/api/v1/event",
            Some(&read.token),
            &json!({"name": "x", "ids": ["s-1"]}),
        )
        .await,
        403,
        "insufficient_scope",
    );
    let batch = json!({"batch": [{"type": "identify", "model": "customer", "ids": ["s-2"]}]});
    error(
        &s.post("/api/v1/batch", Some(&read.token), &batch).await,
        403,
        "insufficient_scope",
    );
    error(
        &s.get("/api/v1/models/customer/instances/s-2", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
}

// §2, §8: ids of two instances are a 409 naming which id belongs to which; nothing changes.
async fn ids_of_two_instances_conflict(s: TestServer) {
    let t = s.tenant().await;
    let a = text(
        &s.identify(&t.token, json!({"model": "customer", "ids": ["a-1"]}))
            .await["instanceId"],
    );
    let b = text(
        &s.identify(&t.token, json!({"model": "customer", "ids": [11]}))
            .await["instanceId"],
    );
    let reply = s
        .post(
            "/api/v1/identify",
            Some(&t.token),
            &json!({"model": "customer", "ids": ["a-1", "11", "fresh"], "properties": {"age": 1}}),
        )
        .await;
    let conflict = error(&reply, 409, "ids_conflict");
    let named: BTreeSet<(String, String)> = conflict["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter(|detail| detail.get("instanceId").is_some())
        .map(|detail| (text(&detail["id"]), text(&detail["instanceId"])))
        .collect();
    assert_eq!(
        named,
        BTreeSet::from([("11".to_owned(), b.clone()), ("a-1".to_owned(), a.clone())])
    );

    let event = s
        .post(
            "/api/v1/events",
            Some(&t.token),
            &json!({"name": "login", "ids": ["a-1", 11]}),
        )
        .await;
    error(&event, 409, "ids_conflict");
    for (id, instance) in [("a-1", &a), ("11", &b)] {
        let view = s.instance(&t.token, "customer", id).await;
        assert_eq!(view["instanceId"], instance.as_str());
        assert_eq!(view["ids"], json!([id]));
        assert_eq!(view["properties"], json!({}));
    }
    error(
        &s.get("/api/v1/models/customer/instances/fresh", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
}

// §2, §8: well-formed but invalid input is a 422 with the right code and details.
async fn invalid_input_is_422_with_details(s: TestServer) {
    let t = s.tenant().await;
    let identify = async |body: Value| s.post("/api/v1/identify", Some(&t.token), &body).await;
    let unknown_field =
        identify(json!({"model": "organization", "ids": ["o-1"], "childID": ["c-1"]})).await;
    let refused = error(&unknown_field, 422, "invalid_request");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|message| message.contains("childID")),
        "{refused}"
    );
    error(
        &s.get("/api/v1/models/organization/instances/o-1", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
    let event_field = s
        .post(
            "/api/v1/events",
            Some(&t.token),
            &json!({"name": "x", "ids": [1], "userId": 1}),
        )
        .await;
    error(&event_field, 422, "invalid_request");

    for junk in [
        json!("null"),
        json!("NULL"),
        json!("guest"),
        json!(0),
        json!(-1),
        json!("  "),
        json!(""),
    ] {
        let reply = identify(json!({"model": "customer", "ids": ["ok-id", junk]})).await;
        let refused = error(&reply, 422, "invalid_id");
        assert_eq!(
            details(&refused, "pointer"),
            ["/ids/1"],
            "{junk}: {refused}"
        );
    }
    // Lengths count characters, as the spec's maxLength does: 256 of them is one too many.
    let long = "é".repeat(256);
    let too_long = identify(json!({"model": "customer", "ids": [long]})).await;
    let refused = error(&too_long, 422, "invalid_id");
    assert_eq!(
        details(&refused, "pointer"),
        ["/ids/0"],
        "256 characters: {refused}"
    );
    s.identify(
        &t.token,
        json!({"model": "customer", "ids": ["é".repeat(127)]}),
    )
    .await;
    let long_name =
        identify(json!({"model": "customer", "ids": ["n-1"], "displayName": long})).await;
    // 256 characters break the spec's maxLength: refused while the body is parsed.
    error(&long_name, 422, "invalid_request");
    let junk_child =
        identify(json!({"model": "organization", "ids": ["o-1"], "childIds": ["undefined"]})).await;
    let refused = error(&junk_child, 422, "invalid_id");
    assert_eq!(details(&refused, "pointer"), ["/childIds/0"]);
    error(
        &identify(json!({"model": "customer", "ids": []})).await,
        422,
        "invalid_request",
    );
    error(
        &identify(json!({"model": "customer"})).await,
        422,
        "invalid_request",
    );

    let unknown_model = identify(json!({"model": "spaceship", "ids": [1]})).await;
    let refused = error(&unknown_model, 422, "unknown_model");
    assert_eq!(details(&refused, "pointer"), ["/model"]);
    let unknown_child_model = identify(
        json!({"model": "organization", "ids": [1], "childIds": [2], "childModel": "spaceship"}),
    )
    .await;
    error(&unknown_child_model, 422, "unknown_model");
    let unknown_event_model = s
        .post(
            "/api/v1/events",
            Some(&t.token),
            &json!({"name": "x", "ids": [1], "model": "spaceship"}),
        )
        .await;
    error(&unknown_event_model, 422, "unknown_model");

    let properties = identify(json!({
        "model": "customer", "ids": ["p-1"],
        "properties": {"email": "not an email", "age": -1},
    }))
    .await;
    let refused = error(&properties, 422, "invalid_properties");
    let pointers: BTreeSet<String> = details(&refused, "pointer").into_iter().collect();
    assert_eq!(
        pointers,
        BTreeSet::from(["/properties/age".to_owned(), "/properties/email".to_owned()]),
        "{refused}"
    );
    assert!(
        details(&refused, "message")
            .iter()
            .all(|message| !message.is_empty())
    );
    error(
        &s.get("/api/v1/models/customer/instances/p-1", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );

    s.identify(&t.token, json!({"model": "customer", "ids": ["p-2"]}))
        .await;
    let event = s
        .post(
            "/api/v1/events",
            Some(&t.token),
            &json!({"name": "sign_up", "ids": ["p-2"], "properties": {"plan": 3}}),
        )
        .await;
    let refused = error(&event, 422, "invalid_properties");
    assert_eq!(details(&refused, "pointer"), ["/properties/plan"]);
    let both_names = s
        .post(
            "/api/v1/events",
            Some(&t.token),
            &json!({"name": "a", "event": "a", "ids": ["p-2"]}),
        )
        .await;
    let refused = error(&both_names, 422, "invalid_event_name");
    assert_eq!(details(&refused, "pointer"), ["/event"]);
    let reserved = s
        .post(
            "/api/v1/events",
            Some(&t.token),
            &json!({"name": "onFunctionaryIdentify", "ids": ["p-2"]}),
        )
        .await;
    error(&reserved, 422, "invalid_event_name");
}

// §9: 1 MiB per call and 5 MiB per batch, with Content-Length and chunked alike.
async fn body_limits_hold_with_and_without_content_length(s: TestServer) {
    let t = s.tenant().await;
    let identify = json!({"model": "project", "ids": ["big"]});
    let at_limit = padded(&identify, MIB);
    let over = padded(&identify, MIB + 1);

    let reply = s
        .raw(sized_request("/api/v1/identify", &t.token, &at_limit))
        .await;
    ok(&reply);
    let reply = s
        .raw(chunked_request("/api/v1/identify", &t.token, &at_limit))
        .await;
    ok(&reply);
    let reply = s
        .raw(sized_request("/api/v1/identify", &t.token, &over))
        .await;
    error(&reply, 413, "payload_too_large");
    let reply = s
        .raw(chunked_request("/api/v1/identify", &t.token, &over))
        .await;
    error(&reply, 413, "payload_too_large");
    let reply = s
        .raw(chunked_request(
            "/api/v1/events",
            &t.token,
            &padded(&json!({"name": "x", "ids": ["big"]}), 2 * MIB),
        ))
        .await;
    error(&reply, 413, "payload_too_large");
    let reply = s
        .raw(chunked_request(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            &s.admin,
            &padded(&json!({}), MIB + 1),
        ))
        .await;
    error(&reply, 413, "payload_too_large");

    let batch = json!({"batch": [{"type": "identify", "model": "project", "ids": ["big-batch"]}]});
    let two_mib = padded(&batch, 2 * MIB);
    for request in [
        chunked_request("/api/v1/batch", &t.token, &two_mib),
        sized_request("/api/v1/batch", &t.token, &two_mib),
    ] {
        let reply = s.raw(request).await;
        assert_ne!(
            reply.status, 413,
            "2 MiB is under the batch limit: {}",
            reply.text
        );
        let body = ok(&reply);
        assert_eq!(body["results"][0]["statusCode"], 200, "{body}");
    }
    let reply = s
        .raw(chunked_request(
            "/api/v1/batch",
            &t.token,
            &padded(&batch, 5 * MIB + 1),
        ))
        .await;
    error(&reply, 413, "payload_too_large");
    // The limits refused nothing else: the connection-level answers did not break the server.
    s.instance(&t.token, "project", "big").await;
}

// §5: a key never reaches another tenant's data; such calls answer as if it did not exist.
async fn another_tenants_key_sees_nothing(s: TestServer) {
    let owner = s.tenant().await;
    let other = s.tenant().await;
    let instance = "/api/v1/models/customer/instances/secret-1";
    let events = "/api/v1/models/customer/instances/secret-1/events";
    // What the other tenant gets while nobody has the id.
    let absent_get = s.get(instance, Some(&other.token)).await;
    let absent_events = s.get(events, Some(&other.token)).await;
    let absent_delete = s.delete(instance, Some(&other.token)).await;
    error(&absent_get, 404, "instance_not_found");
    error(&absent_events, 404, "instance_not_found");
    error(&absent_delete, 404, "instance_not_found");

    let created = s
        .identify(
            &owner.token,
            json!({
                "model": "customer", "ids": ["secret-1"], "displayName": "Secret",
                "properties": {"email": "secret@example.com"},
            }),
        )
        .await;
    s.track(&owner.token, json!({"name": "login", "ids": ["secret-1"]}))
        .await;
    let owner_view = s.get(instance, Some(&owner.token)).await;
    let owner_events = s.get(events, Some(&owner.token)).await;
    ok_with(&owner_view, 200);
    ok_with(&owner_events, 200);

    for (reply, absent) in [
        (s.get(instance, Some(&other.token)).await, &absent_get),
        (s.get(events, Some(&other.token)).await, &absent_events),
        (s.delete(instance, Some(&other.token)).await, &absent_delete),
    ] {
        assert_eq!(reply.status, absent.status);
        assert_eq!(reply.content_type, absent.content_type);
        assert_eq!(reply.text, absent.text, "byte for byte as if absent");
    }
    let listed = ok_with(
        &s.get("/api/v1/models/customer/instances", Some(&other.token))
            .await,
        200,
    );
    assert_eq!(listed, json!({"instances": []}));
    let event = s
        .track(
            &other.token,
            json!({"name": "login", "ids": ["secret-1"], "messageId": "shared"}),
        )
        .await;
    assert_eq!(
        event,
        json!({"statusCode": 200, "accepted": false, "reason": "unknown_instance"})
    );
    let batch = ok(&s
        .post(
            "/api/v1/batch",
            Some(&other.token),
            &json!({"batch": [
                {"type": "event", "name": "login", "ids": ["secret-1"]},
            ]}),
        )
        .await);
    assert_eq!(batch["results"][0]["accepted"], false);

    // Links and identifies of the other tenant stay in the other tenant.
    let parent = s
        .identify(
            &other.token,
            json!({
                "model": "organization", "ids": ["o-1"],
                "childIds": ["secret-1"], "childModel": "customer",
            }),
        )
        .await;
    assert_eq!(parent["pending"], 1);
    let own = s
        .identify(
            &other.token,
            json!({
                "model": "customer", "ids": ["secret-1"],
                "properties": {"email": "other@example.com"},
            }),
        )
        .await;
    assert_eq!(own["created"], true);
    assert_ne!(own["instanceId"], created["instanceId"]);
    let own_view = s.instance(&other.token, "customer", "secret-1").await;
    assert_eq!(own_view["parents"][0]["ids"], json!(["o-1"]));
    // messageId dedupe is per tenant: the owner's first use of "shared" is not a duplicate.
    let owner_event = s
        .track(
            &owner.token,
            json!({"name": "login", "ids": ["secret-1"], "messageId": "shared"}),
        )
        .await;
    assert_eq!(owner_event["duplicate"], false);
    let other_event = s
        .track(
            &other.token,
            json!({"name": "login", "ids": ["secret-1"], "messageId": "shared"}),
        )
        .await;
    assert_eq!(other_event["duplicate"], false);

    let after = s.get(instance, Some(&owner.token)).await;
    assert_eq!(
        after.json(),
        owner_view.json(),
        "the owner's instance is unchanged"
    );
    let after_events = ok_with(&s.get(events, Some(&owner.token)).await, 200);
    let before_events = owner_events.json();
    let (after_events, before_events) = (
        after_events["events"].as_array().expect("events"),
        before_events["events"].as_array().expect("events"),
    );
    assert_eq!(after_events[0]["name"], "login");
    assert_eq!(
        after_events[1..],
        before_events[..],
        "older events unchanged"
    );
}

// §5, §9: forged, unsigned and wrong-kind tokens are refused.
async fn forged_unsigned_and_wrong_kind_tokens_are_refused(s: TestServer) {
    let t = s.tenant().await;
    let key = s.key(&t.slug, &["ingest", "read"]).await;
    let tenant_id = s.tenant_id(&t.slug).await;
    let body = json!({"model": "customer", "ids": ["tok-1"]});

    // The same claims signed by the platform work, so only the signature differs below.
    let resigned = s
        .keys
        .issue_tenant_key(tenant_id.as_str(), &t.slug, &key.key_id, &Scope::ALL)
        .expect("a key");
    s.identify(&resigned, body.clone()).await;

    let other_keys = Keys::new(&OTHER_SECRET).expect("the other secret is valid");
    let forged = other_keys
        .issue_tenant_key(tenant_id.as_str(), &t.slug, &key.key_id, &Scope::ALL)
        .expect("a key");
    error(
        &s.post("/api/v1/identify", Some(&forged), &body).await,
        401,
        "unauthorized",
    );
    error(
        &s.get("/api/v1/models/customer/instances/tok-1", Some(&forged))
            .await,
        401,
        "unauthorized",
    );

    for unsigned in [
        unsigned(&key.token),
        unsigned(&key.token).trim_end_matches('.').to_owned(),
    ] {
        error(
            &s.post("/api/v1/identify", Some(&unsigned), &body).await,
            401,
            "unauthorized",
        );
    }
    // A key id the tenant never issued, properly signed: refused like a revoked key.
    let unknown = s
        .keys
        .issue_tenant_key(tenant_id.as_str(), &t.slug, "never-issued", &Scope::ALL)
        .expect("a key");
    error(
        &s.post("/api/v1/identify", Some(&unknown), &body).await,
        401,
        "unauthorized",
    );

    // An admin token is not a tenant key, and a tenant key is not an admin token.
    error(
        &s.post("/api/v1/identify", Some(&s.admin), &body).await,
        401,
        "unauthorized",
    );
    error(
        &s.get("/api/v1/models/customer/instances/tok-1", Some(&s.admin))
            .await,
        401,
        "unauthorized",
    );
    let forged_admin = other_keys
        .issue_admin_token(Duration::from_secs(600))
        .expect("a token");
    error(
        &s.get("/admin/v1/tenants", Some(&forged_admin)).await,
        401,
        "unauthorized",
    );
    error(
        &s.get("/admin/v1/tenants", Some(&unsigned(&s.admin))).await,
        401,
        "unauthorized",
    );

    let admin_only = [
        s.get("/admin/v1/tenants", Some(&key.token)).await,
        s.get(&format!("/admin/v1/tenants/{}", t.slug), Some(&key.token))
            .await,
        s.post(
            "/admin/v1/tenants",
            Some(&key.token),
            &json!({"slug": format!("t-{}", unique_suffix())}),
        )
        .await,
        s.get(
            &format!("/admin/v1/tenants/{}/config", t.slug),
            Some(&key.token),
        )
        .await,
        s.post(
            &format!("/admin/v1/tenants/{}/keys", t.slug),
            Some(&key.token),
            &json!({}),
        )
        .await,
        s.delete(
            &format!("/admin/v1/tenants/{}/keys/{}", t.slug, key.key_id),
            Some(&key.token),
        )
        .await,
        s.send(
            s.request(
                Method::PUT,
                &format!("/admin/v1/tenants/{}/config", t.slug),
                Some(&key.token),
            )
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(NEW_CONFIG),
        )
        .await,
    ];
    for reply in &admin_only {
        error(reply, 403, "admin_only");
    }
    // None of them did anything: the key works, the config is still version 1.
    s.identify(&key.token, body.clone()).await;
    let config = ok_with(
        &s.get(
            &format!("/admin/v1/tenants/{}/config", t.slug),
            Some(&s.admin),
        )
        .await,
        200,
    );
    assert_eq!(config["version"], 1);
}

// DESIGN §2: "Anything else (float, bool, null, object, empty string) is 422 `invalid_id`",
// whether it is one of `ids`, `childIds` or `parentIds`.
async fn ids_that_are_neither_strings_nor_integers_are_invalid_id(s: TestServer) {
    let t = s.tenant().await;
    let mut wrong = Vec::new();
    for not_an_id in [
        json!(1.5),
        json!(true),
        json!(null),
        json!({"id": 1}),
        json!([1]),
    ] {
        for field in ["ids", "childIds", "parentIds"] {
            let mut body = json!({"model": "customer", "ids": ["fine"]});
            body[field] = json!([not_an_id]);
            let reply = s.post("/api/v1/identify", Some(&t.token), &body).await;
            let answer = reply.json();
            let pointer = answer["error"]["details"][0]["pointer"].clone();
            if reply.status != 422
                || answer["error"]["code"] != "invalid_id"
                || pointer != format!("/{field}/0").as_str()
            {
                wrong.push(format!("{body} -> {} {answer}", reply.status));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not answered 422 invalid_id at the id:\n{}",
        wrong.join("\n")
    );
    error(
        &s.get("/api/v1/models/customer/instances/fine", Some(&t.token))
            .await,
        404,
        "instance_not_found",
    );
}

// DESIGN §8: 400 for malformed JSON, whatever serde_json calls the syntax error.
async fn every_json_syntax_error_is_400(s: TestServer) {
    let t = s.tenant().await;
    let bodies: [&[u8]; 5] = [
        br#"{"model": "customer", "ids": [1],}"#,
        br#"{"model": "customer", "ids": [1, ]}"#,
        br#"{"model": "customer", "ids": ["\u12"]}"#,
        br#"{"model": "customer", "ids": [1], 7: 1}"#,
        br#"{"model": "customer", "ids": [1]} {}"#,
    ];
    let mut wrong = Vec::new();
    for body in bodies {
        let reply = s
            .post_raw(
                "/api/v1/identify",
                &t.token,
                "application/json",
                body.to_vec(),
            )
            .await;
        let answer = reply.json();
        if reply.status != 400 || answer["error"]["code"] != "malformed_request" {
            wrong.push(format!(
                "{} -> {} {answer}",
                String::from_utf8_lossy(body),
                reply.status
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "malformed JSON not answered 400:\n{}",
        wrong.join("\n")
    );
}
