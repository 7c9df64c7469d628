//! Issue 13, the channel side: edit, delete, reactions, replies, mentions, typing,
//! read state, topics and private channels, each with its event and who may.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::{Backend, System, TestUser};

use crate::realtime::{Events, open};

/// The next event named `name`, skipping others; every event seen on the way is
/// added to `seen` (`name data`).
async fn next_named(events: &mut Events, name: &str, seen: &mut Vec<String>) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap_or_else(|_| panic!("a {name} event within 10 s; saw {seen:?}"))
            .expect("the stream stays open")
            .expect("a well-formed event");
        seen.push(format!("{} {}", event.event, event.data));
        if event.event == name {
            return serde_json::from_str(&event.data).unwrap();
        }
    }
}

async fn next_of(events: &mut Events, name: &str) -> Value {
    next_named(events, name, &mut Vec::new()).await
}

async fn post_ok(user: &TestUser, path: &str, body: Value) -> Value {
    let reply = user.post_json(path, &body).await;
    assert_eq!(reply.status, 200, "{path} {body}: {}", reply.body);
    reply.body
}

async fn status(user: &TestUser, path: &str, body: Value) -> u16 {
    user.post_json(path, &body).await.status
}

async fn send(user: &TestUser, channel: &str, text: &str, reply_to: Option<u64>) -> u64 {
    let mut body = json!({"channel_name": channel, "message": text});
    if let Some(parent) = reply_to {
        body["reply_to"] = json!(parent);
    }
    post_ok(user, "/send-channel-message", body).await["id"].as_u64().unwrap()
}

async fn history(user: &TestUser, channel: &str) -> Vec<Value> {
    let page = post_ok(user, "/get-channel-messages", json!({"channel_name": channel})).await;
    page["messages"]["messages"].as_array().unwrap().clone()
}

async fn summary(user: &TestUser, channel: &str) -> Value {
    let list = user.get("/get-joined-channels").await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["summaries"].as_array().unwrap().iter().find(|s| s["name"] == channel).cloned().unwrap_or(Value::Null)
}

async fn edits_deletes_reactions_replies_and_mentions_reach_members_and_only_authors_change_messages(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).without_rate_limits().start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    alice.post("/join-channel", "channel_name=general").await;
    bob.post("/join-channel", "channel_name=general").await;
    carol.post("/join-channel", "channel_name=random").await;
    let mut alices = open(&alice, None).await;
    let mut bobs = open(&bob, None).await;

    // A reply that mentions its parent's author: a preview, the mention, a mention event.
    let first = send(&alice, "general", "hello team", None).await;
    let reply = send(&bob, "general", "@user1 hi, and @user3 (not here) and @user2", Some(first)).await;
    let pushed = loop {
        let message = next_of(&mut alices, "channel_message").await;
        if message["id"] == reply {
            break message;
        }
    };
    assert_eq!(pushed["reply_to"], first);
    assert_eq!(pushed["reply"], json!({"id": first, "username": "user1", "text": "hello team", "deleted": false}));
    assert_eq!(pushed["mentions"], json!(["user1"]), "members only, the author aside");
    let mention = next_of(&mut alices, "mention").await;
    assert_eq!((mention["channel"].as_str(), mention["id"].as_u64()), (Some("general"), Some(reply)));
    assert_eq!(mention["username"], "user2");
    let other = send(&carol, "random", "elsewhere", None).await;
    assert_eq!(
        status(&bob, "/send-channel-message", json!({"channel_name": "general", "message": "x", "reply_to": other}))
            .await,
        404
    );
    assert_eq!(
        status(&bob, "/send-channel-message", json!({"channel_name": "general", "message": "x", "reply_to": 999_999}))
            .await,
        404
    );

    // Edit: the author only.
    let edit = json!({"id": first, "channel_name": "general", "message": "hello all @user2"});
    assert_eq!(status(&bob, "/edit-message", edit.clone()).await, 403, "not the author");
    assert_eq!(status(&carol, "/edit-message", edit.clone()).await, 403, "not the author, not a member");
    assert_eq!(
        status(&alice, "/edit-message", json!({"id": 999_999, "channel_name": "general", "message": "x"})).await,
        404
    );
    let edited = post_ok(&alice, "/edit-message", edit).await;
    assert_eq!(edited["id"], first);
    let event = next_of(&mut bobs, "message_edited").await;
    assert_eq!((event["channel"].as_str(), event["id"].as_u64()), (Some("general"), Some(first)));
    assert_eq!((event["message"].as_str(), event["mentions"].clone()), (Some("hello all @user2"), json!(["user2"])));
    assert_eq!(event["edited_at"], edited["edited_at"]);

    // Reactions: members only, one emoji, idempotent, aggregated in order of first use.
    let react = |emoji: &str, on: bool| json!({"id": reply, "channel_name": "general", "emoji": emoji, "on": on});
    assert_eq!(status(&carol, "/react", react("👍", true)).await, 403, "not a member");
    assert_eq!(status(&alice, "/react", react("ok", true)).await, 400);
    assert_eq!(status(&alice, "/react", react("👍👍", true)).await, 400);
    post_ok(&alice, "/react", react("👍", true)).await;
    post_ok(&bob, "/react", react("🎉", true)).await;
    let again = post_ok(&bob, "/react", react("👍", true)).await;
    assert_eq!(post_ok(&bob, "/react", react("👍", true)).await["reactions"], again["reactions"], "idempotent");
    let expected = json!([{"emoji": "👍", "users": ["user1", "user2"]}, {"emoji": "🎉", "users": ["user2"]}]);
    assert_eq!(again["reactions"], expected);
    let mut reactions = next_of(&mut alices, "reaction").await;
    while reactions["reactions"] != expected {
        reactions = next_of(&mut alices, "reaction").await;
    }
    assert_eq!((reactions["channel"].as_str(), reactions["id"].as_u64()), (Some("general"), Some(reply)));
    let off = post_ok(&bob, "/react", react("🎉", false)).await;
    assert_eq!(off["reactions"], json!([{"emoji": "👍", "users": ["user1", "user2"]}]));
    let messages = history(&carol, "general").await;
    let stored = messages.iter().find(|m| m["id"] == reply).unwrap();
    assert_eq!(stored["reactions"], off["reactions"]);
    assert_eq!(stored["reply"]["text"], "hello all @user2", "the preview follows the edit");
    assert!(messages.iter().find(|m| m["id"] == first).unwrap()["edited_at"].as_u64().is_some());

    // Delete: the author only; a tombstone stays, without text or reactions.
    let delete = json!({"id": reply, "channel_name": "general"});
    assert_eq!(status(&alice, "/delete-message", delete.clone()).await, 403);
    assert_eq!(post_ok(&bob, "/delete-message", delete).await["id"], reply);
    let event = next_of(&mut alices, "message_deleted").await;
    assert_eq!((event["channel"].as_str(), event["id"].as_u64()), (Some("general"), Some(reply)));
    let tombstone = history(&alice, "general").await.into_iter().find(|m| m["id"] == reply).unwrap();
    assert_eq!((tombstone["deleted"].as_bool(), tombstone["text"].as_str()), (Some(true), Some("")));
    assert!(tombstone.get("reactions").is_none() && tombstone.get("mentions").is_none(), "{tombstone}");
    let edit = json!({"id": reply, "channel_name": "general", "message": "back"});
    assert_eq!(status(&bob, "/edit-message", edit).await, 409, "a tombstone is not edited");
    assert_eq!(status(&alice, "/react", react("👍", true)).await, 409);
    let late = send(&alice, "general", "answering a deleted one", Some(reply)).await;
    let late = history(&alice, "general").await.into_iter().find(|m| m["id"] == late).unwrap();
    assert_eq!(late["reply"], json!({"id": reply, "username": "user2", "text": "", "deleted": true}));

    sys.shutdown().await;
}

async fn read_state_mentions_typing_and_topics_follow_the_user_across_tabs(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).without_rate_limits().start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    alice.post("/join-channel", "channel_name=project").await;
    bob.post("/join-channel", "channel_name=project").await;
    let start = summary(&alice, "project").await;
    assert_eq!((start["unread"].as_u64(), start["mentions"].as_u64()), (Some(0), Some(0)), "{start}");

    let one = send(&bob, "project", "one", None).await;
    let two = send(&bob, "project", "two for @user1", None).await;
    send(&bob, "project", "three", None).await;
    send(&alice, "project", "mine do not count", None).await;
    let before = summary(&alice, "project").await;
    assert_eq!((before["unread"].as_u64(), before["mentions"].as_u64()), (Some(3), Some(1)), "{before}");
    assert_eq!((before["private"].as_bool(), before["topic"].as_str()), (Some(false), Some("")));

    // Two tabs: both hear the read state move, which never moves back.
    let mut tab1 = open(&alice, None).await;
    let mut tab2 = open(&alice, None).await;
    let read = post_ok(&alice, "/mark-read", json!({"channel_name": "project", "up_to": two})).await;
    assert_eq!(read["last_read"], two);
    for tab in [&mut tab1, &mut tab2] {
        let event = next_of(tab, "read").await;
        assert_eq!(event, json!({"type": "read", "channel": "project", "up_to": two}));
    }
    let after = summary(&alice, "project").await;
    assert_eq!(
        (after["unread"].as_u64(), after["mentions"].as_u64(), after["last_read"].as_u64()),
        (Some(1), Some(0), Some(two))
    );
    assert_eq!(post_ok(&alice, "/mark-read", json!({"channel_name": "project", "up_to": one})).await["last_read"], two);
    assert_eq!(status(&carol, "/mark-read", json!({"channel_name": "project", "up_to": one})).await, 403);
    let newest = post_ok(&alice, "/mark-read", json!({"channel_name": "project"})).await;
    assert!(newest["last_read"].as_u64() > Some(two), "without up_to: the newest message");

    // Typing: to the other members, one per 2 s; the excess is answered and dropped.
    let mut bobs = open(&bob, None).await;
    post_ok(&alice, "/typing", json!({"channel_name": "project"})).await;
    post_ok(&alice, "/typing", json!({"channel_name": "project"})).await;
    let typing = next_of(&mut bobs, "typing").await;
    assert_eq!(typing, json!({"type": "typing", "channel": "project", "username": "user1"}));
    let marker = send(&alice, "project", "marker", None).await;
    let mut seen = Vec::new();
    loop {
        let message = next_named(&mut bobs, "channel_message", &mut seen).await;
        if message["id"] == marker {
            break;
        }
    }
    assert!(!seen.iter().any(|event| event.starts_with("typing")), "the second typing was dropped: {seen:?}");
    let mut own = Vec::new();
    loop {
        let message = next_named(&mut tab1, "channel_message", &mut own).await;
        if message["id"] == marker {
            break;
        }
    }
    assert!(!own.iter().any(|event| event.starts_with("typing")), "not to the typer: {own:?}");
    assert_eq!(status(&carol, "/typing", json!({"channel_name": "project"})).await, 403);
    assert_eq!(status(&alice, "/typing", json!({})).await, 400);

    // Topic: members only, bounded, told to members.
    assert_eq!(status(&carol, "/set-topic", json!({"channel_name": "project", "topic": "mine"})).await, 403);
    assert_eq!(status(&alice, "/set-topic", json!({"channel_name": "project", "topic": "x".repeat(251)})).await, 400);
    post_ok(&alice, "/set-topic", json!({"channel_name": "project", "topic": "Ship <b>it</b>"})).await;
    let updated = next_of(&mut bobs, "channel_updated").await;
    assert_eq!(
        updated,
        json!({"type": "channel_updated", "channel": "project", "topic": "Ship <b>it</b>", "private": false})
    );
    assert_eq!(summary(&bob, "project").await["topic"], "Ship <b>it</b>");
    sys.shutdown().await;
}

async fn a_private_channel_is_invisible_to_non_members_until_invited(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).without_rate_limits().start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    carol.post("/join-channel", "channel_name=general").await;
    alice.post("/join-channel", "channel_name=general").await;
    let mut carols = open(&carol, None).await;
    let mut bobs = open(&bob, None).await;

    let created = alice.post_json("/create-channel", &json!({"channel_name": "secret", "private": true})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = send(&alice, "secret", "the plan", None).await;
    post_ok(&alice, "/set-topic", json!({"channel_name": "secret", "topic": "hush"})).await;

    for user in [&bob, &carol] {
        let all = user.get("/get-all-channels").await;
        assert!(!all.body["channels"].as_array().unwrap().contains(&json!("secret")), "{}", all.body);
        assert_eq!(user.post("/join-channel", "channel_name=secret").await.status, 404);
        assert_eq!(user.post("/get-channel-messages", "channel_name=secret").await.status, 404);
        assert_eq!(
            status(user, "/send-channel-message", json!({"channel_name": "secret", "message": "hi"})).await,
            404
        );
        let react = json!({"id": secret, "channel_name": "secret", "emoji": "👍"});
        assert_eq!(status(user, "/react", react).await, 404);
        let edit = json!({"id": secret, "channel_name": "secret", "message": "mine"});
        assert_eq!(status(user, "/edit-message", edit).await, 404);
        assert_eq!(status(user, "/typing", json!({"channel_name": "secret"})).await, 404);
        assert_eq!(status(user, "/mark-read", json!({"channel_name": "secret"})).await, 404);
        assert_eq!(status(user, "/set-topic", json!({"channel_name": "secret", "topic": "x"})).await, 404);
        assert_eq!(status(user, "/invite", json!({"channel_name": "secret", "username": "user3"})).await, 404);
    }
    assert_eq!(alice.post_json("/create-channel", &json!({"channel_name": "secret"})).await.status, 409);
    assert!(alice.get("/get-all-channels").await.body["channels"].as_array().unwrap().contains(&json!("secret")));

    // Alice invites bob: he is a member, hears of it, and sees the channel.
    assert_eq!(status(&alice, "/invite", json!({"channel_name": "secret", "username": "user2"})).await, 200);
    // Joins of general may still be on their way from before.
    let mut joined = next_of(&mut bobs, "membership").await;
    while joined["channel"] != "secret" {
        joined = next_of(&mut bobs, "membership").await;
    }
    assert_eq!(
        joined,
        json!({"type": "membership", "channel": "secret", "username": "user2", "joined": true, "private": true})
    );
    assert_eq!(history(&bob, "secret").await[0]["text"], "the plan");
    let bobs_view = summary(&bob, "secret").await;
    assert_eq!((bobs_view["private"].as_bool(), bobs_view["topic"].as_str()), (Some(true), Some("hush")));
    post_ok(&bob, "/typing", json!({"channel_name": "secret"})).await;
    send(&bob, "secret", "count me in", None).await;

    // Only members invite, to public channels too.
    assert_eq!(status(&carol, "/invite", json!({"channel_name": "project", "username": "user1"})).await, 403);
    // Bob leaves: the members (alice) and bob hear of it.
    let mut alices = open(&alice, None).await;
    assert_eq!(bob.post("/leave-channel", "channel_name=secret").await.status, 200);
    for events in [&mut alices, &mut bobs] {
        let mut left = next_of(events, "membership").await;
        while left["channel"] != "secret" {
            left = next_of(events, "membership").await;
        }
        let expected =
            json!({"type": "membership", "channel": "secret", "username": "user2", "joined": false, "private": true});
        assert_eq!(left, expected);
    }
    assert_eq!(bob.post("/get-channel-messages", "channel_name=secret").await.status, 404, "absent again");

    // Carol heard nothing of any of it: the first thing she hears is in general.
    let marker = send(&alice, "general", "public marker", None).await;
    let mut seen = Vec::new();
    loop {
        let message = next_named(&mut carols, "channel_message", &mut seen).await;
        if message["id"] == marker {
            break;
        }
    }
    assert!(!seen.iter().any(|event| event.contains("secret") || event.contains("hush")), "{seen:?}");
    sys.shutdown().await;
}

testkit::on_both_backends!(
    edits_deletes_reactions_replies_and_mentions_reach_members_and_only_authors_change_messages,
    read_state_mentions_typing_and_topics_follow_the_user_across_tabs,
    a_private_channel_is_invisible_to_non_members_until_invited,
);
