//! The proxy's metrics, served on its own `GET /metrics` (a Host that names no block,
//! like `/healthz`): per backend, requests, time to the response head, and whether it
//! is up; and the errors the proxy made itself, by reason.
//!
//! Each backend holds its own handles, so the hot path adds to atomics without
//! looking labels up.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The registry and the metric families. Cloning is cheap.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub registry: kit::metrics::Metrics,
    requests: Family<BackendLabel, Counter>,
    latency: Family<BackendLabel, Histogram, fn() -> Histogram>,
    up: Family<BackendLabel, Gauge>,
    errors: Family<ReasonLabel, Counter>,
}

/// One backend's handles.
#[derive(Debug, Clone)]
pub struct BackendStats {
    requests: Counter,
    latency: Histogram,
    up: Gauge,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<BackendLabel, Counter>::default();
        let latency: Family<BackendLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(kit::metrics::latency_histogram);
        let up = Family::<BackendLabel, Gauge>::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        registry.register("proxy_upstream_requests", "Requests answered by each backend", requests.clone());
        registry.register(
            "proxy_upstream_duration_seconds",
            "Time from forwarding a request to the backend's response head",
            latency.clone(),
        );
        registry.register("proxy_backend_up", "Whether a backend is up (1) or down (0)", up.clone());
        registry.register("proxy_errors", "Errors the proxy answered itself, by x-proxy-error reason", errors.clone());
        Self { registry: kit::metrics::Metrics::new(registry), requests, latency, up, errors }
    }

    /// The handles of the backend at `addr` (the same ones on every call).
    pub fn backend(&self, addr: SocketAddr) -> BackendStats {
        let label = BackendLabel { backend: addr.to_string() };
        let stats = BackendStats {
            requests: self.requests.get_or_create(&label).clone(),
            latency: self.latency.get_or_create(&label).clone(),
            up: self.up.get_or_create(&label).clone(),
        };
        stats.up.set(1);
        stats
    }

    /// Counts an error the proxy answered itself.
    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabel { reason }).inc();
    }
}

impl BackendStats {
    /// Handles registered nowhere, for backends made outside a proxy (tests).
    pub fn detached() -> Self {
        Self { requests: Counter::default(), latency: kit::metrics::latency_histogram(), up: Gauge::default() }
    }

    /// A response head came back after `elapsed`.
    pub fn answered(&self, elapsed: Duration) {
        self.requests.inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }
}
