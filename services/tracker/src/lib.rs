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
