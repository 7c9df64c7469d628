//! Why the store could not answer, whichever its backend.

use kit::db::DbError;
use kit::error::ApiError;
use kit::pg::PgError;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlite(#[from] DbError),
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// A row that does not read back as what was written (edited by hand).
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Postgres(err.into())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StoreError::Postgres(err.into())
    }
}

/// A store failure is the server's fault: a 500 whose cause is logged, not shown.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::Internal(anyhow::Error::new(err))
    }
}
