//! The counts of failed log-ins of one replica, in memory (the embedded backend).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::policy::{self, Locked, Run};

/// How often the failures that are forgotten are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The most runs of failures kept of each kind (per client and name, per name): about
/// 10 MB each. A guesser who makes more (many names from many addresses within the
/// hour) first pushes out the runs that impose no wait yet; past that, new runs are
/// not counted until room is made.
const MAX_RUNS: usize = 100_000;

/// Failed log-ins not yet forgotten. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct MemoryThrottle {
    inner: Arc<Mutex<Failures>>,
}

struct Failures {
    by_client: HashMap<(String, String), Record>,
    by_name: HashMap<String, Record>,
    swept_at: Option<Instant>,
    max_runs: usize,
}

impl Default for MemoryThrottle {
    fn default() -> Self {
        Self::with_max_runs(MAX_RUNS)
    }
}

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl MemoryThrottle {
    /// Counts that keep at most `max_runs` runs of each kind.
    pub fn with_max_runs(max_runs: usize) -> Self {
        let failures = Failures { by_client: HashMap::new(), by_name: HashMap::new(), swept_at: None, max_runs };
        Self { inner: Arc::new(Mutex::new(failures)) }
    }

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
        let max_runs = failures.max_runs;
        count(&mut failures.by_client, (policy::client_key(client), name.clone()), now, max_runs);
        count(&mut failures.by_name, name, now, max_runs);
    }

    /// How many runs are kept, per client and name and per name.
    #[cfg(test)]
    pub(super) fn runs(&self) -> (usize, usize) {
        let failures = self.lock();
        (failures.by_client.len(), failures.by_name.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One more failure under `key`: a run that was forgotten starts again at one. A new
/// run when `runs` is full first makes room (see [`MAX_RUNS`]), or is not counted.
fn count<K: std::hash::Hash + Eq>(runs: &mut HashMap<K, Record>, key: K, now: Instant, max_runs: usize) {
    let current = |record: &Record| now.saturating_duration_since(record.last) < policy::FORGET_AFTER;
    if runs.len() >= max_runs && !runs.contains_key(&key) {
        runs.retain(|_, record| current(record) && record.failures > policy::FREE_FAILURES);
        if runs.len() >= max_runs {
            tracing::warn!(runs = runs.len(), "too many failed log-ins to count; a new one is not counted");
            return;
        }
    }
    let record = runs.entry(key).or_insert(Record { failures: 0, last: now });
    record.failures = if current(record) { record.failures.saturating_add(1) } else { 1 };
    record.last = now;
}
