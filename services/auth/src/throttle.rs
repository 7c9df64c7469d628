//! Failed log-ins, counted so that passwords cannot be guessed at the speed of the
//! network, without letting a stranger lock a user out.
//!
//! Failures count per client and name. A client's first
//! [`FREE_FAILURES`](Throttle::FREE_FAILURES) at a name cost nothing; after each further
//! one it waits before its next try, [`FIRST_DELAY`](Throttle::FIRST_DELAY) doubling up to
//! [`MAX_DELAY`](Throttle::MAX_DELAY). There is no hard lock, and a client that has not
//! failed at a name is never refused: failing on purpose does not keep the user out.
//! Failures also count per name from every client together: past
//! [`NAME_UNDER_ATTACK`](Throttle::NAME_UNDER_ATTACK), a client that has failed at the
//! name gets no free tries, which slows a guesser who spreads over many addresses.
//! Failures are forgotten [`FORGET_AFTER`](Throttle::FORGET_AFTER) after the last one. A
//! client is its address (an IPv6 one by its /64), as the edge resolves it behind the
//! trusted proxies ([`kit::http::edge`]).
//!
//! One replica keeps the counts in memory ([`MemoryThrottle`]); replicas on
//! PostgreSQL keep them in a table they share ([`PgThrottle`]), so a guesser gains
//! nothing by spreading over the replicas behind the proxy.

pub mod memory;
mod policy;
pub mod postgres;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use deadpool_postgres::Pool;

pub use memory::MemoryThrottle;
pub use policy::Locked;
pub use postgres::PgThrottle;

/// Failed log-ins in the current window. Cloning is a reference-count bump.
#[derive(Clone)]
pub enum Throttle {
    /// This replica's own counts (the embedded backend).
    Memory(MemoryThrottle),
    /// Counts shared by every replica on the database (cluster mode).
    Postgres(PgThrottle),
}

impl Default for Throttle {
    fn default() -> Self {
        Self::Memory(MemoryThrottle::default())
    }
}

impl Throttle {
    pub const FREE_FAILURES: u32 = policy::FREE_FAILURES;
    pub const NAME_UNDER_ATTACK: u32 = policy::NAME_UNDER_ATTACK;
    pub const FORGET_AFTER: Duration = policy::FORGET_AFTER;
    pub const FIRST_DELAY: Duration = policy::FIRST_DELAY;
    pub const MAX_DELAY: Duration = policy::MAX_DELAY;

    /// Counts in the database behind `pool` (cluster mode), else in memory.
    pub fn new(pool: Option<Pool>) -> Self {
        match pool {
            Some(pool) => Self::Postgres(PgThrottle::new(pool)),
            None => Self::default(),
        }
    }

    /// Whether `client` must wait before trying `username` again (never, if it has
    /// not failed at it).
    pub async fn locked(&self, client: IpAddr, username: &str) -> anyhow::Result<Option<Locked>> {
        match self {
            Self::Memory(throttle) => Ok(throttle.locked_at(client, username, Instant::now())),
            Self::Postgres(throttle) => {
                throttle.locked_at(client, username, postgres::now_ms()).await.context("failed to read log-in failures")
            }
        }
    }

    pub async fn failed(&self, client: IpAddr, username: &str) -> anyhow::Result<()> {
        match self {
            Self::Memory(throttle) => {
                throttle.failed_at(client, username, Instant::now());
                Ok(())
            }
            Self::Postgres(throttle) => throttle
                .failed_at(client, username, postgres::now_ms())
                .await
                .context("failed to count a log-in failure"),
        }
    }

    /// A good password clears this client's failures for the name (not the others').
    pub async fn succeeded(&self, client: IpAddr, username: &str) -> anyhow::Result<()> {
        match self {
            Self::Memory(throttle) => {
                throttle.succeeded(client, username);
                Ok(())
            }
            Self::Postgres(throttle) => {
                throttle.succeeded(client, username).await.context("failed to clear log-in failures")
            }
        }
    }
}

#[cfg(test)]
mod tests;
