//! Cluster mode over HTTP: two peer replicas on one PostgreSQL database, no tracker.
//! A direct message still goes peer to peer, and then either replica serves either
//! user their conversations.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peer::store::PeerStore;
use peer::{AppState, Config};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wire::addr::PeerAddr;
use wire::api::{DirectMessage, Location};
use wire::names::{MessageText, Username};

/// A serving peer replica on the test's database, and how to stop it.
struct Replica {
    state: AppState,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// A replica with no tracker: peers find each other by last known address.
    async fn start(database_url: &str, data_dir: &std::path::Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, database_url, data_dir, "127.0.0.1:9").await
    }

    async fn start_on(listener: TcpListener, database_url: &str, data_dir: &std::path::Path, tracker: &str) -> Self {
        let mut config = Config {
            tracker_url: tracker.into(),
            auth_url: "127.0.0.1:9".into(),
            data_dir: data_dir.to_owned(),
            database_pool_size: 4,
            ..Config::default()
        };
        config.secrets.database_url = Some(SecretString::from(database_url.to_owned()));
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(&config, addr).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(peer::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self { state, addr, stop: Some(stop), served: Some(served) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A session token for `user` (every replica shares the session secret).
    fn token(&self, user: &str) -> String {
        self.state.tokens.issue(&Username::parse(user).unwrap()).unwrap().0
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.served.take().unwrap().await.unwrap().unwrap();
    }
}

async fn get_json(client: &reqwest::Client, url: String, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = client.get(url).header("accept", "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, serde_json::from_str(&response.text().await.unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_between_replicas_is_listed_in_both_users_conversations_on_either_replica() {
    let test = "a_message_between_replicas_is_listed_in_both_users_conversations_on_either_replica";
    let Some(database) = kit::pg::TestDatabase::for_test(test).await else { return };
    let data_dir = tempfile::tempdir().unwrap();
    let one = Replica::start(database.url(), data_dir.path()).await;
    let two = Replica::start(database.url(), data_dir.path()).await;
    let client = reqwest::Client::new();
    let (alice, bob) = (one.token("alice"), one.token("bob"));

    let (status, body) = get_json(&client, one.url("/get-conversations"), None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::UNAUTHORIZED, Some("error")));

    // Bob's home is replica two; alice, on one, knows him there.
    let (status, _) = get_json(&client, two.url("/me"), Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);
    let alice_name = Username::parse("alice").unwrap();
    let bob_name = Username::parse("bob").unwrap();
    one.state.store.add_contact(&alice_name, &bob_name, &two.state.me).await.unwrap();
    let response = client
        .post(one.url("/send-peer"))
        .bearer_auth(&alice)
        .header("accept", "application/json")
        .json(&serde_json::json!({"username": "bob", "message": "hello bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "delivered peer to peer: {}", response.text().await.unwrap());

    for replica in [&one, &two] {
        let (status, body) = get_json(&client, replica.url("/get-conversations"), Some(&bob)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "success");
        let conversations = body["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 1, "{body}");
        assert_eq!(conversations[0]["with"], "alice");
        assert_eq!(conversations[0]["last"]["message"], "hello bob");
        assert_eq!(conversations[0]["unread"], 1);

        let (_, body) = get_json(&client, replica.url("/get-conversations"), Some(&alice)).await;
        let conversations = body["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 1, "{body}");
        assert_eq!(conversations[0]["with"], "bob");
        assert_eq!(conversations[0]["last"]["delivered"], true);
        assert_eq!(conversations[0]["unread"], 0);
    }
    // Read once, through either replica (listing is read-only; marking is a POST).
    let (_, unread) = get_json(&client, one.url("/get-received-messages"), Some(&bob)).await;
    assert_eq!(unread.as_array().unwrap().len(), 1);
    let marked = client.post(one.url("/mark-read")).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(marked.status(), StatusCode::OK);
    let (_, unread) = get_json(&client, two.url("/get-received-messages"), Some(&bob)).await;
    assert_eq!(unread.as_array().unwrap().len(), 0);

    assert!(std::fs::read_dir(data_dir.path()).unwrap().next().is_none(), "no SQLite file in cluster mode");
    one.stop().await;
    two.stop().await;
}

/// A stand-in tracker that only answers `/lookup`: every user lives at `home`.
async fn tracker_placing_everyone_at(home: SocketAddr) -> SocketAddr {
    use axum::extract::Query;
    use axum::routing::get;

    #[derive(serde::Deserialize)]
    struct Lookup {
        username: Username,
    }
    let lookup = move |Query(query): Query<Lookup>| async move {
        axum::Json(Location { ip: home.ip().to_string(), port: home.port(), username: query.username, online: true })
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/lookup", get(lookup))).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_by_a_replica_that_died_are_delivered_by_the_others() {
    let test = "messages_queued_by_a_replica_that_died_are_delivered_by_the_others";
    let Some(database) = kit::pg::TestDatabase::for_test(test).await else { return };
    let data_dir = tempfile::tempdir().unwrap();
    // A replica took alice's message, committed it, and died before its first attempt.
    let dead = PeerAddr::parse("127.0.0.1", 9).unwrap();
    let (dead_store, _) = PeerStore::connect(database.url(), &dead, 2, Duration::from_secs(10)).await.unwrap();
    let message = DirectMessage {
        id: "queued-by-the-dead".into(),
        message: MessageText::parse("still arrives").unwrap(),
        sender_ip: dead.ip.clone(),
        sender_port: dead.port,
        username: Username::parse("alice").unwrap(),
        to: Username::parse("bob").unwrap(),
        ts: kit::now_ms(),
        broadcast: false,
        seq: None,
        delivered: None,
        edited_at: None,
        deleted: false,
        reply_to: None,
        reply: None,
        reactions: Vec::new(),
    };
    dead_store.save_outgoing(&message).await.unwrap();
    dead_store.retry_later(&message.id, 1, kit::now_ms(), "its peer died").await.unwrap();
    drop(dead_store);

    // Bob lives on the first of two live replicas; the tracker says so.
    let home_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = tracker_placing_everyone_at(home_listener.local_addr().unwrap()).await.to_string();
    let home = Replica::start_on(home_listener, database.url(), data_dir.path(), &tracker).await;
    let other =
        Replica::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), database.url(), data_dir.path(), &tracker)
            .await;
    let client = reqwest::Client::new();
    let bob = home.token("bob");
    let (status, _) = get_json(&client, home.url("/me"), Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get_json(&client, other.url("/get-conversations"), Some(&bob)).await;
        let delivered = body["conversations"].as_array().is_some_and(|list| !list.is_empty());
        if delivered && home.state.store.outbox_len().await.unwrap() == 0 {
            assert_eq!(body["conversations"][0]["last"]["message"], "still arrives");
            break;
        }
        assert!(Instant::now() < deadline, "the queued message was not delivered within 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    home.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_handed_over_twice_is_filed_and_pushed_once() {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;

    let test = "a_message_handed_over_twice_is_filed_and_pushed_once";
    let Some(database) = kit::pg::TestDatabase::for_test(test).await else { return };
    let data_dir = tempfile::tempdir().unwrap();
    let one = Replica::start(database.url(), data_dir.path()).await;
    let two = Replica::start(database.url(), data_dir.path()).await;
    let client = reqwest::Client::new();
    let bob = two.token("bob");
    let response = client.get(two.url("/events")).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "bob's browser follows his home, replica two");
    let mut events = response.bytes_stream().eventsource();

    let message = |id: &str| DirectMessage {
        id: id.into(),
        message: MessageText::parse("once").unwrap(),
        sender_ip: one.state.me.ip.clone(),
        sender_port: one.state.me.port,
        username: Username::parse("alice").unwrap(),
        to: Username::parse("bob").unwrap(),
        ts: kit::now_ms(),
        broadcast: false,
        seq: None,
        delivered: None,
        edited_at: None,
        deleted: false,
        reply_to: None,
        reply: None,
        reactions: Vec::new(),
    };
    // Replica one hands the same message over twice (a retry whose answer was lost),
    // then another.
    let receive = reqwest::Url::parse(&two.url("/receive-message")).unwrap();
    for id in ["first", "first", "second"] {
        let sent = one.state.client.signed_post(receive.clone(), &message(id)).send().await.unwrap();
        assert_eq!(sent.status(), StatusCode::OK);
    }

    // Everything the browser got up to the second message: the first came once.
    let mut pushed = Vec::new();
    while pushed.last().map(String::as_str) != Some("second") {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("the second message is pushed within 10 s")
            .expect("the stream stays open")
            .unwrap();
        if event.event == "direct_message" {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            pushed.push(data["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(pushed, ["first", "second"]);
    let (messages, _) = one
        .state
        .store
        .conversation(&Username::parse("bob").unwrap(), &Username::parse("alice").unwrap(), None, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 2, "filed once, seen from the other replica too");
    drop(events);
    one.stop().await;
    two.stop().await;
}
