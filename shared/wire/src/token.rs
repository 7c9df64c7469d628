//! The claims inside a session token.
//!
//! Auth signs them as a JWT (HS256) with the session secret; the tracker and the peers
//! verify them locally with the same secret, so no call to auth is needed per request.

use serde::{Deserialize, Serialize};

use crate::names::Username;

/// The issuer written into every token, checked on verification.
pub const ISSUER: &str = "weaprous-auth";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Username,
    /// The session id: one per login, so one session can be revoked alone.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    pub iss: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;

    #[test]
    fn claims_are_a_flat_jwt_payload() {
        let claims =
            Claims { sub: Username::parse("alice").unwrap(), sid: "s1".into(), iat: 10, exp: 20, iss: ISSUER.into() };
        check(&claims, r#"{"sub":"alice","sid":"s1","iat":10,"exp":20,"iss":"weaprous-auth"}"#);
    }
}
