//! [`AuthClient`]: log-ins and sign-ups relayed for browsers, and log-outs.

use std::net::IpAddr;

use kit::client::Client;
use kit::client::endpoints::Endpoints;
use kit::error::ApiError;
use wire::api::{Credentials, LoginOptions, SessionGrant};
use wire::routes::auth as routes;

/// Auth, at every configured instance. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct AuthClient {
    endpoints: Endpoints,
    client: Client,
}

impl AuthClient {
    pub fn new(endpoints: Endpoints, client: Client) -> Self {
        Self { endpoints, client }
    }

    /// The configured instances.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Checks a browser's password; `client` is the browser's address, so auth counts
    /// failures per browser rather than per peer.
    pub async fn login(&self, client: IpAddr, credentials: &Credentials) -> Result<SessionGrant, ApiError> {
        self.endpoints.call(routes::LOGIN, |url| self.client.relay_to_auth(url, client, credentials)).await
    }

    /// Signs a browser's user up.
    pub async fn register(&self, client: IpAddr, credentials: &Credentials) -> Result<SessionGrant, ApiError> {
        self.endpoints.call(routes::REGISTER, |url| self.client.relay_to_auth(url, client, credentials)).await
    }

    /// What the log-in page offers (sign-up, demo accounts): a read, so any instance
    /// that fails is passed over.
    pub async fn login_options(&self) -> Result<LoginOptions, ApiError> {
        self.endpoints.call_read(routes::LOGIN_OPTIONS, |url| self.client.http().get(url)).await
    }

    /// Ends the session whose token this is at auth too.
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        self.endpoints.call_ok(routes::LOGOUT, |url| self.client.http().post(url).bearer_auth(token)).await
    }
}
