//! The peer pool: live peers, by registration and heartbeat.
//!
//! This is soft state, kept in memory: a peer that finds the tracker forgot it (after
//! a restart) registers again on its next heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wire::addr::PeerAddr;

/// The live peers. Cloning is a reference-count bump.
#[derive(Clone)]
pub struct PeerPool {
    inner: Arc<Mutex<Inner>>,
    ttl: Duration,
}

#[derive(Default)]
struct Inner {
    peers: HashMap<PeerAddr, Entry>,
    next_order: u64,
}

struct Entry {
    /// Registration order, to break ties between equally loaded peers.
    order: u64,
    last_seen: Instant,
}

impl PeerPool {
    pub fn new(ttl: Duration) -> Self {
        Self { inner: Arc::default(), ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Adds or refreshes a peer. Returns true when it was not in the pool.
    pub fn register(&self, addr: &PeerAddr) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        if let Some(entry) = inner.peers.get_mut(addr) {
            entry.last_seen = now;
            return false;
        }
        let order = inner.next_order;
        inner.next_order += 1;
        inner.peers.insert(addr.clone(), Entry { order, last_seen: now });
        true
    }

    /// Refreshes a known peer. Returns false when the pool does not know it (it
    /// expired, or the tracker restarted), so the peer registers again.
    pub fn heartbeat(&self, addr: &PeerAddr) -> bool {
        match self.lock().peers.get_mut(addr) {
            Some(entry) => {
                entry.last_seen = Instant::now();
                true
            }
            None => false,
        }
    }

    pub fn is_live(&self, addr: &PeerAddr) -> bool {
        let now = Instant::now();
        self.lock().peers.get(addr).is_some_and(|entry| now.duration_since(entry.last_seen) <= self.ttl)
    }

    /// The live peers, in registration order.
    pub fn live(&self) -> Vec<PeerAddr> {
        let now = Instant::now();
        let inner = self.lock();
        let mut live: Vec<_> =
            inner.peers.iter().filter(|(_, entry)| now.duration_since(entry.last_seen) <= self.ttl).collect();
        live.sort_by_key(|(_, entry)| entry.order);
        live.into_iter().map(|(addr, _)| addr.clone()).collect()
    }

    /// Removes a peer that said it is leaving. Returns false when it was not in the pool.
    pub fn remove(&self, addr: &PeerAddr) -> bool {
        self.lock().peers.remove(addr).is_some()
    }

    /// Removes the peers silent for longer than the TTL and returns them.
    pub fn expire(&self) -> Vec<PeerAddr> {
        let now = Instant::now();
        let mut inner = self.lock();
        let expired: Vec<PeerAddr> = inner
            .peers
            .iter()
            .filter(|(_, entry)| now.duration_since(entry.last_seen) > self.ttl)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &expired {
            inner.peers.remove(addr);
        }
        expired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> PeerAddr {
        PeerAddr::parse("127.0.0.1", port).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peers_expire_and_heartbeats_keep_them() {
        let pool = PeerPool::new(Duration::from_secs(15));
        assert!(pool.register(&addr(9001)));
        assert!(!pool.register(&addr(9001)));
        pool.register(&addr(9002));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(pool.heartbeat(&addr(9001)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(pool.is_live(&addr(9001)));
        assert!(!pool.is_live(&addr(9002)));
        assert_eq!(pool.live(), [addr(9001)]);
        assert_eq!(pool.expire(), [addr(9002)]);
        assert!(!pool.heartbeat(&addr(9002)), "an expired peer must register again");
    }

    #[test]
    fn live_peers_come_in_registration_order() {
        let pool = PeerPool::new(Duration::from_secs(15));
        for port in [9003, 9001, 9002] {
            pool.register(&addr(port));
        }
        assert_eq!(pool.live(), [addr(9003), addr(9001), addr(9002)]);
    }
}
