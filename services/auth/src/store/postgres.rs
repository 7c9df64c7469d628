//! The users in PostgreSQL: the `auth_users` table, shared by every replica of auth.
//!
//! Names are unique regardless of case, as in the CSV file. The database does not
//! lower-case them itself (its `lower()` depends on the database's locale, and under
//! `C` leaves `Ễ` alone): the `name_key` column holds Rust's lower case of the name,
//! under a unique constraint, so a race between replicas is settled by the database.
//! Look-alike names (`uѕer1` with a Cyrillic `ѕ` beside `user1`) are one name too:
//! `name_skeleton` holds [`Username::key`] under a unique index. Rows from before
//! that column get their key when a replica opens the table; of two old rows with
//! one key (both were signed up before), the first keeps it and the other none, and
//! both go on logging in.

use anyhow::Context;
use deadpool_postgres::Pool;
use kit::pg::PgError;
use wire::names::Username;

/// Auth's migrations (its users, the log-in failures of
/// [`crate::throttle::PgThrottle`], the sessions of [`crate::sessions::EndedSessions`]),
/// in order. Never edit a released one; append.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE auth_users (
         username      TEXT PRIMARY KEY,
         name_key      TEXT NOT NULL UNIQUE,
         password_hash TEXT NOT NULL,
         created_at    BIGINT NOT NULL
     )",
    "CREATE TABLE auth_login_failures (
         key          TEXT PRIMARY KEY,
         failures     INTEGER NOT NULL,
         window_start BIGINT NOT NULL
     );
     CREATE INDEX auth_login_failures_window_start ON auth_login_failures (window_start)",
    "CREATE TABLE auth_ended_sessions (
         sid        TEXT PRIMARY KEY,
         expires_at BIGINT NOT NULL
     );
     CREATE INDEX auth_ended_sessions_expires_at ON auth_ended_sessions (expires_at)",
    // NULL until `fill_skeletons` computes it (SQL has no UTS #39 skeleton); a unique
    // index lets any number of rows be NULL.
    "ALTER TABLE auth_users ADD COLUMN name_skeleton TEXT;
     CREATE UNIQUE INDEX auth_users_name_skeleton ON auth_users (name_skeleton)",
    // Failures are runs forgotten after their last failure, no longer fixed windows.
    "ALTER TABLE auth_login_failures RENAME COLUMN window_start TO last_failure;
     ALTER INDEX auth_login_failures_window_start RENAME TO auth_login_failures_last_failure",
];

/// The `auth_users` table. Cloning is a pool-handle clone.
#[derive(Clone)]
pub struct PgUsers {
    pool: Pool,
    /// The database, without its password, for logs.
    described: String,
}

impl PgUsers {
    /// Applies auth's migrations (once across replicas) and opens the table.
    pub async fn open(pool: Pool, described: String) -> anyhow::Result<Self> {
        kit::pg::migrate(&pool, "auth", MIGRATIONS).await?;
        fill_skeletons(&pool).await?;
        Ok(Self { pool, described })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn describe(&self) -> &str {
        &self.described
    }

    pub async fn count(&self) -> Result<u64, PgError> {
        let row = self.pool.get().await?.query_one("SELECT count(*) FROM auth_users", &[]).await?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// The password hash of exactly `username` (log-in is case-sensitive, as in the
    /// CSV file).
    pub async fn hash_of(&self, username: &str) -> Result<Option<String>, PgError> {
        let conn = self.pool.get().await?;
        let row = conn.query_opt("SELECT password_hash FROM auth_users WHERE username = $1", &[&username]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Adds a user with a hash computed already; `false` when the name (in any case)
    /// is taken. Two inserts of one name at once: the second waits for the first and
    /// then does nothing.
    pub async fn insert(&self, username: &Username, hash: &str) -> Result<bool, PgError> {
        let conn = self.pool.get().await?;
        let inserted =
            conn.execute(INSERT, &[&username.as_str(), &name_key(username), &hash, &now_ms(), &username.key()]).await?;
        Ok(inserted == 1)
    }

    /// Adds users in one transaction; for each, whether it was added (`false`: the
    /// name was taken, before or earlier in `users`).
    pub async fn insert_many(&self, users: &[(Username, String)]) -> Result<Vec<bool>, PgError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let statement = tx.prepare(INSERT).await?;
        let now = now_ms();
        let mut added = Vec::with_capacity(users.len());
        for (username, hash) in users {
            let inserted =
                tx.execute(&statement, &[&username.as_str(), &name_key(username), hash, &now, &username.key()]).await?;
            added.push(inserted == 1);
        }
        tx.commit().await?;
        Ok(added)
    }
}

/// Without a conflict target, a clash on any key (the name, its lower case, its
/// skeleton) inserts nothing.
const INSERT: &str = "INSERT INTO auth_users (username, name_key, password_hash, created_at, name_skeleton)
                      VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// Gives the rows signed up before the `name_skeleton` column their key. A key taken
/// already (by another old row, or by a replica filling at the same time) is left
/// NULL for this row.
async fn fill_skeletons(pool: &Pool) -> anyhow::Result<()> {
    let conn = pool.get().await.context("failed to get a connection to fill name keys")?;
    let rows = conn.query("SELECT username FROM auth_users WHERE name_skeleton IS NULL", &[]).await?;
    let mut filled = 0;
    for row in rows {
        let username: String = row.get(0);
        let key = wire::names::name_key(&username);
        match conn
            .execute(
                "UPDATE auth_users SET name_skeleton = $1 WHERE username = $2 AND name_skeleton IS NULL",
                &[&key, &username],
            )
            .await
        {
            Ok(count) => filled += count,
            Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                tracing::warn!(%username, "an older user has a look-alike name; both keep logging in");
            }
            Err(err) => return Err(anyhow::Error::new(err).context("failed to fill a name key")),
        }
    }
    if filled > 0 {
        tracing::info!(users = filled, "name keys filled");
    }
    Ok(())
}

fn name_key(username: &Username) -> String {
    username.as_str().to_lowercase()
}

fn now_ms() -> i64 {
    i64::try_from(kit::now_ms()).unwrap_or(i64::MAX)
}
