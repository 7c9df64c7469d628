//! Two tracker replicas on one PostgreSQL database, over HTTP.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};

use crate::{Backend, Storage, Tracker};

/// The peer every stream in these tests is for.
const PEER: u16 = 9901;

/// Opens the peer stream of [`PEER`] on `tracker`, resuming after `last_id`.
async fn peer_stream(
    tracker: &Tracker,
    last_id: u64,
) -> impl Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin {
    let url = tracker.at(&format!("peer-stream?ip=127.0.0.1&port={PEER}"));
    let response = tracker.client.signed_stream(url).header("last-event-id", last_id.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    Box::pin(response.bytes_stream().eventsource())
}

/// The id of the next channel message on `stream`, within 20 s.
async fn next_message(
    stream: &mut (impl Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin),
) -> u64 {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("no channel message in time")
            .expect("the stream ended")
            .unwrap();
        if event.event == "channel_message" {
            return event.id.parse().unwrap();
        }
    }
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
    let mut on_b = peer_stream(&b, 0).await;

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
    let mut on_a = peer_stream(&a, seen[99]).await;
    let mut resumed = Vec::new();
    while resumed.len() < 100 {
        resumed.push(next_message(&mut on_a).await);
    }
    assert_eq!(resumed, acknowledged[100..]);
    // Nothing more was pending: the next message is a new one, posted through B.
    let marker = b.post(&b.token("u0"), "general", "marker").await;
    assert_eq!(next_message(&mut on_a).await, marker);
}
