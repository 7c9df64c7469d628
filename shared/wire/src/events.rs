//! Server-Sent Event payloads.
//!
//! The same enum travels on the tracker's stream to the peers and on a peer's stream
//! to browsers. `type` tells the page what arrived.

mod channels;
mod chat;

use serde::{Deserialize, Serialize};

use crate::addr::PeerAddr;
use crate::api::{ChannelMessage, DirectMessage, RevokedSession};
use crate::names::{ChannelName, Username};

pub use channels::{ChannelRead, ChannelUpdated, Mention};
pub use chat::{MessageDeleted, MessageEdited, Reactions, Read, Typing};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new message in a channel.
    ChannelMessage(ChannelMessage),
    /// A direct message to or from the user.
    DirectMessage(DirectMessage),
    /// Someone joined or left a channel.
    Membership(Membership),
    /// A user came online or went offline.
    Presence(Presence),
    /// A direct message the user sent reached the recipient's peer.
    Delivered(Delivered),
    /// A message's text was edited by its author.
    MessageEdited(MessageEdited),
    /// A message was deleted by its author (a tombstone).
    MessageDeleted(MessageDeleted),
    /// A message's reactions changed.
    Reaction(Reactions),
    /// Someone is typing (never stored).
    Typing(Typing),
    /// The user read up to a message, on one of their pages.
    Read(Read),
    /// A new channel message names the user (`@name`).
    Mention(Mention),
    /// A channel's topic or privacy changed.
    ChannelUpdated(ChannelUpdated),
    /// Between services only: a user read a channel up to a message (the tracker
    /// tells their peer, which sends `read` to their pages).
    ChannelRead(ChannelRead),
    /// Between services only: a user's home moved to another peer, which should now
    /// hold their mailbox (the tracker tells the peer they left).
    Moved(Moved),
    /// Between services only: a session was ended (logout) and no service may accept
    /// its token any more.
    SessionRevoked(RevokedSession),
    /// The stream could not resume from the given id (too old): the client should
    /// reload what it shows.
    Reset,
}

/// An event on the tracker's stream to a peer, with the W3C `traceparent` of the
/// request that caused it, so the peer's handling joins that trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    #[serde(flatten)]
    pub event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub channel: ChannelName,
    pub username: Username,
    pub joined: bool,
    /// A private channel's: told to its members (and the user) only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub username: Username,
    /// The user's new home.
    pub to: PeerAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The direct message's id.
    pub id: String,
    pub to: Username,
}

/// A user's presence: `online` while signed in on a live peer, `active` while they
/// also have the chat open (an event stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub username: Username,
    pub online: bool,
    #[serde(default)]
    pub active: bool,
}

impl Event {
    /// The SSE `event:` name, the same as the JSON `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ChannelMessage(_) => "channel_message",
            Event::DirectMessage(_) => "direct_message",
            Event::Membership(_) => "membership",
            Event::Presence(_) => "presence",
            Event::Delivered(_) => "delivered",
            Event::MessageEdited(_) => "message_edited",
            Event::MessageDeleted(_) => "message_deleted",
            Event::Reaction(_) => "reaction",
            Event::Typing(_) => "typing",
            Event::Read(_) => "read",
            Event::Mention(_) => "mention",
            Event::ChannelUpdated(_) => "channel_updated",
            Event::ChannelRead(_) => "channel_read",
            Event::Moved(_) => "moved",
            Event::SessionRevoked(_) => "session_revoked",
            Event::Reset => "reset",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MessageKey, Reaction};
    use crate::check;
    use crate::names::{Emoji, MessageText};

    #[test]
    fn events_are_tagged_by_type() {
        let event =
            Event::Presence(Presence { username: Username::parse("bob").unwrap(), online: true, active: false });
        check(&event, r#"{"type":"presence","username":"bob","online":true,"active":false}"#);
        assert_eq!(event.name(), "presence");
        check(&Event::Reset, r#"{"type":"reset"}"#);
        let membership = Event::Membership(Membership {
            channel: ChannelName::parse("general").unwrap(),
            username: Username::parse("bob").unwrap(),
            joined: false,
            private: false,
        });
        check(&membership, r#"{"type":"membership","channel":"general","username":"bob","joined":false}"#);
        let revoked = Event::SessionRevoked(RevokedSession { sid: "s1".into(), expires_at: 20 });
        check(&revoked, r#"{"type":"session_revoked","sid":"s1","expires_at":20}"#);
        assert_eq!(revoked.name(), "session_revoked");
    }

    #[test]
    fn direct_message_changes_name_the_conversation_and_the_message_id_as_text() {
        let bob = Username::parse("bob").unwrap();
        let edited = Event::MessageEdited(MessageEdited {
            channel: None,
            with: Some(bob.clone()),
            id: MessageKey::Direct("0190".into()),
            message: MessageText::parse("fixed").unwrap(),
            edited_at: 7,
            mentions: Vec::new(),
        });
        check(&edited, r#"{"type":"message_edited","with":"bob","id":"0190","message":"fixed","edited_at":7}"#);
        let reaction = Event::Reaction(Reactions {
            channel: None,
            with: Some(bob.clone()),
            id: MessageKey::Direct("0190".into()),
            reactions: vec![Reaction { emoji: Emoji::parse("👍").unwrap(), users: vec![bob.clone()] }],
        });
        check(
            &reaction,
            r#"{"type":"reaction","with":"bob","id":"0190","reactions":[{"emoji":"👍","users":["bob"]}]}"#,
        );
        let typing = Event::Typing(Typing { channel: None, username: bob.clone(), to: Some(bob.clone()) });
        check(&typing, r#"{"type":"typing","username":"bob","to":"bob"}"#);
        check(
            &Event::Read(Read { channel: None, with: Some(bob), up_to: Some(3) }),
            r#"{"type":"read","with":"bob","up_to":3}"#,
        );
        let deleted = MessageDeleted { channel: None, with: None, id: MessageKey::Channel(12) };
        check(&Event::MessageDeleted(deleted), r#"{"type":"message_deleted","id":12}"#);
    }

    #[test]
    fn pushed_events_carry_an_optional_traceparent_beside_the_type() {
        let pushed = Pushed { event: Event::Reset, traceparent: Some("00-abc-def-01".into()) };
        check(&pushed, r#"{"type":"reset","traceparent":"00-abc-def-01"}"#);
        let presence = r#"{"type":"presence","username":"bob","online":false}"#;
        let parsed: Pushed = serde_json::from_str(presence).unwrap();
        assert_eq!(parsed.traceparent, None);
        assert!(matches!(parsed.event, Event::Presence(_)));
    }
}
