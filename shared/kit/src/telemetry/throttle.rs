//! Warnings about a lasting condition (a collector that is down, a name that does not
//! resolve), logged once, then once per interval with how many were held back.

use std::time::{Duration, Instant};

/// How often a lasting condition is logged again.
pub const WARN_EVERY: Duration = Duration::from_secs(300);

/// Decides which occurrences of a repeated warning are logged. Not synchronized:
/// keep it behind the lock that guards the condition.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    /// When the last warning was logged, while the condition lasts.
    warned_at: Option<Instant>,
    /// Occurrences since then that were not logged.
    held_back: u64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Self {
        Self { every, warned_at: None, held_back: 0 }
    }

    /// Counts one occurrence. `Some(held back)` when this one is to be logged: the
    /// first of a run, and then one per interval, with the number skipped since.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.warned_at {
            Some(warned_at) if now.duration_since(warned_at) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.warned_at = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }

    /// The condition cleared; true when a warning had been logged (so that its end
    /// may be logged once).
    pub fn clear(&mut self) -> bool {
        self.held_back = 0;
        self.warned_at.take().is_some()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(WARN_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_condition_is_logged_once_then_once_per_interval_with_a_count() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(60));
        assert_eq!(throttle.hit(start), Some(0));
        for second in 1..60 {
            assert_eq!(throttle.hit(start + Duration::from_secs(second)), None);
        }
        assert_eq!(throttle.hit(start + Duration::from_secs(60)), Some(59));
        assert_eq!(throttle.hit(start + Duration::from_secs(61)), None);
        assert!(throttle.clear());
        assert!(!throttle.clear());
        assert_eq!(throttle.hit(start + Duration::from_secs(62)), Some(0), "a new run warns at once");
    }
}
