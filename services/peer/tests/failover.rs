//! Several instances of the tracker and of auth at one setting: the peer fails over
//! between them. Real trackers (the `tracker` crate, on port 0), a stand-in auth.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use kit::config::Secrets;
use kit::session::TokenKeys;
use peer::{AppState, Config};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use wire::api::{Credentials, SessionGrant, Status};
use wire::names::Username;

/// A serving service of any kind, and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the service and waits until it no longer serves.
    async fn stop(&mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        let served = self.served.take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(30), served)
            .await
            .expect("the service stops within 30 s")
            .unwrap()
            .unwrap();
    }
}

/// A tracker on `secrets` (its database too, when they name one), with its state.
async fn start_tracker(secrets: &Secrets, data_dir: &std::path::Path) -> (Running, tracker::AppState) {
    let config = tracker::Config {
        data_dir: data_dir.to_owned(),
        www_dir: data_dir.join("www"),
        server_port: 0,
        database_pool_size: 4,
        secrets: secrets.clone(),
        ..tracker::Config::default()
    };
    let state = tracker::AppState::new(&config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(tracker::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    (Running { addr, stop: Some(stop), served: Some(served) }, state)
}

/// A peer that speaks to the trackers and auth instances listed.
async fn start_peer(secrets: &Secrets, data_dir: &std::path::Path, trackers: &str, auths: &str) -> (Running, AppState) {
    let config = Config {
        tracker_url: trackers.into(),
        auth_url: auths.into(),
        data_dir: data_dir.to_owned(),
        heartbeat_secs: 1,
        secrets: Secrets { database_url: None, ..secrets.clone() },
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(&config, addr).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(peer::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    (Running { addr, stop: Some(stop), served: Some(served) }, state)
}

/// An address where nothing listens: bound once, then closed.
async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Polls `check` every 50 ms until it holds; fails after `patience`.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, patience: Duration, check: impl Fn() -> F) {
    let deadline = Instant::now() + patience;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {patience:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// Opens `/events` on the peer for the holder of `token`.
async fn browser_events(client: &reqwest::Client, peer: &Running, token: &str) -> Events {
    let response = client.get(peer.url("/events")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Box::pin(response.bytes_stream().eventsource().map(|event| event.map_err(|err| err.to_string())))
}

/// The texts of the channel messages the browser gets, up to and including `last`.
async fn channel_texts_until(events: &mut Events, last: &str) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some(last) {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .unwrap_or_else(|_| panic!("`{last}` not pushed within 30 s; got {texts:?}"))
            .expect("the browser's stream stays open")
            .unwrap();
        if event.event == "channel_message" {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            texts.push(data["text"].as_str().unwrap().to_owned());
        }
    }
    texts
}

/// POSTs JSON as the holder of `token`; returns the status and the reply.
async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (StatusCode, Value) {
    let response =
        client.post(url).bearer_auth(token).header("accept", "application/json").json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn token(state: &AppState, user: &str) -> String {
    state.tokens.issue(&Username::parse(user).unwrap()).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_first_tracker_is_dead_registers_with_the_second_and_works_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::random();
    let (live, live_state) = start_tracker(&secrets, &dir.path().join("tracker")).await;
    let trackers = format!("{},{}", dead_address().await, live.addr);
    let (peer, peer_state) = start_peer(&secrets, &dir.path().join("peer"), &trackers, &dead_address().await).await;
    let client = reqwest::Client::new();

    // Registered with the live tracker, and following its push stream.
    eventually("the peer is ready", Duration::from_secs(20), || async {
        client.get(peer.url("/readyz")).send().await.is_ok_and(|response| response.status().is_success())
    })
    .await;
    let alice = token(&peer_state, "alice");
    let peers: Value =
        client.get(live.url("/get-peers")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert!(peers.to_string().contains(&peer.addr.port().to_string()), "the live tracker lists the peer: {peers}");
    eventually("the peer follows the live tracker's stream", Duration::from_secs(20), || async {
        live_state.metrics.peer_streams.get() == 1
    })
    .await;

    // Channels relayed through the peer reach the live tracker, and its pushes the
    // browser.
    let mut events = browser_events(&client, &peer, &alice).await;
    let (status, body) = post(&client, peer.url("/create-channel"), &alice, json!({"channel_name": "failover"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        post(&client, peer.url("/send-channel-message"), &alice, json!({"channel_name": "failover", "message": "hi"}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(channel_texts_until(&mut events, "hi").await, ["hi"]);
    let channels: Value =
        client.get(peer.url("/get-all-channels")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert!(channels["channels"].to_string().contains("failover"), "{channels}");
    // Everyone online, as the live tracker sees it: alice, here.
    let online: Value =
        client.get(live.url("/get-list")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert!(online.to_string().contains("alice"), "{online}");

    drop(events);
    let (mut peer, mut live) = (peer, live);
    peer.stop().await;
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_stream_moves_to_the_other_tracker_replica_and_misses_and_doubles_nothing() {
    let test = "the_push_stream_moves_to_the_other_tracker_replica_and_misses_and_doubles_nothing";
    let Some(database) = kit::pg::TestDatabase::for_test(test).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets { database_url: Some(SecretString::from(database.url().to_owned())), ..Secrets::random() };
    let (mut first, first_state) = start_tracker(&secrets, &dir.path().join("tracker-a")).await;
    let (second, second_state) = start_tracker(&secrets, &dir.path().join("tracker-b")).await;
    let trackers = format!("{},{}", first.addr, second.addr);
    let (peer, peer_state) = start_peer(&secrets, &dir.path().join("peer"), &trackers, &dead_address().await).await;
    let client = reqwest::Client::new();

    eventually("the peer follows the first tracker's stream", Duration::from_secs(20), || async {
        first_state.metrics.peer_streams.get() == 1
    })
    .await;
    let alice = token(&peer_state, "alice");
    let mut events = browser_events(&client, &peer, &alice).await;
    let (status, body) = post(&client, peer.url("/create-channel"), &alice, json!({"channel_name": "failover"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let say = |text: &str| json!({"channel_name": "failover", "message": text});
    let (status, body) = post(&client, peer.url("/send-channel-message"), &alice, say("before")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(channel_texts_until(&mut events, "before").await, ["before"]);

    let metrics = client.get(second.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains(r#"route="/heartbeat""#), "the peer beats to the first tracker while it lives");

    // The first tracker dies. Messages go on through the second at once, while the
    // peer's stream is still moving there.
    first.stop().await;
    for text in ["during 1", "during 2", "during 3"] {
        let (status, body) = post(&client, second.url("/send-channel-message"), &alice, say(text)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Through the peer, whose tracker calls pass over the dead one.
    let (status, body) = post(&client, peer.url("/send-channel-message"), &alice, say("after")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the peer follows the second tracker's stream", Duration::from_secs(20), || async {
        second_state.metrics.peer_streams.get() == 1
    })
    .await;
    let (status, body) = post(&client, second.url("/send-channel-message"), &alice, say("last")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The peer's heartbeats, which went to the first tracker, reach the second now.
    eventually("the second tracker gets heartbeats", Duration::from_secs(20), || async {
        let metrics = client.get(second.url("/metrics")).send().await.unwrap().text().await.unwrap();
        metrics.contains(r#"route="/heartbeat",status="200""#)
    })
    .await;

    // Every message once, in order: none missed across the switch, none replayed twice.
    assert_eq!(
        channel_texts_until(&mut events, "last").await,
        ["during 1", "during 2", "during 3", "after", "last"],
        "what the browser got after `before`"
    );

    drop(events);
    let (mut peer, mut second) = (peer, second);
    peer.stop().await;
    second.stop().await;
}

/// A stand-in auth: `POST /login` grants a session to alice (password `secret`) for
/// the browser the peer names; `POST /logout` reports the token it ends.
async fn stand_in_auth(secrets: &Secrets, ended: tokio::sync::mpsc::UnboundedSender<String>) -> Running {
    use axum::extract::Query;
    use axum::routing::post;

    #[derive(serde::Deserialize)]
    struct Relayed {
        client: std::net::IpAddr,
    }
    let tokens = TokenKeys::new(&secrets.session_secret, Duration::from_secs(3600));
    let login = move |Query(relayed): Query<Relayed>, axum::Json(credentials): axum::Json<Credentials>| {
        let tokens = tokens.clone();
        async move {
            assert!(relayed.client.is_loopback(), "the peer names the browser");
            if credentials.username != "alice" || credentials.password != "secret" {
                return Err(StatusCode::UNAUTHORIZED);
            }
            let username = Username::parse("alice").unwrap();
            let (token, claims) = tokens.issue(&username).unwrap();
            Ok(axum::Json(SessionGrant { status: Status::Success, username, token, expires_at: claims.exp }))
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let logout = move |headers: axum::http::HeaderMap| {
        let token = kit::session::token_from_headers(&headers).unwrap_or_default();
        let _ = ended.send(token);
        async { axum::Json(json!({"status": "success", "message": "Logged out"})) }
    };
    let app = axum::Router::new().route("/login", post(login)).route("/logout", post(logout));
    let served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(())
    });
    Running { addr, stop: Some(stop), served: Some(served) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_in_and_a_log_out_pass_over_a_dead_auth_instance() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::random();
    let (ended, mut endings) = tokio::sync::mpsc::unbounded_channel();
    let mut auth = stand_in_auth(&secrets, ended).await;
    let auths = format!("{},http://{}", dead_address().await, auth.addr);
    let (mut peer, _) = start_peer(&secrets, dir.path(), &dead_address().await, &auths).await;
    let client = reqwest::Client::new();

    let login = |password: &str| {
        client
            .post(peer.url("/login"))
            .header("accept", "application/json")
            .json(&json!({"username": "alice", "password": password}))
            .send()
    };
    let response = login("secret").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let me: Value = client.get(peer.url("/me")).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "alice", "{me}");
    // Auth's answers pass through as they came: a wrong password is still refused.
    assert_eq!(login("wrong").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A log-out on the peer is told to auth too, past the dead instance.
    let response = client
        .post(peer.url("/logout"))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(10), endings.recv()).await.expect("auth hears of the log-out");
    let ended = ended.expect("the stand-in lives on");
    assert!(!ended.is_empty() && cookie.ends_with(&format!("={ended}")), "the session that ended: {ended}");

    peer.stop().await;
    auth.stop().await;
}

/// What a stand-in tracker saw.
#[derive(Default)]
struct Seen {
    /// Registrations with it.
    registered: std::sync::atomic::AtomicUsize,
    /// Push streams it opened.
    streams: std::sync::atomic::AtomicUsize,
}

/// A stand-in tracker. `forgetful`: it does not know the peer until it registers
/// there (404 on the stream before). `closing`: it ends each push stream after one
/// event (id 7), yet goes on answering. Every stream it opens reports the
/// `Last-Event-ID` it was asked to resume from.
async fn stand_in_tracker(
    forgetful: bool,
    closing: bool,
    resumed: tokio::sync::mpsc::UnboundedSender<Option<String>>,
) -> (Running, std::sync::Arc<Seen>) {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    let seen = Arc::new(Seen::default());
    let done = || async { axum::Json(json!({"status": "success"})) };
    let register = {
        let seen = seen.clone();
        move || {
            seen.registered.fetch_add(1, Ordering::SeqCst);
            async { axum::Json(json!({"status": "success"})) }
        }
    };
    let heartbeat = {
        let seen = seen.clone();
        move || {
            let known = !forgetful || seen.registered.load(Ordering::SeqCst) > 0;
            async move {
                if known {
                    (StatusCode::OK, axum::Json(json!({"status": "success"})))
                } else {
                    (StatusCode::NOT_FOUND, axum::Json(json!({"status": "error", "message": "not in the pool"})))
                }
            }
        }
    };
    let stream = {
        let seen = seen.clone();
        move |headers: HeaderMap| {
            let known = !forgetful || seen.registered.load(Ordering::SeqCst) > 0;
            if known {
                seen.streams.fetch_add(1, Ordering::SeqCst);
                let last = headers.get("last-event-id").map(|value| value.to_str().unwrap().to_owned());
                let _ = resumed.send(last);
            }
            async move {
                if !known {
                    let body = json!({"status": "error", "message": "peer is not in the pool: register first"});
                    return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
                }
                let head = [("content-type", "text/event-stream")];
                if closing {
                    (head, "id: 7\ndata: {}\n\n").into_response()
                } else {
                    let open = futures_util::stream::pending::<Result<String, std::convert::Infallible>>();
                    (head, axum::body::Body::from_stream(open)).into_response()
                }
            }
        }
    };
    let app = axum::Router::new()
        .route("/register-peer-pool", post(register))
        .route("/heartbeat", post(heartbeat))
        .route("/leave-peer-pool", post(done))
        .route("/revoke-sessions", post(|| async { axum::Json(json!({"sessions": []})) }))
        .route("/peer-stream", get(stream));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(())
    });
    (Running { addr, stop: Some(stop), served: Some(served) }, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_moves_on_to_the_next_tracker_which_gets_the_peer_registered_first() {
    use std::sync::atomic::Ordering;

    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::random();
    let (resumed, mut resumes) = tokio::sync::mpsc::unbounded_channel();
    // The first ends its stream after one event, though it still answers; the second
    // does not know the peer yet.
    let (first, first_seen) = stand_in_tracker(false, true, resumed.clone()).await;
    let (second, second_seen) = stand_in_tracker(true, false, resumed).await;
    let trackers = format!("{},{}", first.addr, second.addr);
    let (mut peer, _) = start_peer(&secrets, dir.path(), &trackers, &dead_address().await).await;

    let mut next_resume = async || {
        tokio::time::timeout(Duration::from_secs(20), resumes.recv())
            .await
            .expect("a push stream is opened within 20 s")
            .expect("the stand-ins live on")
    };
    assert_eq!(next_resume().await, None, "the first stream starts afresh");
    assert_eq!(next_resume().await.as_deref(), Some("7"), "the next resumes after the event seen");
    assert_eq!(first_seen.streams.load(Ordering::SeqCst), 1, "the peer moved on instead of going back");
    assert_eq!(second_seen.streams.load(Ordering::SeqCst), 1, "the second tracker serves the stream now");
    assert!(second_seen.registered.load(Ordering::SeqCst) >= 1, "the peer registered with the second first");

    peer.stop().await;
    let (mut first, mut second) = (first, second);
    first.stop().await;
    second.stop().await;
}
