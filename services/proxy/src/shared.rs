//! What every worker shares (`Shared`): the routing tables, the settings read while
//! serving, the health client and the metrics, and how the tables are rebuilt on a
//! reload or a DNS change; and what one worker's connections share (`Worker`).
//!
//! The periodic tasks that keep the tables current (health probes, DNS re-resolution)
//! are here too: they act on the shared state, while [`crate::health`] and
//! [`crate::resolve`] only probe and look up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::balance::{Backend, Vhost};
use crate::config::Config;
use crate::config::vhost::VhostConfig;
use crate::h1::pool::Pool;
use crate::health::{self, HealthClient};
use crate::metrics::ProxyMetrics;
use crate::resolve::{self, Resolved};
use crate::routing::RoutingTable;
use crate::sync::lock;

/// The state of a running proxy, shared by all its workers.
pub(crate) struct Shared {
    /// What requests read: one table per worker, so the vhosts a worker's requests
    /// touch (their reference counts) stay in that worker's cache. Swapped whole on
    /// reload and DNS changes; the backends in them, and each vhost's round-robin
    /// counter, are shared by all workers.
    pub(crate) tables: Box<[ArcSwap<RoutingTable>]>,
    /// Worker threads of the `proxy` binary (one for [`crate::serve`]).
    pub(crate) workers: usize,
    /// The client of the health probes.
    pub(crate) client: HealthClient,
    pub(crate) settings: Settings,
    /// Set when `serve` begins to shut down: replies then close their connections.
    pub(crate) stopping: AtomicBool,
    /// Cancelled when `serve` begins to shut down.
    pub(crate) shutdown: CancellationToken,
    /// The vhost blocks in force, for re-resolution.
    vhosts: Mutex<Arc<Vec<VhostConfig>>>,
    resolved: Mutex<Resolved>,
    /// Every live backend by address, so health and load survive rebuilds.
    registry: Mutex<HashMap<SocketAddr, Weak<Backend>>>,
    /// One rebuild (reload or re-resolution) at a time.
    rebuild: tokio::sync::Mutex<()>,
    pub(crate) metrics: ProxyMetrics,
    /// The `metrics_listen` socket, bound by [`crate::Proxy::new`] and taken by the
    /// first worker, which serves it ([`crate::admin`]).
    pub(crate) metrics_listener: Mutex<Option<std::net::TcpListener>>,
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
    pub(crate) tls_handshake_timeout: Duration,
    /// The plain and the HTTPS port as configured: a Host naming the HTTPS port is
    /// routed as if it named the plain one, so `localhost:8080` blocks serve
    /// `https://localhost:8443` too.
    pub(crate) plain_port: u16,
    pub(crate) tls_port: u16,
    /// HTTP/2: streams open at once per connection, and client resets tolerated.
    pub(crate) h2_max_streams: u32,
    pub(crate) h2_max_resets: u32,
}

/// What one worker's connections share: the proxy's state and the worker's own
/// pool and shutdown token, which no other worker touches.
pub(crate) struct Worker {
    /// Which worker: its routing table and metric shard.
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) pool: Pool,
    /// Cancelled when the proxy shuts down (a child of the proxy's token).
    pub(crate) shutdown: CancellationToken,
}

impl Settings {
    fn new(config: &Config) -> Self {
        Self {
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
            tls_handshake_timeout: Config::timeout(config.tls.handshake_timeout_ms),
            plain_port: config.server_port,
            tls_port: config.tls.port,
            h2_max_streams: config.http2.max_concurrent_streams,
            h2_max_resets: config.http2.max_client_resets,
        }
    }
}

impl Worker {
    /// The state of worker `index`, with its own empty pool.
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Self {
        let settings = &shared.settings;
        Self {
            index,
            pool: Pool::new(settings.pool_max_idle_per_backend, settings.upstream_idle_timeout),
            shutdown: shared.shutdown.child_token(),
            shared,
        }
    }
}

impl Shared {
    /// The state for a validated `config`, its tables built (upstreams given as IPs
    /// are ready now; names are resolved by [`Shared::refresh`]). Spawns nothing.
    pub(crate) fn new(config: Config) -> Self {
        let workers = config.worker_count();
        let shared = Self {
            tables: (0..workers).map(|_| ArcSwap::from_pointee(RoutingTable::default())).collect(),
            workers,
            client: health::client(&config),
            settings: Settings::new(&config),
            stopping: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            vhosts: Mutex::new(Arc::new(config.vhosts)),
            resolved: Mutex::new(Resolved::new()),
            registry: Mutex::new(HashMap::new()),
            rebuild: tokio::sync::Mutex::new(()),
            metrics: ProxyMetrics::new(),
            metrics_listener: Mutex::new(None),
        };
        let vhosts = lock(&shared.vhosts).clone();
        shared.install(&vhosts, &Resolved::new());
        shared
    }

    /// The first worker's table, for what is not a request: health, readiness, the
    /// API. Every worker's has the same vhosts and backends.
    pub(crate) fn table(&self) -> arc_swap::Guard<Arc<RoutingTable>> {
        self.tables[0].load()
    }

    /// Puts the vhosts of a validated `config` in force, resolving their names first.
    pub(crate) async fn reload(&self, config: &Config) {
        let _rebuilding = self.rebuild.lock().await;
        let previous = lock(&self.resolved).clone();
        let resolved = resolve::resolve_all(&config.vhosts, &previous).await;
        let vhosts = Arc::new(config.vhosts.clone());
        self.install(&vhosts, &resolved);
        *lock(&self.resolved) = resolved;
        *lock(&self.vhosts) = vhosts;
    }

    /// Resolves the upstream names again and rebuilds the tables if an answer changed.
    pub(crate) async fn refresh(&self) {
        let _rebuilding = self.rebuild.lock().await;
        let vhosts = lock(&self.vhosts).clone();
        let previous = lock(&self.resolved).clone();
        let resolved = resolve::resolve_all(&vhosts, &previous).await;
        if resolved != previous {
            for (upstream, addresses) in &resolved {
                if previous.get(upstream) != Some(addresses) {
                    tracing::info!(upstream = %upstream.host, port = upstream.port, ?addresses, "upstream resolved");
                }
            }
            self.install(&vhosts, &resolved);
            *lock(&self.resolved) = resolved;
        }
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
                    Some(backend) => {
                        self.metrics.adopt(address, &backend.stats);
                        backend
                    }
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
                    let stats = self.metrics.vhost(&config.name, self.workers);
                    let vhost = Vhost::with_counter(&config.name, config.policy, upstreams, backends, next.clone());
                    Arc::new(vhost.with_paths(config.paths.clone()).with_https(&config.https).with_stats(stats))
                })
                .collect();
            table.store(Arc::new(RoutingTable::new(built, default)));
        }
        let addresses: Vec<SocketAddr> =
            resolved_vhosts.iter().flat_map(|(_, backends)| backends.iter().map(|backend| backend.addr)).collect();
        let names: Vec<&str> = vhosts.iter().map(|config| config.name.as_str()).collect();
        self.metrics.retain(&addresses, &names);
        drop(resolved_vhosts);
        registry.retain(|_, backend| backend.strong_count() > 0);
    }

    /// Probes every backend each health interval until `shutdown`.
    pub(crate) async fn probe_periodically(self: Arc<Self>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.settings.health_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            let mut probes = JoinSet::new();
            for backend in health::distinct_backends(&self.table()) {
                let client = self.client.clone();
                let path = self.settings.health_path.clone();
                let timeout = self.settings.health_timeout;
                probes.spawn(async move { health::probe_and_mark(&client, &backend, &path, timeout).await });
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = async { while probes.join_next().await.is_some() {} } => {}
            }
        }
    }

    /// Resolves the upstream names again each resolve interval until `shutdown`.
    pub(crate) async fn resolve_periodically(self: Arc<Self>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.settings.resolve_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate, and `serve` has just resolved.
        interval.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => self.refresh().await,
            }
        }
    }
}
