//! The WeApRous reverse proxy: the front door of every deployment.
//!
//! It routes each request by its Host to a vhost of `config/proxy.conf`, spreads the
//! vhost's requests over its backends (round-robin, least-conn or sticky), takes
//! backends that refuse or fail their `/healthz` out of rotation, and streams bodies
//! both ways (SSE, WebSocket upgrades) over keep-alive connections to the backends.
//! Its HTTP/1.1 engine ([`h1`], [`server`], [`forward`]) is its own, on `httparse`:
//! [`h1`] says why.
//!
//! # Using it in-process (the all-in-one runner, tests)
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let text = r#"host "localhost:8080" { proxy_pass http://$HOST:9001; dist_policy sticky }"#;
//! let config = proxy::Config::from_conf_str(text, "127.0.0.1")?;   // or Config::load(&args)
//! let listener = tokio::net::TcpListener::bind(config.listen()?).await?;
//! let proxy = proxy::Proxy::new(config)?;
//! let handle = proxy.clone();                   // handle.reload(&new_config).await later
//! proxy::serve(listener, proxy, kit::shutdown::signal()).await
//! # }
//! ```
//!
//! [`serve`] resolves upstream names, starts the health and DNS tasks, and serves
//! until `shutdown` completes; then it stops accepting, lets in-flight requests finish
//! for at most [`kit::http::DRAIN_GRACE`], and stops the background tasks. A `Proxy`
//! is served once. The `proxy` binary uses [`run`] instead: the same loop on one
//! single-threaded worker per core.
//!
//! # Layout
//!
//! - [`config`]: typed [`Config`], the flags, and the figment provider of `proxy.conf`.
//! - [`conf_parser`]: the `proxy.conf` grammar, with line and column in its errors.
//! - [`routing`]: Host → vhost, case-insensitive and port-aware.
//! - [`balance`]: backends and the policies.
//! - [`server`]: a client connection: request heads, keep-alive, the proxy's own
//!   answers, errors.
//! - [`forward`]: one request to a backend: retries, bodies both ways, upgrades.
//! - [`h1`]: message heads, chunked framing, the per-worker connection pool.
//! - [`health`], [`resolve`]: active health probes and DNS re-resolution.
//! - [`error`], [`trace_context`]: proxy-made errors, spans and `traceparent`.
//! - [`metrics`]: per-backend requests, latency and health, proxy-made errors.

pub mod balance;
pub mod conf_parser;
pub mod config;
pub mod error;
pub mod forward;
pub mod h1;
pub mod health;
pub mod metrics;
pub mod resolve;
pub mod routing;
pub mod server;
pub mod trace_context;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use kit::config::ConfigError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// The public API named in the crate documentation: `proxy::Config`, `proxy::Args`.
pub use config::{Args, Config};

use crate::balance::{Backend, Vhost};
use crate::config::VhostConfig;
use crate::h1::pool::Pool;
use crate::health::HealthClient;
use crate::resolve::Resolved;
use crate::routing::RoutingTable;
use crate::server::Worker;

/// A running proxy's state. Cloning is a reference-count bump; clones share routing,
/// health and the connection pool, so a clone kept aside can [`Proxy::reload`].
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// What requests read: one table per worker, so the vhosts a worker's requests
    /// touch (reference counts, round-robin counters) are its own, as in nginx, where
    /// each worker process keeps its own. Swapped whole on reload and DNS changes;
    /// the backends in them are shared.
    pub(crate) tables: Box<[ArcSwap<RoutingTable>]>,
    /// Worker threads of the `proxy` binary (one for [`serve`]).
    pub(crate) workers: usize,
    /// The client of the health probes.
    pub(crate) client: HealthClient,
    pub(crate) settings: Settings,
    /// Set when `serve` begins to shut down: replies then close their connections.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Cancelled when `serve` begins to shut down.
    pub(crate) shutdown: CancellationToken,
    /// The vhost blocks in force, for re-resolution.
    vhosts: Mutex<Arc<Vec<VhostConfig>>>,
    resolved: Mutex<Resolved>,
    /// Every live backend by address, so health and load survive rebuilds.
    registry: Mutex<HashMap<SocketAddr, Weak<Backend>>>,
    /// One rebuild (reload or re-resolution) at a time.
    rebuild: tokio::sync::Mutex<()>,
    pub(crate) metrics: metrics::ProxyMetrics,
}

/// The parts of [`Config`] read while serving.
pub(crate) struct Settings {
    pub(crate) connect_timeout: Duration,
    pub(crate) upstream_timeout: Duration,
    pub(crate) upstream_idle_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) pool_max_idle_per_backend: usize,
    pub(crate) stream_paths: Box<[String]>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_body_bytes: u64,
    pub(crate) health_interval: Duration,
    pub(crate) health_timeout: Duration,
    pub(crate) health_path: String,
    pub(crate) resolve_interval: Duration,
}

impl Proxy {
    /// Builds the proxy's state: the client and the routing table (upstreams given
    /// as IPs are ready now; names are resolved when [`serve`] starts). Spawns nothing.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg).context("invalid proxy configuration")?;
        let settings = Settings {
            connect_timeout: Config::timeout(config.timeouts.connect_ms),
            upstream_timeout: Config::timeout(config.timeouts.upstream_ms),
            upstream_idle_timeout: Config::timeout(config.timeouts.upstream_idle_ms),
            idle_timeout: Config::timeout(config.timeouts.idle_ms),
            pool_max_idle_per_backend: config.pool_max_idle_per_backend,
            stream_paths: config.stream_paths.clone().into(),
            header_read_timeout: Config::timeout(config.timeouts.header_read_ms),
            max_header_bytes: config.limits.max_header_bytes,
            max_body_bytes: config.limits.max_body_bytes,
            health_interval: Config::timeout(config.health.interval_ms),
            health_timeout: Config::timeout(config.health.timeout_ms),
            health_path: config.health.path.clone(),
            resolve_interval: Config::timeout(config.resolve_interval_ms),
        };
        let workers = config.worker_count();
        let shared = Shared {
            tables: (0..workers).map(|_| ArcSwap::from_pointee(RoutingTable::default())).collect(),
            workers,
            client: health::client(&config),
            settings,
            stopping: std::sync::atomic::AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            vhosts: Mutex::new(Arc::new(config.vhosts)),
            resolved: Mutex::new(Resolved::new()),
            registry: Mutex::new(HashMap::new()),
            rebuild: tokio::sync::Mutex::new(()),
            metrics: metrics::ProxyMetrics::new(),
        };
        let vhosts = lock(&shared.vhosts).clone();
        shared.install(&vhosts, &Resolved::new());
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Replaces the vhosts with those of `config` (resolving their names first).
    /// In-flight requests finish on the backends they have; an invalid config is
    /// refused and the current one keeps serving. Listener, timeouts and limits are
    /// read once, at start.
    pub async fn reload(&self, config: &Config) -> anyhow::Result<()> {
        config.validate().map_err(anyhow::Error::msg).context("invalid proxy configuration")?;
        let _rebuilding = self.shared.rebuild.lock().await;
        let previous = lock(&self.shared.resolved).clone();
        let resolved = resolve::resolve_all(&config.vhosts, &previous).await;
        let vhosts = Arc::new(config.vhosts.clone());
        self.shared.install(&vhosts, &resolved);
        *lock(&self.shared.resolved) = resolved;
        *lock(&self.shared.vhosts) = vhosts;
        tracing::info!(vhosts = config.vhosts.len(), "configuration reloaded");
        Ok(())
    }

    /// Loads the configuration again (file, env, flags) and reloads it. A bad file is
    /// logged and returned, and the current configuration keeps serving. This is what
    /// SIGHUP does.
    pub async fn reload_from(&self, args: &Args) -> Result<(), ConfigError> {
        let loaded = Config::load(args).and_then(|config| config.listen().map(|_| config));
        let config = match loaded {
            Ok(config) => config,
            Err(err) => {
                tracing::error!(%err, "reload refused; the previous configuration stays");
                return Err(err);
            }
        };
        self.reload(&config).await.map_err(|err| {
            tracing::error!(cause = ?err, "reload refused; the previous configuration stays");
            ConfigError(format!("{err:#}"))
        })
    }

    /// The vhost names in force, for logs and tests.
    pub fn vhost_names(&self) -> Vec<String> {
        self.shared.table().vhosts().map(|vhost| vhost.name.to_string()).collect()
    }

    /// The backends of a vhost with whether each is up, for logs and tests.
    pub fn backends(&self, vhost: &str) -> Vec<(SocketAddr, bool)> {
        let table = self.shared.table();
        table
            .get(vhost)
            .map(|vhost| vhost.backends.iter().map(|backend| (backend.addr, backend.is_up())).collect())
            .unwrap_or_default()
    }

    /// Resolves the upstream names again now (the DNS task does it periodically).
    pub async fn refresh(&self) {
        refresh(&self.shared).await;
    }

    /// Probes every backend once now and marks each up or down (the health task
    /// does it periodically).
    pub async fn check_health(&self) {
        let backends: Vec<Arc<Backend>> =
            self.shared.table().vhosts().flat_map(|vhost| vhost.backends.iter().cloned()).collect();
        let settings = &self.shared.settings;
        for backend in backends {
            health::probe_and_mark(&self.shared.client, &backend, &settings.health_path, settings.health_timeout).await;
        }
    }
}

/// Serves `proxy` on an already bound listener until `shutdown` completes, then
/// drains (see the crate documentation). All connections share one connection pool.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_worker(listener, proxy, shutdown, 0).await
}

/// Runs the `proxy` binary: one worker thread per core, each with a single-threaded
/// runtime, its own listening socket on the same address (`SO_REUSEPORT`, so the
/// kernel spreads connections) and its own pool of backend connections, as nginx
/// runs one process per core with its own upstream pool. Requests then never cross
/// threads: no work stealing, no cross-thread wake-ups, no contended pool lock.
/// Routing, health and counters are shared. Reloads on SIGHUP; stops on
/// SIGINT/SIGTERM.
pub fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let workers = config.worker_count();
    let requested = config.listen()?;
    let first = bind_socket(requested, true)?;
    // With port 0 the first socket chose the port; the others join it.
    let addr = first.local_addr().context("failed to read the bound address")?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_socket(addr, true)?);
    }
    let vhosts: Vec<&str> = config.vhosts.iter().map(|vhost| vhost.name.as_str()).collect();
    tracing::info!(%addr, workers, ?vhosts, "listening");
    let proxy = Proxy::new(config)?;
    let stop = CancellationToken::new();
    let mut threads = Vec::with_capacity(workers);
    for (index, socket) in sockets.into_iter().enumerate() {
        let (proxy, stop, args) = (proxy.clone(), stop.clone(), args.clone());
        let thread = std::thread::Builder::new().name(format!("proxy-worker-{index}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start a worker runtime")?;
            runtime.block_on(async move {
                let listener = TcpListener::from_std(socket).context("failed to register the listener")?;
                if index == 0 {
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        kit::shutdown::signal().await;
                        stop.cancel();
                    });
                    tokio::spawn(reload_on_sighup(proxy.clone(), args));
                }
                serve_worker(listener, proxy, stop.cancelled_owned(), index).await
            })
        });
        threads.push(thread.context("failed to start a worker thread")?);
    }
    let mut outcome = Ok(());
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(cause = ?err, "a worker failed");
                stop.cancel();
                outcome = Err(err);
            }
            Err(_) => {
                stop.cancel();
                outcome = Err(anyhow::anyhow!("a worker thread panicked"));
            }
        }
    }
    outcome
}

/// One worker's accept loop. The first worker also runs the health and DNS tasks.
async fn serve_worker(
    listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
    index: usize,
) -> anyhow::Result<()> {
    let shared = proxy.shared;
    let background = TaskTracker::new();
    if index == 0 {
        refresh(&shared).await;
        background.spawn(health::run(shared.clone(), shared.shutdown.clone()));
        background.spawn(resolve::run(shared.clone(), shared.shutdown.clone()));
    }
    let settings = &shared.settings;
    let worker = Arc::new(Worker {
        index,
        pool: Pool::new(settings.pool_max_idle_per_backend, settings.upstream_idle_timeout),
        shutdown: shared.shutdown.child_token(),
        shared: shared.clone(),
    });
    background.spawn(sweep_idle_connections(worker.clone()));
    background.close();

    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, usually: give connections time to close.
                    tracing::error!(%err, "failed to accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small writes (SSE events, WebSocket frames) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        connections.spawn(server::serve_connection(stream, remote, worker.clone()));
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    shared.stopping.store(true, Ordering::Relaxed);
    shared.shutdown.cancel();
    connections.close();
    let drained = async {
        connections.wait().await;
        background.wait().await;
    };
    match tokio::time::timeout(kit::http::DRAIN_GRACE, drained).await {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!(
            grace_secs = kit::http::DRAIN_GRACE.as_secs(),
            "drain timed out; closing the remaining connections"
        ),
    }
    Ok(())
}

/// Closes a worker's idle backend connections once they pass the idle timeout, until
/// the worker stops.
async fn sweep_idle_connections(worker: Arc<Worker>) {
    let period = (worker.shared.settings.upstream_idle_timeout / 2).max(Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = worker.shutdown.cancelled() => return,
            _ = ticks.tick() => worker.pool.sweep(),
        }
    }
}

/// Binds the listening socket the way a proxy wants it: `SO_REUSEADDR` (a restart
/// does not wait for TIME_WAIT), a deep accept backlog. Needs a tokio runtime.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::from_std(bind_socket(addr, false)?).context("failed to register the listener")
}

/// A non-blocking listening socket; `reuse_port` lets several workers bind the same
/// address, each with its own accept queue.
fn bind_socket(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
        .context("failed to create the listening socket")?;
    socket.set_reuse_address(true).context("failed to set SO_REUSEADDR")?;
    if reuse_port {
        socket.set_reuse_port(true).context("failed to set SO_REUSEPORT")?;
    }
    socket.set_nonblocking(true).context("failed to make the socket non-blocking")?;
    socket.bind(&addr.into()).with_context(|| format!("failed to bind {addr}"))?;
    socket.listen(4096).with_context(|| format!("failed to listen on {addr}"))?;
    Ok(socket.into())
}

/// Reloads on every SIGHUP until the process ends.
pub async fn reload_on_sighup(proxy: Proxy, args: Args) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(err) => {
            tracing::error!(%err, "failed to listen for SIGHUP; reload is off");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!(signal = "SIGHUP", "reloading the configuration");
        let _ = proxy.reload_from(&args).await;
    }
}

/// Resolves the upstream names again and rebuilds the table if an answer changed.
pub(crate) async fn refresh(shared: &Shared) {
    let _rebuilding = shared.rebuild.lock().await;
    let vhosts = lock(&shared.vhosts).clone();
    let previous = lock(&shared.resolved).clone();
    let resolved = resolve::resolve_all(&vhosts, &previous).await;
    if resolved != previous {
        for (upstream, addresses) in &resolved {
            if previous.get(upstream) != Some(addresses) {
                tracing::info!(upstream = %upstream.host, port = upstream.port, ?addresses, "upstream resolved");
            }
        }
        shared.install(&vhosts, &resolved);
        *lock(&shared.resolved) = resolved;
    }
}

impl Shared {
    /// The first worker's table, for what is not a request: health, readiness, the
    /// API. Every worker's has the same vhosts and backends.
    pub(crate) fn table(&self) -> arc_swap::Guard<Arc<RoutingTable>> {
        self.tables[0].load()
    }

    /// Builds the workers' routing tables from vhost blocks and resolved names and
    /// puts them in force, reusing backends by address and carrying round-robin
    /// counters over.
    fn install(&self, vhosts: &[VhostConfig], resolved: &Resolved) {
        let mut registry = lock(&self.registry);
        let mut resolved_vhosts = Vec::with_capacity(vhosts.len());
        for config in vhosts {
            let mut addresses: Vec<SocketAddr> = Vec::new();
            for address in config.upstreams.iter().flat_map(|upstream| resolve::addresses(upstream, resolved)) {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            let backends = addresses
                .into_iter()
                .map(|address| match registry.get(&address).and_then(Weak::upgrade) {
                    Some(backend) => backend,
                    None => {
                        let stats = self.metrics.backend(address, self.workers);
                        let backend = Arc::new(Backend::with_stats(address, stats));
                        registry.insert(address, Arc::downgrade(&backend));
                        backend
                    }
                })
                .collect::<Vec<_>>();
            resolved_vhosts.push((config, backends));
        }
        let default = vhosts.iter().find(|config| config.default).map(|config| config.name.as_str());
        // One round-robin counter per vhost for every worker, kept across reloads.
        let old = self.tables[0].load();
        let counters: Vec<Arc<AtomicUsize>> = vhosts
            .iter()
            .map(|config| old.get(&config.name).map(|previous| previous.next.clone()).unwrap_or_default())
            .collect();
        for table in &self.tables {
            let built = resolved_vhosts
                .iter()
                .zip(&counters)
                .map(|((config, backends), next)| {
                    let (upstreams, backends) = (config.upstreams.clone(), backends.clone());
                    Arc::new(Vhost::with_counter(&config.name, config.policy, upstreams, backends, next.clone()))
                })
                .collect();
            table.store(Arc::new(RoutingTable::new(built, default)));
        }
        drop(resolved_vhosts);
        registry.retain(|_, backend| backend.strong_count() > 0);
    }
}

/// Locks a mutex that is only held for plain, non-panicking updates.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
