//! The embedded backend's chat features: replies, mentions, edits, tombstones,
//! reactions, read state, topics, private channels and typing.

use std::sync::Arc;

use kit::db::parse_column;
use rusqlite::{OptionalExtension, params};
use wire::api::{ChannelSummary, MAX_REACTIONS, MAX_UNREAD_COUNT, MessageKey, Reaction};
use wire::events::{ChannelRead, ChannelUpdated, Event, MessageDeleted, MessageEdited, Reactions, Typing};
use wire::names::{ChannelName, Emoji, MessageText, Username};

use super::SqliteStore;
use super::rows::{check_author, reactions_of, record_mentions};
use super::view::{hosts_of_members, read_view, write};
use crate::store::model::{Push, StoreError, Targets, mentions_column, mentions_in};

impl SqliteStore {
    /// Whether `channel` exists and `user` may see it (public, or a member).
    pub async fn can_see(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        Ok(self.read().can_see(channel, user))
    }

    /// The channels `user` may see, sorted.
    pub async fn visible_channels(&self, user: &Username) -> Result<Vec<ChannelName>, StoreError> {
        let view = self.read();
        Ok(view.channels.keys().filter(|channel| view.can_see(channel, user)).cloned().collect())
    }

    /// `user`'s channels with topic, privacy and read state.
    pub async fn summaries(&self, user: &Username) -> Result<Vec<ChannelSummary>, StoreError> {
        let user = user.clone();
        let (private, topics) = {
            let view = self.read();
            (view.private.clone(), view.topics.clone())
        };
        let rows = self
            .db
            .read(move |conn| {
                let mut memberships =
                    conn.prepare_cached("SELECT channel, last_read FROM members WHERE username = ?1 ORDER BY channel")?;
                let rows = memberships
                    .query_map([user.as_str()], |row| {
                        Ok((parse_column(row, 0, ChannelName::parse)?, row.get::<_, i64>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut summaries = Vec::with_capacity(rows.len());
                for (channel, last_read) in rows {
                    let unread: i64 = conn
                        .prepare_cached(
                            "SELECT COUNT(*) FROM (SELECT 1 FROM messages
                             WHERE channel = ?1 AND id > ?2 AND username <> ?3 AND NOT deleted LIMIT ?4)",
                        )?
                        .query_row(
                            params![channel.as_str(), last_read, user.as_str(), MAX_UNREAD_COUNT as i64],
                            |row| row.get(0),
                        )?;
                    let mentions: i64 = conn
                        .prepare_cached(
                            "SELECT COUNT(*) FROM (SELECT 1 FROM mentions
                             WHERE username = ?1 AND channel = ?2 AND message_id > ?3 LIMIT ?4)",
                        )?
                        .query_row(
                            params![user.as_str(), channel.as_str(), last_read, MAX_UNREAD_COUNT as i64],
                            |row| row.get(0),
                        )?;
                    summaries.push((channel, last_read as u64, unread as u64, mentions as u64));
                }
                Ok(summaries)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, last_read, unread, mentions)| ChannelSummary {
                topic: topics.get(&name).cloned().unwrap_or_default(),
                private: private.contains(&name),
                name,
                unread,
                mentions,
                last_read,
            })
            .collect())
    }

    /// The author edits a message: new text, new mentions.
    pub async fn edit(
        &self,
        channel: &ChannelName,
        user: &Username,
        id: u64,
        text: &MessageText,
    ) -> Result<MessageEdited, StoreError> {
        let mentions = self.mentions(channel, user, text);
        let (channel, user, text) = (channel.clone(), user.clone(), text.clone());
        self.db
            .write_then(
                move |conn| {
                    if let Err(refusal) = check_author(conn, &channel, &user, id)? {
                        return Ok(Err(refusal));
                    }
                    let edited_at = kit::now_ms();
                    conn.execute(
                        "UPDATE messages SET text = ?1, edited_at = ?2, mentions = ?3 WHERE id = ?4",
                        params![text.as_str(), edited_at as i64, mentions_column(&mentions), id as i64],
                    )?;
                    conn.execute("DELETE FROM mentions WHERE message_id = ?1", [id as i64])?;
                    record_mentions(conn, &channel, id, &mentions)?;
                    Ok(Ok(MessageEdited {
                        channel: Some(channel),
                        with: None,
                        id: MessageKey::Channel(id),
                        message: text,
                        edited_at,
                        mentions,
                    }))
                },
                self.channel_hook(|edited: &MessageEdited| {
                    (edited.channel.clone(), Event::MessageEdited(edited.clone()))
                }),
            )
            .await?
    }

    /// The author deletes a message: a tombstone stays, without text or reactions.
    pub async fn delete(&self, channel: &ChannelName, user: &Username, id: u64) -> Result<(), StoreError> {
        let (channel, user) = (channel.clone(), user.clone());
        let deleted = self
            .db
            .write_then(
                move |conn| {
                    match check_author(conn, &channel, &user, id)? {
                        Ok(()) | Err(StoreError::Deleted(_)) => {}
                        Err(refusal) => return Ok(Err(refusal)),
                    }
                    conn.execute(
                        "UPDATE messages SET text = '', deleted = 1, mentions = NULL WHERE id = ?1",
                        [id as i64],
                    )?;
                    conn.execute("DELETE FROM reactions WHERE message_id = ?1", [id as i64])?;
                    conn.execute("DELETE FROM mentions WHERE message_id = ?1", [id as i64])?;
                    Ok(Ok(MessageDeleted { channel: Some(channel), with: None, id: MessageKey::Channel(id) }))
                },
                self.channel_hook(|deleted: &MessageDeleted| {
                    (deleted.channel.clone(), Event::MessageDeleted(deleted.clone()))
                }),
            )
            .await?;
        deleted.map(drop)
    }

    /// A member puts `emoji` on a message or takes it off; returns its reactions.
    pub async fn react(
        &self,
        channel: &ChannelName,
        user: &Username,
        id: u64,
        emoji: &Emoji,
        on: bool,
    ) -> Result<Vec<Reaction>, StoreError> {
        let (channel, user, emoji) = (channel.clone(), user.clone(), emoji.clone());
        let changed = self
            .db
            .write_then(
                move |conn| {
                    let deleted: Option<bool> = conn
                        .prepare_cached("SELECT deleted FROM messages WHERE id = ?1 AND channel = ?2")?
                        .query_row(params![id as i64, channel.as_str()], |row| row.get(0))
                        .optional()?;
                    match deleted {
                        None => return Ok(Err(StoreError::NoMessage(channel, id))),
                        Some(true) => return Ok(Err(StoreError::Deleted(id))),
                        Some(false) => {}
                    }
                    let changed = if on {
                        let emojis: i64 = conn.query_row(
                            "SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = ?1 AND emoji <> ?2",
                            params![id as i64, emoji.as_str()],
                            |row| row.get(0),
                        )?;
                        if emojis as usize >= MAX_REACTIONS {
                            return Ok(Err(StoreError::TooManyReactions(id)));
                        }
                        conn.execute(
                            "INSERT OR IGNORE INTO reactions (message_id, emoji, username) VALUES (?1, ?2, ?3)",
                            params![id as i64, emoji.as_str(), user.as_str()],
                        )?
                    } else {
                        conn.execute(
                            "DELETE FROM reactions WHERE message_id = ?1 AND emoji = ?2 AND username = ?3",
                            params![id as i64, emoji.as_str(), user.as_str()],
                        )?
                    } == 1;
                    let reactions = reactions_of(conn, &[id])?.remove(&id).unwrap_or_default();
                    Ok(Ok((
                        changed,
                        Reactions { channel: Some(channel), with: None, id: MessageKey::Channel(id), reactions },
                    )))
                },
                {
                    let hook = self.channel_hook(|(_, change): &(bool, Reactions)| {
                        (change.channel.clone(), Event::Reaction(change.clone()))
                    });
                    move |outcome: &Result<(bool, Reactions), StoreError>| {
                        // Idempotent: only a change is told.
                        if matches!(outcome, Ok((true, _))) {
                            hook(outcome);
                        }
                    }
                },
            )
            .await?;
        changed.map(|(_, change)| change.reactions)
    }

    /// A member has read `channel` up to `up_to` (its newest message without one);
    /// the read state never moves back. Returns where it stands.
    pub async fn mark_read(
        &self,
        channel: &ChannelName,
        user: &Username,
        up_to: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (name, reader) = (channel.clone(), user.clone());
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
        let up_to = up_to.map_or(i64::MAX, |id| id.min(i64::MAX as u64) as i64);
        self.db
            .write_then(
                move |conn| {
                    let updated = conn.execute(
                        "UPDATE members SET last_read = MAX(last_read,
                             MIN(?3, (SELECT COALESCE(MAX(id), 0) FROM messages WHERE channel = ?1)))
                         WHERE channel = ?1 AND username = ?2",
                        params![name.as_str(), reader.as_str(), up_to],
                    )?;
                    if updated == 0 {
                        return Ok(Err(StoreError::NotAMember(name)));
                    }
                    let last_read: i64 = conn.query_row(
                        "SELECT last_read FROM members WHERE channel = ?1 AND username = ?2",
                        params![name.as_str(), reader.as_str()],
                        |row| row.get(0),
                    )?;
                    Ok(Ok(last_read as u64))
                },
                {
                    let (channel, user) = (channel.clone(), user.clone());
                    move |last_read: &Result<u64, StoreError>| {
                        let Ok(up_to) = last_read else { return };
                        let targets = Targets::Peers(read_view(&view).host_of(&user).into_iter().collect());
                        let event = Event::ChannelRead(ChannelRead { username: user, channel, up_to: *up_to });
                        let _ = events.send(Arc::new(Push::new(None, event, targets, traceparent)));
                    }
                },
            )
            .await?
    }

    /// A member sets the channel's topic.
    pub async fn set_topic(
        &self,
        channel: &ChannelName,
        user: &Username,
        topic: &str,
    ) -> Result<ChannelUpdated, StoreError> {
        let (name, member, topic) = (channel.clone(), user.clone(), topic.to_owned());
        let private = self.read().private.contains(channel);
        let view = self.view.clone();
        let hook = self.channel_hook(|updated: &ChannelUpdated| {
            (Some(updated.channel.clone()), Event::ChannelUpdated(updated.clone()))
        });
        self.db
            .write_then(
                move |conn| {
                    let member: Option<i64> = conn
                        .prepare_cached("SELECT 1 FROM members WHERE channel = ?1 AND username = ?2")?
                        .query_row(params![name.as_str(), member.as_str()], |row| row.get(0))
                        .optional()?;
                    if member.is_none() {
                        return Ok(Err(StoreError::NotAMember(name)));
                    }
                    conn.execute("UPDATE channels SET topic = ?1 WHERE name = ?2", params![topic, name.as_str()])?;
                    Ok(Ok(ChannelUpdated { channel: name, topic, private }))
                },
                move |updated: &Result<ChannelUpdated, StoreError>| {
                    if let Ok(change) = updated {
                        write(&view).topics.insert(change.channel.clone(), change.topic.clone());
                        hook(updated);
                    }
                },
            )
            .await?
    }

    /// Tells the other members' peers that `user` is typing in `channel` (not stored).
    pub async fn typing(&self, channel: &ChannelName, user: &Username) -> Result<(), StoreError> {
        let targets = Targets::Peers(hosts_of_members(&self.read(), channel));
        let event = Event::Typing(Typing { channel: Some(channel.clone()), username: user.clone(), to: None });
        self.publish(Push::new(None, event, targets, kit::telemetry::current_traceparent()));
        Ok(())
    }

    /// The members of `channel` that `text` mentions.
    fn mentions(&self, channel: &ChannelName, author: &Username, text: &MessageText) -> Vec<Username> {
        let view = self.read();
        let Some(members) = view.channels.get(channel) else { return Vec::new() };
        mentions_in(text.as_str(), author, |name| Username::parse(name).is_ok_and(|name| members.contains(&name)))
    }

    /// A commit hook that pushes the event `make` gives for a successful write to the
    /// peers hosting the channel's members.
    fn channel_hook<T>(
        &self,
        make: impl Fn(&T) -> (Option<ChannelName>, Event) + Send + 'static,
    ) -> impl Fn(&Result<T, StoreError>) + Send + 'static {
        let view = self.view.clone();
        let events = self.events.clone();
        let traceparent = kit::telemetry::current_traceparent();
        move |outcome: &Result<T, StoreError>| {
            let Ok(value) = outcome else { return };
            let (channel, event) = make(value);
            let targets = channel.map(|channel| hosts_of_members(&read_view(&view), &channel)).unwrap_or_default();
            let _ = events.send(Arc::new(Push::new(None, event, Targets::Peers(targets), traceparent.clone())));
        }
    }
}
