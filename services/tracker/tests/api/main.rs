//! The tracker over real HTTP on 127.0.0.1:0: API tests on both storage backends, and
//! several replicas on one PostgreSQL database, and the log-in through auth instances.

use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use kit::client::Client;
use kit::config::Secrets;
use kit::pg::TestDatabase;
use kit::sign::ClusterKey;
use reqwest::Url;
use secrecy::SecretString;
use tokio::sync::oneshot;
use tracker::{AppState, Config};
use wire::api::{PeerRegistration, UserInfo};
use wire::names::Username;

mod basics;
mod login;
mod names;
mod readiness;
mod replicas;
mod sessions;

/// Where a test's tracker keeps its data.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test body (an `async fn(Backend)` in the invoking module) once on
/// each backend, as `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(crate::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(crate::Backend::Postgres).await
            })*
        }
    };
}
pub(crate) use on_both_backends;

/// One test's storage and secrets; every tracker started from one `Storage` shares
/// them, like replicas.
pub struct Storage {
    config: Config,
    _dir: tempfile::TempDir,
    /// Taken and dropped by tests that lose the database under a running tracker.
    database: Option<TestDatabase>,
}

impl Storage {
    /// `None` when PostgreSQL is asked for and no server answers (the reason is
    /// printed).
    pub async fn new(backend: Backend, test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().join("tracker"),
            www_dir: dir.path().join("www"),
            server_port: 0,
            secrets: Secrets::random(),
            // Tests run in parallel on one server: small pools.
            database_pool_size: 4,
            ..Config::default()
        };
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let database = TestDatabase::for_test(test).await?;
                config.secrets.database_url = Some(SecretString::from(database.url().to_owned()));
                Some(database)
            }
        };
        Some(Self { config, _dir: dir, database })
    }

    /// Starts a tracker (a replica, when called again) on this storage.
    pub async fn start(&self) -> Tracker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tracker = tracker::Tracker::build_on(listener, &self.config).await.unwrap();
        let url = Url::parse(&format!("http://{}/", tracker.local_addr().unwrap())).unwrap();
        let state = tracker.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(tracker.run(async move {
            let _ = stopped.await;
        }));
        let client =
            Client::new(ClusterKey::new(&self.config.secrets.cluster_secret), Duration::from_secs(10)).unwrap();
        Tracker { url, state, client, _stop: stop }
    }
}

/// A peer's push stream from the tracker.
pub type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// The next event named `name` on `events`, within 20 s.
pub async fn next_event(events: &mut Events, name: &str) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap_or_else(|_| panic!("no {name} event in time"))
            .expect("the stream ended")
            .unwrap();
        if event.event == name {
            return event;
        }
    }
}

/// A running tracker; stops when dropped.
pub struct Tracker {
    pub url: Url,
    pub state: AppState,
    /// Signs as a service of the cluster.
    pub client: Client,
    _stop: oneshot::Sender<()>,
}

impl Tracker {
    pub fn at(&self, path: &str) -> Url {
        self.url.join(path).unwrap()
    }

    /// Opens the push stream of the peer at 127.0.0.1:`port`, resuming after `last_id`.
    pub async fn peer_stream(&self, port: u16, last_id: u64) -> Events {
        let url = self.at(&format!("peer-stream?ip=127.0.0.1&port={port}"));
        let response =
            self.client.signed_stream(url).header("last-event-id", last_id.to_string()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        Box::pin(response.bytes_stream().eventsource())
    }

    /// A session token for `user` (every replica shares the session secret).
    pub fn token(&self, user: &str) -> String {
        self.state.tokens.issue(&Username::parse(user).unwrap()).unwrap().0
    }

    /// Registers the peer at 127.0.0.1:`port`.
    pub async fn register_peer(&self, port: u16) {
        let registration = PeerRegistration { ip: "127.0.0.1".into(), port, username: None };
        let response = self.client.signed_post(self.at("register-peer-pool"), &registration).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    /// The peer at 127.0.0.1:`port` says it hosts `user`.
    pub async fn submit_info(&self, user: &str, port: u16) {
        let info = UserInfo {
            ip: "127.0.0.1".into(),
            port,
            username: Username::parse(user).unwrap(),
            active: false,
            reclaim: false,
        };
        let response = self.client.signed_post(self.at("submit-info"), &info).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    /// `user` joins `channel`.
    pub async fn join(&self, user: &str, channel: &str) {
        let body = serde_json::json!({ "channel_name": channel });
        let response = self.client.user_post(self.at("join-channel"), &self.token(user), &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    /// `user` posts `text` to `channel`; the stored id.
    pub async fn post(&self, token: &str, channel: &str, text: &str) -> u64 {
        let body = serde_json::json!({ "channel_name": channel, "message": text });
        let response = self.client.user_post(self.at("send-channel-message"), token, &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<wire::api::MessageStored>().await.unwrap().id
    }
}
