//! Ids the peer mints or follows, as their own types.
//!
//! On the wire they stay what they were (a string, a number): these types only keep
//! one kind of id from being passed where another is meant.

use std::fmt;

/// The id of a direct message: a UUIDv7 in simple form, so ids sort by creation time
/// and the recipient's peer files each message once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// A new id, unique and later than every id this process minted before.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.0
    }
}

/// The id of a channel message: the tracker's (the database's, in cluster mode, so
/// the same on every tracker replica), increasing. The push stream resumes after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelMessageId(pub u64);

impl ChannelMessageId {
    /// The id an SSE event carries, if it is one.
    pub fn parse(raw: &str) -> Option<Self> {
        raw.trim().parse().ok().map(Self)
    }
}

impl fmt::Display for ChannelMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_32_hex_digits_and_increase() {
        let (first, second) = (MessageId::new(), MessageId::new());
        assert_eq!(first.as_str().len(), 32);
        assert!(first.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(second.as_str() > first.as_str());
    }

    #[test]
    fn channel_message_ids_parse_from_event_ids() {
        assert_eq!(ChannelMessageId::parse(" 42"), Some(ChannelMessageId(42)));
        assert_eq!(ChannelMessageId::parse(""), None);
        assert_eq!(ChannelMessageId::parse("x"), None);
    }
}
