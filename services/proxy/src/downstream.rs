//! The downstream session: one client connection, with the buffers its requests
//! reuse, its deadline and its shutdown signal, all private. It reads request heads
//! and bodies, writes what goes to the client, refuses requests with the proxy's own
//! errors, and closes gently. What a request means is decided elsewhere
//! ([`crate::server`]); how it reaches a backend too ([`crate::forward`]).
//!
//! A head is parsed where it lies in the session's buffer and handed, still borrowed,
//! to the caller's closure along with the buffers it may write (the request for the
//! backend, or the proxy's own answer), so a request costs one parse and no
//! allocation in the common case.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use wire::api::ErrorBody;
use wire::headers::PROXY_ERROR;

use crate::body::RequestBody;
use crate::error::ProxyError;
use crate::h1::head::{self, Invalid, RequestHead};
use crate::shared::{Shared, Worker};
use crate::stream::ClientStream;

/// The size of a connection's buffers at first; they grow as messages need.
const BUFFER: usize = 4096;

/// Whether a connection carries another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
}

/// A client connection and the buffers its requests reuse.
pub(crate) struct DownstreamSession {
    stream: ClientStream,
    /// Bytes read from the client; those before `pos` are used.
    buf: Vec<u8>,
    pos: usize,
    /// The request as the backend gets it: its head, and the body bytes that came with
    /// it. Kept until an answer comes, so a retry can send it again.
    request: Vec<u8>,
    /// What goes to the client next.
    out: Vec<u8>,
    /// The client's address, for `X-Forwarded-For`.
    client_ip: String,
    /// The Host lowercased, when it has capitals.
    host: String,
    /// The deadline for a request head, between reads of a request body, and for a
    /// write the client does not take at once.
    timer: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shared: Arc<Shared>,
    /// The request being answered is a HEAD: the proxy's own answers have no body.
    head_request: bool,
    /// The client may still be sending a body nobody reads: close gently.
    linger: bool,
    /// The status of the answer to the current request, once one was sent (0 until
    /// then), for its access-log line.
    status: u16,
}

/// What a request head's closure may write, and what it may know of the connection.
pub(crate) struct HeadContext<'a> {
    /// The request for the backend (cleared by the closure before it writes).
    pub(crate) request: &'a mut Vec<u8>,
    /// The proxy's own answer.
    pub(crate) out: &'a mut Vec<u8>,
    /// Room for the Host lowercased.
    pub(crate) host: &'a mut String,
    pub(crate) client_ip: &'a str,
    /// The proxy is shutting down.
    pub(crate) closing: bool,
    /// The client came over TLS.
    pub(crate) https: bool,
}

/// How reading a request head ended.
pub(crate) enum Head<T> {
    /// A complete head, and what the closure made of it; the session's position is
    /// past it.
    Read(T),
    /// The head breaks the rules, or is too large.
    Refused(ProxyError),
    /// The client left, was too slow, or (between requests) the proxy stops.
    Gone,
}

/// How waiting for more of a request body ended.
pub(crate) enum BodyRead<T> {
    /// More bytes are unread (or were already).
    More,
    /// The other future came first.
    Other(T),
    /// The client left, or sent nothing within the idle timeout.
    Gone,
}

/// What the client did while a response was relayed.
pub(crate) enum Watched {
    /// It sent more (a pipelined request, kept); whether to go on watching.
    Sent { watch_more: bool },
    /// It left.
    Gone,
    /// The proxy is shutting down.
    Shutdown,
}

impl DownstreamSession {
    pub(crate) fn new(stream: ClientStream, remote: SocketAddr, worker: &Worker) -> Self {
        let far = Instant::now() + worker.shared.settings.header_read_timeout;
        Self {
            stream,
            buf: Vec::with_capacity(BUFFER),
            pos: 0,
            request: Vec::with_capacity(BUFFER),
            out: Vec::with_capacity(BUFFER),
            client_ip: remote.ip().to_string(),
            host: String::new(),
            timer: Box::pin(tokio::time::sleep_until(far)),
            shutdown: Box::pin(worker.shutdown.clone().cancelled_owned()),
            shared: worker.shared.clone(),
            head_request: false,
            linger: false,
            status: 0,
        }
    }

    /// Reads one request head within the head deadline and hands it to `decide`,
    /// which writes what the head leads to into the buffers of [`HeadContext`].
    pub(crate) async fn read_request<T>(
        &mut self,
        mut decide: impl FnMut(&RequestHead<'_>, HeadContext<'_>) -> T,
    ) -> Head<T> {
        let settings = &self.shared.settings;
        self.timer.as_mut().reset(Instant::now() + settings.header_read_timeout);
        self.head_request = false;
        loop {
            let mut headers = head::header_slots();
            match head::parse_request(&self.buf[self.pos..], &mut headers) {
                Ok(Some(request)) => {
                    self.head_request = request.is_head();
                    let context = HeadContext {
                        request: &mut self.request,
                        out: &mut self.out,
                        host: &mut self.host,
                        client_ip: &self.client_ip,
                        closing: self.shared.stopping.load(Ordering::Relaxed),
                        https: self.stream.is_tls(),
                    };
                    let decided = decide(&request, context);
                    self.pos += request.len;
                    return Head::Read(decided);
                }
                Ok(None) => {}
                Err(Invalid::TooManyHeaders) => return Head::Refused(ProxyError::HeadTooLarge),
                Err(Invalid::Malformed(why)) => return Head::Refused(ProxyError::BadRequest(why)),
            }
            let waiting = self.buf.len() - self.pos;
            if waiting >= self.shared.settings.max_header_bytes {
                return Head::Refused(ProxyError::HeadTooLarge);
            }
            if !self.read_head_bytes(waiting == 0).await {
                return Head::Gone;
            }
        }
    }

    /// Reads more of a request head from the client, within the head deadline; false
    /// when the client is gone, too slow, or (between requests) the proxy stops.
    async fn read_head_bytes(&mut self, idle: bool) -> bool {
        self.make_room();
        let read = if idle {
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.buf) => read,
                () = self.timer.as_mut() => return false,
                () = self.shutdown.as_mut() => return false,
            }
        } else {
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.buf) => read,
                () = self.timer.as_mut() => return false,
            }
        };
        matches!(read, Ok(read) if read > 0)
    }

    /// Makes room at the end of the client buffer, dropping the used bytes.
    fn make_room(&mut self) {
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

    // === The request body ===

    /// The request for the backend, as the last head's closure wrote it (and the body
    /// bytes [`Self::take_buffered`] added).
    pub(crate) fn request(&self) -> &[u8] {
        &self.request
    }

    /// Moves the body bytes already read from the client behind the request head, as
    /// far as `body` says they belong to the body.
    pub(crate) fn take_buffered(&mut self, body: &mut RequestBody) -> Result<(), ProxyError> {
        let used = body.advance(&self.buf[self.pos..])?;
        self.request.extend_from_slice(&self.buf[self.pos..self.pos + used]);
        self.pos += used;
        Ok(())
    }

    /// The bytes read from the client and not used yet.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `count` unread bytes as used.
    pub(crate) fn consume(&mut self, count: usize) {
        self.pos += count;
    }

    /// Waits for more of a request body when all that was read is used, within the
    /// idle timeout, unless `other` completes first (checked after the read, before
    /// the deadline).
    pub(crate) async fn read_body_or<T>(&mut self, other: impl Future<Output = T>) -> BodyRead<T> {
        if self.pos < self.buf.len() {
            return BodyRead::More;
        }
        self.make_room();
        self.timer.as_mut().reset(Instant::now() + self.shared.settings.idle_timeout);
        tokio::select! {
            biased;
            read = self.stream.read_buf(&mut self.buf) => match read {
                Ok(read) if read > 0 => BodyRead::More,
                _ => BodyRead::Gone,
            },
            other = other => BodyRead::Other(other),
            () = self.timer.as_mut() => BodyRead::Gone,
        }
    }

    /// While a response is relayed: waits until the client sends more (`readable`;
    /// read into the buffer and kept for the next request) or leaves, or, with
    /// `until_shutdown`, until the proxy shuts down; pends for ever with neither.
    /// Watching is worth going on while fewer than `limit` bytes wait unread.
    pub(crate) async fn watch(&mut self, readable: bool, until_shutdown: bool, limit: usize) -> Watched {
        if self.stream.is_tls() {
            return self.watch_tls(readable, until_shutdown, limit).await;
        }
        let ClientStream::Plain(stream) = &mut self.stream else { unreachable!("checked above") };
        tokio::select! {
            biased;
            ready = stream.readable(), if readable => {
                if ready.is_err() {
                    return Watched::Gone;
                }
                let spare = limit / 4;
                if self.buf.capacity() - self.buf.len() < spare {
                    self.buf.reserve(spare.max(self.buf.len()));
                }
                match stream.try_read_buf(&mut self.buf) {
                    Ok(0) => Watched::Gone,
                    Err(err) if err.kind() != std::io::ErrorKind::WouldBlock => Watched::Gone,
                    _ => Watched::Sent { watch_more: self.buf.len() - self.pos < limit },
                }
            }
            () = self.shutdown.as_mut(), if until_shutdown => Watched::Shutdown,
            else => std::future::pending().await,
        }
    }

    /// [`Self::watch`] over TLS: rustls may hold decrypted bytes the socket's
    /// readiness does not show, so it reads (into room made first) rather than waits.
    async fn watch_tls(&mut self, readable: bool, until_shutdown: bool, limit: usize) -> Watched {
        if readable {
            let spare = limit / 4;
            if self.buf.capacity() - self.buf.len() < spare {
                self.buf.reserve(spare.max(self.buf.len()));
            }
        }
        tokio::select! {
            biased;
            read = self.stream.read_buf(&mut self.buf), if readable => match read {
                Ok(0) | Err(_) => Watched::Gone,
                Ok(_) => Watched::Sent { watch_more: self.buf.len() - self.pos < limit },
            },
            () = self.shutdown.as_mut(), if until_shutdown => Watched::Shutdown,
            else => std::future::pending().await,
        }
    }

    /// The client may still be sending a body nobody will read: close gently.
    pub(crate) fn linger_on_close(&mut self) {
        self.linger = true;
    }

    // === Writing ===

    /// The bytes that go to the client with the next [`Self::write_out`]; callers
    /// clear or append.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Writes `out` to the client. Most writes fit the socket buffer at once and need
    /// no timer; one the client does not take within the idle timeout fails.
    pub(crate) async fn write_out(&mut self) -> bool {
        let mut written = 0;
        while written < self.out.len() {
            match self.stream.try_write(&self.out[written..]) {
                Ok(count) => written += count,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        // Over TLS, what rustls took may still wait in its buffer: flush it.
        let tls = self.stream.is_tls();
        if written == self.out.len() && !tls {
            return true;
        }
        let idle_timeout = self.shared.settings.idle_timeout;
        self.timer.as_mut().reset(Instant::now() + idle_timeout);
        let rest = &self.out[written..];
        let stream = &mut self.stream;
        let send = async move {
            stream.write_all(rest).await?;
            if tls {
                stream.flush().await?;
            }
            std::io::Result::Ok(())
        };
        tokio::select! {
            biased;
            sent = send => sent.is_ok(),
            () = self.timer.as_mut() => {
                tracing::debug!(idle_secs = idle_timeout.as_secs(), "client not reading; closing");
                false
            }
        }
    }

    /// Tells the client to send its body (`Expect: 100-continue`, RFC 9110 §10.1.1);
    /// false when the write fails.
    pub(crate) async fn send_continue(&mut self) -> bool {
        self.out.clear();
        self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.write_out().await
    }

    /// Answers with an error the proxy made, and says whether the connection goes on.
    pub(crate) async fn refuse(&mut self, error: ProxyError, keep_alive: bool) -> Next {
        self.shared.metrics.error(error.reason());
        error.log();
        self.answered(error.status().as_u16());
        if kit::telemetry::exporting() {
            let span = tracing::Span::current();
            span.record("http.response.status_code", i64::from(error.status().as_u16()));
            if error.status().is_server_error() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error.reason());
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
        if !self.write_out().await {
            return Next::Close;
        }
        self.next(!close)
    }

    /// Notes the status of the answer to the current request (for its access-log line).
    pub(crate) fn answered(&mut self, status: u16) {
        self.status = status;
    }

    /// The status noted by [`Self::answered`] for the request just done, 0 if none;
    /// the next request starts with none.
    pub(crate) fn take_status(&mut self) -> u16 {
        std::mem::take(&mut self.status)
    }

    /// The client's address.
    pub(crate) fn client_ip(&self) -> &str {
        &self.client_ip
    }

    // === The connection ===

    /// Whether the connection goes on after an exchange: not when the client or the
    /// exchange said so, nor once the proxy is stopping.
    pub(crate) fn next(&mut self, keep_alive: bool) -> Next {
        if !keep_alive || self.shutdown_started() {
            return Next::Close;
        }
        // A buffer grown for one large message is not kept for the connection's life.
        if self.out.capacity() > 16 * BUFFER {
            self.out = Vec::with_capacity(BUFFER);
        }
        Next::KeepAlive
    }

    /// Gives back the buffers an idle event stream does not need: the request it
    /// answers (no retry comes after an answer), the client buffer when it holds
    /// nothing, what went out. They grow again if the connection carries another
    /// request.
    pub(crate) fn keep_small(&mut self) {
        self.request = Vec::new();
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
        self.out = Vec::new();
    }

    pub(crate) fn shutdown_started(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }

    /// Splices the client connection to an upgraded backend connection until either
    /// side closes or the proxy shuts down; the unread bytes must have gone already.
    pub(crate) async fn splice(&mut self, backend: &mut TcpStream) -> Next {
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut self.stream, backend) => {
                if let Err(err) = copied {
                    tracing::debug!(%err, "tunnel closed with an error");
                }
            }
            () = self.shutdown.as_mut() => tracing::debug!("tunnel closed by shutdown"),
        }
        Next::Close
    }

    /// Ends the session; closes gently when the client may still be sending.
    pub(crate) async fn finish(mut self) {
        if self.linger {
            self.close_gently().await;
        } else if self.stream.is_tls() {
            // TLS ends with close_notify, so the client knows the answer is whole.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
        }
    }

    /// Closes a connection whose client may still be sending (a body the proxy did
    /// not read): stop writing, then read and drop what comes for a short while, so
    /// the kernel does not answer the client's bytes with a reset that could destroy
    /// the answer before the client reads it (nginx's lingering close).
    async fn close_gently(&mut self) {
        const LINGER: Duration = Duration::from_secs(2);
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
