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
    a_client_that_keeps_failing_waits_longer_each_time,
    a_client_that_has_not_failed_is_never_refused,
    a_name_under_attack_gives_failing_clients_no_free_tries,
    success_clears_only_that_clients_failures,
    failures_are_forgotten_an_hour_after_the_last,
    an_ipv6_client_is_counted_by_its_64,
);

const FREE: u32 = Throttle::FREE_FAILURES;

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

async fn a_client_that_keeps_failing_waits_longer_each_time(throttle: Subject) {
    for _ in 0..FREE {
        assert_eq!(throttle.locked(ip(1), "alice", START).await, None);
        throttle.failed(ip(1), "alice", START).await;
    }
    assert_eq!(throttle.locked(ip(1), "alice", START).await, None, "the free tries cost nothing");
    throttle.failed(ip(1), "alice", START).await;
    assert_eq!(throttle.locked(ip(1), "ALICE", START).await, Some(Locked::Here(secs(5))));
    assert_eq!(throttle.locked(ip(1), "alice", secs(2)).await, Some(Locked::Here(secs(3))));
    assert_eq!(throttle.locked(ip(1), "alice", secs(5)).await, None, "a wait, not a lock");
    assert_eq!(throttle.locked(ip(1), "bob", START).await, None);
    throttle.failed(ip(1), "alice", secs(5)).await;
    assert_eq!(throttle.locked(ip(1), "alice", secs(5)).await, Some(Locked::Here(secs(10))), "doubled");
    let mut at = secs(15);
    for _ in 0..20 {
        throttle.failed(ip(1), "alice", at).await;
        at += Throttle::MAX_DELAY;
    }
    assert_eq!(
        throttle.locked(ip(1), "alice", at - Throttle::MAX_DELAY).await,
        Some(Locked::Here(Throttle::MAX_DELAY))
    );
}

async fn a_client_that_has_not_failed_is_never_refused(throttle: Subject) {
    for _ in 0..FREE + 3 {
        throttle.failed(ip(1), "alice", START).await;
    }
    for n in 0..Throttle::NAME_UNDER_ATTACK {
        throttle.failed(ip((n % 200) as u8 + 10), "alice", START).await;
    }
    assert!(throttle.locked(ip(1), "alice", START).await.is_some());
    assert_eq!(throttle.locked(ip(2), "alice", START).await, None, "the real alice, elsewhere, still can");
}

async fn a_name_under_attack_gives_failing_clients_no_free_tries(throttle: Subject) {
    throttle.failed(ip(1), "alice", START).await;
    assert_eq!(throttle.locked(ip(1), "alice", START).await, None, "one failure is free");
    for n in 1..Throttle::NAME_UNDER_ATTACK {
        throttle.failed(ip((n % 200) as u8 + 10), "alice", START).await;
    }
    assert_eq!(throttle.locked(ip(1), "alice", START).await, Some(Locked::Everywhere(secs(5))));
    assert_eq!(throttle.locked(ip(1), "alice", secs(5)).await, None);
    assert_eq!(throttle.locked(ip(1), "bob", START).await, None, "other names are not under attack");
}

async fn success_clears_only_that_clients_failures(throttle: Subject) {
    for _ in 0..=FREE {
        throttle.failed(ip(1), "alice", START).await;
        throttle.failed(ip(2), "alice", START).await;
    }
    throttle.succeeded(ip(2), "alice").await;
    assert_eq!(throttle.locked(ip(2), "alice", START).await, None);
    assert!(throttle.locked(ip(1), "alice", START).await.is_some());
}

async fn failures_are_forgotten_an_hour_after_the_last(throttle: Subject) {
    for _ in 0..FREE + 12 {
        throttle.failed(ip(1), "alice", START).await;
    }
    let later = START + Throttle::FORGET_AFTER;
    assert_eq!(throttle.locked(ip(1), "alice", later).await, None);
    throttle.failed(ip(1), "alice", later).await;
    assert_eq!(throttle.locked(ip(1), "alice", later).await, None, "one failure in the new run");
    for _ in 1..=FREE {
        throttle.failed(ip(1), "alice", later).await;
    }
    let locked = throttle.locked(ip(1), "alice", later + secs(1)).await;
    assert_eq!(locked, Some(Locked::Here(secs(4))), "the new run's first wait");
}

async fn an_ipv6_client_is_counted_by_its_64(throttle: Subject) {
    let v6 = |raw: &str| raw.parse::<IpAddr>().unwrap();
    for n in 0..=FREE {
        throttle.failed(v6(&format!("2001:db8:1:2::{n:x}")), "alice", START).await;
    }
    assert!(throttle.locked(v6("2001:db8:1:2:ffff::1"), "alice", START).await.is_some(), "the same /64");
    assert_eq!(throttle.locked(v6("2001:db8:1:3::1"), "alice", START).await, None, "another /64");
}

#[test]
fn the_counts_in_memory_stay_bounded_and_keep_the_waits() {
    let throttle = MemoryThrottle::with_max_runs(10);
    let start = Instant::now();
    for _ in 0..=FREE {
        throttle.failed_at(ip(1), "alice", start);
    }
    for n in 0..30u8 {
        throttle.failed_at(ip(100 + n), &format!("name{n}"), start);
    }
    let (by_client, by_name) = throttle.runs();
    assert!(by_client <= 10 && by_name <= 10, "{by_client} and {by_name} runs");
    assert!(matches!(throttle.locked_at(ip(1), "alice", start), Some(Locked::Here(_))), "the wait is kept");
}
