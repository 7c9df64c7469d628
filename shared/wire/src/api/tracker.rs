//! The tracker's pool: peers registering and beating, where users are hosted, ended
//! sessions, and the log-in redirect.

use serde::{Deserialize, Serialize};

use super::replies::Status;
use crate::de;
use crate::names::Username;

/// `POST /register-peer-pool` and `POST /heartbeat`, signed with the cluster secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRegistration {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    /// The original sends `username=n/a`; it is ignored.
    #[serde(default, skip_serializing)]
    pub username: Option<String>,
}

/// `POST /submit-info` (a user's home peer) and the items of `GET /get-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    pub username: Username,
    /// In `GET /get-list`: whether the user has the chat open now.
    #[serde(default)]
    pub active: bool,
    /// In `POST /submit-info`: a peer announcing again a user it hosted before (after a
    /// restart, or when the tracker forgot it), not one whose request just arrived. The
    /// tracker refuses it (409) when the user is signed in on another live peer now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reclaim: bool,
}

/// `POST /presence`, signed: a peer says whether a user it hosts has the chat open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityReport {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    pub username: Username,
    pub active: bool,
}

/// `POST /release-user`: a peer no longer hosts this user (logout, expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseUser {
    pub ip: String,
    #[serde(deserialize_with = "de::port")]
    pub port: u16,
    pub username: Username,
}

/// One ended session: its id, and when its token would have expired anyway (after
/// which nobody needs to remember it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSession {
    pub sid: String,
    pub expires_at: u64,
}

/// `POST /revoke-sessions` on the tracker (signed): the sessions a peer ended, and
/// `since`, the `cursor` of the tracker's last reply to this peer. The reply holds
/// the sessions that ended after `since` (every one not expired when `since` is
/// absent or from another store), and the cursor to send next time; so a log-out's
/// reply stays small however many sessions ended that day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSessions {
    pub sessions: Vec<RevokedSession>,
    /// Request: where the caller stands (an opaque string from a reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Reply: where the caller stands after this reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Where a user is hosted: `GET /lookup?username=NAME` on the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub ip: String,
    pub port: u16,
    pub username: Username,
    /// Whether that peer is alive now.
    pub online: bool,
}

/// A live peer in the pool: `GET /get-peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub ip: String,
    pub port: u16,
    /// How many users this peer hosts now.
    pub users: u32,
}

/// The JSON body that comes with the tracker's login redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRedirect {
    pub status: Status,
    pub username: Username,
    /// Where the browser goes next: the assigned peer's page.
    pub location: String,
}
