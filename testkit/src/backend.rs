//! Where a test system keeps its data: embedded, or a fresh PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

/// Where the services of a [`System`] keep their data.
#[derive(Clone, Default)]
pub enum Backend {
    /// SQLite files and the CSV user file in the system's temporary folder.
    #[default]
    Embedded,
    /// One fresh PostgreSQL database shared by every service, dropped with the last
    /// clone of this.
    Postgres(Arc<kit::pg::TestDatabase>),
}

impl Backend {
    /// A fresh PostgreSQL database for `test`; `None` (after saying why on stderr)
    /// where no server answers outside CI. See [`kit::pg::TestDatabase::for_test`].
    pub async fn postgres(test: &str) -> Option<Self> {
        kit::pg::TestDatabase::for_test(test).await.map(|database| Self::Postgres(Arc::new(database)))
    }

    /// The database URL the services get, if any.
    pub fn database_url(&self) -> Option<&str> {
        match self {
            Self::Embedded => None,
            Self::Postgres(database) => Some(database.url()),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("Embedded"),
            Self::Postgres(_) => f.write_str("Postgres"),
        }
    }
}

/// Fails unless every service that keeps data migrated its tables into the database
/// at `url`: a "postgres" test that ran embedded would prove nothing.
pub(crate) async fn assert_on_postgres(url: &str) {
    let pool = kit::pg::connect(url, "testkit", 1, Duration::from_secs(5)).await.expect("the test database answers");
    let conn = pool.get().await.expect("a connection");
    let rows = conn.query("SELECT DISTINCT component FROM schema_migrations", &[]).await.expect("schema_migrations");
    let components: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    for service in ["auth", "tracker", "peer"] {
        assert!(components.iter().any(|c| c == service), "{service} keeps no tables in the test database");
    }
}
