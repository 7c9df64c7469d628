//! One HTTP/2 stream seen by the HTTP/1.1 engine as a connection of its own
//! ([`crate::stream::ClientStream::H2`]): the seam that lets HTTP/2 clients go
//! through the same routing, path rules, `X-Forwarded-*`, retries, backend pool,
//! metrics and access log as HTTP/1.1 ones, with no second copy of any of it.
//!
//! - Reading gives the engine the request as HTTP/1.1: a head written from the
//!   stream's pseudo-headers and fields (`:authority` as `Host`, cookies joined,
//!   RFC 9113 §8.2.3), then the body: as it came when it has a `Content-Length`, else
//!   in chunks, each DATA frame one chunk. Flow-control credit goes back to the client
//!   as the engine takes the bytes, so an upload runs as fast as the backend reads it.
//!   After the body the read waits for the client to cancel (RST_STREAM), which the
//!   engine sees as a client that left; once the answer is whole it reads the end.
//! - Writing takes the engine's HTTP/1.1 answer: the head becomes the HEADERS frame
//!   (the connection's own headers left out), interim answers become informational
//!   HEADERS, and the body's framing (length, chunks, until the end) is followed to
//!   send only its data in DATA frames, the last one with END_STREAM. A write is taken
//!   only while little waits for the client's flow-control window, so a slow reader
//!   holds the engine back as a slow HTTP/1.1 socket does; an event is sent as soon as
//!   it is written.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{BufMut, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::ResponseBody;
use crate::h1::head::{self, Framing};

/// Body bytes accepted from the engine that may wait for the client's window.
const HIGH_WATER: usize = 64 * 1024;

/// What the streams of one connection tell it: how many the client cancelled.
#[derive(Debug, Default)]
pub(crate) struct StreamCounts {
    pub(crate) client_resets: AtomicU32,
    pub(crate) answered: AtomicU32,
}

/// One stream, as a byte stream of HTTP/1.1 for the engine.
pub(crate) struct H2Stream {
    request: Request,
    response: Response,
    /// The request was a HEAD: its answer has no body.
    head_request: bool,
    counts: Arc<StreamCounts>,
    /// This stream's cancellation was counted.
    reset_counted: bool,
}

/// What is left of the request for the engine.
enum Request {
    /// The head, then the body.
    Head { head: Bytes, body: Option<(RecvStream, bool)> },
    /// The body (`chunked`: framed in chunks), and what of the last frame is unread.
    Body { recv: RecvStream, chunked: bool, unread: Bytes },
    /// All of it, perhaps with the last chunk's end still unread.
    Ended { unread: Bytes },
}

/// Where the engine's answer stands.
enum Response {
    /// The head is awaited: what of it came so far.
    Head { respond: SendResponse<Bytes>, partial: Vec<u8> },
    /// The body: its framing, and the data not yet sent.
    Body { send: SendStream<Bytes>, body: ResponseBody, pending: BytesMut },
    /// Sent whole (END_STREAM) or reset.
    Done,
}

impl H2Stream {
    /// The stream of `request`, answered through `respond`; `None` (with a reset sent)
    /// when its head cannot be written as HTTP/1.1.
    pub(crate) fn new(
        request: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
        counts: Arc<StreamCounts>,
    ) -> Self {
        let (parts, recv) = request.into_parts();
        let has_length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
        let body = (!recv.is_end_stream()).then_some((recv, !has_length));
        let head = request_head(&parts, body.as_ref().is_some_and(|(_, chunked)| *chunked));
        Self {
            request: Request::Head { head, body },
            response: Response::Head { respond, partial: Vec::new() },
            head_request: parts.method == http::Method::HEAD,
            counts,
            reset_counted: false,
        }
    }

    /// Turns an h2 error into an IO error, counting a cancellation by the client.
    fn failed(&mut self, err: h2::Error) -> io::Error {
        if err.is_reset() && err.is_remote() {
            self.count_reset();
        }
        io::Error::new(io::ErrorKind::ConnectionReset, err)
    }

    fn count_reset(&mut self) {
        if !std::mem::replace(&mut self.reset_counted, true) {
            self.counts.client_resets.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits for the client to cancel the stream (an error then), while its request
    /// is read whole and the answer is not.
    fn poll_cancelled(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let reset = match &mut self.response {
            Response::Head { respond, .. } => ready!(respond.poll_reset(context)),
            Response::Body { send, .. } => ready!(send.poll_reset(context)),
            Response::Done => return Poll::Ready(Ok(())),
        };
        let reason = match reset {
            Ok(reason) => reason,
            Err(err) => return Poll::Ready(Err(self.failed(err))),
        };
        self.count_reset();
        self.response = Response::Done;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("stream reset by the client: {reason}"),
        )))
    }

    /// Takes the answer's head from `bytes` (interim heads are relayed and dropped);
    /// returns how many bytes of `bytes` it used.
    fn write_head(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Response::Head { respond, partial } = &mut self.response else { unreachable!("called in Head") };
        let before = partial.len();
        // Usually the head comes whole in one write, and is parsed where it is.
        let whole: &[u8] = if before == 0 {
            bytes
        } else {
            partial.extend_from_slice(bytes);
            partial
        };
        let mut slots = head::header_slots();
        let parsed = head::parse_response(whole, &mut slots, self.head_request).map_err(io::Error::other)?;
        let Some(parsed) = parsed else {
            if before == 0 {
                partial.extend_from_slice(bytes);
            }
            return Ok(bytes.len());
        };
        let used = parsed.len - before;
        let mut response = http::Response::new(());
        *response.status_mut() = http::StatusCode::from_u16(parsed.code).map_err(io::Error::other)?;
        let headers = response.headers_mut();
        for (name, value) in parsed.end_to_end() {
            if let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
        let (code, framing) = (parsed.code, parsed.framing);
        if code == 101 {
            return Err(io::Error::other("no protocol switch over HTTP/2"));
        }
        if code < 200 {
            let _ = respond.send_informational(response);
            partial.clear();
            return Ok(used);
        }
        let end = framing == Framing::Empty || framing == Framing::Length(0);
        let send = match respond.send_response(response, end) {
            Ok(send) => send,
            Err(err) => return Err(self.failed(err)),
        };
        self.response = if end {
            self.counts.answered.fetch_add(1, Ordering::Relaxed);
            Response::Done
        } else {
            Response::Body { send, body: ResponseBody::new(framing), pending: BytesMut::new() }
        };
        Ok(used)
    }

    /// Sends the pending body data as the client's window allows; ready when none is
    /// left. The last data (or an empty frame) carries END_STREAM once the body ended.
    fn pump(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Response::Body { send, body, pending } = &mut self.response else { return Poll::Ready(Ok(())) };
            if pending.is_empty() && !body.is_done() {
                return Poll::Ready(Ok(()));
            }
            let capacity = send.capacity();
            if capacity == 0 && !pending.is_empty() {
                send.reserve_capacity(pending.len());
                match send.poll_capacity(context) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(self.failed(err))),
                    Poll::Ready(None) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                }
            }
            let data = pending.split_to(capacity.min(pending.len())).freeze();
            let end = pending.is_empty() && body.is_done();
            if let Err(err) = send.send_data(data, end) {
                return Poll::Ready(Err(self.failed(err)));
            }
            if end {
                self.counts.answered.fetch_add(1, Ordering::Relaxed);
                self.response = Response::Done;
            }
        }
    }
}

/// The request head as HTTP/1.1. `chunked`: the body has no length and goes in chunks.
fn request_head(parts: &http::request::Parts, chunked: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(512);
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    let target = match parts.uri.path_and_query() {
        Some(target) => target.as_str(),
        None => parts.uri.authority().map_or("/", |authority| authority.as_str()),
    };
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = parts.uri.authority() {
        put_field(&mut out, b"host", authority.as_str().as_bytes());
    }
    let mut cookies: Option<BytesMut> = None;
    for (name, value) in &parts.headers {
        if name == http::header::COOKIE {
            let joined = cookies.get_or_insert_with(BytesMut::new);
            if !joined.is_empty() {
                joined.put_slice(b"; ");
            }
            joined.put_slice(value.as_bytes());
            continue;
        }
        // `te: trailers` is the one hop-by-hop field HTTP/2 lets through; a Host the
        // authority already gave is not repeated (a different one is: two Hosts, 400).
        let repeated_host = name == http::header::HOST
            && parts.uri.authority().is_some_and(|authority| authority.as_str().as_bytes() == value.as_bytes());
        if name == http::header::TE || repeated_host {
            continue;
        }
        put_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(cookies) = cookies {
        put_field(&mut out, b"cookie", &cookies);
    }
    if chunked {
        put_field(&mut out, b"transfer-encoding", b"chunked");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Copies what fits of `unread` into `buf`.
fn give(unread: &mut Bytes, buf: &mut ReadBuf<'_>) {
    let count = unread.len().min(buf.remaining());
    buf.put_slice(&unread.split_to(count));
}

impl AsyncRead for H2Stream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Once the answer is whole, the exchange is over: what the client may still
        // send of its body is not for anyone.
        if matches!(this.response, Response::Done) {
            return Poll::Ready(Ok(()));
        }
        // Once the answer has begun, the engine sends no more of the body to the
        // backend (as over HTTP/1.1): the rest is not handed over to be mistaken for a
        // next request.
        if matches!(this.response, Response::Body { .. }) && matches!(this.request, Request::Body { .. }) {
            this.request = Request::Ended { unread: Bytes::new() };
        }
        loop {
            match &mut this.request {
                Request::Head { head, body } => {
                    give(head, buf);
                    if head.is_empty() {
                        this.request = match body.take() {
                            Some((recv, chunked)) => Request::Body { recv, chunked, unread: Bytes::new() },
                            None => Request::Ended { unread: Bytes::new() },
                        };
                    }
                    return Poll::Ready(Ok(()));
                }
                Request::Body { unread, .. } | Request::Ended { unread } if !unread.is_empty() => {
                    give(unread, buf);
                    return Poll::Ready(Ok(()));
                }
                Request::Ended { .. } => return this.poll_cancelled(context),
                Request::Body { recv, chunked, unread } => match ready!(recv.poll_data(context)) {
                    Some(Ok(data)) => {
                        let _ = recv.flow_control().release_capacity(data.len());
                        if data.is_empty() {
                            continue;
                        }
                        *unread = if *chunked {
                            let mut framed = BytesMut::with_capacity(data.len() + 12);
                            framed.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                            framed.put_slice(&data);
                            framed.put_slice(b"\r\n");
                            framed.freeze()
                        } else {
                            data
                        };
                    }
                    Some(Err(err)) => return Poll::Ready(Err(this.failed(err))),
                    None => {
                        let last = if *chunked { Bytes::from_static(b"0\r\n\r\n") } else { Bytes::new() };
                        this.request = Request::Ended { unread: last };
                    }
                },
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.response {
            Response::Head { .. } => Poll::Ready(this.write_head(bytes)),
            Response::Done => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Response::Body { pending, .. } => {
                if pending.len() >= HIGH_WATER {
                    ready!(this.pump(context))?;
                }
                let Response::Body { body, pending, .. } = &mut this.response else {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                };
                body.feed(bytes, pending, true).map_err(io::Error::other)?;
                if let Poll::Ready(Err(err)) = this.pump(context) {
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(Ok(bytes.len()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().pump(context)
    }

    /// The engine closes: an answer whose body ends with the connection ends here; one
    /// cut short, or never given, is reset, so the client sees it incomplete.
    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Response::Body { body, .. } = &mut this.response
            && body.until_close()
        {
            *body = ResponseBody::Done;
        }
        if let Response::Body { body, .. } = &this.response
            && body.is_done()
        {
            ready!(this.pump(context))?;
        }
        match std::mem::replace(&mut this.response, Response::Done) {
            Response::Head { mut respond, .. } => respond.send_reset(h2::Reason::INTERNAL_ERROR),
            Response::Body { mut send, .. } => send.send_reset(h2::Reason::INTERNAL_ERROR),
            Response::Done => {}
        }
        Poll::Ready(Ok(()))
    }
}
