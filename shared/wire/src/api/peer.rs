//! The peer's bodies: contacts, direct messages between users and between peers, and
//! conversations.

use serde::{Deserialize, Serialize};

use super::chat::{Reaction, ReplyPreview};
use super::replies::Status;
use crate::de;
use crate::names::{ChannelName, MessageText, Username};

/// `POST /submit-username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitUsername {
    pub username: Username,
}

/// `POST /connect-peer`: by address as in the original, or by user name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectPeer {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub ip: Option<String>,
    #[serde(default, deserialize_with = "de::opt_port")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Username>,
}

/// A contact: an item of `GET /get-connected-peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub ip: String,
    pub port: u16,
    pub username: Username,
    #[serde(default)]
    pub online: bool,
}

/// `POST /send-peer`: a direct message to the user at `ip:port`, or to `username`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendPeer {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub ip: Option<String>,
    #[serde(default, deserialize_with = "de::opt_port")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Username>,
    pub message: MessageText,
    /// The id of a message of the same conversation this one answers.
    #[serde(default, deserialize_with = "de::opt_text", skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// `POST /broadcast-peer`: one message to every contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    pub message: MessageText,
}

/// A direct message, as peers send it to each other (`POST /receive-message`, signed
/// with the cluster secret) and as `GET /get-received-messages` lists it. The field
/// names are the original's; `id`, `to` and `ts` are new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// Chosen by the sender's peer; the receiver de-duplicates by it.
    pub id: String,
    /// Empty for a deleted message.
    #[serde(deserialize_with = "de::message_or_tombstone")]
    pub message: MessageText,
    pub sender_ip: String,
    #[serde(deserialize_with = "de::port")]
    pub sender_port: u16,
    /// The sender.
    pub username: Username,
    /// The recipient.
    pub to: Username,
    /// When the sender's peer accepted it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// Whether it went to every contact rather than to one user.
    #[serde(default)]
    pub broadcast: bool,
    /// Its place in the reader's mailbox on their peer (for paging); set in replies of
    /// that peer, absent between peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For the sender's own copies: whether the recipient's peer has it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
    /// When its author last edited it, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    /// Deleted by its author: a tombstone, with empty text and no reactions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The id of the message of the same conversation it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// What it answers, as a reader's peer has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyPreview>,
    /// Reactions, ordered by first use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

impl DirectMessage {
    /// A new message, as its sender's peer mints it: not edited, no reactions.
    pub fn new(id: String, from: Username, to: Username, message: MessageText, sender: (String, u16), ts: u64) -> Self {
        Self {
            id,
            message,
            sender_ip: sender.0,
            sender_port: sender.1,
            username: from,
            to,
            ts,
            broadcast: false,
            seq: None,
            delivered: None,
            edited_at: None,
            deleted: false,
            reply_to: None,
            reply: None,
            reactions: Vec::new(),
        }
    }
}

/// `POST /import-mailbox`, signed: a peer hands a user who moved their direct messages
/// (both ways) and contacts, in pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxTransfer {
    pub username: Username,
    pub messages: Vec<DirectMessage>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
}

/// The reply to `POST /send-peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectSent {
    pub status: Status,
    pub message: String,
    pub id: String,
    /// False when the recipient's peer could not be reached yet: the message waits in
    /// the outbox and is retried.
    pub delivered: bool,
}

/// The reply to `POST /broadcast-peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastSent {
    pub status: Status,
    pub message: String,
    pub delivered: u32,
    pub queued: u32,
}

/// `POST /mark-read`: the caller's received messages up to `up_to` (a `seq` of
/// `/get-received-messages`), or all of them, become read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRead {
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
    /// Only the conversation with this user (`up_to`: a `seq` of that conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Username>,
    /// Only this channel (`up_to`: a channel message id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<ChannelName>,
}

/// The reply to `POST /mark-read`: how many messages it marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedRead {
    pub status: Status,
    pub marked: u64,
}

/// `GET /get-conversation?with=NAME`: the direct messages between the caller and one
/// user, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub status: Status,
    pub with: Username,
    pub messages: Vec<DirectMessage>,
    /// Whether older messages exist before the first of this page.
    #[serde(default)]
    pub has_more: bool,
}

/// `GET /get-conversations`: the caller's direct conversations, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversations {
    pub status: Status,
    pub conversations: Vec<ConversationSummary>,
}

/// One direct conversation of the caller, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// The other user.
    pub with: Username,
    /// The latest message, either way.
    pub last: DirectMessage,
    /// Received messages not yet read (marked through `POST /mark-read`).
    pub unread: u64,
    /// The `seq` of the latest received message read (0: none).
    #[serde(default)]
    pub last_read: u64,
}
