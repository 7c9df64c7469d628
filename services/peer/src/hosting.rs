//! Hosting users: the session extractor, what the peer tells the tracker about the
//! users it hosts, and ending sessions.
//!
//! A session token signed by auth is valid on any peer. The first request a peer sees
//! with it makes that peer the user's home: it records the user (durably), tells the
//! tracker, and learns which channels they joined, so channel pushes reach them. A
//! logout revokes that one session id here, durably, and through the tracker on every
//! other peer and the tracker itself. The state itself lives in [`crate::sessions`].

use std::sync::atomic::Ordering;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kit::error::ApiError;
use wire::api::RevokedSession;
use wire::events::Event;
use wire::names::Username;
use wire::token::Claims;

use crate::hub::Audience;
use crate::state::AppState;

/// Sessions per `POST /revoke-sessions`, well inside the request body limit.
const REVOKED_PER_CALL: usize = 500;

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
    match state.tracker.submit_info(user, reclaim).await {
        Ok(()) => {
            state.sessions.set_announced(user, true);
            true
        }
        Err(ApiError::Upstream { status, message }) if reclaim && status == 409 => {
            tracing::info!(username = %user, %message, "user moved to another peer while this one was away");
            state.sessions.remove(user);
            match state.tracker.lookup(user).await {
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
    if let Err(err) = state.tracker.presence(user, active).await {
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
    /// Refused with 429 when the user has as many open as `limits.streams_per_user`.
    pub fn open(state: &AppState, user: &Username, own_connection: bool) -> Result<Self, ApiError> {
        let Some(first) = state.sessions.try_open_stream(user, state.streams_per_user) else {
            return Err(ApiError::RateLimited {
                message: "too many chat tabs open for this user; close one".into(),
                retry_after: 10,
            });
        };
        state.metrics.sse_streams.inc();
        if own_connection {
            state.metrics.sse_streams_own_connection.inc();
        }
        if first {
            let (state, user) = (state.clone(), user.clone());
            tokio::spawn(async move { report_activity(&state, &user, true).await });
        }
        Ok(Self { state: state.clone(), user: user.clone(), own_connection })
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
    match state.tracker.channels_of(user).await {
        Ok(list) => state.sessions.set_joined(user, list.channels),
        Err(err) => tracing::warn!(username = %user, %err, "could not learn a user's channels; will retry"),
    }
}

/// Ends a session: revoked here for good, then everywhere through the tracker (and
/// at auth), and the user released.
pub async fn end(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let ended = RevokedSession { sid: session.claims.sid.clone(), expires_at: session.claims.exp };
    // Auth hears of it beside the rest, so `GET /session` there refuses the token
    // too; the log-out does not wait for it, since the tracker's list is what every
    // peer goes by.
    let (auth, token) = (state.auth.clone(), session.token.clone());
    tokio::spawn(async move {
        if let Err(err) = auth.logout(&token).await {
            tracing::debug!(%err, "could not tell auth a session ended");
        }
    });
    revoke_here(state, &ended, true).await?;
    if !share_revoked(state, vec![ended]).await {
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

/// Tells the tracker about sessions ended here, and learns every session ended
/// anywhere since this peer last asked (everything, the first time after start: what
/// ended while it was away). Returns whether the tracker has them all; a failure is
/// logged, and the heartbeat loop, the next registration or reconnect of the stream
/// try again.
pub async fn share_revoked(state: &AppState, ended: Vec<RevokedSession>) -> bool {
    // One call even with nothing to tell, to learn what ended elsewhere.
    let mut batches: Vec<&[RevokedSession]> = ended.chunks(REVOKED_PER_CALL).collect();
    if batches.is_empty() {
        batches.push(&[]);
    }
    for batch in batches {
        let since = state.revocations_cursor.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let known = match state.tracker.revoke_sessions(batch, since).await {
            Ok(known) => known,
            Err(err) => {
                tracing::warn!(%err, "could not share ended sessions with the tracker");
                return false;
            }
        };
        let mut recorded = true;
        for session in known.sessions {
            if let Err(err) = revoke_here(state, &session, false).await {
                tracing::warn!(%err, "could not record an ended session");
                recorded = false;
            }
        }
        // Moved on only past what is recorded here: a session that failed to record is
        // asked for again next time.
        if recorded && let Some(cursor) = known.cursor {
            *state.revocations_cursor.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cursor);
        }
    }
    true
}

/// The sessions that ended on this peer, for the tracker.
pub async fn our_revoked(state: &AppState) -> Vec<RevokedSession> {
    match state.store.own_revoked().await {
        Ok(own) => own.into_iter().map(|(sid, expires_at)| RevokedSession { sid, expires_at }).collect(),
        Err(err) => {
            tracing::warn!(%err, "could not read the sessions ended here");
            Vec::new()
        }
    }
}

/// Stops hosting `user` and tells the tracker they left (logout, or every session
/// expired). Direct messages to them then wait in their senders' outboxes.
pub async fn release(state: &AppState, user: &Username) -> Result<(), ApiError> {
    state.store.unhost(user).await?;
    state.sessions.remove(user);
    if let Err(err) = state.tracker.release(user).await {
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
