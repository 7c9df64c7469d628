//! How often typing notices are forwarded: at most one per user and partner every
//! [`TYPING_EVERY`]; the excess is answered but dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wire::names::Username;

/// At most one typing notice per user and partner is forwarded per this long.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);
/// Entries the throttle keeps before it forgets the stale ones.
const TYPING_REMEMBERED: usize = 10_000;

/// When each user last had a typing notice forwarded to each partner.
#[derive(Default)]
pub struct TypingThrottle {
    last: Mutex<HashMap<(Username, Username), Instant>>,
}

impl TypingThrottle {
    /// Whether a notice from `from` to `to` goes now (and counts it).
    pub fn allow(&self, from: &Username, to: &Username) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.len() >= TYPING_REMEMBERED {
            last.retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
        }
        let key = (from.clone(), to.clone());
        if last.get(&key).is_some_and(|at| now.duration_since(*at) < TYPING_EVERY) {
            return false;
        }
        last.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_typing_notice_per_user_and_partner_goes_every_two_seconds() {
        let throttle = TypingThrottle::default();
        let (alice, bob, carol) =
            (Username::parse("alice").unwrap(), Username::parse("bob").unwrap(), Username::parse("carol").unwrap());
        assert!(throttle.allow(&alice, &bob));
        assert!(!throttle.allow(&alice, &bob), "the second within 2 s is dropped");
        assert!(throttle.allow(&alice, &carol), "another partner is counted apart");
        assert!(throttle.allow(&bob, &alice), "and so is the other way");
    }
}
