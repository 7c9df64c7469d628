//! Backends and the policies that spread requests over them.
//!
//! A vhost's backends are the resolved addresses of its upstreams, sorted. The policy
//! chooses where to start ([`Vhost::pick`]); [`Attempts`] then walks the backends
//! from there, backends that are up first, then (as a last resort, since they may have
//! come back) the ones marked down, each at most once. So a request is retried on the
//! next backend when one refuses, and the walk always ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::HeaderValue;
use http::uri::Authority;

use crate::config::paths::PathRules;
use crate::config::vhost::{HttpsRules, Policy, Upstream};
use crate::metrics::{BackendStats, VhostStats};

/// The cookie that pins a browser to a backend under the `sticky` policy.
pub const STICKY_COOKIE: &str = "weaprous_backend";

/// One backend address. Shared by every vhost that uses it, and kept across reloads
/// and re-resolution, so its health and load survive both.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// `ip:port`, ready to put in a request URI.
    pub(crate) authority: Authority,
    /// The opaque value of the sticky cookie: a hash of the address, so the cookie
    /// does not show internal addresses.
    pub(crate) sticky_id: Box<str>,
    /// The whole `Set-Cookie` value that pins a browser here.
    pub(crate) set_cookie: HeaderValue,
    up: AtomicBool,
    in_flight: AtomicUsize,
    /// Its metrics.
    pub(crate) stats: BackendStats,
}

/// A vhost with its resolved backends. Immutable: a reload or a change in DNS builds
/// a new one, which keeps the round-robin counter.
#[derive(Debug)]
pub struct Vhost {
    pub name: Box<str>,
    pub policy: Policy,
    pub upstreams: Vec<Upstream>,
    pub backends: Box<[Arc<Backend>]>,
    /// The round-robin counter: one per vhost, shared by every worker's copy of it and
    /// kept across reloads, so successive requests alternate whichever worker takes
    /// them, as users of the original expect.
    pub(crate) next: Arc<AtomicUsize>,
    /// Which paths the vhost passes on (`allow` and `deny`).
    pub paths: PathRules,
    /// `redirect_to_https`: plain requests get `308` to HTTPS.
    pub https_redirect: bool,
    /// The `Strict-Transport-Security` value of responses over HTTPS (`hsts`).
    pub hsts: Option<Box<[u8]>>,
    /// Its metrics (the edge's view of it).
    pub(crate) stats: VhostStats,
}

/// Where a request starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub first: usize,
    /// The sticky cookie named this backend, so no new cookie is needed.
    pub pinned: bool,
}

/// Counts a request against a backend until dropped (with the response body).
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

// === impl Backend ===

impl Backend {
    /// A backend whose metrics are registered nowhere.
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_stats(addr, BackendStats::detached())
    }

    pub fn with_stats(addr: SocketAddr, stats: BackendStats) -> Self {
        let text = addr.to_string();
        // A SocketAddr always prints as a valid authority.
        let authority = Authority::try_from(text.as_str()).expect("a socket address is an authority");
        let sticky_id = sticky_id(&text);
        let cookie = format!("{STICKY_COOKIE}={sticky_id}; Path=/; HttpOnly; SameSite=Lax");
        // Hex digits and fixed ASCII only.
        let set_cookie = HeaderValue::try_from(cookie).expect("the cookie is ASCII");
        Self {
            addr,
            authority,
            sticky_id: sticky_id.into(),
            set_cookie,
            up: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            stats,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Marks the backend down; true when it was up.
    pub fn mark_down(&self) -> bool {
        self.stats.set_up(false);
        self.up.swap(false, Ordering::Relaxed)
    }

    /// Marks the backend up; true when it was down.
    pub fn mark_up(&self) -> bool {
        self.stats.set_up(true);
        !self.up.swap(true, Ordering::Relaxed)
    }

    /// Requests in flight (counted for `least-conn` vhosts only).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn sticky_id(&self) -> &str {
        &self.sticky_id
    }
}

/// FNV-1a over the address: stable across restarts and Rust versions, so a pinned
/// browser stays pinned when the proxy restarts.
fn sticky_id(address: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"weaprous:".iter().chain(address.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

// === impl Vhost ===

impl Vhost {
    pub fn new(name: &str, policy: Policy, upstreams: Vec<Upstream>, backends: Vec<Arc<Backend>>) -> Self {
        Self::with_counter(name, policy, upstreams, backends, Arc::default())
    }

    /// A vhost whose round-robin counter is `next` (shared with other copies of it).
    pub fn with_counter(
        name: &str,
        policy: Policy,
        upstreams: Vec<Upstream>,
        backends: Vec<Arc<Backend>>,
        next: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            name: name.into(),
            policy,
            upstreams,
            backends: backends.into(),
            next,
            paths: PathRules::default(),
            https_redirect: false,
            hsts: None,
            stats: VhostStats::detached(),
        }
    }

    /// The same vhost with these path rules.
    pub fn with_paths(self, paths: PathRules) -> Self {
        Self { paths, ..self }
    }

    /// The same vhost with these HTTPS rules.
    pub fn with_https(self, rules: &HttpsRules) -> Self {
        let hsts = rules.hsts_max_age_secs.map(|seconds| format!("max-age={seconds}").into_bytes().into_boxed_slice());
        Self { https_redirect: rules.redirect, hsts, ..self }
    }

    /// The same vhost, counting its requests in `stats`.
    pub fn with_stats(self, stats: VhostStats) -> Self {
        Self { stats, ..self }
    }

    /// Chooses the first backend to try, or `None` when the vhost has no backend.
    pub fn pick(&self, sticky_id: Option<&str>) -> Option<Pick> {
        let count = self.backends.len();
        if count == 0 {
            return None;
        }
        if count == 1 {
            return Some(Pick { first: 0, pinned: sticky_id == Some(self.backends[0].sticky_id()) });
        }
        match self.policy {
            Policy::RoundRobin => Some(Pick { first: self.round_robin(), pinned: false }),
            Policy::Sticky => {
                let pinned = sticky_id.and_then(|id| {
                    self.backends.iter().position(|backend| backend.is_up() && &*backend.sticky_id == id)
                });
                Some(match pinned {
                    Some(first) => Pick { first, pinned: true },
                    None => Pick { first: self.round_robin(), pinned: false },
                })
            }
            Policy::LeastConn => {
                let start = self.round_robin();
                let first = (0..count)
                    .map(|offset| (start + offset) % count)
                    .min_by_key(|&index| {
                        let backend = &self.backends[index];
                        (!backend.is_up(), backend.in_flight())
                    })
                    .unwrap_or(start);
                Some(Pick { first, pinned: false })
            }
        }
    }

    fn round_robin(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len()
    }

    /// The backends to try, in order, starting at `first`.
    pub fn attempts(&self, first: usize) -> Attempts<'_> {
        Attempts { backends: &self.backends, first, step: 0, tried: 0 }
    }

    /// Whether any backend is up.
    pub fn any_up(&self) -> bool {
        self.backends.iter().any(|backend| backend.is_up())
    }
}

/// Walks the backends: those up, from `first` on, then those still untried.
#[derive(Debug)]
pub struct Attempts<'a> {
    backends: &'a [Arc<Backend>],
    first: usize,
    /// Steps taken: the first `len` look at backends that are up, the next `len` at
    /// the rest.
    step: usize,
    /// Backends already yielded, by index (the first 64; more are tried at most twice).
    tried: u64,
}

impl<'a> Iterator for Attempts<'a> {
    type Item = &'a Arc<Backend>;

    fn next(&mut self) -> Option<Self::Item> {
        let count = self.backends.len();
        while self.step < 2 * count {
            let first_pass = self.step < count;
            let index = (self.first + self.step) % count;
            self.step += 1;
            let bit = if index < 64 { 1u64 << index } else { 0 };
            let backend = &self.backends[index];
            let wanted = if first_pass { backend.is_up() } else { self.tried & bit == 0 && !backend.is_up() };
            if wanted {
                self.tried |= bit;
                return Some(backend);
            }
        }
        None
    }
}

// === impl InFlight ===

impl InFlight {
    pub fn start(backend: &Arc<Backend>) -> Self {
        backend.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(backend.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vhost(policy: Policy, ports: &[u16]) -> Vhost {
        let backends =
            ports.iter().map(|port| Arc::new(Backend::new(SocketAddr::from(([127, 0, 0, 1], *port))))).collect();
        Vhost::new("test", policy, Vec::new(), backends)
    }

    fn order(vhost: &Vhost, first: usize) -> Vec<u16> {
        vhost.attempts(first).map(|backend| backend.addr.port()).collect()
    }

    #[test]
    fn round_robin_rotates_per_vhost() {
        let vhost = vhost(Policy::RoundRobin, &[1, 2, 3]);
        let firsts: Vec<_> = (0..6).map(|_| vhost.pick(None).unwrap().first).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn attempts_try_backends_that_are_up_first_then_the_rest_once() {
        let vhost = vhost(Policy::RoundRobin, &[1, 2, 3]);
        assert_eq!(order(&vhost, 1), [2, 3, 1]);
        vhost.backends[2].mark_down();
        assert_eq!(order(&vhost, 1), [2, 1, 3]);
        for backend in vhost.backends.iter() {
            backend.mark_down();
        }
        assert_eq!(order(&vhost, 0), [1, 2, 3]);
    }

    #[test]
    fn a_backend_marked_down_while_walking_is_not_tried_twice() {
        let vhost = vhost(Policy::RoundRobin, &[1, 2]);
        let mut attempts = vhost.attempts(0);
        let first = attempts.next().unwrap();
        first.mark_down();
        assert_eq!(attempts.next().unwrap().addr.port(), 2);
        assert!(attempts.next().is_none());
    }

    #[test]
    fn sticky_follows_the_cookie_while_its_backend_is_up() {
        let vhost = vhost(Policy::Sticky, &[1, 2, 3]);
        let id = vhost.backends[2].sticky_id().to_owned();
        assert_eq!(vhost.pick(Some(&id)), Some(Pick { first: 2, pinned: true }));
        vhost.backends[2].mark_down();
        let repinned = vhost.pick(Some(&id)).unwrap();
        assert!(!repinned.pinned);
        assert_eq!(vhost.pick(Some("unknown")).map(|pick| pick.pinned), Some(false));
    }

    #[test]
    fn least_conn_prefers_the_idle_backend_that_is_up() {
        let vhost = vhost(Policy::LeastConn, &[1, 2, 3]);
        let _busy = [InFlight::start(&vhost.backends[0]), InFlight::start(&vhost.backends[1])];
        assert_eq!(vhost.pick(None).unwrap().first, 2);
        vhost.backends[2].mark_down();
        let first = vhost.pick(None).unwrap().first;
        assert!(first == 0 || first == 1);
        drop(_busy);
        assert_eq!(vhost.backends[0].in_flight(), 0);
    }

    #[test]
    fn sticky_ids_are_opaque_and_stable() {
        let backend = Backend::new("10.0.0.7:9001".parse().unwrap());
        assert_eq!(backend.sticky_id(), Backend::new("10.0.0.7:9001".parse().unwrap()).sticky_id());
        assert!(!backend.sticky_id().contains("10.0.0.7"));
        assert!(backend.set_cookie.to_str().unwrap().ends_with("; Path=/; HttpOnly; SameSite=Lax"));
    }

    #[test]
    fn an_empty_vhost_picks_nothing() {
        assert_eq!(vhost(Policy::Sticky, &[]).pick(None), None);
    }
}
