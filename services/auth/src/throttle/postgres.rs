//! The counts of failed log-ins in PostgreSQL, shared by every replica of auth: the
//! `auth_login_failures` table, one row per run of failures (a client and a name, or
//! a name from everywhere), each failure counted with one upsert.
//!
//! Time is the wall clock in milliseconds, the one clock the replicas share; a run is
//! forgotten [`FORGET_AFTER`](super::Throttle::FORGET_AFTER) after its last failure, as
//! in memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use kit::pg::PgError;

use super::policy::{self, Locked, Run};

/// How often a replica drops the runs that are forgotten, in ms.
const SWEEP_EVERY_MS: i64 = 60_000;

/// The shared counts. Cloning is a pool-handle clone.
#[derive(Clone)]
pub struct PgThrottle {
    pool: Pool,
    /// When this replica last removed the runs that are forgotten (ms).
    last_sweep_ms: Arc<AtomicI64>,
}

impl PgThrottle {
    /// Counts in the `auth_login_failures` table behind `pool` (migrated already, with
    /// the users).
    pub fn new(pool: Pool) -> Self {
        Self { pool, last_sweep_ms: Arc::new(AtomicI64::new(0)) }
    }

    pub(super) async fn locked_at(
        &self,
        client: IpAddr,
        username: &str,
        now_ms: i64,
    ) -> Result<Option<Locked>, PgError> {
        let keys = Keys::new(client, username);
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT key, failures, last_failure FROM auth_login_failures WHERE key IN ($1, $2)",
                &[&keys.by_client, &keys.by_name],
            )
            .await?;
        let (mut here, mut everywhere) = (None, None);
        for row in rows {
            let key: String = row.get(0);
            // A failure stamped "later" (another replica's clock ahead) is the latest.
            let since_last = Duration::from_millis(u64::try_from(now_ms - row.get::<_, i64>(2)).unwrap_or(0));
            let run = Run { failures: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0), since_last };
            if key == keys.by_name {
                everywhere = Some(run);
            } else {
                here = Some(run);
            }
        }
        Ok(policy::verdict(here, everywhere))
    }

    pub(super) async fn failed_at(&self, client: IpAddr, username: &str, now_ms: i64) -> Result<(), PgError> {
        let keys = Keys::new(client, username);
        let conn = self.pool.get().await?;
        // Both runs in one statement, in a fixed order (client, then name), so two
        // replicas counting at once never wait on each other in a cycle. A run that
        // was forgotten starts again at this failure.
        conn.execute(
            "INSERT INTO auth_login_failures AS old (key, failures, last_failure)
             VALUES ($1, 1, $3), ($2, 1, $3)
             ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN old.last_failure <= $3 - $4 THEN 1 ELSE old.failures + 1 END,
                 last_failure = GREATEST(old.last_failure, $3)",
            &[&keys.by_client, &keys.by_name, &now_ms, &forget_ms()],
        )
        .await?;
        // Forgotten runs are dropped now and then (at most once a minute per replica),
        // as the in-memory counts drop them, so the table stays small.
        let last_sweep = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms - last_sweep >= SWEEP_EVERY_MS
            && self.last_sweep_ms.compare_exchange(last_sweep, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            conn.execute("DELETE FROM auth_login_failures WHERE last_failure <= $1", &[&(now_ms - forget_ms())])
                .await?;
        }
        Ok(())
    }

    pub(super) async fn succeeded(&self, client: IpAddr, username: &str) -> Result<(), PgError> {
        let keys = Keys::new(client, username);
        let conn = self.pool.get().await?;
        conn.execute("DELETE FROM auth_login_failures WHERE key = $1", &[&keys.by_client]).await?;
        Ok(())
    }
}

/// The current wall-clock time in ms, as the failures are stamped.
pub(super) fn now_ms() -> i64 {
    i64::try_from(kit::now_ms()).unwrap_or(i64::MAX)
}

fn forget_ms() -> i64 {
    i64::try_from(policy::FORGET_AFTER.as_millis()).unwrap_or(i64::MAX)
}

/// The rows of one client and name; the two kinds start differently, so they never
/// collide, whatever the name.
struct Keys {
    by_client: String,
    by_name: String,
}

impl Keys {
    fn new(client: IpAddr, username: &str) -> Self {
        let name = username.to_lowercase();
        Self { by_client: format!("client/{}/{name}", policy::client_key(client)), by_name: format!("name/{name}") }
    }
}
