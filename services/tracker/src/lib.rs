//! The tracker: the peer pool, the user directory, channels, members and channel
//! history.
//!
//! # Layout
//!
//! - [`config`]: flags, env and file settings.
//! - [`health`]: `/healthz`, and `/readyz`, which follows the database.
//! - [`auth_client`]: the calls to auth, over every configured auth instance.
//! - [`pool`]: live peers, by registration and heartbeat, in memory (the embedded
//!   backend's pool).
//! - [`store`]: the peer pool, channels, members, history, the directory and ended
//!   sessions, on SQLite (embedded) or PostgreSQL (several replicas).
//! - [`AppState`] (`state`): what every handler shares, built from the config.
//! - `caller`: who is calling, a user (session token) or a service (signature).
//! - `routes`: one module per resource; `stream` pushes to peers over SSE.

pub mod auth_client;
pub mod config;
pub mod health;
pub mod pool;
pub mod store;

mod caller;
mod routes;
mod state;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::{AppState, Shared, TrackerMetrics};

/// The whole HTTP surface of the tracker; no IO happens here.
pub fn router(state: AppState) -> Router {
    let www = state.www_dir.clone();
    routes::router()
        .merge(health::router())
        .merge(kit::metrics::router())
        .merge(kit::www::files(&www))
        .with_state(state)
}

/// Serves the tracker on a bound listener until `shutdown` completes; expires silent
/// peers meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, db = %state.store.describe(), "listening");
    let token = state.shutdown.clone();
    tokio::spawn(routes::peers::expire_silent_peers(state.clone()));
    let http_metrics = state.metrics.http.clone();
    let edge = state.edge.clone();
    let app = kit::http::common_layers(router(state), &format!("tracker@{addr}"), http_metrics, &edge);
    kit::http::serve(listener, app, async move {
        shutdown.await;
        token.cancel();
    })
    .await
}

/// The tracker, built and bound: how its binary, `weaprous` (`tracker` and `up`) and the
/// tests start it, one start-up path for all.
pub struct Tracker {
    listener: TcpListener,
    state: AppState,
}

impl Tracker {
    /// Builds the state from `config` and binds `config.listen()`.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let listener = kit::http::bind(config.listen()).await?;
        Self::build_on(listener, config).await
    }

    /// Builds the state from `config`, on a listener the caller bound (the all-in-one
    /// binds every port before it starts anything; tests bind port 0).
    pub async fn build_on(listener: TcpListener, config: &Config) -> anyhow::Result<Self> {
        Ok(Self { state: AppState::new(config).await?, listener })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Its state (tests look into it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        serve(self.listener, self.state, shutdown).await
    }
}

/// The `tracker` command, as its binary and `weaprous tracker` run it: the config from
/// `flags` (exit 64 when it is wrong), telemetry, the refusal of public secrets, then
/// serving until SIGINT or SIGTERM.
pub async fn run_command(flags: &config::Flags) -> anyhow::Result<()> {
    let config = Config::load(flags).unwrap_or_else(|err| err.exit());
    let _telemetry = kit::start("tracker");
    config.secrets.refuse_public().unwrap_or_else(|err| err.exit());
    Tracker::build(&config).await?.run(kit::shutdown::signal()).await
}
