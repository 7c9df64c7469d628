//! The users this peer hosts, and the session extractor.
//!
//! A session token signed by auth is valid on any peer. The first request a peer sees
//! with it makes that peer the user's home: it records the user (durably), tells the
//! tracker, and learns which channels they joined, so channel pushes reach them. A
//! logout revokes that one session id here, durably.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kit::error::ApiError;
use wire::api::{ChannelList, Done, ReleaseUser, UserInfo};
use wire::names::{ChannelName, Username};
use wire::token::Claims;

use crate::AppState;

/// Hosted users and revoked sessions. Cloning is a reference-count bump.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    hosted: HashMap<Username, Hosted>,
    /// Session id to expiry (Unix seconds).
    revoked: HashMap<String, u64>,
}

#[derive(Default)]
struct Hosted {
    /// The channels the user joined; `None` until learnt from the tracker.
    joined: Option<BTreeSet<ChannelName>>,
    /// Whether the tracker knows this peer hosts the user.
    announced: bool,
}

impl Sessions {
    pub fn restore(hosted: Vec<Username>, revoked: Vec<(String, u64)>) -> Self {
        let inner = Inner {
            hosted: hosted.into_iter().map(|user| (user, Hosted::default())).collect(),
            revoked: revoked.into_iter().collect(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    pub fn is_hosted(&self, user: &Username) -> bool {
        self.lock().hosted.contains_key(user)
    }

    pub fn hosted(&self) -> Vec<Username> {
        let mut users: Vec<_> = self.lock().hosted.keys().cloned().collect();
        users.sort();
        users
    }

    pub fn is_revoked(&self, sid: &str) -> bool {
        self.lock().revoked.contains_key(sid)
    }

    /// Whether `user` is hosted here and a member of `channel`.
    pub fn is_member(&self, user: &Username, channel: &ChannelName) -> bool {
        self.lock()
            .hosted
            .get(user)
            .and_then(|hosted| hosted.joined.as_ref())
            .is_some_and(|joined| joined.contains(channel))
    }

    /// Hosted users whose channels are not known yet.
    pub fn without_channels(&self) -> Vec<Username> {
        self.lock().hosted.iter().filter(|(_, hosted)| hosted.joined.is_none()).map(|(user, _)| user.clone()).collect()
    }

    /// Hosted users the tracker has not been told about yet.
    pub fn unannounced(&self) -> Vec<Username> {
        self.lock().hosted.iter().filter(|(_, hosted)| !hosted.announced).map(|(user, _)| user.clone()).collect()
    }

    pub fn set_announced(&self, user: &Username, announced: bool) {
        if let Some(hosted) = self.lock().hosted.get_mut(user) {
            hosted.announced = announced;
        }
    }

    /// The tracker forgot this peer: every user must be announced again.
    pub fn forget_announcements(&self) {
        for hosted in self.lock().hosted.values_mut() {
            hosted.announced = false;
        }
    }

    pub fn set_joined(&self, user: &Username, channels: impl IntoIterator<Item = ChannelName>) {
        if let Some(hosted) = self.lock().hosted.get_mut(user) {
            hosted.joined = Some(channels.into_iter().collect());
        }
    }

    /// Applies a membership change of a hosted user.
    pub fn update_joined(&self, user: &Username, channel: &ChannelName, joined: bool) {
        if let Some(set) = self.lock().hosted.get_mut(user).and_then(|hosted| hosted.joined.as_mut()) {
            if joined {
                set.insert(channel.clone());
            } else {
                set.remove(channel);
            }
        }
    }

    fn insert(&self, user: &Username) -> bool {
        let mut inner = self.lock();
        if inner.hosted.contains_key(user) {
            return false;
        }
        inner.hosted.insert(user.clone(), Hosted::default());
        true
    }

    fn remove(&self, user: &Username, sid: &str, expires_at: u64) {
        let mut inner = self.lock();
        inner.hosted.remove(user);
        let now = kit::now_secs();
        inner.revoked.retain(|_, expiry| *expiry >= now);
        inner.revoked.insert(sid.to_owned(), expires_at);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A request with a valid session of a user this peer hosts (hosting them on first
/// sight).
#[derive(Debug, Clone)]
pub struct Session {
    pub claims: Claims,
    /// The token, to act for the user towards the tracker.
    pub token: String,
}

impl Session {
    pub fn username(&self) -> &Username {
        &self.claims.sub
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = kit::session::token_from_headers(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let claims = state.tokens.verify(&token)?;
        if state.sessions.is_revoked(&claims.sid) {
            return Err(ApiError::Unauthorized("session ended: log in again".into()));
        }
        let session = Session { claims, token };
        if !state.sessions.is_hosted(session.username()) {
            host(state, &session).await?;
        }
        Ok(session)
    }
}

/// Makes this peer the user's home: durably, then towards the tracker. The tracker
/// part is retried by the heartbeat loop when the tracker is down.
pub async fn host(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let user = session.username();
    state.store.host(user).await.map_err(anyhow::Error::from)?;
    if state.sessions.insert(user) {
        tracing::info!(username = %user, "hosting user");
    }
    announce(state, user).await;
    learn_channels(state, user).await;
    Ok(())
}

/// Tells the tracker this peer hosts `user`.
pub async fn announce(state: &AppState, user: &Username) -> bool {
    let info = UserInfo { ip: state.me.ip.clone(), port: state.me.port, username: user.clone() };
    let request = state.client.signed_post(state.tracker_url("submit-info"), &info);
    match kit::client::call::<Done>(request, "tracker").await {
        Ok(_) => {
            state.sessions.set_announced(user, true);
            true
        }
        Err(err) => {
            tracing::warn!(username = %user, %err, "could not announce a user to the tracker; will retry");
            false
        }
    }
}

/// Learns the channels `user` joined, for channel pushes.
pub async fn learn_channels(state: &AppState, user: &Username) {
    let mut url = state.tracker_url("get-joined-channels");
    url.query_pairs_mut().append_pair("username", user.as_str());
    let request = state.client.signed_get(url);
    match kit::client::call::<ChannelList>(request, "tracker").await {
        Ok(list) => state.sessions.set_joined(user, list.channels),
        Err(err) => tracing::warn!(username = %user, %err, "could not learn a user's channels; will retry"),
    }
}

/// Ends a session: revoked here for good, the user no longer hosted, the tracker told.
pub async fn end(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let user = session.username();
    state.store.revoke(&session.claims.sid, session.claims.exp).await.map_err(anyhow::Error::from)?;
    state.store.unhost(user).await.map_err(anyhow::Error::from)?;
    state.sessions.remove(user, &session.claims.sid, session.claims.exp);
    let release = ReleaseUser { ip: state.me.ip.clone(), port: state.me.port, username: user.clone() };
    if let Err(err) =
        kit::client::call_ok(state.client.signed_post(state.tracker_url("release-user"), &release), "tracker").await
    {
        tracing::warn!(username = %user, %err, "could not tell the tracker about a logout");
    }
    tracing::info!(username = %user, "logged out");
    Ok(())
}
