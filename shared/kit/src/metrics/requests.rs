//! The request metrics of a web service (feature `service`): requests by route,
//! method and status, their latency with exemplars, requests in flight, and the
//! `GET /metrics` route.

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
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

use super::process;
use super::registry::Metrics;

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

/// The buckets of `kit::metrics::latency_histogram`, with room for exemplars.
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
        let violations = crate::metrics::histogram_violations(&text);
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
}
