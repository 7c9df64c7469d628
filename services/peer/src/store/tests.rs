//! The store's behaviour, one body per test run on every backend.

use std::collections::HashSet;
use std::time::Duration;

use kit::pg::TestDatabase;
use wire::api::DirectMessage;
use wire::names::{MessageText, Username};

use super::*;

/// A place a store lives, which can be opened again as a restarted peer would.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Backend {
    fn sqlite() -> Self {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh database, or `None` (said on stderr) where no server answers.
    async fn postgres(test: &str) -> Option<Self> {
        TestDatabase::for_test(test).await.map(Backend::Postgres)
    }

    /// Opens the store (again), as the same peer.
    async fn open(&self) -> (PeerStore, Loaded) {
        self.open_as(&replica(1)).await
    }

    /// Opens the store as the peer at `me` (on PostgreSQL, one replica of several).
    async fn open_as(&self, me: &PeerAddr) -> (PeerStore, Loaded) {
        match self {
            Backend::Sqlite(dir) => PeerStore::open(&dir.path().join("peer.db")).unwrap(),
            // Tests run in parallel on one server: small pools.
            Backend::Postgres(database) => {
                PeerStore::connect(database.url(), me, 4, Duration::from_secs(10)).await.unwrap()
            }
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

            #[tokio::test]
            async fn postgres() {
                let test = concat!(stringify!($name), "::postgres");
                let Some(backend) = super::Backend::postgres(test).await else { return };
                super::$name(backend).await;
            }
        }
    )*};
}

on_every_backend!(
    only_sessions_ended_here_are_for_the_tracker_and_all_survive_a_restart,
    received_messages_are_filed_once_and_read_once,
    outgoing_messages_wait_in_the_outbox_until_delivered_across_reopens,
    conversations_page_backwards,
    conversations_list_each_other_user_once_newest_first_with_unread_counts,
    a_handed_over_mailbox_is_filed_once_as_read_with_its_contacts,
);

mod changes;

/// The address of peer replica `n`.
fn replica(n: u16) -> PeerAddr {
    PeerAddr::parse("10.0.0.1", 9000 + n).unwrap()
}

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
        edited_at: None,
        deleted: false,
        reply_to: None,
        reply: None,
        reactions: Vec::new(),
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
    assert_eq!(due.iter().map(|p| p.item.id()).collect::<Vec<_>>(), ["y"]);
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

async fn conversations_list_each_other_user_once_newest_first_with_unread_counts(backend: Backend) {
    let store = backend.store().await;
    let at = |ts: u64, message: DirectMessage| DirectMessage { ts, ..message };
    store.save_incoming(&at(1, dm("d1", "dave", "alice", "old news"))).await.unwrap();
    store.save_incoming(&at(10, dm("b1", "bob", "alice", "hi alice"))).await.unwrap();
    store.save_outgoing(&at(20, dm("b2", "alice", "bob", "hi bob"))).await.unwrap();
    store.save_incoming(&at(30, dm("c1", "carol", "alice", "one"))).await.unwrap();
    store.save_incoming(&at(40, dm("c2", "carol", "alice", "two"))).await.unwrap();
    store.save_incoming(&at(50, dm("e1", "bob", "erin", "not for alice"))).await.unwrap();

    let summary = |list: Vec<ConversationSummary>| {
        list.into_iter()
            .map(|c| (c.with.as_str().to_owned(), c.last.message.as_str().to_owned(), c.unread))
            .collect::<Vec<_>>()
    };
    let expected = |unread: [u64; 3]| {
        vec![
            ("carol".to_owned(), "two".to_owned(), unread[0]),
            ("bob".to_owned(), "hi bob".to_owned(), unread[1]),
            ("dave".to_owned(), "old news".to_owned(), unread[2]),
        ]
    };
    let list = store.conversations(&user("alice")).await.unwrap();
    assert_eq!(list[1].last.delivered, Some(false), "her own last message, not delivered yet");
    assert_eq!(list[0].last.id, "c2");
    assert_eq!(summary(list), expected([2, 1, 1]));
    store.take_unread(&user("alice")).await.unwrap();
    assert_eq!(summary(store.conversations(&user("alice")).await.unwrap()), expected([0, 0, 0]));
    assert_eq!(
        summary(store.conversations(&user("erin")).await.unwrap()),
        [("bob".to_owned(), "not for alice".to_owned(), 1)],
        "each mailbox is its owner's"
    );
    assert!(store.conversations(&user("zoe")).await.unwrap().is_empty());
}

async fn a_handed_over_mailbox_is_filed_once_as_read_with_its_contacts(backend: Backend) {
    let store = backend.store().await;
    let sent = DirectMessage { delivered: Some(true), ..dm("s", "alice", "bob", "sent before the move") };
    let received = dm("r", "bob", "alice", "received before the move");
    let contact = Contact { username: user("bob"), ip: "10.0.0.2".into(), port: 9002, online: false };
    let page = vec![sent.clone(), received.clone()];
    assert_eq!(store.import_mailbox(&user("alice"), page.clone(), vec![contact.clone()]).await.unwrap(), 2);
    assert_eq!(store.import_mailbox(&user("alice"), page, vec![contact]).await.unwrap(), 0, "a retried page");
    let (messages, _) = store.conversation(&user("alice"), &user("bob"), None, 10).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.delivered).collect::<Vec<_>>(), [Some(true), None], "hers, then bob's");
    assert!(store.take_unread(&user("alice")).await.unwrap().is_empty(), "handed-over messages count as read");
    assert_eq!(store.contacts(&user("alice")).await.unwrap().len(), 1);
}

// === Cluster mode: several peer replicas on one database ===

#[tokio::test]
async fn a_users_mailbox_and_contacts_filed_through_one_replica_are_read_through_another() {
    let Some(backend) =
        Backend::postgres("a_users_mailbox_and_contacts_filed_through_one_replica_are_read_through_another").await
    else {
        return;
    };
    let (one, _) = backend.open_as(&replica(1)).await;
    let (two, _) = backend.open_as(&replica(2)).await;
    one.host(&user("alice"), kit::now_secs() + 600).await.unwrap();
    one.save_outgoing(&dm("x", "alice", "bob", "sent through one")).await.unwrap();
    one.add_contact(&user("alice"), &user("bob"), &replica(2)).await.unwrap();
    // Bob lives on replica two; his copy is filed there, once.
    assert!(two.save_incoming(&dm("x", "alice", "bob", "sent through one")).await.unwrap().is_some());
    assert!(one.save_incoming(&dm("x", "alice", "bob", "sent through one")).await.unwrap().is_none(), "once");
    two.save_incoming(&dm("y", "carol", "alice", "to alice, filed by two")).await.unwrap();

    let (alices, _) = two.conversation(&user("alice"), &user("bob"), None, 10).await.unwrap();
    assert_eq!(alices.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["sent through one"]);
    assert_eq!(alices[0].delivered, Some(false), "still in the (shared) outbox");
    one.delivered("x").await.unwrap();
    let (alices, _) = two.conversation(&user("alice"), &user("bob"), None, 10).await.unwrap();
    assert_eq!(alices[0].delivered, Some(true));
    let (bobs, _) = one.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(one.take_unread(&user("alice")).await.unwrap().len(), 1, "what two filed, one reads");
    assert!(two.take_unread(&user("alice")).await.unwrap().is_empty(), "and it is read everywhere");
    let contacts = two.contacts(&user("alice")).await.unwrap();
    assert_eq!(contacts.iter().map(|c| c.username.as_str()).collect::<Vec<_>>(), ["bob"]);

    // Hosting is each replica's own: a restarted replica restores only its users.
    let (_, restored_one) = backend.open_as(&replica(1)).await;
    let (_, restored_two) = backend.open_as(&replica(2)).await;
    assert_eq!(restored_one.hosted.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(), ["alice"]);
    assert!(restored_two.hosted.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_due_outbox_row_is_claimed_by_one_replica_only() {
    let Some(backend) = Backend::postgres("each_due_outbox_row_is_claimed_by_one_replica_only").await else {
        return;
    };
    let (first, _) = backend.open_as(&replica(1)).await;
    const ROWS: usize = 300;
    for i in 0..ROWS {
        let id = format!("m{i:04}");
        first.save_outgoing(&dm(&id, "alice", "bob", "queued")).await.unwrap();
        // Due now, as if its sender's own attempt had failed (or its peer died).
        first.retry_later(&id, 1, kit::now_ms(), "down").await.unwrap();
    }
    let mut stores = Vec::new();
    for n in 1..=4 {
        stores.push(backend.open_as(&replica(n)).await.0);
    }
    // All start together, so the claims overlap.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(stores.len()));
    let workers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut claimed = Vec::new();
                loop {
                    let due = store.due(7).await.unwrap();
                    if due.is_empty() {
                        return claimed;
                    }
                    claimed.extend(due.into_iter().map(|pending| pending.item.id().to_owned()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy_workers = 0;
    for worker in workers {
        let claimed = worker.await.unwrap();
        busy_workers += usize::from(!claimed.is_empty());
        all.extend(claimed);
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a row was claimed twice");
    assert_eq!(all.len(), ROWS, "every due row was claimed");
    assert!(busy_workers > 1, "the replicas shared the work");
    assert!(first.due(10).await.unwrap().is_empty(), "claimed rows are leased, not due");
    assert_eq!(first.outbox_len().await.unwrap(), ROWS as u64, "claimed is not delivered");
}

mod search;
