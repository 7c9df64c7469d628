//! The error type of every HTTP edge.

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use wire::api::ErrorBody;

/// An error reply: a status code and `{"status": "error", "message": ...}`.
///
/// Variants are named by meaning; [`ApiError::status`] maps them to codes in one
/// place. `Internal` hides its cause from the client and logs it whole.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// A rate limit ([`crate::rate`]): 429 with `Retry-After: retry_after` (seconds).
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Unavailable(String),
    /// Busy for a moment (auth's password hashes all taken): 503 with
    /// `Retry-After: retry_after` (seconds).
    #[error("{message}")]
    Busy { message: String, retry_after: u64 },
    #[error("{0}")]
    GatewayTimeout(String),
    /// A 4xx that another service gave, passed on as it came.
    #[error("{message}")]
    Upstream { status: StatusCode, message: String },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) | ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Upstream { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn unauthorized() -> Self {
        Self::Unauthorized("log in first".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error.cause_chain = ?cause, error.message = %cause, "request failed");
            }
            ApiError::BadGateway(message) | ApiError::Unavailable(message) | ApiError::GatewayTimeout(message) => {
                tracing::warn!(%status, %message, "dependency failed");
            }
            // The caller's mistake: worth a debug line, not an error.
            _ => tracing::debug!(%status, message = %self, "request refused"),
        }
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = (status, Json(ErrorBody::new(self.to_string()))).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

/// The fallback of every router: an unknown path is a JSON 404.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// A known path with the wrong method is a JSON 405.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
