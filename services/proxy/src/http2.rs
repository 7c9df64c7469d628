//! HTTP/2 to clients: a TLS connection whose client chose `h2` by ALPN.
//!
//! The `h2` crate (hyper's HTTP/2 codec) reads and writes the frames, keeps the
//! flow-control windows and HPACK tables, and applies the limits: the streams open at
//! once (`http2.max_concurrent_streams`), the size of a header list
//! (`limits.max_header_bytes`), streams the client resets before they are taken
//! (`max_pending_accept_reset_streams`) and protocol errors it provokes
//! (`max_local_error_reset_streams`); past those it ends the connection with GOAWAY
//! `ENHANCE_YOUR_CALM`. Each stream is then served by the HTTP/1.1 engine, unchanged,
//! as a connection of its own ([`crate::h2_stream`] says how), on a task of this
//! worker: backends see HTTP/1.1 over the worker's pool, and metrics, access log and
//! rules are those of every other request.
//!
//! Against the rapid-reset flood (CVE-2023-44487), where a client opens streams and
//! cancels them at once so that the server works for streams no one waits for: the
//! streams of a connection still being served are bounded (a stream past the bound is
//! refused with `REFUSED_STREAM` and counts as a reset), and a client that cancels
//! more than `http2.max_client_resets` streams beyond those it let finish is sent
//! GOAWAY `ENHANCE_YOUR_CALM`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use h2::Reason;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use crate::h2_stream::{H2Stream, StreamCounts};
use crate::server;
use crate::shared::Worker;
use crate::stream::ClientStream;

/// The flow-control window of the whole connection (each stream's is the protocol's
/// 64 KiB): room for many uploads at once.
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Streams reset before they are taken, then GOAWAY (h2's default too).
const PENDING_RESETS: usize = 20;
/// Streams reset for the client's protocol errors, then GOAWAY.
const ERROR_RESETS: usize = 64;

/// Serves one HTTP/2 connection until the client closes it, it idles past the
/// header-read timeout, it breaks the limits, or the proxy shuts down (GOAWAY, then
/// the streams in progress finish).
pub(crate) async fn serve_connection(io: Box<TlsStream<TcpStream>>, remote: SocketAddr, worker: Arc<Worker>) {
    let settings = &worker.shared.settings;
    let max_streams = settings.h2_max_streams.max(1);
    let max_resets = settings.h2_max_resets;
    let idle_timeout = settings.header_read_timeout;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(max_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(PENDING_RESETS)
        .max_local_error_reset_streams(Some(ERROR_RESETS));
    let mut connection = match tokio::time::timeout(idle_timeout, builder.handshake::<_, Bytes>(io)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => {
            tracing::debug!(%err, %remote, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "HTTP/2 preface timed out");
            return;
        }
    };
    let counts = Arc::new(StreamCounts::default());
    let mut streams = JoinSet::new();
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let shutdown = worker.shutdown.clone();
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, mut respond))) => {
                    // Streams the client reset while they were served free their
                    // slots in h2's count, not here.
                    if streams.len() >= max_streams as usize * 2 {
                        respond.send_reset(Reason::REFUSED_STREAM);
                        counts.client_resets.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let stream = H2Stream::new(request, respond, counts.clone());
                        let worker = worker.clone();
                        // Boxed: the task then holds a pointer, not the engine's whole
                        // state, which tokio would copy when the task is spawned and
                        // again when its output is taken (measured: 10 % of the CPU).
                        streams.spawn(Box::pin(async move {
                            server::serve_connection(ClientStream::H2(Box::new(stream)), remote, worker).await;
                        }));
                    }
                    let resets = counts.client_resets.load(Ordering::Relaxed);
                    if resets > max_resets && resets > counts.answered.load(Ordering::Relaxed) && !closing {
                        tracing::warn!(%remote, resets, "HTTP/2 client cancels too many streams: GOAWAY");
                        connection.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                        closing = true;
                    }
                }
                Some(Err(err)) => {
                    if err.reason() == Some(Reason::ENHANCE_YOUR_CALM) {
                        tracing::warn!(%remote, %err, "HTTP/2 connection ended: too many resets or errors");
                    } else {
                        tracing::debug!(%remote, %err, "HTTP/2 connection failed");
                    }
                    break;
                }
                None => break,
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {
                if streams.is_empty() {
                    idle.as_mut().reset(Instant::now() + idle_timeout);
                }
            }
            () = &mut idle, if streams.is_empty() && !closing => {
                connection.graceful_shutdown();
                closing = true;
            }
            () = shutdown.cancelled(), if !closing => {
                connection.graceful_shutdown();
                closing = true;
            }
        }
    }
    // The connection is gone: streams still served have no one to answer.
    streams.shutdown().await;
}
