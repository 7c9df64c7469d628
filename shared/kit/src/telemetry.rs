//! The tracing subscriber, set up once per process.
//!
//! Logs go to stderr: human-readable on a terminal, JSON lines otherwise (containers),
//! or as `WEAPROUS_LOG_FORMAT=json|pretty` says. `RUST_LOG` filters, `info` by default.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes telemetry when dropped; keep it alive until the servers have drained.
#[must_use = "telemetry is flushed when the guard drops"]
pub struct TelemetryGuard {
    _private: (),
}

/// Installs the global subscriber for `service`. A second call in the same process
/// (the all-in-one runner, tests) keeps the first subscriber.
pub fn init(service: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("WEAPROUS_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") | Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if installed.is_ok() {
        tracing::debug!(service, "telemetry initialised");
    }
    TelemetryGuard { _private: () }
}
