//! W3C trace context across the proxy.
//!
//! When traces are exported, the proxy's request span is a child of the caller's, and
//! [`propagate`] puts that span's context upstream, so the backend's span is the
//! proxy's child. When they are not, `traceparent` and `tracestate` pass through
//! unchanged (they are end-to-end headers, which the header rewrite in
//! [`crate::forward`] keeps), and the trace still continues, one hop shorter.

use http::HeaderMap;
use http::header::HeaderName;

/// `traceparent: 00-<trace id>-<parent id>-<flags>`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The proxy's request span, kept in the request's extensions for [`propagate`].
#[derive(Clone, Debug)]
pub struct Upstream(pub tracing::Span);

/// Sets the trace context of a request on its way upstream: the proxy's own span
/// when there is one, else the caller's context as it came.
pub fn propagate(extensions: &http::Extensions, headers: &mut HeaderMap) {
    if let Some(Upstream(span)) = extensions.get::<Upstream>() {
        kit::telemetry::inject(span, headers);
    }
}

/// The trace id of a request, for log fields: the second field of a well-formed
/// `traceparent`.
pub fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    let mut fields = value.split('-');
    let _version = fields.next()?;
    let trace_id = fields.next()?;
    (trace_id.len() == 32 && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit())).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn trace_ids_come_from_well_formed_traceparents_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(trace_id(&headers), None);
        headers
            .insert(TRACEPARENT, HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(trace_id(&headers), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        assert_eq!(trace_id(&headers), None);
    }
}
