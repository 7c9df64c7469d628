//! Reading channel history on PostgreSQL: pages, what a resuming stream missed, the
//! newest id; each message with its reply preview and reactions.

use wire::api::ChannelMessage;
use wire::names::ChannelName;

use super::PgStore;
use super::log::{
    LOG_EVENT, LOG_MESSAGE_EXTRAS, RELEASED, message_from_row, query_messages, read_log, readable_prefix,
};
use super::rows;
use crate::store::model::StoreError;

impl PgStore {
    pub async fn history(
        &self,
        channel: &ChannelName,
        before: Option<u64>,
        after: Option<u64>,
        limit: u64,
    ) -> Result<(Vec<ChannelMessage>, bool), StoreError> {
        let conn = self.conn().await?;
        let fetch = (limit + 1) as i64;
        let name = channel.as_str();
        let mut rows = match (before, after) {
            (_, Some(after)) => {
                // Every committed row, released or not (see the module's doc): a page
                // reads its own writes; one that missed a row still in flight hears
                // of it from its peer once the row is released.
                let clause = "WHERE channel = $1 AND id > $2 ORDER BY id ASC LIMIT $3";
                query_messages(&conn, clause, &[&name, &(after as i64), &fetch]).await?
            }
            (Some(before), None) => {
                let clause = "WHERE channel = $1 AND id < $2 ORDER BY id DESC LIMIT $3";
                query_messages(&conn, clause, &[&name, &(before as i64), &fetch]).await?
            }
            (None, None) => {
                query_messages(&conn, "WHERE channel = $1 ORDER BY id DESC LIMIT $2", &[&name, &fetch]).await?
            }
        };
        if rows.is_empty() && !self.channel_exists(&conn, channel).await? {
            return Err(StoreError::NoChannel(channel.clone()));
        }
        let has_more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        if after.is_none() {
            rows.reverse();
        }
        rows::enrich(&conn, &mut rows).await?;
        Ok((rows, has_more))
    }

    /// The channel messages after `after` that a reader may take now (see the
    /// module's doc): a stream resuming must not pass an entry still in flight.
    pub async fn messages_since(&self, after: u64, limit: u64) -> Result<Vec<ChannelMessage>, StoreError> {
        let conn = self.conn().await?;
        let after = after as i64;
        let rows = read_log(&conn, after, limit as i64).await?;
        let readable = readable_prefix(after, &rows);
        let mut messages = rows[..readable]
            .iter()
            .filter(|row| row.get::<_, Option<String>>(LOG_EVENT).is_none())
            .map(|row| message_from_row(row, LOG_MESSAGE_EXTRAS))
            .collect::<Result<Vec<_>, _>>()?;
        rows::enrich(&conn, &mut messages).await?;
        Ok(messages)
    }

    pub async fn last_message_id(&self) -> Result<u64, StoreError> {
        let sql = format!("SELECT COALESCE(MAX(id), 0) FROM tracker_messages WHERE {RELEASED}");
        let row = self.conn().await?.query_one(&sql, &[]).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
