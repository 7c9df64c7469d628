//! `POST /search`: the caller's channels and direct messages, and nobody else's.

use serde_json::{Value, json};
use testkit::{Backend, System, TestUser};

/// `(kind, channel or with, marked snippet)` of each result, in order; hits in [].
fn results(reply: &Value) -> Vec<(String, String, String)> {
    reply["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {reply}"))
        .iter()
        .map(|hit| {
            let place = hit.get("channel").or_else(|| hit.get("with")).and_then(Value::as_str).unwrap();
            let snippet = hit["snippet"]
                .as_array()
                .unwrap()
                .iter()
                .map(|segment| {
                    let text = segment["text"].as_str().unwrap();
                    if segment["hit"] == json!(true) { format!("[{text}]") } else { text.to_owned() }
                })
                .collect();
            (hit["kind"].as_str().unwrap().to_owned(), place.to_owned(), snippet)
        })
        .collect()
}

async fn search(user: &TestUser, body: &str) -> Vec<(String, String, String)> {
    let reply = user.post("/search", body).await;
    assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    results(&reply.body)
}

fn hit(kind: &str, place: &str, snippet: &str) -> (String, String, String) {
    (kind.to_owned(), place.to_owned(), snippet.to_owned())
}

async fn search_finds_the_callers_channel_and_direct_messages_and_nobody_elses(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).without_rate_limits().start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;

    assert_eq!(alice.post("/create-channel", "channel_name=rust-vn").await.status, 201);
    assert_eq!(alice.post("/join-channel", "channel_name=general").await.status, 200);
    assert_eq!(carol.post("/create-channel", "channel_name=ops").await.status, 201);
    let posted = alice.post("/send-channel-message", "channel_name=rust-vn&message=deploy+tonight").await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    alice.post("/send-channel-message", "channel_name=general&message=Deploy+%3Cb%3Enow%3C%2Fb%3E").await;
    carol.post("/send-channel-message", "channel_name=ops&message=deploy+secretly").await;
    let sent = bob.post("/send-peer", "username=user1&message=can+you+deploy%3F").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    carol.post("/send-peer", "username=user2&message=deploy+gossip").await;

    let everything = search(&alice, "q=deploy").await;
    assert_eq!(
        everything,
        [
            hit("direct", "user2", "can you [deploy]?"),
            hit("channel", "general", "[Deploy] <b>now</b>"),
            hit("channel", "rust-vn", "[deploy] tonight"),
        ],
        "newest first; markup is text; not carol's channel, not carol's and bob's messages"
    );
    let json = alice.post_json("/search", &json!({"q": "DEPLOY", "limit": 1})).await;
    assert_eq!(json.body["results"][0]["username"], "user2");
    assert_eq!(json.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(search(&alice, "q=deploy&channel_name=rust-vn").await, [hit("channel", "rust-vn", "[deploy] tonight")]);
    assert_eq!(search(&alice, "q=deploy&with=user2").await, [hit("direct", "user2", "can you [deploy]?")]);
    assert!(search(&alice, "q=deploy&with=user3").await.is_empty(), "nothing between alice and carol");
    assert_eq!(
        search(&bob, "q=deploy").await,
        [hit("direct", "user3", "[deploy] gossip"), hit("direct", "user1", "can you [deploy]?")],
        "bob's own mailbox, both ways"
    );

    let not_member = alice.post("/search", "q=deploy&channel_name=ops").await;
    assert_eq!(not_member.status, 403, "{}", not_member.body);
    assert_eq!(not_member.body["status"], "error");
    assert_eq!(alice.post("/search", "q=deploy&channel_name=nowhere").await.status, 404);

    // A private channel is invisible to others: 404, as in every route.
    assert_eq!(carol.post("/create-channel", "channel_name=vault&private=true").await.status, 201);
    carol.post("/send-channel-message", "channel_name=vault&message=deploy+keys").await;
    assert_eq!(alice.post("/search", "q=deploy&channel_name=vault").await.status, 404);
    assert_eq!(search(&carol, "q=keys").await, [hit("channel", "vault", "deploy [keys]")]);

    // Edits and deletions reach the index.
    let tonight = posted.body["id"].as_u64().unwrap();
    let edited = alice.post("/edit-message", &format!("id={tonight}&channel_name=rust-vn&message=ship+tonight")).await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(search(&alice, "q=ship").await, [hit("channel", "rust-vn", "[ship] tonight")]);
    assert!(search(&alice, "q=deploy&channel_name=rust-vn").await.is_empty(), "the text before the edit");
    let deleted = alice.post("/delete-message", &format!("id={tonight}&channel_name=rust-vn")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(search(&alice, "q=ship").await.is_empty(), "nothing of a deleted message");

    assert_eq!(alice.post("/leave-channel", "channel_name=general").await.status, 200);
    assert_eq!(alice.post("/search", "q=deploy&channel_name=general").await.status, 403, "a channel left");
    let kinds: Vec<_> = search(&alice, "q=deploy").await.into_iter().map(|(_, place, _)| place).collect();
    assert_eq!(kinds, ["user2"], "a channel left is no longer searched (and rust-vn's message was deleted)");
    sys.shutdown().await;
}

async fn bad_search_input_is_a_clear_400_and_syntax_is_text(backend: Backend) {
    let sys = System::builder().backend(backend).peers(1).without_rate_limits().start().await;
    let alice = sys.login(0, "user1", "password1").await;
    alice.post("/join-channel", "channel_name=general").await;
    let text = r#"say "hi" AND col:x* NEAR(a b) ^start -minus"#;
    assert_eq!(
        alice.post_json("/send-channel-message", &json!({"channel_name": "general", "message": text})).await.status,
        200
    );

    let huge = format!("q={}", "a".repeat(10_000));
    for (body, why) in [
        ("q=", "empty"),
        ("limit=5", "no q"),
        ("q=%22+*+(+)+-", "no word"),
        (huge.as_str(), "too long"),
        ("q=hi&limit=0", "limit 0"),
        ("q=hi&limit=101", "limit over 100"),
        ("q=hi&limit=abc", "limit not a number"),
        ("q=hi&channel_name=general&with=user2", "both"),
        ("q=hi&channel_name=", "empty channel name"),
    ] {
        let reply = alice.post("/search", body).await;
        assert_eq!(reply.status, 400, "{why}: {}", reply.body);
        assert_eq!(reply.body["status"], "error", "{why}");
        assert!(!reply.message().is_empty(), "{why}");
    }
    for q in [r#""hi""#, "AND", "col:x*", "NEAR(a", "^start", "-minus", r#"say" AND "x"#, "x*", "(b)"] {
        let found = alice.post_json("/search", &json!({"q": q})).await;
        assert_eq!(found.status, 200, "{q}: {}", found.body);
        assert_eq!(found.body["results"].as_array().unwrap().len(), 1, "{q}: {}", found.body);
    }
    let anonymous = sys.client().post(format!("{}/search", sys.peer_url(0))).body("q=hi").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    sys.shutdown().await;
}

async fn searches_past_the_limit_are_a_429(backend: Backend) {
    let limits = kit::rate::Limits { searches_per_min: 2, ..kit::rate::Limits::default() };
    let sys = System::builder().backend(backend).peers(1).limits(limits).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    assert_eq!(alice.post("/search", "q=hi").await.status, 200);
    assert_eq!(alice.post("/search", "q=hi").await.status, 200);
    let refused = alice.post("/search", "q=hi").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.headers.contains_key("retry-after"));
    let bob = sys.login(0, "user2", "password2").await;
    assert_eq!(bob.post("/search", "q=hi").await.status, 200, "per user");
    sys.shutdown().await;
}

testkit::on_both_backends!(
    searches_past_the_limit_are_a_429,
    search_finds_the_callers_channel_and_direct_messages_and_nobody_elses,
    bad_search_input_is_a_clear_400_and_syntax_is_text,
);
