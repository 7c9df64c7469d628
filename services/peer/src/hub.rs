//! The peer's event hub: what its browsers are told, in one order, with ids.
//!
//! Every event gets the next sequence number and goes into a bounded ring (for
//! `Last-Event-ID` resume) and onto a bounded broadcast channel (for live streams).
//! Sequence numbers start at the start-up time in microseconds, so ids keep growing
//! across restarts and an id from before a restart is recognisably too old.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use wire::events::Event;
use wire::names::{ChannelName, Username};

/// Events kept for resuming streams.
const RING: usize = 16_384;
/// Live events a slow stream may fall behind by before it is told to reload.
const LIVE: usize = 4096;

/// Who may see an event.
#[derive(Debug, Clone)]
pub enum Audience {
    Users(Vec<Username>),
    Channel(ChannelName),
    /// The channel's members and one more user (who just left a private channel).
    ChannelAnd(ChannelName, Username),
    /// The channel's members but one (who is typing).
    ChannelExcept(ChannelName, Username),
    Everyone,
}

/// One event, serialized once for all its streams.
#[derive(Debug)]
pub struct HubEvent {
    pub seq: u64,
    pub audience: Audience,
    pub name: &'static str,
    pub json: String,
}

/// Cloning is a reference-count bump.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<HubEvent>>,
}

struct Ring {
    events: VecDeque<Arc<HubEvent>>,
    next_seq: u64,
}

/// Where a (re)connecting stream starts.
pub struct Resume {
    /// Events after the client's last id, oldest first.
    pub backlog: Vec<Arc<HubEvent>>,
    /// The client's last id is older than what the ring holds: it missed events.
    pub gap: bool,
    pub live: broadcast::Receiver<Arc<HubEvent>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE);
        let first = kit::now_ms() * 1000;
        Self {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring { events: VecDeque::with_capacity(1024), next_seq: first }),
                live,
            }),
        }
    }

    /// Publishes an event to its audience; returns its id.
    pub fn publish(&self, audience: Audience, event: &Event) -> u64 {
        // Wire events always serialize.
        let json = serde_json::to_string(event).expect("wire events serialize to JSON");
        let mut ring = self.ring();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let event = Arc::new(HubEvent { seq, audience, name: event.name(), json });
        if ring.events.len() == RING {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Sent under the ring lock, so live order is sequence order. No receiver is fine.
        let _ = self.inner.live.send(event);
        seq
    }

    /// Subscribes a stream that last saw `last_id` (or nothing).
    pub fn resume(&self, last_id: Option<u64>) -> Resume {
        let ring = self.ring();
        let live = self.inner.live.subscribe();
        let Some(last_id) = last_id else { return Resume { backlog: Vec::new(), gap: false, live } };
        let oldest = ring.events.front().map_or(ring.next_seq, |event| event.seq);
        let gap = last_id + 1 < oldest || last_id >= ring.next_seq;
        let backlog = ring.events.iter().filter(|event| event.seq > last_id).cloned().collect();
        Resume { backlog, gap, live }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::events::Presence;

    fn presence(name: &str) -> Event {
        Event::Presence(Presence { username: Username::parse(name).unwrap(), online: true, active: false })
    }

    #[tokio::test]
    async fn a_resumed_stream_gets_exactly_what_came_after_its_last_id() {
        let hub = Hub::new();
        let first = hub.publish(Audience::Everyone, &presence("a"));
        let second = hub.publish(Audience::Everyone, &presence("b"));
        hub.publish(Audience::Everyone, &presence("c"));
        let resume = hub.resume(Some(first));
        assert!(!resume.gap);
        assert_eq!(resume.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), [second, second + 1]);
        let mut live = resume.live;
        let fourth = hub.publish(Audience::Everyone, &presence("d"));
        assert_eq!(live.recv().await.unwrap().seq, fourth);
    }

    #[test]
    fn ids_from_before_a_restart_or_the_future_are_gaps() {
        let hub = Hub::new();
        hub.publish(Audience::Everyone, &presence("a"));
        assert!(hub.resume(Some(5)).gap, "an id from an earlier run");
        assert!(hub.resume(Some(u64::MAX - 1)).gap, "an id this hub never gave");
        assert!(!hub.resume(None).gap);
    }
}
