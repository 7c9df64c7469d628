//! The original README's workflow, with the original's form bodies.

use futures_util::StreamExt;
use serde_json::{Value, json};
use testkit::{Backend, System, TestUser};

fn texts(history: &Value) -> Vec<String> {
    history["messages"]["messages"]
        .as_array()
        .expect("messages.messages is an array")
        .iter()
        .map(|message| message["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn two_users_log_in_through_the_tracker_chat_in_a_channel_and_message_each_other(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;

    // Log in the original way: POST /login on the tracker, which picks a peer.
    let login = |user: &'static str, password: &'static str| {
        let client = sys.client().clone();
        let tracker = sys.tracker_url().to_owned();
        async move {
            let response = client
                .post(format!("{tracker}/login"))
                .body(format!("username={user}&password={password}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 302, "the tracker redirects to a peer");
            let location = response.headers()["location"].to_str().unwrap().trim_end_matches('/').to_owned();
            let token = testkit::session_token(response.headers()).expect("a session cookie");
            (location, token)
        }
    };
    let (alice_home, alice_token) = login("user1", "password1").await;
    let (bob_home, bob_token) = login("user2", "password2").await;
    assert_eq!(alice_home, sys.peer_url(0), "the first login goes to the first peer");
    assert_eq!(bob_home, sys.peer_url(1), "the second goes to the least-loaded peer");

    // The tracker's cookie is good on the peer it chose.
    let alice = TestUser::from_token(sys.client(), &alice_home, "user1", alice_token);
    let bob = TestUser::from_token(sys.client(), &bob_home, "user2", bob_token);

    // The chat page needs the session; without it, the log-in page.
    assert_eq!(alice.get("/").await.status, 200);
    let anonymous = sys.client().get(format!("{alice_home}/")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303, "no session: redirected");
    assert_eq!(anonymous.headers()["location"], "/login");

    // They list each other, not themselves.
    let listed = alice.get("/get-list").await;
    assert_eq!(
        listed.body,
        json!([{"ip": "127.0.0.1", "port": sys.peer_port(1), "username": "user2", "active": false}])
    );
    let listed = bob.get("/get-list").await;
    assert_eq!(
        listed.body,
        json!([{"ip": "127.0.0.1", "port": sys.peer_port(0), "username": "user1", "active": false}])
    );

    // The original's registration step still answers.
    assert_eq!(alice.post("/submit-username", "username=user1").await.body, json!({"status": "success"}));

    // Channels: the five defaults; join general (with the original page's extra fields).
    let channels = alice.get("/get-all-channels").await;
    assert_eq!(channels.body["channels"], json!(["announcements", "general", "help", "project", "random"]));
    let joined =
        alice.post("/join-channel", "channel_name=general&peer_ip=127.0.0.1&peer_port=9001&username=user1").await;
    assert_eq!(joined.body, json!({"status": "success", "message": "Joined channel general"}));
    assert_eq!(bob.post("/join-channel", "channel_name=general").await.status, 200);
    assert_eq!(alice.post("/join-channel", "channel_name=general").await.status, 200, "joining twice is fine");
    // The original's list, and beside it the read state of each channel (issue 13).
    let joined = alice.get("/get-joined-channels").await.body;
    assert_eq!((&joined["status"], &joined["channels"]), (&json!("success"), &json!(["general"])));
    assert_eq!(joined["summaries"][0]["name"], "general");

    // Channel messages come back in order, URL-decoded, Vietnamese included.
    for (user, body) in [
        (&alice, "channel_name=general&message=Xin+ch%C3%A0o+c%C3%A1c+b%E1%BA%A1n%21"),
        (&bob, "channel_name=general&message=hello+%26+welcome"),
        (&alice, "channel_name=general&message=third"),
    ] {
        let sent = user.post("/send-channel-message", body).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        assert_eq!(sent.message(), "Message sent to general");
    }
    let history = bob.post("/get-channel-messages", "channel_name=general").await;
    assert_eq!(texts(&history.body), ["Xin chào các bạn!", "hello & welcome", "third"]);
    let first = &history.body["messages"]["messages"][0];
    assert_eq!(
        (first["username"].as_str(), first["sender_port"].as_u64()),
        (Some("user1"), Some(u64::from(sys.peer_port(0))))
    );
    let members = history.body["messages"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        alice.post("/get-channel-messages", "channel_name=general").await.body,
        history.body,
        "one order for every reader"
    );

    // Connect, then direct messages both ways; two quick ones are both kept.
    let connected = alice.post("/connect-peer", &format!("ip=127.0.0.1&port={}", sys.peer_port(1))).await;
    assert_eq!(connected.message(), format!("Connected to 127.0.0.1:{}", sys.peer_port(1)));
    assert_eq!(
        alice.get("/get-connected-peers").await.body,
        json!([{"ip": "127.0.0.1", "port": sys.peer_port(1), "username": "user2", "online": true}])
    );
    for text in ["hi+bob+%21", "second+one"] {
        let sent = alice.post("/send-peer", &format!("ip=127.0.0.1&port={}&message={text}", sys.peer_port(1))).await;
        assert_eq!((sent.status, sent.body["delivered"].as_bool()), (200, Some(true)), "{}", sent.body);
    }
    let received = bob.get("/get-received-messages").await;
    let received: Vec<_> =
        received.body.as_array().unwrap().iter().map(|m| (m["username"].clone(), m["message"].clone())).collect();
    assert_eq!(received, [(json!("user1"), json!("hi bob !")), (json!("user1"), json!("second one"))]);
    // Listing is read-only (issue 11: no GET changes state); marking is a POST.
    assert_eq!(bob.post("/mark-read", "").await.body["marked"], 2);
    assert_eq!(bob.get("/get-received-messages").await.body, json!([]), "read once");

    // Bob replies by name without connecting first.
    let reply = bob.post("/send-peer", "username=user1&message=Ch%C3%A0o+Alice").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let received = alice.get("/get-received-messages").await;
    assert_eq!(received.body[0]["message"], "Chào Alice");
    assert_eq!(received.body[0]["sender_port"], sys.peer_port(1));

    // Broadcast (JSON, as the original page sends it) reaches every contact.
    let broadcast = alice.post_json("/broadcast-peer", &json!({"message": "hello all"})).await;
    assert_eq!(broadcast.body, json!({"status": "success", "message": "Broadcast sent", "delivered": 1, "queued": 0}));
    let received = bob.get("/get-received-messages").await;
    assert_eq!(
        (received.body[0]["message"].as_str(), received.body[0]["broadcast"].as_bool()),
        (Some("hello all"), Some(true))
    );

    // The conversation keeps both directions, in order.
    let conversation = bob.get("/get-conversation?with=user1").await;
    let lines: Vec<_> =
        conversation.body["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(lines, ["hi bob !", "second one", "Chào Alice", "hello all"]);

    sys.shutdown().await;
}

async fn channels_can_be_created_left_and_paged(backend: Backend) {
    let sys = System::builder().backend(backend).peers(1).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let created = alice.post("/create-channel", "channel_name=Rust-VN").await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(alice.post("/create-channel", "channel_name=rust-vn").await.status, 409);
    assert!(alice.get("/get-joined-channels").await.body["channels"].as_array().unwrap().contains(&json!("rust-vn")));
    for i in 0..12 {
        alice.post("/send-channel-message", &format!("channel_name=rust-vn&message=m{i}")).await;
    }
    let latest = alice.post("/get-channel-messages", "channel_name=rust-vn&limit=5").await;
    assert_eq!(texts(&latest.body), ["m7", "m8", "m9", "m10", "m11"]);
    assert_eq!(latest.body["messages"]["has_more"], true);
    let before = latest.body["messages"]["messages"][0]["id"].as_u64().unwrap();
    let older = alice.post("/get-channel-messages", &format!("channel_name=rust-vn&limit=5&before={before}")).await;
    assert_eq!(texts(&older.body), ["m2", "m3", "m4", "m5", "m6"]);
    let left = alice.post("/leave-channel", "channel_name=rust-vn").await;
    assert_eq!(left.status, 200);
    let refused = alice.post("/send-channel-message", "channel_name=rust-vn&message=hello").await;
    assert_eq!(refused.status, 403, "only members post");
    sys.shutdown().await;
}

async fn logout_ends_the_session_and_shows_the_user_offline(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    assert_eq!(bob.get("/get-list").await.body.as_array().unwrap().len(), 1);
    let out = alice.post("/logout", "").await;
    assert_eq!(out.status, 200);
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(alice.get("/me").await.status, 401, "the token is revoked on its peer");
    assert_eq!(bob.get("/get-list").await.body, json!([]), "alice shows offline");
    // A direct message to her now waits in bob's outbox rather than failing.
    let queued = bob.post("/send-peer", "username=user1&message=are+you+there").await;
    assert_eq!((queued.status, queued.body["delivered"].as_bool()), (202, Some(false)), "{}", queued.body);
    // She logs in again and gets it.
    let alice = sys.login(0, "user1", "password1").await;
    testkit::eventually("the queued message reaches alice", || async {
        alice.get("/get-conversation?with=user2").await.body["messages"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
    sys.shutdown().await;
}

async fn a_logout_ends_the_session_on_every_peer_and_on_the_tracker(backend: Backend) {
    let mut sys = System::builder().backend(backend).peers(3).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let other_tab = sys.login(0, "user1", "password1").await;
    let at_tracker = alice.at(sys.tracker_url());
    assert_eq!(at_tracker.get("/me").await.status, 200);
    let stream = alice.at(sys.peer_url(1)).request(reqwest::Method::GET, "/events").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    sys.stop_peer(2).await;

    assert_eq!(alice.post("/logout", "").await.status, 200);
    // The event stream the same session holds on peer 1 ends.
    let mut events = stream.bytes_stream();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(_)) = events.next().await {}
    });
    ended.await.expect("the ended session's event stream closes");
    assert_eq!(at_tracker.get("/me").await.status, 401, "the tracker knew before the logout answered");
    testkit::eventually("peer 1 refuses the ended session", || async {
        alice.at(sys.peer_url(1)).get("/me").await.status == 401
    })
    .await;
    assert_eq!(other_tab.get("/me").await.status, 200, "her other session goes on");
    // Peer 2 was down: it learns of the logout before it counts as ready again.
    sys.restart_peer(2).await;
    assert_eq!(alice.at(sys.peer_url(2)).get("/me").await.status, 401);
    // The tracker keeps it across a restart. A logout while it is down reaches it,
    // and the other peers, once it is back.
    let bob = sys.login(0, "user2", "password2").await;
    sys.stop_tracker().await;
    assert_eq!(bob.post("/logout", "").await.status, 200);
    sys.restart_tracker().await;
    assert_eq!(alice.at(sys.tracker_url()).get("/me").await.status, 401);
    testkit::eventually("the tracker learns of the logout made while it was down", || async {
        bob.at(sys.tracker_url()).get("/me").await.status == 401
    })
    .await;
    testkit::eventually("so does peer 1", || async { bob.at(sys.peer_url(1)).get("/me").await.status == 401 }).await;
    sys.shutdown().await;
}

async fn a_user_whose_sessions_all_expired_is_released(backend: Backend) {
    let sys = System::builder().backend(backend).peers(1).start().await;
    let bob = sys.login(0, "user2", "password2").await;
    let keys = sys.token_keys(std::time::Duration::from_secs(1));
    let (token, _) = keys.issue(&wire::names::Username::parse("user1").unwrap()).unwrap();
    let alice = TestUser::from_token(sys.client(), &sys.peer_url(0), "user1", token);
    assert_eq!(alice.get("/me").await.status, 200, "a fresh short session is hosted");
    assert_eq!(bob.get("/get-list").await.body.as_array().unwrap().len(), 1);
    testkit::eventually("alice is released once her session expired", || async {
        bob.get("/get-list").await.body == json!([])
    })
    .await;
    sys.shutdown().await;
}

/// The texts of a conversation as `user` sees it.
async fn conversation(user: &TestUser, with: &str) -> Vec<String> {
    let reply = user.get(&format!("/get-conversation?with={with}")).await;
    reply.body["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap().to_owned()).collect()
}

async fn a_user_who_moves_to_another_peer_takes_their_direct_messages_along(backend: Backend) {
    let sys = System::builder().backend(backend).peers(3).start().await;
    let alice_on_0 = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    bob.post("/send-peer", "username=user1&message=one").await;
    alice_on_0.post("/send-peer", "username=user2&message=two").await;
    bob.post("/send-peer", "username=user1&message=three").await;
    assert_eq!(conversation(&alice_on_0, "user2").await, ["one", "two", "three"]);

    // Her browser lands on peer 2 now: peer 0 hands her mailbox over.
    let alice_on_2 = sys.login(2, "user1", "password1").await;
    testkit::eventually("alice's history follows her to peer 2", || async {
        conversation(&alice_on_2, "user2").await == ["one", "two", "three"]
    })
    .await;
    bob.post("/send-peer", "username=user1&message=four").await;
    testkit::eventually("new messages reach her new home, after the old ones", || async {
        conversation(&alice_on_2, "user2").await == ["one", "two", "three", "four"]
    })
    .await;
    let sent = alice_on_2.get("/get-conversation?with=user2").await;
    assert_eq!(sent.body["messages"][1]["delivered"], true, "her own message keeps its delivery state");
    sys.shutdown().await;
}

async fn a_mailbox_left_on_a_peer_that_was_down_follows_its_user_when_it_returns(backend: Backend) {
    let shared_mailboxes = matches!(backend, Backend::Postgres(_));
    let mut sys = System::builder().backend(backend).peers(3).start().await;
    let _alice_on_0 = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    bob.post("/send-peer", "username=user1&message=before").await;
    sys.stop_peer(0).await;
    let alice_on_2 = sys.login(2, "user1", "password1").await;
    bob.post("/send-peer", "username=user1&message=after").await;
    if shared_mailboxes {
        // On PostgreSQL every peer reads the one mailbox: nothing waits for peer 0.
        assert_eq!(conversation(&alice_on_2, "user2").await, ["before", "after"]);
    } else {
        // Embedded, the first message sits on the stopped peer until it returns.
        assert_eq!(conversation(&alice_on_2, "user2").await, ["after"]);
    }
    sys.restart_peer(0).await;
    testkit::eventually("the message kept by the returning peer joins the rest, in time order", || async {
        conversation(&alice_on_2, "user2").await == ["before", "after"]
    })
    .await;
    sys.shutdown().await;
}

async fn direct_messages_go_peer_to_peer_while_the_tracker_is_down(backend: Backend) {
    let mut sys = System::builder().backend(backend).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let carol = sys.login(0, "user3", "password3").await;
    assert_eq!(alice.post("/connect-peer", "username=user2").await.status, 200);
    assert_eq!(alice.post("/join-channel", "channel_name=general").await.status, 200);

    sys.stop_tracker().await;
    // A contact: found where she last knew him, delivered at once.
    let sent = alice.post("/send-peer", "username=user2&message=tracker+down").await;
    assert_eq!((sent.status, &sent.body["delivered"]), (200, &json!(true)), "{:?}", sent.body);
    // He never connected to her, but she wrote to him: her message says where she is.
    let reply = bob.post("/send-peer", "username=user1&message=got+it").await;
    assert_eq!((reply.status, &reply.body["delivered"]), (200, &json!(true)), "{:?}", reply.body);
    // By address, among her contacts.
    let by_address = alice.post("/send-peer", &format!("ip=127.0.0.1&port={}&message=again", sys.peer_port(1))).await;
    assert_eq!(by_address.status, 200, "{:?}", by_address.body);
    assert_eq!(conversation(&bob, "user1").await, ["tracker down", "got it", "again"]);
    // Someone she has never dealt with cannot be found, and channels need the tracker:
    // both say so at once, and nothing is half-done.
    for (path, body) in [
        ("/send-peer", "username=user4&message=hello"),
        ("/send-channel-message", "channel_name=general&message=hello"),
    ] {
        let refused = carol.post(path, body).await;
        assert_eq!(refused.status, 503, "{path}: {:?}", refused.body);
        assert_eq!(refused.body["status"], "error");
    }
    assert!(conversation(&carol, "user4").await.is_empty());

    sys.restart_tracker().await;
    let posted = alice.post("/send-channel-message", "channel_name=general&message=back").await;
    assert_eq!(posted.status, 200, "{:?}", posted.body);
    sys.shutdown().await;
}

testkit::on_both_backends!(
    two_users_log_in_through_the_tracker_chat_in_a_channel_and_message_each_other,
    channels_can_be_created_left_and_paged,
    logout_ends_the_session_and_shows_the_user_offline,
    a_logout_ends_the_session_on_every_peer_and_on_the_tracker,
    a_user_whose_sessions_all_expired_is_released,
    a_user_who_moves_to_another_peer_takes_their_direct_messages_along,
    a_mailbox_left_on_a_peer_that_was_down_follows_its_user_when_it_returns,
    direct_messages_go_peer_to_peer_while_the_tracker_is_down,
);
