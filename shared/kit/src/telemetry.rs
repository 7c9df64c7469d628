//! Telemetry: logs, and traces exported over OTLP.
//!
//! Logs go to stderr: human-readable on a terminal, JSON lines otherwise (containers),
//! or as `WEAPROUS_LOG_FORMAT=json|pretty` says. `RUST_LOG` filters, `info` by default.
//!
//! Spans are exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; the standard `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` apply.
//! Without an endpoint no OpenTelemetry layer is installed at all and request spans
//! are `debug` spans, which the default filter turns off: measured, tracing was a
//! third of a busy tracker's CPU. (So a service that does not export does not pass a
//! trace on either; deployments configure every service alike.)
//! A collector that is down costs dropped spans, never a blocked request or a log flood.
//!
//! W3C trace context (`traceparent`, `tracestate`) is extracted from every request
//! in [`crate::http`] and injected into every outgoing call in [`crate::client`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether spans of this process go to a collector.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: hot paths (the proxy) make their spans only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
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
    let exporting = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()));

    let mut resource = Resource::builder();
    // `with_service_name` would override OTEL_SERVICE_NAME: only a default.
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    let mut provider = SdkTracerProvider::builder().with_resource(resource.build());
    let mut exporter_error = None;
    if exporting {
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => provider = provider.with_batch_exporter(exporter),
            Err(err) => exporter_error = Some(err.to_string()),
        }
    }
    let provider = provider.build();
    let tracer = provider.tracer(service.to_owned());
    // The exporter's own HTTP stack must not trace itself, or exporting makes spans.
    let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter::filter_fn(|metadata| {
        let target = metadata.target();
        !["hyper", "h2", "reqwest", "tower", "opentelemetry", "rustls", "tokio"]
            .iter()
            .any(|noisy| target.starts_with(noisy))
    }));

    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("WEAPROUS_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") | Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).boxed()
    };
    let installed = tracing_subscriber::registry().with(env_filter).with(fmt).with(otel).try_init().is_ok();
    if !installed {
        return TelemetryGuard { provider: None };
    }
    global::set_tracer_provider(provider.clone());
    match exporter_error {
        Some(err) => tracing::warn!(%err, "traces are not exported: the OTLP exporter could not be built"),
        None if exporting => {
            EXPORTING.store(true, Ordering::Relaxed);
            tracing::info!(service, "exporting traces over OTLP");
        }
        None => tracing::debug!(service, "no OTLP endpoint configured; traces stay local"),
    }
    TelemetryGuard { provider: Some(provider) }
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

/// A server span's name: the [`known_method`] and the route (or host).
pub fn span_name(method: &str, target: &str) -> String {
    format!("{} {target}", known_method(method))
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
    }
}
