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
//! for at most [`kit::shutdown::DRAIN_GRACE`], and stops the background tasks. A `Proxy`
//! is served once. The `proxy` binary uses [`run`] instead: the same loop on one
//! single-threaded worker per core.
//!
//! # Layout
//!
//! The engine, in the order a request meets it (docs/proxy.md has the same map):
//!
//! - [`worker`]: a worker's accept loop and drain; spawns a task per connection.
//! - `http2`: a TLS connection whose client chose HTTP/2 by ALPN: the `h2` crate's
//!   connection and limits, and a task per stream, each served by the engine below
//!   as a connection of its own (`h2_stream`: one stream as HTTP/1.1 bytes).
//! - [`server`]: one client connection's request loop: a head is read, then
//!   [`server`] decides (route, policy, span, the head for the backend, or the
//!   proxy's own answer) and answers, refuses or forwards.
//! - [`downstream`]: the client session: the connection, its buffers, deadline and
//!   shutdown signal (private), and its read, write, refuse and close methods.
//! - [`forward`]: one request to a backend: retries, and what goes between the two
//!   sessions (the body up, the answer down, a tunnel after `101`).
//! - [`upstream`]: the backend session: one connection (new or pooled), the buffer its
//!   answer is read into and the deadline for it, and its own read and write methods.
//! - [`body`]: where a request or response body stands (framing only, no IO).
//! - [`h1`]: message heads (parsing, smuggling rules, rewriting), chunked framing, the
//!   per-worker pool of idle backend connections.
//!
//! Around it: [`shared`] (what every worker shares, and the rebuild of the routing
//! tables on reload and DNS changes), [`config`] and [`conf_parser`] (`proxy.conf`),
//! [`routing`] (Host → vhost), [`balance`] (backends and policies), [`health`] and
//! [`resolve`] (probes and look-ups), [`error`], [`trace_context`], `access_log`,
//! [`metrics`], and `admin` (the `metrics_listen` listener).
//! No module imports one that imports it back (`.ci/module_cycles.py`).

mod access_log;
mod admin;
pub mod balance;
pub mod body;
pub mod conf_parser;
pub mod config;
pub mod downstream;
pub mod error;
pub mod forward;
pub mod h1;
mod h2_stream;
pub mod health;
mod http2;
pub mod metrics;
pub mod resolve;
pub mod routing;
pub mod server;
pub mod shared;
mod stream;
mod sync;
pub mod tls;
pub mod trace_context;
pub mod upstream;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use kit::config::ConfigError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

// The public API named in the crate documentation: `proxy::Config`, `proxy::Args`.
pub use config::{Args, Config};

use crate::balance::Backend;
use crate::shared::Shared;
use crate::tls::{Certificates, Tls};
use crate::worker::TlsListener;

/// A running proxy's state. Cloning is a reference-count bump; clones share routing,
/// health and the connection pool, so a clone kept aside can [`Proxy::reload`].
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    /// Present when a certificate is configured: HTTPS is served.
    tls: Option<Tls>,
}

impl Proxy {
    /// Builds the proxy's state: the client and the routing table (upstreams given
    /// as IPs are ready now; names are resolved when [`serve`] starts). Spawns nothing.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg).context("invalid proxy configuration")?;
        if config.tls.self_signed {
            tls::make_self_signed(&config).context("cannot make the development certificate")?;
        }
        let certificates =
            Certificates::load(&config).map_err(anyhow::Error::msg).context("invalid TLS configuration")?;
        let tls = certificates.map(|certificates| Tls::new(certificates, config.http2.enabled)).transpose()?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind_metrics(addr)?),
            None => None,
        };
        let shared = Shared::new(config);
        *sync::lock(&shared.metrics_listener) = metrics_listener;
        Ok(Self { shared: Arc::new(shared), tls })
    }

    /// Whether HTTPS is served (some certificate is configured).
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address of the `metrics_listen` listener, until the proxy is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        sync::lock(&self.shared.metrics_listener).as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Replaces the vhosts with those of `config` (resolving their names first).
    /// In-flight requests finish on the backends they have; an invalid config is
    /// refused and the current one keeps serving. Listener, timeouts and limits are
    /// read once, at start.
    pub async fn reload(&self, config: &Config) -> anyhow::Result<()> {
        config.validate().map_err(anyhow::Error::msg).context("invalid proxy configuration")?;
        let certificates =
            Certificates::load(config).map_err(anyhow::Error::msg).context("invalid TLS configuration")?;
        match (&self.tls, certificates) {
            (Some(tls), Some(certificates)) => tls.replace(certificates),
            (Some(_), None) => {
                anyhow::bail!("the new configuration has no certificate: HTTPS stops only with a restart")
            }
            (None, Some(_)) => tracing::warn!("certificates configured: HTTPS starts with the next restart"),
            (None, None) => {}
        }
        self.shared.reload(config).await;
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
        self.shared.refresh().await;
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
    worker::serve(listener, None, proxy.shared, shutdown, 0).await
}

/// [`serve`], and HTTPS on `tls_listener` with the proxy's certificates (an error
/// when it has none).
pub async fn serve_with_tls(
    listener: TcpListener,
    tls_listener: TcpListener,
    proxy: Proxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = proxy.tls.context("HTTPS needs a certificate: none is configured")?;
    let tls = TlsListener { listener: tls_listener, tls };
    worker::serve(listener, Some(tls), proxy.shared, shutdown, 0).await
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
    let first = worker::bind_socket(requested, true)?;
    // With port 0 the first socket chose the port; the others join it.
    let addr = first.local_addr().context("failed to read the bound address")?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(worker::bind_socket(addr, true)?);
    }
    let vhosts: Vec<String> = config.vhosts.iter().map(|vhost| vhost.name.clone()).collect();
    let tls_addr = config.listen_tls()?;
    let proxy = Proxy::new(config)?;
    let mut tls_sockets = Vec::new();
    if proxy.tls.is_some() {
        let first = worker::bind_socket(tls_addr, true)?;
        let tls_addr = first.local_addr().context("failed to read the bound address")?;
        tls_sockets.push(first);
        for _ in 1..workers {
            tls_sockets.push(worker::bind_socket(tls_addr, true)?);
        }
        tracing::info!(%addr, %tls_addr, workers, ?vhosts, "listening, HTTPS too");
    } else {
        tracing::info!(%addr, workers, ?vhosts, "listening");
    }
    let mut tls_sockets = tls_sockets.into_iter();
    let stop = CancellationToken::new();
    let mut threads = Vec::with_capacity(workers);
    for (index, socket) in sockets.into_iter().enumerate() {
        let (proxy, stop, args) = (proxy.clone(), stop.clone(), args.clone());
        let tls_socket = tls_sockets.next();
        let thread = std::thread::Builder::new().name(format!("proxy-worker-{index}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start a worker runtime")?;
            runtime.block_on(async move {
                let listener = TcpListener::from_std(socket).context("failed to register the listener")?;
                let tls = match (tls_socket, proxy.tls.clone()) {
                    (Some(socket), Some(tls)) => {
                        let listener = TcpListener::from_std(socket).context("failed to register the listener")?;
                        Some(TlsListener { listener, tls })
                    }
                    _ => None,
                };
                if index == 0 {
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        kit::shutdown::signal().await;
                        stop.cancel();
                    });
                    tokio::spawn(reload_on_sighup(proxy.clone(), args));
                }
                worker::serve(listener, tls, proxy.shared, stop.cancelled_owned(), index).await
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

/// Binds the listening socket the way a proxy wants it: `SO_REUSEADDR` (a restart
/// does not wait for TIME_WAIT), a deep accept backlog. Needs a tokio runtime.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::from_std(worker::bind_socket(addr, false)?).context("failed to register the listener")
}

/// Binds the `metrics_listen` socket (non-blocking, for tokio).
fn bind_metrics(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("failed to bind the metrics listener {addr}"))?;
    listener.set_nonblocking(true).context("failed to set the metrics listener non-blocking")?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "metrics listening");
    Ok(listener)
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
