//! The kit crate: what every WeApRous service shares.
//!
//! # Layout
//!
//! - [`backoff`]: exponential backoff with jitter.
//! - [`config`]: figment layering (defaults, TOML file, env, flags) and the secrets.
//! - [`telemetry`]: the tracing subscriber, set up once per process.
//! - [`shutdown`]: SIGINT/SIGTERM as a future, and a token that long streams watch.
//! - [`http`]: serving a router with the common layers and a bounded graceful drain,
//!   and event streams without hyper's buffers.
//! - [`limits`]: raising the open-file limit at start; the request-head timeout.
//! - [`error`]: [`error::ApiError`], the one error type of every HTTP edge.
//! - [`body`]: [`body::Input`], a form body whatever its `Content-Type`, or JSON.
//! - [`session`]: issuing and verifying signed, expiring session tokens.
//! - [`sign`]: signing and verifying service-to-service requests.
//! - [`client`]: the outgoing HTTP client, which signs and relays.
//! - [`metrics`]: Prometheus metrics and `/metrics`.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`www`]: static files of the web UI.
//! - [`startup`]: one start-up path (build, bind, run) for every web service.
//! - [`search`]: search queries made safe for each storage engine, and snippets.
//! - `db` (feature `sqlite`): an embedded SQLite store with group commit.
//! - `pg` (feature `postgres`): the PostgreSQL pool, migrations, `LISTEN`, test databases.
//!
//! The modules that serve or call HTTP as a web service (`body`, `client`, `error`,
//! `health`, `http`, `rate`, `session`, `sign`, `startup`, `www`, and the `/metrics` route with
//! the request metrics) need the feature `service`; the proxy, which has its own
//! engine, uses kit without it (config, telemetry, shutdown, metrics rendering).

pub mod backoff;
#[cfg(feature = "service")]
pub mod body;
#[cfg(feature = "service")]
pub mod client;
pub mod config;
#[cfg(feature = "sqlite")]
pub mod db;
#[cfg(feature = "service")]
pub mod error;
#[cfg(feature = "service")]
pub mod health;
#[cfg(feature = "service")]
pub mod http;
pub mod limits;
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod pg;
#[cfg(feature = "service")]
pub mod rate;
pub mod search;
#[cfg(feature = "service")]
pub mod session;
pub mod shutdown;
#[cfg(feature = "service")]
pub mod sign;
#[cfg(feature = "service")]
pub mod startup;
pub mod telemetry;
#[cfg(feature = "service")]
pub mod www;

/// Milliseconds since the Unix epoch: the timestamps in every wire type.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default()
}

/// Seconds since the Unix epoch: token times.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// Implements `FromRef<State>` for the handles that extractors take from a service's
/// state: `kit::state_parts!(AppState { tokens: TokenKeys, metrics.registry: Metrics })`.
#[macro_export]
macro_rules! state_parts {
    ($state:ty { $($($field:ident).+ : $part:ty),* $(,)? }) => {
        $(
            impl ::axum::extract::FromRef<$state> for $part {
                fn from_ref(state: &$state) -> Self {
                    state.$($field).+.clone()
                }
            }
        )*
    };
}

/// What every server binary does first: logs and traces for `service`
/// ([`telemetry::init`]), then the open-file limit ([`limits::raise_open_files`]).
/// Exits with 64 when the OTLP settings cannot work ([`telemetry::check_protocol`]).
pub fn start(service: &str) -> telemetry::TelemetryGuard {
    telemetry::check_protocol().unwrap_or_else(|err| err.exit());
    let telemetry = telemetry::init(service);
    limits::raise_open_files();
    telemetry
}
