//! What every handler of auth shares: the stores, the keys and the metrics.

use std::net::IpAddr;
use std::time::Duration;

use kit::health::Readiness;
use kit::rate::Limiter;
use kit::session::TokenKeys;
use kit::sign::ClusterKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::hashing;
use crate::sessions::EndedSessions;
use crate::store::UserStore;
use crate::throttle::Throttle;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);

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
    /// Sign-ups per client address, and from everyone (`limits`).
    pub sign_ups_by_client: Limiter<IpAddr>,
    pub sign_ups: Limiter<()>,
    /// Trusted proxies and secure cookies, for the edge layer.
    pub edge: kit::http::EdgeConfig,
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
            sign_ups_by_client: Limiter::new(
                config.limits.quota(
                    config.limits.sign_ups_per_client_per_hour,
                    HOUR,
                    config.limits.sign_ups_per_client_per_hour,
                ),
                "sign-ups from this address",
            ),
            sign_ups: Limiter::new(
                config.limits.quota(config.limits.sign_ups_per_min, MINUTE, config.limits.sign_ups_per_min),
                "sign-ups on this server; try again in a while",
            ),
            edge: config.edge.clone(),
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
