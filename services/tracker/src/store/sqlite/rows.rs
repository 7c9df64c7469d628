//! Row helpers of the embedded store that its modules share: authorship checks,
//! reply previews, mentions, and filling in reply previews and reactions of messages
//! read back.

use std::collections::HashMap;

use kit::db::parse_column;
use rusqlite::{Connection, OptionalExtension, params};
use wire::api::{ChannelMessage, MessageKey, Reaction, ReplyPreview};
use wire::names::{ChannelName, Emoji, Username};

use crate::store::model::{StoreError, add_reaction};

/// Whether message `id` of `channel` exists, is `user`'s and is not deleted.
pub(super) fn check_author(
    conn: &Connection,
    channel: &ChannelName,
    user: &Username,
    id: u64,
) -> rusqlite::Result<Result<(), StoreError>> {
    let row: Option<(String, bool)> = conn
        .prepare_cached("SELECT username, deleted FROM messages WHERE id = ?1 AND channel = ?2")?
        .query_row(params![id as i64, channel.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Err(StoreError::NoMessage(channel.clone(), id)),
        Some((author, _)) if author != user.as_str() => Err(StoreError::NotAuthor(id)),
        Some((_, true)) => Err(StoreError::Deleted(id)),
        Some(_) => Ok(()),
    })
}

/// The preview of message `id` of `channel`, if it is one of that channel's.
pub(super) fn reply_preview(
    conn: &Connection,
    channel: &ChannelName,
    id: u64,
) -> rusqlite::Result<Option<ReplyPreview>> {
    conn.prepare_cached("SELECT username, text, deleted FROM messages WHERE id = ?1 AND channel = ?2")?
        .query_row(params![id as i64, channel.as_str()], |row| {
            let username = parse_column(row, 0, Username::parse)?;
            Ok(ReplyPreview::of(MessageKey::Channel(id), username, &row.get::<_, String>(1)?, row.get(2)?))
        })
        .optional()
}

/// Records who message `id` mentions, for their mention counts.
pub(super) fn record_mentions(
    conn: &Connection,
    channel: &ChannelName,
    id: u64,
    mentions: &[Username],
) -> rusqlite::Result<()> {
    for user in mentions {
        conn.prepare_cached("INSERT OR IGNORE INTO mentions (username, channel, message_id) VALUES (?1, ?2, ?3)")?
            .execute(params![user.as_str(), channel.as_str(), id as i64])?;
    }
    Ok(())
}

/// Fills in the reply previews and reactions of `messages`.
pub(super) fn enrich(conn: &Connection, messages: &mut [ChannelMessage]) -> rusqlite::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<u64> = messages.iter().map(|message| message.id).collect();
    let mut reactions = reactions_of(conn, &ids)?;
    for message in messages.iter_mut() {
        message.reactions = reactions.remove(&message.id).unwrap_or_default();
        if let Some(parent) = message.reply_to {
            message.reply = reply_preview(conn, &message.channel, parent)?;
        }
    }
    Ok(())
}

/// The reactions of the messages `ids`, each in the order of first use.
pub(super) fn reactions_of(conn: &Connection, ids: &[u64]) -> rusqlite::Result<HashMap<u64, Vec<Reaction>>> {
    let ids = serde_json::to_string(ids).expect("numbers serialize to JSON");
    let mut statement = conn.prepare_cached(
        "SELECT message_id, emoji, username FROM reactions
         WHERE message_id IN (SELECT value FROM json_each(?1)) ORDER BY seq",
    )?;
    let rows = statement.query_map([ids], |row| {
        Ok((row.get::<_, i64>(0)? as u64, parse_column(row, 1, Emoji::parse)?, parse_column(row, 2, Username::parse)?))
    })?;
    let mut reactions: HashMap<u64, Vec<Reaction>> = HashMap::new();
    for row in rows {
        let (id, emoji, user) = row?;
        add_reaction(reactions.entry(id).or_default(), emoji, user);
    }
    Ok(reactions)
}
