//! Several tracker replicas on one PostgreSQL database: what one writes, the others
//! answer and push.

use std::collections::HashSet;
use std::time::Duration;

use kit::pg::TestDatabase;
use tokio::time::Instant;
use wire::api::RevokedSession;
use wire::events::{Event, Presence};

use super::{TTL, channel, peer, text, user};
use crate::store::*;

/// Two stores on one fresh database; `None` where no PostgreSQL server answers.
pub(super) async fn two_replicas(test: &str, ttl: Duration) -> Option<(TestDatabase, Store, Store)> {
    let database = TestDatabase::for_test(test).await?;
    let a = Store::connect(database.url(), 3, ttl).await.unwrap();
    let b = Store::connect(database.url(), 3, ttl).await.unwrap();
    Some((database, a, b))
}

/// Polls `check` until it holds, for at most 10 s.
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next push on `events` that `wanted` picks, within 10 s.
pub(super) async fn next_push<T>(
    events: &mut broadcast::Receiver<Arc<Push>>,
    mut wanted: impl FnMut(&Push) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let push = tokio::time::timeout_at(deadline, events.recv()).await.expect("no push in time").unwrap();
        if let Some(found) = wanted(&push) {
            return found;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_members_peers_and_sessions_are_shared_between_replicas() {
    let Some((_database, a, b)) =
        two_replicas("channels_members_peers_and_sessions_are_shared_between_replicas", TTL).await
    else {
        return;
    };
    a.create_channel(&channel("rust"), &user("alice"), false).await.unwrap();
    assert!(b.channels().await.unwrap().contains(&channel("rust")));
    assert!(matches!(b.create_channel(&channel("rust"), &user("bob"), false).await, Err(StoreError::ChannelExists(_))));
    assert!(b.join(&channel("rust"), &user("bob")).await.unwrap());
    assert_eq!(a.members(&channel("rust")).await.unwrap(), Some(vec![user("alice"), user("bob")]));

    assert!(a.register_peer(&peer(9001)).await.unwrap());
    assert!(b.is_live(&peer(9001)).await.unwrap());
    assert!(!b.register_peer(&peer(9001)).await.unwrap(), "registered already, through the other replica");
    assert!(b.heartbeat(&peer(9001)).await.unwrap());
    assert_eq!(b.live_peers().await.unwrap(), [peer(9001)]);

    a.set_home(&user("alice"), &peer(9001)).await.unwrap();
    assert_eq!(b.home(&user("alice")).await.unwrap(), Some((peer(9001), true)));
    assert!(b.set_active(&user("alice"), &peer(9001), true).await.unwrap());
    assert!(a.is_active(&user("alice")).await.unwrap());
    assert_eq!(a.online().await.unwrap(), [(user("alice"), peer(9001), true)]);
    assert_eq!(b.hosts_of_members(&channel("rust")).await.unwrap(), HashSet::from([peer(9001)]));

    let tokens = kit::session::TokenKeys::new(&kit::config::Secrets::random().session_secret, TTL);
    b.revoke_into(&tokens);
    let session = RevokedSession { sid: "s-1".into(), expires_at: kit::now_secs() + 600 };
    assert_eq!(a.revoke(vec![session.clone()]).await.unwrap(), std::slice::from_ref(&session));
    assert_eq!(b.revoked().await.unwrap(), std::slice::from_ref(&session));
    assert!(b.revoke(vec![session]).await.unwrap().is_empty(), "ended once, through the other replica");
    eventually("the revocation reaches the other replica's session keys", || async { tokens.is_revoked("s-1") }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_expires_once_and_its_users_go_offline_on_every_replica() {
    let test = "a_silent_peer_expires_once_and_its_users_go_offline_on_every_replica";
    let Some((_database, a, b)) = two_replicas(test, Duration::from_millis(500)).await else {
        return;
    };
    a.register_peer(&peer(9001)).await.unwrap();
    a.set_home(&user("carol"), &peer(9001)).await.unwrap();
    let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
    let mut expired = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while expired.is_empty() {
        assert!(Instant::now() < deadline, "the silent peer never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (from_a, from_b) = tokio::join!(a.expire_peers(), b.expire_peers());
        expired.extend(from_a.unwrap());
        expired.extend(from_b.unwrap());
    }
    assert_eq!(expired, [(peer(9001), 1)], "exactly one replica expires the peer");
    assert!(a.expire_peers().await.unwrap().is_empty() && b.expire_peers().await.unwrap().is_empty());
    assert!(!b.is_live(&peer(9001)).await.unwrap());
    assert!(a.online().await.unwrap().is_empty());
    for events in [&mut on_a, &mut on_b] {
        let offline = next_push(events, |push| match &push.event {
            Event::Presence(presence) if presence.username == user("carol") && !presence.online => {
                Some(presence.clone())
            }
            _ => None,
        })
        .await;
        assert_eq!(offline, Presence { username: user("carol"), online: false, active: false });
    }
    assert!(a.register_peer(&peer(9001)).await.unwrap(), "an expired peer registers anew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_catches_up_when_its_listener_is_killed() {
    let Some((database, a, b)) = two_replicas("the_follower_catches_up_when_its_listener_is_killed", TTL).await else {
        return;
    };
    a.join(&channel("general"), &user("dave")).await.unwrap();
    a.set_home(&user("dave"), &peer(9001)).await.unwrap();
    let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
    let (admin, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let kill_listeners = || async {
        admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                &[],
            )
            .await
            .unwrap()
            .len()
    };
    eventually("both replicas listen", || async {
        let rows = admin
            .query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'", &[])
            .await
            .unwrap();
        rows.len() >= 2
    })
    .await;
    assert!(kill_listeners().await >= 2);
    let posts = (0..100).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            store.post(&channel("general"), &user("dave"), &peer(9001), &text(&format!("{i}"))).await.unwrap().id
        })
    });
    let posts: Vec<_> = posts.collect();
    // Killed again while the posts are being committed.
    kill_listeners().await;
    let mut acknowledged = Vec::new();
    for post in posts {
        acknowledged.push(post.await.unwrap());
    }
    acknowledged.sort_unstable();
    for events in [&mut on_a, &mut on_b] {
        let mut seen = Vec::new();
        while seen.len() < acknowledged.len() {
            seen.push(next_push(events, |push| push.id).await);
        }
        assert_eq!(seen, acknowledged, "every acknowledged message, once, in id order");
    }
}

/// Batches release the log lock before their commit waits for the disk, so a later
/// batch can commit first. Its entries must wait: no follower publishes them before
/// the earlier batch's, none skips the earlier one, and a peer stream that starts
/// or resumes meanwhile starts before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_commits_late_is_published_in_id_order_and_never_skipped() {
    let Some((database, a, b)) =
        two_replicas("an_entry_that_commits_late_is_published_in_id_order_and_never_skipped", TTL).await
    else {
        return;
    };
    a.join(&channel("general"), &user("erin")).await.unwrap();
    let before = b.last_message_id().await.unwrap();
    let mut on_b = b.subscribe();
    // A batch that drew its id and inserted under the lock, released it, and has not
    // committed yet: what the batcher does, held open.
    let (slow, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    slow.batch_execute(&format!(
        "BEGIN;
         SELECT pg_advisory_lock({LOG_LOCK});
         INSERT INTO tracker_messages (id, channel, username, sender_ip, sender_port, text, ts)
             VALUES (nextval('tracker_messages_id_seq'), 'general', 'erin', '127.0.0.1', 9001, 'slow', 0);
         SELECT pg_advisory_unlock({LOG_LOCK});",
        LOG_LOCK = super::super::postgres::log::LOG_LOCK
    ))
    .await
    .unwrap();
    let fast = a.post(&channel("general"), &user("erin"), &peer(9001), &text("fast")).await.unwrap();
    // Committed, and read back by a page, but not released: a peer stream would
    // start before the slow entry, and a resuming one reads nothing past it.
    let (page, _) = b.history(&channel("general"), None, None, 10).await.unwrap();
    assert_eq!(page.last().map(|message| message.id), Some(fast.id), "a page reads what was committed");
    assert_eq!(b.last_message_id().await.unwrap(), before);
    assert!(b.messages_since(before, 100).await.unwrap().is_empty());

    slow.batch_execute("COMMIT").await.unwrap();
    let mut published = Vec::new();
    while published.len() < 2 {
        published.push(
            next_push(&mut on_b, |push| match &push.event {
                Event::ChannelMessage(message) => Some((message.id, message.text.to_string())),
                _ => None,
            })
            .await,
        );
    }
    assert!(published[0].0 < fast.id, "the slow entry drew the lower id");
    assert_eq!(published.iter().map(|(_, text)| text.as_str()).collect::<Vec<_>>(), ["slow", "fast"]);
    let replayed: Vec<_> =
        b.messages_since(before, 100).await.unwrap().into_iter().map(|m| m.text.to_string()).collect();
    assert_eq!(replayed, ["slow", "fast"]);
}

/// A transaction left open elsewhere on the server does not hold channel delivery
/// back: an entry with no id missing before it is read at once, whatever runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_elsewhere_does_not_hold_back_delivery() {
    let Some((database, a, b)) =
        two_replicas("a_transaction_left_open_elsewhere_does_not_hold_back_delivery", TTL).await
    else {
        return;
    };
    a.join(&channel("general"), &user("fay")).await.unwrap();
    let before = b.last_message_id().await.unwrap();
    let mut on_b = b.subscribe();
    // A transaction that wrote (so it has a transaction id) and waits.
    let (open, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    open.batch_execute("BEGIN; CREATE TABLE unrelated (x int); INSERT INTO unrelated VALUES (1);").await.unwrap();
    let stored = a.post(&channel("general"), &user("fay"), &peer(9001), &text("meanwhile")).await.unwrap();
    let published = next_push(&mut on_b, |push| match &push.event {
        Event::ChannelMessage(message) => Some(message.id),
        _ => None,
    })
    .await;
    assert_eq!(published, stored.id);
    let replayed: Vec<u64> = b.messages_since(before, 100).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(replayed, [stored.id], "a resuming stream reads it too");
    open.batch_execute("ROLLBACK").await.unwrap();
}
