//! Service-to-service request signing with the cluster secret.
//!
//! The sender puts `x-weaprous-signature: t=<unix seconds>,n=<nonce>,v1=<hex>` on the
//! request: an HMAC-SHA256 over the time, a random nonce, the method, the target
//! (the authority the request is addressed to, as in its `Host`), the path with its
//! query, and the body. The receiver recomputes it with the `Host` it was sent to, and
//! refuses a call more than [`MAX_SKEW_SECS`] old or from as far in the future, and a
//! nonce it has already seen in that window. So nobody without the secret can
//! register a peer or forge a sender; a captured call cannot be replayed, and a call
//! made to one service cannot be played to another.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri, header};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use wire::headers::SIGNATURE;

use crate::error::ApiError;

/// How far apart the sender's and the receiver's clocks may be, and so how long a
/// call's nonce is remembered.
pub const MAX_SKEW_SECS: u64 = 60;

/// The cluster key, and the nonces seen recently. Cloning is a reference-count bump;
/// clones share the nonces.
#[derive(Clone)]
pub struct ClusterKey(Arc<Inner>);

struct Inner {
    key: hmac::Key,
    seen: Mutex<SeenNonces>,
}

impl ClusterKey {
    pub fn new(secret: &SecretString) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
        Self(Arc::new(Inner { key, seen: Mutex::default() }))
    }

    /// The signature header value for a request to `url` sent now.
    pub fn sign_url(&self, method: &Method, url: &Url, body: &[u8]) -> String {
        self.sign(method, &authority_of(url), &path_and_query_of(url), body)
    }

    /// The signature header value for a request to `authority` (its `Host`) sent now.
    pub fn sign(&self, method: &Method, authority: &str, path: &str, body: &[u8]) -> String {
        let mut nonce = [0u8; 16];
        SystemRandom::new().fill(&mut nonce).expect("the system's random source works");
        self.sign_at(crate::now_secs(), &hex::encode(nonce), method, authority, path, body)
    }

    fn sign_at(&self, time: u64, nonce: &str, method: &Method, authority: &str, path: &str, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0.key, &message(time, nonce, method, authority, path, body));
        format!("t={time},n={nonce},v1={}", hex::encode(tag.as_ref()))
    }

    /// Checks the signature header of a received request, addressed to `authority`.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        method: &Method,
        authority: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let refused = || ApiError::Unauthorized("missing or invalid cluster signature".into());
        let header = headers.get(SIGNATURE).and_then(|value| value.to_str().ok()).ok_or_else(refused)?;
        let Signature { time, nonce, mac } = parse_header(header).ok_or_else(refused)?;
        let now = crate::now_secs();
        if now.abs_diff(time) > MAX_SKEW_SECS {
            return Err(ApiError::Unauthorized("cluster signature is too old or from the future".into()));
        }
        hmac::verify(&self.0.key, &message(time, nonce, method, authority, path, body), &mac).map_err(|_| refused())?;
        let fresh = self.0.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).first_use(time, nonce, now);
        if !fresh {
            return Err(ApiError::Unauthorized("cluster signature was already used".into()));
        }
        Ok(())
    }
}

/// The nonces of signatures verified within the last [`MAX_SKEW_SECS`] (by their
/// time), so that each is accepted once. Only verified nonces are kept, so only the
/// cluster's own calls take room: about 24 bytes each, for a minute.
#[derive(Default)]
struct SeenNonces {
    by_time: BTreeMap<u64, HashSet<u128>>,
}

impl SeenNonces {
    /// Records the nonce; false when it was seen before.
    fn first_use(&mut self, time: u64, nonce: &str, now: u64) -> bool {
        let oldest_valid = now.saturating_sub(MAX_SKEW_SECS);
        while let Some(entry) = self.by_time.first_entry() {
            if *entry.key() >= oldest_valid {
                break;
            }
            entry.remove();
        }
        // A verified nonce is 32 hex digits, so it fits; anything else is its own key.
        let key = u128::from_str_radix(nonce, 16).unwrap_or_else(|_| u128::from(crc(nonce)));
        self.by_time.entry(time).or_default().insert(key)
    }
}

/// A stand-in key for a nonce that is not 32 hex digits (not one this module makes).
fn crc(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

fn message(time: u64, nonce: &str, method: &Method, authority: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(96 + authority.len() + path.len() + body.len());
    let authority = authority.to_ascii_lowercase();
    message.extend_from_slice(format!("{time}\n{nonce}\n{method}\n{authority}\n{path}\n").as_bytes());
    message.extend_from_slice(body);
    message
}

struct Signature<'a> {
    time: u64,
    nonce: &'a str,
    mac: Vec<u8>,
}

fn parse_header(header: &str) -> Option<Signature<'_>> {
    let (mut time, mut nonce, mut mac) = (None, None, None);
    for part in header.split(',') {
        match part.trim().split_once('=')? {
            ("t", value) => time = value.parse().ok(),
            ("n", value) if (16..=64).contains(&value.len()) => nonce = Some(value),
            ("v1", value) => mac = hex::decode(value).ok(),
            _ => {}
        }
    }
    Some(Signature { time: time?, nonce: nonce?, mac: mac? })
}

/// The authority a request to `url` names in its `Host`: the host, and the port
/// unless it is the scheme's default (as HTTP clients write it).
pub fn authority_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn path_and_query_of(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The authority a received request was addressed to: its `Host` (or the
/// authority of an absolute-form target).
fn received_authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    uri.authority()
        .map(|authority| authority.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|value| value.to_str().ok()))
        .unwrap_or_default()
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
        let authority = received_authority(request.uri(), request.headers()).to_owned();
        let (headers, bytes) = crate::body::read_body(request, state).await?;
        ClusterKey::from_ref(state).verify(&headers, &method, &authority, &path, &bytes)?;
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
        let authority = received_authority(&parts.uri, &parts.headers);
        ClusterKey::from_ref(state).verify(&parts.headers, &parts.method, authority, &path, b"")?;
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

    const TARGET: &str = "10.0.0.2:9001";

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
        let original: &[u8] = b"{\"a\":1}";
        let key = key("cluster");
        for (method, target, path, body) in [
            (Method::POST, "10.0.0.3:9001", "/receive-message", original),
            (Method::POST, TARGET, "/receive-message", b"{\"a\":2}"),
            (Method::POST, TARGET, "/register-peer-pool", original),
            (Method::GET, TARGET, "/receive-message", original),
            (Method::POST, TARGET, "/receive-message", original),
        ] {
            let headers = headers(&key.sign(&Method::POST, TARGET, "/receive-message", original));
            let unchanged = (&method, target, path, body) == (&Method::POST, TARGET, "/receive-message", original);
            assert_eq!(key.verify(&headers, &method, target, path, body).is_ok(), unchanged, "{method} {target}{path}");
        }
    }

    #[test]
    fn a_call_is_accepted_once() {
        let key = key("cluster");
        let signed = headers(&key.sign(&Method::POST, TARGET, "/receive-message", b"{}"));
        key.verify(&signed, &Method::POST, TARGET, "/receive-message", b"{}").unwrap();
        let replayed = key.verify(&signed, &Method::POST, TARGET, "/receive-message", b"{}").unwrap_err();
        assert!(replayed.to_string().contains("already used"), "{replayed}");
        // Clones share what they have seen; a fresh signature of the same call passes.
        let clone = key.clone();
        assert!(clone.verify(&signed, &Method::POST, TARGET, "/receive-message", b"{}").is_err());
        let again = headers(&key.sign(&Method::POST, TARGET, "/receive-message", b"{}"));
        clone.verify(&again, &Method::POST, TARGET, "/receive-message", b"{}").unwrap();
    }

    #[test]
    fn nonces_are_forgotten_once_their_time_can_no_longer_verify() {
        let mut seen = SeenNonces::default();
        let nonce = "00112233445566778899aabbccddeeff";
        assert!(seen.first_use(1_000, nonce, 1_000));
        assert!(!seen.first_use(1_000, nonce, 1_000 + MAX_SKEW_SECS));
        assert!(seen.first_use(1_001, "ffeeddccbbaa99887766554433221100", 1_001 + MAX_SKEW_SECS));
        assert_eq!(seen.by_time.len(), 1, "the entry for time 1000 is gone");
    }

    #[test]
    fn other_secrets_old_times_garbage_and_missing_nonces_are_refused() {
        let signature = key("other").sign(&Method::POST, TARGET, "/x", b"");
        assert!(key("cluster").verify(&headers(&signature), &Method::POST, TARGET, "/x", b"").is_err());
        let nonce = "00112233445566778899aabbccddeeff";
        let old =
            key("cluster").sign_at(crate::now_secs() - MAX_SKEW_SECS - 10, nonce, &Method::POST, TARGET, "/x", b"");
        let err = key("cluster").verify(&headers(&old), &Method::POST, TARGET, "/x", b"").unwrap_err();
        assert!(err.to_string().contains("too old"));
        let valid = key("cluster").sign(&Method::POST, TARGET, "/x", b"");
        let without_nonce: String =
            valid.split(',').filter(|part| !part.starts_with("n=")).collect::<Vec<_>>().join(",");
        for garbage in ["", "t=1", "v1=00", "t=x,v1=zz", "nonsense", without_nonce.as_str()] {
            assert!(key("cluster").verify(&headers(garbage), &Method::POST, TARGET, "/x", b"").is_err(), "{garbage}");
        }
        assert!(key("cluster").verify(&HeaderMap::new(), &Method::POST, TARGET, "/x", b"").is_err());
    }

    #[test]
    fn urls_sign_their_authority_as_a_client_sends_it() {
        for (url, authority) in [
            ("http://127.0.0.1:9000/get-peers", "127.0.0.1:9000"),
            ("http://tracker/get-peers", "tracker"),
            ("http://tracker:80/get-peers", "tracker"),
            ("http://[::1]:9001/x", "[::1]:9001"),
            ("http://Peer-3:9001/x", "peer-3:9001"),
        ] {
            assert_eq!(authority_of(&Url::parse(url).unwrap()), authority, "{url}");
        }
        let key = key("cluster");
        let url = Url::parse("http://127.0.0.1:9000/lookup?username=a").unwrap();
        let signed = headers(&key.sign_url(&Method::GET, &url, b""));
        key.verify(&signed, &Method::GET, "127.0.0.1:9000", "/lookup?username=a", b"").unwrap();
    }
}
