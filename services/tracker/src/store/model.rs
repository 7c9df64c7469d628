//! What both backends share: the pushes for the peers' streams, and the error every
//! store method returns.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use kit::db::DbError;
use kit::pg::PgError;
use wire::addr::PeerAddr;
use wire::api::RevokedSession;
use wire::events::{Event, Membership, Presence, Pushed};
use wire::names::{ChannelName, Username};

/// How many pushes a slow peer stream may fall behind before it is told to resume.
pub(super) const PUSH_BUFFER: usize = 4096;

/// Something for the peers: a new channel message (with its id, to resume from), a
/// membership change, a presence change.
#[derive(Debug)]
pub struct Push {
    pub id: Option<u64>,
    pub event: Event,
    pub targets: Targets,
    /// The trace context of the request that caused it.
    pub traceparent: Option<String>,
    /// The [`Pushed`] JSON the peers get, made by the first stream that sends it.
    json: OnceLock<String>,
}

/// Which peers a [`Push`] is for.
#[derive(Debug)]
pub enum Targets {
    Everyone,
    /// The peers that host at least one member of the channel.
    Peers(HashSet<PeerAddr>),
}

impl Push {
    pub fn new(id: Option<u64>, event: Event, targets: Targets, traceparent: Option<String>) -> Self {
        Self { id, event, targets, traceparent, json: OnceLock::new() }
    }

    /// The event with its trace context as JSON: serialized once, however many peers
    /// it goes to.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| pushed_json(&self.event, self.traceparent.as_deref()))
    }

    pub fn is_for(&self, peer: &PeerAddr) -> bool {
        match &self.targets {
            Targets::Everyone => true,
            Targets::Peers(peers) => peers.contains(peer),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("channel `{0}` not found")]
    NoChannel(ChannelName),
    #[error("channel `{0}` already exists")]
    ChannelExists(ChannelName),
    #[error("join channel `{0}` before posting to it")]
    NotMember(ChannelName),
    #[error("you are not on any peer: open the chat page of a peer (or log in there) first")]
    NotOnAnyPeer,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A batch of posts failed to commit: every post in it gets the cause.
    #[error(transparent)]
    Batch(Arc<StoreError>),
    #[error("stored data does not parse: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
}

/// The ended sessions after a caller's cursor, and its next cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSince {
    pub sessions: Vec<RevokedSession>,
    pub cursor: String,
}

/// A cursor in the ended sessions: the store's id (so a cursor of another store, or
/// of a store made anew, reads from the start) and the last sequence number read.
pub(super) fn revoked_cursor(store_id: &str, seq: u64) -> String {
    format!("{store_id}.{seq}")
}

/// The sequence number to read after for the cursor `since`: 0 (everything) without
/// one, for another store's, or for one past `last` (the store was made anew).
pub(super) fn revoked_after(since: Option<&str>, store_id: &str, last: u64) -> u64 {
    since
        .and_then(|since| since.rsplit_once('.'))
        .filter(|(id, _)| *id == store_id)
        .and_then(|(_, seq)| seq.parse::<u64>().ok())
        .filter(|seq| *seq <= last)
        .unwrap_or(0)
}

/// `event` as a peer's stream carries it: a [`Pushed`], with the trace context.
pub fn pushed_json(event: &Event, traceparent: Option<&str>) -> String {
    let pushed = Pushed { event: event.clone(), traceparent: traceparent.map(str::to_owned) };
    serde_json::to_string(&pushed).expect("wire events serialize to JSON")
}

/// A presence change, for every peer, in the trace of the request that caused it
/// (`traceparent`, taken where the request's span is current: a store's commit hook
/// runs on its writer thread, outside it).
pub fn presence(username: Username, online: bool, active: bool, traceparent: Option<String>) -> Push {
    Push::new(None, Event::Presence(Presence { username, online, active }), Targets::Everyone, traceparent)
}

/// A membership change, for every peer, in the trace of the join or leave.
pub(super) fn membership(channel: ChannelName, username: Username, joined: bool, traceparent: Option<String>) -> Push {
    Push::new(None, Event::Membership(Membership { channel, username, joined }), Targets::Everyone, traceparent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_after_its_number_only_in_its_own_store_and_within_what_was_given() {
        let cursor = revoked_cursor("ab12", 7);
        assert_eq!(cursor, "ab12.7");
        assert_eq!(revoked_after(Some(&cursor), "ab12", 9), 7);
        assert_eq!(revoked_after(None, "ab12", 9), 0, "no cursor: everything");
        assert_eq!(revoked_after(Some(&cursor), "cd34", 9), 0, "another store's: everything");
        assert_eq!(revoked_after(Some(&cursor), "ab12", 5), 0, "past what was given: a store made anew");
        assert_eq!(revoked_after(Some("garbage"), "ab12", 9), 0);
    }
}
