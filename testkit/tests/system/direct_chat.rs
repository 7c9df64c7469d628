//! Direct messages after they are sent: edits, deletions, reactions, replies, typing
//! and read state, between users on two peers, with their authorisation.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::{Backend, System, TestUser};

use crate::realtime::{Events, open};

/// The next event of kind `kind`, skipping the others.
async fn next_of(events: &mut Events, kind: &str) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap_or_else(|_| panic!("a {kind} event within 10 s"))
            .expect("the stream stays open")
            .expect("a well-formed event");
        if event.event == kind {
            return serde_json::from_str(&event.data).unwrap();
        }
    }
}

/// The next direct message from `from` (a page hears of the user's own ones too).
async fn next_message_from(events: &mut Events, from: &str) -> Value {
    loop {
        let message = next_of(events, "direct_message").await;
        if message["username"] == from {
            return message;
        }
    }
}

/// The next event that is about the chat itself (not presence or membership).
async fn next_chat_event(events: &mut Events) -> (String, Value) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open")
            .expect("a well-formed event");
        if !matches!(event.event.as_str(), "presence" | "membership") {
            return (event.event, serde_json::from_str(&event.data).unwrap_or(Value::Null));
        }
    }
}

/// Alice (user1, peer 0) sends bob (user2, peer 1) `text`, which bob's page receives.
/// Returns its id.
async fn send(from: &TestUser, to: &str, text: &str, their_events: &mut Events) -> String {
    let sent = from.post_json("/send-peer", &json!({"username": to, "message": text})).await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let id = sent.body["id"].as_str().unwrap().to_owned();
    let arrived = next_message_from(their_events, &from.name).await;
    assert_eq!(arrived["id"], id.as_str());
    id
}

async fn the_author_edits_and_deletes_both_users_react_and_both_users_pages_hear_of_it(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    let (mut alices, mut alices_other_tab, mut bobs) =
        (open(&alice, None).await, open(&alice, None).await, open(&bob, None).await);
    let id = send(&alice, "user2", "helo", &mut bobs).await;

    // Only the author edits: bob holds a copy, carol none.
    let refused = bob.post_json("/edit-message", &json!({"id": id, "message": "bob's words"})).await;
    assert_eq!((refused.status, refused.body["status"].as_str()), (403, Some("error")), "{:?}", refused.body);
    assert_eq!(carol.post_json("/edit-message", &json!({"id": id, "message": "x"})).await.status, 404);
    let edited = alice.post("/edit-message", &format!("id={id}&message=hello")).await;
    assert_eq!((edited.status, edited.body["id"].as_str()), (200, Some(id.as_str())), "{:?}", edited.body);
    let edited_at = edited.body["edited_at"].as_u64().unwrap();
    for (events, with) in [(&mut alices, "user2"), (&mut alices_other_tab, "user2"), (&mut bobs, "user1")] {
        let event = next_of(events, "message_edited").await;
        assert_eq!(
            event,
            json!({"type": "message_edited", "with": with, "id": id, "message": "hello", "edited_at": edited_at})
        );
    }
    let bobs_copy = bob.get("/get-conversation?with=user1").await;
    assert_eq!(bobs_copy.body["messages"][0]["message"], "hello");
    assert_eq!(bobs_copy.body["messages"][0]["edited_at"], edited_at);

    // Both users react; a stranger cannot; an emoji is one emoji.
    let reacted = bob.post_json("/react", &json!({"id": id, "emoji": "👍"})).await;
    assert_eq!(reacted.body["reactions"], json!([{"emoji": "👍", "users": ["user2"]}]), "{:?}", reacted.body);
    for events in [&mut alices, &mut bobs] {
        let event = next_of(events, "reaction").await;
        assert_eq!(event["reactions"], json!([{"emoji": "👍", "users": ["user2"]}]));
        assert_eq!(event["id"], id.as_str());
    }
    let both = alice.post("/react", &format!("id={id}&emoji=%F0%9F%91%8D")).await;
    assert_eq!(both.body["reactions"], json!([{"emoji": "👍", "users": ["user2", "user1"]}]));
    assert_eq!(next_of(&mut bobs, "reaction").await["reactions"][0]["users"], json!(["user2", "user1"]));
    assert_eq!(next_of(&mut alices, "reaction").await["reactions"][0]["users"], json!(["user2", "user1"]));
    let taken_back = bob.post_json("/react", &json!({"id": id, "emoji": "👍", "on": false})).await;
    assert_eq!(taken_back.body["reactions"], json!([{"emoji": "👍", "users": ["user1"]}]));
    assert_eq!(next_of(&mut alices, "reaction").await["reactions"], json!([{"emoji": "👍", "users": ["user1"]}]));
    assert_eq!(carol.post_json("/react", &json!({"id": id, "emoji": "👍"})).await.status, 404);
    for bad in ["ok", "👍👍", ""] {
        let reply = bob.post_json("/react", &json!({"id": id, "emoji": bad})).await;
        assert_eq!((reply.status, reply.body["status"].as_str()), (400, Some("error")), "{bad:?}");
    }

    // Only the author deletes; the message stays as a tombstone, closed to changes.
    assert_eq!(bob.post_json("/delete-message", &json!({"id": id})).await.status, 403);
    assert_eq!(carol.post_json("/delete-message", &json!({"id": id})).await.status, 404);
    let deleted = alice.post("/delete-message", &format!("id={id}")).await;
    assert_eq!((deleted.status, deleted.body["id"].as_str()), (200, Some(id.as_str())));
    for (events, with) in [(&mut alices, "user2"), (&mut bobs, "user1")] {
        assert_eq!(
            next_of(events, "message_deleted").await,
            json!({"type": "message_deleted", "with": with, "id": id})
        );
    }
    let bobs_copy = bob.get("/get-conversation?with=user1").await;
    let tombstone = &bobs_copy.body["messages"][0];
    assert_eq!(
        (tombstone["id"].as_str(), tombstone["message"].as_str(), tombstone["deleted"].as_bool()),
        (Some(id.as_str()), Some(""), Some(true))
    );
    assert!(tombstone.get("reactions").is_none(), "{tombstone}");
    assert_eq!(alice.post_json("/edit-message", &json!({"id": id, "message": "again"})).await.status, 409);
    assert_eq!(bob.post_json("/react", &json!({"id": id, "emoji": "👍"})).await.status, 409);
    assert_eq!(alice.post_json("/delete-message", &json!({"id": id})).await.status, 200, "deleting twice is fine");
    sys.shutdown().await;
}

async fn a_reply_shows_its_parent_and_answers_only_a_message_of_its_conversation(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    let (mut alices, mut bobs, mut carols) =
        (open(&alice, None).await, open(&bob, None).await, open(&carol, None).await);
    let question = send(&alice, "user2", "lunch?", &mut bobs).await;
    let elsewhere = send(&alice, "user3", "hi carol", &mut carols).await;

    let reply =
        bob.post_json("/send-peer", &json!({"username": "user1", "message": "yes", "reply_to": question})).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let preview = json!({"id": question, "username": "user1", "text": "lunch?", "deleted": false});
    assert_eq!(next_of(&mut bobs, "direct_message").await["reply"], preview, "the replier's own page");
    let arrived = next_message_from(&mut alices, "user2").await;
    assert_eq!((arrived["reply_to"].as_str(), &arrived["reply"]), (Some(question.as_str()), &preview));
    let alices_copy = alice.get("/get-conversation?with=user2").await;
    assert_eq!(alices_copy.body["messages"][1]["reply"], preview);

    for (parent, why) in [(elsewhere.as_str(), "a message of another conversation"), ("nope", "no message")] {
        let refused =
            bob.post_json("/send-peer", &json!({"username": "user1", "message": "?", "reply_to": parent})).await;
        assert_eq!((refused.status, refused.body["status"].as_str()), (404, Some("error")), "{why}");
    }
    let refused =
        carol.post_json("/send-peer", &json!({"username": "user1", "message": "me too", "reply_to": question})).await;
    assert_eq!(refused.status, 404, "carol cannot answer a conversation she is not in");

    // The parent deleted: the reply shows it gone.
    alice.post_json("/delete-message", &json!({"id": question})).await;
    let bobs_copy = bob.get("/get-conversation?with=user1").await;
    assert_eq!(
        bobs_copy.body["messages"][1]["reply"],
        json!({"id": question, "username": "user1", "text": "", "deleted": true})
    );
    sys.shutdown().await;
}

async fn typing_reaches_the_partner_at_most_once_per_two_seconds(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let mut bobs = open(&bob, None).await;
    let mut alices = open(&alice, None).await;

    let typing = alice.post("/typing", "to=user2").await;
    assert_eq!((typing.status, typing.body.clone()), (200, json!({"status": "success"})));
    let (kind, event) = next_chat_event(&mut bobs).await;
    assert_eq!((kind.as_str(), event), ("typing", json!({"type": "typing", "username": "user1", "to": "user2"})));
    // At once again: answered, dropped. The next thing bob hears is the message.
    assert_eq!(alice.post("/typing", "to=user2").await.status, 200);
    alice.post_json("/send-peer", &json!({"username": "user2", "message": "here it comes"})).await;
    let (kind, event) = next_chat_event(&mut bobs).await;
    assert_eq!((kind.as_str(), event["message"].as_str()), ("direct_message", Some("here it comes")));
    let (kind, _) = next_chat_event(&mut alices).await;
    assert_eq!(kind, "direct_message", "the typist's own pages hear nothing of their typing");

    for bad in ["", "to=user1", "to=bad%20name"] {
        let reply = alice.post("/typing", bad).await;
        assert_eq!((reply.status, reply.body["status"].as_str()), (400, Some("error")), "{bad:?}");
    }
    // A channel is the tracker's: members only (alice did not join general).
    assert_eq!(alice.post("/typing", "channel_name=general").await.status, 403);
    assert_eq!(alice.post("/typing", "channel_name=general&to=user2").await.status, 400, "one of the two");
    sys.shutdown().await;
}

async fn marking_a_conversation_read_tells_every_page_of_the_reader_and_nobody_else(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    let (mut alices, mut alices_other_tab, mut bobs) =
        (open(&alice, None).await, open(&alice, None).await, open(&bob, None).await);
    let mut carols = open(&carol, None).await;
    let mut seqs = Vec::new();
    for text in ["one", "two"] {
        bob.post_json("/send-peer", &json!({"username": "user1", "message": text})).await;
        seqs.push(next_message_from(&mut alices, "user2").await["seq"].as_u64().unwrap());
    }
    carol.post_json("/send-peer", &json!({"username": "user1", "message": "from carol"})).await;
    next_message_from(&mut alices, "user3").await;

    let marked = alice.post("/mark-read", &format!("with=user2&up_to={}", seqs[0])).await;
    assert_eq!(marked.body, json!({"status": "success", "marked": 1}));
    let read = json!({"type": "read", "with": "user2", "up_to": seqs[0]});
    assert_eq!(next_of(&mut alices, "read").await, read);
    assert_eq!(next_of(&mut alices_other_tab, "read").await, read, "every tab of hers");
    let list = alice.get("/get-conversations").await.body["conversations"].clone();
    let of = |name: &str| list.as_array().unwrap().iter().find(|c| c["with"] == name).unwrap().clone();
    assert_eq!((of("user2")["unread"].as_u64(), of("user2")["last_read"].as_u64()), (Some(1), Some(seqs[0])));
    assert_eq!((of("user3")["unread"].as_u64(), of("user3")["last_read"].as_u64()), (Some(1), Some(0)));

    // Bob (on another peer) and carol (on hers) hear nothing of it, up to alice's next
    // message to each.
    for (events, to) in [(&mut bobs, "user2"), (&mut carols, "user3")] {
        let sent = alice.post_json("/send-peer", &json!({"username": to, "message": "read you"})).await;
        loop {
            let (kind, event) = next_chat_event(events).await;
            assert_ne!(kind, "read", "{to}'s pages hear nothing of alice's reading: {event}");
            if event["id"] == sent.body["id"] {
                break;
            }
        }
    }
    // The original form still marks the whole mailbox.
    let marked = alice.post("/mark-read", "").await;
    assert_eq!(marked.body["marked"], 2);
    assert_eq!(next_of(&mut alices, "read").await, json!({"type": "read"}));
    assert_eq!(alice.post("/mark-read", "with=bad%20name").await.status, 400);
    // A channel's read state is the tracker's: members only (alice did not join general).
    assert_eq!(alice.post("/mark-read", "channel_name=general&up_to=1").await.status, 403);
    sys.shutdown().await;
}

async fn a_change_for_a_peer_that_is_down_reaches_it_when_it_is_back(backend: Backend) {
    let mut sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let mut bobs = open(&bob, None).await;
    let id = send(&alice, "user2", "helo", &mut bobs).await;
    drop(bobs);

    sys.stop_peer(1).await;
    let edited = alice.post_json("/edit-message", &json!({"id": id, "message": "hello"})).await;
    assert_eq!(edited.status, 200, "the author's copy changed; bob's waits in the outbox");
    alice.post_json("/react", &json!({"id": id, "emoji": "🎉"})).await;
    sys.restart_peer(1).await;
    testkit::eventually("bob's copy catches up", || async {
        let copy = bob.get("/get-conversation?with=user1").await.body["messages"][0].clone();
        copy["message"] == "hello" && copy["reactions"] == json!([{"emoji": "🎉", "users": ["user1"]}])
    })
    .await;
    sys.shutdown().await;
}

async fn a_user_who_moves_keeps_edits_reactions_replies_and_tombstones_and_later_changes_follow(backend: Backend) {
    let sys = System::builder().backend(backend).peers(3).start().await;
    let alice_on_0 = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let mut alices = open(&alice_on_0, None).await;
    let first = bob.post_json("/send-peer", &json!({"username": "user1", "message": "helo"})).await.body["id"].clone();
    let gone = bob.post_json("/send-peer", &json!({"username": "user1", "message": "oops"})).await.body["id"].clone();
    let answer =
        alice_on_0.post_json("/send-peer", &json!({"username": "user2", "message": "hi", "reply_to": first})).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    bob.post_json("/edit-message", &json!({"id": first, "message": "hello"})).await;
    bob.post_json("/delete-message", &json!({"id": gone})).await;
    alice_on_0.post_json("/react", &json!({"id": first, "emoji": "👍"})).await;
    next_of(&mut alices, "message_deleted").await;
    let before = alice_on_0.get("/get-conversation?with=user2").await.body["messages"].clone();
    assert_eq!(before[0]["message"], "hello", "{before}");
    drop(alices);

    // Her browser lands on peer 2 now: her mailbox follows her there (embedded), or is
    // the same one (cluster mode), as it was.
    let alice_on_2 = sys.login(2, "user1", "password1").await;
    testkit::eventually("alice's history follows her to peer 2, as it was", || async {
        alice_on_2.get("/get-conversation?with=user2").await.body["messages"] == before
    })
    .await;
    let shown = &before;
    assert_eq!(shown[0]["reactions"], json!([{"emoji": "👍", "users": ["user1"]}]));
    assert_eq!((shown[1]["deleted"].as_bool(), shown[1]["message"].as_str()), (Some(true), Some("")));
    assert_eq!(shown[2]["reply"]["text"], "hello");

    // A change made after the move reaches her new home.
    let mut alices = open(&alice_on_2, None).await;
    bob.post_json("/react", &json!({"id": first, "emoji": "🎉"})).await;
    let event = next_of(&mut alices, "reaction").await;
    assert_eq!(event["reactions"], json!([{"emoji": "👍", "users": ["user1"]}, {"emoji": "🎉", "users": ["user2"]}]));
    sys.shutdown().await;
}

testkit::on_both_backends!(
    a_user_who_moves_keeps_edits_reactions_replies_and_tombstones_and_later_changes_follow,
    the_author_edits_and_deletes_both_users_react_and_both_users_pages_hear_of_it,
    a_reply_shows_its_parent_and_answers_only_a_message_of_its_conversation,
    typing_reaches_the_partner_at_most_once_per_two_seconds,
    marking_a_conversation_read_tells_every_page_of_the_reader_and_nobody_else,
    a_change_for_a_peer_that_is_down_reaches_it_when_it_is_back,
);
