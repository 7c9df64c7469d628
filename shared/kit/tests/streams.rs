//! `kit::http::serve_with_streams` on a real socket: a connection whose first request
//! is `GET /events` is answered without hyper (`connection: close`, the body delimited
//! by the close, frames written as they come); everything else is hyper's, as before.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use kit::error::ApiError;
use kit::http::ClientIp;
use kit::metrics::HttpMetrics;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Every wait in these tests is bounded by this.
const PATIENCE: Duration = Duration::from_secs(5);

/// Each opened stream hands the test the sender that feeds it.
type Opened = mpsc::UnboundedSender<mpsc::Sender<Bytes>>;

/// `GET /events` streams what the test sends (the first chunk names the client's
/// `last-event-id`), or answers 401 when asked to with `x-deny`; `GET /other` is a
/// plain reply.
async fn events(State(opened): State<Opened>, ClientIp(client): ClientIp, headers: HeaderMap) -> Response {
    if headers.contains_key("x-deny") {
        return ApiError::Unauthorized("not logged in".into()).into_response();
    }
    let last = headers.get("last-event-id").and_then(|value| value.to_str().ok()).unwrap_or("none");
    let (sender, receiver) = mpsc::channel(8);
    opened.send(sender).expect("the test listens");
    let first = Bytes::from(format!(": resuming after {last}\n\n"));
    let rest = stream::unfold(receiver, |mut receiver| async move {
        let next = receiver.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(next), receiver))
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(stream::iter([Ok(first)]), rest));
    ([("content-type", "text/event-stream".to_owned()), ("x-client", client.to_string())], body).into_response()
}

struct Server {
    url: std::net::SocketAddr,
    opened: mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start() -> Server {
    let (opened_tx, opened) = mpsc::unbounded_channel();
    let router =
        Router::new().route("/events", get(events)).route("/other", get(|| async { "ok" })).with_state(opened_tx);
    let metrics = HttpMetrics::register(&mut Registry::default());
    let app = kit::http::common_layers(router, "test@here", metrics, &kit::http::EdgeConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(kit::http::serve_with_streams(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        "/events",
    ));
    Server { url, opened, stop: Some(stop), task }
}

impl Server {
    async fn next_stream(&mut self) -> mpsc::Sender<Bytes> {
        tokio::time::timeout(PATIENCE, self.opened.recv()).await.expect("a stream opens in time").unwrap()
    }

    /// A client whose stream is open (its first chunk read), and the stream's feed.
    async fn open_stream(&mut self) -> (TcpStream, mpsc::Sender<Bytes>) {
        let mut client = TcpStream::connect(self.url).await.unwrap();
        client.write_all(b"GET /events HTTP/1.1\r\nHost: here\r\n\r\n").await.unwrap();
        read_until(&mut client, ": resuming after none\n\n").await;
        (client, self.next_stream().await)
    }

    /// Signals shutdown and waits (bounded) until `serve` returns.
    async fn stop(&mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(PATIENCE, &mut self.task).await.expect("the server drains in time").unwrap().unwrap();
    }
}

/// Reads from `client` until what was read ends with `end`, returning it all.
async fn read_until(client: &mut TcpStream, end: &str) -> String {
    let mut read = Vec::new();
    let mut buf = [0; 1024];
    while !read.ends_with(end.as_bytes()) {
        let n = tokio::time::timeout(PATIENCE, client.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {end:?} in time after {:?}", String::from_utf8_lossy(&read)))
            .unwrap();
        assert!(n > 0, "closed before {end:?}, after {:?}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(read).unwrap()
}

/// Reads until the server closes the connection.
async fn read_to_end(client: &mut TcpStream) -> String {
    let mut read = Vec::new();
    tokio::time::timeout(PATIENCE, client.read_to_end(&mut read)).await.expect("closed in time").unwrap();
    String::from_utf8(read).unwrap()
}

#[tokio::test]
async fn a_first_get_of_the_stream_path_is_streamed_event_by_event_and_closes() {
    let mut server = start().await;
    let mut client = TcpStream::connect(server.url).await.unwrap();
    client
        .write_all(
            b"GET /events?since=now HTTP/1.1\r\nHost: here\r\nLast-Event-ID: 41\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_until(&mut client, ": resuming after 41\n\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream\r\n",
        "x-client: 127.0.0.1\r\n",
        "x-served-by: test@here\r\n",
        "connection: close\r\n",
        "date: ",
    ] {
        assert!(head.contains(line), "no {line:?} in {head}");
    }
    assert!(!head.to_lowercase().contains("transfer-encoding"), "{head}");

    let events = server.next_stream().await;
    for event in ["id: 42\ndata: one\n\n", "id: 43\ndata: two\n\n"] {
        events.send(Bytes::from(event)).await.unwrap();
        assert_eq!(read_until(&mut client, "\n\n").await, event, "each event arrives on its own, unframed");
    }

    // A client that goes away is noticed without waiting for a write: the stream ends.
    drop(client);
    tokio::time::timeout(PATIENCE, events.closed()).await.expect("the stream ends when its client leaves");
}

#[tokio::test]
async fn other_requests_and_streams_on_a_kept_alive_connection_are_served_by_hyper() {
    let mut server = start().await;
    let mut client = TcpStream::connect(server.url).await.unwrap();
    client.write_all(b"GET /other HTTP/1.1\r\nHost: here\r\n\r\n").await.unwrap();
    let reply = read_until(&mut client, "\r\n\r\nok").await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.contains("content-length: 2\r\n"), "{reply}");
    assert!(!reply.contains("connection: close"), "the connection stays open: {reply}");

    // The same connection, kept alive, now asks for a stream: hyper streams it chunked.
    client.write_all(b"GET /events HTTP/1.1\r\nHost: here\r\n\r\n").await.unwrap();
    let head = read_until(&mut client, ": resuming after none\n\n\r\n").await;
    assert!(head.contains("transfer-encoding: chunked\r\n") && !head.contains("connection: close"), "{head}");
    assert!(head.contains("x-client: 127.0.0.1\r\n"), "{head}");
    let events = server.next_stream().await;
    events.send(Bytes::from("data: one\n\n")).await.unwrap();
    assert_eq!(read_until(&mut client, "\n\n\r\n").await, "B\r\ndata: one\n\n\r\n", "one chunk");

    // A head that does not arrive in one piece is hyper's too, and still served.
    let mut split = TcpStream::connect(server.url).await.unwrap();
    split.write_all(b"GET /events HTTP/1.1\r\n").await.unwrap();
    let mut nothing = [0; 1];
    let early = tokio::time::timeout(Duration::from_millis(100), split.read(&mut nothing)).await;
    assert!(early.is_err(), "half a head gets no answer");
    split.write_all(b"Host: here\r\n\r\n").await.unwrap();
    let head = read_until(&mut split, ": resuming after none\n\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    server.next_stream().await;

    // So is a head with more headers than the lean path looks at.
    let mut crowded = TcpStream::connect(server.url).await.unwrap();
    let many: String = (0..70).map(|index| format!("X-Filler-{index}: {index}\r\n")).collect();
    crowded.write_all(format!("GET /events HTTP/1.1\r\nHost: here\r\n{many}\r\n").as_bytes()).await.unwrap();
    let head = read_until(&mut crowded, ": resuming after none\n\n\r\n").await;
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    server.next_stream().await;
}

#[tokio::test]
async fn an_error_reply_is_written_whole_then_the_connection_closes() {
    let server = start().await;
    let mut client = TcpStream::connect(server.url).await.unwrap();
    client.write_all(b"GET /events HTTP/1.1\r\nHost: here\r\nX-Deny: 1\r\n\r\n").await.unwrap();
    let reply = read_to_end(&mut client).await;
    assert!(reply.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{reply}");
    assert!(reply.contains("content-type: application/json\r\n") && reply.contains("connection: close\r\n"), "{reply}");
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["message"], "not logged in", "{json}");
}

#[tokio::test]
async fn a_finished_reply_is_written_whole_to_a_client_that_half_closed() {
    let server = start().await;
    let mut client = TcpStream::connect(server.url).await.unwrap();
    client.write_all(b"GET /events HTTP/1.1\r\nHost: here\r\nX-Deny: 1\r\n\r\n").await.unwrap();
    client.shutdown().await.unwrap();
    let reply = read_to_end(&mut client).await;
    assert!(reply.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{reply}");
    let body = reply.split("\r\n\r\n").nth(1).unwrap();
    assert!(reply.contains(&format!("content-length: {}\r\n", body.len())), "the body is all there: {reply}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["message"], "not logged in", "{json}");
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_the_server_returns() {
    let mut server = start().await;
    let (mut client, _events) = server.open_stream().await;
    server.stop().await;
    assert_eq!(read_to_end(&mut client).await, "", "the stream was closed, with nothing more sent");
}

#[tokio::test]
async fn a_connection_that_never_asks_does_not_hold_up_shutdown() {
    let mut server = start().await;
    let mut silent = TcpStream::connect(server.url).await.unwrap();
    // The server has the connection once it answers another one (accepts are in order).
    let mut other = TcpStream::connect(server.url).await.unwrap();
    other.write_all(b"GET /other HTTP/1.1\r\nHost: here\r\n\r\n").await.unwrap();
    read_until(&mut other, "\r\n\r\nok").await;
    server.stop().await;
    assert_eq!(read_to_end(&mut silent).await, "", "closed without an answer");
}

#[tokio::test]
async fn a_client_that_sends_more_after_a_stream_request_is_let_go() {
    let mut server = start().await;
    let (mut client, events) = server.open_stream().await;
    client.write_all(b"GET /other HTTP/1.1\r\nHost: here\r\n\r\n").await.unwrap();
    assert_eq!(read_to_end(&mut client).await, "", "closed, the pipelined request unanswered");
    tokio::time::timeout(PATIENCE, events.closed()).await.expect("the stream ends");
}
