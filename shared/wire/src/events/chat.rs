//! The payloads of the chat events beyond new messages: edits, deletions, reactions,
//! typing and read state. Each names a channel (`channel`) or, for direct messages, the
//! other user of the conversation as the receiving user sees it (`with`).

use serde::{Deserialize, Serialize};

use crate::api::{MessageKey, Reaction};
use crate::names::{ChannelName, MessageText, Username};

/// `message_edited`: a message's text was replaced by its author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Username>,
    pub id: MessageKey,
    pub message: MessageText,
    pub edited_at: u64,
    /// Channel messages: the members named in the new text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Username>,
}

/// `message_deleted`: a message became a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Username>,
    pub id: MessageKey,
}

/// `reaction`: a message's reactions now (the whole aggregate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reactions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Username>,
    pub id: MessageKey,
    pub reactions: Vec<Reaction>,
}

/// `typing`: `username` is typing in `channel`, or to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
    pub username: Username,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Username>,
}

/// `read`: the user read a channel or a conversation up to `up_to` (a channel message
/// id, a direct message `seq`); with neither, their whole mailbox up to `up_to` (every
/// message without it). Only to the reader's own pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Username>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
}
