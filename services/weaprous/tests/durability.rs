//! Nothing acknowledged is lost: services as real processes, killed with SIGKILL.

use std::collections::HashSet;

use testkit::{Backend, System};

/// Floods of messages on purpose: no rate limit.
fn system() -> testkit::Builder {
    System::builder().processes(env!("CARGO_BIN_EXE_weaprous")).without_rate_limits()
}

async fn channel_messages_acknowledged_before_a_tracker_sigkill_are_all_there_in_order(backend: Backend) {
    let mut sys = system().backend(backend).peers(1).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    assert_eq!(alice.post("/join-channel", "channel_name=general").await.status, 200);

    // A stream of messages from two concurrent senders; the tracker dies mid-stream.
    let sender = |tag: &'static str| {
        let alice = alice.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..150 {
                let reply =
                    alice.post("/send-channel-message", &format!("channel_name=general&message={tag}{i}")).await;
                if reply.status == 200 {
                    acknowledged.push((reply.body["id"].as_u64().unwrap(), format!("{tag}{i}")));
                }
            }
            acknowledged
        })
    };
    let (first, second) = (sender("a"), sender("b"));
    testkit::eventually("some messages stored", || async {
        alice.post("/get-channel-messages", "channel_name=general&limit=1").await.body["messages"]["messages"]
            .as_array()
            .is_some_and(|page| !page.is_empty())
    })
    .await;
    sys.kill_and_restart_tracker().await;
    let mut acknowledged = first.await.unwrap();
    acknowledged.extend(second.await.unwrap());
    assert!(acknowledged.len() > 10, "some messages were acknowledged");
    eprintln!("{} of 300 messages acknowledged around the SIGKILL", acknowledged.len());

    let history = alice.whole_channel_history("general").await;
    let ids: Vec<u64> = history.iter().map(|message| message["id"].as_u64().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "one order, no duplicates");
    let stored: HashSet<(u64, String)> =
        history.iter().map(|m| (m["id"].as_u64().unwrap(), m["text"].as_str().unwrap().to_owned())).collect();
    for message in &acknowledged {
        assert!(stored.contains(message), "acknowledged message {message:?} is missing after the SIGKILL");
    }
    // Each sender's messages keep their own order.
    for tag in ["a", "b"] {
        let own: Vec<u32> = history
            .iter()
            .filter_map(|m| m["text"].as_str().unwrap().strip_prefix(tag).map(|n| n.parse().unwrap()))
            .collect();
        assert!(own.windows(2).all(|pair| pair[0] < pair[1]), "{tag}: {own:?}");
    }
    sys.shutdown().await;
}

async fn direct_messages_acknowledged_before_a_peer_sigkill_are_in_its_inbox_after_restart(backend: Backend) {
    let mut sys = system().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;

    let sending = {
        let alice = alice.clone();
        tokio::spawn(async move {
            let mut delivered = Vec::new();
            for i in 0..200 {
                let reply = alice.post("/send-peer", &format!("username=user2&message=dm{i}")).await;
                if reply.status == 200 && reply.body["delivered"] == true {
                    delivered.push(reply.body["id"].as_str().unwrap().to_owned());
                }
            }
            delivered
        })
    };
    testkit::eventually("bob's peer has some messages", || async {
        bob.get("/get-conversation?with=user1&limit=1").await.body["messages"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
    sys.kill_peer(1).await;
    let delivered = sending.await.unwrap();
    assert!(!delivered.is_empty());
    sys.restart_peer(1).await;

    let bob = bob.at(sys.peer_url(1));
    let inbox = bob.get("/get-conversation?with=user1&limit=500").await;
    let ids: HashSet<String> =
        inbox.body["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    for id in &delivered {
        assert!(ids.contains(id), "message {id} was acknowledged as delivered but is gone after the SIGKILL");
    }
    // And the ones that were queued while it was down arrive once, in the end.
    testkit::eventually("every message sent reaches bob exactly once", || async {
        let inbox = bob.get("/get-conversation?with=user1&limit=500").await;
        let texts: Vec<&str> =
            inbox.body["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
        let unique: HashSet<&str> = texts.iter().copied().collect();
        assert_eq!(unique.len(), texts.len(), "a message arrived twice");
        texts.len() == 200
    })
    .await;
    sys.shutdown().await;
}

async fn direct_messages_sent_while_the_recipients_peer_is_down_arrive_exactly_once(backend: Backend) {
    let mut sys = system().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    assert_eq!(alice.post("/connect-peer", "username=user2").await.status, 200);

    sys.stop_peer(1).await;
    for i in 0..5 {
        let reply = alice.post("/send-peer", &format!("username=user2&message=while+down+{i}")).await;
        assert_eq!((reply.status, reply.body["delivered"].as_bool()), (202, Some(false)), "{}", reply.body);
    }
    let broadcast = alice.post("/broadcast-peer", r#"{"message":"all of you"}"#).await;
    assert_eq!(broadcast.body["queued"], 1);
    sys.restart_peer(1).await;

    let bob = bob.at(sys.peer_url(1));
    testkit::eventually("the queued messages arrive", || async {
        bob.get("/get-conversation?with=user1").await.body["messages"].as_array().is_some_and(|m| m.len() >= 6)
    })
    .await;
    let inbox = bob.get("/get-conversation?with=user1").await;
    let texts: Vec<&str> =
        inbox.body["messages"].as_array().unwrap().iter().map(|m| m["message"].as_str().unwrap()).collect();
    let mut expected: Vec<String> = (0..5).map(|i| format!("while down {i}")).collect();
    expected.push("all of you".into());
    let mut sorted_texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    sorted_texts.sort();
    expected.sort();
    assert_eq!(sorted_texts, expected, "each message exactly once");
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_without_a_word_leaves_the_pool_after_the_ttl() {
    let mut sys = system().peers(2).liveness(3, 1).start().await;
    let _alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    assert_eq!(bob.get("/get-list").await.body.as_array().unwrap().len(), 1);
    // SIGKILL: no leave call; the tracker must notice the missed heartbeats itself.
    sys.kill_peer(0).await;
    let killed = tokio::time::Instant::now();
    testkit::eventually("alice shows offline once her peer stopped beating", || async {
        bob.get("/get-list").await.body.as_array().is_some_and(|users| users.is_empty())
    })
    .await;
    // The last beat may have come up to a heartbeat (1 s) before the kill.
    assert!(killed.elapsed() >= std::time::Duration::from_millis(1500), "offline only after the TTL, not at once");
    assert_eq!(
        bob.at(sys.tracker_url()).get("/get-peers").await.body.as_array().unwrap().len(),
        1,
        "the silent peer left the pool"
    );
    sys.shutdown().await;
}

testkit::on_both_backends!(
    channel_messages_acknowledged_before_a_tracker_sigkill_are_all_there_in_order,
    direct_messages_acknowledged_before_a_peer_sigkill_are_in_its_inbox_after_restart,
    direct_messages_sent_while_the_recipients_peer_is_down_arrive_exactly_once,
);
