//! The auth service's bodies: credentials, session grants, who a session is, and what
//! the log-in page offers.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::replies::Status;
use crate::names::Username;

/// `POST /login` and `POST /register` on auth, and `POST /login` on the tracker and
/// the peers. Debug never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// The reply of auth's `POST /login`: a signed session token and when it expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    pub status: Status,
    pub username: Username,
    pub token: String,
    /// Unix time, in seconds, after which the token is refused.
    pub expires_at: u64,
}

impl fmt::Debug for SessionGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGrant")
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who a valid session belongs to: auth's `GET /session`, the peer's `GET /me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub status: Status,
    pub username: Username,
    pub expires_at: u64,
    /// The peer that hosts the session (`ip:port`), when a peer answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// Whether anyone is logged in (`GET /login-state` on the peers and the tracker): the
/// log-in page asks, and the answer is 200 either way (no failed request in the
/// browser's console), with `username` only for a valid session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub status: Status,
    #[serde(default)]
    pub username: Option<Username>,
}

/// What the log-in page offers (`GET /login-options` on auth, the peers and the
/// tracker): sign-up, and the demo accounts when the server has them (development
/// only; none in a deployment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOptions {
    /// Whether `POST /register` signs new users up.
    pub sign_up: bool,
    /// The demo accounts present with their public passwords.
    #[serde(default)]
    pub demo_accounts: Vec<DemoAccount>,
}

/// A demo account and its public password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoAccount {
    pub username: String,
    pub password: String,
}
