//! Forwarding one request to a backend and relaying its answer.
//!
//! The request head (rewritten by [`crate::server`] into
//! [`Connection::upstream_head`]) and the body bytes that came with it go to the
//! backend in one write; the rest of the body follows as it arrives. The response head
//! is rewritten, and goes to the client in one write with the body bytes that came
//! with it; the rest of the body follows as it arrives, so an event stream reaches the
//! browser event by event. A `101 Switching Protocols` turns the two connections into
//! a tunnel (WebSocket).
//!
//! Retries: the policy's pick is tried first, then the vhost's other backends
//! ([`Vhost::attempts`]).
//! - When connecting fails (refused, timed out), nothing was sent: the request goes
//!   to the next backend, body and all, and the backend is marked down (unless the
//!   failure was the proxy's own: no local port left).
//! - When a pooled connection turns out to have been closed by the backend (writing
//!   to it fails; or, for an idempotent request, it ends without a byte of answer),
//!   the request goes again on a new connection to the same backend, if all of it is
//!   still at hand.
//! - When a backend fails before answering, an idempotent request whose body is at
//!   hand goes to the next backend. Nothing else is retried, because the backend may
//!   already have acted on it: the client gets a 502.
//!
//! Once the first byte of a final answer has gone to the client, a failure can only
//! close the connection: the client sees the message cut short.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::balance::{Backend, InFlight, Pick, Vhost};
use crate::config::Policy;
use crate::error::ProxyError;
use crate::h1::chunked::Chunked;
use crate::h1::head::{self, Downstream, Framing, ResponseHead};
use crate::server::{Connection, Forwarding, Next, RequestInfo, Worker};

/// The largest response head a backend may send.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// How much of a streamed body is read at a time.
const RELAY_CHUNK: usize = 16 * 1024;
/// The same for an event stream, which idles between small events for hours.
const EVENT_CHUNK: usize = 2 * 1024;

/// Forwards a prepared request and answers the client; says whether the client
/// connection goes on.
pub(crate) async fn forward(connection: &mut Connection, worker: &Worker, forwarding: Forwarding) -> Next {
    let Forwarding { vhost, pick, request, span: _ } = forwarding;
    let mut body = RequestBody::new(request.framing, worker.shared.settings.max_body_bytes);
    if let Err(error) = body.take_buffered(connection) {
        return connection.refuse(worker, error, false).await;
    }
    // The whole request is in `upstream_head`, so it can be sent again.
    let replayable = body.is_done();

    let mut failure = ProxyError::AllDown;
    let mut attempts = vhost.attempts(pick.first);
    let mut current = attempts.next();
    let mut fresh_only = false;
    while let Some(backend) = current {
        let reuse = !request.own_connection && !fresh_only;
        let started = Instant::now();
        let (upstream, reused) = match connect(worker, backend, reuse, started).await {
            Ok(connected) => connected,
            Err(err) => {
                note_connect_failure(backend, &vhost, &err);
                failure = ProxyError::AllDown;
                current = attempts.next();
                fresh_only = false;
                continue;
            }
        };
        let in_flight = (vhost.policy == Policy::LeastConn).then(|| InFlight::start(backend));
        let set_cookie = sticky_cookie(&vhost, pick, backend);
        let exchange = Exchange { request: &request, backend, set_cookie, in_flight, started };
        match exchange.run(connection, worker, upstream, &mut body).await {
            Ok(next) => return next,
            Err(Failure::Abort) => return Next::Close,
            Err(Failure::Refused(error)) => return connection.refuse(worker, error, false).await,
            Err(Failure::TimedOut) => {
                let error = ProxyError::UpstreamTimeout(worker.shared.settings.upstream_timeout);
                return connection.refuse(worker, error, request.keep_alive && body.is_done()).await;
            }
            Err(Failure::Backend { nothing_back, write_failed, cause }) => {
                // A write that fails means the backend never had the whole request; an
                // end without a byte of answer may follow a request it acted on, so
                // only an idempotent one goes again.
                let stale = reused && nothing_back && (write_failed || request.idempotent);
                if stale && replayable && !fresh_only {
                    tracing::debug!(backend = %backend.addr, %cause, "pooled connection closed; sending again");
                    fresh_only = true;
                    continue;
                }
                tracing::warn!(backend = %backend.addr, vhost = &*vhost.name, %cause, "backend failed");
                failure = ProxyError::UpstreamFailed;
                if !(replayable && request.idempotent) {
                    break;
                }
                current = attempts.next();
                fresh_only = false;
            }
        }
    }
    connection.refuse(worker, failure, request.keep_alive && body.is_done()).await
}

/// Why an exchange with a backend ended without a (whole) answer for the client.
enum Failure {
    /// Close the client connection without another word: the client left or went
    /// silent mid-body, or part of the answer has gone out already.
    Abort,
    /// The client's body broke the rules (too large, bad chunks).
    Refused(ProxyError),
    /// No response head within the upstream timeout.
    TimedOut,
    /// The backend closed, reset or garbled the exchange before the client got any
    /// of the answer. `nothing_back`: not a single byte came back; `write_failed`:
    /// sending the request failed.
    Backend { nothing_back: bool, write_failed: bool, cause: io::Error },
}

/// One try of a request on one backend.
struct Exchange<'a> {
    request: &'a RequestInfo,
    backend: &'a Backend,
    /// The sticky pin to hand out with the response.
    set_cookie: Option<&'a [u8]>,
    /// Counts the request against its backend until the body is relayed.
    in_flight: Option<InFlight>,
    /// When the try began, for the upstream deadline and the latency metric.
    started: Instant,
}

/// What the response head says about relaying the rest.
struct Answer {
    code: u16,
    head_len: usize,
    body: ResponseBody,
    /// The backend keeps the connection for another request.
    upstream_keep_alive: bool,
    close_client: bool,
    /// De-chunk the body (an HTTP/1.0 client cannot read chunks).
    decode: bool,
    /// An event stream, closed at once when the proxy shuts down.
    event_stream: bool,
    /// A 1xx other than 101: relayed (or not), then the real head follows.
    interim: bool,
}

/// How sending the rest of a request body ended.
enum Streamed {
    /// All of it is with the backend.
    Whole,
    /// The backend began to answer while the proxy waited for the client; the rest
    /// can follow after an interim answer.
    BackendSpoke,
    /// Sending stopped mid-write (the backend answered or closed): the rest never goes.
    Stopped,
}

impl Exchange<'_> {
    async fn run(
        self,
        connection: &mut Connection,
        worker: &Worker,
        mut upstream: TcpStream,
        body: &mut RequestBody,
    ) -> Result<Next, Failure> {
        let request = self.request;
        let settings = &worker.shared.settings;
        connection.upstream_timer.as_mut().reset(self.started + settings.upstream_timeout);
        if let Err(cause) = upstream.write_all(&connection.upstream_head).await {
            return Err(Failure::Backend { nothing_back: true, write_failed: true, cause });
        }
        let mut sent_whole = body.is_done();
        let mut stopped = false;
        let mut continued = false;
        let mut relayed_interim = false;
        connection.upstream_buf.clear();
        let answer = loop {
            let parsed = {
                let mut headers = head::header_slots();
                match head::parse_response(&connection.upstream_buf, &mut headers, request.head) {
                    Ok(Some(response)) => {
                        let client_keep_alive = request.keep_alive && sent_whole && !connection.shutdown_started();
                        Some(self.plan(&response, client_keep_alive, &mut connection.out))
                    }
                    Ok(None) => None,
                    Err(invalid) => Some(Err(io::Error::other(invalid))),
                }
            };
            match parsed {
                Some(Ok(answer)) if answer.interim => {
                    // The proxy answered `Expect` itself; other interim answers (103)
                    // go to clients that can read them.
                    if answer.code != 100 && !request.http10 && !connection.write_to_client(settings.idle_timeout).await
                    {
                        return Err(Failure::Abort);
                    }
                    connection.upstream_buf.drain(..answer.head_len);
                    relayed_interim = true;
                    continue;
                }
                Some(Ok(answer)) => break answer,
                Some(Err(cause)) => return Err(Failure::Backend { nothing_back: false, write_failed: false, cause }),
                None => {}
            }
            if connection.upstream_buf.is_empty() && !sent_whole && !stopped {
                // The backend has said nothing yet: send more of the body.
                if request.expect_continue && !continued && connection.pos == connection.buf.len() {
                    // The client waits for this before it sends the body (RFC 9110 §10.1.1).
                    connection.out.clear();
                    connection.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    if !connection.write_to_client(settings.idle_timeout).await {
                        return Err(Failure::Abort);
                    }
                    continued = true;
                }
                match body.stream(connection, &mut upstream, settings.idle_timeout).await? {
                    Streamed::Whole => sent_whole = true,
                    Streamed::BackendSpoke => {}
                    Streamed::Stopped => stopped = true,
                }
                // The deadline for the answer runs from the end of the upload.
                connection.upstream_timer.as_mut().reset(Instant::now() + settings.upstream_timeout);
            }
            if connection.upstream_buf.len() >= MAX_RESPONSE_HEAD {
                let cause = io::Error::other("response head too large");
                return Err(Failure::Backend { nothing_back: false, write_failed: false, cause });
            }
            make_room(&mut connection.upstream_buf, RELAY_CHUNK / 4);
            let read = tokio::select! {
                biased;
                read = upstream.read_buf(&mut connection.upstream_buf) => read,
                () = connection.upstream_timer.as_mut() => return Err(Failure::TimedOut),
            };
            let nothing_back = connection.upstream_buf.is_empty() && !relayed_interim;
            match read {
                Ok(0) => {
                    let cause = io::Error::new(io::ErrorKind::UnexpectedEof, "closed before answering");
                    return Err(Failure::Backend { nothing_back, write_failed: false, cause });
                }
                Ok(_) => {}
                Err(cause) => return Err(Failure::Backend { nothing_back, write_failed: false, cause }),
            }
        };
        let answered = Instant::now();
        self.backend.stats.answered(worker.index, answered - self.started);
        if kit::telemetry::exporting() {
            let span = tracing::Span::current();
            span.record("http.response.status_code", answer.code);
            if answer.code >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        if !sent_whole {
            // The client is still sending a body nobody will read.
            connection.linger = true;
        }

        if answer.code == 101 {
            if !request.upgrade {
                let cause = io::Error::other("101 without an upgrade request");
                return Err(Failure::Backend { nothing_back: false, write_failed: false, cause });
            }
            return Ok(tunnel(connection, &mut upstream, answer.head_len, settings.idle_timeout).await);
        }
        let relayed = relay_body(connection, &mut upstream, &answer, settings.idle_timeout).await?;
        let reusable = relayed.clean && answer.upstream_keep_alive && sent_whole && !stopped;
        if reusable && !request.own_connection {
            // A body relayed in one write ended when its head came; a longer one, now.
            let idle_since = if relayed.reads == 0 { answered } else { Instant::now() };
            worker.pool.put(self.backend.addr, upstream, idle_since.into_std());
        }
        drop(self.in_flight);
        Ok(connection.next(!answer.close_client))
    }

    /// Reads what a response head means for the relay, and writes the head the client
    /// gets into `out`. A transfer coding an HTTP/1.0 client cannot be given is an
    /// error.
    fn plan(&self, response: &ResponseHead<'_>, client_keep_alive: bool, out: &mut Vec<u8>) -> io::Result<Answer> {
        let request = self.request;
        out.clear();
        let interim = response.code < 200 && response.code != 101;
        let decode = response.framing == Framing::Chunked && request.http10;
        if request.http10 && response.has_codings() {
            return Err(io::Error::other("a transfer coding an HTTP/1.0 client cannot read"));
        }
        let close_client = !client_keep_alive || response.framing == Framing::UntilClose || decode;
        let rewrite = if interim || response.code == 101 {
            Downstream::default()
        } else {
            Downstream {
                set_cookie: self.set_cookie,
                close: close_client,
                keep_alive_10: request.http10 && !close_client,
                transfer_encoding: !decode,
            }
        };
        response.write_downstream(&rewrite, out);
        Ok(Answer {
            code: response.code,
            head_len: response.len,
            body: ResponseBody::new(response.framing),
            upstream_keep_alive: response.keep_alive,
            close_client,
            decode,
            event_stream: response.is_event_stream(),
            interim,
        })
    }
}

/// How a response body was relayed.
struct Relayed {
    /// The message ended where its framing said, with nothing after it.
    clean: bool,
    /// Reads from the backend after the head's.
    reads: usize,
}

/// Relays a response body: the head in `out` and the body bytes that came with it in
/// one write, then the rest as it arrives. Any failure here aborts: the client has
/// part of the answer already.
async fn relay_body(
    connection: &mut Connection,
    upstream: &mut TcpStream,
    answer: &Answer,
    idle_timeout: Duration,
) -> Result<Relayed, Failure> {
    let mut body = answer.body.clone();
    let Connection { out, upstream_buf, .. } = connection;
    let mut clean = body.feed(&upstream_buf[answer.head_len..], out, answer.decode)?;
    if !connection.write_to_client(idle_timeout).await {
        return Err(Failure::Abort);
    }
    let chunk = if answer.event_stream {
        connection.keep_small();
        EVENT_CHUNK
    } else {
        RELAY_CHUNK
    };
    let mut reads = 0;
    let mut watch_client = true;
    while !body.is_done() {
        connection.upstream_buf.clear();
        connection.upstream_buf.reserve(chunk);
        connection.upstream_timer.as_mut().reset(Instant::now() + idle_timeout);
        let read = tokio::select! {
            biased;
            read = upstream.read_buf(&mut connection.upstream_buf) => read,
            readable = connection.stream.readable(), if watch_client => {
                // The client sent more (a pipelined request, kept) or left.
                readable.map_err(|_| Failure::Abort)?;
                make_room(&mut connection.buf, RELAY_CHUNK / 4);
                match connection.stream.try_read_buf(&mut connection.buf) {
                    Ok(0) => return Err(Failure::Abort),
                    Err(err) if err.kind() != io::ErrorKind::WouldBlock => return Err(Failure::Abort),
                    _ => watch_client = connection.buf.len() - connection.pos < RELAY_CHUNK,
                }
                continue;
            }
            () = connection.upstream_timer.as_mut() => {
                tracing::debug!(idle_secs = idle_timeout.as_secs(), "backend silent mid-body; closing");
                return Err(Failure::Abort);
            }
            () = connection.shutdown.as_mut(), if answer.event_stream => {
                tracing::debug!("event stream closed by shutdown");
                return Err(Failure::Abort);
            }
        };
        reads += 1;
        match read {
            Ok(0) if matches!(body, ResponseBody::UntilClose) => break,
            Ok(0) | Err(_) => {
                // Cut short: the client sees the connection close before the end.
                tracing::debug!(backend_code = answer.code, "backend closed mid-body");
                return Err(Failure::Abort);
            }
            Ok(_) => {}
        }
        connection.out.clear();
        clean &= body.feed(&connection.upstream_buf, &mut connection.out, answer.decode)?;
        if !connection.write_to_client(idle_timeout).await {
            return Err(Failure::Abort);
        }
    }
    Ok(Relayed { clean: clean && !matches!(body, ResponseBody::UntilClose), reads })
}

/// Splices an upgraded client connection to the upgraded backend connection until
/// either side closes or the proxy shuts down.
async fn tunnel(
    connection: &mut Connection,
    upstream: &mut TcpStream,
    head_len: usize,
    idle_timeout: Duration,
) -> Next {
    // The 101 head is in `out`; whatever the backend sent after it goes along.
    let Connection { out, upstream_buf, .. } = connection;
    out.extend_from_slice(&upstream_buf[head_len..]);
    if !connection.write_to_client(idle_timeout).await {
        return Next::Close;
    }
    if connection.pos < connection.buf.len() {
        if upstream.write_all(&connection.buf[connection.pos..]).await.is_err() {
            return Next::Close;
        }
        connection.pos = connection.buf.len();
    }
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut connection.stream, upstream) => {
            if let Err(err) = copied {
                tracing::debug!(%err, "tunnel closed with an error");
            }
        }
        () = connection.shutdown.as_mut() => tracing::debug!("tunnel closed by shutdown"),
    }
    Next::Close
}

// === Connecting ===

/// A pooled connection to the backend (`reuse`), else a new one; true when pooled.
async fn connect(worker: &Worker, backend: &Backend, reuse: bool, now: Instant) -> io::Result<(TcpStream, bool)> {
    if reuse && let Some(stream) = worker.pool.take(backend.addr, now.into_std()) {
        return Ok((stream, true));
    }
    let socket = if backend.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_nodelay(true)?;
    socket.set_keepalive(true)?;
    let _ = socket2::SockRef::from(&socket)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)));
    let connecting = socket.connect(backend.addr);
    match tokio::time::timeout(worker.shared.settings.connect_timeout, connecting).await {
        Ok(connected) => Ok((connected?, false)),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

fn note_connect_failure(backend: &Backend, vhost: &Vhost, err: &io::Error) {
    if err.kind() == io::ErrorKind::AddrNotAvailable {
        // Our side, not the backend's: it stays in rotation.
        tracing::warn!(backend = %backend.addr, cause = %err, "no local port to connect from");
    } else if backend.mark_down() {
        tracing::warn!(backend = %backend.addr, vhost = &*vhost.name, cause = %err, "backend down");
    }
}

/// The sticky pin to set: under `sticky`, when the browser is not pinned to this
/// backend yet (and there is a choice at all).
fn sticky_cookie<'a>(vhost: &Vhost, pick: Pick, backend: &'a Backend) -> Option<&'a [u8]> {
    let pinned_here = pick.pinned && std::ptr::eq(backend, &*vhost.backends[pick.first]);
    (vhost.policy == Policy::Sticky && !pinned_here && vhost.backends.len() > 1).then(|| backend.set_cookie.as_bytes())
}

// === Bodies ===

/// Where a request body stands.
#[derive(Debug)]
enum RequestBody {
    Done,
    Length {
        left: u64,
    },
    /// `wire`: bytes of the chunked body so far, framing included, which the size
    /// limit counts (chunk extensions are bytes too).
    Chunked {
        chunked: Box<Chunked>,
        wire: u64,
        limit: u64,
    },
}

impl RequestBody {
    fn new(framing: Framing, limit: u64) -> Self {
        match framing {
            Framing::Empty | Framing::UntilClose => Self::Done,
            Framing::Length(left) => Self::Length { left },
            Framing::Chunked => Self::Chunked { chunked: Box::default(), wire: 0, limit },
        }
    }

    fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Moves the body bytes already read from the client behind the request head.
    fn take_buffered(&mut self, connection: &mut Connection) -> Result<(), ProxyError> {
        let Connection { buf, pos, upstream_head, .. } = connection;
        let used = self.advance(&buf[*pos..])?;
        upstream_head.extend_from_slice(&buf[*pos..*pos + used]);
        *pos += used;
        Ok(())
    }

    /// Sends the rest of the body as the client sends it, until it is all sent or the
    /// backend speaks first.
    async fn stream(
        &mut self,
        connection: &mut Connection,
        upstream: &mut TcpStream,
        idle_timeout: Duration,
    ) -> Result<Streamed, Failure> {
        let (from_backend, mut to_backend) = upstream.split();
        while !self.is_done() {
            if connection.pos == connection.buf.len() {
                connection.make_room();
                connection.client_timer.as_mut().reset(Instant::now() + idle_timeout);
                tokio::select! {
                    biased;
                    read = connection.stream.read_buf(&mut connection.buf) => match read {
                        Ok(read) if read > 0 => {}
                        _ => return Err(Failure::Abort),
                    },
                    _ = from_backend.readable() => return Ok(Streamed::BackendSpoke),
                    () = connection.client_timer.as_mut() => return Err(Failure::Abort),
                }
            }
            let available = &connection.buf[connection.pos..];
            let used = self.advance(available).map_err(Failure::Refused)?;
            connection.pos += used;
            tokio::select! {
                biased;
                written = to_backend.write_all(&available[..used]) => {
                    if let Err(cause) = written {
                        // Perhaps it answered and closed: its answer is read next.
                        tracing::debug!(%cause, "backend stopped reading the body");
                        return Ok(Streamed::Stopped);
                    }
                }
                // Part of this piece may be written: what is left of the body can no
                // longer follow.
                _ = from_backend.readable() => return Ok(Streamed::Stopped),
            }
        }
        Ok(Streamed::Whole)
    }

    /// Counts the bytes of `available` that belong to the body; becomes `Done` at its
    /// end.
    fn advance(&mut self, available: &[u8]) -> Result<usize, ProxyError> {
        let used = match self {
            Self::Done => 0,
            Self::Length { left } => {
                let used = (*left).min(available.len() as u64);
                *left -= used;
                // Bounded by the slice length.
                used as usize
            }
            Self::Chunked { chunked, wire, limit } => {
                let used =
                    chunked.scan(available, |_| {}).map_err(|_| ProxyError::BadRequest("malformed chunked body"))?;
                *wire += used as u64;
                if *wire > *limit {
                    return Err(ProxyError::BodyTooLarge(*limit));
                }
                used
            }
        };
        let done = match self {
            Self::Done => true,
            Self::Length { left } => *left == 0,
            Self::Chunked { chunked, .. } => chunked.is_done(),
        };
        if done {
            *self = Self::Done;
        }
        Ok(used)
    }
}

/// Where a response body stands.
#[derive(Debug, Clone)]
enum ResponseBody {
    Done,
    Length { left: u64 },
    Chunked(Box<Chunked>),
    UntilClose,
}

impl ResponseBody {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Self::Done,
            Framing::Length(left) => Self::Length { left },
            Framing::Chunked => Self::Chunked(Box::default()),
            Framing::UntilClose => Self::UntilClose,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Appends the bytes of `input` that belong to the body to `out` (only the data,
    /// when decoding chunks). Returns false when `input` held more than the body: the
    /// backend broke framing, and its connection is not reused. A malformed chunked
    /// body aborts.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, decode: bool) -> Result<bool, Failure> {
        let used = match self {
            Self::Done => 0,
            Self::UntilClose => {
                out.extend_from_slice(input);
                input.len()
            }
            Self::Length { left } => {
                // Bounded by the slice length.
                let used = (*left).min(input.len() as u64) as usize;
                out.extend_from_slice(&input[..used]);
                *left -= used as u64;
                if *left == 0 {
                    *self = Self::Done;
                }
                used
            }
            Self::Chunked(chunked) => {
                let scanned = if decode {
                    chunked.scan(input, |data| out.extend_from_slice(&input[data]))
                } else {
                    chunked.scan(input, |_| {})
                };
                let used = scanned.map_err(|err| {
                    tracing::debug!(%err, "backend sent a malformed chunked body");
                    Failure::Abort
                })?;
                if !decode {
                    out.extend_from_slice(&input[..used]);
                }
                if chunked.is_done() {
                    *self = Self::Done;
                }
                used
            }
        };
        Ok(used == input.len())
    }
}

/// Makes room for at least `spare` more bytes at the end of `buffer`.
fn make_room(buffer: &mut Vec<u8>, spare: usize) {
    if buffer.capacity() - buffer.len() < spare {
        buffer.reserve(spare.max(buffer.len()));
    }
}

impl Connection {
    /// Writes `out` to the client. Most writes fit the socket buffer at once and need
    /// no timer; one the client does not take within `idle_timeout` fails.
    pub(crate) async fn write_to_client(&mut self, idle_timeout: Duration) -> bool {
        let mut written = 0;
        while written < self.out.len() {
            match self.stream.try_write(&self.out[written..]) {
                Ok(count) => written += count,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        if written == self.out.len() {
            return true;
        }
        self.client_timer.as_mut().reset(Instant::now() + idle_timeout);
        tokio::select! {
            biased;
            sent = self.stream.write_all(&self.out[written..]) => sent.is_ok(),
            () = self.client_timer.as_mut() => {
                tracing::debug!(idle_secs = idle_timeout.as_secs(), "client not reading; closing");
                false
            }
        }
    }
}
