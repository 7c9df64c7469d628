//! The proxy's metrics, served on its own `GET /metrics` (a Host that names no block,
//! like `/healthz`, or any request to the `metrics_listen` address): per vhost (the
//! edge's RED view), requests by status class, time to the response head, and
//! requests in flight; per backend, requests, time to the response head, and whether
//! it is up; the errors the proxy made itself, by reason; `process_*` and
//! `weaprous_build_info`. The series of a vhost or backend that a reload or a DNS
//! change removed are dropped with it.
//!
//! Requests and their latency are counted on every request, by every worker: each
//! worker writes a shard of its own (its own cache line), and a scrape adds the
//! shards up. A counter or histogram shared by the workers would bounce its cache
//! line between cores on each request, which measurably cost throughput. The same
//! reason leaves these histograms without exemplars: `prometheus-client` makes them
//! only inside its own (locked) histogram types, not for a collector like this one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VhostLabel {
    vhost: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VhostClassLabels {
    vhost: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The registry and the metric families. Cloning is cheap.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub registry: kit::metrics::Metrics,
    answers: Arc<AnswersCollector>,
    errors: Family<ReasonLabel, Counter>,
}

/// One backend's handles.
#[derive(Debug, Clone)]
pub struct BackendStats {
    answers: Arc<Answers>,
}

/// One vhost's handles: the requests the edge answered for it.
#[derive(Debug, Clone)]
pub struct VhostStats {
    answers: Arc<Answers>,
}

/// A request of a vhost, in flight until dropped; [`EdgeRequest::answered`] counts
/// it once, by its status. It borrows the vhost's counts rather than holding a
/// reference count: that count is shared by every worker, and bumping it on each
/// request would bounce its cache line between cores.
#[derive(Debug)]
pub struct EdgeRequest<'a> {
    answers: &'a Answers,
    worker: usize,
    started: Instant,
    counted: bool,
}

/// Answered requests and their latency for one backend or vhost, one shard per
/// worker.
#[derive(Debug)]
struct Answers {
    shards: Box<[Shard]>,
    /// Whether the backend is up, 1 or 0 (backends only).
    up: AtomicI64,
}

/// One worker's counts, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    sum_nanos: AtomicU64,
    /// Counts per bucket of [`BOUNDS`], the last for anything slower.
    buckets: [AtomicU64; BUCKETS + 1],
    /// Answers by status class, 1xx to 5xx (vhosts only).
    classes: [AtomicU64; 5],
    /// Requests begun minus requests ended on this worker (vhosts only); a request
    /// ends on the worker it began on, so only the sum over shards means anything.
    in_flight: AtomicI64,
}

/// Every backend's and vhost's [`Answers`], encoded on each scrape.
#[derive(Debug, Default)]
struct AnswersCollector {
    backends: Mutex<Vec<(BackendLabel, Arc<Answers>)>>,
    vhosts: Mutex<Vec<(VhostLabel, Arc<Answers>)>>,
}

/// The status classes, in the order of [`Shard::classes`].
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The latency buckets of every service (`kit::metrics::latency_histogram`): upper
/// bounds from 0.5 ms doubling to about 16 s.
const BUCKETS: usize = 16;
const BOUNDS: [f64; BUCKETS] = {
    let mut bounds = [0.0; BUCKETS];
    let mut index = 0;
    let mut bound = 0.0005;
    while index < BUCKETS {
        bounds[index] = bound;
        bound *= 2.0;
        index += 1;
    }
    bounds
};

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let answers = Arc::new(AnswersCollector::default());
        let errors = Family::<ReasonLabel, Counter>::default();
        registry.register_collector(Box::new(answers.clone()));
        registry.register("proxy_errors", "Errors the proxy answered itself, by x-proxy-error reason", errors.clone());
        kit::metrics::process::register(&mut registry);
        Self { registry: kit::metrics::Metrics::new(registry), answers, errors }
    }

    /// The handles of the vhost `name` (the same ones on every call), with a shard
    /// for each of `workers`.
    pub fn vhost(&self, name: &str, workers: usize) -> VhostStats {
        let label = VhostLabel { vhost: name.to_owned() };
        let mut vhosts = crate::sync::lock(&self.answers.vhosts);
        let answers = match vhosts.iter().find(|(known, _)| *known == label) {
            Some((_, answers)) => answers.clone(),
            None => {
                let answers = Arc::new(Answers::new(workers));
                vhosts.push((label, answers.clone()));
                answers
            }
        };
        VhostStats { answers }
    }

    /// Drops the series of every backend and vhost not named here: a reload or a
    /// DNS change removed them, and their last values would otherwise be reported
    /// (a departed backend as up) for as long as the proxy runs.
    pub fn retain(&self, backends: &[SocketAddr], vhosts: &[&str]) {
        crate::sync::lock(&self.answers.backends)
            .retain(|(label, _)| backends.iter().any(|addr| addr.to_string() == label.backend));
        crate::sync::lock(&self.answers.vhosts).retain(|(label, _)| vhosts.contains(&label.vhost.as_str()));
    }

    /// The handles of the backend at `addr` (the same ones on every call), with a
    /// shard for each of `workers`.
    pub fn backend(&self, addr: SocketAddr, workers: usize) -> BackendStats {
        let label = BackendLabel { backend: addr.to_string() };
        let answers = {
            let mut backends = crate::sync::lock(&self.answers.backends);
            match backends.iter().find(|(known, _)| *known == label) {
                Some((_, answers)) => answers.clone(),
                None => {
                    let answers = Arc::new(Answers::new(workers));
                    backends.push((label.clone(), answers.clone()));
                    answers
                }
            }
        };
        let stats = BackendStats { answers };
        stats.set_up(true);
        stats
    }

    /// Reports `stats` as the backend at `addr` again (a backend kept across a
    /// rebuild whose series [`ProxyMetrics::retain`] had dropped).
    pub fn adopt(&self, addr: SocketAddr, stats: &BackendStats) {
        let label = BackendLabel { backend: addr.to_string() };
        let mut backends = crate::sync::lock(&self.answers.backends);
        if !backends.iter().any(|(known, _)| *known == label) {
            backends.push((label, stats.answers.clone()));
        }
    }

    /// Counts an error the proxy answered itself.
    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabel { reason }).inc();
    }
}

impl BackendStats {
    /// Handles registered nowhere, for backends made outside a proxy (tests).
    pub fn detached() -> Self {
        Self { answers: Arc::new(Answers::new(1)) }
    }

    /// A response head came back after `elapsed`, to worker `worker`.
    pub fn answered(&self, worker: usize, elapsed: Duration) {
        self.answers.shard(worker).observe(elapsed);
    }

    pub fn set_up(&self, up: bool) {
        self.answers.up.store(i64::from(up), Ordering::Relaxed);
    }
}

impl VhostStats {
    /// Handles registered nowhere, for vhosts made outside a proxy (tests).
    pub fn detached() -> Self {
        Self { answers: Arc::new(Answers::new(1)) }
    }

    /// A request begins on worker `worker`.
    pub fn begin(&self, worker: usize) -> EdgeRequest<'_> {
        self.answers.shard(worker).in_flight.fetch_add(1, Ordering::Relaxed);
        EdgeRequest { answers: &self.answers, worker, started: Instant::now(), counted: false }
    }
}

impl EdgeRequest<'_> {
    /// The client is sent a response head with status `code` (the first call counts).
    pub fn answered(&mut self, code: u16) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        let shard = self.answers.shard(self.worker);
        shard.observe(self.started.elapsed());
        let class = usize::from(code / 100).clamp(1, 5) - 1;
        shard.classes[class].fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for EdgeRequest<'_> {
    fn drop(&mut self) {
        self.answers.shard(self.worker).in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shard {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS);
        // Saturates after 584 years of summed latency.
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl Answers {
    fn shard(&self, worker: usize) -> &Shard {
        &self.shards[worker % self.shards.len()]
    }

    fn new(workers: usize) -> Self {
        Self { shards: (0..workers.max(1)).map(|_| Shard::default()).collect(), up: AtomicI64::new(0) }
    }

    /// The shards added up: count, sum in seconds, and each bucket's own count (not
    /// cumulative: the encoder makes them cumulative as it writes them, and adding
    /// them up here as well counted every observation once per bucket above its own).
    fn total(&self) -> (u64, f64, [(f64, u64); BUCKETS + 1]) {
        let mut sum_nanos = 0u64;
        let mut buckets: [(f64, u64); BUCKETS + 1] =
            std::array::from_fn(|index| (BOUNDS.get(index).copied().unwrap_or(f64::INFINITY), 0));
        for shard in &self.shards {
            sum_nanos = sum_nanos.saturating_add(shard.sum_nanos.load(Ordering::Relaxed));
            for ((_, total), bucket) in buckets.iter_mut().zip(&shard.buckets) {
                *total += bucket.load(Ordering::Relaxed);
            }
        }
        // The count is what the buckets hold, so the two always agree.
        let count = buckets.iter().map(|(_, count)| count).sum();
        (count, sum_nanos as f64 / 1e9, buckets)
    }

    /// The shards added up: answers by status class, and requests in flight.
    fn classes_and_in_flight(&self) -> ([u64; 5], i64) {
        let mut classes = [0u64; 5];
        let mut in_flight = 0i64;
        for shard in &self.shards {
            for (total, class) in classes.iter_mut().zip(&shard.classes) {
                *total += class.load(Ordering::Relaxed);
            }
            in_flight += shard.in_flight.load(Ordering::Relaxed);
        }
        (classes, in_flight.max(0))
    }
}

impl Collector for AnswersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let backends = crate::sync::lock(&self.backends).clone();
        let totals: Vec<_> = backends.iter().map(|(label, answers)| (label, answers.total())).collect();
        let mut requests = encoder.encode_descriptor(
            "proxy_upstream_requests",
            "Requests answered by each backend",
            None,
            MetricType::Counter,
        )?;
        for (label, (count, _, _)) in &totals {
            ConstCounter::new(*count).encode(requests.encode_family(*label)?)?;
        }
        let mut latency = encoder.encode_descriptor(
            "proxy_upstream_duration_seconds",
            "Time from forwarding a request to the backend's response head",
            None,
            MetricType::Histogram,
        )?;
        for (label, (count, sum, buckets)) in &totals {
            latency.encode_family(*label)?.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        let mut up = encoder.encode_descriptor(
            "proxy_backend_up",
            "Whether a backend is up (1) or down (0)",
            None,
            MetricType::Gauge,
        )?;
        for (label, answers) in &backends {
            ConstGauge::new(answers.up.load(Ordering::Relaxed)).encode(up.encode_family(label)?)?;
        }
        let vhosts = crate::sync::lock(&self.vhosts).clone();
        let mut requests = encoder.encode_descriptor(
            "proxy_requests",
            "Requests answered at the edge, by vhost and status class (the proxy's own refusals included)",
            None,
            MetricType::Counter,
        )?;
        for (label, answers) in &vhosts {
            let (classes, _) = answers.classes_and_in_flight();
            for (class, count) in CLASSES.iter().zip(classes) {
                let labels = VhostClassLabels { vhost: label.vhost.clone(), status_class: class };
                ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
            }
        }
        let mut latency = encoder.encode_descriptor(
            "proxy_request_duration_seconds",
            "Time from a request's head to the response head sent to the client, by vhost (retries included)",
            None,
            MetricType::Histogram,
        )?;
        for (label, answers) in &vhosts {
            let (count, sum, buckets) = answers.total();
            latency.encode_family(label)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        let mut in_flight = encoder.encode_descriptor(
            "proxy_requests_in_flight",
            "Requests being answered now, by vhost (open event streams and WebSockets included)",
            None,
            MetricType::Gauge,
        )?;
        for (label, answers) in &vhosts {
            ConstGauge::new(answers.classes_and_in_flight().1).encode(in_flight.encode_family(label)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up_in_the_exposition() {
        let metrics = ProxyMetrics::new();
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let stats = metrics.backend(addr, 2);
        stats.answered(0, Duration::from_micros(300));
        stats.answered(1, Duration::from_millis(3));
        stats.answered(7, Duration::from_secs(60));
        // The same handles again: counts go on in the same shards.
        metrics.backend(addr, 2).answered(1, Duration::from_micros(100));

        let text = metrics.registry.render();
        assert!(text.contains("proxy_upstream_requests_total{backend=\"127.0.0.1:9001\"} 4\n"), "{text}");
        assert!(
            text.contains("proxy_upstream_duration_seconds_bucket{le=\"0.0005\",backend=\"127.0.0.1:9001\"} 2\n")
                || text
                    .contains("proxy_upstream_duration_seconds_bucket{backend=\"127.0.0.1:9001\",le=\"0.0005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("proxy_upstream_duration_seconds_count{backend=\"127.0.0.1:9001\"} 4\n"), "{text}");
        assert!(text.contains("proxy_upstream_duration_seconds_sum{backend=\"127.0.0.1:9001\"} 60.0034\n"), "{text}");
        assert!(text.contains("proxy_backend_up{backend=\"127.0.0.1:9001\"} 1\n"), "{text}");
    }

    #[test]
    fn each_bucket_counts_its_observations_once() {
        let metrics = ProxyMetrics::new();
        let stats = metrics.backend("127.0.0.1:9002".parse().unwrap(), 3);
        for (worker, micros) in [(0, 100), (1, 300), (2, 3_000), (0, 3_500), (1, 60_000_000)] {
            stats.answered(worker, Duration::from_micros(micros));
        }
        let text = metrics.registry.render();
        let violations = kit::metrics::histogram_violations(&text);
        assert!(violations.is_empty(), "{violations:#?}\n{text}");
        for (le, count) in [("0.0005", 2), ("0.001", 2), ("0.004", 4), ("16.384", 4), ("+Inf", 5)] {
            let bucket =
                format!("proxy_upstream_duration_seconds_bucket{{le=\"{le}\",backend=\"127.0.0.1:9002\"}} {count}\n");
            assert!(text.contains(&bucket), "{bucket}{text}");
        }
    }
}
