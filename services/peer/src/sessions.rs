//! The users this peer hosts, and the session extractor.
//!
//! A session token signed by auth is valid on any peer. The first request a peer sees
//! with it makes that peer the user's home: it records the user (durably), tells the
//! tracker, and learns which channels they joined, so channel pushes reach them. A
//! logout revokes that one session id here, durably, and through the tracker on every
//! other peer and the tracker itself (see [`crate::tracker_link`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kit::error::ApiError;
use wire::api::{ActivityReport, ChannelList, Done, ReleaseUser, RevokedSession, UserInfo};
use wire::events::Event;
use wire::names::{ChannelName, Username};
use wire::token::Claims;

use crate::AppState;
use crate::hub::Audience;

/// Hosted users and their open event streams. Cloning is a reference-count bump.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    hosted: HashMap<Username, Hosted>,
    /// Open event streams per user (browser tabs with the chat open).
    streams: HashMap<Username, usize>,
}

#[derive(Default)]
struct Hosted {
    /// The channels the user joined; `None` until learnt from the tracker.
    joined: Option<BTreeSet<ChannelName>>,
    /// Whether the tracker knows this peer hosts the user.
    announced: bool,
    /// When the latest session seen here expires (Unix seconds).
    expires_at: u64,
}

impl Sessions {
    /// The state saved by an earlier run. Users whose expiry is unknown get a day.
    pub fn restore(hosted: Vec<(Username, u64)>) -> Self {
        let unknown = kit::now_secs() + 24 * 60 * 60;
        let inner = Inner {
            hosted: hosted
                .into_iter()
                .map(|(user, expires_at)| {
                    let expires_at = if expires_at == 0 { unknown } else { expires_at };
                    (user, Hosted { expires_at, ..Hosted::default() })
                })
                .collect(),
            streams: HashMap::new(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    pub fn is_hosted(&self, user: &Username) -> bool {
        self.lock().hosted.contains_key(user)
    }

    /// Whether `user` is hosted here with a session that lasts at least until
    /// `expires_at`.
    fn is_hosted_until(&self, user: &Username, expires_at: u64) -> bool {
        self.lock().hosted.get(user).is_some_and(|hosted| hosted.expires_at >= expires_at)
    }

    /// Hosted users whose every session has expired.
    pub fn expired(&self, now: u64) -> Vec<Username> {
        self.lock().hosted.iter().filter(|(_, hosted)| hosted.expires_at < now).map(|(user, _)| user.clone()).collect()
    }

    /// Counts a new event stream of `user`; true when it is their first.
    pub fn stream_opened(&self, user: &Username) -> bool {
        let mut inner = self.lock();
        let count = inner.streams.entry(user.clone()).or_default();
        *count += 1;
        *count == 1
    }

    /// Counts a closed event stream of `user`; true when it was their last.
    pub fn stream_closed(&self, user: &Username) -> bool {
        let mut inner = self.lock();
        let Some(count) = inner.streams.get_mut(user) else { return false };
        *count = count.saturating_sub(1);
        if *count == 0 {
            inner.streams.remove(user);
            true
        } else {
            false
        }
    }

    pub fn has_streams(&self, user: &Username) -> bool {
        self.lock().streams.contains_key(user)
    }

    /// Users with at least one event stream open.
    pub fn active(&self) -> Vec<Username> {
        self.lock().streams.keys().cloned().collect()
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

    /// Hosts `user` until at least `expires_at`. Returns true when they were not hosted.
    fn insert(&self, user: &Username, expires_at: u64) -> bool {
        let mut inner = self.lock();
        match inner.hosted.get_mut(user) {
            Some(hosted) => {
                hosted.expires_at = hosted.expires_at.max(expires_at);
                false
            }
            None => {
                inner.hosted.insert(user.clone(), Hosted { expires_at, ..Hosted::default() });
                true
            }
        }
    }

    pub(crate) fn remove(&self, user: &Username) {
        self.lock().hosted.remove(user);
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
        // Revoked sessions fail here too.
        let claims = state.tokens.verify(&token)?;
        let session = Session { claims, token };
        // New here, or a newer session than any seen: (re)host, which records it.
        if !state.sessions.is_hosted_until(session.username(), session.claims.exp) {
            host(state, &session).await?;
        }
        Ok(session)
    }
}

/// Makes this peer the user's home: durably, then towards the tracker. The tracker
/// part is retried by the heartbeat loop when the tracker is down.
pub async fn host(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let user = session.username();
    state.store.host(user, session.claims.exp).await?;
    if !state.sessions.insert(user, session.claims.exp) {
        return Ok(());
    }
    tracing::info!(username = %user, "hosting user");
    announce(state, user, false).await;
    learn_channels(state, user).await;
    Ok(())
}

/// Tells the tracker this peer hosts `user`: because their request just arrived, or
/// (`reclaim`) because it hosted them before. A reclaim of a user who has since signed
/// in on another live peer is refused, and this peer lets them go.
pub async fn announce(state: &AppState, user: &Username, reclaim: bool) -> bool {
    let info =
        UserInfo { ip: state.me.ip.clone(), port: state.me.port, username: user.clone(), active: false, reclaim };
    let request = state.client.signed_post(state.tracker_url("submit-info"), &info);
    match kit::client::call::<Done>(request, "tracker").await {
        Ok(_) => {
            state.sessions.set_announced(user, true);
            true
        }
        Err(ApiError::Upstream { status, message }) if reclaim && status == 409 => {
            tracing::info!(username = %user, %message, "user moved to another peer while this one was away");
            state.sessions.remove(user);
            match crate::delivery::locate(state, user).await {
                Ok(home) => {
                    let to = wire::addr::PeerAddr { ip: home.ip, port: home.port };
                    tokio::spawn(crate::handoff::hand_over(state.clone(), user.clone(), to));
                }
                Err(err) => {
                    tracing::warn!(username = %user, %err, "could not find where a user moved; keeping their mailbox");
                    if let Err(err) = state.store.unhost(user).await {
                        tracing::warn!(username = %user, %err, "could not stop hosting a user who moved");
                    }
                }
            }
            false
        }
        Err(err) => {
            tracing::warn!(username = %user, %err, "could not announce a user to the tracker; will retry");
            false
        }
    }
}

/// Tells the tracker whether `user` has the chat open.
pub async fn report_activity(state: &AppState, user: &Username, active: bool) {
    let report = ActivityReport { ip: state.me.ip.clone(), port: state.me.port, username: user.clone(), active };
    if let Err(err) =
        kit::client::call_ok(state.client.signed_post(state.tracker_url("presence"), &report), "tracker").await
    {
        tracing::debug!(username = %user, %err, "could not report activity to the tracker");
    }
}

/// An event stream of a user opened: counted until dropped. The first one marks the
/// user active; the last one, once closed for the activity grace (a page reload or a
/// network blip is not leaving), inactive.
pub struct StreamGuard {
    state: AppState,
    user: Username,
    own_connection: bool,
}

impl StreamGuard {
    /// `own_connection`: the stream is alone on its connection ([`kit::http::OwnConnection`]).
    pub fn open(state: &AppState, user: &Username, own_connection: bool) -> Self {
        state.metrics.sse_streams.inc();
        if own_connection {
            state.metrics.sse_streams_own_connection.inc();
        }
        if state.sessions.stream_opened(user) {
            let (state, user) = (state.clone(), user.clone());
            tokio::spawn(async move { report_activity(&state, &user, true).await });
        }
        Self { state: state.clone(), user: user.clone(), own_connection }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.state.metrics.sse_streams.dec();
        if self.own_connection {
            self.state.metrics.sse_streams_own_connection.dec();
        }
        if self.state.sessions.stream_closed(&self.user) {
            let (state, user) = (self.state.clone(), self.user.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = state.shutdown.cancelled() => {}
                    () = tokio::time::sleep(state.activity_grace) => {
                        if !state.sessions.has_streams(&user) {
                            report_activity(&state, &user, false).await;
                        }
                    }
                }
            });
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

/// Ends a session: revoked here for good, then everywhere through the tracker, and
/// the user released.
pub async fn end(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let ended = RevokedSession { sid: session.claims.sid.clone(), expires_at: session.claims.exp };
    revoke_here(state, &ended, true).await?;
    if !crate::tracker_link::share_revoked(state, vec![ended]).await {
        state.revocations_unshared.store(true, Ordering::Release);
    }
    release(state, session.username()).await?;
    tracing::info!(username = %session.username(), "logged out");
    Ok(())
}

/// Revokes a session on this peer, durably: `own` when it ended here, else heard of
/// from the tracker. Returns whether it was news.
pub async fn revoke_here(state: &AppState, session: &RevokedSession, own: bool) -> Result<bool, ApiError> {
    if own {
        // A logout here: on disk first, so a failed write leaves the session as it
        // was and the user can simply log out again.
        state.store.revoke(&session.sid, session.expires_at, true).await?;
        let news = state.tokens.revoke(&session.sid, session.expires_at);
        wake_streams(state, session);
        return Ok(news);
    }
    // Heard of: in memory first, so the token stops working at once.
    if !state.tokens.revoke(&session.sid, session.expires_at) {
        return Ok(false);
    }
    wake_streams(state, session);
    state.store.revoke(&session.sid, session.expires_at, false).await?;
    Ok(true)
}

/// Wakes every event stream, so the session's own streams end now rather than at
/// their next event. The event is for nobody: no browser receives it.
fn wake_streams(state: &AppState, session: &RevokedSession) {
    state.hub.publish(Audience::Users(Vec::new()), &Event::SessionRevoked(session.clone()));
}

/// Stops hosting `user` and tells the tracker they left (logout, or every session
/// expired). Direct messages to them then wait in their senders' outboxes.
pub async fn release(state: &AppState, user: &Username) -> Result<(), ApiError> {
    state.store.unhost(user).await?;
    state.sessions.remove(user);
    let release = ReleaseUser { ip: state.me.ip.clone(), port: state.me.port, username: user.clone() };
    let request = state.client.signed_post(state.tracker_url("release-user"), &release);
    if let Err(err) = kit::client::call_ok(request, "tracker").await {
        tracing::warn!(username = %user, %err, "could not tell the tracker a user left");
    }
    Ok(())
}

/// Releases the users whose every session has expired.
pub async fn release_expired(state: &AppState) {
    for user in state.sessions.expired(kit::now_secs()) {
        tracing::info!(username = %user, "session expired; releasing the user");
        if let Err(err) = release(state, &user).await {
            tracing::warn!(username = %user, %err, "could not release an expired user");
        }
    }
}
