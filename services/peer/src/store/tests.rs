//! The store's behaviour, one body per test run on every backend.

use wire::api::DirectMessage;
use wire::names::{MessageText, Username};

use super::*;

/// A place a store lives, which can be opened again as a restarted peer would.
enum Backend {
    Sqlite(tempfile::TempDir),
}

impl Backend {
    fn sqlite() -> Self {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    /// Opens the store (again), as the same peer.
    async fn open(&self) -> (PeerStore, Loaded) {
        match self {
            Backend::Sqlite(dir) => PeerStore::open(&dir.path().join("peer.db")).unwrap(),
        }
    }

    async fn store(&self) -> PeerStore {
        self.open().await.0
    }
}

/// Runs `body(backend)` once per backend, as `name::sqlite` (and so on).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::sqlite()).await;
            }
        }
    )*};
}

on_every_backend!(
    only_sessions_ended_here_are_for_the_tracker_and_all_survive_a_restart,
    received_messages_are_filed_once_and_read_once,
    outgoing_messages_wait_in_the_outbox_until_delivered_across_reopens,
    conversations_page_backwards,
);

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn dm(id: &str, from: &str, to: &str, text: &str) -> DirectMessage {
    DirectMessage {
        id: id.into(),
        message: MessageText::parse(text).unwrap(),
        sender_ip: "127.0.0.1".into(),
        sender_port: 9001,
        username: user(from),
        to: user(to),
        ts: 1,
        broadcast: false,
        seq: None,
        delivered: None,
    }
}

async fn only_sessions_ended_here_are_for_the_tracker_and_all_survive_a_restart(backend: Backend) {
    let later = kit::now_secs() + 600;
    {
        let store = backend.store().await;
        store.revoke("mine", later, true).await.unwrap();
        store.revoke("heard", later, false).await.unwrap();
        store.revoke("heard-then-mine", later, false).await.unwrap();
        store.revoke("heard-then-mine", later, true).await.unwrap();
        store.revoke("mine-then-heard", later, true).await.unwrap();
        store.revoke("mine-then-heard", later, false).await.unwrap();
        store.revoke("expired", kit::now_secs() - 600, true).await.unwrap();
    }
    let (store, loaded) = backend.open().await;
    let mut own: Vec<String> = store.own_revoked().await.unwrap().into_iter().map(|(sid, _)| sid).collect();
    own.sort();
    assert_eq!(own, ["heard-then-mine", "mine", "mine-then-heard"]);
    assert_eq!(loaded.revoked.len(), 4, "every live one is loaded at start");
}

async fn received_messages_are_filed_once_and_read_once(backend: Backend) {
    let store = backend.store().await;
    assert!(store.save_incoming(&dm("a", "alice", "bob", "one")).await.unwrap().is_some());
    assert!(store.save_incoming(&dm("a", "alice", "bob", "one")).await.unwrap().is_none(), "duplicate");
    store.save_incoming(&dm("b", "alice", "bob", "two")).await.unwrap();
    let unread = store.take_unread(&user("bob")).await.unwrap();
    assert_eq!(unread.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    assert!(store.take_unread(&user("bob")).await.unwrap().is_empty());
    assert_eq!(store.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap().0.len(), 2);
}

async fn outgoing_messages_wait_in_the_outbox_until_delivered_across_reopens(backend: Backend) {
    {
        let store = backend.store().await;
        store.host(&user("alice"), 100).await.unwrap();
        store.host(&user("alice"), 50).await.unwrap();
        store.save_outgoing(&dm("x", "alice", "bob", "hi")).await.unwrap();
        store.save_outgoing(&dm("y", "alice", "bob", "there")).await.unwrap();
        store.delivered("x").await.unwrap();
    }
    let (store, loaded) = backend.open().await;
    assert_eq!(loaded.hosted, [(user("alice"), 100)], "the latest expiry wins");
    assert!(store.due(10).await.unwrap().is_empty(), "the sender's own first attempt comes first");
    store.retry_later("y", 1, kit::now_ms(), "down").await.unwrap();
    let due = store.due(10).await.unwrap();
    assert_eq!(due.iter().map(|p| p.message.id.as_str()).collect::<Vec<_>>(), ["y"]);
    store.retry_later("y", 1, kit::now_ms() + 60_000, "down").await.unwrap();
    assert!(store.due(10).await.unwrap().is_empty());
    assert_eq!(store.outbox_len().await.unwrap(), 1);
    let (sent, _) = store.conversation(&user("alice"), &user("bob"), None, 10).await.unwrap();
    assert_eq!(sent.iter().map(|m| m.delivered).collect::<Vec<_>>(), [Some(true), Some(false)]);
}

async fn conversations_page_backwards(backend: Backend) {
    let store = backend.store().await;
    for i in 0..5 {
        store.save_incoming(&dm(&format!("m{i}"), "alice", "bob", &format!("{i}"))).await.unwrap();
    }
    let (latest, more) = store.conversation(&user("bob"), &user("alice"), None, 2).await.unwrap();
    assert_eq!((latest.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), more), (vec!["3", "4"], true));
    let (older, more) = store.conversation(&user("bob"), &user("alice"), latest[0].seq, 10).await.unwrap();
    assert_eq!((older.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), more), (vec!["0", "1", "2"], false));
    assert_eq!(older[0].delivered, None, "received copies have no delivery state");
}
