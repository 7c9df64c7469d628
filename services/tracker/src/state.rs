//! What every handler shares: the store, the keys, the clients, the metrics, behind
//! one reference count ([`AppState`]), and how it is built from the config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kit::client::Client;
use kit::client::endpoints::Endpoints;
use kit::health::Readiness;
use kit::rate::Limiter;
use kit::session::TokenKeys;
use kit::sign::ClusterKey;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use wire::names::{ChannelName, Username};

use crate::auth_client::AuthClient;
use crate::config::Config;
use crate::health::cached::{CachedCheck, DATABASE_CHECK_FRESH_FOR};
use crate::store::Store;
use crate::throttle::Throttle;

/// At most one typing event per user and channel is forwarded in this period.
pub const TYPING_PERIOD: Duration = Duration::from_secs(2);

/// Everything a handler needs, behind one reference count: extractors clone the state
/// for every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub store: Store,
    pub tokens: TokenKeys,
    pub cluster: ClusterKey,
    pub client: Client,
    /// Auth, to check passwords on the original's `POST /login`.
    pub auth: AuthClient,
    pub www_dir: Arc<PathBuf>,
    /// Trusted proxies and secure cookies, for the edge layer.
    pub edge: kit::http::EdgeConfig,
    /// Where browsers reach the chat (the proxy), if configured: the original's
    /// log-in sends them there rather than to a peer's own address.
    pub public_url: Option<String>,
    pub readiness: Readiness,
    /// Channel messages and channel creations per user (`limits`; per replica).
    pub channel_messages: Limiter<Username>,
    pub channel_creations: Limiter<Username>,
    /// Typing events forwarded per user and channel (one per [`TYPING_PERIOD`]).
    pub typing: Throttle<(Username, ChannelName)>,
    /// The database's last answer to `/readyz`, reused for a moment.
    pub database_check: CachedCheck,
    /// Cancelled at shutdown, so peer streams end and the drain can finish.
    pub shutdown: CancellationToken,
    pub metrics: TrackerMetrics,
}

/// The tracker's metrics, and the registry they render from.
#[derive(Clone)]
pub struct TrackerMetrics {
    pub registry: kit::metrics::Metrics,
    pub http: kit::metrics::HttpMetrics,
    pub messages_stored: Counter,
    pub events_pushed: Counter,
    pub peers_live: Gauge,
    pub peer_streams: Gauge,
}

impl TrackerMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let http = kit::metrics::HttpMetrics::register(&mut registry);
        let metrics = Self {
            registry: kit::metrics::Metrics::new(Registry::default()),
            http,
            messages_stored: Counter::default(),
            events_pushed: Counter::default(),
            peers_live: Gauge::default(),
            peer_streams: Gauge::default(),
        };
        registry.register(
            "tracker_channel_messages_stored",
            "Channel messages stored",
            metrics.messages_stored.clone(),
        );
        registry.register(
            "tracker_events_pushed",
            "Events pushed to peers over their streams",
            metrics.events_pushed.clone(),
        );
        registry.register("tracker_peers_live", "Peers in the pool", metrics.peers_live.clone());
        registry.register("tracker_peer_streams_open", "Peer push streams open", metrics.peer_streams.clone());
        Self { registry: kit::metrics::Metrics::new(registry), ..metrics }
    }
}

impl AppState {
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        config.validate()?;
        let cluster = ClusterKey::new(&config.secrets.cluster_secret);
        let store = open_store(config).await?;
        let tokens = TokenKeys::new(&config.secrets.session_secret, Duration::from_secs(24 * 60 * 60));
        store.revoke_into(&tokens);
        for session in store.revoked().await.context("failed to read the ended sessions")? {
            tokens.revoke(&session.sid, session.expires_at);
        }
        let client = Client::new(cluster.clone(), Duration::from_secs(10))?;
        let auth = AuthClient::new(client.clone(), Endpoints::parse("auth", &config.auth_url)?);
        Ok(Self(Arc::new(Shared {
            store,
            tokens,
            client,
            cluster,
            auth,
            www_dir: Arc::new(config.www_dir.clone()),
            edge: config.edge.clone(),
            public_url: config.public_url()?,
            readiness: Readiness::ready(),
            channel_messages: Limiter::new(
                config.limits.quota(
                    config.limits.messages_per_sec,
                    Duration::from_secs(1),
                    config.limits.message_burst,
                ),
                "messages",
            ),
            channel_creations: Limiter::new(
                config.limits.quota(
                    config.limits.channels_per_hour,
                    Duration::from_secs(60 * 60),
                    config.limits.channels_per_hour,
                ),
                "channels created",
            ),
            typing: Throttle::new(TYPING_PERIOD),
            database_check: CachedCheck::new(DATABASE_CHECK_FRESH_FOR),
            shutdown: CancellationToken::new(),
            metrics: TrackerMetrics::new(),
        })))
    }
}

/// The store the config asks for.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if let Some(url) = &config.secrets.database_url {
        let url = url.expose_secret();
        tracing::info!(backend = "postgres", db = %kit::pg::describe(url), "tracker storage");
        return Store::connect(url, config.database_pool_size, config.peer_ttl())
            .await
            .context("failed to open the tracker's PostgreSQL store");
    }
    let store = Store::open(&config.db_path(), config.peer_ttl()).context("failed to open the tracker database")?;
    tracing::info!(backend = "sqlite", db = %store.describe(), "tracker storage");
    Ok(store)
}

kit::state_parts!(AppState {
    tokens: TokenKeys,
    cluster: ClusterKey,
    readiness: Readiness,
    metrics.registry: kit::metrics::Metrics,
});
