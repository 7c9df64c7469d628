//! The chat features of [`Store`]: who may see a channel, read state, edits,
//! tombstones, reactions, topics, invitations and typing, on either backend.

use wire::api::{ChannelSummary, Reaction};
use wire::events::{ChannelUpdated, MessageEdited};
use wire::names::{ChannelName, Emoji, MessageText, Username};

use super::model::Access;
use super::{Store, StoreError};

macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Store::Sqlite(store) => store.$method($($arg),*).await,
            Store::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// What `user` is to `channel`; [`StoreError::NoChannel`] when it does not exist or
    /// is private and they are not a member (a private channel is invisible to others).
    pub async fn access(&self, channel: &ChannelName, user: &Username) -> Result<Access, StoreError> {
        if !dispatch!(self.can_see(channel, user))? {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        Ok(if self.is_member(channel, user).await? { Access::Member } else { Access::Outsider })
    }

    /// [`Store::access`], requiring a member: [`StoreError::NotAMember`] otherwise.
    pub async fn member_access(&self, channel: &ChannelName, user: &Username) -> Result<(), StoreError> {
        match self.access(channel, user).await? {
            Access::Member => Ok(()),
            Access::Outsider => Err(StoreError::NotAMember(channel.clone())),
        }
    }

    /// The channels `user` may see: the public ones and the private ones they are in.
    pub async fn visible_channels(&self, user: &Username) -> Result<Vec<ChannelName>, StoreError> {
        dispatch!(self.visible_channels(user))
    }

    /// `user`'s channels with topic, privacy, unread and mention counts, read state.
    pub async fn summaries(&self, user: &Username) -> Result<Vec<ChannelSummary>, StoreError> {
        dispatch!(self.summaries(user))
    }

    /// The author edits message `id` of `channel`; pushes `message_edited`.
    pub async fn edit(
        &self,
        channel: &ChannelName,
        user: &Username,
        id: u64,
        text: &MessageText,
    ) -> Result<MessageEdited, StoreError> {
        dispatch!(self.edit(channel, user, id, text))
    }

    /// The author deletes message `id` of `channel`; pushes `message_deleted`.
    pub async fn delete(&self, channel: &ChannelName, user: &Username, id: u64) -> Result<(), StoreError> {
        dispatch!(self.delete(channel, user, id))
    }

    /// Puts `emoji` by `user` on message `id` (`on`) or takes it off; pushes `reaction`
    /// when that changed something. Returns the message's reactions.
    pub async fn react(
        &self,
        channel: &ChannelName,
        user: &Username,
        id: u64,
        emoji: &Emoji,
        on: bool,
    ) -> Result<Vec<Reaction>, StoreError> {
        dispatch!(self.react(channel, user, id, emoji, on))
    }

    /// Moves `user`'s read state of `channel` forward to `up_to` (the newest message
    /// without one); pushes `read` to their peer. Returns where it stands.
    pub async fn mark_read(
        &self,
        channel: &ChannelName,
        user: &Username,
        up_to: Option<u64>,
    ) -> Result<u64, StoreError> {
        dispatch!(self.mark_read(channel, user, up_to))
    }

    /// A member sets the topic; pushes `channel_updated`.
    pub async fn set_topic(
        &self,
        channel: &ChannelName,
        user: &Username,
        topic: &str,
    ) -> Result<ChannelUpdated, StoreError> {
        dispatch!(self.set_topic(channel, user, topic))
    }

    /// A member adds `user` to the channel. Returns false when they were a member.
    pub async fn invite(&self, channel: &ChannelName, by: &Username, user: &Username) -> Result<bool, StoreError> {
        self.member_access(channel, by).await?;
        self.join(channel, user).await
    }

    /// Pushes `typing` to the peers of `channel`'s members (nothing is stored).
    pub async fn typing(&self, channel: &ChannelName, user: &Username) -> Result<(), StoreError> {
        dispatch!(self.typing(channel, user))
    }
}
