//! What the store hands back, whichever its backend.

use wire::api::{DirectChange, DirectMessage};
use wire::names::Username;

/// What the peer keeps in memory from its database.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Hosted users and when their latest session expires (0: unknown).
    pub hosted: Vec<(Username, u64)>,
    pub revoked: Vec<(String, u64)>,
}

/// A direct message, or a change to one, waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub item: Outgoing,
    /// The trace context of the original send.
    pub traceparent: Option<String>,
    pub attempts: u32,
    /// When it entered the outbox, ms since the epoch.
    pub created_at: u64,
}

/// What an outbox row carries to another user's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Message(DirectMessage),
    Change(DirectChange),
}

impl Outgoing {
    /// The outbox row's `kind`.
    pub(super) const MESSAGE: &'static str = "message";
    pub(super) const CHANGE: &'static str = "change";

    /// Its id (a message's, or a change's own).
    pub fn id(&self) -> &str {
        match self {
            Self::Message(message) => &message.id,
            Self::Change(change) => &change.id,
        }
    }

    /// The user whose peer it goes to.
    pub fn to(&self) -> &Username {
        match self {
            Self::Message(message) => &message.to,
            Self::Change(change) => &change.to,
        }
    }

    /// Reads an outbox row back.
    pub(super) fn from_json(kind: &str, json: &str) -> Result<Self, serde_json::Error> {
        if kind == Self::CHANGE {
            serde_json::from_str(json).map(Self::Change)
        } else {
            serde_json::from_str(json).map(Self::Message)
        }
    }
}

/// What became of a change to a direct message in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// The mailbox has no such message (or not yet: it may still be on its way).
    Missing,
    /// Only its author may edit or delete a message.
    NotAuthor,
    /// The message was deleted: it can be neither edited nor reacted to.
    Deleted,
    /// The message has as many distinct emoji as it may
    /// ([`super::MAX_EMOJI_PER_MESSAGE`]); a new one is refused.
    TooManyEmoji,
    /// The message as it is now; `changed` is false when this change (or a later
    /// one) was applied already.
    Applied { message: Box<DirectMessage>, changed: bool },
}
