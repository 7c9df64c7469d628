//! The throttle's rules, each test written once and run on both backends, with the
//! clock driven by the test.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kit::pg::TestDatabase;

use super::*;

/// A throttle of either backend and the start of its test's clock.
enum Subject {
    Memory(MemoryThrottle, Instant),
    Postgres {
        throttle: PgThrottle,
        start: i64,
        /// Dropped (and the database with it) when the test ends.
        _database: TestDatabase,
    },
}

impl Subject {
    async fn memory() -> Option<Self> {
        Some(Self::Memory(MemoryThrottle::default(), Instant::now()))
    }

    async fn postgres() -> Option<Self> {
        // A test runs on a thread named after it.
        let test = std::thread::current().name().unwrap_or("throttle test").to_owned();
        let database = TestDatabase::for_test(&test).await?;
        let pool = kit::pg::connect(database.url(), "auth-test", 2, Duration::from_secs(10)).await.unwrap();
        kit::pg::migrate(&pool, "auth", crate::store::postgres::MIGRATIONS).await.unwrap();
        Some(Self::Postgres { throttle: PgThrottle::new(pool), start: super::postgres::now_ms(), _database: database })
    }

    /// Whether `client` is locked out of `name`, `after` the test's start.
    async fn locked(&self, client: IpAddr, name: &str, after: Duration) -> Option<Locked> {
        match self {
            Self::Memory(throttle, start) => throttle.locked_at(client, name, *start + after),
            Self::Postgres { throttle, start, .. } => {
                throttle.locked_at(client, name, *start + ms(after)).await.unwrap()
            }
        }
    }

    async fn failed(&self, client: IpAddr, name: &str, after: Duration) {
        match self {
            Self::Memory(throttle, start) => throttle.failed_at(client, name, *start + after),
            Self::Postgres { throttle, start, .. } => {
                throttle.failed_at(client, name, *start + ms(after)).await.unwrap()
            }
        }
    }

    async fn succeeded(&self, client: IpAddr, name: &str) {
        match self {
            Self::Memory(throttle, _) => throttle.succeeded(client, name),
            Self::Postgres { throttle, .. } => throttle.succeeded(client, name).await.unwrap(),
        }
    }
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

const START: Duration = Duration::ZERO;

/// Runs each test body (an `async fn(Subject)`) on both backends, as
/// `memory::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Subject::memory().await.unwrap()).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                let Some(subject) = super::Subject::postgres().await else { return };
                super::$test(subject).await
            })*
        }
    };
}

on_both_backends!(
    a_client_that_keeps_failing_is_locked_out_of_that_name_only,
    failures_from_many_clients_lock_the_name_for_everyone,
    success_clears_only_that_clients_failures,
    a_window_that_is_over_starts_again_at_the_next_failure,
);

async fn a_client_that_keeps_failing_is_locked_out_of_that_name_only(throttle: Subject) {
    for _ in 0..Throttle::MAX_FAILURES {
        assert_eq!(throttle.locked(ip(1), "alice", START).await, None);
        throttle.failed(ip(1), "alice", START).await;
    }
    assert!(matches!(throttle.locked(ip(1), "ALICE", START).await, Some(Locked::Here(_))));
    assert_eq!(throttle.locked(ip(2), "alice", START).await, None, "the real alice, elsewhere, still can");
    assert_eq!(throttle.locked(ip(1), "bob", START).await, None);
    assert_eq!(throttle.locked(ip(1), "alice", START + Throttle::WINDOW).await, None, "until the window ends");
}

async fn failures_from_many_clients_lock_the_name_for_everyone(throttle: Subject) {
    for n in 0..Throttle::MAX_FAILURES_PER_NAME {
        throttle.failed(ip((n % 250) as u8), "alice", START).await;
    }
    assert!(matches!(throttle.locked(ip(251), "alice", START).await, Some(Locked::Everywhere(_))));
    let later = START + Throttle::WINDOW;
    throttle.failed(ip(1), "bob", later).await;
    assert_eq!(throttle.locked(ip(251), "alice", later).await, None, "old failures are dropped");
}

async fn success_clears_only_that_clients_failures(throttle: Subject) {
    for _ in 0..Throttle::MAX_FAILURES {
        throttle.failed(ip(1), "alice", START).await;
        throttle.failed(ip(2), "alice", START).await;
    }
    throttle.succeeded(ip(2), "alice").await;
    assert_eq!(throttle.locked(ip(2), "alice", START).await, None);
    assert!(throttle.locked(ip(1), "alice", START).await.is_some());
}

async fn a_window_that_is_over_starts_again_at_the_next_failure(throttle: Subject) {
    for _ in 0..Throttle::MAX_FAILURES {
        throttle.failed(ip(1), "alice", START).await;
    }
    let later = START + Throttle::WINDOW;
    throttle.failed(ip(1), "alice", later).await;
    assert_eq!(throttle.locked(ip(1), "alice", later).await, None, "one failure in the new window");
    for _ in 1..Throttle::MAX_FAILURES {
        throttle.failed(ip(1), "alice", later).await;
    }
    let locked = throttle.locked(ip(1), "alice", later + Duration::from_secs(1)).await;
    assert_eq!(locked, Some(Locked::Here(Throttle::WINDOW - Duration::from_secs(1))), "the new window's wait");
}
