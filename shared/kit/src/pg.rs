//! PostgreSQL, the cluster backend: a connection pool, versioned migrations that
//! several replicas may run at once, `LISTEN` as a stream of wake-ups, and throw-away
//! databases for tests.
//!
//! Every service keeps its own tables in the one database (`WEAPROUS_DATABASE_URL`);
//! migrations are numbered per service (`component`) and recorded in
//! `schema_migrations`, applied in one transaction under an advisory lock, so replicas
//! starting together apply each migration exactly once.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::backoff::Backoff;

/// The advisory lock key that serializes migrations across every replica of every
/// service ("weaprous" in ASCII).
const MIGRATION_LOCK: i64 = 0x7765_6170_726f_7573;

/// How long a service waits at start for the database to answer before giving up.
pub const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Errors of the PostgreSQL backend, as the stores see them.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Parses a `postgres://` URL (or a key=value connection string).
pub fn parse_url(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    // The URL may carry a password: the error must not repeat it.
    tokio_postgres::Config::from_str(url).map_err(|_| anyhow::anyhow!("the database URL is not a valid PostgreSQL URL"))
}

/// Where a database URL points, without its password, for logs.
pub fn describe(url: &str) -> String {
    match parse_url(url) {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
                .map(|(host, port)| match host {
                    tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            format!("postgres://{}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
        }
        Err(_) => "postgres://<invalid>".to_owned(),
    }
}

/// A pool of at most `max_size` connections to `url`, tried until the database
/// answers (for at most `patience`), so a service started beside its database waits
/// for it instead of dying.
pub async fn connect(url: &str, application: &str, max_size: usize, patience: Duration) -> anyhow::Result<Pool> {
    let mut config = parse_url(url)?;
    config.application_name(application);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("failed to build the database pool")?;
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(3));
    loop {
        match pool.get().await {
            Ok(_) => break,
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%err, db = %describe(url), "database not answering yet; retrying");
                tokio::time::sleep(backoff.next_wait()).await;
            }
            Err(err) => {
                return Err(err).with_context(|| format!("no answer from the database at {}", describe(url)));
            }
        }
    }
    tracing::info!(db = %describe(url), max_size, "database pool ready");
    Ok(pool)
}

/// Applies the `migrations` of `component` that the database has not seen, in order,
/// all in one transaction under an advisory lock: replicas starting at once wait for
/// each other, and a failed migration leaves nothing half done.
pub async fn migrate(pool: &Pool, component: &str, migrations: &[&str]) -> anyhow::Result<()> {
    let mut conn = pool.get().await.context("failed to get a connection for migrations")?;
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             component  TEXT NOT NULL,
             version    INTEGER NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             PRIMARY KEY (component, version)
         )",
    )
    .await?;
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1", &[&component])
        .await?;
    let applied: i32 = row.get(0);
    for (index, migration) in migrations.iter().enumerate().skip(usize::try_from(applied).unwrap_or(0)) {
        let version = i32::try_from(index + 1).context("too many migrations")?;
        tx.batch_execute(migration).await.with_context(|| format!("{component} migration {version} failed"))?;
        tx.execute("INSERT INTO schema_migrations (component, version) VALUES ($1, $2)", &[&component, &version])
            .await?;
        tracing::info!(component, version, "database migrated");
    }
    tx.commit().await.context("failed to commit the migrations")?;
    Ok(())
}

/// Wake-ups from `LISTEN`, over a connection of its own (a pooled connection would
/// lose its `LISTEN` when recycled).
pub struct Listener {
    /// Kept alive: dropping the client closes the connection.
    _client: tokio_postgres::Client,
    woken: mpsc::Receiver<String>,
}

impl Listener {
    /// Listens on `channels`. A notification only wakes a reader and never carries
    /// the data itself: readers read on from the last id they saw.
    pub async fn start(url: &str, channels: &[&str]) -> anyhow::Result<Self> {
        let config = parse_url(url)?;
        let (client, mut connection) = config.connect(NoTls).await.context("failed to connect to listen")?;
        let (wake, woken) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        // A full queue already holds a wake-up: the reader looks anyway.
                        if let Err(mpsc::error::TrySendError::Closed(_)) =
                            wake.try_send(notification.payload().to_owned())
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%err, "database listener connection lost");
                        return;
                    }
                }
            }
        });
        for channel in channels {
            client.batch_execute(&format!("LISTEN {channel}")).await.context("failed to listen")?;
        }
        Ok(Self { _client: client, woken })
    }

    /// The next notification's payload; `None` once the connection is lost, when the
    /// caller starts a new listener and reads what it may have missed.
    pub async fn recv(&mut self) -> Option<String> {
        self.woken.recv().await
    }
}

/// A database of its own for one test, dropped again when this is dropped.
///
/// The server is `WEAPROUS_TEST_DATABASE_URL`, else the local one at
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub struct TestDatabase {
    url: String,
    admin_url: String,
    name: String,
}

/// Why a test's PostgreSQL half did not run.
#[derive(Debug, thiserror::Error)]
#[error("no PostgreSQL server at {server}: {cause}")]
pub struct NoTestServer {
    pub server: String,
    pub cause: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database on the test server.
    pub async fn create() -> Result<Self, NoTestServer> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url = std::env::var("WEAPROUS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let no_server = |cause: String| NoTestServer { server: describe(&admin_url), cause };
        let config = parse_url(&admin_url).map_err(|err| no_server(err.to_string()))?;
        let (client, connection) = config.connect(NoTls).await.map_err(|err| no_server(err.to_string()))?;
        let connection = tokio::spawn(connection);
        let name = format!(
            "weaprous_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            crate::now_ms() % 1_000_000
        );
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(|err| no_server(err.to_string()))?;
        drop(client);
        let _ = connection.await;
        let mut url = reqwest::Url::parse(&admin_url).map_err(|err| no_server(err.to_string()))?;
        url.set_path(&format!("/{name}"));
        Ok(Self { url: url.to_string(), admin_url, name })
    }

    /// Like [`TestDatabase::create`], and where no server answers: fails in CI or with
    /// `WEAPROUS_REQUIRE_POSTGRES=1`, else says on stderr that `test` did not run on
    /// PostgreSQL and why, and gives `None`.
    pub async fn for_test(test: &str) -> Option<Self> {
        match Self::create().await {
            Ok(database) => Some(database),
            Err(err) => {
                let required = std::env::var_os("CI").is_some_and(|value| value == "true")
                    || std::env::var_os("WEAPROUS_REQUIRE_POSTGRES").is_some_and(|value| value == "1");
                assert!(!required, "{test}: PostgreSQL is required here (CI or WEAPROUS_REQUIRE_POSTGRES=1): {err}");
                // Straight to the process's stderr: the test harness captures
                // `eprintln!` of passing tests, and this must show in every run.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "NOT RUN on PostgreSQL: {test}: {err} (set WEAPROUS_TEST_DATABASE_URL)"
                );
                None
            }
        }
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside a test's runtime, which cannot block on itself: a thread of
        // its own with its own runtime removes the database.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let config = parse_url(&admin_url).ok()?;
                let (client, connection) = config.connect(NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_migrating_at_once_apply_each_migration_once() {
        let Some(database) = TestDatabase::for_test("replicas_migrating_at_once_apply_each_migration_once").await
        else {
            return;
        };
        const MIGRATIONS: &[&str] =
            &["CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)", "ALTER TABLE notes ADD tag TEXT"];
        let starts = (0..4).map(|_| {
            let url = database.url().to_owned();
            tokio::spawn(async move {
                let pool = connect(&url, "test", 2, Duration::from_secs(5)).await.unwrap();
                migrate(&pool, "demo", MIGRATIONS).await.unwrap();
                pool
            })
        });
        let mut pools = Vec::new();
        for start in starts {
            pools.push(start.await.unwrap());
        }
        let conn = pools[0].get().await.unwrap();
        let versions: Vec<i32> = conn
            .query("SELECT version FROM schema_migrations WHERE component = 'demo' ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, [1, 2]);
        conn.execute("INSERT INTO notes (body, tag) VALUES ('a', 'b')", &[]).await.unwrap();
    }

    #[tokio::test]
    async fn a_notification_wakes_the_listener() {
        let Some(database) = TestDatabase::for_test("a_notification_wakes_the_listener").await else {
            return;
        };
        let pool = connect(database.url(), "test", 2, Duration::from_secs(5)).await.unwrap();
        let mut listener = Listener::start(database.url(), &["news"]).await.unwrap();
        pool.get().await.unwrap().execute("SELECT pg_notify('news', '42')", &[]).await.unwrap();
        let payload = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.unwrap();
        assert_eq!(payload.as_deref(), Some("42"));
    }

    #[test]
    fn descriptions_leave_the_password_out() {
        let described = describe("postgres://weaprous:hunter2@db:5432/chat");
        assert_eq!(described, "postgres://db:5432/chat");
        assert!(!parse_url("postgres://u:hunter2@[bad").map(|_| ()).unwrap_err().to_string().contains("hunter2"));
    }
}
