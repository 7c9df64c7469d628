//! Exponential backoff with jitter, for retrying calls to other services.

use std::time::Duration;

/// Doubles from `min` to `max`, each wait randomised by ±20 % so that many clients
/// retrying at once spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, current: min }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        jitter(base)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// The wait before attempt `attempt` (0-based) of a schedule that doubles from `min`
/// up to `max`, with jitter.
pub fn delay_for(attempt: u32, min: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    jitter(min.saturating_mul(factor).min(max))
}

fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
    // 0.8 to 1.2 times the base.
    base.mul_f64(0.8 + f64::from(byte[0]) / 255.0 * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let waits: Vec<_> = (0..4).map(|_| backoff.next_wait().as_millis()).collect();
        assert!((80..=120).contains(&waits[0]), "{waits:?}");
        assert!((160..=240).contains(&waits[1]), "{waits:?}");
        assert!((320..=480).contains(&waits[2]) && (320..=480).contains(&waits[3]), "{waits:?}");
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(120));
        assert!(delay_for(30, Duration::from_secs(1), Duration::from_secs(60)) <= Duration::from_secs(72));
    }
}
