//! The auth service: users, Argon2id password hashes, signed session tokens.
//!
//! Routes: `POST /login` (credentials → session token), `POST /register` (sign-up,
//! can be switched off), `POST /logout` (revokes the session), `GET /session` (who
//! a token belongs to), plus `/healthz` and `/readyz`. The tracker and the peers verify
//! tokens locally with the shared session secret; they call auth only to log in.

pub mod config;
pub mod users;

mod routes;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRef;
use kit::health::Readiness;
use kit::session::TokenKeys;
use tokio::net::TcpListener;

pub use config::Config;
use users::UserDb;

/// Everything a handler needs. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub users: UserDb,
    pub tokens: TokenKeys,
    pub revoked: Revoked,
    pub allow_registration: bool,
    pub readiness: Readiness,
}

impl AppState {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            users: UserDb::open(&config.db)?,
            tokens: TokenKeys::new(&config.secrets.session_secret, config.session_ttl()),
            revoked: Revoked::default(),
            allow_registration: config.allow_registration,
            readiness: Readiness::ready(),
        })
    }
}

impl FromRef<AppState> for TokenKeys {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

impl FromRef<AppState> for Readiness {
    fn from_ref(state: &AppState) -> Self {
        state.readiness.clone()
    }
}

/// Session ids revoked by logout, kept until their tokens would expire anyway.
#[derive(Clone, Default)]
pub struct Revoked(Arc<Mutex<HashMap<String, u64>>>);

impl Revoked {
    pub fn revoke(&self, sid: &str, expires_at: u64) {
        let mut revoked = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = kit::now_secs();
        revoked.retain(|_, expiry| *expiry > now);
        revoked.insert(sid.to_owned(), expires_at);
    }

    pub fn is_revoked(&self, sid: &str) -> bool {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains_key(sid)
    }
}

/// The whole HTTP surface of auth; no IO happens here.
pub fn router(state: AppState) -> Router {
    routes::router().merge(kit::health::router()).fallback(kit::error::no_route).with_state(state)
}

/// Serves auth on a bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, users = state.users.len(), db = %state.users.path().display(), "listening");
    let app = kit::http::common_layers(router(state), &format!("auth@{addr}"));
    kit::http::serve(listener, app, shutdown).await
}
