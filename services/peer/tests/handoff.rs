//! A user who moves takes their whole mailbox along (embedded backend): the old peer
//! sends it to the new one's `/import-mailbox`, whose body limit (64 KiB) every
//! request must fit, however many or long the messages are.

use std::net::SocketAddr;
use std::time::Duration;

use peer::{AppState, Config};
use tokio::net::TcpListener;
use wire::api::DirectMessage;
use wire::names::{MessageText, Username};

/// A peer's state in `dir`, bound (or to be bound) at `bound`. No tracker answers:
/// the hand-over goes peer to peer.
async fn peer_state(dir: &std::path::Path, bound: SocketAddr) -> AppState {
    let config = Config {
        tracker_url: "127.0.0.1:9".into(),
        auth_url: "127.0.0.1:9".into(),
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    AppState::new(&config, bound).await.unwrap()
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn message(i: usize, text: &str) -> DirectMessage {
    DirectMessage {
        id: format!("m{i:05}"),
        message: MessageText::parse(text).unwrap(),
        sender_ip: "127.0.0.1".into(),
        sender_port: 9001,
        username: user("bob"),
        to: user("alice"),
        ts: 1_700_000_000_000 + i as u64,
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

/// Files `texts` as messages from bob in alice's mailbox on one peer, moves alice to
/// a second (serving) peer, and checks the second has every message and the first
/// none.
async fn moves_whole(texts: Vec<String>) {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old = peer_state(old_dir.path(), old_listener.local_addr().unwrap()).await;
    let new_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let new = peer_state(new_dir.path(), new_listener.local_addr().unwrap()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(peer::serve(new_listener, new.clone(), async move {
        let _ = stopped.await;
    }));

    for (i, text) in texts.iter().enumerate() {
        old.store.save_incoming(&message(i, text)).await.unwrap();
    }
    let to = new.me.clone();
    // Failed pages are retried for about half a minute before the hand-over gives up.
    tokio::time::timeout(Duration::from_secs(90), peer::handoff::hand_over(old.clone(), user("alice"), to))
        .await
        .expect("the hand-over ends");

    let (moved, _) = new.store.conversation(&user("alice"), &user("bob"), None, 500).await.unwrap();
    let moved: Vec<&str> = moved.iter().map(|message| message.message.as_str()).collect();
    assert_eq!(moved, texts, "the new peer has every message, in order");
    let left = old.store.handover().unwrap().export_mailbox(&user("alice"), 0, 1).await.unwrap();
    assert!(left.is_empty(), "the old peer forgot what it handed over");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_mailbox_of_400_ordinary_messages_moves_whole() {
    moves_whole((0..400).map(|i| format!("an ordinary message between friends, number {i}")).collect()).await;
}

#[tokio::test]
async fn a_mailbox_of_messages_near_the_text_limit_moves_whole() {
    // 4000 characters of 4 bytes each: five of them are over 64 KiB together.
    let long = "😀".repeat(wire::names::MAX_MESSAGE_CHARS - 10);
    moves_whole((0..5).map(|i| format!("{long}{i}")).collect()).await;
}
