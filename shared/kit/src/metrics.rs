//! Prometheus metrics: `GET /metrics` on every service, and the metrics every service
//! records: requests by route, method and status, their latency (with the trace id
//! of a recent request of each bucket as an exemplar, when traces are exported),
//! requests in flight, the `process_*` metrics and `weaprous_build_info`.
//!
//! Each service owns its registry (no global one), so services running in one process
//! (the all-in-one runner, tests) keep their numbers apart. `GET /metrics` answers in
//! OpenMetrics when asked for it (Prometheus does), else in the classic text format
//! ([`exposition`]).

pub mod exposition;
pub mod process;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A finished registry, rendered on `GET /metrics`. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Metrics(Arc<Registry>);

impl Metrics {
    pub fn new(registry: Registry) -> Self {
        Self(Arc::new(registry))
    }

    /// The registry in OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.0).expect("metrics encode into a String");
        text
    }

    /// The registry in the format a request's `Accept` asks for, with its media type.
    pub fn render_for(&self, accept: Option<&str>) -> (&'static str, String) {
        let text = self.render();
        if exposition::wants_openmetrics(accept) {
            (exposition::OPENMETRICS, text)
        } else {
            (exposition::CLASSIC, exposition::to_classic(&text))
        }
    }
}

/// `GET /metrics`, to merge into a service's router.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Metrics: FromRef<S>,
{
    Router::new().route(
        "/metrics",
        get(|State(metrics): State<Metrics>, headers: HeaderMap| async move { render(&metrics, &headers) }),
    )
}

fn render(metrics: &Metrics, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok());
    let (content_type, text) = metrics.render_for(accept);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// A [`crate::telemetry::known_method`], so clients cannot add series.
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// An exemplar's labels: the trace of one request the bucket counted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceLabel {
    trace_id: String,
}

type HistogramFamily<L> = Family<L, HistogramWithExemplars<TraceLabel>, fn() -> HistogramWithExemplars<TraceLabel>>;

/// Latency buckets from 0.5 ms to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// [`latency_histogram`]'s buckets, with room for exemplars.
fn latency_histogram_with_exemplars() -> HistogramWithExemplars<TraceLabel> {
    HistogramWithExemplars::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Requests by route, method and status, their latency by route and method, and the
/// requests in flight; registering them registers the [`process`] metrics too.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    in_flight: Gauge,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram_with_exemplars);
        let in_flight = Gauge::default();
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests (to the response head), by route and method",
            duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered now, a scrape of this included (up to their response head: open event streams are not counted)",
            in_flight.clone(),
        );
        process::register(registry);
        Self { requests, duration, in_flight }
    }

    /// Middleware that records every request of the router it wraps. Routes are the
    /// matched patterns, never raw paths, and methods only the known ones, so the
    /// label set stays small whatever clients send.
    pub async fn record(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
        let method = crate::telemetry::known_method(request.method().as_str());
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
        let started = Instant::now();
        metrics.in_flight.inc();
        // Decremented however the request ends, a dropped future included.
        let _in_flight = InFlight(&metrics.in_flight);
        let response = next.run(request).await;
        let status = response.status().as_u16();
        let exemplar = trace_id().map(|trace_id| TraceLabel { trace_id });
        metrics.duration.get_or_create(&RouteLabels { method, route: route.clone() }).observe(
            started.elapsed().as_secs_f64(),
            exemplar,
            None,
        );
        metrics.requests.get_or_create(&RequestLabels { method, route, status }).inc();
        response
    }
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The trace id of the current span, when traces are exported (an exemplar pointing
/// at a trace nobody can open would mislead).
fn trace_id() -> Option<String> {
    let traceparent = crate::telemetry::current_traceparent()?;
    // `00-<trace id>-<span id>-<flags>`.
    let trace_id = traceparent.split('-').nth(1)?;
    (trace_id.len() == 32 && trace_id.bytes().any(|byte| byte != b'0')).then(|| trace_id.to_owned())
}

/// What is wrong with the histograms of an exposition `text`, one sentence each; empty
/// when nothing is. Every series of a `histogram` family must have buckets that never
/// decrease and end at `+Inf`, a `+Inf` bucket equal to its `_count`, and a `_sum`
/// that its buckets allow (each observation lies above the bound of the bucket before
/// its own; none is negative, as every histogram here measures a duration). For tests
/// of every service and of the proxy, which build their histograms differently.
pub fn histogram_violations(text: &str) -> Vec<String> {
    #[derive(Default)]
    struct Series {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: Option<f64>,
    }
    let families: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" histogram")).collect();
    let mut violations = Vec::new();
    let mut all: BTreeMap<(String, Labels), Series> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
        let Some((name, mut labels, value)) = parse_sample(line) else {
            violations.push(format!("cannot parse the sample line {line:?}"));
            continue;
        };
        let Some((family, suffix)) = families.iter().find_map(|family| {
            let suffix = name.strip_prefix(family)?.strip_prefix('_')?;
            ["bucket", "count", "sum"].contains(&suffix).then_some((*family, suffix))
        }) else {
            continue;
        };
        let le = labels.iter().position(|(label, _)| label == "le").map(|index| labels.remove(index).1);
        labels.sort();
        let series = all.entry((family.to_owned(), labels)).or_default();
        match (suffix, le) {
            ("bucket", Some(le)) => match le.parse::<f64>() {
                Ok(bound) => series.buckets.push((bound, value)),
                Err(_) => violations.push(format!("{line:?}: le is not a number")),
            },
            ("bucket", None) => violations.push(format!("{line:?}: a bucket without le")),
            ("count", _) => series.count = Some(value),
            _ => series.sum = Some(value),
        }
    }
    for ((family, labels), series) in all {
        let name = format!("{family}{labels:?}");
        let (Some(count), Some(sum)) = (series.count, series.sum) else {
            violations.push(format!("{name}: no _count or no _sum"));
            continue;
        };
        if series.buckets.last().is_none_or(|(bound, _)| *bound != f64::INFINITY) {
            violations.push(format!("{name}: the last bucket is not +Inf"));
            continue;
        }
        // The least and the most the observations can add up to, bucket by bucket.
        let (mut least, mut most, mut below, mut total) = (0.0, 0.0, 0.0, 0.0);
        for (index, &(bound, cumulative)) in series.buckets.iter().enumerate() {
            if cumulative < total || (index > 0 && bound <= below) {
                violations.push(format!("{name}: bucket le={bound} holds {cumulative}, after le={below} with {total}"));
            }
            let here = cumulative - total;
            least += here * below;
            most += if here > 0.0 { here * bound } else { 0.0 };
            (below, total) = (bound, cumulative);
        }
        if total != count {
            violations.push(format!("{name}: the +Inf bucket is {total} but _count is {count}"));
        }
        let slack = 1e-6 * least.max(1e-9);
        if !(sum >= 0.0 && sum + slack >= least && sum <= most + 1e-6 * most.max(1e-9)) {
            violations.push(format!("{name}: _sum {sum} is outside what the buckets allow, [{least}, {most}]"));
        }
    }
    violations
}

/// A sample's labels, as name and value.
type Labels = Vec<(String, String)>;

/// A sample line: its name, its labels, and its value (a timestamp or exemplar after
/// the value is ignored).
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = inside;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (index, '"') => break index,
                    (_, '\\') => value.push(match chars.next()?.1 {
                        'n' => '\n',
                        other => other,
                    }),
                    (_, other) => value.push(other),
                }
            };
            labels.push((label.to_owned(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.requests.get_or_create(&RequestLabels { method: "GET", route: "/x".into(), status: 200 }).inc();
        let text = Metrics::new(registry).render();
        assert!(text.contains("# TYPE http_requests counter"), "{text}");
        assert!(text.contains(r#"http_requests_total{method="GET",route="/x",status="200"} 1"#), "{text}");
    }

    /// A router as every service has one (the common layers and `/metrics`), with a
    /// fast route and a slower one.
    fn service() -> Router {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let metrics = Metrics::new(registry);
        let routes = Router::new()
            .route("/x", get(|| async { "x" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                    "slow"
                }),
            )
            .merge(router::<Metrics>().with_state(metrics));
        crate::http::common_layers(routes, "test@here", http, &crate::http::EdgeConfig::default())
    }

    async fn call(app: &Router, method: &str, path: &str) -> (u16, String) {
        use tower::ServiceExt;
        let request = Request::builder().method(method).uri(path).body(axum::body::Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn scrape(app: &Router) -> String {
        let (status, text) = call(app, "GET", "/metrics").await;
        assert_eq!(status, 200);
        text
    }

    #[tokio::test]
    async fn http_histograms_keep_their_invariants_after_traffic() {
        let app = service();
        for round in 0..20 {
            assert_eq!(call(&app, "GET", "/x").await.0, 200);
            if round % 4 == 0 {
                assert_eq!(call(&app, "GET", "/slow").await.0, 200);
                assert_eq!(call(&app, "POST", "/x").await.0, 405);
                assert_eq!(call(&app, "GET", "/nowhere").await.0, 404);
            }
        }
        let text = scrape(&app).await;
        let violations = histogram_violations(&text);
        assert!(violations.is_empty(), "{violations:#?}\n{text}");
        // Not vacuous: the series were there to check.
        for series in
            [r#"method="GET",route="/x""#, r#"method="GET",route="/slow""#, r#"method="GET",route="unmatched""#]
        {
            assert!(text.contains(&format!("http_request_duration_seconds_count{{{series}")), "{series}\n{text}");
        }
        assert!(text.contains(r#"http_request_duration_seconds_count{method="GET",route="/x"} 20"#), "{text}");
    }

    #[tokio::test]
    async fn invented_methods_add_no_series() {
        let app = service();
        // Every kind of series once: a known method, an invented one on a route and
        // off any route.
        assert_eq!(call(&app, "GET", "/x").await.0, 200);
        assert_eq!(call(&app, "FOOBAR0", "/x").await.0, 405);
        assert_eq!(call(&app, "FOOBAR0", "/nowhere").await.0, 404);
        // The first scrape adds the series of `GET /metrics` itself.
        scrape(&app).await;
        let before = scrape(&app).await;
        for n in 1..=50 {
            assert_eq!(call(&app, &format!("FOOBAR{n}"), "/x").await.0, 405);
            assert_eq!(call(&app, &format!("FOOBAR{n}"), "/nowhere").await.0, 404);
        }
        let after = scrape(&app).await;
        assert_eq!(before.lines().count(), after.lines().count(), "before:\n{before}\nafter:\n{after}");
        assert!(!after.contains("FOOBAR"), "{after}");
        // They were counted, under the conventions' `_OTHER`.
        assert!(after.contains(r#"http_requests_total{method="_OTHER",route="/x",status="405"} 51"#), "{after}");
        assert!(after.contains(r#"http_requests_total{method="_OTHER",route="unmatched",status="404"} 51"#), "{after}");
    }

    #[tokio::test]
    async fn requests_count_in_flight_until_answered() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let metrics = Metrics::new(registry);
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let entered = std::sync::Arc::new(tokio::sync::Notify::new());
        let (wait, enter) = (release.clone(), entered.clone());
        let routes = Router::new()
            .route(
                "/wait",
                get(move || async move {
                    enter.notify_one();
                    wait.notified().await;
                    "done"
                }),
            )
            .merge(router::<Metrics>().with_state(metrics));
        let app = crate::http::common_layers(routes, "test@here", http, &crate::http::EdgeConfig::default());
        let waiting = tokio::spawn({
            let app = app.clone();
            async move { call(&app, "GET", "/wait").await }
        });
        entered.notified().await;
        // The scrape is a request in flight too.
        let text = scrape(&app).await;
        assert!(text.contains("\nhttp_requests_in_flight 2\n"), "{text}");
        release.notify_one();
        assert_eq!(waiting.await.unwrap().0, 200);
        let text = scrape(&app).await;
        assert!(text.contains("\nhttp_requests_in_flight 1\n"), "{text}");
    }

    #[test]
    fn the_histogram_check_catches_buckets_counted_twice() {
        // Issue 12's scrape: buckets made cumulative twice, so `+Inf` is far above `_count`.
        let text = "# TYPE lat histogram\n\
            lat_sum{backend=\"b\"} 0.33\n\
            lat_count{backend=\"b\"} 61\n\
            lat_bucket{le=\"0.001\",backend=\"b\"} 0\n\
            lat_bucket{le=\"0.002\",backend=\"b\"} 0\n\
            lat_bucket{le=\"0.004\",backend=\"b\"} 30\n\
            lat_bucket{le=\"0.008\",backend=\"b\"} 91\n\
            lat_bucket{le=\"+Inf\",backend=\"b\"} 856\n\
            # EOF\n";
        let violations = histogram_violations(text);
        assert!(violations.iter().any(|v| v.contains("+Inf bucket is 856 but _count is 61")), "{violations:#?}");
        let right = text.replace("} 91", "} 61").replace("} 856", "} 61");
        assert_eq!(histogram_violations(&right), Vec::<String>::new());
        let decreasing = right.replace("\"0.004\",backend=\"b\"} 30", "\"0.004\",backend=\"b\"} 70");
        assert!(histogram_violations(&decreasing).iter().any(|v| v.contains("holds 61")), "{decreasing}");
        let too_small_sum = right.replace("0.33", "0.01");
        assert!(histogram_violations(&too_small_sum).iter().any(|v| v.contains("_sum 0.01")), "{too_small_sum}");
    }
}
