//! Prometheus metrics: `GET /metrics` on every service, and the HTTP metrics every
//! service records (requests by route and status, latency by route).
//!
//! Each service owns its registry (no global one), so services running in one process
//! (the all-in-one runner, tests) keep their numbers apart.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A finished registry, rendered on `GET /metrics`. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Metrics(Arc<Registry>);

impl Metrics {
    pub fn new(registry: Registry) -> Self {
        Self(Arc::new(registry))
    }

    /// The registry in the text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.0).expect("metrics encode into a String");
        text
    }
}

/// `GET /metrics`, to merge into a service's router.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Metrics: FromRef<S>,
{
    Router::new().route("/metrics", get(|State(metrics): State<Metrics>| async move { render(&metrics) }))
}

fn render(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
        .into_response()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.5 ms to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Requests by route and status, and their latency by route.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests, by route", duration.clone());
        Self { requests, duration }
    }

    /// Middleware that records every request of the router it wraps. Routes are the
    /// matched patterns, never raw paths, so the label set stays small.
    pub async fn record(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
        let method = request.method().as_str().to_owned();
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
        let started = Instant::now();
        let response = next.run(request).await;
        let status = response.status().as_u16();
        metrics
            .duration
            .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
            .observe(started.elapsed().as_secs_f64());
        metrics.requests.get_or_create(&RequestLabels { method, route, status }).inc();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        http.requests.get_or_create(&RequestLabels { method: "GET".into(), route: "/x".into(), status: 200 }).inc();
        let text = Metrics::new(registry).render();
        assert!(text.contains("# TYPE http_requests counter"), "{text}");
        assert!(text.contains(r#"http_requests_total{method="GET",route="/x",status="200"} 1"#), "{text}");
    }
}
