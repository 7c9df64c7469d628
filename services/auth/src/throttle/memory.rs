//! The counts of failed log-ins of one replica, in memory (the embedded backend).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::policy::{self, Locked, Run};

/// How often the failures that are forgotten are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Failed log-ins not yet forgotten. Cloning is a reference-count bump.
#[derive(Clone, Default)]
pub struct MemoryThrottle {
    inner: Arc<Mutex<Failures>>,
}

#[derive(Default)]
struct Failures {
    by_client: HashMap<(String, String), Record>,
    by_name: HashMap<String, Record>,
    swept_at: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl MemoryThrottle {
    /// A good password clears this client's failures for the name (not the others').
    pub fn succeeded(&self, client: IpAddr, username: &str) {
        self.lock().by_client.remove(&(policy::client_key(client), username.to_lowercase()));
    }

    pub(super) fn locked_at(&self, client: IpAddr, username: &str, now: Instant) -> Option<Locked> {
        let name = username.to_lowercase();
        let failures = self.lock();
        let run =
            |record: &Record| Run { failures: record.failures, since_last: now.saturating_duration_since(record.last) };
        let client = failures.by_client.get(&(policy::client_key(client), name.clone())).map(run);
        policy::verdict(client, failures.by_name.get(&name).map(run))
    }

    pub(super) fn failed_at(&self, client: IpAddr, username: &str, now: Instant) {
        let name = username.to_lowercase();
        let mut failures = self.lock();
        let current = |record: &Record| now.saturating_duration_since(record.last) < policy::FORGET_AFTER;
        if failures.swept_at.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY) {
            failures.by_client.retain(|_, record| current(record));
            failures.by_name.retain(|_, record| current(record));
            failures.swept_at = Some(now);
        }
        let record = failures
            .by_client
            .entry((policy::client_key(client), name.clone()))
            .or_insert(Record { failures: 0, last: now });
        let live = current(record);
        count(record, now, live);
        let record = failures.by_name.entry(name).or_insert(Record { failures: 0, last: now });
        let live = current(record);
        count(record, now, live);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One more failure: a run that was forgotten starts again at one.
fn count(record: &mut Record, now: Instant, current: bool) {
    record.failures = if current { record.failures.saturating_add(1) } else { 1 };
    record.last = now;
}
