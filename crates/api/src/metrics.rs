//! Prometheus metrics in the text exposition format 0.0.4, without a metrics crate.
//!
//! [`Metrics`] holds every series in memory behind mutexes; one instance is shared through an
//! `Arc` by the [`RecordMetrics`] middleware (HTTP requests and their latency), the rest of the
//! API (generic labelled counters through [`Metrics::incr`], e.g. config cache hits) and the
//! `/metrics` handler, which calls [`Metrics::render`].
//!
//! Label cardinality stays bounded: the route label is the route template ([`route_label`]), never
//! the raw path, and methods outside the standard set are recorded as `other`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result, http::Method};
use tracing::Instrument as _;

/// Name of the request counter.
pub const HTTP_REQUESTS_TOTAL: &str = "functionary_http_requests_total";

/// Name of the request latency histogram.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "functionary_http_request_duration_seconds";

/// Upper bounds (in seconds) of the latency histogram buckets; `+Inf` comes on top.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Every metric of the process, safe to share between threads (`Arc<Metrics>`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Request count by (method, route, status).
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    /// Latency histogram by route.
    durations: Mutex<BTreeMap<String, Histogram>>,
    /// Generic counters by name, then by their sorted label pairs.
    counters: Mutex<BTreeMap<&'static str, CounterFamily>>,
}

/// The labels of one `functionary_http_requests_total` series. The derived order (method, route,
/// status) is the order in which series are rendered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKey {
    method: String,
    route: String,
    status: u16,
}

/// One latency histogram. `buckets[i]` counts observations that fell in bucket `i` only; the
/// cumulative counts Prometheus expects are summed at render time.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = DURATION_BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The series of one generic counter.
#[derive(Debug, Default)]
struct CounterFamily {
    /// The `# HELP` text, when one was given through [`Metrics::describe`].
    help: Option<&'static str>,
    /// Value by label pairs, sorted by label name.
    series: BTreeMap<Vec<(&'static str, String)>, u64>,
}

/// Locks a mutex, recovering from poisoning: a panic elsewhere must not stop metrics, and every
/// update here leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Records one handled HTTP request: counts it in `functionary_http_requests_total` and adds
    /// `seconds` to the latency histogram of `route`. Callers pass bounded values (a route
    /// template from [`route_label`], a standard method).
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = RequestKey {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        *lock(&self.requests).entry(key).or_default() += 1;

        let mut durations = lock(&self.durations);
        match durations.get_mut(route) {
            Some(histogram) => histogram.observe(seconds),
            None => {
                let mut histogram = Histogram::default();
                histogram.observe(seconds);
                durations.insert(route.to_owned(), histogram);
            }
        }
    }

    /// Adds one to the counter `name` with the given labels, e.g.
    /// `incr("functionary_config_cache_total", &[("result", "hit")])`. Label order doesn't matter;
    /// label values are escaped when rendered. `name` should end in `_total` by Prometheus
    /// convention.
    pub fn incr(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        debug_assert!(is_valid_name(name), "invalid metric name {name:?}");
        let mut counters = lock(&self.counters);
        let series = &mut counters.entry(name).or_default().series;
        // A series seen before is found without building its key (families have few series).
        let same = |key: &[(&'static str, String)]| {
            key.len() == labels.len()
                && labels
                    .iter()
                    .all(|&(label, value)| key.iter().any(|(l, v)| *l == label && v == value))
        };
        if let Some((_, count)) = series.iter_mut().find(|(key, _)| same(key)) {
            *count += 1;
            return;
        }
        let mut key: Vec<(&'static str, String)> = labels
            .iter()
            .map(|&(label, value)| (label, value.to_owned()))
            .collect();
        key.sort_unstable();
        *series.entry(key).or_default() += 1;
    }

    /// Sets the `# HELP` text of the generic counter `name`; counters without one get a generic
    /// text. Calling it also makes the counter appear (with its HELP and TYPE lines and no series)
    /// before its first increment.
    pub fn describe(&self, name: &'static str, help: &'static str) {
        debug_assert!(is_valid_name(name), "invalid metric name {name:?}");
        lock(&self.counters).entry(name).or_default().help = Some(help);
    }

    /// Renders every metric in the Prometheus text exposition format 0.0.4: one `# HELP` and one
    /// `# TYPE` line per metric, metrics sorted by name and series by labels, label values
    /// escaped. Then come the caller's `extra` metrics, in the given order, as
    /// `(name, help, type, value)` with type `"counter"` or `"gauge"` (anything else is rendered
    /// as `untyped`) — values known only to the caller, such as pool sizes or cache entries.
    ///
    /// Serve it with `content-type: text/plain; version=0.0.4`.
    pub fn render(&self, extra: &[(&str, &str, &str, f64)]) -> String {
        // Each metric family rendered on its own, then written out in name order.
        let mut families: BTreeMap<&str, String> = BTreeMap::new();
        families.insert(HTTP_REQUESTS_TOTAL, self.render_requests());
        families.insert(HTTP_REQUEST_DURATION_SECONDS, self.render_durations());
        for (&name, family) in lock(&self.counters).iter() {
            let mut text = String::new();
            let generic_help;
            let help = match family.help {
                Some(help) => help,
                None => {
                    generic_help = format!("Counter {name}.");
                    generic_help.as_str()
                }
            };
            write_header(&mut text, name, help, "counter");
            for (labels, value) in &family.series {
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(label, value)| (*label, value.as_str()))
                    .collect();
                write_sample(&mut text, name, &pairs, &value.to_string());
            }
            families.insert(name, text);
        }

        let mut out: String = families.into_values().collect();
        for &(name, help, kind, value) in extra {
            let kind = match kind {
                "counter" | "gauge" => kind,
                _ => "untyped",
            };
            write_header(&mut out, name, help, kind);
            write_sample(&mut out, name, &[], &format_value(value));
        }
        out
    }

    fn render_requests(&self) -> String {
        let mut text = String::new();
        write_header(
            &mut text,
            HTTP_REQUESTS_TOTAL,
            "HTTP requests handled, by method, route and status.",
            "counter",
        );
        for (key, count) in lock(&self.requests).iter() {
            write_sample(
                &mut text,
                HTTP_REQUESTS_TOTAL,
                &[
                    ("method", &key.method),
                    ("route", &key.route),
                    ("status", &key.status.to_string()),
                ],
                &count.to_string(),
            );
        }
        text
    }

    fn render_durations(&self) -> String {
        let name = HTTP_REQUEST_DURATION_SECONDS;
        let bucket_name = format!("{name}_bucket");
        let sum_name = format!("{name}_sum");
        let count_name = format!("{name}_count");

        let mut text = String::new();
        write_header(
            &mut text,
            name,
            "HTTP request latency in seconds, by route.",
            "histogram",
        );
        for (route, histogram) in lock(&self.durations).iter() {
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                write_sample(
                    &mut text,
                    &bucket_name,
                    &[("route", route), ("le", &format_value(*bound))],
                    &cumulative.to_string(),
                );
            }
            write_sample(
                &mut text,
                &bucket_name,
                &[("route", route), ("le", "+Inf")],
                &histogram.count.to_string(),
            );
            write_sample(
                &mut text,
                &sum_name,
                &[("route", route)],
                &format_value(histogram.sum),
            );
            write_sample(
                &mut text,
                &count_name,
                &[("route", route)],
                &histogram.count.to_string(),
            );
        }
        text
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line: `name{label="value",...} value`.
fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, label_value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label_value(label_value));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Escapes a `# HELP` text: backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a sample value the way Prometheus parses it (`+Inf`, `-Inf`, `NaN`, plain decimals).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

/// Whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The route label of a request path: the route template, with ids replaced by placeholders so
/// label cardinality stays bounded.
///
/// - `/api/v1/models/customer/instances/abc/events` → `/api/v1/models/{model}/instances/{id}/events`
///   (likewise `/api/v1/models/{model}/instances` and `/api/v1/models/{model}/instances/{id}`);
/// - `/admin/v1/tenants/acme/keys/k1` → `/admin/v1/tenants/{slug}/keys/{keyId}` (likewise
///   `/admin/v1/tenants/{slug}`, `…/config`, `…/keys`);
/// - fixed paths (`/api/v1/identify`, `/api/v1/events`, `/api/v1/event`, `/api/v1/batch`,
///   `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/admin/v1/tenants`) unchanged;
/// - `/docs` and anything under it → `/docs`;
/// - everything else (unknown paths, empty segments, trailing slashes) → `other`.
pub fn route_label(path: &str) -> String {
    route_template(path).to_owned()
}

fn route_template(path: &str) -> &'static str {
    const FIXED: [&str; 9] = [
        "/api/v1/identify",
        "/api/v1/events",
        "/api/v1/event",
        "/api/v1/batch",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/admin/v1/tenants",
    ];
    if let Some(&fixed) = FIXED.iter().find(|&&fixed| fixed == path) {
        return fixed;
    }
    if path == "/docs" || path.starts_with("/docs/") {
        return "/docs";
    }

    let Some(rest) = path.strip_prefix('/') else {
        return "other";
    };
    let segments: Vec<&str> = rest.split('/').collect();
    // A placeholder stands for one non-empty segment.
    let ids_present = |ids: &[&str]| ids.iter().all(|id| !id.is_empty());
    match segments.as_slice() {
        ["api", "v1", "models", model, "instances"] if ids_present(&[model]) => {
            "/api/v1/models/{model}/instances"
        }
        ["api", "v1", "models", model, "instances", id] if ids_present(&[model, id]) => {
            "/api/v1/models/{model}/instances/{id}"
        }
        ["api", "v1", "models", model, "instances", id, "events"] if ids_present(&[model, id]) => {
            "/api/v1/models/{model}/instances/{id}/events"
        }
        ["admin", "v1", "tenants", slug] if ids_present(&[slug]) => "/admin/v1/tenants/{slug}",
        ["admin", "v1", "tenants", slug, "config"] if ids_present(&[slug]) => {
            "/admin/v1/tenants/{slug}/config"
        }
        ["admin", "v1", "tenants", slug, "keys"] if ids_present(&[slug]) => {
            "/admin/v1/tenants/{slug}/keys"
        }
        ["admin", "v1", "tenants", slug, "keys", key_id] if ids_present(&[slug, key_id]) => {
            "/admin/v1/tenants/{slug}/keys/{keyId}"
        }
        _ => "other",
    }
}

/// The method label: the standard methods as they are, any extension method as `other`.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|standard| *standard == method)
        .map_or("other", Method::as_str)
}

/// Middleware recording every request in [`Metrics`]: `functionary_http_requests_total{method,
/// route, status}` and `functionary_http_request_duration_seconds{route}`, inside a tracing span
/// `request` (fields `method`, `route`) that ends with a debug event carrying the status and the
/// latency.
///
/// Errors of the inner endpoint are turned into their responses (`into_response()`) so their
/// status is counted; the client gets the same response it would have got. Because of that, put
/// this middleware outside every layer that still needs to see the errors, and outside any
/// `Route::nest` (poem strips the nest prefix from the URI, and the route label is computed from
/// the full path). The latency runs until the response head is ready; streaming the body is not
/// included.
#[derive(Debug, Clone)]
pub struct RecordMetrics {
    /// Where the requests are recorded.
    pub metrics: Arc<Metrics>,
}

impl RecordMetrics {
    /// Records into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<E: Endpoint> Middleware<E> for RecordMetrics {
    type Output = RecordMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RecordMetricsEndpoint {
            inner: ep,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The endpoint produced by [`RecordMetrics`].
#[derive(Debug)]
pub struct RecordMetricsEndpoint<E> {
    inner: E,
    metrics: Arc<Metrics>,
}

impl<E: Endpoint> Endpoint for RecordMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let method = method_label(req.method());
        let route = route_template(req.uri().path());
        let span = tracing::info_span!("request", method, route);
        async move {
            let started = Instant::now();
            let response = match self.inner.call(req).await {
                Ok(output) => output.into_response(),
                Err(err) => err.into_response(),
            };
            let elapsed = started.elapsed().as_secs_f64();
            let status = response.status().as_u16();
            self.metrics.observe_request(method, route, status, elapsed);
            tracing::debug!(status, latency_ms = elapsed * 1000.0, "request finished");
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use poem::{EndpointExt, Route, get, handler, http::StatusCode, test::TestClient};

    use super::*;

    #[test]
    fn route_label_replaces_ids_with_placeholders() {
        let cases = [
            (
                "/api/v1/models/customer/instances/abc/events",
                "/api/v1/models/{model}/instances/{id}/events",
            ),
            (
                "/api/v1/models/customer/instances/abc",
                "/api/v1/models/{model}/instances/{id}",
            ),
            (
                "/api/v1/models/customer/instances",
                "/api/v1/models/{model}/instances",
            ),
            (
                "/admin/v1/tenants/acme/keys/k1",
                "/admin/v1/tenants/{slug}/keys/{keyId}",
            ),
            (
                "/admin/v1/tenants/acme/keys",
                "/admin/v1/tenants/{slug}/keys",
            ),
            (
                "/admin/v1/tenants/acme/config",
                "/admin/v1/tenants/{slug}/config",
            ),
            ("/admin/v1/tenants/acme", "/admin/v1/tenants/{slug}"),
        ];
        for (path, expected) in cases {
            assert_eq!(route_label(path), expected, "path {path}");
        }
    }

    #[test]
    fn route_label_keeps_fixed_paths() {
        for path in [
            "/api/v1/identify",
            "/api/v1/events",
            "/api/v1/event",
            "/api/v1/batch",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/admin/v1/tenants",
        ] {
            assert_eq!(route_label(path), path);
        }
    }

    #[test]
    fn route_label_folds_docs_and_unknown_paths() {
        assert_eq!(route_label("/docs"), "/docs");
        assert_eq!(route_label("/docs/"), "/docs");
        assert_eq!(route_label("/docs/swagger-ui.css"), "/docs");
        for path in [
            "",
            "/",
            "/docsx",
            "/api/v1/identify/",
            "/api/v1/unknown",
            "/api/v1/models//instances",
            "/api/v1/models/customer/instances//events",
            "/api/v1/models/customer/instances/abc/events/more",
            "/admin/v1/tenants//keys",
            "/admin/v1/tenants/acme/other",
            "/wp-login.php",
            "healthz",
        ] {
            assert_eq!(route_label(path), "other", "path {path:?}");
        }
    }

    #[test]
    fn render_writes_help_type_and_counter_values() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/healthz", 200, 0.002);
        metrics.observe_request("GET", "/healthz", 200, 0.003);
        metrics.observe_request("POST", "/api/v1/events", 422, 0.02);
        metrics.incr("functionary_config_cache_total", &[("result", "hit")]);
        metrics.incr("functionary_config_cache_total", &[("result", "hit")]);
        metrics.incr("functionary_config_cache_total", &[("result", "miss")]);
        metrics.describe(
            "functionary_config_cache_total",
            "Compiled config cache lookups, by result.",
        );

        let text = metrics.render(&[]);
        for line in [
            "# HELP functionary_http_requests_total HTTP requests handled, by method, route and status.",
            "# TYPE functionary_http_requests_total counter",
            "functionary_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2",
            "functionary_http_requests_total{method=\"POST\",route=\"/api/v1/events\",status=\"422\"} 1",
            "# HELP functionary_http_request_duration_seconds HTTP request latency in seconds, by route.",
            "# TYPE functionary_http_request_duration_seconds histogram",
            "# HELP functionary_config_cache_total Compiled config cache lookups, by result.",
            "# TYPE functionary_config_cache_total counter",
            "functionary_config_cache_total{result=\"hit\"} 2",
            "functionary_config_cache_total{result=\"miss\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }

        // Metric families come sorted by name, each HELP directly followed by its TYPE.
        let helps: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|l| l.split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(
            helps,
            [
                "functionary_config_cache_total",
                "functionary_http_request_duration_seconds",
                "functionary_http_requests_total",
            ]
        );
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(lines[i + 1].starts_with(&format!("# TYPE {name} ")));
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn render_without_observations_still_declares_the_http_metrics() {
        let text = Metrics::default().render(&[]);
        assert_eq!(
            text,
            "# HELP functionary_http_request_duration_seconds HTTP request latency in seconds, by route.\n\
             # TYPE functionary_http_request_duration_seconds histogram\n\
             # HELP functionary_http_requests_total HTTP requests handled, by method, route and status.\n\
             # TYPE functionary_http_requests_total counter\n"
        );
    }

    #[test]
    fn render_writes_cumulative_histogram_buckets_sum_and_count() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/healthz", 200, 0.003); // le 0.005
        metrics.observe_request("GET", "/healthz", 200, 0.2); // le 0.25
        metrics.observe_request("GET", "/healthz", 200, 1.0); // le 1, bound included
        metrics.observe_request("GET", "/healthz", 503, 10.0); // only +Inf
        metrics.observe_request("GET", "/metrics", 200, 0.0005); // another route

        let text = metrics.render(&[]);
        let expected = [
            ("0.001", 0),
            ("0.0025", 0),
            ("0.005", 1),
            ("0.01", 1),
            ("0.025", 1),
            ("0.05", 1),
            ("0.1", 1),
            ("0.25", 2),
            ("0.5", 2),
            ("1", 3),
            ("2.5", 3),
            ("5", 3),
            ("+Inf", 4),
        ];
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("functionary_http_request_duration_seconds_bucket{route=\"/healthz\"")
            })
            .collect();
        assert_eq!(buckets.len(), expected.len(), "{text}");
        for (line, (le, count)) in buckets.iter().zip(expected) {
            assert_eq!(
                *line,
                format!(
                    "functionary_http_request_duration_seconds_bucket{{route=\"/healthz\",le=\"{le}\"}} {count}"
                )
            );
        }
        assert!(
            text.lines()
                .any(|l| l
                    == "functionary_http_request_duration_seconds_count{route=\"/healthz\"} 4")
        );
        let sum: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("functionary_http_request_duration_seconds_sum{route=\"/healthz\"} ")
            })
            .expect("sum line")
            .parse()
            .expect("sum value");
        assert!((sum - 11.203).abs() < 1e-9, "sum {sum}");
        assert!(text.lines().any(|l| {
            l == "functionary_http_request_duration_seconds_bucket{route=\"/metrics\",le=\"0.001\"} 1"
        }));
    }

    #[test]
    fn render_escapes_label_values() {
        let metrics = Metrics::default();
        metrics.incr("functionary_test_total", &[("value", "a\"b\\c\nd")]);
        metrics.observe_request("GET", "quote\"route", 200, 0.1);
        let text = metrics.render(&[]);
        assert!(
            text.lines()
                .any(|l| l == r#"functionary_test_total{value="a\"b\\c\nd"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"route="quote\"route""#), "{text}");
        // A generic counter without a description still gets HELP and TYPE lines.
        assert!(
            text.lines()
                .any(|l| l == "# HELP functionary_test_total Counter functionary_test_total.")
        );
        assert!(
            text.lines()
                .any(|l| l == "# TYPE functionary_test_total counter")
        );
    }

    #[test]
    fn incr_treats_label_order_as_irrelevant() {
        let metrics = Metrics::default();
        metrics.incr("functionary_x_total", &[("a", "1"), ("b", "2")]);
        metrics.incr("functionary_x_total", &[("b", "2"), ("a", "1")]);
        let text = metrics.render(&[]);
        assert!(
            text.lines()
                .any(|l| l == r#"functionary_x_total{a="1",b="2"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn render_appends_extra_metrics() {
        let metrics = Metrics::default();
        let text = metrics.render(&[
            (
                "functionary_db_pool_size",
                "Connections in the pool.",
                "gauge",
                8.0,
            ),
            (
                "functionary_uptime_seconds_total",
                "Seconds since start.",
                "counter",
                12.5,
            ),
            (
                "functionary_weird",
                "Help with a \\ and a\nnewline.",
                "summary",
                f64::INFINITY,
            ),
        ]);
        let tail = "# HELP functionary_db_pool_size Connections in the pool.\n\
                    # TYPE functionary_db_pool_size gauge\n\
                    functionary_db_pool_size 8\n\
                    # HELP functionary_uptime_seconds_total Seconds since start.\n\
                    # TYPE functionary_uptime_seconds_total counter\n\
                    functionary_uptime_seconds_total 12.5\n\
                    # HELP functionary_weird Help with a \\\\ and a\\nnewline.\n\
                    # TYPE functionary_weird untyped\n\
                    functionary_weird +Inf\n";
        assert!(text.ends_with(tail), "{text}");
    }

    #[test]
    fn method_label_folds_extension_methods() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let custom = Method::from_bytes(b"BREW").expect("extension method");
        assert_eq!(method_label(&custom), "other");
    }

    #[handler]
    fn ok() -> &'static str {
        "ok"
    }

    #[handler]
    fn conflict() -> Result<&'static str> {
        Err(poem::Error::from_string(
            "already exists",
            StatusCode::CONFLICT,
        ))
    }

    #[tokio::test]
    async fn middleware_records_requests_by_route_and_status() {
        let metrics = Arc::new(Metrics::default());
        let app = Route::new()
            .at("/healthz", get(ok))
            .at("/admin/v1/tenants", get(conflict))
            .with(RecordMetrics::new(Arc::clone(&metrics)));
        let cli = TestClient::new(app);

        let resp = cli.get("/healthz").send().await;
        resp.assert_status_is_ok();
        resp.assert_text("ok").await;

        // The router's not-found error is recorded as 404 and still reaches the client as 404.
        cli.get("/api/v1/models/customer/instances/abc/nope")
            .send()
            .await
            .assert_status(StatusCode::NOT_FOUND);

        // An error returned by a handler keeps its status and body.
        let resp = cli.get("/admin/v1/tenants").send().await;
        resp.assert_status(StatusCode::CONFLICT);
        resp.assert_text("already exists").await;

        let text = metrics.render(&[]);
        for line in [
            r#"functionary_http_requests_total{method="GET",route="/healthz",status="200"} 1"#,
            r#"functionary_http_requests_total{method="GET",route="other",status="404"} 1"#,
            r#"functionary_http_requests_total{method="GET",route="/admin/v1/tenants",status="409"} 1"#,
            r#"functionary_http_request_duration_seconds_count{route="/healthz"} 1"#,
            r#"functionary_http_request_duration_seconds_count{route="other"} 1"#,
            r#"functionary_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn metrics_are_shared_across_threads() {
        let metrics = Arc::new(Metrics::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let metrics = Arc::clone(&metrics);
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        metrics.incr("functionary_threads_total", &[]);
                        metrics.observe_request("GET", "/healthz", 200, 0.001);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        let text = metrics.render(&[]);
        assert!(text.lines().any(|l| l == "functionary_threads_total 1000"));
        assert!(text.lines().any(|l| {
            l == r#"functionary_http_request_duration_seconds_count{route="/healthz"} 1000"#
        }));
    }
}
