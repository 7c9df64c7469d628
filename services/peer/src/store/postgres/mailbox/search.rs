//! Full-text search of a mailbox in the shared database: PostgreSQL's text search
//! over `peer_dms.search`, a `tsvector` the database computes from the text, under a
//! GIN index.

use deadpool_postgres::GenericClient;
use kit::search::SearchQuery;
use wire::api::DirectMessage;
use wire::names::Username;

use super::{COLUMNS, message_from_row};
use crate::store::error::StoreError;
use crate::store::postgres::PgStore;

impl PgStore {
    /// The newest messages of `owner`'s mailbox, at most `limit`, that contain every
    /// word of `query`; only those with `with`, when given.
    pub async fn search(
        &self,
        owner: &Username,
        query: &SearchQuery,
        with: Option<&Username>,
        limit: u64,
    ) -> Result<Vec<DirectMessage>, StoreError> {
        let client = self.pool.get().await?;
        // `plainto_tsquery` reads any text as words: user input is never syntax.
        let sql = format!(
            "SELECT {COLUMNS} FROM peer_dms d
             WHERE d.owner = $1 AND d.search @@ plainto_tsquery('simple', $2) AND ($3::text IS NULL OR d.other = $3)
             ORDER BY d.ts DESC, d.seq DESC LIMIT $4"
        );
        let with = with.map(Username::as_str);
        // Planned anew for its words each time (an unnamed statement): a generic plan
        // cannot tell a common word from a rare one (see the tracker's search).
        let rows = client.query(sql.as_str(), &[&owner.as_str(), &query.plain_text(), &with, &(limit as i64)]).await?;
        rows.iter().map(message_from_row).collect()
    }
}
