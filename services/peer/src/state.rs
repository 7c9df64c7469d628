//! What every handler and background task of the peer shares, and how it is opened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use kit::client::Client;
use kit::client::endpoints::Endpoints;
use kit::health::Readiness;
use kit::rate::Limiter;
use kit::session::TokenKeys;
use kit::sign::ClusterKey;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire::addr::PeerAddr;
use wire::names::Username;

use crate::clients::auth::AuthClient;
use crate::clients::peer::PeerClient;
use crate::clients::tracker::TrackerClient;
use crate::config::Config;
use crate::hub::Hub;
use crate::metrics::PeerMetrics;
use crate::sessions::Sessions;
use crate::store::{self, PeerStore};

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
    /// Trusted proxies and secure cookies, for the edge layer.
    pub edge: kit::http::EdgeConfig,
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
    /// Where this peer stands in the tracker's ended sessions (its last reply's
    /// cursor); `None` after start, so the first call learns every one.
    pub revocations_cursor: Mutex<Option<String>>,
    /// Ready once the tracker has the peer in its pool.
    pub readiness: Readiness,
    /// Cancelled at shutdown: background tasks and event streams end.
    pub shutdown: CancellationToken,
    pub metrics: PeerMetrics,
    /// Direct messages (and broadcasts) per user, and from one user to one recipient;
    /// event streams one user may hold open (`limits`).
    pub direct_messages: Limiter<Username>,
    pub direct_to_one: Limiter<(Username, Username)>,
    pub streams_per_user: Option<usize>,
    /// Searches per user (`limits`).
    pub searches: Limiter<Username>,
    /// Typing notices forwarded, at most one per user and partner per 2 s.
    pub typing: crate::typing::TypingThrottle,
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
            edge: config.edge.clone(),
            heartbeat: config.heartbeat(),
            outbox_ttl: Duration::from_secs(config.outbox_ttl_secs),
            activity_grace: Duration::from_secs(config.activity_grace_secs),
            sse_keepalive: Duration::from_secs(config.sse_keepalive_secs),
            outbox_wake: Arc::new(Notify::new()),
            revocations_unshared: AtomicBool::new(false),
            revocations_cursor: Mutex::new(None),
            readiness: Readiness::default(),
            shutdown: CancellationToken::new(),
            metrics: PeerMetrics::new(),
            direct_messages: Limiter::new(
                config.limits.quota(
                    config.limits.messages_per_sec,
                    Duration::from_secs(1),
                    config.limits.message_burst,
                ),
                "messages",
            ),
            direct_to_one: Limiter::new(
                config.limits.quota(
                    config.limits.direct_to_one_per_min,
                    Duration::from_secs(60),
                    config.limits.direct_to_one_per_min,
                ),
                "messages to this person",
            ),
            streams_per_user: config.limits.cap(config.limits.streams_per_user).map(|max| max as usize),
            searches: Limiter::new(
                config.limits.quota(
                    config.limits.searches_per_min,
                    Duration::from_secs(60),
                    config.limits.searches_per_min,
                ),
                "searches",
            ),
            typing: crate::typing::TypingThrottle::default(),
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
