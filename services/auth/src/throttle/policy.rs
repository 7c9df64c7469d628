//! The rules both counts follow: which failures cost nothing, how long a client then
//! waits before its next try, when failures are forgotten, and the verdict.

use std::net::IpAddr;
use std::time::Duration;

/// Failures of one client at one name that cost nothing (a person mistyping); the
/// next one is the first that makes it wait.
pub const FREE_FAILURES: u32 = 4;
/// The wait after the first failure beyond the free ones; each further failure
/// doubles it, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// The longest wait between two tries of one client at one name.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten this long after the last one (a good password forgets that
/// client's at once).
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Failures at one name from every client together past which the name is under
/// attack: a client that has failed at it gets no free tries (so guesses spread over
/// many addresses slow down too), while a client that has not failed is still heard.
pub const NAME_UNDER_ATTACK: u32 = 50;

/// Why a log-in is refused before the password is checked, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// This client failed at this name too often: it waits before its next try.
    Here(Duration),
    /// The name is under attack from many clients, and this one has failed at it.
    Everywhere(Duration),
}

/// The failures counted under one key: how many, and how long ago the last one was.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub failures: u32,
    pub since_last: Duration,
}

/// The verdict for a client with its `client` run at a name, and the name's run from
/// every client. A client with no current failure is never refused.
pub fn verdict(client: Option<Run>, name: Option<Run>) -> Option<Locked> {
    let current = |run: &Run| run.since_last < FORGET_AFTER && run.failures > 0;
    let client = client.filter(current)?;
    let wait = |free: u32| {
        let beyond = client.failures.checked_sub(free).filter(|beyond| *beyond > 0)?;
        delay(beyond).checked_sub(client.since_last).filter(|wait| !wait.is_zero())
    };
    if name.filter(current).is_some_and(|name| name.failures >= NAME_UNDER_ATTACK)
        && let Some(wait) = wait(0)
    {
        return Some(Locked::Everywhere(wait));
    }
    wait(FREE_FAILURES).map(Locked::Here)
}

/// The wait after the `beyond`-th failure past the free ones (1 is the first).
pub fn delay(beyond: u32) -> Duration {
    let doublings = beyond.saturating_sub(1).min(31);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// How a client is counted: an IPv4 address alone, an IPv6 address by its /64 (one
/// machine commonly holds a whole /64, and must not get fresh tries from each).
pub fn client_key(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => {
            let prefix = u128::from(ip) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}
