//! The embedded store's ended sessions: recorded in the order they ended, so a peer
//! learns only what ended since its last call.

use std::sync::Arc;

use rusqlite::params;
use wire::api::RevokedSession;
use wire::events::Event;

use super::{SqliteStore, write};
use crate::store::model::{Push, RevokedSince, StoreError, Targets, revoked_after, revoked_cursor};

impl SqliteStore {
    pub async fn revoked(&self) -> Result<Vec<RevokedSession>, StoreError> {
        let now = kit::now_secs();
        let view = self.read();
        let live = view.revoked.iter().filter(|(_, expires_at)| **expires_at >= now);
        Ok(live.map(|(sid, expires_at)| RevokedSession { sid: sid.clone(), expires_at: *expires_at }).collect())
    }

    pub async fn revoked_since(&self, since: Option<&str>) -> Result<RevokedSince, StoreError> {
        let now = kit::now_secs();
        let view = self.read();
        let after = revoked_after(since, &view.store_id, view.revoked_seq);
        let sessions = view
            .revoked_order
            .range(after + 1..)
            .filter_map(|(_, sid)| Some(RevokedSession { sid: sid.clone(), expires_at: *view.revoked.get(sid)? }))
            .filter(|session| session.expires_at >= now)
            .collect();
        Ok(RevokedSince { sessions, cursor: revoked_cursor(&view.store_id, view.revoked_seq) })
    }

    pub async fn revoke(&self, sessions: Vec<RevokedSession>) -> Result<Vec<RevokedSession>, StoreError> {
        let now = kit::now_secs();
        let fresh: Vec<RevokedSession> = {
            let view = self.read();
            sessions.into_iter().filter(|s| s.expires_at >= now && !view.revoked.contains_key(&s.sid)).collect()
        };
        if fresh.is_empty() {
            return Ok(fresh);
        }
        let rows = fresh.clone();
        let (view, events) = (self.view.clone(), self.events.clone());
        let traceparent = kit::telemetry::current_traceparent();
        let recorded = self
            .db
            .write_then(
                move |conn| {
                    conn.execute("DELETE FROM revoked WHERE expires_at < ?1", [now as i64])?;
                    // One writer: the numbers are given in commit order.
                    let mut seq: i64 = conn.query_row("SELECT last_seq FROM revoked_cursor", [], |row| row.get(0))?;
                    let mut insert = conn
                        .prepare_cached("INSERT OR IGNORE INTO revoked (sid, expires_at, seq) VALUES (?1, ?2, ?3)")?;
                    let mut recorded = Vec::new();
                    for session in rows {
                        if insert.execute(params![session.sid, session.expires_at as i64, seq + 1])? == 1 {
                            seq += 1;
                            recorded.push((seq as u64, session));
                        }
                    }
                    conn.execute("UPDATE revoked_cursor SET last_seq = ?1", [seq])?;
                    Ok(recorded)
                },
                move |recorded: &Vec<(u64, RevokedSession)>| {
                    let mut view = write(&view);
                    view.revoked.retain(|_, expires_at| *expires_at >= now);
                    let live = std::mem::take(&mut view.revoked_order);
                    view.revoked_order = live.into_iter().filter(|(_, sid)| view.revoked.contains_key(sid)).collect();
                    for (seq, session) in recorded {
                        view.revoked_seq = view.revoked_seq.max(*seq);
                        view.revoked_order.insert(*seq, session.sid.clone());
                        if view.revoked.insert(session.sid.clone(), session.expires_at).is_none() {
                            let event = Event::SessionRevoked(session.clone());
                            let _ =
                                events.send(Arc::new(Push::new(None, event, Targets::Everyone, traceparent.clone())));
                        }
                    }
                },
            )
            .await?;
        Ok(recorded.into_iter().map(|(_, session)| session).collect())
    }
}
