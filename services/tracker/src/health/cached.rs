//! The answer of a check, reused for a while: frequent probes of `/readyz` cost at
//! most one database query per [`DATABASE_CHECK_FRESH_FOR`].

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long the answer of a database check is reused.
pub const DATABASE_CHECK_FRESH_FOR: Duration = Duration::from_secs(2);

/// The last answer of a check, reused while it is fresh.
pub struct CachedCheck {
    fresh_for: Duration,
    last: Mutex<Option<(Instant, bool)>>,
}

impl CachedCheck {
    pub fn new(fresh_for: Duration) -> Self {
        Self { fresh_for, last: Mutex::new(None) }
    }

    /// The last answer if it is fresh, else the answer of `check`, kept.
    pub async fn answer<F: Future<Output = bool>>(&self, check: impl FnOnce() -> F) -> bool {
        // Held across the check, so probes that arrive while one runs wait for its
        // answer instead of each sending a query of their own.
        let mut last = self.last.lock().await;
        match *last {
            Some((at, answer)) if at.elapsed() < self.fresh_for => answer,
            _ => {
                let answer = check().await;
                *last = Some((Instant::now(), answer));
                answer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_check_is_run_once_while_its_answer_is_fresh_then_again() {
        let cached = CachedCheck::new(Duration::from_secs(2));
        let runs = AtomicUsize::new(0);
        let check = |answer: bool| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::Relaxed);
                answer
            }
        };
        assert!(cached.answer(check(true)).await);
        tokio::time::advance(Duration::from_millis(1900)).await;
        assert!(cached.answer(check(false)).await, "still the first answer");
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!cached.answer(check(false)).await, "a new answer once stale");
        assert!(!cached.answer(check(true)).await, "and that one is kept");
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    }
}
