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

/// The peer, built and bound: how its binary, `weaprous` (`peer` and `up`) and the
/// tests start it, one start-up path for all.
pub struct Peer {
    listener: TcpListener,
    state: AppState,
}

impl Peer {
    /// Builds the state from `config` and binds its port (`config.bind()`: the configured one, else the first free one from 9001).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let listener = config.bind().await?;
        Self::build_on(listener, config).await
    }

    /// Builds the state from `config`, on a listener the caller bound (the all-in-one
    /// binds every port before it starts anything; tests bind port 0).
    pub async fn build_on(listener: TcpListener, config: &Config) -> anyhow::Result<Self> {
        let state = AppState::new(config, listener.local_addr()?).await?;
        Ok(Self { listener, state })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Its state (tests watch its readiness and look into it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        serve(self.listener, self.state, shutdown).await
    }
}

/// The `peer` command, as its binary and `weaprous peer` run it: the config from
/// `flags` (exit 64 when it is wrong), telemetry, the refusal of public secrets, then
/// serving until SIGINT or SIGTERM.
pub async fn run_command(flags: &config::Flags) -> anyhow::Result<()> {
    let config = Config::load(flags).unwrap_or_else(|err| err.exit());
    let _telemetry = kit::start("peer");
    config.secrets.refuse_public().unwrap_or_else(|err| err.exit());
    Peer::build(&config).await?.run(kit::shutdown::signal()).await
}
