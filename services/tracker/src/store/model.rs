//! What both backends share: the pushes for the peers' streams, and the error every
//! store method returns.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use kit::db::DbError;
use kit::pg::PgError;
use wire::addr::PeerAddr;
use wire::api::{Reaction, RevokedSession};
use wire::events::{Event, Membership, Presence, Pushed};
use wire::names::{ChannelName, Emoji, Username};

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

/// What a user is to a channel they can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Member,
    /// A public channel they did not join.
    Outsider,
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
    #[error("you are not a member of channel `{0}`")]
    NotAMember(ChannelName),
    #[error("no message {1} in channel `{0}`")]
    NoMessage(ChannelName, u64),
    #[error("only the author may change message {0}")]
    NotAuthor(u64),
    #[error("message {0} was deleted")]
    Deleted(u64),
    #[error("message {0} has {max} different reactions already", max = wire::api::MAX_REACTIONS)]
    TooManyReactions(u64),
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

/// A membership change in the trace of the join or leave: for every peer, or for a
/// private channel the peers in `private_targets` (its members' and the user's).
pub(super) fn membership(
    channel: ChannelName,
    username: Username,
    joined: bool,
    private_targets: Option<HashSet<PeerAddr>>,
    traceparent: Option<String>,
) -> Push {
    let private = private_targets.is_some();
    let targets = private_targets.map_or(Targets::Everyone, Targets::Peers);
    Push::new(None, Event::Membership(Membership { channel, username, joined, private }), targets, traceparent)
}

/// The members of a channel that `text` names as `@name`, in the order it names them,
/// once each, the author aside. A name ends at the first character a name cannot
/// hold; a trailing `.` (the end of a sentence) is tried without.
pub fn mentions_in(text: &str, author: &Username, is_member: impl Fn(&str) -> bool) -> Vec<Username> {
    let mut found: Vec<Username> = Vec::new();
    for candidate in mention_candidates(text) {
        let name = if is_member(candidate) {
            candidate
        } else if let Some(shorter) = candidate.strip_suffix('.').filter(|shorter| is_member(shorter)) {
            shorter
        } else {
            continue;
        };
        if let Ok(user) = Username::parse(name)
            && &user != author
            && !found.contains(&user)
        {
            found.push(user);
        }
    }
    found
}

/// The words after each `@` in `text`, as far as a name may reach.
pub fn mention_candidates(text: &str) -> Vec<&str> {
    let mut candidates = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let after = &rest[at + 1..];
        let end = after
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map_or(after.len(), |(index, _)| index);
        let word = &after[..end];
        // Not an address (`bob@example.org`): the `@` starts a word.
        let starts_word = rest[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        if starts_word && !word.is_empty() {
            candidates.push(word);
        }
        rest = after;
    }
    candidates
}

/// Mentions as one column: names joined by spaces (names hold none), `None` for none.
pub(super) fn mentions_column(mentions: &[Username]) -> Option<String> {
    (!mentions.is_empty()).then(|| mentions.iter().map(Username::as_str).collect::<Vec<_>>().join(" "))
}

/// The mentions column read back.
pub(super) fn mentions_from_column(column: Option<&str>) -> Vec<Username> {
    column.unwrap_or_default().split(' ').filter_map(|name| Username::parse(name).ok()).collect()
}

/// Adds `emoji` by `user` to aggregated reactions, keeping the order of first use.
pub(super) fn add_reaction(reactions: &mut Vec<Reaction>, emoji: Emoji, user: Username) {
    match reactions.iter_mut().find(|reaction| reaction.emoji == emoji) {
        Some(reaction) => reaction.users.push(user),
        None => reactions.push(Reaction { emoji, users: vec![user] }),
    }
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

    #[test]
    fn mentions_are_members_named_after_an_at_once_each_without_the_author() {
        let members = ["alice", "bob", "a.b"];
        let is_member = |name: &str| members.contains(&name);
        let bob = Username::parse("bob").unwrap();
        let found = mentions_in("@alice, @bob and @carol: see @alice. mail bob@alice @a.b.", &bob, is_member);
        let names: Vec<_> = found.iter().map(Username::as_str).collect();
        assert_eq!(names, ["alice", "a.b"]);
        assert!(mentions_in("no one here", &bob, is_member).is_empty());
        assert!(mentions_in("@@ @ @", &bob, is_member).is_empty());
    }
}
