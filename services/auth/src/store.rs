//! The users behind one interface, on one of two backends chosen by the config: the
//! CSV file of one machine ([`UserDb`], the embedded backend), or the `auth_users`
//! table of the cluster's PostgreSQL database ([`PgUsers`]), which every replica of
//! auth shares. Routes see only [`UserStore`], never a file or SQL.

pub mod postgres;

use anyhow::Context;
use deadpool_postgres::Pool;
use secrecy::ExposeSecret;
use wire::names::Username;

use crate::config::Config;
use crate::hashing::{HashError, HashGate};
use crate::users::{self, AddUserError, UserDb};
pub use postgres::PgUsers;

/// Where the users are kept, and the limit on hashing their passwords. Cloning is
/// cheap (reference counts and a pool handle).
#[derive(Clone)]
pub struct UserStore {
    backend: Backend,
    /// Every password hash and check, on either backend, goes through it.
    hashing: HashGate,
}

#[derive(Clone)]
enum Backend {
    /// The CSV file `config.db` (no database URL configured).
    Csv(UserDb),
    /// The `auth_users` table (`config.secrets.database_url`).
    Postgres(PgUsers),
}

impl UserStore {
    /// The store the config asks for: PostgreSQL when a database URL is set (waiting
    /// for the database to answer, then migrating it), else the CSV file.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let hashing = HashGate::new(config.hash_limits());
        let Some(url) = &config.secrets.database_url else {
            tracing::info!(backend = "csv", db = %config.db.display(), "user store opened");
            return Ok(Self { backend: Backend::Csv(UserDb::open(&config.db)?), hashing });
        };
        let url = url.expose_secret();
        // Never the URL itself in logs: it may carry a password.
        let described = kit::pg::describe(url);
        let pool = kit::pg::connect(url, "auth", config.database_pool_size, kit::pg::STARTUP_PATIENCE).await?;
        let users = PgUsers::open(pool, described.clone()).await?;
        tracing::info!(backend = "postgres", db = %described, "user store opened");
        Ok(Self { backend: Backend::Postgres(users), hashing })
    }

    /// The limit on password hashing (its metrics, and its high-water mark for tests).
    pub fn hashing(&self) -> &HashGate {
        &self.hashing
    }

    /// The database pool, on the PostgreSQL backend, for the other state kept there.
    pub fn pool(&self) -> Option<&Pool> {
        match &self.backend {
            Backend::Csv(_) => None,
            Backend::Postgres(users) => Some(users.pool()),
        }
    }

    /// Where the users are, for logs: a file path, or a database without its password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Csv(db) => db.path().display().to_string(),
            Backend::Postgres(users) => users.describe().to_owned(),
        }
    }

    /// How many users there are.
    pub async fn count(&self) -> anyhow::Result<u64> {
        match &self.backend {
            Backend::Csv(db) => Ok(db.len() as u64),
            Backend::Postgres(users) => users.count().await.context("failed to count the users"),
        }
    }

    /// The stored hash of `username`, if there is such a user.
    pub async fn stored_hash(&self, username: &str) -> anyhow::Result<Option<String>> {
        match &self.backend {
            Backend::Csv(db) => db.hash_of(username),
            Backend::Postgres(users) => users.hash_of(username).await.context("failed to look the user up"),
        }
    }

    /// Whether `password` is the password of `username`. Unknown users cost as much
    /// time as known ones, so timing does not tell which names exist; both wait for a
    /// turn at the hash gate.
    pub async fn verify(&self, username: &str, password: &str) -> Result<bool, HashError> {
        let hash = match &self.backend {
            Backend::Csv(db) => db.hash_of(username)?,
            Backend::Postgres(users) => users.hash_of(username).await.context("failed to look the user up")?,
        };
        let password = password.to_owned();
        self.hashing.run_in_memory(move |memory| users::check_against(hash.as_deref(), &password, memory)).await
    }

    /// Signs up a new user. Names are unique regardless of case; of two replicas
    /// signing up one name at once, one succeeds and the other gets
    /// [`AddUserError::Exists`].
    pub async fn add(&self, username: &Username, password: &str) -> Result<(), AddUserError> {
        users::check_password(password)?;
        let password = password.to_owned();
        let hash = self.hashing.run_in_memory(move |memory| crate::password::hash(&password, memory)).await??;
        let added = match &self.backend {
            Backend::Csv(db) => {
                let (db, user) = (db.clone(), vec![(username.clone(), hash)]);
                tokio::task::spawn_blocking(move || db.add_hashed_blocking(&user))
                    .await
                    .context("sign-up task failed")??
                    == [true]
            }
            Backend::Postgres(users) => users.insert(username, &hash).await.context("failed to store the user")?,
        };
        if added { Ok(()) } else { Err(AddUserError::Exists(username.to_string())) }
    }

    /// Adds users whose hashes are computed already (an import); for each, whether it
    /// was added (`false`: the name was taken). Existing users are left as they are.
    pub async fn add_hashed(&self, users: Vec<(Username, String)>) -> anyhow::Result<Vec<bool>> {
        match &self.backend {
            Backend::Csv(db) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.add_hashed_blocking(&users))
                    .await
                    .context("import task failed")?
            }
            Backend::Postgres(pg_users) => pg_users.insert_many(&users).await.context("failed to store the users"),
        }
    }
}
