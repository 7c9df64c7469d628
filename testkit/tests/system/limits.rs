//! Rate limits and caps through real services: each answers 429 with `Retry-After`
//! and the JSON error, and `Limits::off()` (what `WEAPROUS_RATE_LIMITS=off` sets)
//! lets the same traffic through.

use std::time::Duration;

use kit::rate::Limits;
use serde_json::json;
use testkit::{Reply, System, TestUser};

/// Small limits, so a test meets each in a few requests.
fn small() -> Limits {
    Limits {
        messages_per_sec: 1,
        message_burst: 3,
        direct_to_one_per_min: 2,
        channels_per_hour: 2,
        streams_per_user: 2,
        sign_ups_per_client_per_hour: 2,
        sign_ups_per_min: 100,
        ..Limits::default()
    }
}

fn assert_limited(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 429, "{what}: {reply:?}");
    let wait: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "{what}: Retry-After {wait}");
    assert_eq!(reply.body["status"], "error", "{what}");
    assert!(reply.message().contains("too many"), "{what}: {}", reply.message());
}

#[tokio::test]
async fn channel_messages_and_creations_are_limited_per_user() {
    let sys = System::builder().peers(1).limits(small()).start().await;
    let alice = TestUser::login(sys.client(), &sys.peer_url(0), "user1", "password1").await;
    assert_eq!(alice.post("/join-channel", "channel_name=general").await.status, 200);
    for i in 0..3 {
        let sent = alice.post("/send-channel-message", &format!("channel_name=general&message=hi+{i}")).await;
        assert_eq!(sent.status, 200, "{sent:?}");
    }
    assert_limited(&alice.post("/send-channel-message", "channel_name=general&message=flood").await, "messages");
    // Another user has a bucket of their own.
    let bob = TestUser::login(sys.client(), &sys.peer_url(0), "user2", "password2").await;
    assert_eq!(bob.post("/join-channel", "channel_name=general").await.status, 200);
    assert_eq!(bob.post("/send-channel-message", "channel_name=general&message=hello").await.status, 200);

    assert_eq!(alice.post("/create-channel", "channel_name=one").await.status, 201);
    assert_eq!(alice.post("/create-channel", "channel_name=two").await.status, 201);
    assert_limited(&alice.post("/create-channel", "channel_name=three").await, "channel creations");
}

#[tokio::test]
async fn direct_messages_to_one_recipient_and_event_streams_are_capped() {
    let sys = System::builder().peers(1).limits(small()).start().await;
    let alice = TestUser::login(sys.client(), &sys.peer_url(0), "user1", "password1").await;
    let _bob = TestUser::login(sys.client(), &sys.peer_url(0), "user2", "password2").await;
    for i in 0..2 {
        let sent = alice.post_json("/send-peer", &json!({ "username": "user2", "message": format!("hi {i}") })).await;
        assert!(sent.status == 200 || sent.status == 202, "{sent:?}");
    }
    assert_limited(
        &alice.post_json("/send-peer", &json!({ "username": "user2", "message": "flood" })).await,
        "direct messages to one recipient",
    );

    let open = |user: &TestUser| user.request(reqwest::Method::GET, "/events").send();
    let first = open(&alice).await.unwrap();
    let second = open(&alice).await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = Reply::read(open(&alice).await.unwrap()).await;
    assert_limited(&third, "event streams");
    // A closed tab frees its place.
    drop(first);
    let mut reopened = 0;
    for _ in 0..50 {
        let response = open(&alice).await.unwrap();
        reopened = response.status().as_u16();
        if reopened == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reopened, 200, "a stream reopens once one closed");
}

#[tokio::test]
async fn sign_ups_are_limited_per_client() {
    let sys = System::builder().peers(0).limits(small()).start().await;
    let register = |name: &str| {
        let request = sys
            .client()
            .post(format!("{}/register", sys.auth_url()))
            .body(format!("username={name}&password=password1"));
        async move { Reply::read(request.send().await.unwrap()).await }
    };
    assert_eq!(register("new1").await.status, 201);
    // A refused name counts too.
    assert_eq!(register("bad%20name").await.status, 400);
    assert_limited(&register("new3").await, "sign-ups");
}

#[tokio::test]
async fn with_limits_off_the_same_traffic_goes_through() {
    let sys = System::builder().peers(1).limits(Limits { enabled: false, ..small() }).start().await;
    let alice = TestUser::login(sys.client(), &sys.peer_url(0), "user1", "password1").await;
    assert_eq!(alice.post("/join-channel", "channel_name=general").await.status, 200);
    for i in 0..20 {
        let sent = alice.post("/send-channel-message", &format!("channel_name=general&message=hi+{i}")).await;
        assert_eq!(sent.status, 200, "{sent:?}");
    }
    for i in 0..5 {
        assert_eq!(alice.post("/create-channel", &format!("channel_name=c{i}")).await.status, 201);
    }
}
