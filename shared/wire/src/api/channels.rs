//! The tracker's channels: joining, listing, history and sending.

use serde::{Deserialize, Serialize};

use super::replies::Status;
use crate::de;
use crate::names::{ChannelName, MessageText, Username};

/// `POST /join-channel`, `/leave-channel`, `/create-channel`. The original page also
/// sends `peer_ip`, `peer_port` and `username`; they are ignored, because the session
/// says who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRequest {
    pub channel_name: ChannelName,
}

/// `POST /get-channel-messages`: one page of history, the latest by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    pub channel_name: ChannelName,
    /// Only messages with an id below this one (scrolling back).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Only messages with an id above this one (catching up).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many messages (default 100, at most 500).
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// `GET /get-all-channels` and `GET /get-joined-channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelList {
    pub status: Status,
    pub channels: Vec<ChannelName>,
}

/// `POST /get-channel-messages`. The whole channel sits under `messages`, as in the
/// original, so its page reads `messages.messages[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelHistory {
    pub status: Status,
    pub messages: ChannelView,
}

/// One channel: its members and one page of its history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    pub channel: ChannelName,
    pub members: Vec<Member>,
    pub messages: Vec<ChannelMessage>,
    /// Whether the page was cut at the limit: more messages exist before it (latest
    /// page, or `before`) or after it (`after`).
    #[serde(default)]
    pub has_more: bool,
}

/// A channel member and, while online, the peer that hosts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub username: Username,
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub online: bool,
}

/// One stored channel message. `id` orders a channel's history: every reader sees
/// the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessage {
    pub id: u64,
    pub channel: ChannelName,
    pub sender_ip: String,
    pub sender_port: u16,
    pub username: Username,
    pub text: MessageText,
    /// Server time of arrival, in milliseconds since the Unix epoch.
    pub ts: u64,
}

/// `POST /send-channel-message`. The original also sends `peer_ip`, `peer_port` and
/// `username`; they are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendChannelMessage {
    pub channel_name: ChannelName,
    pub message: MessageText,
}

/// The reply to a stored message: its id and server timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStored {
    pub status: Status,
    pub message: String,
    pub id: u64,
    pub ts: u64,
}
