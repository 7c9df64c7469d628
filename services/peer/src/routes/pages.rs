//! The two pages: chat (with a session) and log-in.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use kit::error::ApiError;
use wire::api::{LoginOptions, LoginState, Status};

use crate::hosting::Session;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(chat_page))
        .route("/index.html", get(chat_page))
        .route("/login", get(login_page).post(super::account::login))
        .route("/login.html", get(login_page))
        .route(wire::routes::auth::LOGIN_OPTIONS, get(login_options))
        .route("/login-state", get(login_state))
        .layer(kit::www::compression())
}

/// `GET /login-state`: who is logged in here, if anyone. Unlike `/me` it answers 200 either
/// way, so the log-in page can ask without a failed request in the browser's console.
async fn login_state(session: Result<Session, ApiError>) -> Result<Json<LoginState>, ApiError> {
    let username = match session {
        Ok(session) => Some(session.claims.sub),
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

/// The chat page for a logged-in user; everyone else goes to log in.
async fn chat_page(State(state): State<AppState>, session: Result<Session, ApiError>) -> Result<Response, ApiError> {
    match session {
        Ok(_) => kit::www::page(&state.www_dir, "index.html").await,
        Err(ApiError::Unauthorized(_)) => Ok(Redirect::to("/login").into_response()),
        Err(err) => Err(err),
    }
}

async fn login_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    kit::www::page(&state.www_dir, "login.html").await
}
