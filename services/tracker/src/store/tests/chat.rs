//! The chat features of the store, on every backend: private channels, edits,
//! tombstones, reactions, replies, mentions, read state; and on PostgreSQL, their
//! events reaching another replica's peers.

use wire::api::{MAX_REACTIONS, Reaction};
use wire::events::Event;
use wire::names::Emoji;

use super::replicas::{next_push, two_replicas};
use super::{TTL, channel, fixtures, peer, text, user};
use crate::store::*;

fn emoji(raw: &str) -> Emoji {
    Emoji::parse(raw).unwrap()
}

#[tokio::test]
async fn private_channels_are_seen_by_members_only_and_an_invitation_makes_a_member() {
    for fixture in fixtures("private_channels_are_seen_by_members_only").await {
        let store = fixture.open().await;
        store.create_channel(&channel("secret"), &user("alice"), true).await.unwrap();
        assert!(store.visible_channels(&user("alice")).await.unwrap().contains(&channel("secret")));
        assert!(!store.visible_channels(&user("bob")).await.unwrap().contains(&channel("secret")));
        assert!(store.visible_channels(&user("bob")).await.unwrap().contains(&channel("general")));
        assert_eq!(store.access(&channel("secret"), &user("alice")).await.unwrap(), Access::Member);
        assert!(matches!(store.access(&channel("secret"), &user("bob")).await, Err(StoreError::NoChannel(_))));
        assert_eq!(store.access(&channel("general"), &user("bob")).await.unwrap(), Access::Outsider);
        assert!(matches!(
            store.invite(&channel("secret"), &user("bob"), &user("carol")).await,
            Err(StoreError::NoChannel(_))
        ));
        assert!(store.invite(&channel("secret"), &user("alice"), &user("bob")).await.unwrap());
        assert!(!store.invite(&channel("secret"), &user("alice"), &user("bob")).await.unwrap());
        assert_eq!(store.access(&channel("secret"), &user("bob")).await.unwrap(), Access::Member);
        let summaries = store.summaries(&user("bob")).await.unwrap();
        assert_eq!((summaries.len(), summaries[0].private), (1, true));
    }
}

#[tokio::test]
async fn only_authors_edit_or_delete_and_a_tombstone_keeps_its_place_without_text_or_reactions() {
    for fixture in fixtures("only_authors_edit_or_delete").await {
        let store = fixture.open().await;
        for name in ["alice", "bob"] {
            store.join(&channel("general"), &user(name)).await.unwrap();
        }
        let general = channel("general");
        let first = store.post(&general, &user("alice"), &peer(9001), &text("one")).await.unwrap();
        let second = store.post(&general, &user("bob"), &peer(9002), &text("two")).await.unwrap();
        assert!(matches!(
            store.edit(&general, &user("bob"), first.id, &text("mine")).await,
            Err(StoreError::NotAuthor(_))
        ));
        assert!(matches!(
            store.edit(&channel("random"), &user("alice"), first.id, &text("x")).await,
            Err(StoreError::NoMessage(..))
        ));
        let edited = store.edit(&general, &user("alice"), first.id, &text("one, @bob")).await.unwrap();
        assert_eq!(edited.mentions, [user("bob")]);
        store.react(&general, &user("bob"), first.id, &emoji("👍"), true).await.unwrap();
        assert!(matches!(store.delete(&general, &user("bob"), first.id).await, Err(StoreError::NotAuthor(_))));
        store.delete(&general, &user("alice"), first.id).await.unwrap();
        assert!(matches!(
            store.edit(&general, &user("alice"), first.id, &text("back")).await,
            Err(StoreError::Deleted(_))
        ));
        assert!(matches!(
            store.react(&general, &user("bob"), first.id, &emoji("👍"), true).await,
            Err(StoreError::Deleted(_))
        ));
        let (page, _) = store.history(&general, None, None, 10).await.unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id, second.id], "in its place");
        let tombstone = &page[0];
        assert!(tombstone.deleted && tombstone.text.as_str().is_empty() && tombstone.reactions.is_empty());
        assert!(tombstone.edited_at.is_some() && tombstone.mentions.is_empty());
        assert_eq!(store.summaries(&user("bob")).await.unwrap()[0].mentions, 0, "a deleted mention is gone");
    }
}

#[tokio::test]
async fn reactions_aggregate_in_order_of_first_use_up_to_twenty_emoji() {
    for fixture in fixtures("reactions_aggregate_in_order_of_first_use").await {
        let store = fixture.open().await;
        let general = channel("general");
        store.join(&general, &user("alice")).await.unwrap();
        store.join(&general, &user("bob")).await.unwrap();
        let message = store.post(&general, &user("alice"), &peer(9001), &text("hi")).await.unwrap();
        let id = message.id;
        store.react(&general, &user("bob"), id, &emoji("🎉"), true).await.unwrap();
        store.react(&general, &user("alice"), id, &emoji("👍"), true).await.unwrap();
        store.react(&general, &user("alice"), id, &emoji("🎉"), true).await.unwrap();
        let twice = store.react(&general, &user("alice"), id, &emoji("🎉"), true).await.unwrap();
        let expected = vec![
            Reaction { emoji: emoji("🎉"), users: vec![user("bob"), user("alice")] },
            Reaction { emoji: emoji("👍"), users: vec![user("alice")] },
        ];
        assert_eq!(twice, expected);
        let off = store.react(&general, &user("bob"), id, &emoji("🎉"), false).await.unwrap();
        assert_eq!(off[0].users, [user("alice")]);
        let emojis: Vec<String> = ('\u{1F600}'..).take(MAX_REACTIONS - 2).map(String::from).collect();
        for raw in &emojis {
            store.react(&general, &user("bob"), id, &emoji(raw), true).await.unwrap();
        }
        assert!(matches!(
            store.react(&general, &user("bob"), id, &emoji("🚀"), true).await,
            Err(StoreError::TooManyReactions(_))
        ));
        // One already there still takes more users.
        let more = store.react(&general, &user("bob"), id, &emoji("👍"), true).await.unwrap();
        assert_eq!(more.len(), MAX_REACTIONS);
        let (page, _) = store.history(&general, None, None, 10).await.unwrap();
        assert_eq!(page[0].reactions, more);
    }
}

#[tokio::test]
async fn replies_carry_a_preview_and_mentions_name_members_only() {
    for fixture in fixtures("replies_carry_a_preview").await {
        let store = fixture.open().await;
        let general = channel("general");
        for name in ["alice", "bob"] {
            store.join(&general, &user(name)).await.unwrap();
            store.set_home(&user(name), &peer(9001)).await.unwrap();
        }
        let long = "x".repeat(300);
        let parent = store.post_from_home(&general, &user("alice"), &text(&long), None).await.unwrap();
        let reply = store
            .post_from_home(&general, &user("bob"), &text("@alice @bob @carol yes"), Some(parent.id))
            .await
            .unwrap();
        assert_eq!(reply.mentions, [user("alice")], "members, without the author");
        let (page, _) = store.history(&general, None, None, 10).await.unwrap();
        let preview = page[1].reply.as_ref().unwrap();
        assert_eq!((preview.username.as_str(), preview.text.chars().count()), ("alice", 200));
        assert_eq!(page[1].reply_to, Some(parent.id));
        let other = store.post_from_home(&channel("random"), &user("alice"), &text("r"), None).await;
        assert!(matches!(other, Err(StoreError::NotMember(_))));
        store.join(&channel("random"), &user("alice")).await.unwrap();
        let elsewhere = store.post_from_home(&channel("random"), &user("alice"), &text("r"), None).await.unwrap();
        let wrong = store.post_from_home(&general, &user("bob"), &text("no"), Some(elsewhere.id)).await;
        assert!(matches!(wrong, Err(StoreError::NoMessage(..))), "{wrong:?}");
    }
}

#[tokio::test]
async fn read_state_counts_unread_and_mentions_and_never_moves_back() {
    for fixture in fixtures("read_state_counts_unread_and_mentions").await {
        let store = fixture.open().await;
        let general = channel("general");
        store.post(&general, &user("x"), &peer(9001), &text("before")).await.ok();
        store.join(&general, &user("bob")).await.unwrap();
        let old = store.post(&general, &user("bob"), &peer(9001), &text("old")).await.unwrap();
        store.join(&general, &user("alice")).await.unwrap();
        let joined = store.summaries(&user("alice")).await.unwrap();
        assert_eq!((joined[0].unread, joined[0].last_read), (0, old.id), "a new member read what came before");
        let one = store.post(&general, &user("bob"), &peer(9001), &text("hi @alice")).await.unwrap();
        store.post(&general, &user("bob"), &peer(9001), &text("two")).await.unwrap();
        store.post(&general, &user("alice"), &peer(9001), &text("mine")).await.unwrap();
        let summary = &store.summaries(&user("alice")).await.unwrap()[0];
        assert_eq!((summary.unread, summary.mentions), (2, 1));
        assert_eq!(store.mark_read(&general, &user("alice"), Some(one.id)).await.unwrap(), one.id);
        assert_eq!(store.mark_read(&general, &user("alice"), Some(old.id)).await.unwrap(), one.id, "never back");
        let summary = &store.summaries(&user("alice")).await.unwrap()[0];
        assert_eq!((summary.unread, summary.mentions, summary.last_read), (1, 0, one.id));
        let newest = store.mark_read(&general, &user("alice"), Some(u64::MAX)).await.unwrap();
        assert!(newest > one.id, "capped at the newest message");
        assert!(matches!(store.mark_read(&general, &user("carol"), None).await, Err(StoreError::NotAMember(_))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_events_written_on_one_replica_reach_the_peers_of_members_on_another() {
    let Some((_database, a, b)) = two_replicas("chat_events_reach_another_replica", TTL).await else { return };
    let general = channel("general");
    for (name, port) in [("alice", 9001), ("bob", 9002)] {
        a.join(&general, &user(name)).await.unwrap();
        a.set_home(&user(name), &peer(port)).await.unwrap();
    }
    a.set_home(&user("carol"), &peer(9003)).await.unwrap();
    let mut on_b = b.subscribe();
    let message = a.post(&general, &user("alice"), &peer(9001), &text("hi @bob")).await.unwrap();
    let pushed = next_push(&mut on_b, |push| match &push.event {
        Event::ChannelMessage(pushed) if pushed.id == message.id => Some(pushed.clone()),
        _ => None,
    })
    .await;
    assert_eq!(pushed.mentions, [user("bob")]);
    a.edit(&general, &user("alice"), message.id, &text("edited")).await.unwrap();
    a.react(&general, &user("bob"), message.id, &emoji("👍"), true).await.unwrap();
    a.mark_read(&general, &user("bob"), None).await.unwrap();
    a.typing(&general, &user("bob")).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let push = next_push(&mut on_b, |push| match &push.event {
            Event::MessageEdited(_) | Event::Reaction(_) | Event::ChannelRead(_) | Event::Typing(_) => {
                Some((push.event.name(), push.is_for(&peer(9001)), push.is_for(&peer(9002)), push.is_for(&peer(9003))))
            }
            _ => None,
        })
        .await;
        seen.push(push);
    }
    assert_eq!(
        seen,
        [
            ("message_edited", true, true, false),
            ("reaction", true, true, false),
            ("channel_read", false, true, false),
            ("typing", true, true, false),
        ]
    );
}
