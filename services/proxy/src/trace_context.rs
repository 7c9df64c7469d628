//! W3C trace context across the proxy.
//!
//! Today the proxy continues the caller's trace by passing `traceparent` and
//! `tracestate` through unchanged: they are end-to-end headers, so the header rewrite
//! in [`crate::forward`] keeps them, and [`propagate`] is the one place that touches
//! them. When the proxy gets spans of its own, `propagate` is where the current span's
//! context replaces the caller's `traceparent` (with the caller as its parent).

use http::HeaderMap;
use http::header::HeaderName;

/// `traceparent: 00-<trace id>-<parent id>-<flags>`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sets the trace context of a request on its way upstream. For now the caller's
/// context goes on as it came.
pub fn propagate(_headers: &mut HeaderMap) {}

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
