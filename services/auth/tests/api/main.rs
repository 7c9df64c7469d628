//! Auth over real HTTP on 127.0.0.1:0, each test on both storage backends.

use std::sync::Arc;
use std::time::Duration;

use auth::{AppState, Config};
use kit::config::Secrets;
use serde_json::Value;

/// Where a test's users are kept.
#[derive(Clone, Copy, Debug)]
enum Backend {
    /// The CSV file, in a temporary directory.
    Csv,
    /// A PostgreSQL database of the test's own.
    Postgres,
}

/// Runs each named test body (an `async fn(Backend)` in the invoking module) once on
/// each backend, as `csv::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod csv {
            $(#[tokio::test]
            async fn $test() {
                super::$test(crate::Backend::Csv).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$test(crate::Backend::Postgres).await
            })*
        }
    };
}

mod cluster;
mod commands;
mod hashing;
mod import;
mod names;

/// One test's storage and the config that points at it; several auth instances
/// started from one `Storage` share their users (and secrets), like replicas.
struct Storage {
    config: Config,
    dir: tempfile::TempDir,
    _database: Option<kit::pg::TestDatabase>,
}

impl Storage {
    /// `None` when the test cannot run here: PostgreSQL asked for and no server (the
    /// reason is printed).
    async fn new(backend: Backend, allow_registration: bool) -> Option<Arc<Self>> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            db: dir.path().join("users.csv"),
            allow_registration,
            secrets: Secrets::random(),
            database_pool_size: 4,
            ..Config::default()
        };
        let database = match backend {
            Backend::Csv => None,
            Backend::Postgres => {
                // A test runs on a thread named after it.
                let test = std::thread::current().name().unwrap_or("auth api test").to_owned();
                let database = kit::pg::TestDatabase::for_test(&test).await?;
                config.secrets.database_url = Some(database.url().to_owned().into());
                Some(database)
            }
        };
        Some(Arc::new(Self { config, dir, _database: database }))
    }
}

struct TestAuth {
    url: String,
    client: reqwest::Client,
    cluster: kit::sign::ClusterKey,
    state: AppState,
    /// Dropped first: the server stops before its storage goes.
    _stop: tokio::sync::oneshot::Sender<()>,
    _storage: Arc<Storage>,
}

/// Auth on `backend` with the user `alice` (password `password1`); `None` when the
/// backend is not available here.
async fn spawn(backend: Backend, allow_registration: bool) -> Option<TestAuth> {
    let storage = Storage::new(backend, allow_registration).await?;
    let auth = spawn_on(&storage).await;
    auth.state.users.add(&wire::names::Username::parse("alice").unwrap(), "password1").await.unwrap();
    Some(auth)
}

/// One more auth instance on `storage`.
async fn spawn_on(storage: &Arc<Storage>) -> TestAuth {
    let config = &storage.config;
    let cluster = kit::sign::ClusterKey::new(&config.secrets.cluster_secret);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let auth = auth::Auth::build_on(listener, config).await.unwrap();
    let state = auth.state().clone();
    tokio::spawn(auth.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    TestAuth { url, client, cluster, state, _storage: storage.clone(), _stop: stop }
}

on_both_backends!(
    login_issues_a_token_that_session_accepts_until_logout,
    wrong_passwords_and_unknown_users_get_the_same_401,
    sign_up_creates_a_user_once_and_can_be_switched_off,
    bad_bodies_get_json_4xx_and_the_server_keeps_answering,
    repeated_failures_lock_a_name_out_for_a_while,
    someone_failing_on_purpose_does_not_lock_the_user_out_elsewhere,
    a_right_password_from_a_client_that_has_not_failed_is_never_refused,
);

impl TestAuth {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self.client.post(format!("{}{path}", self.url)).body(body.to_owned()).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// A log-in relayed by a peer for a browser at `client`, signed as peers sign it.
    async fn relayed_login(&self, client: &str, password: &str) -> u16 {
        let body = serde_json::to_vec(&serde_json::json!({"username": "alice", "password": password})).unwrap();
        self.signed_post(&format!("/login?client={client}"), body).await
    }

    /// A JSON POST signed with the cluster key; its status.
    async fn signed_post(&self, path: &str, body: Vec<u8>) -> u16 {
        self.signed_post_response(path, body).await.status().as_u16()
    }

    /// A JSON POST signed with the cluster key; the whole response.
    async fn signed_post_response(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        let url = reqwest::Url::parse(&format!("{}{path}", self.url)).unwrap();
        let signature = self.cluster.sign_url(&reqwest::Method::POST, &url, &body);
        self.client
            .post(url)
            .header("content-type", "application/json")
            .header(wire::headers::SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

async fn login_issues_a_token_that_session_accepts_until_logout(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    let (status, body) = auth.post("/login", "username=alice&password=password1").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["username"], "alice");

    let session = auth.client.get(format!("{}/session", auth.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(session.status(), 200);
    assert_eq!(session.json::<Value>().await.unwrap()["username"], "alice");

    let logout = auth.client.post(format!("{}/logout", auth.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    let after = auth.client.get(format!("{}/session", auth.url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(after.status(), 401);
}

async fn wrong_passwords_and_unknown_users_get_the_same_401(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    let (wrong_status, wrong) = auth.post("/login", "username=alice&password=nope").await;
    let (unknown_status, unknown) = auth.post("/login", r#"{"username":"mallory","password":"password1"}"#).await;
    assert_eq!((wrong_status, unknown_status), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["status"], "error");
}

async fn sign_up_creates_a_user_once_and_can_be_switched_off(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    let (status, body) = auth.post("/register", "username=Nguy%E1%BB%85n&password=m%E1%BA%ADt+kh%E1%BA%A9u").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["username"], "Nguyễn");
    assert_eq!(auth.post("/login", "username=Nguy%E1%BB%85n&password=m%E1%BA%ADt+kh%E1%BA%A9u").await.0, 200);
    assert_eq!(auth.post("/register", "username=nguy%E1%BB%85n&password=another1").await.0, 409);
    assert_eq!(auth.post("/register", "username=bob&password=short").await.0, 400);
    assert_eq!(auth.post("/register", "username=%3Cb%3E&password=password1").await.0, 400);

    let Some(closed) = spawn(backend, false).await else { return };
    assert_eq!(closed.post("/register", "username=bob&password=password1").await.0, 403);
}

async fn bad_bodies_get_json_4xx_and_the_server_keeps_answering(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    for body in ["", "username=alice", "{\"username\": 1, \"password\": \"x\"}", "not a form at all {"] {
        let (status, reply) = auth.post("/login", body).await;
        assert_eq!(status, 400, "{body:?} -> {reply}");
        assert_eq!(reply["status"], "error");
    }
    let huge = "a".repeat(10 * 1024 * 1024);
    let (status, reply) = auth.post("/login", &format!("username=alice&password={huge}")).await;
    assert_eq!(status, 413, "{reply}");
    let non_utf8 =
        auth.client.post(format!("{}/login", auth.url)).body(vec![0xff, 0xfe, b'=', b'1']).send().await.unwrap();
    assert_eq!(non_utf8.status(), 400);
    let forged = auth.client.get(format!("{}/session", auth.url)).bearer_auth("eyJ.forged.token").send().await.unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(auth.client.get(format!("{}/nope", auth.url)).send().await.unwrap().status(), 404);
    assert_eq!(auth.client.get(format!("{}/login", auth.url)).send().await.unwrap().status(), 405);
    assert_eq!(auth.post("/login", "username=alice&password=password1").await.0, 200);
}

async fn repeated_failures_lock_a_name_out_for_a_while(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    for _ in 0..=auth::throttle::Throttle::FREE_FAILURES {
        assert_eq!(auth.post("/login", "username=alice&password=guess").await.0, 401);
    }
    let (status, body) = auth.post("/login", "username=alice&password=password1").await;
    assert_eq!(status, 429, "locked out even with the right password: {body}");
    assert!(body["message"].as_str().unwrap().contains("try again"));
    let (status, _) = auth.post("/login", "username=ALICE&password=guess").await;
    assert_eq!(status, 429, "names are locked regardless of case");
    for spelling in ["alice%20", "%20alice", "alice%09"] {
        let (status, body) = auth.post("/login", &format!("username={spelling}&password=password1")).await;
        assert_eq!(status, 429, "{spelling:?} is the same name, locked too: {body}");
    }
}

async fn someone_failing_on_purpose_does_not_lock_the_user_out_elsewhere(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    for _ in 0..=auth::throttle::Throttle::FREE_FAILURES {
        assert_eq!(auth.relayed_login("203.0.113.7", "guess").await, 401);
    }
    assert_eq!(auth.relayed_login("203.0.113.7", "password1").await, 429, "the guesser is locked out");
    assert_eq!(auth.relayed_login("198.51.100.2", "password1").await, 200, "alice, elsewhere, logs in");
    // A relayed log-in must say whose it is, and be signed by the cluster.
    let credentials = br#"{"username":"alice","password":"password1"}"#.to_vec();
    assert_eq!(auth.signed_post("/login", credentials).await, 400, "a signed log-in without ?client");
    let forged = auth
        .client
        .post(format!("{}/login?client=198.51.100.3", auth.url))
        .header(wire::headers::SIGNATURE, "1700000000.deadbeef")
        .body(r#"{"username":"alice","password":"password1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

/// Finding 2 of issue 11: fifty failures from many addresses locked the name for
/// everyone, the real user too.
async fn a_right_password_from_a_client_that_has_not_failed_is_never_refused(backend: Backend) {
    let Some(auth) = spawn(backend, true).await else { return };
    for n in 0..auth::throttle::Throttle::NAME_UNDER_ATTACK {
        assert_eq!(auth.relayed_login(&format!("203.0.113.{n}"), "guess").await, 401);
    }
    assert_eq!(auth.relayed_login("198.51.100.2", "password1").await, 200, "alice, who has not failed, logs in");
    // The last attacker retrying at once waits: under attack, there are no free tries.
    let last = auth::throttle::Throttle::NAME_UNDER_ATTACK - 1;
    let body = serde_json::to_vec(&serde_json::json!({"username": "alice", "password": "guess"})).unwrap();
    let response = auth.signed_post_response(&format!("/login?client=203.0.113.{last}"), body).await;
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
}
