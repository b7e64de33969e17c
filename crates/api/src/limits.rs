//! Request body size limits, and the JSON error envelope every refusal uses.
//!
//! poem's own `SizeLimit` middleware only looks at `Content-Length` and answers 411 to any request
//! without one (plain GETs and chunked uploads included), and poem-openapi's `Json` extractor reads a
//! body without any limit. [`BodyLimit`] closes that gap: it refuses a declared length over the
//! limit without reading anything, and otherwise reads the body itself with the limit, so a chunked
//! upload without `Content-Length` is cut off as soon as it goes past the limit. The handler then
//! gets the body already buffered in memory, never more than the limit.
//!
//! The limits of the product contract (DESIGN §9) are [`MAX_BODY_BYTES`] per call and
//! [`MAX_BATCH_BODY_BYTES`] for `POST /api/v1/batch`; [`BodyLimit::default`] applies both.

use std::collections::HashMap;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    error::ReadBodyError,
    http::{StatusCode, header},
};

/// The largest request body accepted by any call except the batch call: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The largest request body accepted by `POST /api/v1/batch`: 5 MiB.
pub const MAX_BATCH_BODY_BYTES: usize = 5 * 1024 * 1024;

/// The path of the batch call, which gets [`MAX_BATCH_BODY_BYTES`] in [`BodyLimit::default`].
pub const BATCH_PATH: &str = "/api/v1/batch";

/// Builds the error envelope shared by every error answer of the API:
/// `{"statusCode": N, "error": {"code": "...", "message": "...", "details": []}}` with
/// `content-type: application/json`; see [`error_response_with_details`] for details.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    error_response_with_details(status, code, message, &[])
}

/// Like [`error_response`], with a `details` array (always present, as the spec requires), e.g. one
/// entry per invalid field.
pub fn error_response_with_details(
    status: StatusCode,
    code: &str,
    message: &str,
    details: &[serde_json::Value],
) -> Response {
    let mut error = serde_json::Map::new();
    error.insert("code".to_owned(), code.into());
    error.insert("message".to_owned(), message.into());
    error.insert("details".to_owned(), details.to_vec().into());
    let envelope = serde_json::json!({
        "statusCode": status.as_u16(),
        "error": error,
    });
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(envelope.to_string())
}

/// The 413 answer for a body over `limit` bytes.
fn payload_too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// Middleware that refuses request bodies larger than the limit for their path with 413
/// (`payload_too_large`), before any handler runs.
///
/// - A `Content-Length` above the limit is refused without reading the body.
/// - Any other body (chunked, or with a smaller `Content-Length`) is read with the limit: reading
///   stops as soon as it goes past the limit, so no more than the limit is ever buffered. The
///   handler gets the buffered body.
/// - A request without a body (a plain GET or DELETE) passes through untouched.
/// - A body that can't be read for another reason (the client went away mid-upload) is answered
///   400 `invalid_body`.
///
/// The limit is chosen by the exact path of the request (without the query string) as this
/// middleware sees it. poem's `Route::nest` strips the prefix from the URI, so wrap the whole app
/// (outside any `nest`) for the paths to be the full ones like `/api/v1/batch`. (The original URI
/// is not used because poem only sets it for requests that came from a real connection, not for
/// requests built in tests.)
///
/// ```
/// use functionary_api::limits::BodyLimit;
///
/// let limits = BodyLimit::new(1024).with_path("/api/v1/batch", 4096);
/// assert_eq!(limits.limit_for("/api/v1/events"), 1024);
/// assert_eq!(limits.limit_for("/api/v1/batch"), 4096);
/// ```
#[derive(Debug, Clone)]
pub struct BodyLimit {
    /// The limit of every path without an override.
    default: usize,
    /// Limits of single paths, matched exactly.
    paths: HashMap<String, usize>,
}

impl BodyLimit {
    /// A limit of `default` bytes for every path.
    pub fn new(default: usize) -> Self {
        Self {
            default,
            paths: HashMap::new(),
        }
    }

    /// Sets a different limit for requests whose path is exactly `path` (e.g. `/api/v1/batch`).
    #[must_use]
    pub fn with_path(mut self, path: &str, limit: usize) -> Self {
        self.paths.insert(path.to_owned(), limit);
        self
    }

    /// The limit in bytes that applies to a request for `path`.
    pub fn limit_for(&self, path: &str) -> usize {
        self.paths.get(path).copied().unwrap_or(self.default)
    }
}

impl Default for BodyLimit {
    /// The limits of the product contract: [`MAX_BODY_BYTES`] per call, [`MAX_BATCH_BODY_BYTES`]
    /// for [`BATCH_PATH`].
    fn default() -> Self {
        Self::new(MAX_BODY_BYTES).with_path(BATCH_PATH, MAX_BATCH_BODY_BYTES)
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limits: self.clone(),
        }
    }
}

/// The endpoint produced by [`BodyLimit`].
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limits: BodyLimit,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let limit = self.limits.limit_for(req.uri().path());

        // A declared length over the limit is refused before reading a single byte. A header that
        // doesn't parse is left to the limited read below (hyper refuses those before we get here).
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Ok(payload_too_large(limit));
        }

        let body = req.take_body();
        if body.is_empty() {
            // No body at all (GET, DELETE, an empty POST): nothing to limit.
            req.set_body(body);
        } else {
            match body.into_bytes_limit(limit).await {
                Ok(bytes) => req.set_body(bytes),
                Err(ReadBodyError::PayloadTooLarge) => return Ok(payload_too_large(limit)),
                Err(err) => {
                    tracing::debug!(error = %err, "request body could not be read");
                    return Ok(error_response(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        "the request body could not be read",
                    ));
                }
            }
        }

        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        pin::Pin,
        task::{Context, Poll},
        time::Duration,
    };

    use poem::{
        Body, EndpointExt, Route, handler,
        http::{HeaderMap, Method},
        post,
        test::{TestClient, TestResponse},
    };
    use serde_json::json;
    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;

    /// Default limit of the test app.
    const LIMIT: usize = 1000;
    /// Limit of the test app's `/big` path.
    const BIG_LIMIT: usize = 5000;

    /// Answers `"<body length> <content-length header or none>"`.
    #[handler]
    fn body_length(headers: &HeaderMap, body: Vec<u8>) -> String {
        let content_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none");
        format!("{} {content_length}", body.len())
    }

    /// Answers with the request body itself.
    #[handler]
    fn echo(body: Vec<u8>) -> Vec<u8> {
        body
    }

    fn app() -> impl Endpoint {
        Route::new()
            .at("/len", post(body_length).get(body_length))
            .at("/big", post(body_length))
            .at("/echo", post(echo))
            .with(BodyLimit::new(LIMIT).with_path("/big", BIG_LIMIT))
    }

    /// A body of `len` bytes read from a stream with no known length, so no `Content-Length` can
    /// be derived from it (like a chunked upload).
    fn chunked_body(len: usize) -> Body {
        Body::from_async_read(io::Cursor::new(vec![b'x'; len]))
    }

    /// A reader that fails like a connection reset by the client.
    struct FailingReader;

    impl AsyncRead for FailingReader {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            )))
        }
    }

    async fn assert_too_large(resp: TestResponse, limit: usize) {
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        resp.assert_content_type("application/json");
        resp.assert_json(json!({
            "statusCode": 413,
            "error": {
                "code": "payload_too_large",
                "message": format!("request body exceeds the limit of {limit} bytes"),
                "details": [],
            }
        }))
        .await;
    }

    #[tokio::test]
    async fn small_body_passes_with_its_bytes_intact() {
        let cli = TestClient::new(app());
        let payload: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let resp = cli
            .post("/echo")
            .header(header::CONTENT_LENGTH, payload.len())
            .body(payload.clone())
            .send()
            .await;
        resp.assert_status_is_ok();
        resp.assert_bytes(&payload).await;
    }

    #[tokio::test]
    async fn body_exactly_at_the_limit_passes() {
        let cli = TestClient::new(app());
        let resp = cli.post("/len").body(chunked_body(LIMIT)).send().await;
        resp.assert_status_is_ok();
        resp.assert_text(format!("{LIMIT} none")).await;
    }

    #[tokio::test]
    async fn content_length_over_the_limit_is_refused_with_413() {
        let cli = TestClient::new(app());
        let resp = cli
            .post("/len")
            .header(header::CONTENT_LENGTH, LIMIT + 1)
            .body(vec![b'x'; LIMIT + 1])
            .send()
            .await;
        assert_too_large(resp, LIMIT).await;
    }

    #[tokio::test]
    async fn content_length_over_the_limit_is_refused_without_reading_the_body() {
        // The write half stays open and nothing is ever written: reading this body would wait
        // forever, so an answer proves the middleware did not read it.
        let (_writer, reader) = tokio::io::duplex(64);
        let cli = TestClient::new(app());
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            cli.post("/len")
                .header(header::CONTENT_LENGTH, 10 * LIMIT)
                .body(Body::from_async_read(reader))
                .send(),
        )
        .await
        .expect("the middleware must answer without reading the body");
        assert_too_large(resp, LIMIT).await;
    }

    #[tokio::test]
    async fn chunked_body_under_the_limit_passes_without_content_length() {
        let cli = TestClient::new(app());
        let resp = cli.post("/len").body(chunked_body(LIMIT - 1)).send().await;
        resp.assert_status_is_ok();
        // "none": the handler saw no Content-Length, so the test body really is length-less.
        resp.assert_text(format!("{} none", LIMIT - 1)).await;
    }

    #[tokio::test]
    async fn chunked_body_over_the_limit_is_refused_with_413() {
        let request = Request::builder()
            .method(Method::POST)
            .uri_str("/len")
            .body(chunked_body(3 * LIMIT));
        assert!(
            request.headers().get(header::CONTENT_LENGTH).is_none(),
            "the chunked test body must be sent without content-length"
        );

        let cli = TestClient::new(app());
        let resp = cli.post("/len").body(chunked_body(3 * LIMIT)).send().await;
        assert_too_large(resp, LIMIT).await;

        // The same refusal when the endpoint is called with the request built above.
        let resp = app().get_response(request).await;
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn chunked_body_one_byte_over_the_limit_is_refused() {
        let cli = TestClient::new(app());
        let resp = cli.post("/len").body(chunked_body(LIMIT + 1)).send().await;
        assert_too_large(resp, LIMIT).await;
    }

    #[tokio::test]
    async fn get_without_body_passes() {
        let cli = TestClient::new(app());
        let resp = cli.get("/len").send().await;
        resp.assert_status_is_ok();
        resp.assert_text("0 none").await;
    }

    #[tokio::test]
    async fn path_override_allows_a_larger_body_only_on_that_path() {
        let cli = TestClient::new(app());
        let size = 3 * LIMIT; // over the default, under BIG_LIMIT

        let resp = cli.post("/big").body(chunked_body(size)).send().await;
        resp.assert_status_is_ok();
        resp.assert_text(format!("{size} none")).await;

        let resp = cli
            .post("/big")
            .header(header::CONTENT_LENGTH, size)
            .body(vec![b'x'; size])
            .send()
            .await;
        resp.assert_status_is_ok();

        let resp = cli.post("/len").body(chunked_body(size)).send().await;
        assert_too_large(resp, LIMIT).await;

        let resp = cli
            .post("/big")
            .body(chunked_body(BIG_LIMIT + 1))
            .send()
            .await;
        assert_too_large(resp, BIG_LIMIT).await;
    }

    #[tokio::test]
    async fn unreadable_body_is_400_invalid_body() {
        let cli = TestClient::new(app());
        let resp = cli
            .post("/len")
            .body(Body::from_async_read(FailingReader))
            .send()
            .await;
        resp.assert_status(StatusCode::BAD_REQUEST);
        resp.assert_content_type("application/json");
        resp.assert_json(json!({
            "statusCode": 400,
            "error": {"code": "invalid_body", "message": "the request body could not be read", "details": []}
        }))
        .await;
    }

    /// Sends one raw HTTP/1.1 request to `addr` and returns the whole answer as text.
    fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
        use std::io::{Read, Write};

        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        stream.write_all(request).expect("write request");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read answer");
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A chunked-encoded request for `/len` carrying `len` bytes in one chunk.
    fn chunked_request(len: usize) -> Vec<u8> {
        let mut request = format!(
            "POST /len HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             transfer-encoding: chunked\r\n\r\n{len:x}\r\n"
        )
        .into_bytes();
        request.extend(std::iter::repeat_n(b'x', len));
        request.extend_from_slice(b"\r\n0\r\n\r\n");
        request
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn limits_hold_over_a_real_connection() {
        use poem::listener::{Acceptor, Listener, TcpListener};

        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let addr = *acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr())
            .expect("tcp address");
        let server = tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app()));

        let answers = tokio::task::spawn_blocking(move || {
            [
                raw_http(addr, &chunked_request(LIMIT + 1)),
                raw_http(addr, &chunked_request(LIMIT)),
                raw_http(
                    addr,
                    b"GET /len HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
                ),
            ]
        })
        .await
        .expect("client thread");
        server.abort();

        let [too_large, at_limit, get] = answers;
        assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
        assert!(
            too_large.contains(r#""code":"payload_too_large""#),
            "{too_large}"
        );
        assert!(at_limit.starts_with("HTTP/1.1 200"), "{at_limit}");
        assert!(at_limit.ends_with(&format!("{LIMIT} none")), "{at_limit}");
        assert!(get.starts_with("HTTP/1.1 200"), "{get}");
        assert!(get.ends_with("0 none"), "{get}");
    }

    #[tokio::test]
    async fn default_limits_follow_the_contract() {
        let limits = BodyLimit::default();
        assert_eq!(limits.limit_for("/api/v1/events"), MAX_BODY_BYTES);
        assert_eq!(limits.limit_for("/api/v1/identify"), MAX_BODY_BYTES);
        assert_eq!(limits.limit_for(BATCH_PATH), MAX_BATCH_BODY_BYTES);
        assert_eq!(MAX_BODY_BYTES, 1_048_576);
        assert_eq!(MAX_BATCH_BODY_BYTES, 5_242_880);

        let cli = TestClient::new(
            Route::new()
                .at("/api/v1/events", post(body_length))
                .at(BATCH_PATH, post(body_length))
                .with(BodyLimit::default()),
        );
        let two_mib = 2 * 1024 * 1024;
        let resp = cli
            .post(BATCH_PATH)
            .body(chunked_body(two_mib))
            .send()
            .await;
        resp.assert_status_is_ok();
        let resp = cli
            .post("/api/v1/events")
            .body(chunked_body(two_mib))
            .send()
            .await;
        assert_too_large(resp, MAX_BODY_BYTES).await;
    }

    #[tokio::test]
    async fn error_response_builds_the_envelope() {
        let resp = error_response(StatusCode::NOT_FOUND, "not_found", "no such instance");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.content_type(), Some("application/json"));
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_bytes().await.expect("body"))
                .expect("json body");
        assert_eq!(
            body,
            json!({"statusCode": 404, "error": {"code": "not_found", "message": "no such instance", "details": []}})
        );

        let resp = error_response_with_details(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the body is invalid",
            &[json!({"pointer": "/traits/age", "message": "must be an integer"})],
        );
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_bytes().await.expect("body"))
                .expect("json body");
        assert_eq!(
            body["error"]["details"],
            json!([{"pointer": "/traits/age", "message": "must be an integer"}])
        );
    }
}
