//! Failed log-ins, counted so that passwords cannot be guessed at the speed of the
//! network, without letting a stranger lock a user out.
//!
//! Failures count per client and name: after [`Throttle::MAX_FAILURES`] within
//! [`Throttle::WINDOW`], that client gets no more tries at that name for the rest of
//! the window. Others still can, so failing on purpose does not keep the user out.
//! Failures also count per name from every client together: past
//! [`Throttle::MAX_FAILURES_PER_NAME`], the name is locked for everyone, which bounds
//! a guesser who spreads over many addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed log-ins in the current window. Cloning is a reference-count bump.
#[derive(Clone, Default)]
pub struct Throttle {
    inner: Arc<Mutex<Failures>>,
}

/// Why a log-in is refused before the password is checked, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Too many failures for this name from this client.
    Here(Duration),
    /// Too many failures for this name from all clients together.
    Everywhere(Duration),
}

#[derive(Default)]
struct Failures {
    by_client: HashMap<(IpAddr, String), Window>,
    by_name: HashMap<String, Window>,
}

#[derive(Clone, Copy)]
struct Window {
    count: u32,
    since: Instant,
}

impl Throttle {
    pub const MAX_FAILURES: u32 = 5;
    pub const MAX_FAILURES_PER_NAME: u32 = 50;
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// Whether `client` must wait before trying `username` again.
    pub fn locked(&self, client: IpAddr, username: &str) -> Option<Locked> {
        self.locked_at(client, username, Instant::now())
    }

    pub fn failed(&self, client: IpAddr, username: &str) {
        self.failed_at(client, username, Instant::now());
    }

    /// A good password clears this client's failures for the name (not the others').
    pub fn succeeded(&self, client: IpAddr, username: &str) {
        self.lock().by_client.remove(&(client, username.to_lowercase()));
    }

    fn locked_at(&self, client: IpAddr, username: &str, now: Instant) -> Option<Locked> {
        let name = username.to_lowercase();
        let failures = self.lock();
        let left = |window: &Window, max: u32| {
            let elapsed = now.saturating_duration_since(window.since);
            (window.count >= max && elapsed < Self::WINDOW).then(|| Self::WINDOW - elapsed)
        };
        if let Some(wait) = failures.by_name.get(&name).and_then(|window| left(window, Self::MAX_FAILURES_PER_NAME)) {
            return Some(Locked::Everywhere(wait));
        }
        failures.by_client.get(&(client, name)).and_then(|window| left(window, Self::MAX_FAILURES)).map(Locked::Here)
    }

    fn failed_at(&self, client: IpAddr, username: &str, now: Instant) {
        let name = username.to_lowercase();
        let mut failures = self.lock();
        let current = |window: &Window| now.saturating_duration_since(window.since) < Self::WINDOW;
        failures.by_client.retain(|_, window| current(window));
        failures.by_name.retain(|_, window| current(window));
        failures.by_client.entry((client, name.clone())).or_insert(Window { count: 0, since: now }).count += 1;
        failures.by_name.entry(name).or_insert(Window { count: 0, since: now }).count += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_client_that_keeps_failing_is_locked_out_of_that_name_only() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..Throttle::MAX_FAILURES {
            assert_eq!(throttle.locked_at(ip(1), "alice", start), None);
            throttle.failed_at(ip(1), "alice", start);
        }
        assert!(matches!(throttle.locked_at(ip(1), "ALICE", start), Some(Locked::Here(_))));
        assert_eq!(throttle.locked_at(ip(2), "alice", start), None, "the real alice, elsewhere, still can");
        assert_eq!(throttle.locked_at(ip(1), "bob", start), None);
        assert_eq!(throttle.locked_at(ip(1), "alice", start + Throttle::WINDOW), None, "until the window ends");
    }

    #[test]
    fn failures_from_many_clients_lock_the_name_for_everyone() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..Throttle::MAX_FAILURES_PER_NAME {
            throttle.failed_at(ip((n % 250) as u8), "alice", start);
        }
        assert!(matches!(throttle.locked_at(ip(251), "alice", start), Some(Locked::Everywhere(_))));
        let later = start + Throttle::WINDOW;
        throttle.failed_at(ip(1), "bob", later);
        assert_eq!(throttle.locked_at(ip(251), "alice", later), None, "old failures are dropped");
    }

    #[test]
    fn success_clears_only_that_clients_failures() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..Throttle::MAX_FAILURES {
            throttle.failed_at(ip(1), "alice", start);
            throttle.failed_at(ip(2), "alice", start);
        }
        throttle.succeeded(ip(2), "alice");
        assert_eq!(throttle.locked_at(ip(2), "alice", start), None);
        assert!(throttle.locked_at(ip(1), "alice", start).is_some());
    }
}
