//! Long-lived event streams on connections of their own, without hyper's buffers.
//!
//! hyper gives every connection an 8 KB read buffer and an 8 KB write buffer for its
//! whole life, and an idle event stream touches one page of each: two thirds of what
//! such a stream costs. So when a connection's *first* request is a plain `GET` of the
//! stream path, complete in what has already arrived, it is served here instead: the
//! head is parsed with `httparse` (hyper's own parser), the request goes through the
//! same router (every layer, extractor and error reply unchanged), and the response is
//! written with `connection: close`, its body delimited by the close (RFC 9112 §6.3)
//! and sent frame by frame as the router's body yields them. The connection then holds
//! no buffer at all between events.
//!
//! Anything else (another path, a body, an upgrade, a head that has not fully arrived,
//! a request that follows others on a kept-alive connection) goes to hyper untouched:
//! the head is only peeked at, never consumed, unless it is taken.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRANSFER_ENCODING, UPGRADE};
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The most of a request head looked at; a longer head is left to hyper.
const PEEK_BYTES: usize = 8 * 1024;

/// The most headers a request taken here may have; more are left to hyper.
const MAX_HEADERS: usize = 64;

/// At most this many bytes of events already waiting are written at once.
const BATCH_BYTES: usize = 64 * 1024;

/// How long a client that stopped reading may hold a write before it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A request extension: the request is an event stream the lean path took
/// ([`serve_with_streams`](super::serve_with_streams)), alone on its connection and
/// served without hyper.
#[derive(Debug, Clone, Copy)]
pub struct OwnConnection;

/// Takes the connection's first request when it is `GET path` (any query) with no body
/// and the whole head has arrived; `None` leaves the connection as it was.
pub(super) async fn take(stream: &mut TcpStream, path: &str, remote: SocketAddr) -> io::Result<Option<Request<Body>>> {
    stream.readable().await?;
    let mut head = vec![0; PEEK_BYTES];
    let peeked = stream.peek(&mut head).await?;
    let Some((len, mut request)) = parse(&head[..peeked], path) else {
        return Ok(None);
    };
    stream.read_exact(&mut head[..len]).await?;
    request.extensions_mut().insert(ConnectInfo(remote));
    request.extensions_mut().insert(OwnConnection);
    Ok(Some(request))
}

/// The request in `bytes` when it is one this module takes, with the length of its head.
fn parse(bytes: &[u8], path: &str) -> Option<(usize, Request<Body>)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
        return None;
    };
    let target = parsed.path?;
    if parsed.method? != "GET" || parsed.version? != 1 || target.split('?').next()? != path {
        return None;
    }
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.version_mut() = Version::HTTP_11;
    *request.uri_mut() = Uri::try_from(target).ok()?;
    let map = request.headers_mut();
    map.reserve(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(header.value).ok()?;
        let has_body = name == TRANSFER_ENCODING || (name == CONTENT_LENGTH && value != "0");
        if has_body || name == UPGRADE || name == EXPECT {
            return None;
        }
        map.append(name, value);
    }
    Some((len, request))
}

/// Answers a taken request through `router`, then closes the connection. The stream
/// ends when the body does, when the client goes away (noticed at once, by the
/// connection becoming readable at its end) or sends anything more, or when
/// `draining` is cancelled.
pub(super) async fn respond(
    mut stream: TcpStream,
    request: Request<Body>,
    router: Router,
    draining: CancellationToken,
) {
    let Ok(response) = router.oneshot(request).await;
    let (parts, body) = response.into_parts();
    let head = encode_head(&Response::from_parts(parts, ()));
    let served = async {
        write(&mut stream, &head).await?;
        drop(head);
        let mut body = body;
        loop {
            match std::future::poll_fn(|cx| poll_next(cx, &mut body, &stream)).await {
                Next::Events(batch) => write(&mut stream, batch.bytes()).await?,
                Next::Last(batch) => return write(&mut stream, batch.bytes()).await,
                Next::ClientGone => return Ok(()),
            }
        }
    };
    let result: io::Result<()> = tokio::select! {
        result = served => result,
        () = draining.cancelled() => Ok(()),
    };
    if let Err(err) = result {
        tracing::debug!(%err, "stream connection ended with an error");
    }
    let _ = stream.shutdown().await;
}

/// What a stream's connection does next.
enum Next {
    /// Write these events, then wait for more.
    Events(Batch),
    /// Write these, then close: the body ended (or failed).
    Last(Batch),
    /// The client closed its side (or the connection failed): close.
    ClientGone,
}

/// The events ready at once, written together as hyper would batch them. The first
/// is kept as it is; only a second one makes a copy.
#[derive(Default)]
struct Batch {
    first: Bytes,
    joined: BytesMut,
}

impl Batch {
    fn push(&mut self, data: Bytes) {
        if self.first.is_empty() {
            self.first = data;
            return;
        }
        if self.joined.is_empty() {
            self.joined.extend_from_slice(&self.first);
        }
        self.joined.extend_from_slice(&data);
    }

    fn bytes(&self) -> &[u8] {
        if self.joined.is_empty() { &self.first } else { &self.joined }
    }
}

/// Polls the body for every frame ready now and, when it has none, the client's
/// side for its close. Both keep this task's waker registered while pending, with no
/// per-poll cost. The body comes first, so a finished reply (an error, say) is
/// written whole even to a client that already half-closed.
fn poll_next(cx: &mut Context<'_>, body: &mut Body, stream: &TcpStream) -> Poll<Next> {
    let mut batch = Batch::default();
    loop {
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    batch.push(data);
                }
                if batch.bytes().len() >= BATCH_BYTES {
                    return Poll::Ready(Next::Events(batch));
                }
            }
            Poll::Ready(Some(Err(err))) => {
                tracing::debug!(%err, "stream body failed");
                return Poll::Ready(Next::Last(batch));
            }
            Poll::Ready(None) => return Poll::Ready(Next::Last(batch)),
            Poll::Pending if batch.bytes().is_empty() => break,
            Poll::Pending => return Poll::Ready(Next::Events(batch)),
        }
    }
    // Nothing may come from the client while its stream is waiting (no request
    // follows a stream that does not end): readable means it closed (a half-close
    // too), failed or misbehaves, and it is let go.
    match stream.poll_read_ready(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(ready) => {
            let mut probe = [0; 1];
            match ready.and_then(|()| stream.try_read(&mut probe)) {
                // Spurious: poll again, so the waker is registered.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => match stream.poll_read_ready(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => Poll::Ready(Next::ClientGone),
                },
                _ => Poll::Ready(Next::ClientGone),
            }
        }
    }
}

/// Writes all of `bytes`, or fails when the client has not taken them in time.
async fn write(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")),
    }
}

/// The status line and headers of `response`, with `date` (unless it has one) and
/// `connection: close` (which also delimits a body of unknown length).
fn encode_head(response: &Response<()>) -> Vec<u8> {
    let status = response.status();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in response.headers() {
        if name == CONNECTION || name == TRANSFER_ENCODING || name.as_str() == "keep-alive" {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !response.headers().contains_key(DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn taken(raw: &str) -> Option<(usize, Request<Body>)> {
        parse(raw.as_bytes(), "/events")
    }

    #[test]
    fn a_plain_get_of_the_path_is_taken_with_its_headers() {
        let raw = "GET /events?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 7\r\nCookie: a=1\r\nCookie: b=2\r\n\r\nextra";
        let (len, request) = taken(raw).unwrap();
        assert_eq!(len, raw.len() - "extra".len());
        assert_eq!(request.uri(), "/events?x=1");
        assert_eq!(request.headers()["last-event-id"], "7");
        assert_eq!(request.headers().get_all("cookie").iter().count(), 2);
    }

    #[test]
    fn anything_else_is_left_to_hyper() {
        for raw in [
            "GET /events HTTP/1.1\r\nHost: a\r\n",
            "GET /events HTTP/1.0\r\n\r\n",
            "POST /events HTTP/1.1\r\n\r\n",
            "HEAD /events HTTP/1.1\r\n\r\n",
            "GET /events/x HTTP/1.1\r\n\r\n",
            "GET /eventsx HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET /events HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "GET /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /events HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET /events HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /events HTTP/1.1\r\nBad\u{1}Name: x\r\n\r\n",
            "not http at all\r\n\r\n",
        ] {
            assert!(taken(raw).is_none(), "{raw:?} was taken");
        }
        assert!(taken("GET /events HTTP/1.1\r\nContent-Length: 0\r\n\r\n").is_some());
        let many: String = (0..MAX_HEADERS + 1).map(|index| format!("X-{index}: y\r\n")).collect();
        assert!(taken(&format!("GET /events HTTP/1.1\r\n{many}\r\n")).is_none());
    }

    #[test]
    fn a_batch_copies_only_when_a_second_event_joins() {
        let mut batch = Batch::default();
        let first = Bytes::from_static(b"data: 1\n\n");
        batch.push(first.clone());
        assert_eq!(batch.bytes().as_ptr(), first.as_ptr(), "one event is written as it is");
        batch.push(Bytes::from_static(b"data: 2\n\n"));
        batch.push(Bytes::from_static(b": keep-alive\n\n"));
        assert_eq!(batch.bytes(), b"data: 1\n\ndata: 2\n\n: keep-alive\n\n");
    }

    #[test]
    fn the_head_closes_the_connection_and_drops_hop_by_hop_headers() {
        let response = Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("content-type", "text/event-stream")
            .header("connection", "keep-alive")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let head = String::from_utf8(encode_head(&response)).unwrap();
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\ncontent-type: text/event-stream\r\ndate: "), "{head}");
        assert!(head.ends_with("\r\nconnection: close\r\n\r\n"), "{head}");
        assert!(!head.contains("chunked") && !head.contains("keep-alive"), "{head}");

        let dated = Response::builder().header("date", "Tue, 24 Nov 2026 09:00:00 GMT").body(()).unwrap();
        let head = String::from_utf8(encode_head(&dated)).unwrap();
        assert_eq!(head.matches("date: ").count(), 1, "{head}");
        assert!(head.contains("date: Tue, 24 Nov 2026 09:00:00 GMT\r\n"), "{head}");
    }
}
