//! The payloads of channel events that direct messages do not have: mentions, topic
//! and privacy changes, and the read state the tracker hands a reader's peer.

use serde::{Deserialize, Serialize};

use crate::names::{ChannelName, Username};

/// `mention`: to a member a new channel message names (`@name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    pub channel: ChannelName,
    /// The message's id.
    pub id: u64,
    /// The author.
    pub username: Username,
    /// The first characters of the message.
    pub text: String,
}

/// `channel_updated`: a channel's topic or privacy, as they are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelUpdated {
    pub channel: ChannelName,
    pub topic: String,
    pub private: bool,
}

/// Between services only (`channel_read`, tracker to peer): `username` read `channel`
/// up to `up_to`. The peer tells that user's pages with a `read` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRead {
    pub username: Username,
    pub channel: ChannelName,
    pub up_to: u64,
}
