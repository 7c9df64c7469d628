//! Two tracker replicas on one PostgreSQL database, over HTTP.

use serde_json::json;
use wire::api::{ActivityReport, RevokedSession, RevokedSessions};
use wire::names::Username;

use crate::{Backend, Events, Storage, next_event};

/// The peer every stream in these tests is for.
const PEER: u16 = 9901;

/// The id of the next channel message on `events`.
async fn next_message(events: &mut Events) -> u64 {
    next_event(events, "channel_message").await.id.parse().unwrap()
}

/// The data of the next event named `name` on `events`.
async fn next_data(events: &mut Events, name: &str) -> serde_json::Value {
    serde_json::from_str(&next_event(events, name).await.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stream_on_one_replica_carries_every_replica_s_messages_once_in_order() {
    let test = "a_peer_stream_on_one_replica_carries_every_replica_s_messages_once_in_order";
    let Some(storage) = Storage::new(Backend::Postgres, test).await else { return };
    let (a, b) = (storage.start().await, storage.start().await);
    a.register_peer(PEER).await;
    let users = ["u0", "u1", "u2", "u3"];
    for user in users {
        b.submit_info(user, PEER).await;
        a.join(user, "general").await;
    }
    // Resuming from 0 rather than from "now": no post below can fall before the
    // stream's starting point.
    let mut on_b = b.peer_stream(PEER, 0).await;

    let posters = users.iter().enumerate().map(|(index, user)| {
        let (a_url, b_url) = (a.url.clone(), b.url.clone());
        let token = a.token(user);
        let client = a.client.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                // Alternating replicas, and the posters start on different ones.
                let base = if (index + i) % 2 == 0 { &a_url } else { &b_url };
                let body = serde_json::json!({ "channel_name": "general", "message": format!("{index}-{i}") });
                let response =
                    client.user_post(base.join("send-channel-message").unwrap(), &token, &body).send().await.unwrap();
                assert_eq!(response.status(), 200);
                ids.push(response.json::<wire::api::MessageStored>().await.unwrap().id);
            }
            ids
        })
    });
    let mut acknowledged = Vec::new();
    for poster in posters.collect::<Vec<_>>() {
        acknowledged.extend(poster.await.unwrap());
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged.len(), 200);

    let mut seen = Vec::new();
    while seen.len() < acknowledged.len() {
        seen.push(next_message(&mut on_b).await);
    }
    assert_eq!(seen, acknowledged, "every message, once, in id order");
    drop(on_b);

    // The peer moves to replica A and resumes after the 100th message it saw.
    let mut on_a = a.peer_stream(PEER, seen[99]).await;
    let mut resumed = Vec::new();
    while resumed.len() < 100 {
        resumed.push(next_message(&mut on_a).await);
    }
    assert_eq!(resumed, acknowledged[100..]);
    // Nothing more was pending: the next message is a new one, posted through B.
    let marker = b.post(&b.token("u0"), "general", "marker").await;
    assert_eq!(next_message(&mut on_a).await, marker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_through_one_replica_reach_the_peer_streams_and_sessions_of_the_other() {
    let test = "events_through_one_replica_reach_the_peer_streams_and_sessions_of_the_other";
    let Some(storage) = Storage::new(Backend::Postgres, test).await else { return };
    let (a, b) = (storage.start().await, storage.start().await);
    a.register_peer(PEER).await;
    b.submit_info("erin", PEER).await;
    let mut on_b = b.peer_stream(PEER, 0).await;

    a.join("erin", "random").await;
    let membership = next_data(&mut on_b, "membership").await;
    assert_eq!(
        (&membership["channel"], &membership["username"], &membership["joined"]),
        (&json!("random"), &json!("erin"), &json!(true))
    );

    let report =
        ActivityReport { ip: "127.0.0.1".into(), port: PEER, username: Username::parse("erin").unwrap(), active: true };
    let reported = a.client.signed_post(a.at("presence"), &report).send().await.unwrap();
    assert_eq!(reported.status(), 200);
    let presence = next_data(&mut on_b, "presence").await;
    assert_eq!((&presence["username"], &presence["active"]), (&json!("erin"), &json!(true)));
    let online: serde_json::Value = b.client.signed_get(b.at("get-list")).send().await.unwrap().json().await.unwrap();
    assert_eq!(online[0]["active"], json!(true), "B answers what A was told");

    let (token, claims) = b.state.tokens.issue(&Username::parse("erin").unwrap()).unwrap();
    let before = b.client.user_get(b.at("get-joined-channels"), &token).send().await.unwrap();
    assert_eq!(before.status(), 200);
    let ended = RevokedSessions {
        sessions: vec![RevokedSession { sid: claims.sid.clone(), expires_at: claims.exp }],
        ..RevokedSessions::default()
    };
    let revoked = a.client.signed_post(a.at("revoke-sessions"), &ended).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let announced = next_data(&mut on_b, "session_revoked").await;
    assert_eq!(announced["sid"], json!(claims.sid));
    // B's follower revokes the session before it publishes the event.
    let after = b.client.user_get(b.at("get-joined-channels"), &token).send().await.unwrap();
    assert_eq!(after.status(), 401, "a session ended through A is refused by B");
}
