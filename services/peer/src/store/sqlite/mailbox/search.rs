//! Full-text search of a mailbox in the embedded store: SQLite FTS5 over
//! `dms_search` (see the migration that makes it), asked for the words and the
//! mailbox's owner (and other user) as exact tokens, newest first, up to the limit.

use kit::db::DbError;
use kit::search::{SearchQuery, fts5_key, fts5_string};
use rusqlite::params;
use wire::api::DirectMessage;
use wire::names::Username;

use super::query_dms;
use crate::store::sqlite::SqliteStore;

impl SqliteStore {
    /// The newest messages of `owner`'s mailbox, at most `limit`, that contain every
    /// word of `query`; only those with `with`, when given.
    pub async fn search(
        &self,
        owner: &Username,
        query: &SearchQuery,
        with: Option<&Username>,
        limit: u64,
    ) -> Result<Vec<DirectMessage>, DbError> {
        let mut expression =
            format!("{} AND owner_key : {}", query.fts5("text"), fts5_string(&fts5_key(owner.as_str())));
        if let Some(with) = with {
            expression.push_str(&format!(" AND other_key : {}", fts5_string(&fts5_key(with.as_str()))));
        }
        let (owner, with) = (owner.clone(), with.cloned());
        self.db
            .read(move |conn| {
                query_dms(
                    conn,
                    &owner,
                    "WHERE seq IN (
                         SELECT s.rowid FROM dms_search AS s JOIN dms AS d ON d.seq = s.rowid
                         WHERE dms_search MATCH ?1 AND d.owner = ?2 AND (?3 IS NULL OR d.other = ?3)
                         ORDER BY s.rowid DESC LIMIT ?4)
                     ORDER BY ts DESC, seq DESC",
                    params![expression, owner.as_str(), with.as_ref().map(Username::as_str), limit as i64],
                )
            })
            .await
    }
}
