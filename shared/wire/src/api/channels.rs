//! The tracker's channels: joining, listing, history and sending; read state, topics
//! and invitations.

use serde::{Deserialize, Serialize};

use super::chat::{Reaction, ReplyPreview};
use super::replies::Status;
use crate::de;
use crate::names::{ChannelName, MessageText, Username};

/// `POST /join-channel`, `/leave-channel`, `/create-channel`. The original page also
/// sends `peer_ip`, `peer_port` and `username`; they are ignored, because the session
/// says who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRequest {
    pub channel_name: ChannelName,
    /// On `/create-channel`: a private channel, which only its members (and those
    /// they invite) see. Ignored elsewhere.
    #[serde(default, deserialize_with = "de::flag", skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
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
    /// On `GET /get-joined-channels` for a user: each channel with its topic and the
    /// caller's read state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summaries: Option<Vec<ChannelSummary>>,
}

/// One joined channel as the channel list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSummary {
    pub name: ChannelName,
    pub topic: String,
    pub private: bool,
    /// Messages of others after `last_read` (counted up to [`MAX_UNREAD_COUNT`]).
    pub unread: u64,
    /// Of those, the ones that mention the caller.
    pub mentions: u64,
    /// The id of the last message the caller read (`POST /mark-read`); on joining,
    /// the channel's newest message.
    pub last_read: u64,
}

/// Unread and mention counts stop at this number, so a long-unread channel costs a
/// bounded count.
pub const MAX_UNREAD_COUNT: u64 = 10_000;

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
    /// Empty once the message is deleted.
    #[serde(deserialize_with = "de::message_or_tombstone")]
    pub text: MessageText,
    /// Server time of arrival, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// When the author last edited it (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    /// A tombstone: the author deleted it; its text is empty and its reactions gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The message of the same channel this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// A preview of that message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyPreview>,
    /// Reactions, ordered by first use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The channel members the text names as `@name` (the author aside).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Username>,
}

impl ChannelMessage {
    /// A new message, not edited, answering nothing, with no reactions or mentions.
    pub fn new(id: u64, channel: ChannelName, sender: (String, u16), username: Username, text: MessageText) -> Self {
        Self {
            id,
            channel,
            sender_ip: sender.0,
            sender_port: sender.1,
            username,
            text,
            ts: 0,
            edited_at: None,
            deleted: false,
            reply_to: None,
            reply: None,
            reactions: Vec::new(),
            mentions: Vec::new(),
        }
    }
}

/// The most distinct emoji one channel message may carry.
pub const MAX_REACTIONS: usize = 20;

/// `POST /send-channel-message`. The original also sends `peer_ip`, `peer_port` and
/// `username`; they are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendChannelMessage {
    pub channel_name: ChannelName,
    pub message: MessageText,
    /// The id of the message of the same channel this one answers.
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
}

/// The reply to a stored message: its id and server timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStored {
    pub status: Status,
    pub message: String,
    pub id: u64,
    pub ts: u64,
}

/// `POST /mark-read` with `channel_name`, as the tracker takes it: the caller has read
/// the channel up to the message `up_to` (its newest message without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkChannelRead {
    pub channel_name: ChannelName,
    #[serde(default, deserialize_with = "de::opt_u64", skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
}

/// The reply to `POST /mark-read` for a channel: where the caller's read state stands
/// (it never moves back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMarkedRead {
    pub status: Status,
    pub channel: ChannelName,
    pub last_read: u64,
}

/// `POST /set-topic`: members only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTopic {
    pub channel_name: ChannelName,
    /// At most [`MAX_TOPIC_CHARS`] characters; empty clears it.
    #[serde(default)]
    pub topic: String,
}

/// The longest channel topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 250;

/// `POST /invite`: a member adds `username` to the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub channel_name: ChannelName,
    pub username: Username,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MessageKey;
    use crate::check;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    #[test]
    fn a_reply_an_edit_reactions_and_mentions_are_added_fields_and_a_tombstone_reads_back() {
        let general = ChannelName::parse("general").unwrap();
        let text = MessageText::parse("@alice yes").unwrap();
        let mut message = ChannelMessage::new(8, general, ("127.0.0.1".into(), 9001), name("bob"), text);
        message.ts = 5;
        message.edited_at = Some(6);
        message.reply_to = Some(7);
        message.reply = Some(ReplyPreview::of(MessageKey::Channel(7), name("alice"), &"x".repeat(300), false));
        message.reactions =
            vec![Reaction { emoji: crate::names::Emoji::parse("👍").unwrap(), users: vec![name("alice")] }];
        message.mentions = vec![name("alice")];
        let json = serde_json::to_string(&message).unwrap();
        assert!(
            json.contains(r#""edited_at":6,"reply_to":7,"reply":{"id":7,"username":"alice","text":"xxx"#),
            "{json}"
        );
        assert!(
            json.ends_with(r#""deleted":false},"reactions":[{"emoji":"👍","users":["alice"]}],"mentions":["alice"]}"#)
        );
        let old: ChannelMessage = serde_json::from_str(
            r#"{"id":1,"channel":"general","sender_ip":"a","sender_port":1,"username":"bob","text":"","ts":2,"deleted":true}"#,
        )
        .unwrap();
        assert_eq!((old.text.as_str(), old.deleted, old.reactions.len()), ("", true, 0));
        assert!(serde_json::from_str::<SendChannelMessage>(r#"{"channel_name":"general","message":""}"#).is_err());
    }

    #[test]
    fn a_channel_is_private_only_when_asked_and_replies_name_their_parent() {
        let create: ChannelRequest = serde_json::from_str(r#"{"channel_name":"x","private":"on"}"#).unwrap();
        assert!(create.private);
        let plain = ChannelRequest { channel_name: ChannelName::parse("x").unwrap(), private: false };
        check(&plain, r#"{"channel_name":"x"}"#);
        let send: SendChannelMessage =
            serde_json::from_str(r#"{"channel_name":"x","message":"hi","reply_to":"12"}"#).unwrap();
        assert_eq!(send.reply_to, Some(12));
    }
}
