//! Full-text search of channel messages in the embedded store: SQLite FTS5.
//!
//! `messages_search` (schema migration 4) indexes each message's words and its
//! channel as one token (`hex(channel)`, see [`kit::search::fts5_key`]). A search asks
//! the index for the words and, when the caller is in few channels, one of theirs, so
//! the engine walks only those lists, newest first, and stops at the limit; the rows
//! it finds are checked against `members` in SQL either way.

use kit::search::{SearchQuery, fts5_key, fts5_string};
use rusqlite::params;
use wire::api::ChannelMessage;
use wire::names::{ChannelName, Username};

use super::{SqliteStore, query_messages};
use crate::store::model::StoreError;

/// Up to this many channels, a search asks the index for them. A caller in more, and
/// in at least a quarter of all channels ([`asks_for_channels`]), reads the word's
/// matches newest first and keeps those in their channels. Asking for 100 channels
/// made each match of a rare word a seek in 100 lists: 45 ms at the 99th percentile
/// over a million messages, against 2 ms without (the search benchmark).
const MAX_KEYED_CHANNELS: usize = 16;

impl SqliteStore {
    /// The newest messages, at most `limit`, that contain every word of `query`, in
    /// the channels `user` is a member of now (only `channel`, when given).
    pub async fn search(
        &self,
        user: &Username,
        query: &SearchQuery,
        channel: Option<&ChannelName>,
        limit: u64,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        let (user, channel) = (user.clone(), channel.cloned());
        let words = query.fts5("text");
        let found = self
            .db
            .read(move |conn| {
                let mut statement = conn.prepare_cached("SELECT channel FROM members WHERE username = ?1")?;
                let joined = statement.query_map([user.as_str()], |row| row.get::<_, String>(0))?;
                let keys = joined
                    .filter(|name| match (name, &channel) {
                        (Ok(name), Some(only)) => name == only.as_str(),
                        _ => true,
                    })
                    .map(|name| name.map(|name| fts5_string(&fts5_key(&name))))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let channels: i64 =
                    conn.prepare_cached("SELECT COUNT(*) FROM channels")?.query_row([], |row| row.get(0))?;
                let expression = if asks_for_channels(keys.len(), channels as usize) {
                    format!("{words} AND channel_key : ({})", keys.join(" OR "))
                } else {
                    words
                };
                query_messages(
                    conn,
                    "WHERE id IN (
                         SELECT s.rowid FROM messages_search AS s JOIN messages AS m ON m.id = s.rowid
                         WHERE messages_search MATCH ?1
                           AND m.channel IN (SELECT channel FROM members WHERE username = ?2)
                         ORDER BY s.rowid DESC LIMIT ?3)
                     ORDER BY id DESC",
                    params![expression, user.as_str(), limit as i64],
                )
            })
            .await?;
        Ok(found)
    }
}

/// Whether a search over `mine` channels of `all` asks the index for them. Without,
/// its cost grows with the matches in everyone's channels; with, with the messages of
/// the caller's own: a caller in few channels, or in a small share of them, pays for
/// theirs only.
fn asks_for_channels(mine: usize, all: usize) -> bool {
    mine <= MAX_KEYED_CHANNELS || mine * 4 < all
}

#[cfg(test)]
mod tests {
    #[test]
    fn few_channels_or_a_small_share_of_them_are_asked_for() {
        assert!(super::asks_for_channels(16, 100));
        assert!(!super::asks_for_channels(17, 68));
        assert!(!super::asks_for_channels(100, 100));
        assert!(super::asks_for_channels(50, 1000), "a small share");
    }
}
