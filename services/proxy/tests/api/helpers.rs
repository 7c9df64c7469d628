//! Real backends and a real proxy, each on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use proxy::config::{HealthConfig, Policy, Upstream, VhostConfig};
use proxy::{Config, Proxy};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// Logs for failing tests with `TEST_LOG=1`.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        // The guard flushes nothing yet; the subscriber stays installed either way.
        let _telemetry = kit::telemetry::init("proxy-tests");
    }
});

/// A backend that answers with its name, and can be killed: its listener and every
/// open connection close at once, as when a process dies.
pub struct Backend {
    pub addr: SocketAddr,
    #[allow(dead_code, reason = "handy when debugging a test")]
    pub name: String,
    healthy: Arc<AtomicBool>,
    sse: Arc<Mutex<Option<mpsc::Receiver<String>>>>,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    /// `/healthz` requests answered so far.
    probed: Arc<AtomicUsize>,
    /// Notified when a `/slow` request reaches this backend.
    pub slow_started: Arc<Notify>,
    /// Notified for each piece of an `/upload` body that reaches this backend.
    pub pieces: Arc<Notify>,
    kill: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

#[derive(Clone)]
struct BackendState {
    name: String,
    healthy: Arc<AtomicBool>,
    probed: Arc<AtomicUsize>,
    sse: Arc<Mutex<Option<mpsc::Receiver<String>>>>,
    slow_started: Arc<Notify>,
    pieces: Arc<Notify>,
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        LazyLock::force(&TRACING);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let sse = Arc::new(Mutex::new(None));
        let slow_started = Arc::new(Notify::new());
        let probed = Arc::new(AtomicUsize::new(0));
        let pieces = Arc::new(Notify::new());
        let state = BackendState {
            name: name.to_owned(),
            healthy: healthy.clone(),
            probed: probed.clone(),
            sse: sse.clone(),
            slow_started: slow_started.clone(),
            pieces: pieces.clone(),
        };
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/slow", get(slow))
            .route("/headers", get(headers))
            .route("/echo", post(echo))
            .route("/upload", post(upload))
            .route("/chunked", get(chunked))
            .route("/reject", post(reject))
            .route("/sse", get(events))
            .route("/ws", any(websocket))
            .fallback(name_reply)
            .with_state(state);
        let (kill, killed) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        let accepted = Arc::new(AtomicUsize::new(0));
        tokio::spawn(serve_until_killed(listener, router, accepted.clone(), killed, stopped_tx));
        Self {
            addr,
            name: name.to_owned(),
            healthy,
            sse,
            accepted,
            probed,
            slow_started,
            pieces,
            kill: Some(kill),
            stopped: Some(stopped),
        }
    }

    pub fn upstream(&self) -> Upstream {
        Upstream { host: self.addr.ip().to_string(), port: self.addr.port() }
    }

    /// Closes the listener and every connection, and waits until they are closed.
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }

    /// Makes `/healthz` answer 500 (false) or 200 (true).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// How many connections this backend accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the proxy's health checker has probed this backend.
    pub async fn wait_for_probe(&self) {
        for _ in 0..500 {
            if self.probed.load(Ordering::SeqCst) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no health probe within 5 s");
    }

    /// A sender whose every message becomes one event of the next `/sse` stream.
    pub fn sse_events(&self) -> mpsc::Sender<String> {
        let (sender, receiver) = mpsc::channel(8);
        *self.sse.lock().unwrap() = Some(receiver);
        sender
    }
}

async fn serve_until_killed(
    listener: TcpListener,
    router: Router,
    accepted: Arc<AtomicUsize>,
    mut killed: oneshot::Receiver<()>,
    stopped: oneshot::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut killed => break,
            accepted_connection = listener.accept() => {
                let Ok((stream, _)) = accepted_connection else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
    let _ = stopped.send(());
}

fn named(state: &BackendState, body: String) -> Response {
    ([("x-backend", state.name.clone())], body).into_response()
}

async fn name_reply(State(state): State<BackendState>) -> Response {
    let body = state.name.clone();
    named(&state, body)
}

async fn healthz(State(state): State<BackendState>) -> Response {
    state.probed.fetch_add(1, Ordering::SeqCst);
    let status = if state.healthy.load(Ordering::Relaxed) { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
    (status, [("x-backend", state.name.clone())]).into_response()
}

async fn slow(State(state): State<BackendState>) -> Response {
    state.slow_started.notify_one();
    tokio::time::sleep(Duration::from_millis(700)).await;
    named(&state, "slow".to_owned())
}

/// The request headers as JSON: name → list of values.
async fn headers(State(state): State<BackendState>, headers: HeaderMap) -> Response {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<_> =
            headers.get_all(name).iter().map(|value| value.to_str().unwrap_or("").to_owned()).collect();
        map.insert(name.as_str().to_owned(), values.into());
    }
    named(&state, serde_json::Value::Object(map).to_string())
}

async fn echo(State(state): State<BackendState>, request: Request) -> Response {
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap_or_default();
    named(&state, String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the request body piece by piece, telling `pieces` of each as it arrives,
/// and answers with all of it.
async fn upload(State(state): State<BackendState>, request: Request) -> Response {
    let mut stream = request.into_body().into_data_stream();
    let mut all = Vec::new();
    while let Some(Ok(piece)) = stream.next().await {
        if !piece.is_empty() {
            state.pieces.notify_one();
        }
        all.extend_from_slice(&piece);
    }
    named(&state, String::from_utf8_lossy(&all).into_owned())
}

/// A body in three writes, with no length: chunked to an HTTP/1.1 client.
async fn chunked() -> Response {
    let pieces = ["one", "two", "three"].map(|piece| Ok::<_, std::convert::Infallible>(piece.to_owned()));
    axum::body::Body::from_stream(tokio_stream::iter(pieces)).into_response()
}

/// Refuses an upload without reading it, as a backend with a smaller limit does.
async fn reject() -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, "too large for me").into_response()
}

async fn events(State(state): State<BackendState>) -> Response {
    let receiver = state.sse.lock().unwrap().take().expect("call sse_events() before opening /sse");
    let stream =
        ReceiverStream::new(receiver).map(|data| Ok::<_, std::convert::Infallible>(Event::default().data(data)));
    Sse::new(stream).into_response()
}

async fn websocket(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            let echo = matches!(message, Message::Text(_) | Message::Binary(_));
            if matches!(message, Message::Close(_)) || (echo && socket.send(message).await.is_err()) {
                break;
            }
        }
    })
}

// === The proxy ===

/// A vhost block over these backends.
pub fn vhost(name: &str, policy: Policy, backends: &[&Backend]) -> VhostConfig {
    VhostConfig {
        name: name.to_owned(),
        upstreams: backends.iter().map(|b| b.upstream()).collect(),
        policy,
        default: false,
        paths: Default::default(),
        tls: None,
        https: Default::default(),
    }
}

/// A config with these vhosts, and health probes slow enough to stay out of the way
/// unless a test calls `check_health`.
pub fn config(vhosts: Vec<VhostConfig>) -> Config {
    Config { vhosts, health: HealthConfig { interval_ms: 60_000, ..HealthConfig::default() }, ..Config::default() }
}

/// An address nobody listens on: connecting is refused.
pub async fn dead_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    Upstream { host: addr.ip().to_string(), port: addr.port() }
}

pub struct TestProxy {
    pub addr: SocketAddr,
    pub proxy: Proxy,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestProxy {
    pub async fn start(config: Config) -> Self {
        LazyLock::force(&TRACING);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy::new(config).unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let served = tokio::spawn(proxy::serve(listener, proxy.clone(), async move {
            let _ = stop.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, proxy, client, shutdown: Some(shutdown), served: Some(served) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A GET through the proxy with this Host.
    pub async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).header("host", host).send().await.unwrap()
    }

    /// Which backend answered a GET for this Host.
    pub async fn backend_for(&self, host: &str) -> String {
        let response = self.get(host, "/").await;
        assert_eq!(response.status(), 200, "GET / for {host}");
        response.headers()["x-backend"].to_str().unwrap().to_owned()
    }

    /// Fires the shutdown signal and waits for `serve` to return.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.served.take().unwrap().await.unwrap()
    }
}

/// Sends raw bytes to the proxy and reads the whole reply (the proxy closes after an
/// HTTP/1.0 request).
pub async fn raw_request(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await.unwrap().unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}
