//! Helpers of the PostgreSQL store that several of its modules share: who a change
//! goes to, what a new post carries besides its text, and filling in reply previews
//! and reactions of messages read back.

use std::collections::HashMap;

use deadpool_postgres::{Object, Pool, Transaction};
use wire::addr::PeerAddr;
use wire::api::{ChannelMessage, MessageKey, Reaction, ReplyPreview};
use wire::names::{ChannelName, Emoji, MessageText, Username};

use super::log::parse;
use crate::store::model::{StoreError, add_reaction, mention_candidates, mentions_in};

/// A new post's parent (checked to be a message of the same channel) and the members
/// its text mentions. Each costs a query only when there is one.
pub(super) async fn post_extras(
    pool: &Pool,
    channel: &ChannelName,
    user: &Username,
    text: &MessageText,
    reply_to: Option<u64>,
) -> Result<(Option<u64>, Vec<Username>), StoreError> {
    if let Some(parent) = reply_to {
        let parent_channel = pool
            .get()
            .await?
            .query_opt("SELECT channel FROM tracker_messages WHERE id = $1", &[&(parent as i64)])
            .await?
            .map(|row| row.get::<_, String>(0));
        if parent_channel.as_deref() != Some(channel.as_str()) {
            return Err(StoreError::NoMessage(channel.clone(), parent));
        }
    }
    let candidates = mention_candidates(text.as_str());
    if candidates.is_empty() {
        return Ok((reply_to, Vec::new()));
    }
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT username FROM tracker_members WHERE channel = $1 AND username = ANY($2)",
            &[&channel.as_str(), &candidates],
        )
        .await?;
    let members: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    Ok((reply_to, mentions_in(text.as_str(), user, |name| members.iter().any(|member| member == name))))
}

/// Whether `channel` is private.
pub(super) async fn is_private(tx: &Transaction<'_>, channel: &ChannelName) -> Result<bool, StoreError> {
    let row = tx.query_opt("SELECT private FROM tracker_channels WHERE name = $1", &[&channel.as_str()]).await?;
    Ok(row.is_some_and(|row| row.get(0)))
}

/// The peers hosting members of `channel` now, and `user`'s.
pub(super) async fn member_hosts(
    tx: &Transaction<'_>,
    channel: &ChannelName,
    user: &Username,
) -> Result<Vec<PeerAddr>, StoreError> {
    let rows = tx
        .query(
            "SELECT DISTINCT d.ip, d.port FROM tracker_directory d
             WHERE d.online AND (d.username = $2 OR EXISTS
                 (SELECT 1 FROM tracker_members m WHERE m.channel = $1 AND m.username = d.username))",
            &[&channel.as_str(), &user.as_str()],
        )
        .await?;
    Ok(rows.iter().map(|row| PeerAddr { ip: row.get(0), port: row.get::<_, i32>(1) as u16 }).collect())
}

/// Fills in the reply previews of `messages` (those with `reply_to`).
pub(super) async fn fill_replies(conn: &Object, messages: Vec<&mut ChannelMessage>) -> Result<(), StoreError> {
    let parents: Vec<i64> = messages.iter().filter_map(|message| message.reply_to).map(|id| id as i64).collect();
    if parents.is_empty() {
        return Ok(());
    }
    let statement = conn
        .prepare_cached("SELECT id, channel, username, text, deleted FROM tracker_messages WHERE id = ANY($1)")
        .await?;
    let mut previews = HashMap::new();
    for row in conn.query(&statement, &[&parents]).await? {
        let id = row.get::<_, i64>(0) as u64;
        let channel = parse(row.get(1), ChannelName::parse)?;
        let preview =
            ReplyPreview::of(MessageKey::Channel(id), parse(row.get(2), Username::parse)?, row.get(3), row.get(4));
        previews.insert(id, (channel, preview));
    }
    for message in messages {
        let Some(parent) = message.reply_to else { continue };
        message.reply = previews
            .get(&parent)
            .filter(|(channel, _)| *channel == message.channel)
            .map(|(_, preview)| preview.clone());
    }
    Ok(())
}

/// Fills in the reply previews and reactions of `messages`.
pub(super) async fn enrich(conn: &Object, messages: &mut [ChannelMessage]) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = messages.iter().map(|message| message.id as i64).collect();
    let statement = conn
        .prepare_cached(
            "SELECT message_id, emoji, username FROM tracker_reactions WHERE message_id = ANY($1) ORDER BY seq",
        )
        .await?;
    let mut reactions: HashMap<u64, Vec<Reaction>> = HashMap::new();
    for row in conn.query(&statement, &[&ids]).await? {
        let id = row.get::<_, i64>(0) as u64;
        add_reaction(
            reactions.entry(id).or_default(),
            parse(row.get(1), Emoji::parse)?,
            parse(row.get(2), Username::parse)?,
        );
    }
    for message in messages.iter_mut() {
        message.reactions = reactions.remove(&message.id).unwrap_or_default();
    }
    fill_replies(conn, messages.iter_mut().collect()).await
}
