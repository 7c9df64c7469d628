//! The peer pool and the user directory.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::error::ApiError;
use kit::sign::Signed;
use serde::Deserialize;
use wire::api::{ActivityReport, Done, Location, PeerRegistration, PeerStatus, ReleaseUser, RevokedSessions, UserInfo};
use wire::names::Username;

use crate::caller::{Authed, Caller};
use crate::state::AppState;
use wire::addr::PeerAddr;
use wire::routes::tracker;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(tracker::REGISTER_PEER_POOL, post(register_peer))
        .route(tracker::HEARTBEAT, post(heartbeat))
        .route(tracker::LEAVE_PEER_POOL, post(leave_peer))
        .route(tracker::GET_PEERS, get(peers))
        .route(tracker::SUBMIT_INFO, post(submit_info))
        .route(tracker::RELEASE_USER, post(release_user))
        .route(tracker::REVOKE_SESSIONS, post(revoke_sessions))
        .route(tracker::PRESENCE, post(report_activity))
        .route(tracker::GET_LIST, get(online_users))
        .route(tracker::LOOKUP, get(lookup))
}

fn peer_addr(ip: &str, port: u16) -> Result<PeerAddr, ApiError> {
    PeerAddr::parse(ip, port).map_err(ApiError::BadRequest)
}

#[tracing::instrument(level = "debug", skip_all, fields(peer = %format!("{}:{}", registration.ip, registration.port)))]
async fn register_peer(
    State(state): State<AppState>,
    Signed(registration): Signed<PeerRegistration>,
) -> Result<Json<Done>, ApiError> {
    let addr = peer_addr(&registration.ip, registration.port)?;
    if state.store.register_peer(&addr).await? {
        tracing::info!("peer registered");
    }
    count_live_peers(&state).await?;
    Ok(Json(Done::success()))
}

/// A peer that stops says so: it leaves the pool at once and its users show offline,
/// instead of after the TTL.
async fn leave_peer(
    State(state): State<AppState>,
    Signed(registration): Signed<PeerRegistration>,
) -> Result<Json<Done>, ApiError> {
    let addr = peer_addr(&registration.ip, registration.port)?;
    if let Some(users) = state.store.leave_pool(&addr).await? {
        count_live_peers(&state).await?;
        tracing::info!(peer = %addr, users, "peer left the pool");
    }
    Ok(Json(Done::success()))
}

async fn heartbeat(
    State(state): State<AppState>,
    Signed(registration): Signed<PeerRegistration>,
) -> Result<Json<Done>, ApiError> {
    let addr = peer_addr(&registration.ip, registration.port)?;
    if state.store.heartbeat(&addr).await? {
        Ok(Json(Done::success()))
    } else {
        Err(ApiError::NotFound(format!("peer {addr} is not in the pool: register again")))
    }
}

async fn peers(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<PeerStatus>>, ApiError> {
    let mut load: HashMap<PeerAddr, u32> = HashMap::new();
    for (_, home) in state.store.signed_in().await? {
        *load.entry(home).or_default() += 1;
    }
    let peers = state
        .store
        .live_peers()
        .await?
        .into_iter()
        .map(|addr| PeerStatus { users: load.get(&addr).copied().unwrap_or(0), ip: addr.ip, port: addr.port })
        .collect();
    Ok(Json(peers))
}

/// The peer that hosts a user says so (signed), or the user does for themself.
#[tracing::instrument(level = "debug", skip_all, fields(username = %request.body.username))]
async fn submit_info(State(state): State<AppState>, request: Authed<UserInfo>) -> Result<Json<Done>, ApiError> {
    let UserInfo { ip, port, username, reclaim, .. } = request.body;
    if let Caller::User(user) = &request.caller
        && user.username() != &username
    {
        return Err(ApiError::forbidden(format!("you are logged in as {}, not {username}", user.username())));
    }
    let addr = peer_addr(&ip, port)?;
    if !state.store.is_live(&addr).await? {
        return Err(ApiError::NotFound(format!("peer {addr} is not in the pool")));
    }
    if reclaim
        && let Some((home, true)) = state.store.home(&username).await?
        && home != addr
        && state.store.is_live(&home).await?
    {
        return Err(ApiError::Conflict(format!("{username} is signed in on {home} now")));
    }
    state.store.set_home(&username, &addr).await?;
    tracing::info!(peer = %addr, "user is online");
    Ok(Json(Done::success()))
}

async fn release_user(
    State(state): State<AppState>,
    Signed(release): Signed<ReleaseUser>,
) -> Result<Json<Done>, ApiError> {
    let addr = peer_addr(&release.ip, release.port)?;
    if state.store.release(&release.username, &addr).await? {
        tracing::info!(username = %release.username, peer = %addr, "user is offline");
    }
    Ok(Json(Done::success()))
}

/// A peer ended sessions (logouts): no service may accept their tokens any more.
/// Every peer hears of them on its stream; the reply lists the sessions ended since
/// the caller's cursor, so the caller also learns of those it missed.
async fn revoke_sessions(
    State(state): State<AppState>,
    Signed(ended): Signed<RevokedSessions>,
) -> Result<Json<RevokedSessions>, ApiError> {
    // Here first: the write below might outlive this request (a timeout), and a
    // retry would find the sessions stored already.
    for session in &ended.sessions {
        state.tokens.revoke(&session.sid, session.expires_at);
    }
    let fresh = state.store.revoke(ended.sessions).await?;
    if !fresh.is_empty() {
        tracing::info!(sessions = fresh.len(), "sessions ended");
    }
    // What ended since the caller's last call (everything, for a caller without a
    // cursor: a peer that just started, or one of before cursors).
    let known = state.store.revoked_since(ended.since.as_deref()).await?;
    Ok(Json(RevokedSessions { sessions: known.sessions, since: None, cursor: Some(known.cursor) }))
}

/// A peer says whether a user it hosts has the chat open.
async fn report_activity(
    State(state): State<AppState>,
    Signed(report): Signed<ActivityReport>,
) -> Result<Json<Done>, ApiError> {
    let addr = peer_addr(&report.ip, report.port)?;
    if state.store.set_active(&report.username, &addr, report.active).await? {
        Ok(Json(Done::success()))
    } else {
        Err(ApiError::NotFound(format!("{} is not signed in on {addr}", report.username)))
    }
}

/// The users online now: their home peer is alive.
async fn online_users(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<UserInfo>>, ApiError> {
    let users = state
        .store
        .online()
        .await?
        .into_iter()
        .map(|(username, addr, active)| UserInfo { active, ip: addr.ip, port: addr.port, username, reclaim: false })
        .collect();
    Ok(Json(users))
}

#[derive(Deserialize)]
struct LookupQuery {
    username: Username,
}

async fn lookup(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<LookupQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Location>, ApiError> {
    let Query(LookupQuery { username }) =
        query.map_err(|err| ApiError::bad_request(format!("expected ?username=NAME: {}", err.body_text())))?;
    let (home, signed_in) = state
        .store
        .home(&username)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {username} has never been online")))?;
    let online = signed_in && state.store.is_live(&home).await?;
    Ok(Json(Location { ip: home.ip, port: home.port, username, online }))
}

/// Drops peers that stopped beating, and tells everyone their users went offline.
pub(crate) async fn expire_silent_peers(state: AppState) {
    let mut ticker = tokio::time::interval(state.store.peer_ttl() / 3);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match state.store.expire_peers().await {
            Ok(expired) => {
                for (peer, users) in expired {
                    tracing::warn!(%peer, users, "peer stopped beating; removed from the pool");
                }
            }
            Err(err) => tracing::error!(%err, "failed to expire silent peers"),
        }
        if let Err(err) = count_live_peers(&state).await {
            tracing::warn!(%err, "failed to count the live peers");
        }
    }
}

/// Sets the live-peers gauge.
async fn count_live_peers(state: &AppState) -> Result<(), crate::store::StoreError> {
    state.metrics.peers_live.set(state.store.live_peers().await?.len() as i64);
    Ok(())
}
