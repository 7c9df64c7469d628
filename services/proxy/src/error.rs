//! Errors the proxy makes itself, as opposed to errors it relays from a backend.
//!
//! Each has its own status and an `x-proxy-error: <reason>` header, so a client can
//! tell "the proxy found no backend" from "the backend said 502"; the body is the
//! JSON error of every WeApRous service.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use wire::api::ErrorBody;
use wire::headers::PROXY_ERROR;

use crate::body::ProxyBody;

/// A failure produced by the proxy, mapped to a status in [`ProxyError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the request has no Host header")]
    NoHost,
    #[error("bad Host: {0}")]
    BadHost(&'static str),
    #[error("no virtual host is configured for this Host")]
    UnknownVhost,
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
            Self::NoHost | Self::BadHost(_) => StatusCode::BAD_REQUEST,
            Self::UnknownVhost => StatusCode::NOT_FOUND,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Self::AllDown | Self::UpstreamFailed => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The value of the `x-proxy-error` header.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoHost => "no-host",
            Self::BadHost(_) => "bad-host",
            Self::UnknownVhost => "unknown-vhost",
            Self::BodyTooLarge(_) => "body-too-large",
            Self::NoBackend => "no-backend",
            Self::AllDown => "upstream-unavailable",
            Self::UpstreamFailed => "upstream-failed",
            Self::UpstreamTimeout(_) => "upstream-timeout",
        }
    }

    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), reason = self.reason(), "{self}");
        } else {
            tracing::debug!(status = status.as_u16(), reason = self.reason(), "{self}");
        }
        let mut response = json_response(status, &ErrorBody::new(self.to_string()));
        response.headers_mut().insert(PROXY_ERROR, HeaderValue::from_static(self.reason()));
        response
    }
}

/// A small JSON reply made by the proxy.
pub fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<ProxyBody> {
    // Wire types always serialize.
    let bytes = serde_json::to_vec(body).expect("wire types serialize to JSON");
    let mut response = Response::new(ProxyBody::full(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn errors_carry_status_marker_and_json_body() {
        let response = ProxyError::AllDown.into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()[PROXY_ERROR], "upstream-unavailable");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"status":"error","message":"every backend of this host refused the connection"}"#);
    }
}
