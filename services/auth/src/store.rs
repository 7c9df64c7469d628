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
use crate::users::{self, AddUserError, UserDb};
pub use postgres::PgUsers;

/// Where the users are kept. Cloning is cheap (a reference count or a pool handle).
#[derive(Clone)]
pub enum UserStore {
    /// The CSV file `config.db` (no database URL configured).
    Csv(UserDb),
    /// The `auth_users` table (`config.secrets.database_url`).
    Postgres(PgUsers),
}

impl UserStore {
    /// The store the config asks for: PostgreSQL when a database URL is set (waiting
    /// for the database to answer, then migrating it), else the CSV file.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let Some(url) = &config.secrets.database_url else {
            tracing::info!(backend = "csv", db = %config.db.display(), "user store opened");
            return Ok(Self::Csv(UserDb::open(&config.db)?));
        };
        let url = url.expose_secret();
        // Never the URL itself in logs: it may carry a password.
        let described = kit::pg::describe(url);
        let pool = kit::pg::connect(url, "auth", config.database_pool_size, kit::pg::STARTUP_PATIENCE).await?;
        let users = PgUsers::open(pool, described.clone()).await?;
        tracing::info!(backend = "postgres", db = %described, "user store opened");
        Ok(Self::Postgres(users))
    }

    /// The database pool, on the PostgreSQL backend, for the other state kept there.
    pub fn pool(&self) -> Option<&Pool> {
        match self {
            Self::Csv(_) => None,
            Self::Postgres(users) => Some(users.pool()),
        }
    }

    /// Where the users are, for logs: a file path, or a database without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::Csv(db) => db.path().display().to_string(),
            Self::Postgres(users) => users.describe().to_owned(),
        }
    }

    /// How many users there are.
    pub async fn count(&self) -> anyhow::Result<u64> {
        match self {
            Self::Csv(db) => Ok(db.len() as u64),
            Self::Postgres(users) => users.count().await.context("failed to count the users"),
        }
    }

    /// Whether `password` is the password of `username`. Unknown users cost as much
    /// time as known ones, so timing does not tell which names exist.
    pub async fn verify(&self, username: &str, password: &str) -> anyhow::Result<bool> {
        match self {
            Self::Csv(db) => db.verify(username, password).await,
            Self::Postgres(users) => {
                let hash = users.hash_of(username).await.context("failed to look the user up")?;
                users::verify_against(hash, password).await
            }
        }
    }

    /// Signs up a new user. Names are unique regardless of case; of two replicas
    /// signing up one name at once, one succeeds and the other gets
    /// [`AddUserError::Exists`].
    pub async fn add(&self, username: &Username, password: &str) -> Result<(), AddUserError> {
        match self {
            Self::Csv(db) => db.add(username, password).await,
            Self::Postgres(users) => {
                users::check_password(password)?;
                let password = password.to_owned();
                let hash = tokio::task::spawn_blocking(move || users::hash_password(&password))
                    .await
                    .context("sign-up task failed")??;
                if users.insert(username, &hash).await.context("failed to store the user")? {
                    Ok(())
                } else {
                    Err(AddUserError::Exists(username.to_string()))
                }
            }
        }
    }

    /// Adds users whose hashes are computed already (an import); for each, whether it
    /// was added (`false`: the name was taken). Existing users are left as they are.
    pub async fn add_hashed(&self, users: Vec<(Username, String)>) -> anyhow::Result<Vec<bool>> {
        match self {
            Self::Csv(db) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.add_hashed_blocking(&users))
                    .await
                    .context("import task failed")?
            }
            Self::Postgres(pg_users) => pg_users.insert_many(&users).await.context("failed to store the users"),
        }
    }
}
