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

/// When each user last had a typing notice forwarded to each partner. Bounded: past
/// [`TYPING_REMEMBERED`] entries the stale ones are forgotten (at most once per
/// [`TYPING_EVERY`], so a flood costs no more than one sweep per period), and while
/// it is still full of fresh ones new pairs are dropped.
#[derive(Default)]
pub struct TypingThrottle {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last: HashMap<(Username, Username), Instant>,
    swept: Option<Instant>,
}

impl TypingThrottle {
    /// Whether a notice from `from` to `to` goes now (and counts it).
    pub fn allow(&self, from: &Username, to: &Username) -> bool {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (from.clone(), to.clone());
        if inner.last.get(&key).is_some_and(|at| now.duration_since(*at) < TYPING_EVERY) {
            return false;
        }
        if inner.last.len() >= TYPING_REMEMBERED && !inner.last.contains_key(&key) {
            if inner.swept.is_some_and(|swept| now.duration_since(swept) < TYPING_EVERY) {
                return false;
            }
            inner.swept = Some(now);
            inner.last.retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
            if inner.last.len() >= TYPING_REMEMBERED {
                return false;
            }
        }
        inner.last.insert(key, now);
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

    #[test]
    fn a_full_throttle_drops_new_pairs_instead_of_growing() {
        let throttle = TypingThrottle::default();
        let alice = Username::parse("alice").unwrap();
        for i in 0..TYPING_REMEMBERED {
            assert!(throttle.allow(&alice, &Username::parse(&format!("u{i}")).unwrap()));
        }
        assert!(!throttle.allow(&alice, &Username::parse("one-more").unwrap()), "every entry is fresh");
        assert!(!throttle.allow(&alice, &Username::parse("u0").unwrap()), "and known pairs still wait");
        let size = throttle.inner.lock().unwrap().last.len();
        assert_eq!(size, TYPING_REMEMBERED);
    }
}
