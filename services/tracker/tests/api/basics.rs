//! The peer pool, the directory and channels over HTTP, on each backend.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Backend, Events, Storage, next_event, on_both_backends};

on_both_backends!(
    peers_register_and_host_users,
    channels_are_created_joined_and_posted_to,
    the_peer_stream_carries_messages_for_its_members_and_resumes
);

async fn peers_register_and_host_users(backend: Backend) {
    let Some(storage) = Storage::new(backend, "peers_register_and_host_users").await else { return };
    let tracker = storage.start().await;
    tracker.register_peer(9901).await;
    tracker.register_peer(9902).await;
    tracker.submit_info("alice", 9902).await;
    let peers: Value = tracker.client.signed_get(tracker.at("get-peers")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        peers,
        json!([{ "ip": "127.0.0.1", "port": 9901, "users": 0 }, { "ip": "127.0.0.1", "port": 9902, "users": 1 }])
    );
    let location: Value =
        tracker.client.signed_get(tracker.at("lookup?username=alice")).send().await.unwrap().json().await.unwrap();
    assert_eq!((&location["port"], &location["online"]), (&json!(9902), &json!(true)));
    let unknown = tracker.client.signed_get(tracker.at("lookup?username=nobody")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let online: Value = tracker.client.signed_get(tracker.at("get-list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(online.as_array().map(Vec::len), Some(1));
    assert_eq!(online[0]["username"], "alice");
}

async fn channels_are_created_joined_and_posted_to(backend: Backend) {
    let Some(storage) = Storage::new(backend, "channels_are_created_joined_and_posted_to").await else { return };
    let tracker = storage.start().await;
    tracker.register_peer(9901).await;
    tracker.submit_info("bob", 9901).await;
    let token = tracker.token("bob");
    let created = tracker
        .client
        .user_post(tracker.at("create-channel"), &token, &json!({ "channel_name": "rust" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let again = tracker
        .client
        .user_post(tracker.at("create-channel"), &token, &json!({ "channel_name": "rust" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let refused = tracker
        .client
        .user_post(tracker.at("send-channel-message"), &token, &json!({ "channel_name": "general", "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "not a member of general");
    let id = tracker.post(&token, "rust", "hello").await;
    let joined: Value =
        tracker.client.user_get(tracker.at("get-joined-channels"), &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(joined["channels"], json!(["rust"]));
    let history: Value = tracker
        .client
        .user_post(tracker.at("get-channel-messages"), &token, &json!({ "channel_name": "rust" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view = &history["messages"];
    assert_eq!((&view["messages"][0]["id"], &view["messages"][0]["text"]), (&json!(id), &json!("hello")));
    assert_eq!(view["members"], json!([{ "username": "bob", "ip": "127.0.0.1", "port": 9901, "online": true }]));
    assert_eq!(
        (&view["messages"][0]["sender_ip"], &view["messages"][0]["sender_port"]),
        (&json!("127.0.0.1"), &json!(9901)),
        "a message records the peer its sender is on"
    );
    // A user no peer hosts cannot post: they have no address to show.
    let stranger = tracker.token("cyd");
    let nowhere = tracker
        .client
        .user_post(tracker.at("send-channel-message"), &stranger, &json!({ "channel_name": "rust", "message": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 409, "not on any peer");
}

async fn the_peer_stream_carries_messages_for_its_members_and_resumes(backend: Backend) {
    let test = "the_peer_stream_carries_messages_for_its_members_and_resumes";
    let Some(storage) = Storage::new(backend, test).await else { return };
    let tracker = storage.start().await;
    for port in [9901, 9902] {
        tracker.register_peer(port).await;
    }
    tracker.submit_info("fay", 9901).await;
    tracker.submit_info("gus", 9902).await;
    tracker.join("fay", "help").await;
    // Messages of channels with members on this peer, from where it left off.
    let messages = |mut events: Events, count: usize| async move {
        let mut texts = Vec::new();
        while texts.len() < count {
            let event = next_event(&mut events, "channel_message").await;
            let data: Value = serde_json::from_str(&event.data).unwrap();
            texts.push((event.id, data["text"].as_str().unwrap().to_owned()));
        }
        (texts, events)
    };
    let events = tracker.peer_stream(9901, 0).await;
    tracker.join("gus", "random").await;
    let gus = tracker.token("gus");
    tracker.post(&gus, "random", "not for 9901").await;
    let fay = tracker.token("fay");
    let first = tracker.post(&fay, "help", "one").await;
    let second = tracker.post(&fay, "help", "two").await;
    let (texts, events) = messages(events, 2).await;
    assert_eq!(texts, [(first.to_string(), "one".to_owned()), (second.to_string(), "two".to_owned())]);
    drop(events);
    let (resumed, _) = messages(tracker.peer_stream(9901, first).await, 1).await;
    assert_eq!(resumed, [(second.to_string(), "two".to_owned())]);
}

/// Every route other services call, by its `wire::routes::tracker` constant, with the
/// method callers use: unsigned and empty, each is refused (401, 400, 415, 422), but
/// none is unknown (404) or called with the wrong method (405).
#[tokio::test]
async fn every_route_other_services_call_is_served_at_its_wire_path() {
    use wire::routes::tracker as route;
    let Some(storage) = Storage::new(Backend::Sqlite, "every_route_other_services_call_is_served").await else {
        return;
    };
    let tracker = storage.start().await;
    let gets = [route::PEER_STREAM, route::GET_PEERS, route::LOOKUP, route::GET_LIST];
    let gets =
        gets.iter().chain(&[route::GET_ALL_CHANNELS, route::GET_JOINED_CHANNELS]).map(|path| (Method::GET, path));
    let posts = [
        route::REGISTER_PEER_POOL,
        route::HEARTBEAT,
        route::LEAVE_PEER_POOL,
        route::PRESENCE,
        route::RELEASE_USER,
        route::REVOKE_SESSIONS,
        route::LOGIN,
        route::SUBMIT_INFO,
        route::JOIN_CHANNEL,
        route::LEAVE_CHANNEL,
        route::CREATE_CHANNEL,
        route::SEND_CHANNEL_MESSAGE,
        route::GET_CHANNEL_MESSAGES,
    ];
    let client = reqwest::Client::new();
    for (method, path) in gets.chain(posts.iter().map(|path| (Method::POST, path))) {
        let response = client.request(method.clone(), tracker.at(path)).send().await.unwrap();
        let status = response.status().as_u16();
        assert!(matches!(status, 400 | 401 | 415 | 422), "{method} {path} answered {status}");
    }
}
