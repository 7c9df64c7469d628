//! One worker: its accept loop, its connections, its idle-pool sweeper, and how it
//! drains when the proxy stops. [`crate::serve`] runs one; the `proxy` binary
//! ([`crate::run`]) one per core, each on a thread and a listening socket of its own.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::http2;
use crate::server;
use crate::shared::{Shared, Worker};
use crate::stream::ClientStream;
use crate::tls::Tls;

/// A worker's HTTPS listener and the TLS configuration its handshakes use.
pub(crate) struct TlsListener {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Tls,
}

/// One worker's accept loop. The first worker also resolves the upstream names and
/// runs the health and DNS tasks.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsListener>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    index: usize,
) -> anyhow::Result<()> {
    let background = TaskTracker::new();
    if index == 0 {
        shared.refresh().await;
        background.spawn(shared.clone().probe_periodically(shared.shutdown.clone()));
        background.spawn(shared.clone().resolve_periodically(shared.shutdown.clone()));
        if let Some(metrics_listener) = crate::sync::lock(&shared.metrics_listener).take() {
            let metrics_listener =
                TcpListener::from_std(metrics_listener).context("failed to register the metrics listener")?;
            background.spawn(admin::serve(metrics_listener, shared.clone(), shared.shutdown.clone()));
        }
    }
    let worker = Arc::new(Worker::new(shared.clone(), index));
    background.spawn(sweep_idle_connections(worker.clone()));
    background.close();

    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    let handshake_timeout = shared.settings.tls_handshake_timeout;
    loop {
        let (accepted, secure) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => (accepted, false),
            accepted = accept(tls.as_ref()), if tls.is_some() => (accepted, true),
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, usually: give connections time to close.
                tracing::error!(%err, "failed to accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small writes (SSE events, WebSocket frames) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let worker = worker.clone();
        match (&tls, secure) {
            (Some(tls), true) => {
                let handshake = tls.tls.acceptor.accept(stream);
                connections.spawn(async move {
                    match tokio::time::timeout(handshake_timeout, handshake).await {
                        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                            http2::serve_connection(Box::new(stream), remote, worker).await;
                        }
                        Ok(Ok(stream)) => {
                            server::serve_connection(ClientStream::Tls(Box::new(stream)), remote, worker).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%err, %remote, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
            _ => {
                connections.spawn(server::serve_connection(ClientStream::Plain(stream), remote, worker));
            }
        }
    }
    drop(listener);
    drop(tls);
    tracing::info!("shutting down: draining connections");
    shared.stopping.store(true, Ordering::Relaxed);
    shared.shutdown.cancel();
    connections.close();
    let drained = async {
        connections.wait().await;
        background.wait().await;
    };
    match tokio::time::timeout(kit::shutdown::DRAIN_GRACE, drained).await {
        Ok(()) => tracing::info!("drained"),
        Err(_) => tracing::warn!(
            grace_secs = kit::shutdown::DRAIN_GRACE.as_secs(),
            "drain timed out; closing the remaining connections"
        ),
    }
    Ok(())
}

async fn accept(tls: Option<&TlsListener>) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match tls {
        Some(tls) => tls.listener.accept().await,
        None => std::future::pending().await,
    }
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

/// A non-blocking listening socket the way a proxy wants it: `SO_REUSEADDR` (a
/// restart does not wait for TIME_WAIT), a deep accept backlog; `reuse_port` lets
/// several workers bind the same address, each with its own accept queue.
pub(crate) fn bind_socket(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<std::net::TcpListener> {
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
