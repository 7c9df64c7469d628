//! The tracker's client of auth: one method per auth route the tracker calls, signed
//! inside, over every configured auth instance.
//!
//! The tracker calls auth only for the original's `POST /login` and `POST /register`
//! on the tracker, relaying a browser's credentials, and for what its log-in page
//! offers (`GET /login-options`). Both calls go through
//! [`Endpoints`], so an auth instance that is down (refused connection) or not ready
//! (503) is passed over for the next one; a timeout is reported, never retried, as
//! the instance may have handled the call.

use std::net::IpAddr;

use kit::client::Client;
use kit::client::endpoints::Endpoints;
use kit::error::ApiError;
use wire::api::{Credentials, LoginOptions, SessionGrant};
use wire::routes::auth;

/// Calls auth on the tracker's behalf. Cloning is a few reference-count bumps.
#[derive(Clone)]
pub struct AuthClient {
    client: Client,
    endpoints: Endpoints,
}

impl AuthClient {
    /// A client of the auth instances at `endpoints`, signing with `client`'s key.
    pub fn new(client: Client, endpoints: Endpoints) -> Self {
        Self { client, endpoints }
    }

    /// The auth instances this client calls.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Checks a browser's credentials: a session grant, or auth's refusal (401, 429)
    /// passed on as it came. `browser` is the browser's address, so auth counts
    /// failed log-ins per client and not per tracker.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn login(&self, browser: IpAddr, credentials: &Credentials) -> Result<SessionGrant, ApiError> {
        self.relay(auth::LOGIN, browser, credentials).await
    }

    /// Signs a browser's user up: a session grant for the new user, or auth's refusal
    /// (403 when sign-up is off, 409 for a taken name) passed on as it came.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn register(&self, browser: IpAddr, credentials: &Credentials) -> Result<SessionGrant, ApiError> {
        self.relay(auth::REGISTER, browser, credentials).await
    }

    /// What the log-in page offers (sign-up, demo accounts): a read, so any instance
    /// that fails is passed over.
    pub async fn login_options(&self) -> Result<LoginOptions, ApiError> {
        self.endpoints.call_read(auth::LOGIN_OPTIONS, |url| self.client.http().get(url)).await
    }

    /// A signed POST of `credentials` to `route`, naming the browser.
    async fn relay(&self, route: &str, browser: IpAddr, credentials: &Credentials) -> Result<SessionGrant, ApiError> {
        self.endpoints.call(route, |url| self.client.relay_to_auth(url, browser, credentials)).await
    }
}
