//! Who is calling the tracker: a user with a session token, or another service with
//! a cluster signature.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use kit::error::ApiError;
use kit::session::{AuthUser, TokenKeys};
use kit::sign::{ClusterKey, ServiceCall};
use serde::de::DeserializeOwned;
use wire::names::Username;

#[derive(Debug, Clone)]
pub enum Caller {
    User(AuthUser),
    Service,
}

impl Caller {
    /// The user, for routes only users may call.
    pub fn user(&self) -> Result<&Username, ApiError> {
        match self {
            Caller::User(user) => Ok(user.username()),
            Caller::Service => Err(ApiError::forbidden("this route acts for a user: send a session token")),
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    TokenKeys: FromRef<S>,
    ClusterKey: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if kit::sign::is_signed(&parts.headers) {
            ServiceCall::from_request_parts(parts, state).await?;
            Ok(Caller::Service)
        } else {
            AuthUser::from_request_parts(parts, state).await.map(Caller::User)
        }
    }
}

/// A body from a user (session token) or a service (signature over the body).
#[derive(Debug)]
pub struct Authed<T> {
    pub caller: Caller,
    pub body: T,
}

impl<S, T> FromRequest<S> for Authed<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    TokenKeys: FromRef<S>,
    ClusterKey: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        if kit::sign::is_signed(&parts.headers) {
            let kit::sign::Signed(body) =
                kit::sign::Signed::from_request(Request::from_parts(parts, body), state).await?;
            return Ok(Authed { caller: Caller::Service, body });
        }
        let user = AuthUser::from_request_parts(&mut parts, state).await?;
        let kit::body::Input(body) = kit::body::Input::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Authed { caller: Caller::User(user), body })
    }
}
