//! The cluster backend's chat features: replies, mentions, edits, tombstones,
//! reactions, read state, topics, private channels and typing. Every change is an
//! event in the log, so peers connected to any replica hear of it.

use deadpool_postgres::Transaction;
use wire::addr::PeerAddr;
use wire::api::{ChannelSummary, MAX_REACTIONS, MAX_UNREAD_COUNT, MessageKey, Reaction};
use wire::events::{ChannelRead, ChannelUpdated, Event, MessageDeleted, MessageEdited, Reactions, Typing};
use wire::names::{ChannelName, Emoji, MessageText, Username};

use super::PgStore;
use super::log::{append_event, log_transaction, parse};
use crate::store::model::{StoreError, add_reaction, mentions_column, mentions_in};

impl PgStore {
    pub async fn can_see(&self, channel: &ChannelName, user: &Username) -> Result<bool, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT 1 FROM tracker_channels c WHERE c.name = $1 AND (NOT c.private OR EXISTS
                     (SELECT 1 FROM tracker_members m WHERE m.channel = c.name AND m.username = $2))",
                &[&channel.as_str(), &user.as_str()],
            )
            .await?;
        Ok(row.is_some())
    }

    pub async fn visible_channels(&self, user: &Username) -> Result<Vec<ChannelName>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT c.name FROM tracker_channels c WHERE NOT c.private OR EXISTS
                     (SELECT 1 FROM tracker_members m WHERE m.channel = c.name AND m.username = $1)
                 ORDER BY c.name COLLATE \"C\"",
                &[&user.as_str()],
            )
            .await?;
        rows.iter().map(|row| parse(row.get(0), ChannelName::parse)).collect()
    }

    pub async fn summaries(&self, user: &Username) -> Result<Vec<ChannelSummary>, StoreError> {
        let cap = MAX_UNREAD_COUNT as i64;
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT m.channel, m.last_read, c.topic, c.private,
                     (SELECT COUNT(*) FROM (SELECT 1 FROM tracker_messages x
                          WHERE x.channel = m.channel AND x.id > m.last_read AND x.username <> m.username
                            AND NOT x.deleted LIMIT $2) AS u),
                     (SELECT COUNT(*) FROM (SELECT 1 FROM tracker_mentions x
                          WHERE x.username = m.username AND x.channel = m.channel AND x.message_id > m.last_read
                          LIMIT $2) AS n)
                 FROM tracker_members m JOIN tracker_channels c ON c.name = m.channel
                 WHERE m.username = $1 ORDER BY m.channel COLLATE \"C\"",
                &[&user.as_str(), &cap],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ChannelSummary {
                    name: parse(row.get(0), ChannelName::parse)?,
                    last_read: row.get::<_, i64>(1) as u64,
                    topic: row.get(2),
                    private: row.get(3),
                    unread: row.get::<_, i64>(4) as u64,
                    mentions: row.get::<_, i64>(5) as u64,
                })
            })
            .collect()
    }

    pub async fn edit(
        &self,
        channel: &ChannelName,
        user: &Username,
        id: u64,
        text: &MessageText,
    ) -> Result<MessageEdited, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        check_author(&tx, channel, user, id).await?;
        let members = member_names(&tx, channel).await?;
        let mentions = mentions_in(text.as_str(), user, |name| members.iter().any(|member| member == name));
        let edited_at = kit::now_ms();
        tx.execute(
            "UPDATE tracker_messages SET text = $1, edited_at = $2, mentions = $3 WHERE id = $4",
            &[&text.as_str(), &(edited_at as i64), &mentions_column(&mentions), &(id as i64)],
        )
        .await?;
        tx.execute("DELETE FROM tracker_mentions WHERE message_id = $1", &[&(id as i64)]).await?;
        for mentioned in &mentions {
            tx.execute(
                "INSERT INTO tracker_mentions (username, channel, message_id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&mentioned.as_str(), &channel.as_str(), &(id as i64)],
            )
            .await?;
        }
        let edited = MessageEdited {
            channel: Some(channel.clone()),
            with: None,
            id: MessageKey::Channel(id),
            message: text.clone(),
            edited_at,
            mentions,
        };
        push_to_members(&tx, channel, &Event::MessageEdited(edited.clone())).await?;
        tx.commit().await?;
        Ok(edited)
    }

    pub async fn delete(&self, channel: &ChannelName, user: &Username, id: u64) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        match check_author(&tx, channel, user, id).await {
            Ok(()) | Err(StoreError::Deleted(_)) => {}
            Err(refusal) => return Err(refusal),
        }
        let id_param = id as i64;
        tx.execute(
            "UPDATE tracker_messages SET text = '', deleted = TRUE, mentions = NULL WHERE id = $1",
            &[&id_param],
        )
        .await?;
        tx.execute("DELETE FROM tracker_reactions WHERE message_id = $1", &[&id_param]).await?;
        tx.execute("DELETE FROM tracker_mentions WHERE message_id = $1", &[&id_param]).await?;
        let deleted = MessageDeleted { channel: Some(channel.clone()), with: None, id: MessageKey::Channel(id) };
        push_to_members(&tx, channel, &Event::MessageDeleted(deleted)).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn react(
        &self,
        channel: &ChannelName,
        user: &Username,
        id: u64,
        emoji: &Emoji,
        on: bool,
    ) -> Result<Vec<Reaction>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let id_param = id as i64;
        let deleted = tx
            .query_opt(
                "SELECT deleted FROM tracker_messages WHERE id = $1 AND channel = $2",
                &[&id_param, &channel.as_str()],
            )
            .await?
            .map(|row| row.get::<_, bool>(0));
        match deleted {
            None => return Err(StoreError::NoMessage(channel.clone(), id)),
            Some(true) => return Err(StoreError::Deleted(id)),
            Some(false) => {}
        }
        let changed = if on {
            let others = tx
                .query_one(
                    "SELECT COUNT(DISTINCT emoji) FROM tracker_reactions WHERE message_id = $1 AND emoji <> $2",
                    &[&id_param, &emoji.as_str()],
                )
                .await?
                .get::<_, i64>(0);
            if others as usize >= MAX_REACTIONS {
                return Err(StoreError::TooManyReactions(id));
            }
            tx.execute(
                "INSERT INTO tracker_reactions (message_id, emoji, username) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&id_param, &emoji.as_str(), &user.as_str()],
            )
            .await?
        } else {
            tx.execute(
                "DELETE FROM tracker_reactions WHERE message_id = $1 AND emoji = $2 AND username = $3",
                &[&id_param, &emoji.as_str(), &user.as_str()],
            )
            .await?
        } == 1;
        let rows = tx
            .query("SELECT emoji, username FROM tracker_reactions WHERE message_id = $1 ORDER BY seq", &[&id_param])
            .await?;
        let mut reactions = Vec::new();
        for row in rows {
            add_reaction(&mut reactions, parse(row.get(0), Emoji::parse)?, parse(row.get(1), Username::parse)?);
        }
        // Idempotent: only a change is told.
        if changed {
            let change = Reactions {
                channel: Some(channel.clone()),
                with: None,
                id: MessageKey::Channel(id),
                reactions: reactions.clone(),
            };
            push_to_members(&tx, channel, &Event::Reaction(change)).await?;
        }
        tx.commit().await?;
        Ok(reactions)
    }

    pub async fn mark_read(
        &self,
        channel: &ChannelName,
        user: &Username,
        up_to: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let up_to = up_to.map_or(i64::MAX, |id| id.min(i64::MAX as u64) as i64);
        let row = tx
            .query_opt(
                "UPDATE tracker_members SET last_read = GREATEST(last_read,
                     LEAST($3, (SELECT COALESCE(MAX(id), 0) FROM tracker_messages WHERE channel = $1)))
                 WHERE channel = $1 AND username = $2 RETURNING last_read",
                &[&channel.as_str(), &user.as_str(), &up_to],
            )
            .await?;
        let Some(row) = row else { return Err(StoreError::NotAMember(channel.clone())) };
        let last_read = row.get::<_, i64>(0) as u64;
        let home = tx
            .query_opt("SELECT ip, port FROM tracker_directory WHERE username = $1 AND online", &[&user.as_str()])
            .await?;
        let targets: Vec<PeerAddr> =
            home.map(|row| PeerAddr { ip: row.get(0), port: row.get::<_, i32>(1) as u16 }).into_iter().collect();
        let event =
            Event::ChannelRead(ChannelRead { username: user.clone(), channel: channel.clone(), up_to: last_read });
        append_event(&tx, &event, Some(&targets), kit::telemetry::current_traceparent().as_deref()).await?;
        tx.commit().await?;
        Ok(last_read)
    }

    pub async fn set_topic(
        &self,
        channel: &ChannelName,
        user: &Username,
        topic: &str,
    ) -> Result<ChannelUpdated, StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let row = tx
            .query_opt(
                "UPDATE tracker_channels c SET topic = $3 WHERE c.name = $1 AND EXISTS
                     (SELECT 1 FROM tracker_members m WHERE m.channel = c.name AND m.username = $2)
                 RETURNING c.private",
                &[&channel.as_str(), &user.as_str(), &topic],
            )
            .await?;
        let Some(row) = row else { return Err(StoreError::NotAMember(channel.clone())) };
        let updated = ChannelUpdated { channel: channel.clone(), topic: topic.to_owned(), private: row.get(0) };
        push_to_members(&tx, channel, &Event::ChannelUpdated(updated.clone())).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Goes through the log (and is pruned with it) so that every replica's peers hear.
    pub async fn typing(&self, channel: &ChannelName, user: &Username) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = log_transaction(&mut conn).await?;
        let event = Event::Typing(Typing { channel: Some(channel.clone()), username: user.clone(), to: None });
        push_to_members(&tx, channel, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Appends `event` to the log for the peers hosting `channel`'s members.
async fn push_to_members(tx: &Transaction<'_>, channel: &ChannelName, event: &Event) -> Result<(), StoreError> {
    let rows = tx
        .query(
            "SELECT DISTINCT d.ip, d.port FROM tracker_members m JOIN tracker_directory d ON d.username = m.username
             WHERE d.online AND m.channel = $1",
            &[&channel.as_str()],
        )
        .await?;
    let targets: Vec<PeerAddr> =
        rows.iter().map(|row| PeerAddr { ip: row.get(0), port: row.get::<_, i32>(1) as u16 }).collect();
    append_event(tx, event, Some(&targets), kit::telemetry::current_traceparent().as_deref()).await
}

async fn member_names(tx: &Transaction<'_>, channel: &ChannelName) -> Result<Vec<String>, StoreError> {
    let rows = tx.query("SELECT username FROM tracker_members WHERE channel = $1", &[&channel.as_str()]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Whether message `id` of `channel` exists, is `user`'s and is not deleted; locks
/// its row for the change that follows.
async fn check_author(tx: &Transaction<'_>, channel: &ChannelName, user: &Username, id: u64) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT username, deleted FROM tracker_messages WHERE id = $1 AND channel = $2 FOR UPDATE",
            &[&(id as i64), &channel.as_str()],
        )
        .await?;
    match row {
        None => Err(StoreError::NoMessage(channel.clone(), id)),
        Some(row) if row.get::<_, &str>(0) != user.as_str() => Err(StoreError::NotAuthor(id)),
        Some(row) if row.get::<_, bool>(1) => Err(StoreError::Deleted(id)),
        Some(_) => Ok(()),
    }
}
