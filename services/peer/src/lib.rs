//! The peer: the web UI, the sessions of the users it hosts, their contacts and direct
//! messages, and real-time push to browsers.
//!
//! # Layout
//!
//! - [`config`]: flags, env and file settings, and binding.
//! - `state`: [`AppState`], what every handler and task shares, and how the store is
//!   opened; `metrics`: [`PeerMetrics`].
//! - [`sessions`]: the hosted users and their open event streams (state only).
//! - [`hosting`]: the [`hosting::Session`] extractor, what the tracker hears about
//!   hosted users, log-outs and revoked sessions.
//! - [`clients`]: typed clients of the tracker, auth and other peers, with fail-over
//!   between a service's instances.
//! - [`ids`]: message ids as their own types.
//! - [`store`]: contacts, mailboxes and the outbox, durable in SQLite or PostgreSQL.
//! - [`hub`]: the events browsers get, with ids to resume from.
//! - [`delivery`]: sending direct messages peer to peer, and the outbox worker.
//! - [`dm_changes`]: edits, deletions and reactions of direct messages, handed to the
//!   other user's peer like messages, and typing notices ([`typing`]: how often).
//! - [`handoff`]: handing a user's mailbox to their new home when they move
//!   (embedded backend only: on PostgreSQL the mailbox is shared).
//! - [`tracker_link`]: registration, heartbeat and the tracker's push stream.
//! - `routes`: one module per resource.

pub mod clients;
pub mod config;
pub mod delivery;
pub mod dm_changes;
pub mod handoff;
pub mod hosting;
pub mod hub;
pub mod ids;
pub mod sessions;
pub mod store;
pub mod tracker_link;
pub mod typing;

mod metrics;
mod routes;
mod state;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use metrics::PeerMetrics;
pub use state::{AppState, Shared};

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
    let app = kit::http::common_layers(router(state.clone()), &served_by, http_metrics, &state.edge);
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

/// The peer, built and bound: `Peer::build(&config)` or `build_on(listener, &config)`,
/// then `run(shutdown)` (one start-up path for its binary, `weaprous` and the tests).
pub type Peer = kit::startup::Bound<AppState>;

impl kit::startup::Service for AppState {
    const NAME: &'static str = "peer";
    type Config = Config;
    type Flags = config::Flags;

    fn load(flags: &config::Flags) -> Result<Config, kit::config::ConfigError> {
        Config::load(flags)
    }

    fn secrets(config: &Config) -> &kit::config::Secrets {
        &config.secrets
    }

    async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
        config.bind().await
    }

    async fn build(config: &Config, addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        AppState::new(config, addr).await
    }

    async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve(listener, self, shutdown).await
    }
}

/// The `peer` command (its binary, `weaprous peer`): [`kit::startup::run_command`].
pub async fn run_command(flags: &config::Flags) -> anyhow::Result<()> {
    kit::startup::run_command::<AppState>(flags).await
}
