//! W3C trace context across the proxy.
//!
//! When traces are exported, the proxy's request span is a child of the caller's, and
//! its context goes upstream in place of the caller's ([`request_span`]), so the
//! backend's span is the proxy's child. When they are not, `traceparent` and
//! `tracestate` pass through unchanged (they are end-to-end headers, which the head
//! rewrite keeps), and the trace still continues, one hop shorter.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

use crate::h1::head::RequestHead;

/// `traceparent: 00-<trace id>-<parent id>-<flags>`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The `traceparent` and `tracestate` to send upstream in place of the client's.
pub type Propagated = Option<(String, Option<String>)>;

/// The span of one request, and the trace context it sends upstream.
///
/// When traces are exported: an `info` server span that continues the caller's trace
/// and is the parent of the backend's (its context goes upstream), named by the method
/// alone, as OpenTelemetry's HTTP conventions name a server span that knows no route.
/// Otherwise (and for probes and scrapes passed on to a backend, unless
/// `WEAPROUS_TRACE_PROBES` is on) a `debug` span with method, host, path and trace id,
/// which below `debug` is disabled and costs a branch, and the client's trace headers
/// pass through as they came.
pub fn request_span(request: &RequestHead<'_>, host: &str) -> (tracing::Span, Propagated) {
    let path = request.path().split('?').next().unwrap_or_default();
    if !kit::telemetry::traced_route(path) {
        let span = tracing::debug_span!(
            "request",
            method = request.method,
            host,
            path,
            trace_id = request.header("traceparent").and_then(trace_id),
        );
        return (span, None);
    }
    let (address, port) = split_host(host);
    // Known methods only in the name and the method attribute, so clients cannot
    // mint span names.
    let span = tracing::info_span!(
        "request",
        otel.name = kit::telemetry::known_method(request.method),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = kit::telemetry::known_method(request.method),
        http.request.method_original = tracing::field::Empty,
        server.address = address,
        server.port = port,
        url.path = path,
        url.scheme = "http",
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        service = "proxy",
    );
    kit::telemetry::record_original_method(&span, request.method);
    let mut incoming = HeaderMap::new();
    for (name, value) in [(TRACEPARENT, request.header("traceparent")), (TRACESTATE, request.header("tracestate"))] {
        if let Some(value) = value.and_then(|value| HeaderValue::from_str(value).ok()) {
            incoming.insert(name, value);
        }
    }
    kit::telemetry::set_parent(&span, kit::telemetry::extract(&incoming));
    let mut outgoing = HeaderMap::new();
    kit::telemetry::inject(&span, &mut outgoing);
    let text = |name| outgoing.get(name).and_then(|value: &HeaderValue| value.to_str().ok()).map(str::to_owned);
    let propagated = text(TRACEPARENT).map(|parent| (parent, text(TRACESTATE)));
    (span, propagated)
}

/// A Host value as `server.address` and `server.port` (an integer; 80 when the Host
/// names none, as plain HTTP's default).
fn split_host(host: &str) -> (&str, i64) {
    let (address, port) = match host.rsplit_once(':') {
        // `[::1]` alone has colons but no port.
        Some((address, port)) if !port.contains(']') => (address, port.parse().ok()),
        _ => (host, None),
    };
    (address.trim_start_matches('[').trim_end_matches(']'), port.unwrap_or(80))
}

/// The trace id of a `traceparent` value, for log fields: its second field, when the
/// value is well formed.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut fields = traceparent.split('-');
    let _version = fields.next()?;
    let trace_id = fields.next()?;
    (trace_id.len() == 32 && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit())).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_well_formed_traceparents_only() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("garbage"), None);
        assert_eq!(trace_id("00-xyz-00f067aa0ba902b7-01"), None);
    }

    #[test]
    fn a_host_is_an_address_and_an_integer_port() {
        assert_eq!(split_host("localhost:8080"), ("localhost", 8080));
        assert_eq!(split_host("tracker.localhost"), ("tracker.localhost", 80));
        assert_eq!(split_host("[::1]:9001"), ("::1", 9001));
        assert_eq!(split_host("[::1]"), ("::1", 80));
    }
}
