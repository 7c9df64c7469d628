//! What channel and direct messages share beyond sending: edits, deletions,
//! reactions, replies, typing; and the signed change one peer hands another when a
//! direct message changes.

use serde::{Deserialize, Serialize};

use super::replies::Status;
use crate::de;
use crate::names::{ChannelName, Emoji, MessageText, Username};

/// A message's id as routes and events name it: a channel message's number, or a
/// direct message's text id. Serialised as it is (a JSON number or string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageKey {
    Channel(u64),
    Direct(String),
}

/// The users who reacted to a message with one emoji, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: Emoji,
    pub users: Vec<Username>,
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyPreview {
    pub id: MessageKey,
    /// The parent's author.
    pub username: Username,
    /// The parent's first [`REPLY_PREVIEW_CHARS`] characters; empty once it was deleted.
    pub text: String,
    #[serde(default)]
    pub deleted: bool,
}

/// The most characters of the parent a [`ReplyPreview`] shows.
pub const REPLY_PREVIEW_CHARS: usize = 200;

impl ReplyPreview {
    /// The preview of a parent with this text (cut to [`REPLY_PREVIEW_CHARS`]).
    pub fn of(id: MessageKey, username: Username, text: &str, deleted: bool) -> Self {
        let text = if deleted { String::new() } else { text.chars().take(REPLY_PREVIEW_CHARS).collect() };
        Self { id, username, text, deleted }
    }
}

/// `POST /edit-message`: the author replaces a message's text. `channel_name` names a
/// channel message; without it, `id` is a direct message's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditMessage {
    #[serde(deserialize_with = "de::id_text")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<ChannelName>,
    pub message: MessageText,
}

/// `POST /delete-message`: the author deletes a message (it stays as a tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMessage {
    #[serde(deserialize_with = "de::id_text")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<ChannelName>,
}

/// `POST /react`: adds (`on`, the default) or takes back the caller's reaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct React {
    #[serde(deserialize_with = "de::id_text")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<ChannelName>,
    pub emoji: Emoji,
    #[serde(default = "de::yes", deserialize_with = "de::flag")]
    pub on: bool,
}

/// `POST /typing`: the caller is typing in a channel or to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<ChannelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Username>,
}

/// The reply to `POST /edit-message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edited {
    pub status: Status,
    pub message: String,
    pub id: MessageKey,
    pub edited_at: u64,
}

/// The reply to `POST /delete-message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub status: Status,
    pub message: String,
    pub id: MessageKey,
}

/// The reply to `POST /react`: the message's reactions now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reacted {
    pub status: Status,
    pub id: MessageKey,
    pub reactions: Vec<Reaction>,
}

/// `POST /receive-change`, signed: a change to a direct message made by `from`, for
/// the copy in `to`'s mailbox (or, for typing, for `to`'s open pages). `id` is the
/// change's own, unique; applying a change twice changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectChange {
    pub id: String,
    pub from: Username,
    pub to: Username,
    pub change: DirectChangeKind,
}

/// What changed. Every stored change carries its time (ms since the epoch), so the
/// latest wins whatever order retries arrive in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DirectChangeKind {
    Edit {
        message_id: String,
        message: MessageText,
        edited_at: u64,
    },
    Delete {
        message_id: String,
    },
    React {
        message_id: String,
        emoji: Emoji,
        on: bool,
        at: u64,
    },
    /// Never stored, never retried.
    Typing,
}

impl DirectChangeKind {
    /// The message the change is about (none for typing).
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Self::Edit { message_id, .. } | Self::Delete { message_id } | Self::React { message_id, .. } => {
                Some(message_id)
            }
            Self::Typing => None,
        }
    }
}
