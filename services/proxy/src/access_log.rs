//! The access log: one line per request (target `access`), with what it asked
//! (method, path, Host), what it got (status), how long it took and who asked. Written
//! when the request is done, inside its span, so the line carries the trace id.
//! `WEAPROUS_ACCESS_LOG=off` turns it off.

use tokio::time::Instant;

use crate::h1::head::RequestHead;

/// What the line of one request says about the request, taken from its head before
/// the head leaves the buffer.
pub(crate) struct AccessEntry {
    method: &'static str,
    /// Without the query, which may carry what a log should not.
    path: String,
    host: String,
    started: Instant,
}

impl AccessEntry {
    /// The entry of `request`, or `None` when the access log is off.
    pub(crate) fn of(request: &RequestHead<'_>) -> Option<Self> {
        if !kit::telemetry::access_log() {
            return None;
        }
        Some(Self {
            method: kit::telemetry::known_method(request.method),
            path: request.path().split('?').next().unwrap_or_default().to_owned(),
            host: match request.host {
                crate::h1::head::HostField::One(host) => host.to_owned(),
                _ => String::new(),
            },
            started: Instant::now(),
        })
    }

    /// Writes the line. `status` 0: no answer was sent (the client or the backend went
    /// away first).
    pub(crate) fn log(self, status: u16, client: &str) {
        tracing::info!(
            target: kit::telemetry::ACCESS_TARGET,
            method = self.method,
            route = self.path,
            status,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            client,
            vhost = self.host,
            "request"
        );
    }
}
