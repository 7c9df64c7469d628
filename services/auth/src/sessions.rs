//! Sessions ended by `POST /logout`, as every replica of auth must see them.
//!
//! The session keys ([`TokenKeys`]) remember the sessions ended in this process. On
//! the embedded backend that is all there is. Replicas on PostgreSQL also write each
//! ended session to `auth_ended_sessions` and look there before accepting a token,
//! so a session ended through one replica is over on all of them.

use deadpool_postgres::Pool;
use kit::error::ApiError;
use kit::pg::PgError;
use kit::session::TokenKeys;
use wire::token::Claims;

/// Where ended sessions are kept beyond this process. Cloning is cheap.
#[derive(Clone)]
pub struct EndedSessions {
    /// The cluster's database; `None` on the embedded backend.
    pool: Option<Pool>,
}

impl EndedSessions {
    pub fn new(pool: Option<Pool>) -> Self {
        Self { pool }
    }

    /// Ends the session of `claims`: here at once, and for every replica.
    pub async fn end(&self, tokens: &TokenKeys, claims: &Claims) -> Result<(), ApiError> {
        tokens.revoke(&claims.sid, claims.exp);
        if let Some(pool) = &self.pool {
            insert(pool, claims).await.map_err(|err| anyhow::Error::new(err).context("failed to end the session"))?;
        }
        Ok(())
    }

    /// The claims of `token` if it is valid and its session has not ended, here or
    /// (cluster mode) through another replica.
    pub async fn verify(&self, tokens: &TokenKeys, token: &str) -> Result<Claims, ApiError> {
        let claims = tokens.verify(token)?;
        let Some(pool) = &self.pool else { return Ok(claims) };
        let ended = is_ended(pool, &claims.sid)
            .await
            .map_err(|err| anyhow::Error::new(err).context("failed to check a session"))?;
        if ended {
            // Remembered here too: the next check needs no query. Verifying again
            // refuses the token as any ended session is refused.
            tokens.revoke(&claims.sid, claims.exp);
            return tokens.verify(token);
        }
        Ok(claims)
    }
}

/// How long after its expiry an ended session is still kept: beyond any clock leeway
/// a token is granted.
const FORGET_AFTER_SECS: i64 = 10 * 60;

async fn insert(pool: &Pool, claims: &Claims) -> Result<(), PgError> {
    let conn = pool.get().await?;
    let expires_at = i64::try_from(claims.exp).unwrap_or(i64::MAX);
    conn.execute(
        "INSERT INTO auth_ended_sessions (sid, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&claims.sid, &expires_at],
    )
    .await?;
    // Sessions past their expiry (and the leeway tokens get) need no row: their
    // tokens fail on their own.
    let expired = i64::try_from(kit::now_secs()).unwrap_or(i64::MAX) - FORGET_AFTER_SECS;
    conn.execute("DELETE FROM auth_ended_sessions WHERE expires_at < $1", &[&expired]).await?;
    Ok(())
}

async fn is_ended(pool: &Pool, sid: &str) -> Result<bool, PgError> {
    let conn = pool.get().await?;
    Ok(conn.query_opt("SELECT 1 FROM auth_ended_sessions WHERE sid = $1", &[&sid]).await?.is_some())
}
