//! The counts of failed log-ins of one replica, in memory (the embedded backend).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::policy::{self, Locked, wait_left};

/// Failed log-ins in the current window. Cloning is a reference-count bump.
#[derive(Clone, Default)]
pub struct MemoryThrottle {
    inner: Arc<Mutex<Failures>>,
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

impl MemoryThrottle {
    /// A good password clears this client's failures for the name (not the others').
    pub fn succeeded(&self, client: IpAddr, username: &str) {
        self.lock().by_client.remove(&(client, username.to_lowercase()));
    }

    pub(super) fn locked_at(&self, client: IpAddr, username: &str, now: Instant) -> Option<Locked> {
        let name = username.to_lowercase();
        let failures = self.lock();
        let left =
            |window: &Window, max: u32| wait_left(window.count, now.saturating_duration_since(window.since), max);
        if let Some(wait) = failures.by_name.get(&name).and_then(|window| left(window, policy::MAX_FAILURES_PER_NAME)) {
            return Some(Locked::Everywhere(wait));
        }
        failures.by_client.get(&(client, name)).and_then(|window| left(window, policy::MAX_FAILURES)).map(Locked::Here)
    }

    pub(super) fn failed_at(&self, client: IpAddr, username: &str, now: Instant) {
        let name = username.to_lowercase();
        let mut failures = self.lock();
        let current = |window: &Window| now.saturating_duration_since(window.since) < policy::WINDOW;
        failures.by_client.retain(|_, window| current(window));
        failures.by_name.retain(|_, window| current(window));
        failures.by_client.entry((client, name.clone())).or_insert(Window { count: 0, since: now }).count += 1;
        failures.by_name.entry(name).or_insert(Window { count: 0, since: now }).count += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
