//! The store's tests: each body runs on every backend (SQLite always, PostgreSQL
//! where a server answers).

use std::time::Duration;

use kit::pg::TestDatabase;

use super::*;

/// One backend's data, which can be opened (again) as a [`Store`].
pub(crate) enum Fixture {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Fixture {
    pub(crate) async fn open(&self) -> Store {
        match self {
            Fixture::Sqlite(dir) => Store::open(&dir.path().join("tracker.db"), TTL).unwrap(),
            // Tests run in parallel on one server: small pools.
            Fixture::Postgres(database) => Store::connect(database.url(), 3, TTL).await.unwrap(),
        }
    }
}

const TTL: Duration = Duration::from_secs(15);

/// A fresh fixture per backend: SQLite, and PostgreSQL where a server answers.
pub(crate) async fn fixtures(test: &str) -> Vec<Fixture> {
    let mut fixtures = vec![Fixture::Sqlite(tempfile::tempdir().unwrap())];
    if let Some(database) = TestDatabase::for_test(test).await {
        fixtures.push(Fixture::Postgres(database));
    }
    fixtures
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

fn peer(port: u16) -> PeerAddr {
    PeerAddr::parse("127.0.0.1", port).unwrap()
}

fn text(body: &str) -> MessageText {
    MessageText::parse(body).unwrap()
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    for fixture in fixtures("everything_survives_a_reopen").await {
        {
            let store = fixture.open().await;
            assert_eq!(store.channels().await.unwrap().len(), 5);
            store.create_channel(&channel("rust"), &user("alice"), false).await.unwrap();
            store.join(&channel("general"), &user("bob")).await.unwrap();
            store.set_home(&user("bob"), &peer(9002)).await.unwrap();
            store.post(&channel("general"), &user("bob"), &peer(9002), &text("one")).await.unwrap();
            store.post(&channel("general"), &user("bob"), &peer(9002), &text("two")).await.unwrap();
        }
        let store = fixture.open().await;
        assert!(store.is_member(&channel("rust"), &user("alice")).await.unwrap());
        assert_eq!(store.joined(&user("bob")).await.unwrap(), [channel("general")]);
        assert_eq!(store.home(&user("bob")).await.unwrap(), Some((peer(9002), true)));
        assert!(store.release(&user("bob"), &peer(9002)).await.unwrap());
        assert_eq!(store.home(&user("bob")).await.unwrap(), Some((peer(9002), false)));
        assert!(store.signed_in().await.unwrap().is_empty());
        let (page, has_more) = store.history(&channel("general"), None, None, 10).await.unwrap();
        let texts: Vec<_> = page.iter().map(|m| m.text.as_str()).collect();
        assert_eq!((texts, has_more), (vec!["one", "two"], false));
    }
}

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    for fixture in fixtures("history_pages_backwards_and_forwards").await {
        let store = fixture.open().await;
        store.join(&channel("general"), &user("a")).await.unwrap();
        for i in 0..7 {
            store.post(&channel("general"), &user("a"), &peer(9001), &text(&format!("m{i}"))).await.unwrap();
        }
        let texts = |page: &[ChannelMessage]| page.iter().map(|m| m.text.to_string()).collect::<Vec<_>>();
        let (latest, more) = store.history(&channel("general"), None, None, 3).await.unwrap();
        assert_eq!((texts(&latest), more), (vec!["m4".into(), "m5".into(), "m6".into()], true));
        let (older, more) = store.history(&channel("general"), Some(latest[0].id), None, 3).await.unwrap();
        assert_eq!((texts(&older), more), (vec!["m1".into(), "m2".into(), "m3".into()], true));
        let (oldest, more) = store.history(&channel("general"), Some(older[0].id), None, 3).await.unwrap();
        assert_eq!((texts(&oldest), more), (vec!["m0".into()], false));
        let (newer, more) = store.history(&channel("general"), None, Some(older[2].id), 2).await.unwrap();
        assert_eq!((texts(&newer), more), (vec!["m4".into(), "m5".into()], true));
    }
}

#[tokio::test]
async fn posting_needs_membership_and_a_known_channel() {
    for fixture in fixtures("posting_needs_membership_and_a_known_channel").await {
        let store = fixture.open().await;
        let not_member = store.post(&channel("general"), &user("eve"), &peer(9001), &text("hi")).await;
        assert!(matches!(not_member, Err(StoreError::NotMember(_))));
        let unknown = store.post(&channel("nope"), &user("eve"), &peer(9001), &text("hi")).await;
        assert!(matches!(unknown, Err(StoreError::NoChannel(_))));
        assert!(matches!(store.join(&channel("nope"), &user("eve")).await, Err(StoreError::NoChannel(_))));
        assert!(matches!(
            store.create_channel(&channel("general"), &user("eve"), false).await,
            Err(StoreError::ChannelExists(_))
        ));
        assert!(store.join(&channel("general"), &user("eve")).await.unwrap());
        assert!(!store.join(&channel("general"), &user("eve")).await.unwrap(), "joining twice is a no-op");
        assert!(store.leave(&channel("general"), &user("eve")).await.unwrap());
        assert!(store.joined(&user("eve")).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_committed_together_each_get_their_own_answer() {
    for fixture in fixtures("posts_committed_together_each_get_their_own_answer").await {
        let store = fixture.open().await;
        for (name, port) in [("amy", 9001), ("ben", 9002)] {
            store.set_home(&user(name), &peer(port)).await.unwrap();
        }
        store.join(&channel("general"), &user("amy")).await.unwrap();
        // Members and strangers, from a home and from nowhere, all at once: many of
        // them share a batch, and each hears its own outcome.
        let posts = (0..60).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let (who, body) = match i % 3 {
                    0 => ("amy", format!("amy {i}")),
                    1 => ("ben", format!("ben {i}")),
                    _ => ("cyd", format!("cyd {i}")),
                };
                (i, store.post_from_home(&channel("general"), &user(who), &text(&body), None).await)
            })
        });
        let mut ids = Vec::new();
        for post in posts {
            let (i, outcome) = post.await.unwrap();
            match i % 3 {
                0 => {
                    let stored = outcome.unwrap();
                    assert_eq!((stored.text.as_str(), stored.sender_port), (format!("amy {i}").as_str(), 9001));
                    ids.push(stored.id);
                }
                1 => assert!(matches!(outcome, Err(StoreError::NotMember(_))), "{outcome:?}"),
                _ => assert!(matches!(outcome, Err(StoreError::NotOnAnyPeer)), "{outcome:?}"),
            }
        }
        let (history, _) = store.history(&channel("general"), None, None, 500).await.unwrap();
        let mut stored: Vec<(u64, String)> = history.iter().map(|m| (m.id, m.text.as_str().to_owned())).collect();
        stored.sort_unstable();
        ids.sort_unstable();
        assert_eq!(stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids, "each acknowledged post once");
        assert!(stored.iter().all(|(_, body)| body.starts_with("amy ")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_posts_in_one_batch_each_get_their_own_id() {
    for fixture in fixtures("identical_posts_in_one_batch_each_get_their_own_id").await {
        let store = fixture.open().await;
        store.set_home(&user("amy"), &peer(9001)).await.unwrap();
        store.join(&channel("general"), &user("amy")).await.unwrap();
        // Dan is a member on no peer: his posts that name a peer are stored, those
        // that do not are refused, though they carry the same text.
        store.join(&channel("general"), &user("dan")).await.unwrap();
        let posts = (0..60).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let outcome = match i % 3 {
                    0 => store.post_from_home(&channel("general"), &user("amy"), &text("same"), None).await,
                    1 => store.post(&channel("general"), &user("dan"), &peer(9005), &text("same")).await,
                    _ => store.post_from_home(&channel("general"), &user("dan"), &text("same"), None).await,
                };
                (i, outcome)
            })
        });
        let mut ids = Vec::new();
        for post in posts {
            let (i, outcome) = post.await.unwrap();
            match i % 3 {
                0 | 1 => {
                    let stored = outcome.unwrap();
                    let expected = if i % 3 == 0 { ("amy", 9001) } else { ("dan", 9005) };
                    assert_eq!((stored.username.as_str(), stored.sender_port), expected);
                    ids.push(stored.id);
                }
                _ => assert!(matches!(outcome, Err(StoreError::NotOnAnyPeer)), "{outcome:?}"),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 40, "each stored post has an id of its own");
        let (history, _) = store.history(&channel("general"), None, None, 500).await.unwrap();
        let stored: Vec<u64> = history.iter().map(|m| m.id).collect();
        assert_eq!(stored, ids, "each acknowledged post stored once");
    }
}

#[tokio::test]
async fn messages_are_pushed_in_id_order_to_the_peers_of_members() {
    for fixture in fixtures("messages_are_pushed_in_id_order_to_the_peers_of_members").await {
        let store = fixture.open().await;
        store.join(&channel("general"), &user("a")).await.unwrap();
        store.join(&channel("general"), &user("b")).await.unwrap();
        store.set_home(&user("a"), &peer(9001)).await.unwrap();
        store.set_home(&user("b"), &peer(9002)).await.unwrap();
        let mut events = store.subscribe();
        let posts = (0..50).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.post(&channel("general"), &user("a"), &peer(9001), &text(&format!("{i}"))).await.unwrap()
            })
        });
        for post in posts {
            post.await.unwrap();
        }
        let mut last = 0;
        let mut messages = 0;
        while messages < 50 {
            let push = events.recv().await.unwrap();
            // Where pushes come through a follower (PostgreSQL), the membership and
            // presence events of the set-up above may come after the subscription.
            let Some(id) = push.id else { continue };
            messages += 1;
            assert!(id > last, "pushes must come in id order");
            last = id;
            assert!(push.is_for(&peer(9001)) && push.is_for(&peer(9002)) && !push.is_for(&peer(9003)));
        }
    }
}

mod chat;
mod replicas;
mod search;
