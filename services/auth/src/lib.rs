//! The auth service: users, Argon2id password hashes, signed session tokens.
//!
//! Routes: `POST /login` (credentials → session token), `POST /register` (sign-up,
//! can be switched off), `POST /logout` (revokes the session), `GET /session` (who
//! a token belongs to), `GET /login-options` (sign-up, and the demo accounts when
//! present: [`demo`]), plus `/healthz` and `/readyz`. The tracker and the peers verify
//! tokens locally with the shared session secret; they call auth only to log in.
//!
//! State lives in one of two places, by `config.secrets.database_url`: embedded (the
//! CSV user file, counts and ended sessions in memory) or PostgreSQL, shared by every
//! replica of auth (cluster mode). See [`store`], [`throttle`] and [`sessions`].

pub mod config;
pub mod demo;
pub mod hashing;
pub mod import;
pub mod sessions;
pub mod store;
pub mod throttle;
pub mod users;

mod routes;

use std::future::Future;

use axum::Router;
use kit::health::Readiness;
use kit::session::TokenKeys;
use kit::sign::ClusterKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub use config::Config;
use sessions::EndedSessions;
use store::UserStore;
use throttle::Throttle;

/// Everything a handler needs. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    /// The users: the CSV file, or PostgreSQL in cluster mode.
    pub users: UserStore,
    /// Issues and verifies session tokens; also remembers the sessions ended here.
    pub tokens: TokenKeys,
    /// Sessions ended through any replica (cluster mode).
    pub ended_sessions: EndedSessions,
    pub throttle: Throttle,
    /// Verifies the log-ins that peers and the tracker relay, which name the client.
    pub cluster: ClusterKey,
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
    /// Password hashes running and queued, and those refused ([`hashing::HashGate`]).
    pub hashing: hashing::HashMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

impl AuthMetrics {
    fn new(hashing: &hashing::HashMetrics) -> Self {
        let mut registry = Registry::default();
        let http = kit::metrics::HttpMetrics::register(&mut registry);
        let logins = Family::<OutcomeLabel, Counter>::default();
        let sign_ups = Counter::default();
        registry.register("auth_logins", "Log-in attempts, by outcome", logins.clone());
        registry.register("auth_sign_ups", "Users signed up", sign_ups.clone());
        registry.register(
            "auth_hashes",
            "Password hashes and checks, by stage (running, queued)",
            hashing.hashes.clone(),
        );
        registry.register(
            "auth_hashes_refused",
            "Password hashes and checks refused with 503, by reason (queue_full, waited_too_long)",
            hashing.refused.clone(),
        );
        let hashing = hashing.clone();
        Self { registry: kit::metrics::Metrics::new(registry), http, logins, sign_ups, hashing }
    }
}

impl AppState {
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        let users = UserStore::open(config).await?;
        Ok(Self {
            throttle: Throttle::new(users.pool().cloned()),
            ended_sessions: EndedSessions::new(users.pool().cloned()),
            metrics: AuthMetrics::new(users.hashing().metrics()),
            users,
            tokens: TokenKeys::new(&config.secrets.session_secret, config.session_ttl()),
            cluster: ClusterKey::new(&config.secrets.cluster_secret),
            allow_registration: config.allow_registration,
            readiness: Readiness::ready(),
        })
    }
}

kit::state_parts!(AppState {
    tokens: TokenKeys,
    cluster: ClusterKey,
    readiness: Readiness,
    metrics.registry: kit::metrics::Metrics,
});

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
    let users = state.users.count().await?;
    tracing::info!(%addr, users, store = %state.users.describe(), "listening");
    let http_metrics = state.metrics.http.clone();
    let app = kit::http::common_layers(router(state), &format!("auth@{addr}"), http_metrics);
    kit::http::serve(listener, app, shutdown).await
}
