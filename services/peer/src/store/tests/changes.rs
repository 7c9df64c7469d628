//! Changes to direct messages after they were sent, read state per conversation and
//! replies, on every backend.

use wire::api::{DirectChange, DirectChangeKind, MessageKey, Reaction};
use wire::names::Emoji;

use super::{Backend, dm, user};
use crate::store::{ChangeOutcome, MAX_EMOJI_PER_MESSAGE, PeerStore};
use wire::api::{Contact, DirectMessage};
use wire::names::MessageText;

on_every_backend!(
    a_change_applies_once_to_one_mailbox_only_its_author_may_edit_and_the_latest_wins,
    reactions_belong_to_the_two_users_and_the_latest_change_of_each_wins,
    a_deleted_message_is_a_tombstone_that_takes_no_edit_and_no_reaction,
    a_message_holds_at_most_twenty_emoji_of_its_own_users_choosing,
    replies_show_their_parent_as_it_is_now,
    read_state_is_kept_per_conversation_as_the_last_place_read,
    a_handed_over_mailbox_keeps_edits_tombstones_replies_and_reactions,
);

fn change(id: &str, from: &str, to: &str, change: DirectChangeKind) -> DirectChange {
    DirectChange { id: id.into(), from: user(from), to: user(to), change }
}

fn edit(message_id: &str, text: &str, edited_at: u64) -> DirectChangeKind {
    DirectChangeKind::Edit { message_id: message_id.into(), message: MessageText::parse(text).unwrap(), edited_at }
}

fn react(message_id: &str, emoji: &str, on: bool, at: u64) -> DirectChangeKind {
    DirectChangeKind::React { message_id: message_id.into(), emoji: Emoji::parse(emoji).unwrap(), on, at }
}

fn applied(outcome: ChangeOutcome) -> (DirectMessage, bool) {
    match outcome {
        ChangeOutcome::Applied { message, changed } => (*message, changed),
        other => panic!("expected the change applied, got {other:?}"),
    }
}

/// Alice sent bob "m" and both copies are filed (hers outgoing, his received).
async fn conversation(store: &PeerStore) {
    store.save_outgoing(&dm("m", "alice", "bob", "helo")).await.unwrap();
    store.delivered("m").await.unwrap();
    store.save_incoming(&dm("m", "alice", "bob", "helo")).await.unwrap();
}

fn reactions(message: &DirectMessage) -> Vec<(String, Vec<String>)> {
    message
        .reactions
        .iter()
        .map(|Reaction { emoji, users }| (emoji.to_string(), users.iter().map(|u| u.to_string()).collect()))
        .collect()
}

async fn a_change_applies_once_to_one_mailbox_only_its_author_may_edit_and_the_latest_wins(backend: Backend) {
    let store = backend.store().await;
    conversation(&store).await;
    let fix = change("c1", "alice", "bob", edit("m", "hello", 10));
    let (message, changed) = applied(store.apply_change(&user("alice"), &fix, true).await.unwrap());
    assert_eq!((message.message.as_str(), message.edited_at, changed), ("hello", Some(10), true));
    assert_eq!(store.outbox_len().await.unwrap(), 1, "the change waits for bob's peer");
    assert_eq!(store.due(10).await.unwrap().len(), 0, "after the author's own first attempt");
    let (_, changed) = applied(store.apply_change(&user("alice"), &fix, true).await.unwrap());
    assert!(!changed, "applied twice, changed once");
    assert_eq!(store.outbox_len().await.unwrap(), 1, "and queued once");
    let late = change("c0", "alice", "bob", edit("m", "stale", 5));
    let (message, changed) = applied(store.apply_change(&user("alice"), &late, true).await.unwrap());
    assert_eq!((message.message.as_str(), changed), ("hello", false), "an older edit arriving late loses");

    let (bobs, _) = store.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap();
    assert_eq!((bobs[0].message.as_str(), bobs[0].edited_at), ("helo", None), "bob's copy waits for the hand-over");
    let (message, changed) = applied(store.apply_change(&user("bob"), &fix, false).await.unwrap());
    assert_eq!((message.message.as_str(), changed), ("hello", true));
    assert_eq!(store.outbox_len().await.unwrap(), 1, "a change handed over is not sent on");

    let forged = change("c2", "bob", "alice", edit("m", "bob's words", 20));
    assert_eq!(store.apply_change(&user("bob"), &forged, true).await.unwrap(), ChangeOutcome::NotAuthor);
    assert_eq!(store.apply_change(&user("alice"), &forged, false).await.unwrap(), ChangeOutcome::NotAuthor);
    let delete = change("c3", "bob", "alice", DirectChangeKind::Delete { message_id: "m".into() });
    assert_eq!(store.apply_change(&user("bob"), &delete, true).await.unwrap(), ChangeOutcome::NotAuthor);
    let elsewhere = change("c4", "carol", "alice", edit("m", "x", 30));
    assert_eq!(store.apply_change(&user("carol"), &elsewhere, true).await.unwrap(), ChangeOutcome::Missing);
    let unknown = change("c5", "alice", "bob", edit("nope", "x", 30));
    assert_eq!(store.apply_change(&user("alice"), &unknown, true).await.unwrap(), ChangeOutcome::Missing);
}

async fn reactions_belong_to_the_two_users_and_the_latest_change_of_each_wins(backend: Backend) {
    let store = backend.store().await;
    conversation(&store).await;
    let bob = |id: &str, kind| change(id, "bob", "alice", kind);
    let (message, changed) =
        applied(store.apply_change(&user("bob"), &bob("r1", react("m", "👍", true, 10)), true).await.unwrap());
    assert!(changed);
    assert_eq!(reactions(&message), [("👍".to_owned(), vec!["bob".to_owned()])]);
    let alice = change("r2", "alice", "bob", react("m", "🎉", true, 11));
    applied(store.apply_change(&user("bob"), &alice, false).await.unwrap());
    let alice = change("r3", "alice", "bob", react("m", "👍", true, 12));
    let (message, _) = applied(store.apply_change(&user("bob"), &alice, false).await.unwrap());
    assert_eq!(
        reactions(&message),
        [("👍".to_owned(), vec!["bob".to_owned(), "alice".to_owned()]), ("🎉".to_owned(), vec!["alice".to_owned()])],
        "emoji by first use, users in the order they reacted"
    );
    let (_, changed) =
        applied(store.apply_change(&user("bob"), &bob("r4", react("m", "👍", true, 13)), true).await.unwrap());
    assert!(!changed, "reacting twice is one reaction");
    // Bob takes his back at 20; a retry of an older "on" arriving after it changes nothing.
    let (message, changed) =
        applied(store.apply_change(&user("bob"), &bob("r5", react("m", "👍", false, 20)), true).await.unwrap());
    assert!(changed);
    let alone = vec![("🎉".to_owned(), vec!["alice".to_owned()]), ("👍".to_owned(), vec!["alice".to_owned()])];
    assert_eq!(reactions(&message), alone, "first use among those who still react");
    let (message, changed) =
        applied(store.apply_change(&user("bob"), &bob("r1", react("m", "👍", true, 10)), false).await.unwrap());
    assert_eq!((reactions(&message), changed), (alone, false));
    // Taking back what was never given changes nothing.
    let (_, changed) =
        applied(store.apply_change(&user("bob"), &bob("r6", react("m", "😀", false, 30)), true).await.unwrap());
    assert!(!changed);
    let carol = change("r7", "carol", "alice", react("m", "👍", true, 40));
    assert_eq!(store.apply_change(&user("bob"), &carol, false).await.unwrap(), ChangeOutcome::NotAuthor);
}

async fn a_deleted_message_is_a_tombstone_that_takes_no_edit_and_no_reaction(backend: Backend) {
    let store = backend.store().await;
    conversation(&store).await;
    let liked = change("r1", "bob", "alice", react("m", "👍", true, 10));
    applied(store.apply_change(&user("alice"), &liked, false).await.unwrap());
    let delete = change("d1", "alice", "bob", DirectChangeKind::Delete { message_id: "m".into() });
    let (message, changed) = applied(store.apply_change(&user("alice"), &delete, true).await.unwrap());
    assert_eq!((message.message.as_str(), message.deleted, changed), ("", true, true));
    assert!(message.reactions.is_empty(), "a tombstone keeps no reactions");
    let (_, changed) = applied(store.apply_change(&user("alice"), &delete, true).await.unwrap());
    assert!(!changed, "deleting twice is one deletion");
    let fix = change("e1", "alice", "bob", edit("m", "too late", 99));
    assert_eq!(store.apply_change(&user("alice"), &fix, true).await.unwrap(), ChangeOutcome::Deleted);
    let again = change("r2", "bob", "alice", react("m", "👍", true, 99));
    assert_eq!(store.apply_change(&user("alice"), &again, false).await.unwrap(), ChangeOutcome::Deleted);
    let (messages, _) = store.conversation(&user("alice"), &user("bob"), None, 10).await.unwrap();
    assert_eq!((messages.len(), messages[0].id.as_str(), messages[0].deleted), (1, "m", true), "it keeps its place");
    let json = serde_json::to_string(&messages[0]).unwrap();
    assert!(json.contains(r#""message":"""#) && json.contains(r#""deleted":true"#), "{json}");
    assert_eq!(serde_json::from_str::<DirectMessage>(&json).unwrap(), messages[0], "a tombstone travels");
}

async fn a_message_holds_at_most_twenty_emoji_of_its_own_users_choosing(backend: Backend) {
    let store = backend.store().await;
    conversation(&store).await;
    let emoji: Vec<String> =
        (0..=MAX_EMOJI_PER_MESSAGE as u32).map(|i| char::from_u32(0x1F600 + i).unwrap().to_string()).collect();
    for (i, one) in emoji.iter().take(MAX_EMOJI_PER_MESSAGE).enumerate() {
        let kind = react("m", one, true, i as u64 + 1);
        applied(store.apply_change(&user("bob"), &change(&format!("r{i}"), "bob", "alice", kind), true).await.unwrap());
    }
    let last = emoji.last().unwrap();
    let one_more = change("over", "bob", "alice", react("m", last, true, 100));
    assert_eq!(store.apply_change(&user("bob"), &one_more, true).await.unwrap(), ChangeOutcome::TooManyEmoji);
    let more_of_one = change("same", "alice", "bob", react("m", &emoji[0], true, 101));
    let (message, _) = applied(store.apply_change(&user("bob"), &more_of_one, false).await.unwrap());
    assert_eq!(message.reactions.len(), MAX_EMOJI_PER_MESSAGE, "an emoji already there is no new one");
}

async fn replies_show_their_parent_as_it_is_now(backend: Backend) {
    let store = backend.store().await;
    conversation(&store).await;
    let parent = store.reply_parent(&user("bob"), &user("alice"), "m").await.unwrap().unwrap();
    assert_eq!(
        (parent.id, parent.username.as_str(), parent.text.as_str()),
        (MessageKey::Direct("m".into()), "alice", "helo")
    );
    assert_eq!(store.reply_parent(&user("bob"), &user("carol"), "m").await.unwrap(), None, "another conversation's");
    assert_eq!(store.reply_parent(&user("carol"), &user("alice"), "m").await.unwrap(), None, "another mailbox's");

    let long = "x".repeat(300);
    store.save_outgoing(&dm("long", "bob", "alice", &long)).await.unwrap();
    let answer = DirectMessage { reply_to: Some("m".into()), ..dm("a", "bob", "alice", "hello to you") };
    store.save_outgoing(&answer).await.unwrap();
    let to_long = DirectMessage { reply_to: Some("long".into()), ..dm("b", "bob", "alice", "and that") };
    store.save_outgoing(&to_long).await.unwrap();
    let (messages, _) = store.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap();
    let reply = messages.iter().find(|m| m.id == "a").unwrap().reply.clone().unwrap();
    assert_eq!((reply.username.as_str(), reply.text.as_str(), reply.deleted), ("alice", "helo", false));
    let cut = messages.iter().find(|m| m.id == "b").unwrap().reply.clone().unwrap();
    assert_eq!(cut.text.chars().count(), 200, "a preview shows the first 200 characters");

    let fix = change("e", "alice", "bob", edit("m", "hello", 10));
    applied(store.apply_change(&user("bob"), &fix, false).await.unwrap());
    let gone = change("d", "alice", "bob", DirectChangeKind::Delete { message_id: "m".into() });
    let (messages, _) = store.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap();
    assert_eq!(messages.iter().find(|m| m.id == "a").unwrap().reply.as_ref().unwrap().text, "hello", "as edited");
    applied(store.apply_change(&user("bob"), &gone, false).await.unwrap());
    let (messages, _) = store.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap();
    let reply = messages.iter().find(|m| m.id == "a").unwrap().reply.clone().unwrap();
    assert_eq!((reply.text.as_str(), reply.deleted), ("", true));
}

async fn read_state_is_kept_per_conversation_as_the_last_place_read(backend: Backend) {
    let store = backend.store().await;
    let mut places = Vec::new();
    for i in 0..3 {
        places.push(store.save_incoming(&dm(&format!("b{i}"), "bob", "alice", "hi")).await.unwrap().unwrap());
        store.save_incoming(&dm(&format!("c{i}"), "carol", "alice", "hey")).await.unwrap();
    }
    let (marked, last_read) = store.mark_read_with(&user("alice"), &user("bob"), Some(places[1])).await.unwrap();
    assert_eq!((marked, last_read), (2, places[1]));
    let list = store.conversations(&user("alice")).await.unwrap();
    let of = |name: &str| list.iter().find(|c| c.with.as_str() == name).map(|c| (c.unread, c.last_read)).unwrap();
    assert_eq!(of("bob"), (1, places[1]));
    assert_eq!(of("carol"), (3, 0), "another conversation stays unread");
    let (marked, last_read) = store.mark_read_with(&user("alice"), &user("bob"), None).await.unwrap();
    assert_eq!((marked, last_read), (1, places[2]));
    assert_eq!(store.unread(&user("alice")).await.unwrap().len(), 3, "carol's three");
    store.mark_read(&user("alice"), None).await.unwrap();
    let list = store.conversations(&user("alice")).await.unwrap();
    assert!(list.iter().all(|c| c.unread == 0 && c.last_read == c.last.seq.unwrap()), "the old form marks every one");
}

async fn a_handed_over_mailbox_keeps_edits_tombstones_replies_and_reactions(backend: Backend) {
    let old = Backend::sqlite();
    let old = old.store().await;
    conversation(&old).await;
    old.save_incoming(&DirectMessage { reply_to: Some("m".into()), ..dm("n", "alice", "bob", "see above") })
        .await
        .unwrap();
    old.save_incoming(&dm("gone", "alice", "bob", "oops")).await.unwrap();
    for (id, kind, own) in [
        ("c1", edit("m", "hello", 10), false),
        ("c2", react("m", "👍", true, 11), true),
        ("c3", DirectChangeKind::Delete { message_id: "gone".into() }, false),
    ] {
        let from = if own { "bob" } else { "alice" };
        applied(
            old.apply_change(&user("bob"), &change(id, from, if own { "alice" } else { "bob" }, kind), own)
                .await
                .unwrap(),
        );
    }
    let handed = old.handover().unwrap().export_mailbox(&user("bob"), 0, 100).await.unwrap();
    let new = backend.store().await;
    let contacts: Vec<Contact> = Vec::new();
    assert_eq!(new.import_mailbox(&user("bob"), handed.clone(), contacts).await.unwrap(), 3);
    let (messages, _) = new.conversation(&user("bob"), &user("alice"), None, 10).await.unwrap();
    let shown = |list: &[DirectMessage]| {
        list.iter()
            .map(|m| (m.id.clone(), m.message.to_string(), m.edited_at, m.deleted, m.reply.clone(), reactions(m)))
            .collect::<Vec<_>>()
    };
    assert_eq!(shown(&messages), shown(&handed));
    assert_eq!(messages[0].reactions.len(), 1);
    assert_eq!(messages[1].reply.as_ref().unwrap().text, "hello");
    assert!(messages[2].deleted);
}
