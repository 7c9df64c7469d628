//! The routes of auth.

use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::body::Input;
use kit::error::ApiError;
use kit::http::ClientIp;
use kit::sign::Signed;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wire::api::{Ack, Credentials, DemoAccount, LoginOptions, SessionGrant, SessionInfo, Status};
use wire::names::Username;

use crate::hashing::HashError;
use crate::state::{AppState, OutcomeLabel};
use crate::throttle::Locked;
use crate::users::AddUserError;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(wire::routes::auth::LOGIN, post(login))
        .route(wire::routes::auth::REGISTER, post(register))
        .route(wire::routes::auth::LOGOUT, post(logout))
        .route(wire::routes::auth::SESSION, get(session))
        .route(wire::routes::auth::LOGIN_OPTIONS, get(login_options))
}

/// Sign-up on or off, and the demo accounts the store holds (none in a deployment).
async fn login_options(State(state): State<AppState>) -> Result<Json<LoginOptions>, ApiError> {
    let demo_accounts = crate::demo::present(&state.users)
        .await?
        .into_iter()
        .map(|(username, password)| DemoAccount { username: username.to_owned(), password: password.to_owned() })
        .collect();
    Ok(Json(LoginOptions { sign_up: state.allow_registration, demo_accounts }))
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %request.body.username))]
async fn login(State(state): State<AppState>, request: FromClient<Credentials>) -> Result<Json<SessionGrant>, Refusal> {
    let FromClient { client, body: credentials } = request;
    let wrong = || ApiError::Unauthorized("wrong username or password".into());
    let username = Username::parse(&credentials.username).map_err(|_| {
        state.metrics.logins.get_or_create(&OutcomeLabel { outcome: "refused" }).inc();
        wrong()
    })?;
    // The parsed name, as failures are counted under it: `alice ` is `alice`.
    if let Some(locked) = state.throttle.locked(client, username.as_str()).await? {
        let (wait, whose) = match locked {
            Locked::Here(wait) => (wait, "from here"),
            Locked::Everywhere(wait) => (wait, "from here, while it is under attack"),
        };
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Err(Refusal::Wait(
            format!("too many failed log-ins for this name {whose}; try again in {secs} s"),
            secs,
        ));
    }
    if !state.users.verify(username.as_str(), &credentials.password).await? {
        tracing::info!("login refused");
        state.metrics.logins.get_or_create(&OutcomeLabel { outcome: "refused" }).inc();
        // A failure that cannot be counted (the database is away) fails the log-in
        // as an error; the next try fails at `locked` the same way.
        state.throttle.failed(client, username.as_str()).await?;
        return Err(wrong().into());
    }
    state.metrics.logins.get_or_create(&OutcomeLabel { outcome: "ok" }).inc();
    if let Err(err) = state.throttle.succeeded(client, username.as_str()).await {
        // The password was right: the log-in stands; the old failures only run out.
        tracing::warn!(?err, "failed to clear log-in failures");
    }
    let grant = grant(&state, &username)?;
    tracing::info!("logged in");
    Ok(Json(grant))
}

#[tracing::instrument(level = "debug", skip_all, fields(username = %request.body.username))]
async fn register(
    State(state): State<AppState>,
    request: FromClient<Credentials>,
) -> Result<(StatusCode, Json<SessionGrant>), Refusal> {
    let FromClient { client, body: credentials } = request;
    if !state.allow_registration {
        return Err(ApiError::forbidden("sign-up is switched off on this server").into());
    }
    // Every attempt counts, refused names too: trying names is what a flood does.
    state.sign_ups_by_client.check(&client)?;
    state.sign_ups.check(&())?;
    // A new name meets the profile of new names; one that looks like a taken name
    // (`uѕer1` beside `user1`) is taken (409).
    let username = Username::parse_new(&credentials.username).map_err(|err| ApiError::bad_request(err.to_string()))?;
    state.users.add(&username, &credentials.password).await?;
    tracing::info!("signed up");
    state.metrics.sign_ups.inc();
    Ok((StatusCode::CREATED, Json(grant(&state, &username)?)))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Ack>, ApiError> {
    let claims = verified(&state, &headers).await?;
    state.ended_sessions.end(&state.tokens, &claims).await?;
    tracing::info!(username = %claims.sub, "logged out");
    Ok(Json(Ack::success("Logged out")))
}

async fn session(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SessionInfo>, ApiError> {
    let claims = verified(&state, &headers).await?;
    Ok(Json(SessionInfo { status: Status::Success, username: claims.sub, expires_at: claims.exp, peer: None }))
}

/// A log-in or sign-up body and the client it comes from. A peer or the tracker
/// relaying it for a browser signs the call and names the browser's address
/// (`?client=IP`); anyone else is the client themself ([`ClientIp`]).
struct FromClient<T> {
    client: IpAddr,
    body: T,
}

#[derive(Deserialize)]
struct Relayed {
    client: IpAddr,
}

impl<T: DeserializeOwned> FromRequest<AppState> for FromClient<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        if kit::sign::is_signed(request.headers()) {
            let Query(Relayed { client }) = Query::<Relayed>::try_from_uri(request.uri())
                .map_err(|_| ApiError::bad_request("a relayed log-in names its client: ?client=IP"))?;
            let Signed(body) = Signed::from_request(request, state).await?;
            return Ok(FromClient { client, body });
        }
        let (mut parts, body) = request.into_parts();
        let Ok(ClientIp(client)) = ClientIp::from_request_parts(&mut parts, state).await;
        let Input(body) = Input::from_request(Request::from_parts(parts, body), state).await?;
        Ok(FromClient { client, body })
    }
}

/// What the log-in and sign-up routes answer when they fail: an [`ApiError`];
/// `Busy`, a `503` with `Retry-After: 1` when the hash gate is full; or `Wait`, a
/// `429` with `Retry-After` (seconds) when the client must wait before its next
/// try: headers that `ApiError` has no way to carry.
enum Refusal {
    Api(ApiError),
    Busy(String),
    Wait(String, u64),
}

impl<E: Into<ApiError>> From<E> for Refusal {
    fn from(err: E) -> Self {
        Self::Api(err.into())
    }
}

impl From<HashError> for Refusal {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::Busy(err.to_string()),
            HashError::Failed(cause) => Self::Api(ApiError::Internal(cause)),
        }
    }
}

impl From<AddUserError> for Refusal {
    fn from(err: AddUserError) -> Self {
        match err {
            AddUserError::Exists(_) => Self::Api(ApiError::Conflict(err.to_string())),
            AddUserError::BadPassword => Self::Api(ApiError::bad_request(err.to_string())),
            AddUserError::Busy => Self::Busy(err.to_string()),
            AddUserError::Io(cause) => Self::Api(ApiError::Internal(cause)),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Api(err) => err.into_response(),
            // The JSON body of every other error, with the wait a client should take.
            Self::Busy(message) => {
                ([(RETRY_AFTER, HeaderValue::from_static("1"))], ApiError::Unavailable(message)).into_response()
            }
            Self::Wait(message, secs) => {
                ([(RETRY_AFTER, HeaderValue::from(secs))], ApiError::TooManyRequests(message)).into_response()
            }
        }
    }
}

async fn verified(state: &AppState, headers: &HeaderMap) -> Result<wire::token::Claims, ApiError> {
    let token = kit::session::token_from_headers(headers).ok_or_else(ApiError::unauthorized)?;
    // Sessions ended here (or, in cluster mode, through another replica) fail too.
    state.ended_sessions.verify(&state.tokens, &token).await
}

fn grant(state: &AppState, username: &Username) -> Result<SessionGrant, ApiError> {
    let (token, claims) = state.tokens.issue(username)?;
    Ok(SessionGrant { status: Status::Success, username: claims.sub, token, expires_at: claims.exp })
}
