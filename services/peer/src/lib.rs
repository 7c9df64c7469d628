//! The peer: the web UI, the sessions of the users it hosts, their contacts and direct
//! messages, and real-time push to browsers.
//!
//! # Layout
//!
//! - [`config`]: flags, env and file settings, and binding.
//! - [`sessions`]: the hosted users and their open event streams (state only).
//! - [`hosting`]: the [`hosting::Session`] extractor, what the tracker hears about
//!   hosted users, log-outs and revoked sessions.
//! - [`clients`]: typed clients of the tracker, auth and other peers, with fail-over
//!   between a service's instances.
//! - [`ids`]: message ids as their own types.
//! - [`store`]: contacts, mailboxes and the outbox, durable in SQLite or PostgreSQL.
//! - [`hub`]: the events browsers get, with ids to resume from.
//! - [`delivery`]: sending direct messages peer to peer, and the outbox worker.
//! - [`handoff`]: handing a user's mailbox to their new home when they move
//!   (embedded backend only: on PostgreSQL the mailbox is shared).
//! - [`tracker_link`]: registration, heartbeat and the tracker's push stream.
//! - `routes`: one module per resource.

pub mod clients;
pub mod config;
pub mod delivery;
pub mod handoff;
pub mod hosting;
pub mod hub;
pub mod ids;
pub mod sessions;
pub mod store;
pub mod tracker_link;

mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use kit::client::Client;
use kit::health::Readiness;
use kit::session::TokenKeys;
use kit::sign::ClusterKey;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire::addr::PeerAddr;

use clients::auth::AuthClient;
use clients::peer::PeerClient;
use clients::tracker::TrackerClient;
pub use config::Config;
use hub::Hub;
use kit::client::endpoints::Endpoints;
use sessions::Sessions;
use store::PeerStore;

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
    /// Where other peers and the tracker reach this peer.
    pub me: PeerAddr,
    pub store: PeerStore,
    pub sessions: Sessions,
    pub hub: Hub,
    pub tokens: TokenKeys,
    pub cluster: ClusterKey,
    /// The plain client the service clients share (tests sign calls with it).
    pub client: Client,
    /// The tracker, at every configured instance.
    pub tracker: TrackerClient,
    /// Auth, at every configured instance.
    pub auth: AuthClient,
    /// Other peers.
    pub peers: PeerClient,
    pub www_dir: Arc<PathBuf>,
    pub heartbeat: Duration,
    pub outbox_ttl: Duration,
    /// How long a user still shows active after their last event stream closed.
    pub activity_grace: Duration,
    /// How often an idle event stream gets a keep-alive comment.
    pub sse_keepalive: Duration,
    /// Wakes the outbox worker when a message could not be delivered at once.
    pub outbox_wake: Arc<Notify>,
    /// Set when a session ended here could not be told to the tracker; the heartbeat
    /// loop tries again.
    pub revocations_unshared: AtomicBool,
    /// Ready once the tracker has the peer in its pool.
    pub readiness: Readiness,
    /// Cancelled at shutdown: background tasks and event streams end.
    pub shutdown: CancellationToken,
    pub metrics: PeerMetrics,
    /// The lock on the database slot this peer claimed, held while it runs.
    _slot: Option<std::fs::File>,
}

/// Claims the first database slot in `dir` that no running peer holds: the lock file
/// `peer-slot-N.lock` locked for as long as this peer runs. Returns the slot's
/// database path and the lock.
fn claim_slot(dir: &std::path::Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for slot in 0..1024 {
        let lock_path = dir.join(format!("peer-slot-{slot}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("failed to open {}", lock_path.display()))?;
        if lock.try_lock().is_ok() {
            tracing::info!(slot, "claimed a database slot");
            return Ok((dir.join(format!("peer-slot-{slot}.db")), lock));
        }
    }
    anyhow::bail!("no free database slot in {}", dir.display())
}

/// Opens the peer's store: the shared PostgreSQL database when a database URL is set
/// (no SQLite file and no slot then), else this peer's own SQLite file. Returns the
/// slot lock, if one was claimed, to hold while the peer runs.
async fn open_store(
    config: &Config,
    me: &PeerAddr,
) -> anyhow::Result<(PeerStore, store::Loaded, Option<std::fs::File>)> {
    if let Some(url) = &config.secrets.database_url {
        let url = url.expose_secret();
        tracing::info!(backend = "postgres", db = %kit::pg::describe(url), "storage backend");
        let (store, loaded) = PeerStore::connect(url, me, config.database_pool_size, kit::pg::STARTUP_PATIENCE)
            .await
            .context("failed to open the peer database")?;
        return Ok((store, loaded, None));
    }
    let (db_path, slot) = if config.db_slot {
        let (path, lock) = claim_slot(&config.data_dir)?;
        (path, Some(lock))
    } else {
        let name = format!("peer-{}-{}.db", me.ip.replace([':', '/', '\\'], "_"), me.port);
        (config.data_dir.join(name), None)
    };
    tracing::info!(backend = "sqlite", db = %db_path.display(), "storage backend");
    let (store, loaded) = PeerStore::open(&db_path).context("failed to open the peer database")?;
    Ok((store, loaded, slot))
}

/// The peer's metrics, and the registry they render from.
#[derive(Clone)]
pub struct PeerMetrics {
    pub registry: kit::metrics::Metrics,
    pub http: kit::metrics::HttpMetrics,
    /// Browsers' event streams open now.
    pub sse_streams: Gauge,
    /// Of those, the ones alone on their connection, served without hyper's buffers.
    pub sse_streams_own_connection: Gauge,
    /// Direct messages users of this peer sent.
    pub dms_sent: Counter,
    /// Direct messages handed to the recipient's peer (at once or from the outbox).
    pub dms_delivered: Counter,
    /// Direct messages filed for users of this peer.
    pub dms_received: Counter,
    /// Delivery attempts from the outbox.
    pub outbox_retries: Counter,
    /// Messages waiting in the outbox.
    pub outbox_depth: Gauge,
    /// Events received on the tracker's push stream.
    pub pushes_received: Counter,
}

impl PeerMetrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            registry: kit::metrics::Metrics::new(Registry::default()),
            http: kit::metrics::HttpMetrics::register(&mut registry),
            sse_streams: Gauge::default(),
            sse_streams_own_connection: Gauge::default(),
            dms_sent: Counter::default(),
            dms_delivered: Counter::default(),
            dms_received: Counter::default(),
            outbox_retries: Counter::default(),
            outbox_depth: Gauge::default(),
            pushes_received: Counter::default(),
        };
        registry.register("peer_sse_streams_open", "Browser event streams open", metrics.sse_streams.clone());
        registry.register(
            "peer_sse_streams_own_connection",
            "Browser event streams open alone on their connection (served without hyper's buffers)",
            metrics.sse_streams_own_connection.clone(),
        );
        registry.register(
            "peer_direct_messages_sent",
            "Direct messages sent by users of this peer",
            metrics.dms_sent.clone(),
        );
        registry.register(
            "peer_direct_messages_delivered",
            "Direct messages handed to the recipient's peer",
            metrics.dms_delivered.clone(),
        );
        registry.register(
            "peer_direct_messages_received",
            "Direct messages filed for users of this peer",
            metrics.dms_received.clone(),
        );
        registry.register("peer_outbox_retries", "Delivery attempts from the outbox", metrics.outbox_retries.clone());
        registry.register("peer_outbox_depth", "Direct messages waiting in the outbox", metrics.outbox_depth.clone());
        registry.register(
            "peer_tracker_pushes_received",
            "Events received from the tracker",
            metrics.pushes_received.clone(),
        );
        Self { registry: kit::metrics::Metrics::new(registry), ..metrics }
    }
}

impl AppState {
    /// State for a peer bound at `bound` (the port matters when it was chosen at bind).
    pub async fn new(config: &Config, bound: SocketAddr) -> anyhow::Result<Self> {
        config.validate()?;
        let me = PeerAddr::parse(&config.advertised_host(), bound.port()).map_err(anyhow::Error::msg)?;
        let (store, loaded, slot) = open_store(config, &me).await?;
        let cluster = ClusterKey::new(&config.secrets.cluster_secret);
        let tokens = TokenKeys::new(&config.secrets.session_secret, Duration::from_secs(24 * 60 * 60));
        for (sid, expires_at) in loaded.revoked {
            tokens.revoke(&sid, expires_at);
        }
        let client = Client::new(cluster.clone(), Duration::from_secs(10))?;
        let tracker_endpoints = Endpoints::parse("tracker", &config.tracker_url)?;
        let auth_endpoints = Endpoints::parse("auth", &config.auth_url)?;
        Ok(Self(Arc::new(Shared {
            tracker: TrackerClient::new(tracker_endpoints, client.clone(), me.clone()),
            auth: AuthClient::new(auth_endpoints, client.clone()),
            peers: PeerClient::new(client.clone()),
            client,
            me,
            store,
            sessions: Sessions::restore(loaded.hosted),
            hub: Hub::new(),
            tokens,
            cluster,
            www_dir: Arc::new(config.www_dir.clone()),
            heartbeat: config.heartbeat(),
            outbox_ttl: Duration::from_secs(config.outbox_ttl_secs),
            activity_grace: Duration::from_secs(config.activity_grace_secs),
            sse_keepalive: Duration::from_secs(config.sse_keepalive_secs),
            outbox_wake: Arc::new(Notify::new()),
            revocations_unshared: AtomicBool::new(false),
            readiness: Readiness::default(),
            shutdown: CancellationToken::new(),
            metrics: PeerMetrics::new(),
            _slot: slot,
        })))
    }
}

kit::state_parts!(AppState {
    tokens: TokenKeys,
    cluster: ClusterKey,
    readiness: Readiness,
    metrics.registry: kit::metrics::Metrics,
});

/// The whole HTTP surface of the peer; no IO happens here.
pub fn router(state: AppState) -> Router {
    let www = state.www_dir.clone();
    routes::router()
        .merge(kit::health::router())
        .merge(kit::metrics::router())
        .merge(kit::www::files(&www))
        .with_state(state)
}

/// Serves the peer on a bound listener until `shutdown` completes, with its
/// background work: tracker registration and heartbeat (then the tracker's push
/// stream), and the outbox. When it stops, it tells the tracker it leaves the pool.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, advertised = %state.me, tracker = %state.tracker.endpoints().url("/"), tracker_instances = state.tracker.endpoints().len(), auth_instances = state.auth.endpoints().len(), store = %state.store.describe(), "listening");
    let registration = tokio::spawn(tracker_link::keep_registered(state.clone()));
    tokio::spawn(delivery::outbox_worker(state.clone()));
    let token = state.shutdown.clone();
    let http_metrics = state.metrics.http.clone();
    // Replicas all bind 0.0.0.0:9001 in containers; the advertised address tells them apart.
    let served_by = format!("peer@{}", state.me);
    let app = kit::http::common_layers(router(state.clone()), &served_by, http_metrics);
    // Leaving the tracker's pool starts with the shutdown, beside the drain (a
    // container's stop grace covers both), once no heartbeat can re-register.
    let (left, leaving) = tokio::sync::oneshot::channel();
    let stopping = async move {
        shutdown.await;
        token.cancel();
        registration.abort();
        let _ = registration.await;
        let _ = left.send(tokio::spawn(async move { tracker_link::leave(&state).await }));
    };
    // Browsers' event streams are most of a peer's connections: served leanly.
    let stream_path = "/events";
    let served = kit::http::serve_with_streams(listener, app, stopping, stream_path).await;
    if let Ok(leave) = leaving.await {
        let _ = leave.await;
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_running_peer_claims_its_own_slot_and_a_freed_slot_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, first_lock) = claim_slot(dir.path()).unwrap();
        let (second, _second_lock) = claim_slot(dir.path()).unwrap();
        assert_ne!(first, second);
        drop(first_lock);
        let (again, _) = claim_slot(dir.path()).unwrap();
        assert_eq!(again, first, "a recreated replica takes over the database of the one before it");
    }
}
