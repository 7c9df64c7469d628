//! Errors the proxy makes itself, as opposed to errors it relays from a backend.
//!
//! Each has its own status and an `x-proxy-error: <reason>` header, so a client can
//! tell "the proxy found no backend" from "the backend said 502"; the body is the
//! JSON error of every WeApRous service.

use std::time::Duration;

use http::StatusCode;

/// A failure produced by the proxy, mapped to a status in [`ProxyError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("the request head is too large")]
    HeadTooLarge,
    #[error("the request has no Host header")]
    NoHost,
    #[error("bad Host: {0}")]
    BadHost(&'static str),
    #[error("no virtual host is configured for this Host")]
    UnknownVhost,
    #[error("this path is not served on this host")]
    PathDenied,
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("no backend is available for this host")]
    NoBackend,
    #[error("every backend of this host refused the connection")]
    AllDown,
    #[error("the backend failed before answering")]
    UpstreamFailed,
    #[error("the backend did not answer within {} ms", .0.as_millis())]
    UpstreamTimeout(Duration),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::NoHost | Self::BadHost(_) => StatusCode::BAD_REQUEST,
            Self::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnknownVhost => StatusCode::NOT_FOUND,
            Self::PathDenied => StatusCode::FORBIDDEN,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Self::AllDown | Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The value of the `x-proxy-error` header.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::HeadTooLarge => "head-too-large",
            Self::NoHost => "no-host",
            Self::BadHost(_) => "bad-host",
            Self::UnknownVhost => "unknown-vhost",
            Self::PathDenied => "path-denied",
            Self::BodyTooLarge(_) => "body-too-large",
            Self::NoBackend => "no-backend",
            Self::AllDown => "upstream-unavailable",
            Self::UpstreamFailed => "upstream-failed",
            Self::UpstreamTimeout(_) => "upstream-timeout",
        }
    }

    /// Logs the error: a 5xx is the proxy's or a backend's trouble (warn), a 4xx the
    /// client's (debug).
    pub fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), reason = self.reason(), "{self}");
        } else {
            tracing::debug!(status = status.as_u16(), reason = self.reason(), "{self}");
        }
    }
}
