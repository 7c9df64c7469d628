//! Full-text search of channel messages in the cluster store: PostgreSQL's text
//! search over `tracker_messages.search`, a `tsvector` the database computes from the
//! text (schema migration 4), under a GIN index.

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
        query_messages(
            &conn,
            "WHERE search @@ plainto_tsquery('simple', $1)
               AND channel IN (SELECT channel FROM tracker_members WHERE username = $2)
               AND ($3::text IS NULL OR channel = $3)
             ORDER BY id DESC LIMIT $4",
            &[&query.plain_text(), &user.as_str(), &channel.map(ChannelName::as_str), &(limit as i64)],
        )
        .await
    }
}
