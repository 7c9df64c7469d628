//! Where a test system keeps its data: embedded, or a fresh PostgreSQL database.

use std::sync::Arc;

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

/// Runs an `async fn name(backend: testkit::Backend)` as two tests, `name::embedded`
/// and `name::postgres`. The PostgreSQL one says on stderr, and returns, where no
/// server answers outside CI (in CI it fails instead).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name($crate::Backend::Embedded).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::Backend::postgres(concat!(module_path!(), "::postgres")).await {
                        super::$name(backend).await;
                    }
                }
            }
        )+
    };
}
