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
pub mod password;
pub mod sessions;
pub mod store;
pub mod throttle;
pub mod users;

mod routes;
mod state;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::{AppState, AuthMetrics, OutcomeLabel};

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
    let edge = state.edge.clone();
    let app = kit::http::common_layers(router(state), &format!("auth@{addr}"), http_metrics, &edge);
    kit::http::serve(listener, app, shutdown).await
}

/// The auth, built and bound: how its binary, `weaprous` (`auth` and `up`) and the
/// tests start it, one start-up path for all.
pub struct Auth {
    listener: TcpListener,
    state: AppState,
}

impl Auth {
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

/// The `auth` command, as its binary and `weaprous auth` run it: the config from
/// `flags` (exit 64 when it is wrong), telemetry, the refusal of public secrets, then
/// serving until SIGINT or SIGTERM.
pub async fn run_command(flags: &config::Flags) -> anyhow::Result<()> {
    let config = Config::load(flags).unwrap_or_else(|err| err.exit());
    let _telemetry = kit::start("auth");
    config.secrets.refuse_public().unwrap_or_else(|err| err.exit());
    Auth::build(&config).await?.run(kit::shutdown::signal()).await
}
