//! Service-to-service request signing with the cluster secret.
//!
//! The sender puts `x-weaprous-signature: t=<unix seconds>,v1=<hex>` on the request,
//! an HMAC-SHA256 over the time, method, path and body. The receiver recomputes it
//! and refuses a request more than [`MAX_SKEW_SECS`] old, so nobody without the
//! secret can register a peer, forge a sender or replay an old call for long.

use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use wire::headers::SIGNATURE;

use crate::error::ApiError;

/// How far apart the sender's and the receiver's clocks may be.
pub const MAX_SKEW_SECS: u64 = 300;

/// The cluster key. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct ClusterKey(Arc<hmac::Key>);

impl ClusterKey {
    pub fn new(secret: &SecretString) -> Self {
        Self(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes())))
    }

    /// The signature header value for a request sent now.
    pub fn sign(&self, method: &Method, path: &str, body: &[u8]) -> String {
        self.sign_at(crate::now_secs(), method, path, body)
    }

    fn sign_at(&self, time: u64, method: &Method, path: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &message(time, method, path, body));
        format!("t={time},v1={}", hex::encode(tag.as_ref()))
    }

    /// Checks the signature header of a received request.
    pub fn verify(&self, headers: &HeaderMap, method: &Method, path: &str, body: &[u8]) -> Result<(), ApiError> {
        let refused = || ApiError::Unauthorized("missing or invalid cluster signature".into());
        let header = headers.get(SIGNATURE).and_then(|value| value.to_str().ok()).ok_or_else(refused)?;
        let (time, mac) = parse_header(header).ok_or_else(refused)?;
        if crate::now_secs().abs_diff(time) > MAX_SKEW_SECS {
            return Err(ApiError::Unauthorized("cluster signature is too old or from the future".into()));
        }
        hmac::verify(&self.0, &message(time, method, path, body), &mac).map_err(|_| refused())
    }
}

fn message(time: u64, method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(32 + path.len() + body.len());
    message.extend_from_slice(format!("{time}\n{method}\n{path}\n").as_bytes());
    message.extend_from_slice(body);
    message
}

fn parse_header(header: &str) -> Option<(u64, Vec<u8>)> {
    let mut time = None;
    let mut mac = None;
    for part in header.split(',') {
        match part.trim().split_once('=')? {
            ("t", value) => time = value.parse().ok(),
            ("v1", value) => mac = hex::decode(value).ok(),
            _ => {}
        }
    }
    Some((time?, mac?))
}

/// A body that came signed with the cluster key, parsed like [`crate::body::Input`].
#[derive(Debug)]
pub struct Signed<T>(pub T);

impl<S, T> FromRequest<S> for Signed<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    ClusterKey: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let method = request.method().clone();
        let path = path_and_query(request.uri());
        let (headers, bytes) = crate::body::read_body(request, state).await?;
        ClusterKey::from_ref(state).verify(&headers, &method, &path, &bytes)?;
        crate::body::parse(&headers, &bytes).map(Signed)
    }
}

/// A body-less request (GET) signed with the cluster key: another service is calling.
#[derive(Debug, Clone, Copy)]
pub struct ServiceCall;

impl<S> FromRequestParts<S> for ServiceCall
where
    S: Send + Sync,
    ClusterKey: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let path = path_and_query(&parts.uri);
        ClusterKey::from_ref(state).verify(&parts.headers, &parts.method, &path, b"")?;
        Ok(ServiceCall)
    }
}

/// Whether a request carries a signature header at all (to choose how to check it).
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key(SIGNATURE)
}

pub(crate) fn path_and_query(uri: &axum::http::Uri) -> String {
    uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(secret: &str) -> ClusterKey {
        ClusterKey::new(&SecretString::from(secret.to_owned()))
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_signed_request_verifies_only_unchanged() {
        let key = key("cluster");
        let signature = key.sign(&Method::POST, "/receive-message", b"{\"a\":1}");
        let headers = headers(&signature);
        assert!(key.verify(&headers, &Method::POST, "/receive-message", b"{\"a\":1}").is_ok());
        assert!(key.verify(&headers, &Method::POST, "/receive-message", b"{\"a\":2}").is_err());
        assert!(key.verify(&headers, &Method::POST, "/register-peer-pool", b"{\"a\":1}").is_err());
        assert!(key.verify(&headers, &Method::GET, "/receive-message", b"{\"a\":1}").is_err());
    }

    #[test]
    fn other_secrets_old_times_and_garbage_are_refused() {
        let signature = key("other").sign(&Method::POST, "/x", b"");
        assert!(key("cluster").verify(&headers(&signature), &Method::POST, "/x", b"").is_err());
        let old = key("cluster").sign_at(crate::now_secs() - MAX_SKEW_SECS - 10, &Method::POST, "/x", b"");
        let err = key("cluster").verify(&headers(&old), &Method::POST, "/x", b"").unwrap_err();
        assert!(err.to_string().contains("too old"));
        for garbage in ["", "t=1", "v1=00", "t=x,v1=zz", "nonsense"] {
            assert!(key("cluster").verify(&headers(garbage), &Method::POST, "/x", b"").is_err());
        }
        assert!(key("cluster").verify(&HeaderMap::new(), &Method::POST, "/x", b"").is_err());
    }
}
