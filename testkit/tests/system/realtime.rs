//! Server-Sent Events: pushes arrive at once, and a reconnect resumes exactly.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use testkit::{Backend, System, TestUser};

pub(crate) type Events =
    std::pin::Pin<Box<dyn Stream<Item = Result<Event, eventsource_stream::EventStreamError<reqwest::Error>>> + Send>>;

pub(crate) async fn open(user: &TestUser, last_id: Option<&str>) -> Events {
    let mut request = user.request(reqwest::Method::GET, "/events");
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Box::pin(response.bytes_stream().eventsource())
}

/// The next event that is not presence or membership noise.
pub(crate) async fn next_message(events: &mut Events) -> (String, String, Value) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open")
            .expect("a well-formed event");
        if event.event == "channel_message" || event.event == "direct_message" || event.event == "reset" {
            let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            return (event.id, event.event, data);
        }
    }
}

async fn pushes_arrive_across_peers_and_a_reconnect_gets_exactly_what_it_missed(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    alice.post("/join-channel", "channel_name=general").await;
    bob.post("/join-channel", "channel_name=general").await;

    let mut events = open(&alice, None).await;
    bob.post("/send-channel-message", "channel_name=general&message=one").await;
    bob.post("/send-peer", "username=user1&message=dm+one").await;
    let (first_id, kind, data) = next_message(&mut events).await;
    assert_eq!((kind.as_str(), data["text"].as_str()), ("channel_message", Some("one")));
    let (second_id, kind, data) = next_message(&mut events).await;
    assert_eq!(
        (kind.as_str(), data["message"].as_str(), data["username"].as_str()),
        ("direct_message", Some("dm one"), Some("user2"))
    );
    assert!(second_id.parse::<u64>().unwrap() > first_id.parse::<u64>().unwrap());
    drop(events);

    // While alice is away: two channel messages and a direct message.
    bob.post("/send-channel-message", "channel_name=general&message=two").await;
    bob.post("/send-peer", "username=user1&message=dm+two").await;
    bob.post("/send-channel-message", "channel_name=general&message=three").await;
    // Make sure the last one reached alice's peer before she reconnects.
    testkit::eventually("alice's peer has message three", || async {
        let history = alice.post("/get-channel-messages", "channel_name=general&limit=1").await;
        history.body["messages"]["messages"][0]["text"] == "three"
    })
    .await;
    let mut resumed = open(&alice, Some(&second_id)).await;
    let mut missed = Vec::new();
    for _ in 0..3 {
        let (_, kind, data) = next_message(&mut resumed).await;
        missed.push(format!("{kind}:{}", data["text"].as_str().or(data["message"].as_str()).unwrap()));
    }
    // Then a new one arrives live, and nothing from before was repeated.
    bob.post("/send-channel-message", "channel_name=general&message=four").await;
    let (_, _, data) = next_message(&mut resumed).await;
    assert_eq!(missed, ["channel_message:two", "direct_message:dm two", "channel_message:three"]);
    assert_eq!(data["text"], "four");

    // An id from an earlier run of the peer gets a reset, so the page reloads.
    let mut stale = open(&alice, Some("5")).await;
    let (_, kind, _) = next_message(&mut stale).await;
    assert_eq!(kind, "reset");
    sys.shutdown().await;
}

async fn channel_pushes_reach_only_members(backend: Backend) {
    let sys = System::builder().backend(backend).peers(1).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let carol = sys.login(0, "user3", "password3").await;
    alice.post("/join-channel", "channel_name=general").await;
    alice.post("/join-channel", "channel_name=random").await;
    carol.post("/join-channel", "channel_name=random").await;
    let mut carols = open(&carol, None).await;
    alice.post("/send-channel-message", "channel_name=general&message=secret").await;
    alice.post("/send-channel-message", "channel_name=random&message=public").await;
    let (_, _, data) = next_message(&mut carols).await;
    assert_eq!(data["text"], "public", "carol never sees general, which she did not join");
    sys.shutdown().await;
}

/// The next presence event about `user`.
async fn next_presence(events: &mut Events, user: &str) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open")
            .expect("a well-formed event");
        if event.event == "presence" {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            if data["username"] == user {
                return data;
            }
        }
    }
}

async fn presence_follows_log_ins_open_chats_and_log_outs(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let bob = sys.login(1, "user2", "password2").await;
    let mut bobs = open(&bob, None).await;
    let alice = sys.login(0, "user1", "password1").await;
    let event = next_presence(&mut bobs, "user1").await;
    assert_eq!(
        (event["username"].as_str(), event["online"].as_bool(), event["active"].as_bool()),
        (Some("user1"), Some(true), Some(false))
    );

    // Alice opens the chat: active. She closes it: inactive after the grace.
    let alices = open(&alice, None).await;
    let event = next_presence(&mut bobs, "user1").await;
    assert_eq!((event["username"].as_str(), event["active"].as_bool()), (Some("user1"), Some(true)));
    assert_eq!(bob.get("/get-list").await.body[0]["active"], true);
    drop(alices);
    let event = next_presence(&mut bobs, "user1").await;
    assert_eq!(
        (event["username"].as_str(), event["online"].as_bool(), event["active"].as_bool()),
        (Some("user1"), Some(true), Some(false))
    );

    // She logs out: offline.
    alice.post("/logout", "").await;
    let event = next_presence(&mut bobs, "user1").await;
    assert_eq!((event["username"].as_str(), event["online"].as_bool()), (Some("user1"), Some(false)));
    sys.shutdown().await;
}

/// A gauge of the peer's `/metrics`.
async fn peer_gauge(sys: &System, index: usize, name: &str) -> f64 {
    let text = sys.client().get(format!("{}/metrics", sys.peer_url(index))).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn a_stream_through_the_proxy_is_alone_on_its_connection_to_the_peer(backend: Backend) {
    let sys = System::builder().backend(backend).peers(1).proxy().start().await;
    let alice = sys.login(0, "user1", "password1").await.via(&sys.proxy_url(), "localhost");
    // A request first, so that the proxy holds an idle pooled connection to the peer.
    assert_eq!(alice.get("/me").await.status, 200);

    let response =
        alice.request(reqwest::Method::GET, "/events").header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events: Events = Box::pin(response.bytes_stream().eventsource());
    let first = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event").unwrap();
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(peer_gauge(&sys, 0, "peer_sse_streams_open").await, 1.0);
    assert_eq!(
        peer_gauge(&sys, 0, "peer_sse_streams_own_connection").await,
        1.0,
        "the proxy opened a connection for the stream, and the peer served it without hyper"
    );

    drop(events);
    testkit::eventually("the peer notices the stream ended", || async {
        peer_gauge(&sys, 0, "peer_sse_streams_own_connection").await == 0.0
    })
    .await;
    sys.shutdown().await;
}

async fn users_of_a_peer_that_stops_show_offline_and_online_again_when_it_is_back(backend: Backend) {
    // A TTL longer than the waits below: only the peers' own words can be this quick.
    let mut sys = System::builder().backend(backend).peers(2).liveness(30, 1).start().await;
    let _alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let mut events = open(&bob, None).await;

    sys.stop_peer(0).await;
    let gone = next_presence(&mut events, "user1").await;
    assert_eq!(gone["online"], false, "{gone}");

    // Alice's peer comes back with her session; she has no page open.
    sys.restart_peer(0).await;
    let back = next_presence(&mut events, "user1").await;
    assert_eq!((back["online"].as_bool(), back["active"].as_bool()), (Some(true), Some(false)), "{back}");
    sys.shutdown().await;
}

testkit::on_both_backends!(
    pushes_arrive_across_peers_and_a_reconnect_gets_exactly_what_it_missed,
    channel_pushes_reach_only_members,
    presence_follows_log_ins_open_chats_and_log_outs,
    a_stream_through_the_proxy_is_alone_on_its_connection_to_the_peer,
    users_of_a_peer_that_stops_show_offline_and_online_again_when_it_is_back,
);
