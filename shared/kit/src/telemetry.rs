//! Telemetry: logs, and traces exported over OTLP.
//!
//! Logs go to stderr: human-readable on a terminal, JSON lines otherwise (containers),
//! or as `WEAPROUS_LOG_FORMAT=json|pretty` says. `RUST_LOG` filters, `info` by default.
//! A line written inside a traced span carries its `trace_id` and `span_id`
//! ([`log_format`]). Every request makes one access-log line (target `access`:
//! method, route, status, duration, client, vhost) unless `WEAPROUS_ACCESS_LOG=off`.
//!
//! Spans are exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; the standard `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` apply.
//! `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` is refused at start ([`check_protocol`]).
//! Every span's resource has `service.name`, `service.version` and a
//! `service.instance.id` unique to the process; the all-in-one exports each of its
//! services under its own name ([`export`]).
//! Without an endpoint no span is exported and request spans are `debug` spans, which
//! the default filter turns off: measured, tracing was a third of a busy tracker's
//! CPU. (So a service that does not export does not pass a trace on either;
//! deployments configure every service alike.)
//! A collector that is down costs dropped spans and one warning every few minutes,
//! never a blocked request or a log flood.
//!
//! Health probes, `/metrics` scrapes, peer heartbeats and pushes that no request
//! caused are not traced unless `WEAPROUS_TRACE_PROBES=on` ([`traced_route`]).
//!
//! W3C trace context (`traceparent`, `tracestate`) is extracted from every request
//! in [`crate::http`] and injected into every outgoing call in [`crate::client`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

use crate::config::ConfigError;

pub mod capture;
mod export;
mod log_format;
pub mod throttle;

/// The target of access-log lines: `RUST_LOG=info,access=off` also silences them.
pub const ACCESS_TARGET: &str = "access";

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether spans of this process go to a collector.
static EXPORTING: AtomicBool = AtomicBool::new(false);
/// `WEAPROUS_ACCESS_LOG`: one line per request (on by default).
static ACCESS_LOG: AtomicBool = AtomicBool::new(true);
/// `WEAPROUS_TRACE_PROBES`: trace probes, scrapes, heartbeats and idle pushes too.
static TRACE_PROBES: AtomicBool = AtomicBool::new(false);

/// Routes that machines call all day (probes, scrapes, heartbeats): traced only when
/// `WEAPROUS_TRACE_PROBES` is on, or they would be most of the traces.
const ROUTINE_ROUTES: [&str; 4] = ["/healthz", "/readyz", "/metrics", wire::routes::tracker::HEARTBEAT];

/// Whether spans are exported: hot paths (the proxy) make their spans only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether each request is logged on one access-log line: `WEAPROUS_ACCESS_LOG` is
/// not off and the filter lets `info` through somewhere (`RUST_LOG=warn` does not), so
/// that a request costs nothing for a line nobody would see. (Not `tracing::enabled!`:
/// asked outside an event, it leaves the OpenTelemetry layer's filter state behind,
/// and the next span on the thread goes untraced.)
pub fn access_log() -> bool {
    ACCESS_LOG.load(Ordering::Relaxed) && tracing::level_filters::LevelFilter::current() >= tracing::Level::INFO
}

/// Whether a request to `path` (a route, or a path without its query) gets a span
/// that is exported: only while [`exporting`], and not for probes, scrapes and
/// heartbeats unless `WEAPROUS_TRACE_PROBES` is on.
pub fn traced_route(path: &str) -> bool {
    exporting() && (trace_routine() || !ROUTINE_ROUTES.contains(&path))
}

/// Whether routine work is traced: probes, scrapes, heartbeats, and pushes that no
/// request caused (so have no trace to join).
pub fn trace_routine() -> bool {
    TRACE_PROBES.load(Ordering::Relaxed)
}

/// Refuses an OTLP protocol this build cannot speak (`grpc`, `http/json`) rather than
/// losing every span in silence. [`crate::start`] exits with the message.
pub fn check_protocol() -> Result<(), ConfigError> {
    match export::unsupported_protocol() {
        Some(message) => Err(ConfigError(message)),
        None => Ok(()),
    }
}

/// Flushes spans when dropped; keep it alive until the servers have drained.
#[must_use = "telemetry is flushed when the guard drops"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // A collector that accepts but never answers must not hold the exit.
            let _ = provider.shutdown_with_timeout(FLUSH_TIMEOUT);
        }
    }
}

/// Installs the global subscriber and tracer provider for `service`. A second call
/// in the same process (the all-in-one runner, tests) keeps the first one.
pub fn init(service: &str) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()));

    let mut provider = SdkTracerProvider::builder().with_resource(resource(service));
    let mut exporter_built = true;
    if let Some(endpoint) = &endpoint {
        // One warning for the whole process when the collector is down.
        let outcome = Arc::new(Mutex::new(export::Outcome::default()));
        let endpoint = endpoint.clone();
        let make: export::MakeProcessor = Box::new(move || {
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build().ok()?;
            let exporter = export::Reporting::new(exporter, endpoint.clone(), outcome.clone());
            Some(BatchSpanProcessor::builder(exporter).build())
        });
        match export::ByService::new(service.to_owned(), make) {
            Some(processor) => provider = provider.with_span_processor(processor),
            None => exporter_built = false,
        }
    }
    let provider = provider.build();
    let tracer = provider.tracer(service.to_owned());
    // The exporter's own HTTP stack must not trace itself, or exporting makes spans;
    // access-log lines would repeat the span's own attributes as an event. Thread,
    // source-location and busy/idle-time attributes are clutter on every span.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_filter(filter::filter_fn(|metadata| {
            let target = metadata.target();
            target != ACCESS_TARGET
                && !["hyper", "h2", "reqwest", "tower", "opentelemetry", "rustls", "tokio"]
                    .iter()
                    .any(|noisy| target.starts_with(noisy))
        }));

    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("WEAPROUS_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") | Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let fmt = log_format::layer(json, std::io::stderr().is_terminal(), std::io::stderr);
    let installed = tracing_subscriber::registry().with(env_filter).with(fmt).with(otel).try_init().is_ok();
    if !installed {
        return TelemetryGuard { provider: None };
    }
    log_format::remember_dispatch();
    global::set_tracer_provider(provider.clone());
    ACCESS_LOG.store(switch("WEAPROUS_ACCESS_LOG", true), Ordering::Relaxed);
    TRACE_PROBES.store(switch("WEAPROUS_TRACE_PROBES", false), Ordering::Relaxed);
    match endpoint {
        Some(_) if !exporter_built => tracing::warn!("traces are not exported: the OTLP exporter could not be built"),
        // Whether spans get through is said at the first export ([`export::Reporting`]).
        Some(endpoint) => {
            EXPORTING.store(true, Ordering::Relaxed);
            tracing::debug!(service, %endpoint, "traces go to the collector");
        }
        None => tracing::debug!(service, "no OTLP endpoint configured; traces stay local"),
    }
    TelemetryGuard { provider: Some(provider) }
}

/// The resource of this process's spans: `service.name` (unless `OTEL_SERVICE_NAME`
/// names it), the version, an instance id new at each start, and whatever
/// `OTEL_RESOURCE_ATTRIBUTES` adds.
fn resource(service: &str) -> Resource {
    let mut resource = Resource::builder().with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
    ]);
    // `with_service_name` would override OTEL_SERVICE_NAME: only a default.
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    resource.build()
}

/// An on/off setting from the environment: `on`, `true`, `1` or `yes` turn it on,
/// `off`, `false`, `0` or `no` off; anything else leaves the default.
fn switch(name: &str, default: bool) -> bool {
    match std::env::var(name).map(|value| value.trim().to_ascii_lowercase()).as_deref() {
        Ok("on" | "true" | "1" | "yes") => true,
        Ok("off" | "false" | "0" | "no") => false,
        _ => default,
    }
}

/// The request methods OpenTelemetry's HTTP conventions know.
const KNOWN_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// A request method as metric labels and span names carry it: one of the known
/// methods, else `_OTHER` (OpenTelemetry's HTTP conventions). HTTP lets a client send
/// any token as a method, and anyone, logged in or not, would otherwise mint a new
/// series and span name with each. Case matters: `get` is not `GET`.
pub fn known_method(method: &str) -> &'static str {
    KNOWN_METHODS.into_iter().find(|known| *known == method).unwrap_or("_OTHER")
}

/// A span's name after OpenTelemetry's HTTP conventions: `{method} {route}`, or the
/// [`known_method`] alone when there is no route (an unmatched request, a proxied
/// one, a client call).
pub fn span_name(method: &str, route: &str) -> String {
    match route {
        "" => known_method(method).to_owned(),
        route => format!("{} {route}", known_method(method)),
    }
}

/// Records on `span` the method as the client sent it
/// (`http.request.method_original`), when it is not a [`known_method`]. The span must
/// declare the field.
pub fn record_original_method(span: &tracing::Span, method: &str) {
    if known_method(method) != method {
        span.record("http.request.method_original", method);
    }
}

/// The trace context a request carries (`traceparent`), to parent its span.
pub fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Writes `span`'s trace context into outgoing headers.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut HeaderInjector(headers)));
}

/// The current span's context as a `traceparent` value, to carry it where headers do
/// not go (a message in the outbox, an event on a stream).
pub fn current_traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut headers = http::HeaderMap::new();
    inject(&tracing::Span::current(), &mut headers);
    headers.get("traceparent").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// The context of a `traceparent` value kept by [`current_traceparent`].
pub fn context_from_traceparent(traceparent: &str) -> Option<Context> {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_str(traceparent).ok()?);
    Some(extract(&headers))
}

/// Makes `span` a child of `parent` (a context from [`extract`]); does nothing when
/// the context is empty or the span was entered already.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    let _ = span.set_parent(parent);
}

/// Links `span` to the trace of `traceparent` (a retry to the send it retries).
pub fn add_link(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::TraceContextExt;
    if let Some(context) = context_from_traceparent(traceparent) {
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.add_link(span_context);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other_in_labels_and_span_names() {
        for method in KNOWN_METHODS {
            assert_eq!(known_method(method), method);
        }
        for invented in ["FOOBAR1", "get", "PROPFIND", "", "GETS"] {
            assert_eq!(known_method(invented), "_OTHER", "{invented:?}");
        }
        assert_eq!(span_name("GET", "/get-peers"), "GET /get-peers");
        assert_eq!(span_name("FOOBAR1", "/get-peers"), "_OTHER /get-peers");
        assert_eq!(span_name("GET", ""), "GET", "an unmatched request has no route");
    }
}
