//! Rate limits and caps against abuse: one [`Limits`] config shared by every service
//! (each uses the limits that concern it), and [`Limiter`], a keyed token bucket
//! (governor's GCRA) that refuses with `429 Too Many Requests`, `Retry-After` and the
//! JSON error.
//!
//! Every limit is a setting with a default that a person chatting never meets;
//! `WEAPROUS_RATE_LIMITS=off` turns every one off (benchmarks and load tests). The
//! buckets live in the memory of each process: with several replicas of a service
//! (cluster mode), each replica counts on its own, so a client spread over `n`
//! replicas gets up to `n` times a limit.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};
use crate::error::ApiError;

/// The variable that switches every rate limit off: `WEAPROUS_RATE_LIMITS=off`.
pub const SWITCH_ENV: &str = config::RATE_LIMITS_SWITCH;

/// The rate limits and caps, under `[limits]` in a service's TOML file,
/// `WEAPROUS_LIMITS__<NAME>` or `<PREFIX>_LIMITS__<NAME>` (e.g.
/// `PEER_LIMITS__STREAMS_PER_USER=50`). A limit set to 0 is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// `false` turns every limit off (`WEAPROUS_RATE_LIMITS=off`; `on`/`off`,
    /// `true`/`false`, `1`/`0` and `yes`/`no` are understood).
    #[serde(deserialize_with = "switch")]
    pub enabled: bool,
    /// Messages a user may send per second, channel and direct each (tracker: channel
    /// messages; peer: direct messages and broadcasts), sustained...
    pub messages_per_sec: u32,
    /// ...and at once, after a quiet while.
    pub message_burst: u32,
    /// Direct messages from one user to one recipient per minute (at once, too).
    pub direct_to_one_per_min: u32,
    /// Channels a user may create per hour (at once, too).
    pub channels_per_hour: u32,
    /// Event streams (open chat tabs) one user may have open on one peer at once.
    pub streams_per_user: u32,
    /// Sign-ups from one client address per hour (at once, too).
    pub sign_ups_per_client_per_hour: u32,
    /// Sign-ups from everyone per minute (at once, too), on one auth replica.
    pub sign_ups_per_min: u32,
    /// Searches a user may run per minute (at once, too), on one peer.
    pub searches_per_min: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            messages_per_sec: 10,
            message_burst: 30,
            direct_to_one_per_min: 60,
            channels_per_hour: 30,
            streams_per_user: 20,
            sign_ups_per_client_per_hour: 30,
            sign_ups_per_min: 120,
            searches_per_min: 120,
        }
    }
}

impl Limits {
    /// The rate limits from the environment alone (`WEAPROUS_LIMITS__<NAME>` and
    /// `WEAPROUS_RATE_LIMITS`), for a runner that builds its services' configs in code
    /// (`weaprous up`).
    pub fn from_env() -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct WithLimits {
            #[serde(default)]
            limits: Limits,
        }
        config::extract::<WithLimits>(&config::rate_limits_from_env()).map(|with| with.limits)
    }

    /// Every limit off.
    pub fn off() -> Self {
        Self { enabled: false, ..Self::default() }
    }

    /// `count` when limits are on and it is not 0.
    pub fn cap(&self, count: u32) -> Option<u32> {
        (self.enabled && count > 0).then_some(count)
    }

    /// A bucket of `burst` that refills at `count` per `period`; `None` (no limit)
    /// when limits are off or either number is 0.
    pub fn quota(&self, count: u32, period: Duration, burst: u32) -> Option<Quota> {
        let (count, burst) = (self.cap(count)?, NonZeroU32::new(burst)?);
        Some(Quota::with_period(period / count)?.allow_burst(burst))
    }
}

/// A switch written as a boolean or as `on`/`off` (environment variables are text).
fn switch<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Switch {
        Bool(bool),
        Number(u64),
        Text(String),
    }
    match Switch::deserialize(deserializer)? {
        Switch::Bool(on) => Ok(on),
        Switch::Number(number) => Ok(number != 0),
        Switch::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Ok(true),
            "off" | "false" | "no" | "0" => Ok(false),
            other => Err(serde::de::Error::custom(format!("expected `on` or `off`, not `{other}`"))),
        },
    }
}

/// A token bucket per key (a user, a client address, a pair); `None` quota: no limit.
/// Cloning shares the buckets.
#[derive(Clone)]
pub struct Limiter<K: Hash + Eq + Clone> {
    buckets: Option<Arc<DefaultKeyedRateLimiter<K>>>,
    /// What is limited, for the error: "messages".
    what: &'static str,
    /// Checks since buckets that are full again were last dropped.
    checks: Arc<AtomicU32>,
}

/// How many checks between sweeps of the buckets that are full again (idle keys), so
/// the map does not grow with every key ever seen.
const SWEEP_EVERY: u32 = 4096;

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(quota: Option<Quota>, what: &'static str) -> Self {
        Self {
            buckets: quota.map(|quota| Arc::new(DefaultKeyedRateLimiter::keyed(quota))),
            what,
            checks: Arc::default(),
        }
    }

    /// Takes one token of `key`'s bucket, or refuses with 429 and how long to wait.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(buckets) = &self.buckets else { return Ok(()) };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            buckets.retain_recent();
        }
        buckets.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            too_many(format!("too many {}; slow down", self.what), wait)
        })
    }
}

/// A `429` with `Retry-After` (whole seconds, at least 1) and the JSON error.
pub fn too_many(message: String, wait: Duration) -> ApiError {
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::RateLimited { message, retry_after: retry_after.max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_with_a_wait_and_keys_are_apart() {
        let limits = Limits::default();
        let limiter = Limiter::new(limits.quota(1, Duration::from_secs(60), 3), "things");
        for _ in 0..3 {
            limiter.check(&"alice").unwrap();
        }
        match limiter.check(&"alice") {
            Err(ApiError::RateLimited { retry_after, message }) => {
                assert!((1..=60).contains(&retry_after), "{retry_after}");
                assert_eq!(message, "too many things; slow down");
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        limiter.check(&"bob").unwrap();
    }

    #[test]
    fn limits_off_or_zero_are_no_limit() {
        let off = Limiter::new(Limits::off().quota(1, Duration::from_secs(60), 1), "things");
        let zero = Limiter::new(Limits::default().quota(0, Duration::from_secs(60), 1), "things");
        for _ in 0..100 {
            off.check(&1).unwrap();
            zero.check(&1).unwrap();
        }
        assert_eq!(Limits::off().cap(5), None);
        assert_eq!(Limits::default().cap(5), Some(5));
    }
}
