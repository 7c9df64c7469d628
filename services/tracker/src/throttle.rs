//! [`Throttle`]: at most one event per key per period; the excess is dropped quietly
//! (typing indicators, where a 429 would only be noise).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys whose last pass is older than this many periods are forgotten when the map
/// grows, so it stays bounded by the keys active lately.
const PRUNE_AT: usize = 4096;

/// Lets one event per key through per period.
pub struct Throttle<K> {
    period: Duration,
    last: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(period: Duration) -> Self {
        Self { period, last: Mutex::new(HashMap::new()) }
    }

    /// Whether an event for `key` may pass now (and, if so, counts it).
    pub fn pass(&self, key: &K) -> bool {
        self.pass_at(key, Instant::now())
    }

    fn pass_at(&self, key: &K, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.get(key).is_some_and(|at| now.duration_since(*at) < self.period) {
            return false;
        }
        if last.len() >= PRUNE_AT {
            last.retain(|_, at| now.duration_since(*at) < self.period);
        }
        last.insert(key.clone(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_key_per_period_passes() {
        let throttle = Throttle::new(Duration::from_secs(2));
        let start = Instant::now();
        assert!(throttle.pass_at(&"a", start));
        assert!(!throttle.pass_at(&"a", start + Duration::from_millis(1999)));
        assert!(throttle.pass_at(&"b", start + Duration::from_millis(10)), "another key");
        assert!(throttle.pass_at(&"a", start + Duration::from_secs(2)));
    }
}
