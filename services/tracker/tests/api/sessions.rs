//! Ended sessions are exchanged by cursor: a peer learns what ended since its last
//! call, so a log-out's reply stays small however many sessions ended that day.

use wire::api::{RevokedSession, RevokedSessions};

use crate::{Backend, Storage, Tracker, on_both_backends};

on_both_backends!(a_peer_with_a_cursor_learns_only_what_ended_since);

async fn revoke(tracker: &Tracker, sid: Option<String>, since: Option<String>) -> RevokedSessions {
    let far = kit::now_secs() + 3600;
    let sessions = sid.into_iter().map(|sid| RevokedSession { sid, expires_at: far }).collect();
    let body = RevokedSessions { sessions, since, cursor: None };
    let response = tracker.client.signed_post(tracker.at("revoke-sessions"), &body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn a_peer_with_a_cursor_learns_only_what_ended_since(backend: Backend) {
    let Some(storage) = Storage::new(backend, "a_peer_with_a_cursor_learns_only_what_ended_since").await else {
        return;
    };
    let tracker = storage.start().await;
    // Thirty log-outs through one peer, each call with the cursor of the one before.
    let mut cursor = None;
    for i in 0..30 {
        let reply = revoke(&tracker, Some(format!("s{i}")), cursor.take()).await;
        assert_eq!(reply.sessions.len(), 1, "log-out {i}: {reply:?}");
        assert_eq!(reply.sessions[0].sid, format!("s{i}"));
        cursor = reply.cursor;
    }
    // Another peer logs a user out: the first learns of that one alone.
    let other = revoke(&tracker, Some("elsewhere".into()), None).await;
    assert_eq!(other.sessions.len(), 31, "a caller without a cursor learns everything");
    let caught_up = revoke(&tracker, None, cursor.clone()).await;
    let sids: Vec<&str> = caught_up.sessions.iter().map(|session| session.sid.as_str()).collect();
    assert_eq!(sids, ["elsewhere"]);
    // Nothing new: nothing, and the same place.
    let idle = revoke(&tracker, None, caught_up.cursor.clone()).await;
    assert!(idle.sessions.is_empty());
    assert_eq!(idle.cursor, caught_up.cursor);
    // A cursor of another store reads from the start.
    assert_eq!(revoke(&tracker, None, Some("elsewhere.3".into())).await.sessions.len(), 31);
    // A restarted tracker (or another replica) keeps the cursors good.
    drop(tracker);
    let again = storage.start().await;
    let after_restart = revoke(&again, Some("later".into()), idle.cursor).await;
    let sids: Vec<&str> = after_restart.sessions.iter().map(|session| session.sid.as_str()).collect();
    assert_eq!(sids, ["later"]);
}
