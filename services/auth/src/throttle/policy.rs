//! The rules both counts follow: how many failures lock a name, for how long, and
//! the verdict a locked log-in gets.

use std::time::Duration;

/// Failures of one client at one name that lock that client out of it.
pub const MAX_FAILURES: u32 = 5;
/// Failures at one name from every client together that lock it for everyone.
pub const MAX_FAILURES_PER_NAME: u32 = 50;
/// How long a window of failures counts, from its first failure.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Why a log-in is refused before the password is checked, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Too many failures for this name from this client.
    Here(Duration),
    /// Too many failures for this name from all clients together.
    Everywhere(Duration),
}

/// How long a window of `count` failures, `elapsed` old, still locks at `max`.
pub(super) fn wait_left(count: u32, elapsed: Duration, max: u32) -> Option<Duration> {
    (count >= max && elapsed < WINDOW).then(|| WINDOW - elapsed)
}
