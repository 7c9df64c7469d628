//! The auth service: users, Argon2id password hashes, signed session tokens.
//!
//! Routes: `POST /login` (credentials → session token), `POST /register` (sign-up,
//! can be switched off), `POST /logout` (revokes the session), `GET /session` (who
//! a token belongs to), plus `/healthz` and `/readyz`. The tracker and the peers verify
//! tokens locally with the shared session secret; they call auth only to log in.

pub mod config;
pub mod users;

mod routes;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use kit::health::Readiness;
use kit::session::TokenKeys;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub use config::Config;
use users::UserDb;

/// Everything a handler needs. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub users: UserDb,
    /// Issues and verifies session tokens; also remembers the sessions ended here.
    pub tokens: TokenKeys,
    pub throttle: Throttle,
    pub allow_registration: bool,
    pub readiness: Readiness,
    pub metrics: AuthMetrics,
}

/// Auth's metrics, and the registry they render from.
#[derive(Clone)]
pub struct AuthMetrics {
    pub registry: kit::metrics::Metrics,
    pub http: kit::metrics::HttpMetrics,
    /// Log-in attempts by outcome (`ok`, `refused`).
    pub logins: Family<OutcomeLabel, Counter>,
    pub sign_ups: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

impl AuthMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let http = kit::metrics::HttpMetrics::register(&mut registry);
        let logins = Family::<OutcomeLabel, Counter>::default();
        let sign_ups = Counter::default();
        registry.register("auth_logins", "Log-in attempts, by outcome", logins.clone());
        registry.register("auth_sign_ups", "Users signed up", sign_ups.clone());
        Self { registry: kit::metrics::Metrics::new(registry), http, logins, sign_ups }
    }
}

impl AppState {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            users: UserDb::open(&config.db)?,
            tokens: TokenKeys::new(&config.secrets.session_secret, config.session_ttl()),
            throttle: Throttle::default(),
            allow_registration: config.allow_registration,
            readiness: Readiness::ready(),
            metrics: AuthMetrics::new(),
        })
    }
}

kit::state_parts!(AppState {
    tokens: TokenKeys,
    readiness: Readiness,
    metrics.registry: kit::metrics::Metrics,
});

/// Failed log-ins per user name: after [`Throttle::MAX_FAILURES`] in a
/// [`Throttle::WINDOW`], that name is refused for the rest of the window, so passwords
/// cannot be guessed at the speed of the network.
#[derive(Clone, Default)]
pub struct Throttle(Arc<Mutex<HashMap<String, (u32, std::time::Instant)>>>);

impl Throttle {
    pub const MAX_FAILURES: u32 = 5;
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    /// How long `username` must wait, if it is locked out now.
    pub fn wait(&self, username: &str) -> Option<std::time::Duration> {
        let failures = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (count, since) = failures.get(&username.to_lowercase())?;
        let elapsed = since.elapsed();
        (*count >= Self::MAX_FAILURES && elapsed < Self::WINDOW).then(|| Self::WINDOW - elapsed)
    }

    pub fn failed(&self, username: &str) {
        let mut failures = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = std::time::Instant::now();
        failures.retain(|_, (_, since)| now.duration_since(*since) < Self::WINDOW);
        let entry = failures.entry(username.to_lowercase()).or_insert((0, now));
        entry.0 += 1;
    }

    pub fn succeeded(&self, username: &str) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&username.to_lowercase());
    }
}

/// The whole HTTP surface of auth; no IO happens here.
pub fn router(state: AppState) -> Router {
    routes::router()
        .merge(kit::health::router())
        .merge(kit::metrics::router())
        .fallback(kit::error::no_route)
        .with_state(state)
}

/// Serves auth on a bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, users = state.users.len(), db = %state.users.path().display(), "listening");
    let http_metrics = state.metrics.http.clone();
    let app = kit::http::common_layers(router(state), &format!("auth@{addr}"), http_metrics);
    kit::http::serve(listener, app, shutdown).await
}
