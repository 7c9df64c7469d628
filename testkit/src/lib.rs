//! The testkit: boots the whole WeApRous system for tests.
//!
//! In-process (the default), every service runs in the test's runtime on its own
//! `127.0.0.1:0` port, with fresh random secrets, a temporary data folder and a copy
//! of the demo user database. With [`Builder::processes`], every service is a real
//! child process of the `weaprous` binary instead, so tests can kill one with SIGKILL.
//!
//! ```no_run
//! # async fn demo() {
//! let sys = testkit::System::builder().peers(2).start().await;
//! let alice = sys.login(0, "user1", "password1").await;
//! let reply = alice.post("/join-channel", "channel_name=general").await;
//! assert_eq!(reply.status, 200);
//! sys.shutdown().await;
//! # }
//! ```

mod backend;
mod launch;
mod logging;
pub mod otlp;
mod process;
mod service;
mod user;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kit::config::Secrets;
use kit::sign::ClusterKey;
use serde_json::Value;

use backend::assert_on_postgres;
use service::{Role, Running, urls};

// The crate's API is flat (`testkit::TestUser`): tests read better that way.
pub use backend::Backend;
pub use logging::init_logging;
pub use process::Child;
pub use service::Service;
pub use user::{Reply, TestUser, session_token};

/// The repository's root (for `db/` and `www/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository root exists")
}

/// How to boot a [`System`].
#[derive(Debug, Clone)]
pub struct Builder {
    peers: usize,
    trackers: usize,
    auths: usize,
    proxy: bool,
    allow_registration: bool,
    peer_ttl_secs: u64,
    heartbeat_secs: u64,
    processes: Option<PathBuf>,
    /// Environment for every child process (process mode).
    env: Vec<(String, String)>,
    backend: Backend,
    /// Whether the demo users (user1..user4) are loaded, as in development.
    demo_users: bool,
    /// The tracker's public URL, where its log-in sends browsers.
    public_url: Option<String>,
    /// The rate limits of every service (default: the shipped defaults).
    limits: kit::rate::Limits,
    /// Trusted proxies and secure cookies of every service.
    edge: kit::http::EdgeConfig,
}

impl Builder {
    /// Where the services keep their data (default: embedded).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// How many tracker replicas (default 1). More than one needs a shared
    /// database ([`Builder::backend`]); peers get every tracker's address.
    pub fn trackers(mut self, trackers: usize) -> Self {
        self.trackers = trackers;
        self
    }

    /// How many auth replicas (default 1); like [`Builder::trackers`].
    pub fn auths(mut self, auths: usize) -> Self {
        self.auths = auths;
        self
    }

    /// How many peers (default 2).
    pub fn peers(mut self, peers: usize) -> Self {
        self.peers = peers;
        self
    }

    /// Runs the proxy in front of the peers (vhost `localhost`, sticky), the tracker
    /// (`tracker.localhost`) and auth (`auth.localhost`).
    pub fn proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    pub fn allow_registration(mut self, allow: bool) -> Self {
        self.allow_registration = allow;
        self
    }

    /// How long the tracker keeps a silent peer, and how often peers beat.
    pub fn liveness(mut self, peer_ttl_secs: u64, heartbeat_secs: u64) -> Self {
        self.peer_ttl_secs = peer_ttl_secs;
        self.heartbeat_secs = heartbeat_secs;
        self
    }

    /// Sets an environment variable of every child process (process mode), e.g.
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Whether the demo users `user1`..`user4` are there (default: yes, as in
    /// `weaprous up`); without them the system starts with no users, as a deployment.
    pub fn demo_users(mut self, demo: bool) -> Self {
        self.demo_users = demo;
        self
    }

    /// The tracker's public URL (`TRACKER_PUBLIC_URL`): where its log-in sends the
    /// browser instead of to a peer.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    /// The rate limits and caps of every service (default: the shipped defaults).
    pub fn limits(mut self, limits: kit::rate::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Every rate limit off (`WEAPROUS_RATE_LIMITS=off`), for tests that flood on purpose.
    pub fn without_rate_limits(self) -> Self {
        self.limits(kit::rate::Limits::off())
    }

    /// Every service's trusted proxies and secure cookies (default: one hop, auto).
    pub fn edge(mut self, edge: kit::http::EdgeConfig) -> Self {
        self.edge = edge;
        self
    }

    /// Runs every service as a child process of this `weaprous` binary.
    pub fn processes(mut self, weaprous_binary: impl Into<PathBuf>) -> Self {
        self.processes = Some(weaprous_binary.into());
        self
    }

    /// Boots everything and waits until every peer is in the tracker's pool.
    pub async fn start(self) -> System {
        init_logging();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = dir.path().join("database.csv");
        if self.demo_users {
            std::fs::copy(repo_root().join("db/database.csv"), &db).expect("the demo user database exists");
        } else {
            std::fs::write(&db, "username,password_hash\n").expect("a writable temporary folder");
        }
        let mut secrets = Secrets::random();
        secrets.database_url = self.backend.database_url().map(|url| url.to_owned().into());
        let mut sys = System {
            settings: self.clone(),
            secrets,
            dir,
            auths: Vec::new(),
            trackers: Vec::new(),
            peers: Vec::new(),
            proxy_port: 0,
            proxy: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        };
        if let Backend::Postgres(_) = &self.backend {
            // The database starts empty: the demo users go in as `auth import-csv` puts them.
            let config = auth::Config { secrets: sys.secrets.clone(), ..auth::Config::default() };
            let users = auth::store::UserStore::open(&config).await.expect("the auth store opens");
            auth::import::import_csv(&users, &db).await.expect("the demo users import");
        }
        for _ in 0..self.auths.max(1) {
            let auth = sys.launch(Role::Auth, None).await;
            sys.auths.push((auth.port, Some(auth)));
        }
        for _ in 0..self.trackers.max(1) {
            let tracker = sys.launch(Role::Tracker, None).await;
            sys.trackers.push((tracker.port, Some(tracker)));
        }
        for _ in 0..self.peers {
            let peer = sys.launch(Role::Peer, None).await;
            sys.peers.push((peer.port, Some(peer)));
        }
        if self.proxy {
            sys.proxy = Some(sys.launch(Role::Proxy, None).await);
            sys.proxy_port = sys.proxy.as_ref().map_or(0, |proxy| proxy.port);
        }
        for index in 0..self.peers {
            sys.wait_ready(index).await;
        }
        if let Some(url) = self.backend.database_url() {
            assert_on_postgres(url).await;
        }
        sys
    }
}

/// The whole system, running. Dropping it stops in-process services with the
/// runtime and kills child processes.
pub struct System {
    settings: Builder,
    secrets: Secrets,
    dir: tempfile::TempDir,
    /// Each auth replica's port, and the replica while it runs.
    auths: Vec<(u16, Option<Service>)>,
    /// Each tracker replica's port, and the replica while it runs.
    trackers: Vec<(u16, Option<Service>)>,
    /// Each peer's port, and the peer while it runs (stopped peers keep their port).
    peers: Vec<(u16, Option<Service>)>,
    /// The proxy's port (0 without one), and the proxy while it runs.
    proxy_port: u16,
    proxy: Option<Service>,
    client: reqwest::Client,
}

impl System {
    pub fn builder() -> Builder {
        Builder {
            peers: 2,
            trackers: 1,
            auths: 1,
            proxy: false,
            allow_registration: true,
            peer_ttl_secs: 15,
            heartbeat_secs: 1,
            processes: None,
            env: Vec::new(),
            backend: Backend::Embedded,
            demo_users: true,
            public_url: None,
            limits: kit::rate::Limits::default(),
            edge: kit::http::EdgeConfig::default(),
        }
    }

    /// Where this system's services keep their data.
    pub fn backend(&self) -> &Backend {
        &self.settings.backend
    }

    /// The first auth replica's base URL (also while stopped).
    pub fn auth_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.auths[0].0)
    }

    /// Every auth replica's base URL, comma-separated: what peers and trackers get.
    pub fn auth_urls(&self) -> String {
        urls(&self.auths)
    }

    /// The first tracker replica's base URL (also while stopped).
    pub fn tracker_url(&self) -> String {
        self.tracker_url_at(0)
    }

    /// Tracker replica `index`'s base URL (also while stopped).
    pub fn tracker_url_at(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.trackers[index].0)
    }

    /// Every tracker replica's base URL, comma-separated: what peers get.
    pub fn tracker_urls(&self) -> String {
        urls(&self.trackers)
    }

    /// The base URL of peer `index`, like `http://127.0.0.1:PORT` (also while stopped).
    pub fn peer_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.peer_port(index))
    }

    pub fn peer_port(&self, index: usize) -> u16 {
        self.peers[index].0
    }

    /// The proxy's base URL (send `Host: localhost` for the app).
    pub fn proxy_url(&self) -> String {
        assert!(self.proxy_port != 0, "built with .proxy()");
        format!("http://127.0.0.1:{}", self.proxy_port)
    }

    /// The temporary folder holding every service's data.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster key every service of this system shares, to sign test requests.
    pub fn cluster_key(&self) -> ClusterKey {
        ClusterKey::new(&self.secrets.cluster_secret)
    }

    /// Keys with this system's session secret, to mint tokens that live `ttl`.
    pub fn token_keys(&self, ttl: Duration) -> kit::session::TokenKeys {
        kit::session::TokenKeys::new(&self.secrets.session_secret, ttl)
    }

    /// A plain HTTP client (no redirects followed, 20 s timeout).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Logs `user` in on peer `index` and returns a client holding their session.
    pub async fn login(&self, index: usize, user: &str, password: &str) -> TestUser {
        TestUser::login(&self.client, &self.peer_url(index), user, password).await
    }

    /// Stops peer `index` gracefully; [`System::restart_peer`] brings it back.
    pub async fn stop_peer(&mut self, index: usize) {
        self.peers[index].1.take().expect("the peer runs").stop().await;
    }

    /// Kills peer `index` with SIGKILL (process mode only).
    pub async fn kill_peer(&mut self, index: usize) {
        self.peers[index].1.take().expect("the peer runs").kill().await;
    }

    /// Starts peer `index` again on its old port and data.
    pub async fn restart_peer(&mut self, index: usize) {
        assert!(self.peers[index].1.is_none(), "peer {index} still runs");
        let peer = self.launch(Role::Peer, Some(self.peers[index].0)).await;
        self.peers[index].1 = Some(peer);
        self.wait_ready(index).await;
    }

    /// Kills the tracker with SIGKILL (process mode only) and starts it again on its
    /// port and data; waits until every running peer is back in its pool.
    pub async fn kill_and_restart_tracker(&mut self) {
        self.kill_tracker(0).await;
        self.restart_tracker().await;
    }

    /// Kills tracker replica `index` with SIGKILL (process mode only).
    pub async fn kill_tracker(&mut self, index: usize) {
        self.trackers[index].1.take().expect("the tracker runs").kill().await;
    }

    /// Stops the (first) tracker gracefully, leaving the peers running;
    /// [`System::restart_tracker`] brings it back.
    pub async fn stop_tracker(&mut self) {
        self.trackers[0].1.take().expect("the tracker runs").stop().await;
    }

    /// Starts the (first) tracker again on its port and data; waits until every
    /// running peer is back in its pool.
    pub async fn restart_tracker(&mut self) {
        self.restart_tracker_at(0).await;
    }

    /// Starts tracker replica `index` again on its port; waits until every running
    /// peer is in the pool it sees.
    pub async fn restart_tracker_at(&mut self, index: usize) {
        assert!(self.trackers[index].1.is_none(), "tracker {index} still runs");
        self.trackers[index].1 = Some(self.launch(Role::Tracker, Some(self.trackers[index].0)).await);
        for peer in 0..self.peers.len() {
            if self.peers[peer].1.is_some() {
                self.wait_registered_at(index, peer).await;
            }
        }
    }

    /// Kills auth replica `index` with SIGKILL (process mode only).
    pub async fn kill_auth(&mut self, index: usize) {
        self.auths[index].1.take().expect("auth runs").kill().await;
    }

    /// Starts auth replica `index` again on its port.
    pub async fn restart_auth(&mut self, index: usize) {
        assert!(self.auths[index].1.is_none(), "auth {index} still runs");
        self.auths[index].1 = Some(self.launch(Role::Auth, Some(self.auths[index].0)).await);
    }

    /// Every log line the child processes wrote so far (process mode).
    pub fn logs(&self) -> Vec<String> {
        let services = self
            .auths
            .iter()
            .chain(&self.trackers)
            .chain(&self.peers)
            .filter_map(|(_, service)| service.as_ref())
            .chain(&self.proxy);
        services
            .filter_map(|service| match &service.running {
                Running::Process(child) => Some(child.logs()),
                Running::InProcess { .. } => None,
            })
            .flatten()
            .collect()
    }

    /// Stops everything gracefully, proxy first, auth last.
    pub async fn shutdown(mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.stop().await;
        }
        for (_, peer) in self.peers.drain(..) {
            if let Some(peer) = peer {
                peer.stop().await;
            }
        }
        for (_, service) in self.trackers.drain(..).chain(self.auths.drain(..)) {
            if let Some(service) = service {
                service.stop().await;
            }
        }
    }

    /// Waits (bounded) until peer `index` answers `/readyz`: it is in the pool.
    async fn wait_ready(&self, index: usize) {
        let peer = self.peers[index].1.as_ref().expect("the peer runs");
        if let Running::InProcess { readiness: Some(readiness), .. } = &peer.running {
            eventually("peer registered with the tracker", || async { readiness.is_ready() }).await;
            return;
        }
        self.wait_registered(index).await;
    }

    /// Waits (bounded) until the first running tracker lists peer `index` among
    /// live peers.
    async fn wait_registered(&self, index: usize) {
        let tracker = self.trackers.iter().position(|(_, service)| service.is_some()).expect("a tracker runs");
        self.wait_registered_at(tracker, index).await;
    }

    /// Waits (bounded) until tracker replica `tracker` lists peer `index`.
    async fn wait_registered_at(&self, tracker: usize, index: usize) {
        let port = self.peer_port(index);
        let url = format!("{}/get-peers", self.tracker_url_at(tracker));
        let key = self.cluster_key();
        eventually("peer in the tracker's pool", || async {
            let signature = key.sign_url(&reqwest::Method::GET, &reqwest::Url::parse(&url).unwrap(), b"");
            let Ok(response) = self.client.get(&url).header(wire::headers::SIGNATURE, signature).send().await else {
                return false;
            };
            let peers: Vec<Value> = response.json().await.unwrap_or_default();
            peers.iter().any(|peer| peer["port"] == port)
        })
        .await;
    }
}

/// Retries `check` every 20 ms for up to 10 s; panics naming `what` if it never holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs an `async fn name(backend: testkit::Backend)` as two tests, `name::embedded`
/// and `name::postgres`. The PostgreSQL one says on stderr, and returns, where no
/// server answers outside CI (in CI it fails instead).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name($crate::Backend::Embedded).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(backend) = $crate::Backend::postgres(concat!(module_path!(), "::postgres")).await {
                        super::$name(backend).await;
                    }
                }
            }
        )+
    };
}
