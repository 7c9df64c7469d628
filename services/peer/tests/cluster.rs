//! Cluster mode over HTTP: two peer replicas on one PostgreSQL database, no tracker.
//! A direct message still goes peer to peer, and then either replica serves either
//! user their conversations.

use std::net::SocketAddr;

use peer::{AppState, Config};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wire::names::Username;

/// A serving peer replica on the test's database, and how to stop it.
struct Replica {
    state: AppState,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    async fn start(database_url: &str, data_dir: &std::path::Path) -> Self {
        let mut config = Config {
            // No tracker answers there: peers find each other by last known address.
            tracker_url: "127.0.0.1:9".into(),
            auth_url: "127.0.0.1:9".into(),
            data_dir: data_dir.to_owned(),
            database_pool_size: 4,
            ..Config::default()
        };
        config.secrets.database_url = Some(SecretString::from(database_url.to_owned()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    // Read once, through either replica.
    let (_, unread) = get_json(&client, one.url("/get-received-messages"), Some(&bob)).await;
    assert_eq!(unread.as_array().unwrap().len(), 1);
    let (_, unread) = get_json(&client, two.url("/get-received-messages"), Some(&bob)).await;
    assert_eq!(unread.as_array().unwrap().len(), 0);

    assert!(std::fs::read_dir(data_dir.path()).unwrap().next().is_none(), "no SQLite file in cluster mode");
    one.stop().await;
    two.stop().await;
}
