//! The ended sessions after a peer's cursor, on PostgreSQL.

use wire::api::RevokedSession;

use super::PgStore;
use crate::store::model::{RevokedSince, StoreError, revoked_after, revoked_cursor};

impl PgStore {
    pub async fn revoked_since(&self, since: Option<&str>) -> Result<RevokedSince, StoreError> {
        let conn = self.conn().await?;
        // The database's id, and the highest number given so far (committed or not): a
        // cursor past it is of a database made anew.
        let row = conn
            .query_one("SELECT (SELECT id FROM tracker_store), (SELECT last_value FROM tracker_revoked_seq_seq)", &[])
            .await?;
        let (store_id, last): (String, i64) = (row.get(0), row.get(1));
        let after = revoked_after(since, &store_id, u64::try_from(last).unwrap_or(0));
        // Every insert holds the log's lock until it commits, so no number below the
        // highest seen here can still appear.
        let rows = conn
            .query(
                "SELECT sid, expires_at, seq FROM tracker_revoked WHERE seq > $1 ORDER BY seq",
                &[&i64::try_from(after).unwrap_or(i64::MAX)],
            )
            .await?;
        let now = kit::now_secs();
        let mut cursor = after;
        let mut sessions = Vec::new();
        for row in rows {
            cursor = cursor.max(u64::try_from(row.get::<_, i64>(2)).unwrap_or(0));
            let session =
                RevokedSession { sid: row.get(0), expires_at: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0) };
            if session.expires_at >= now {
                sessions.push(session);
            }
        }
        Ok(RevokedSince { sessions, cursor: revoked_cursor(&store_id, cursor) })
    }
}
