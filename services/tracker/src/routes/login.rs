//! The original's login on the tracker: check the password with auth, pick the
//! user's peer (their current one if it is alive, else the least loaded), set the
//! session cookie and send the browser there.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use kit::http::Forwarded;
use kit::session::AuthUser;
use wire::api::{Credentials, LoginOptions, LoginRedirect, LoginState, SessionGrant, SessionInfo, Status};

use crate::state::AppState;
use wire::addr::PeerAddr;
use wire::routes::tracker;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(tracker::LOGIN, get(login_page).post(login))
        .route("/register", post(register))
        .route("/login.html", get(login_page))
        .route(wire::routes::auth::LOGIN_OPTIONS, get(login_options))
        .route("/me", get(me))
        .route("/login-state", get(login_state))
        .route("/", get(home))
        .route("/index.html", get(home))
        .layer(kit::www::compression())
}

async fn login_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    kit::www::page(&state.www_dir, "login.html").await
}

/// `GET /login-state`: who is logged in, if anyone; 200 either way (the log-in page
/// asks, and a 401 would be an error in the browser's console).
async fn login_state(user: Result<AuthUser, ApiError>) -> Result<Json<LoginState>, ApiError> {
    let username = match user {
        Ok(user) => Some(user.username().clone()),
        Err(ApiError::Unauthorized(_)) => None,
        Err(err) => return Err(err),
    };
    Ok(Json(LoginState { status: Status::Success, username }))
}

/// What the log-in page offers, as auth says: sign-up, and the demo accounts only
/// where there are some (development).
async fn login_options(State(state): State<AppState>) -> Result<Json<LoginOptions>, ApiError> {
    Ok(Json(state.auth.login_options().await?))
}

/// The chat page lives on the peers: a logged-in user goes to theirs, others log in.
async fn home(State(state): State<AppState>, user: Result<AuthUser, ApiError>) -> Result<Redirect, ApiError> {
    let home = match user {
        Ok(user) => state.store.home(user.username()).await?,
        Err(_) => None,
    };
    Ok(match home {
        Some((addr, _)) if state.store.is_live(&addr).await? => Redirect::to(&chat_url(&state, &addr)),
        _ => Redirect::to("/login"),
    })
}

/// Where the browser goes for the chat: the public URL (the proxy) when configured,
/// else the peer's own address.
fn chat_url(state: &AppState, peer: &PeerAddr) -> String {
    match &state.public_url {
        Some(public) => format!("{public}/"),
        None => format!("{}/", peer.url()),
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %credentials.username))]
async fn login(
    State(state): State<AppState>,
    forwarded: Forwarded,
    headers: HeaderMap,
    Input(credentials): Input<Credentials>,
) -> Result<Response, ApiError> {
    let grant = state.auth.login(forwarded.client, &credentials).await?;
    sign_in(&state, &headers, forwarded, grant).await
}

/// Sign-up through auth, then as log-in.
#[tracing::instrument(level = "debug", skip_all, fields(username = %credentials.username))]
async fn register(
    State(state): State<AppState>,
    forwarded: Forwarded,
    headers: HeaderMap,
    Input(credentials): Input<Credentials>,
) -> Result<Response, ApiError> {
    let grant = state.auth.register(forwarded.client, &credentials).await?;
    sign_in(&state, &headers, forwarded, grant).await
}

/// Who the session belongs to, and their peer.
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<SessionInfo>, ApiError> {
    let peer = state.store.home(user.username()).await?.map(|(addr, _)| addr.to_string());
    Ok(Json(SessionInfo { status: Status::Success, username: user.claims.sub, expires_at: user.claims.exp, peer }))
}

/// After auth granted a session: assigns a peer, sets the cookie.
async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    forwarded: Forwarded,
    grant: SessionGrant,
) -> Result<Response, ApiError> {
    let peer = assign_peer(state, &grant).await?;
    state.store.set_home(&grant.username, &peer).await?;
    let location = chat_url(state, &peer);
    tracing::info!(%peer, "logged in; sent to a peer");
    let max_age = std::time::Duration::from_secs(grant.expires_at.saturating_sub(kit::now_secs()));
    let cookie = kit::session::session_cookie(&grant.token, max_age, forwarded.secure_cookie);
    let body = Json(LoginRedirect { status: Status::Success, username: grant.username, location: location.clone() });
    if kit::www::wants_json(headers) {
        Ok(([(header::SET_COOKIE, cookie)], body).into_response())
    } else {
        Ok((StatusCode::FOUND, [(header::SET_COOKIE, cookie.clone())], [(header::LOCATION, location)], body)
            .into_response())
    }
}

/// The user's current peer if it is alive, else the live peer with the fewest users
/// (the first registered among equals).
async fn assign_peer(state: &AppState, grant: &SessionGrant) -> Result<PeerAddr, ApiError> {
    let live = state.store.live_peers().await?;
    if let Some((home, _)) = state.store.home(&grant.username).await?.filter(|(home, _)| live.contains(home)) {
        return Ok(home);
    }
    let mut load: HashMap<PeerAddr, usize> = HashMap::new();
    for (_, home) in state.store.signed_in().await? {
        *load.entry(home).or_default() += 1;
    }
    live.into_iter()
        .enumerate()
        .min_by_key(|(order, addr)| (load.get(addr).copied().unwrap_or(0), *order))
        .map(|(_, addr)| addr)
        .ok_or_else(|| ApiError::Unavailable("no peer is available: start a peer and try again".into()))
}
