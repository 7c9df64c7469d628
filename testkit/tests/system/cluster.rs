//! Cluster mode: every service on one PostgreSQL database, so a peer is a delivery
//! node, not a home. These run on PostgreSQL only (they say so on stderr, and return,
//! where no server answers outside CI).

use std::collections::BTreeMap;

use serde_json::Value;
use testkit::{Backend, System, TestUser};

/// Signs `name` up on `base` and returns their session.
async fn sign_up(sys: &System, base: &str, name: &str) -> TestUser {
    let response = sys
        .client()
        .post(format!("{base}/register"))
        .header("accept", "application/json")
        .body(format!("username={name}&password=password-{name}"))
        .send()
        .await
        .expect("sign-up answered");
    let status = response.status();
    let token = testkit::session_token(response.headers())
        .unwrap_or_else(|| panic!("sign-up of {name} gave {status} and no session cookie"));
    TestUser::from_token(sys.client(), base, name, token)
}

/// Every message of one conversation, oldest first, paging back 500 at a time.
async fn whole_conversation(user: &TestUser, with: &str) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(seq) => format!("/get-conversation?with={with}&limit=500&before={seq}"),
            None => format!("/get-conversation?with={with}&limit=500"),
        };
        let page = user.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let mut batch = page.body["messages"].as_array().expect("messages").clone();
        before = batch.first().and_then(|message| message["seq"].as_u64());
        batch.append(&mut messages);
        messages = batch;
        if page.body["has_more"] != true || before.is_none() {
            return messages;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_a_peer_that_stops_for_good_sees_every_conversation_at_once_on_another() {
    let Some(backend) = Backend::postgres("a_user_of_a_peer_that_stops_for_good_sees_every_conversation").await else {
        return;
    };
    // 400 messages as fast as they go: no rate limit.
    let mut sys = System::builder().backend(backend).peers(3).without_rate_limits().start().await;
    let third = sys.peer_url(2);
    let alice = sign_up(&sys, &third, "alice").await;

    // Twenty partners on the first two peers, twenty messages in each conversation:
    // ten from the partner, ten answers from alice, 400 in all.
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for partner_index in 0..20 {
        let partner_name = format!("partner{partner_index:02}");
        let partner = sign_up(&sys, &sys.peer_url(partner_index % 2), &partner_name).await;
        let texts = sent.entry(partner_name.clone()).or_default();
        for turn in 0..10 {
            let text = format!("{partner_name} says {turn}");
            let reply = partner.post("/send-peer", &format!("username=alice&message={text}")).await;
            assert!(matches!(reply.status, 200 | 202), "{}", reply.body);
            texts.push(text);
            let text = format!("alice answers {partner_name} {turn}");
            let reply = alice.post("/send-peer", &format!("username={partner_name}&message={text}")).await;
            assert!(matches!(reply.status, 200 | 202), "{}", reply.body);
            texts.push(text);
        }
    }

    // The third peer goes for good; alice logs in on the first.
    sys.stop_peer(2).await;
    let alice = TestUser::login(sys.client(), &sys.peer_url(0), "alice", "password-alice").await;

    let listed = alice.get("/get-conversations").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let partners: Vec<&str> = listed.body["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|conversation| conversation["with"].as_str().expect("with"))
        .collect();
    assert_eq!(partners.len(), 20, "every conversation is listed at once: {partners:?}");
    let mut total = 0;
    for (partner, texts) in &sent {
        let messages = whole_conversation(&alice, partner).await;
        let got: Vec<&str> = messages.iter().map(|message| message["message"].as_str().unwrap_or_default()).collect();
        let mut expected: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut got_sorted = got.clone();
        got_sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got_sorted, expected, "the whole conversation with {partner}, each message once");
        total += got.len();
    }
    assert_eq!(total, 400);
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_tracker_replica_serves_channels_and_pushes_every_message_once() {
    let Some(backend) = Backend::postgres("any_tracker_replica_serves_channels_and_pushes_every_message_once").await
    else {
        return;
    };
    let sys = System::builder().backend(backend).trackers(2).auths(2).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    for user in [&alice, &bob] {
        assert_eq!(user.post("/join-channel", "channel_name=general").await.status, 200);
    }
    let mut bob_events = crate::realtime::open(&bob, None).await;
    // Straight to each tracker replica: both answer from the one database.
    for index in 0..2 {
        let at_tracker = alice.at(sys.tracker_url_at(index));
        let joined = at_tracker.get("/get-joined-channels").await;
        assert_eq!(joined.status, 200, "{}", joined.body);
        assert!(joined.body.to_string().contains("general"), "{}", joined.body);
        let posted =
            at_tracker.post("/send-channel-message", &format!("channel_name=general&message=via{index}")).await;
        assert_eq!(posted.status, 200, "{}", posted.body);
    }
    // Bob's page hears both, in order, whichever replica his peer's stream follows.
    for expected in ["via0", "via1"] {
        let (_, kind, data) = crate::realtime::next_message(&mut bob_events).await;
        assert_eq!((kind.as_str(), data["text"].as_str()), ("channel_message", Some(expected)), "{data}");
    }
    testkit::eventually("both messages in the history", || async {
        let history = bob.post("/get-channel-messages", "channel_name=general").await;
        let texts: Vec<String> = history.body["messages"]["messages"]
            .as_array()
            .map(|messages| messages.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        texts == ["via0", "via1"]
    })
    .await;
    sys.shutdown().await;
}
