//! The original's `POST /login` on the tracker, through its auth client, with auth
//! instances down: a stand-in auth (a real server on port 0) checks the signature and
//! grants sessions; a dead instance is an address bound once, then closed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::routing::post;
use kit::error::ApiError;
use kit::session::TokenKeys;
use kit::sign::{ClusterKey, Signed};
use serde_json::Value;
use tokio::sync::mpsc;
use wire::api::{Credentials, SessionGrant, Status};
use wire::names::Username;

use crate::{Backend, Storage, on_both_backends};

on_both_backends!(
    a_login_passes_over_a_dead_auth_instance_and_sends_the_browser_to_a_peer,
    a_login_with_every_auth_instance_dead_is_a_quick_json_503
);

/// The browser's address, as the proxy in front would name it.
const BROWSER: &str = "203.0.113.7";

async fn a_login_passes_over_a_dead_auth_instance_and_sends_the_browser_to_a_peer(backend: Backend) {
    let test = "a_login_passes_over_a_dead_auth_instance_and_sends_the_browser_to_a_peer";
    let Some(mut storage) = Storage::new(backend, test).await else { return };
    let (auth, mut clients_named) = stand_in_auth(&storage).await;
    storage.config.auth_url = format!("{},{auth}", dead_address().await);
    let tracker = storage.start().await;
    tracker.register_peer(9911).await;

    let response = login(&tracker.at("login"), "alice", "secret").await;
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    assert_eq!(response.headers()["location"], "http://127.0.0.1:9911/");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert_eq!(clients_named.recv().await.as_deref(), Some(BROWSER), "auth was told whose log-in it was");

    // The cookie holds the grant of the live instance, and the tracker recorded the
    // user's peer.
    let session = cookie.split(';').next().unwrap();
    let me: Value = reqwest::Client::new()
        .get(tracker.at("me"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&me["username"], &me["peer"]), (&Value::from("alice"), &Value::from("127.0.0.1:9911")));

    // A refusal from the live instance is an answer: passed on, not failed over.
    let refused = login(&tracker.at("login"), "alice", "wrong").await;
    assert_eq!(refused.status(), 401);
    assert_eq!(tracker.state.auth.endpoints().url("/login").as_str(), format!("{auth}/login"), "the live one is kept");
}

async fn a_login_with_every_auth_instance_dead_is_a_quick_json_503(backend: Backend) {
    let test = "a_login_with_every_auth_instance_dead_is_a_quick_json_503";
    let Some(mut storage) = Storage::new(backend, test).await else { return };
    storage.config.auth_url = format!("{},{}", dead_address().await, dead_address().await);
    let tracker = storage.start().await;
    tracker.register_peer(9912).await;

    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), login(&tracker.at("login"), "alice", "secret"))
        .await
        .expect("the tracker answers instead of hanging");
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(response.headers().get("location").is_none(), "nobody is sent to a peer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("auth")), "{body}");
}

/// `POST /login` with a form, as the original's page sends it, from [`BROWSER`];
/// redirects are not followed.
async fn login(url: &reqwest::Url, username: &str, password: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    client
        .post(url.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", BROWSER)
        .body(format!("username={username}&password={password}"))
        .send()
        .await
        .unwrap()
}

/// An auth that grants `secret` to anyone, on signed calls only, with tokens the
/// tracker accepts; the receiver yields the client each log-in named.
async fn stand_in_auth(storage: &Storage) -> (String, mpsc::UnboundedReceiver<String>) {
    let secrets = &storage.config.secrets;
    let tokens = TokenKeys::new(&secrets.session_secret, Duration::from_secs(3600));
    let (named, clients_named) = mpsc::unbounded_channel();
    let login = move |Query(query): Query<HashMap<String, String>>, Signed(credentials): Signed<Credentials>| {
        let (tokens, named) = (tokens.clone(), named.clone());
        async move {
            let _ = named.send(query.get("client").cloned().unwrap_or_default());
            if credentials.password != "secret" {
                return Err(ApiError::Unauthorized("wrong username or password".into()));
            }
            let username =
                Username::parse(&credentials.username).map_err(|err| ApiError::bad_request(err.to_string()))?;
            let (token, claims) = tokens.issue(&username)?;
            Ok(axum::Json(SessionGrant { status: Status::Success, username, token, expires_at: claims.exp }))
        }
    };
    let app = Router::new()
        .route(wire::routes::auth::LOGIN, post(login))
        .with_state(ClusterKey::new(&secrets.cluster_secret));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, clients_named)
}

/// An address where nothing listens: bound once, then closed.
async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}
