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

/// The auth, built and bound: `Auth::build(&config)` or `build_on(listener, &config)`,
/// then `run(shutdown)` (one start-up path for its binary, `weaprous` and the tests).
pub type Auth = kit::startup::Bound<AppState>;

impl kit::startup::Service for AppState {
    const NAME: &'static str = "auth";
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

/// The `auth` command (its binary, `weaprous auth`): [`kit::startup::run_command`].
pub async fn run_command(flags: &config::Flags) -> anyhow::Result<()> {
    kit::startup::run_command::<AppState>(flags).await
}
