//! Log-in, sign-up, log-out, and who am I.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use kit::http::Forwarded;
use wire::api::{Ack, Credentials, Done, LoginRedirect, SessionGrant, SessionInfo, Status, SubmitUsername};

use crate::hosting::{self, Session};
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/submit-username", post(submit_username))
}

/// Checks the password with auth and makes this peer the user's home.
#[tracing::instrument(level = "debug", skip_all, fields(username = %credentials.username))]
pub(crate) async fn login(
    State(state): State<AppState>,
    forwarded: Forwarded,
    headers: HeaderMap,
    Input(credentials): Input<Credentials>,
) -> Result<Response, ApiError> {
    let grant = state.auth.login(forwarded.client, &credentials).await?;
    start_session(&state, &headers, forwarded, grant, StatusCode::OK).await
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %credentials.username))]
async fn register(
    State(state): State<AppState>,
    forwarded: Forwarded,
    headers: HeaderMap,
    Input(credentials): Input<Credentials>,
) -> Result<Response, ApiError> {
    let grant = state.auth.register(forwarded.client, &credentials).await?;
    start_session(&state, &headers, forwarded, grant, StatusCode::CREATED).await
}

/// Hosts the new session here and sets its cookie: JSON for scripts, a redirect to
/// the chat page for plain forms.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    forwarded: Forwarded,
    grant: SessionGrant,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let claims = state.tokens.verify(&grant.token)?;
    let session = Session { claims, token: grant.token.clone() };
    hosting::host(state, &session).await?;
    let max_age = std::time::Duration::from_secs(grant.expires_at.saturating_sub(kit::now_secs()));
    let cookie = kit::session::session_cookie(&grant.token, max_age, forwarded.secure_cookie);
    let body = Json(LoginRedirect { status: Status::Success, username: grant.username, location: "/".into() });
    if kit::www::wants_json(headers) {
        Ok((status, [(header::SET_COOKIE, cookie)], body).into_response())
    } else {
        Ok((StatusCode::FOUND, [(header::SET_COOKIE, cookie)], [(header::LOCATION, "/")], body).into_response())
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Result<Response, ApiError> {
    hosting::end(&state, &session).await?;
    let [plain, secure] = kit::session::clear_session_cookies();
    let cookies = [(header::SET_COOKIE, plain), (header::SET_COOKIE, secure)];
    let body = Json(Ack::success("Logged out"));
    if kit::www::wants_json(&headers) || !is_form_post(&headers) {
        Ok((cookies, body).into_response())
    } else {
        Ok((StatusCode::FOUND, cookies, [(header::LOCATION, "/login")], body).into_response())
    }
}

fn is_form_post(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"))
}

async fn me(State(state): State<AppState>, session: Session) -> Json<SessionInfo> {
    Json(SessionInfo {
        status: Status::Success,
        username: session.claims.sub,
        expires_at: session.claims.exp,
        peer: Some(state.me.to_string()),
    })
}

/// The original's registration step. The name comes from log-in now, so this only
/// re-announces the session's user; another name is refused.
async fn submit_username(
    State(state): State<AppState>,
    session: Session,
    Input(request): Input<SubmitUsername>,
) -> Result<Json<Done>, ApiError> {
    if &request.username != session.username() {
        return Err(ApiError::forbidden(format!(
            "you are logged in as {}; the user name comes from log-in",
            session.username()
        )));
    }
    if !hosting::announce(&state, session.username(), false).await {
        return Err(ApiError::Unavailable("the tracker is unreachable; try again".into()));
    }
    Ok(Json(Done::success()))
}
