//! Full-text search of channel messages in the cluster store: PostgreSQL's text
//! search over `tracker_messages.search`, a `tsvector` the database computes from the
//! text (schema migration 4), under a GIN index.
//!
//! The best plan depends on the words: a common word is found fastest by walking the
//! newest messages and testing each, a rare one through the GIN index. A prepared
//! statement's generic plan knows neither, and picked a plan 100 times too slow in the
//! search benchmark, so the search is planned anew for its words each time (an
//! unnamed statement) and only yields ids; the messages are then read by id. The
//! caller's channels come as one array: joined row by row instead, the planner
//! intersected each channel's whole index with the word's (5 times slower for a rare
//! word).

use kit::search::SearchQuery;
use wire::api::ChannelMessage;
use wire::names::{ChannelName, Username};

use super::PgStore;
use super::log::query_messages;
use crate::store::model::StoreError;

impl PgStore {
    /// The newest messages, at most `limit`, that contain every word of `query`, in
    /// the channels `user` is a member of now (only `channel`, when given).
    pub async fn search(
        &self,
        user: &Username,
        query: &SearchQuery,
        channel: Option<&ChannelName>,
        limit: u64,
    ) -> Result<Vec<ChannelMessage>, StoreError> {
        let conn = self.conn().await?;
        // `plainto_tsquery` reads any text as words: user input is never syntax.
        let (words, user, limit) = (query.plain_text(), user.as_str(), limit as i64);
        let rows = match channel {
            None => {
                let sql = "SELECT id FROM tracker_messages
                           WHERE search @@ plainto_tsquery('simple', $1)
                             AND channel = ANY(ARRAY(SELECT channel FROM tracker_members WHERE username = $2))
                           ORDER BY id DESC LIMIT $3";
                conn.query(sql, &[&words, &user, &limit]).await?
            }
            Some(channel) => {
                let sql = "SELECT id FROM tracker_messages
                           WHERE search @@ plainto_tsquery('simple', $1) AND channel = $3
                             AND EXISTS (SELECT 1 FROM tracker_members WHERE channel = $3 AND username = $2)
                           ORDER BY id DESC LIMIT $4";
                conn.query(sql, &[&words, &user, &channel.as_str(), &limit]).await?
            }
        };
        let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        query_messages(&conn, "WHERE id = ANY($1) ORDER BY id DESC", &[&ids]).await
    }
}
