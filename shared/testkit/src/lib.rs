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

pub mod otlp;
mod process;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use kit::config::Secrets;
use kit::sign::ClusterKey;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use process::Child;

/// Where the services of a [`System`] keep their data.
#[derive(Clone, Default)]
pub enum Backend {
    /// SQLite files and the CSV user file in the system's temporary folder.
    #[default]
    Embedded,
    /// One fresh PostgreSQL database shared by every service, dropped with the last
    /// clone of this.
    Postgres(Arc<kit::pg::TestDatabase>),
}

impl Backend {
    /// A fresh PostgreSQL database for `test`; `None` (after saying why on stderr)
    /// where no server answers outside CI. See [`kit::pg::TestDatabase::for_test`].
    pub async fn postgres(test: &str) -> Option<Self> {
        kit::pg::TestDatabase::for_test(test).await.map(|database| Self::Postgres(Arc::new(database)))
    }

    /// The database URL the services get, if any.
    pub fn database_url(&self) -> Option<&str> {
        match self {
            Self::Embedded => None,
            Self::Postgres(database) => Some(database.url()),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("Embedded"),
            Self::Postgres(_) => f.write_str("Postgres"),
        }
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

/// The repository's root (for `db/` and `www/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root exists")
}

/// Installs a log subscriber once; silent unless `TEST_LOG=1`.
pub fn init_logging() {
    static LOGGING: LazyLock<()> = LazyLock::new(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                ))
                .with_test_writer()
                .try_init();
        }
    });
    LazyLock::force(&LOGGING);
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
        std::fs::copy(repo_root().join("db/database.csv"), &db).expect("the demo user database exists");
        let mut secrets = Secrets::random();
        secrets.database_url = self.backend.database_url().map(|url| url.to_owned().into());
        let mut sys = System {
            settings: self.clone(),
            secrets,
            dir,
            auths: Vec::new(),
            trackers: Vec::new(),
            peers: Vec::new(),
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
    proxy: Option<Service>,
    client: reqwest::Client,
}

/// One running service.
pub struct Service {
    url: String,
    port: u16,
    running: Running,
}

enum Running {
    InProcess {
        stop: CancellationToken,
        task: JoinHandle<anyhow::Result<()>>,
        readiness: Option<kit::health::Readiness>,
    },
    Process(Box<Child>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Auth,
    Tracker,
    Peer,
    Proxy,
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
        self.proxy.as_ref().expect("built with .proxy()").url.clone()
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

    async fn launch(&self, role: Role, port: Option<u16>) -> Service {
        match &self.settings.processes {
            Some(binary) => self.launch_process(binary, role, port).await,
            None => self.launch_in_process(role, port).await,
        }
    }

    async fn launch_in_process(&self, role: Role, port: Option<u16>) -> Service {
        let listener = bind(port.unwrap_or(0)).await;
        let port = listener.local_addr().expect("a bound address").port();
        let url = format!("http://127.0.0.1:{port}");
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let mut readiness = None;
        let task = match role {
            Role::Auth => {
                let config = auth::Config {
                    db: self.dir.path().join("database.csv"),
                    allow_registration: self.settings.allow_registration,
                    secrets: self.secrets.clone(),
                    ..auth::Config::default()
                };
                let state = auth::AppState::new(&config).await.expect("auth state");
                tokio::spawn(auth::serve(listener, state, shutdown))
            }
            Role::Tracker => {
                let state = tracker::AppState::new(&self.tracker_config()).await.expect("tracker state");
                tokio::spawn(tracker::serve(listener, state, shutdown))
            }
            Role::Peer => {
                let config = self.peer_config();
                let state =
                    peer::AppState::new(&config, listener.local_addr().expect("bound")).await.expect("peer state");
                readiness = Some(state.readiness.clone());
                tokio::spawn(peer::serve(listener, state, shutdown))
            }
            Role::Proxy => {
                let config = proxy::Config::from_conf_str(&self.proxy_conf(), "127.0.0.1").expect("a valid proxy.conf");
                let proxy = proxy::Proxy::new(config).expect("proxy state");
                tokio::spawn(proxy::serve(listener, proxy, shutdown))
            }
        };
        Service { url, port, running: Running::InProcess { stop, task, readiness } }
    }

    async fn launch_process(&self, binary: &Path, role: Role, port: Option<u16>) -> Service {
        let port_arg = port.unwrap_or(0).to_string();
        let dir = self.dir.path();
        let mut args: Vec<String> = match role {
            Role::Auth => vec!["auth".into(), "--db".into(), dir.join("database.csv").display().to_string()],
            Role::Tracker => vec![
                "tracker".into(),
                "--auth-url".into(),
                self.auth_urls(),
                "--data-dir".into(),
                dir.join("tracker").display().to_string(),
                "--www".into(),
                repo_root().join("www").display().to_string(),
            ],
            Role::Peer => vec![
                "peer".into(),
                "--tracker-ip".into(),
                self.tracker_urls(),
                "--auth-url".into(),
                self.auth_urls(),
                "--data-dir".into(),
                dir.join("peers").display().to_string(),
                "--www".into(),
                repo_root().join("www").display().to_string(),
            ],
            Role::Proxy => {
                let conf = dir.join("proxy.conf");
                std::fs::write(&conf, self.proxy_conf()).expect("writable temp folder");
                vec!["proxy".into(), "--config".into(), conf.display().to_string(), "--host".into(), "127.0.0.1".into()]
            }
        };
        args.extend(["--server-ip".into(), "127.0.0.1".into(), "--server-port".into(), port_arg]);
        let mut envs = vec![
            ("WEAPROUS_SESSION_SECRET", secrecy::ExposeSecret::expose_secret(&self.secrets.session_secret).to_owned()),
            ("WEAPROUS_CLUSTER_SECRET", secrecy::ExposeSecret::expose_secret(&self.secrets.cluster_secret).to_owned()),
            ("WEAPROUS_LOG_FORMAT", "json".to_owned()),
            ("TRACKER_PEER_TTL_SECS", self.settings.peer_ttl_secs.to_string()),
            ("PEER_HEARTBEAT_SECS", self.settings.heartbeat_secs.to_string()),
            ("PEER_ACTIVITY_GRACE_SECS", "1".to_owned()),
            ("PEER_SSE_KEEPALIVE_SECS", "1".to_owned()),
            ("AUTH_ALLOW_REGISTRATION", self.settings.allow_registration.to_string()),
        ];
        if let Some(url) = self.settings.backend.database_url() {
            envs.push(("WEAPROUS_DATABASE_URL", url.to_owned()));
        }
        envs.extend(self.settings.env.iter().map(|(key, value)| (key.as_str(), value.clone())));
        let child = Child::spawn(binary, &format!("{role:?}").to_lowercase(), &args, &envs).await;
        let port = child.port();
        Service { url: format!("http://127.0.0.1:{port}"), port, running: Running::Process(Box::new(child)) }
    }

    fn tracker_config(&self) -> tracker::Config {
        tracker::Config {
            auth_url: self.auth_urls(),
            data_dir: self.dir.path().join("tracker"),
            www_dir: repo_root().join("www"),
            peer_ttl_secs: self.settings.peer_ttl_secs,
            secrets: self.secrets.clone(),
            ..tracker::Config::default()
        }
    }

    fn peer_config(&self) -> peer::Config {
        peer::Config {
            tracker_url: self.tracker_urls(),
            auth_url: self.auth_urls(),
            data_dir: self.dir.path().join("peers"),
            www_dir: repo_root().join("www"),
            heartbeat_secs: self.settings.heartbeat_secs,
            activity_grace_secs: 1,
            sse_keepalive_secs: 1,
            secrets: self.secrets.clone(),
            ..peer::Config::default()
        }
    }

    fn proxy_conf(&self) -> String {
        let peers: String =
            self.peers.iter().map(|(port, _)| format!("    proxy_pass http://$HOST:{port};\n")).collect();
        let passes = |slots: &[(u16, Option<Service>)]| -> String {
            slots.iter().map(|(port, _)| format!("    proxy_pass http://$HOST:{port};\n")).collect()
        };
        let (trackers, auths) = (passes(&self.trackers), passes(&self.auths));
        format!(
            "host \"localhost\" {{\n{peers}    dist_policy sticky\n}}\n\
             host \"tracker.localhost\" {{\n{trackers}}}\n\
             host \"auth.localhost\" {{\n{auths}}}\n"
        )
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
            let signature = key.sign(&reqwest::Method::GET, "/get-peers", b"");
            let Ok(response) = self.client.get(&url).header(wire::headers::SIGNATURE, signature).send().await else {
                return false;
            };
            let peers: Vec<Value> = response.json().await.unwrap_or_default();
            peers.iter().any(|peer| peer["port"] == port)
        })
        .await;
    }
}

impl Service {
    async fn stop(self) {
        match self.running {
            Running::InProcess { stop, task, .. } => {
                stop.cancel();
                match tokio::time::timeout(Duration::from_secs(15), task).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(err))) => panic!("service failed: {err:?}"),
                    Ok(Err(err)) => panic!("service task panicked: {err}"),
                    Err(_) => panic!("service did not stop within 15 s"),
                }
            }
            Running::Process(child) => child.terminate().await,
        }
    }

    async fn kill(self) {
        match self.running {
            Running::Process(child) => child.kill().await,
            Running::InProcess { .. } => panic!("SIGKILL needs process mode: build the system with .processes(..)"),
        }
    }
}

/// Fails unless every service that keeps data migrated its tables into the database
/// at `url`: a "postgres" test that ran embedded would prove nothing.
async fn assert_on_postgres(url: &str) {
    let pool = kit::pg::connect(url, "testkit", 1, Duration::from_secs(5)).await.expect("the test database answers");
    let conn = pool.get().await.expect("a connection");
    let rows = conn.query("SELECT DISTINCT component FROM schema_migrations", &[]).await.expect("schema_migrations");
    let components: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    for service in ["auth", "tracker", "peer"] {
        assert!(components.iter().any(|c| c == service), "{service} keeps no tables in the test database");
    }
}

fn urls(slots: &[(u16, Option<Service>)]) -> String {
    slots.iter().map(|(port, _)| format!("http://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
}

async fn bind(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|err| panic!("failed to bind 127.0.0.1:{port}: {err}"))
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

/// A reply: status, headers and the JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self { status, headers, body }
    }

    /// The `message` of an error or acknowledgement.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// A logged-in user: a client that sends their session cookie to one base URL.
#[derive(Clone)]
pub struct TestUser {
    pub name: String,
    pub base: String,
    /// The session token from the cookie.
    pub token: String,
    client: reqwest::Client,
    host: Option<String>,
    /// More cookies to send (the proxy's sticky cookie).
    extra_cookies: Option<String>,
}

impl TestUser {
    /// Logs in with a form on `base` (a peer, or the tracker) and keeps the cookie.
    pub async fn login(client: &reqwest::Client, base: &str, user: &str, password: &str) -> Self {
        let response = client
            .post(format!("{base}/login"))
            .header("accept", "application/json")
            .body(format!("username={user}&password={password}"))
            .send()
            .await
            .expect("log-in answered");
        let status = response.status();
        let token = session_token(response.headers())
            .unwrap_or_else(|| panic!("log-in of {user} on {base} gave {status} and no session cookie"));
        Self {
            name: user.to_owned(),
            base: base.to_owned(),
            token,
            client: client.clone(),
            host: None,
            extra_cookies: None,
        }
    }

    /// A user holding `token` (from a cookie), talking to `base`.
    pub fn from_token(client: &reqwest::Client, base: &str, name: &str, token: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            base: base.to_owned(),
            token: token.into(),
            client: client.clone(),
            host: None,
            extra_cookies: None,
        }
    }

    /// The same client and base with another token (forged, expired, empty).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: token.into(), ..self.clone() }
    }

    /// The same session, sent to another base URL (another peer, the proxy).
    pub fn at(&self, base: impl AsRef<str>) -> Self {
        Self { base: base.as_ref().to_owned(), ..self.clone() }
    }

    /// Sends these cookies too (`a=1; b=2`).
    pub fn with_extra_cookies(&self, cookies: &str) -> Self {
        Self { extra_cookies: (!cookies.is_empty()).then(|| cookies.to_owned()), ..self.clone() }
    }

    /// The same session through the proxy with this `Host` header.
    pub fn via(&self, base: &str, host: &str) -> Self {
        Self { base: base.to_owned(), host: Some(host.to_owned()), ..self.clone() }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut cookie = format!("{}={}", wire::headers::SESSION_COOKIE, self.token);
        if let Some(extra) = &self.extra_cookies {
            cookie = format!("{cookie}; {extra}");
        }
        let mut request = self.client.request(method, format!("{}{path}", self.base)).header("cookie", cookie);
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        request
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::read(self.request(reqwest::Method::GET, path).send().await.expect("the server answered")).await
    }

    /// POSTs a raw body (a form, as the original page sends it, labelled text/plain).
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        let request = self.request(reqwest::Method::POST, path).header("content-type", "text/plain;charset=UTF-8");
        Reply::read(request.body(body.to_owned()).send().await.expect("the server answered")).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.request(reqwest::Method::POST, path).json(body).send().await.expect("the server answered"))
            .await
    }
}

/// The session token in a `Set-Cookie` header, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all("set-cookie").iter().filter_map(|value: &HeaderValue| value.to_str().ok()).find_map(|cookie| {
        let value = cookie.strip_prefix(wire::headers::SESSION_COOKIE)?.strip_prefix('=')?;
        let token = value.split(';').next()?;
        (!token.is_empty()).then(|| token.to_owned())
    })
}
