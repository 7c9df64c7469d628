//! One client connection: read a request head, answer it or forward it
//! ([`crate::forward`]), and keep the connection for the next one.
//!
//! The head is parsed where it lies in the connection's buffer, and everything that
//! needs it (routing, the policy's pick, the span, the head rewritten for the
//! backend) is done in one pass before any IO, so a request costs one parse and no
//! allocation in the common case.
//!
//! The proxy's own `/healthz`, `/readyz` and `/metrics` answer only for a Host that no
//! block names, before the default vhost: `curl http://proxy:8080/healthz` from inside
//! a compose network reaches them, while `localhost:8080/healthz` is a peer's.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use wire::api::{Done, ErrorBody};
use wire::headers::PROXY_ERROR;

use crate::Shared;
use crate::balance::{Pick, STICKY_COOKIE, Vhost};
use crate::config::Policy;
use crate::error::ProxyError;
use crate::h1::head::{self, Framing, HostField, Invalid, RequestHead};
use crate::h1::pool::Pool;
use crate::routing::{self, Route};
use crate::trace_context;

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

/// Whether a connection carries another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
}

/// A client connection and the buffers its requests reuse.
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    /// Bytes read from the client; those before `pos` are used.
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    /// The request for the backend: its head, and the body bytes that came with it.
    /// Kept until an answer comes, so a retry can send it again.
    pub(crate) upstream_head: Vec<u8>,
    /// What goes to the client next.
    pub(crate) out: Vec<u8>,
    /// Bytes read from the backend.
    pub(crate) upstream_buf: Vec<u8>,
    /// The client's address, for `X-Forwarded-For`.
    client_ip: String,
    /// The Host lowercased, when it has capitals.
    host: String,
    /// The deadline for a request head (and between reads of a request body).
    pub(crate) client_timer: Pin<Box<Sleep>>,
    /// The deadline for a backend's response head.
    pub(crate) upstream_timer: Pin<Box<Sleep>>,
    pub(crate) shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shared: Arc<Shared>,
    /// The request being answered is a HEAD: the proxy's own answers have no body.
    head_request: bool,
    /// The client may still be sending a body nobody reads: close gently.
    pub(crate) linger: bool,
}

/// A request ready to forward: where to, and what about it matters once its head is
/// gone from the buffer. The head for the backend is in [`Connection::out`].
pub(crate) struct Forwarding {
    pub(crate) vhost: Arc<Vhost>,
    pub(crate) pick: Pick,
    pub(crate) request: RequestInfo,
    pub(crate) span: tracing::Span,
}

/// What the forwarding needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo {
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) http10: bool,
    pub(crate) head: bool,
    pub(crate) idempotent: bool,
    pub(crate) upgrade: bool,
    pub(crate) expect_continue: bool,
    /// Goes to the backend on a connection of its own, never pooled: a WebSocket
    /// handshake, or an event stream of a configured path.
    pub(crate) own_connection: bool,
}

/// What the head of a request leads to.
enum Prepared {
    Forward(Forwarding),
    /// The proxy answers itself; the reply is in `out`.
    Answered {
        keep_alive: bool,
    },
}

/// A request refused before forwarding.
struct Refused {
    error: ProxyError,
    /// Keep the connection: the request had no body left unread and asked for it.
    keep_alive: bool,
}

/// The size of a connection's buffers at first; they grow as messages need.
const BUFFER: usize = 4096;
/// What an event stream keeps to read events into.
const EVENT_BUFFER: usize = 2048;

/// Serves one client connection until it closes, times out, or the proxy shuts down.
pub(crate) async fn serve_connection(stream: TcpStream, remote: SocketAddr, worker: Arc<Worker>) {
    let mut connection = Connection::new(stream, remote, &worker);
    while connection.serve_one(&worker).await == Next::KeepAlive {}
    if connection.linger {
        connection.close_gently().await;
    }
}

impl Connection {
    fn new(stream: TcpStream, remote: SocketAddr, worker: &Worker) -> Self {
        let far = Instant::now() + worker.shared.settings.header_read_timeout;
        Self {
            stream,
            buf: Vec::with_capacity(BUFFER),
            pos: 0,
            upstream_head: Vec::with_capacity(BUFFER),
            out: Vec::with_capacity(BUFFER),
            upstream_buf: Vec::with_capacity(BUFFER),
            client_ip: remote.ip().to_string(),
            host: String::new(),
            client_timer: Box::pin(tokio::time::sleep_until(far)),
            upstream_timer: Box::pin(tokio::time::sleep_until(far)),
            shutdown: Box::pin(worker.shutdown.clone().cancelled_owned()),
            shared: worker.shared.clone(),
            head_request: false,
            linger: false,
        }
    }

    /// Reads one request head and answers the request.
    async fn serve_one(&mut self, worker: &Worker) -> Next {
        let settings = &worker.shared.settings;
        let deadline = Instant::now() + settings.header_read_timeout;
        self.client_timer.as_mut().reset(deadline);
        self.head_request = false;
        let prepared = loop {
            let parsed = {
                let mut headers = head::header_slots();
                match head::parse_request(&self.buf[self.pos..], &mut headers) {
                    Ok(Some(request)) => {
                        self.head_request = request.is_head();
                        let closing = self.shutdown_started();
                        let buffers = Buffers { upstream_head: &mut self.upstream_head, out: &mut self.out };
                        let prepared = prepare(worker, &request, buffers, &mut self.host, &self.client_ip, closing);
                        Some((prepared, request.len))
                    }
                    Ok(None) => None,
                    Err(invalid) => {
                        let error = match invalid {
                            Invalid::TooManyHeaders => ProxyError::HeadTooLarge,
                            Invalid::Malformed(why) => ProxyError::BadRequest(why),
                        };
                        Some((Err(Refused { error, keep_alive: false }), 0))
                    }
                }
            };
            if let Some((prepared, head_len)) = parsed {
                self.pos += head_len;
                break prepared;
            }
            let waiting = self.buf.len() - self.pos;
            if waiting >= settings.max_header_bytes {
                return self.refuse(worker, ProxyError::HeadTooLarge, false).await;
            }
            if !self.read_client(waiting == 0).await {
                return Next::Close;
            }
        };
        match prepared {
            Ok(Prepared::Forward(forwarding)) => {
                let span = forwarding.span.clone();
                tracing::Instrument::instrument(crate::forward::forward(self, worker, forwarding), span).await
            }
            Ok(Prepared::Answered { keep_alive }) => {
                if !self.write_to_client(settings.idle_timeout).await {
                    return Next::Close;
                }
                self.next(keep_alive)
            }
            Err(Refused { error, keep_alive }) => self.refuse(worker, error, keep_alive).await,
        }
    }

    /// Reads more of a request head from the client, within the head deadline; false
    /// when the client is gone, too slow, or (between requests) the proxy stops.
    async fn read_client(&mut self, idle: bool) -> bool {
        self.make_room();
        let read = if idle {
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.buf) => read,
                () = self.client_timer.as_mut() => return false,
                () = self.shutdown.as_mut() => return false,
            }
        } else {
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.buf) => read,
                () = self.client_timer.as_mut() => return false,
            }
        };
        matches!(read, Ok(read) if read > 0)
    }

    /// Makes room at the end of the client buffer, dropping the used bytes.
    pub(crate) fn make_room(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.buf.capacity() - self.buf.len() < BUFFER / 4 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < BUFFER / 4 {
            self.buf.reserve(BUFFER);
        }
    }

    /// Whether the connection goes on after an exchange: not when the client or the
    /// exchange said so, nor once the proxy is stopping.
    pub(crate) fn next(&mut self, keep_alive: bool) -> Next {
        if !keep_alive || self.shutdown_started() {
            return Next::Close;
        }
        // A buffer grown for one large message is not kept for the connection's life.
        for buffer in [&mut self.out, &mut self.upstream_buf] {
            if buffer.capacity() > 16 * BUFFER {
                *buffer = Vec::with_capacity(BUFFER);
            }
        }
        Next::KeepAlive
    }

    /// Gives back the buffers an idle event stream does not need: the request it
    /// answers (no retry comes after an answer), the client buffer when it holds
    /// nothing, what went out. They grow again if the connection carries another
    /// request.
    pub(crate) fn keep_small(&mut self) {
        self.upstream_head = Vec::new();
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
        self.out = Vec::new();
        self.upstream_buf.shrink_to(EVENT_BUFFER);
    }

    pub(crate) fn shutdown_started(&self) -> bool {
        self.shared.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Answers with an error the proxy made, and says whether the connection goes on.
    pub(crate) async fn refuse(&mut self, worker: &Worker, error: ProxyError, keep_alive: bool) -> Next {
        worker.shared.metrics.error(error.reason());
        error.log();
        if kit::telemetry::exporting() {
            let span = tracing::Span::current();
            span.record("http.response.status_code", error.status().as_u16());
            if error.status().is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        let close = !keep_alive || self.shutdown_started();
        self.out.clear();
        let body = serde_json::to_vec(&ErrorBody::new(error.to_string())).unwrap_or_default();
        let headers = [("content-type", "application/json"), (PROXY_ERROR, error.reason())];
        head::write_response(&mut self.out, error.status().as_u16(), &headers, &body, !self.head_request, close);
        if close {
            // The client may still be sending (a body, pipelined requests).
            self.linger = true;
        }
        if !self.write_to_client(worker.shared.settings.idle_timeout).await {
            return Next::Close;
        }
        self.next(!close)
    }

    /// Closes a connection whose client may still be sending (a body the proxy did
    /// not read): stop writing, then read and drop what comes for a short while, so
    /// the kernel does not answer the client's bytes with a reset that could destroy
    /// the answer before the client reads it (nginx's lingering close).
    async fn close_gently(&mut self) {
        const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
        const MAX_DRAIN: usize = 1 << 20;
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let mut drained = 0;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while drained < MAX_DRAIN {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => drained += read,
                }
            }
        })
        .await;
    }
}

/// Where [`prepare`] writes: the backend's head, or the proxy's own answer.
struct Buffers<'a> {
    upstream_head: &'a mut Vec<u8>,
    out: &'a mut Vec<u8>,
}

/// Everything a request head decides: the vhost and backend, the span, and the head
/// the backend will get (into `upstream_head`). No IO.
fn prepare(
    worker: &Worker,
    request: &RequestHead<'_>,
    buffers: Buffers<'_>,
    lowercase: &mut String,
    client_ip: &str,
    closing: bool,
) -> Result<Prepared, Refused> {
    let shared = &worker.shared;
    let settings = &shared.settings;
    // A refused request whose body was not read cannot be followed by another.
    let keep_alive = request.keep_alive && request.framing == Framing::Empty;
    let refuse = |error| Refused { error, keep_alive };

    let raw_host = match request.host {
        HostField::One(host) => host,
        HostField::Missing => return Err(refuse(ProxyError::NoHost)),
        HostField::Several => return Err(refuse(ProxyError::BadHost("more than one Host header"))),
        HostField::Unreadable => return Err(refuse(ProxyError::BadHost("the Host header is not visible ASCII"))),
    };
    let host = routing::normalize_host(raw_host, lowercase).map_err(refuse)?;
    let vhost = {
        let table = shared.tables[worker.index].load();
        match table.route(host) {
            Route::Vhost(vhost) => vhost.clone(),
            Route::Unmatched(default) => {
                let keep_alive = keep_alive && !closing;
                if own_endpoint(request, shared, buffers.out, keep_alive) {
                    return Ok(Prepared::Answered { keep_alive });
                }
                default.ok_or_else(|| refuse(ProxyError::UnknownVhost))?.clone()
            }
        }
    };
    if let Framing::Length(length) = request.framing
        && length > settings.max_body_bytes
    {
        return Err(refuse(ProxyError::BodyTooLarge(settings.max_body_bytes)));
    }
    let sticky_id = match vhost.policy {
        Policy::Sticky => request.cookie(STICKY_COOKIE),
        _ => None,
    };
    let pick = vhost.pick(sticky_id).ok_or_else(|| refuse(ProxyError::NoBackend))?;
    let event_stream = request.method == "GET"
        && request.accepts_event_stream
        && settings.stream_paths.iter().any(|path| request.path().split('?').next() == Some(path.as_str()));

    let (span, trace) = trace_context::request_span(request, raw_host);
    let rewrite = head::Upstream {
        client_ip,
        trace: trace.as_ref().map(|(parent, state)| (parent.as_str(), state.as_deref())),
        // The backend closes a stream's connection when the stream ends (so its side
        // keeps the TIME_WAIT, not the proxy's ports).
        close: event_stream,
    };
    buffers.upstream_head.clear();
    request.write_upstream(&rewrite, buffers.upstream_head);
    let info = RequestInfo {
        framing: request.framing,
        keep_alive: request.keep_alive,
        http10: request.http10,
        head: request.is_head(),
        idempotent: request.is_idempotent(),
        upgrade: request.upgrade.is_some(),
        expect_continue: request.expect_continue,
        own_connection: event_stream || request.upgrade.is_some(),
    };
    Ok(Prepared::Forward(Forwarding { vhost, pick, request: info, span }))
}

/// The proxy's own endpoints; writes the reply into `out` (saying `Connection: close`
/// unless `keep_alive`), or returns false when the path is not one of them.
fn own_endpoint(request: &RequestHead<'_>, shared: &Shared, out: &mut Vec<u8>, keep_alive: bool) -> bool {
    use http::StatusCode;
    if request.method != "GET" && request.method != "HEAD" {
        return false;
    }
    let json = ("content-type", "application/json");
    let (code, content_type, body) = match request.path().split('?').next().unwrap_or_default() {
        "/healthz" => (StatusCode::OK, json, serde_json::to_vec(&Done::success()).unwrap_or_default()),
        "/metrics" => (
            StatusCode::OK,
            ("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            shared.metrics.registry.render().into_bytes(),
        ),
        "/readyz" => {
            let table = shared.table();
            match table.vhosts().find(|vhost| !vhost.any_up()) {
                None => (StatusCode::OK, json, serde_json::to_vec(&Done::success()).unwrap_or_default()),
                Some(vhost) => {
                    let message = format!("no backend of host \"{}\" is up", vhost.name);
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json,
                        serde_json::to_vec(&ErrorBody::new(message)).unwrap_or_default(),
                    )
                }
            }
        }
        _ => return false,
    };
    out.clear();
    head::write_response(out, code.as_u16(), &[content_type], &body, !request.is_head(), !keep_alive);
    true
}
