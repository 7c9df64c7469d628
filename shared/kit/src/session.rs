//! Session tokens: issued by auth, verified locally by the tracker and the peers.
//!
//! A token is a JWT (HS256) over [`wire::token::Claims`], signed with the session
//! secret that every service gets from configuration. It travels in the HttpOnly
//! cookie [`wire::headers::SESSION_COOKIE`] (over HTTPS `Secure` and named
//! [`wire::headers::SECURE_SESSION_COOKIE`]) from browsers, or as
//! `Authorization: Bearer` between services.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use wire::headers::{SECURE_SESSION_COOKIE, SESSION_COOKIE};
use wire::names::Username;
use wire::token::{Claims, ISSUER};

use crate::error::ApiError;

/// Seconds a token may be past its expiry and still pass: clock skew between services.
const LEEWAY_SECS: u64 = 5;

/// Verified tokens remembered at most. Each browser sends its one token with every
/// request, so this bounds the sessions whose checks are skipped, not the sessions.
const REMEMBERED: usize = 4096;

/// Signs and verifies session tokens. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct TokenKeys {
    inner: Arc<Keys>,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens that passed [`TokenKeys::verify`], with their claims. Base64, JSON and
    /// the HMAC are most of a relayed request's session check; a token seen before
    /// skips them. Keyed by the whole token, so only a token that verified can match;
    /// expiry is checked again on every match. (Revocation is the caller's check, made
    /// after this one either way.)
    verified: Mutex<HashMap<Box<str>, Claims>>,
    /// Ended sessions (logouts).
    revoked: Mutex<Revoked>,
    /// Counts revocations, so a long-lived holder of a session (an event stream) can
    /// see cheaply whether anything changed since it last looked.
    generation: AtomicU64,
}

/// Ended sessions by id, with when their tokens expire anyway (then they are
/// forgotten, at most once a minute, so a burst of revocations stays linear).
#[derive(Default)]
struct Revoked {
    sessions: HashMap<String, u64>,
    pruned_at: u64,
}

impl TokenKeys {
    /// Keys from the shared session secret; tokens issued with them live for `ttl`.
    pub fn new(secret: &SecretString, ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            inner: Arc::new(Keys {
                encoding: EncodingKey::from_secret(bytes),
                decoding: DecodingKey::from_secret(bytes),
                validation,
                ttl,
                verified: Mutex::new(HashMap::new()),
                revoked: Mutex::new(Revoked::default()),
                generation: AtomicU64::new(0),
            }),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// A new session for `username`, with a fresh session id.
    pub fn issue(&self, username: &Username) -> anyhow::Result<(String, Claims)> {
        let now = crate::now_secs();
        let claims = Claims {
            sub: username.clone(),
            sid: uuid::Uuid::new_v4().simple().to_string(),
            iat: now,
            exp: now + self.inner.ttl.as_secs(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.inner.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a valid, unexpired token signed with our secret, whose session
    /// has not been revoked.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.verify_signed(token)?;
        if self.is_revoked(&claims.sid) {
            return Err(ApiError::Unauthorized("session ended: log in again".into()));
        }
        Ok(claims)
    }

    /// Ends session `sid` for this service: its token no longer verifies. Returns
    /// whether it was news. `expires_at` is when the token expires anyway; after
    /// that, the session is forgotten.
    pub fn revoke(&self, sid: &str, expires_at: u64) -> bool {
        let now = crate::now_secs();
        let mut revoked = self.inner.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        if now >= revoked.pruned_at + 60 {
            revoked.sessions.retain(|_, expiry| *expiry + LEEWAY_SECS >= now);
            revoked.pruned_at = now;
        }
        let news = revoked.sessions.insert(sid.to_owned(), expires_at).is_none();
        if news {
            self.inner.generation.fetch_add(1, Ordering::Release);
        }
        news
    }

    pub fn is_revoked(&self, sid: &str) -> bool {
        self.inner.revoked.lock().unwrap_or_else(PoisonError::into_inner).sessions.contains_key(sid)
    }

    /// A number that changes whenever a session is revoked: compare it with an earlier
    /// value before asking [`TokenKeys::is_revoked`] again.
    pub fn revocations(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Signature, issuer and expiry; revocation is [`TokenKeys::verify`]'s.
    fn verify_signed(&self, token: &str) -> Result<Claims, ApiError> {
        let now = crate::now_secs();
        let live = |claims: &Claims| claims.exp + LEEWAY_SECS >= now;
        if let Some(claims) = self.inner.remembered().get(token).filter(|claims| live(claims)) {
            return Ok(claims.clone());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => ApiError::Unauthorized("session expired: log in again".into()),
                _ => ApiError::Unauthorized("invalid session: log in again".into()),
            })?;
        let mut remembered = self.inner.remembered();
        if remembered.len() >= REMEMBERED {
            remembered.retain(|_, claims| live(claims));
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(token.into(), claims.clone());
        Ok(claims)
    }
}

impl Keys {
    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Claims>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session token of a request: a bearer token, or the session cookie (the
/// `__Host-` one first, then the plain one).
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    let cookies: Vec<Cookie<'_>> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| !cookie.value().is_empty())
        .collect();
    [SECURE_SESSION_COOKIE, SESSION_COOKIE]
        .into_iter()
        .find_map(|name| cookies.iter().find(|cookie| cookie.name() == name))
        .map(|cookie| cookie.value().to_owned())
}

/// `Set-Cookie` for a new session: HttpOnly, SameSite=Lax, for the whole site; when
/// `secure` (the request came over HTTPS, see [`crate::http::Forwarded`]) also
/// `Secure` and named with the `__Host-` prefix.
pub fn session_cookie(token: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let name = if secure { SECURE_SESSION_COOKIE } else { SESSION_COOKIE };
    let cookie = Cookie::build((name, token))
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    // A JWT and the fixed attributes are visible ASCII, so this cannot fail.
    HeaderValue::from_str(&cookie.to_string()).expect("session cookies are visible ASCII")
}

/// `Set-Cookie`s that remove the session cookie, under either name.
pub fn clear_session_cookies() -> [HeaderValue; 2] {
    [SESSION_COOKIE, SECURE_SESSION_COOKIE].map(|name| {
        let cookie = Cookie::build((name, ""))
            .http_only(true)
            .secure(name == SECURE_SESSION_COOKIE)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::ZERO)
            .build();
        HeaderValue::from_str(&cookie.to_string()).expect("the cleared cookie is visible ASCII")
    })
}

/// The user behind a request with a valid session token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub claims: Claims,
    /// The token itself, to act on the user's behalf towards other services.
    pub token: String,
}

impl AuthUser {
    pub fn username(&self) -> &Username {
        &self.claims.sub
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    TokenKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = token_from_headers(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let claims = TokenKeys::from_ref(state).verify(&token)?;
        Ok(AuthUser { claims, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str, ttl: u64) -> TokenKeys {
        TokenKeys::new(&SecretString::from(secret.to_owned()), Duration::from_secs(ttl))
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_user() {
        let keys = keys("s3cret", 60);
        let (token, claims) = keys.issue(&Username::parse("alice").unwrap()).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn forged_tampered_and_expired_tokens_are_refused() {
        let signer = keys("s3cret", 60);
        let (token, _) = signer.issue(&Username::parse("alice").unwrap()).unwrap();
        assert_eq!(keys("other", 60).verify(&token).unwrap_err().status(), 401);
        // The genuine token verified (and remembered) first: a tampered one still fails.
        assert!(signer.verify(&token).is_ok());
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert!(signer.verify(&tampered).is_err());
        // Issued already expired (beyond the 5 s leeway).
        let (old, _) = expired_token(&signer);
        assert!(signer.verify(&old).unwrap_err().to_string().contains("expired"));
    }

    /// A token signed with `keys` that expired 30 s ago, past the leeway.
    fn expired_token(keys: &TokenKeys) -> (String, Claims) {
        let claims = Claims {
            sub: Username::parse("alice").unwrap(),
            sid: "x".into(),
            iat: 1,
            exp: crate::now_secs() - 30,
            iss: ISSUER.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.inner.encoding).unwrap();
        (token, claims)
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let keys = keys("s3cret", 60);
        let (old, claims) = expired_token(&keys);
        // As if it had verified while it was still valid.
        keys.inner.remembered().insert(old.as_str().into(), claims);
        assert!(keys.verify(&old).unwrap_err().to_string().contains("expired"));
    }

    #[test]
    fn a_revoked_session_no_longer_verifies_even_when_remembered() {
        let keys = keys("s3cret", 60);
        let alice = Username::parse("alice").unwrap();
        let (token, claims) = keys.issue(&alice).unwrap();
        let (other, _) = keys.issue(&alice).unwrap();
        assert!(keys.verify(&token).is_ok());
        assert!(keys.revoke(&claims.sid, claims.exp));
        assert!(!keys.revoke(&claims.sid, claims.exp), "already known");
        assert!(keys.verify(&token).unwrap_err().to_string().contains("session ended"));
        assert!(keys.verify(&other).is_ok(), "her other sessions go on");
        let generation = keys.revocations();
        assert!(keys.revoke("other", crate::now_secs() + 60));
        assert_ne!(keys.revocations(), generation, "a revocation shows in the generation");
        // Forgotten once its token would have expired anyway (pruned once a minute).
        keys.inner.revoked.lock().unwrap().sessions.insert("old".into(), crate::now_secs() - 60);
        keys.inner.revoked.lock().unwrap().pruned_at = 0;
        keys.revoke("new", crate::now_secs() + 60);
        assert!(!keys.is_revoked("old") && keys.is_revoked("new") && keys.is_revoked(&claims.sid));
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let keys = keys("s3cret", 60);
        let alice = Username::parse("alice").unwrap();
        let tokens: Vec<String> = (0..REMEMBERED + 10).map(|_| keys.issue(&alice).unwrap().0).collect();
        for token in &tokens {
            assert_eq!(keys.verify(token).unwrap().sub, alice);
        }
        assert!(keys.inner.remembered().len() <= REMEMBERED);
        // Forgotten or not, every token still verifies.
        assert!(tokens.iter().all(|token| keys.verify(token).is_ok()));
    }

    #[test]
    fn the_token_comes_from_a_bearer_header_or_the_session_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b; weaprous_session=tok; c=d"));
        assert_eq!(token_from_headers(&headers).as_deref(), Some("tok"));
        headers.insert(header::COOKIE, HeaderValue::from_static("weaprous_session=old; __Host-weaprous_session=new"));
        assert_eq!(token_from_headers(&headers).as_deref(), Some("new"), "the secure one first");
        headers.insert(header::COOKIE, HeaderValue::from_static("__Host-weaprous_session=; weaprous_session=tok"));
        assert_eq!(token_from_headers(&headers).as_deref(), Some("tok"), "a cleared cookie is no token");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer bear"));
        assert_eq!(token_from_headers(&headers).as_deref(), Some("bear"));
        assert!(token_from_headers(&HeaderMap::new()).is_none());
    }

    #[test]
    fn session_cookies_are_http_only_and_same_site() {
        let cookie = session_cookie("tok", Duration::from_secs(3600), false);
        let text = cookie.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Max-Age=3600"));
        assert!(text.starts_with("weaprous_session=tok") && !text.contains("Secure"), "{text}");
    }

    #[test]
    fn over_https_the_session_cookie_is_secure_and_host_only() {
        let cookie = session_cookie("tok", Duration::from_secs(3600), true);
        let text = cookie.to_str().unwrap();
        assert!(text.starts_with("__Host-weaprous_session=tok;"), "{text}");
        assert!(text.contains("Secure") && text.contains("Path=/") && !text.contains("Domain"), "{text}");
        let [plain, secure] = clear_session_cookies();
        assert!(plain.to_str().unwrap().starts_with("weaprous_session=;"));
        assert!(secure.to_str().unwrap().starts_with("__Host-weaprous_session=;"));
        assert!(secure.to_str().unwrap().contains("Secure"));
    }
}
