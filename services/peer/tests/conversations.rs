//! `GET /get-conversations` on the embedded backend, over HTTP: a peer alone, no
//! tracker.

use axum::http::StatusCode;
use peer::Config;
use serde_json::Value;
use tokio::net::TcpListener;
use wire::api::DirectMessage;
use wire::names::{MessageText, Username};

fn message(id: &str, from: &str, to: &str, ts: u64) -> DirectMessage {
    DirectMessage {
        id: id.into(),
        message: MessageText::parse(&format!("{from} to {to}")).unwrap(),
        sender_ip: "127.0.0.1".into(),
        sender_port: 9,
        username: Username::parse(from).unwrap(),
        to: Username::parse(to).unwrap(),
        ts,
        broadcast: false,
        seq: None,
        delivered: None,
        edited_at: None,
        deleted: false,
        reply_to: None,
        reply: None,
        reactions: Vec::new(),
    }
}

#[tokio::test]
async fn conversations_need_a_session_and_list_every_partner_newest_first() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        tracker_url: "127.0.0.1:9".into(),
        auth_url: "127.0.0.1:9".into(),
        data_dir: data_dir.path().to_owned(),
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = peer::Peer::build_on(listener, &config).await.unwrap();
    let state = peer.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(peer.run(async move {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}/get-conversations");
    let client = reqwest::Client::new();

    let refused = client.get(&url).header("accept", "application/json").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "error");

    // Partners who are offline (no tracker knows anyone here) are listed all the same.
    state.store.save_incoming(&message("a", "bob", "alice", 1)).await.unwrap();
    state.store.save_outgoing(&message("b", "alice", "carol", 2)).await.unwrap();
    state.store.save_incoming(&message("c", "bob", "alice", 3)).await.unwrap();
    let token = state.tokens.issue(&Username::parse("alice").unwrap()).unwrap().0;
    let listed = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&listed.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "success");
    let conversations = body["conversations"].as_array().unwrap();
    let summary: Vec<(&str, &str, u64)> = conversations
        .iter()
        .map(|c| (c["with"].as_str().unwrap(), c["last"]["id"].as_str().unwrap(), c["unread"].as_u64().unwrap()))
        .collect();
    assert_eq!(summary, [("bob", "c", 2), ("carol", "b", 0)]);
    assert_eq!(conversations[0]["last"]["message"], "bob to alice");

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
