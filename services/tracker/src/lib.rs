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
mod throttle;

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

/// The tracker, built and bound: `Tracker::build(&config)` or `build_on(listener, &config)`,
/// then `run(shutdown)` (one start-up path for its binary, `weaprous` and the tests).
pub type Tracker = kit::startup::Bound<AppState>;

impl kit::startup::Service for AppState {
    const NAME: &'static str = "tracker";
    type Config = Config;
    type Flags = config::Flags;

    fn load(flags: &config::Flags) -> Result<Config, kit::config::ConfigError> {
        Config::load(flags)
    }

    fn secrets(config: &Config) -> &kit::config::Secrets {
        &config.secrets
    }

    async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
        kit::http::bind(config.listen()).await
    }

    async fn build(config: &Config, _addr: std::net::SocketAddr) -> anyhow::Result<Self> {
        AppState::new(config).await
    }

    async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve(listener, self, shutdown).await
    }
}

/// The `tracker` command (its binary, `weaprous tracker`): [`kit::startup::run_command`].
pub async fn run_command(flags: &config::Flags) -> anyhow::Result<()> {
    kit::startup::run_command::<AppState>(flags).await
}
