//! HTTP/1.1 at the edges, spoken byte by byte to the proxy: pipelining, chunked
//! uploads, `Expect: 100-continue`, HTTP/1.0 clients, requests shaped for smuggling,
//! backends that answer early or drop idle connections.

use std::net::SocketAddr;
use std::time::Duration;

use proxy::config::{Limits, Policy, Upstream, VhostConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Backend, TestProxy, config, raw_request, vhost};

const PATIENCE: Duration = Duration::from_secs(5);

async fn proxy_for(backend: &Backend) -> TestProxy {
    TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[backend])])).await
}

/// The body of the one response in `reply`.
fn body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let reply = raw_request(
        proxy.addr,
        "GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n\
         POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\n\r\nsecond\
         GET /headers HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 3, "{reply}");
    let first = reply.find("\r\n\r\nb").expect("the first answer");
    let second = reply.find("\r\n\r\nsecond").expect("the second answer");
    let third = reply.find("x-forwarded-for").expect("the third answer");
    assert!(first < second && second < third, "{reply}");
}

#[tokio::test]
async fn a_chunked_upload_reaches_the_backend_whole() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let reply = raw_request(
        proxy.addr,
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(body(&reply), "hello world");
}

#[tokio::test]
async fn a_chunked_upload_over_the_limit_is_a_413() {
    let backend = Backend::start("b").await;
    let mut config = config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])]);
    config.limits = Limits { max_body_bytes: 10, ..Limits::default() };
    let proxy = TestProxy::start(config).await;

    let reply = raw_request(
        proxy.addr,
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\naaaaa\r\n5\r\nbbbbb\r\n1\r\nc\r\n0\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("x-proxy-error: body-too-large\r\n"), "{reply}");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = "POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut interim)).await.expect("100 Continue in time").unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(body(&reply), "hello");
}

#[tokio::test]
async fn an_http10_client_gets_a_chunked_body_decoded_then_the_connection_closes() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let old = raw_request(proxy.addr, "GET /chunked HTTP/1.0\r\nHost: app.test\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.1 200"), "{old}");
    assert!(old.contains("connection: close\r\n"), "{old}");
    assert!(!old.to_lowercase().contains("transfer-encoding"), "{old}");
    assert_eq!(body(&old), "onetwothree");

    let new = raw_request(proxy.addr, "GET /chunked HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
    assert!(new.contains("transfer-encoding: chunked\r\n"), "{new}");
    assert!(body(&new).ends_with("0\r\n\r\n"), "relayed as it came: {new}");
    assert!(body(&new).contains("5\r\nthree\r\n"), "{new}");
}

#[tokio::test]
async fn requests_shaped_for_smuggling_are_refused_and_the_connection_closed() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    for bad in [
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: +3\r\n\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\nabc\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.test\r\nBad Name: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Folded: a\r\n b\r\n\r\n",
    ] {
        // `raw_request` reads to the end: the proxy must close after refusing.
        let reply = raw_request(proxy.addr, bad).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{bad:?} -> {reply}");
        assert!(reply.contains("x-proxy-error: bad-request\r\n"), "{reply}");
        assert!(reply.contains("connection: close\r\n"), "{reply}");
        assert!(body(&reply).starts_with(r#"{"status":"error","message":"bad request: "#), "{reply}");
    }
}

#[tokio::test]
async fn a_backend_that_answers_before_reading_the_body_is_heard() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    // A large body announced, a part of it sent: the backend answers at once.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = "POST /reject HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; 100_000]).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await.expect("an answer, not a hang").unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(!reply.contains("x-proxy-error"), "the backend's own answer: {reply}");
    assert!(reply.contains("connection: close\r\n"), "the rest of the body is never read: {reply}");
}

/// A backend that answers one request per connection with a keep-alive response,
/// then drops the connection, as a backend whose idle timeout just ran out does.
async fn forgetful_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_dropping_idle_connections_costs_no_request() {
    let addr = forgetful_backend().await;
    let vhost = VhostConfig {
        name: "app.test".into(),
        upstreams: vec![Upstream { host: addr.ip().to_string(), port: addr.port() }],
        policy: Policy::RoundRobin,
        default: false,
        paths: Default::default(),
        tls: None,
        https: Default::default(),
    };
    let proxy = TestProxy::start(config(vec![vhost])).await;
    for round in 0..20 {
        let response = proxy.get("app.test", "/").await;
        assert_eq!(response.status(), 200, "request {round}");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn a_head_answer_has_the_length_but_no_body_and_the_connection_goes_on() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let reply = raw_request(
        proxy.addr,
        "HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\nGET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head_answer, get_answer) = reply.split_at(reply.rfind("HTTP/1.1 200").unwrap());
    assert!(head_answer.contains("content-length: 1\r\n"), "{reply}");
    assert!(head_answer.ends_with("\r\n\r\n"), "no body after a HEAD: {reply}");
    assert_eq!(body(get_answer), "b");
}

#[tokio::test]
async fn an_absolute_target_is_routed_by_its_authority() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let reply = raw_request(
        proxy.addr,
        "GET http://App.Test/headers HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let seen: serde_json::Value = serde_json::from_str(body(&reply)).unwrap();
    assert_eq!(seen["host"][0], "App.Test");
    assert_eq!(seen["x-forwarded-host"][0], "App.Test");
}

/// What a scripted backend does with a request head.
enum Script {
    Answer(&'static str),
    AnswerAndClose(&'static str),
}

/// A backend written by hand: for each request head it reads, it does what `script`
/// says with it, never reading request bodies.
async fn scripted_backend(script: fn(&str) -> Script) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = pending.windows(4).position(|window| window == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                        pending.drain(..end + 4);
                        let (reply, close) = match script(&head) {
                            Script::Answer(reply) => (reply, false),
                            Script::AnswerAndClose(reply) => (reply, true),
                        };
                        if stream.write_all(reply.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => pending.extend_from_slice(&chunk[..read]),
                    }
                }
            });
        }
    });
    Upstream { host: addr.ip().to_string(), port: addr.port() }
}

fn vhost_over(upstreams: Vec<Upstream>) -> VhostConfig {
    VhostConfig {
        name: "app.test".into(),
        upstreams,
        policy: Policy::RoundRobin,
        default: false,
        paths: Default::default(),
        tls: None,
        https: Default::default(),
    }
}

#[tokio::test]
async fn a_connection_left_owing_body_bytes_is_never_reused() {
    // It answers an upload at once and keeps the connection: the rest of that body
    // would be read as the next request on it. Anything but a clean GET is a 400.
    let upstream = scripted_backend(|head| {
        Script::Answer(if head.starts_with("POST") {
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
        } else if head.starts_with("GET /next HTTP/1.1") {
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean"
        } else {
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 8\r\n\r\npoisoned"
        })
    })
    .await;
    let mut one_worker = config(vec![vhost_over(vec![upstream])]);
    one_worker.workers = Some(1);
    let proxy = TestProxy::start(one_worker).await;

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100000\r\n\r\n").await.unwrap();
    stream.write_all(&[b'x'; 1000]).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 401"), "{}", String::from_utf8_lossy(&reply));

    for _ in 0..3 {
        let response = proxy.get("app.test", "/next").await;
        assert_eq!(response.text().await.unwrap(), "clean");
    }
}

#[tokio::test]
async fn a_retry_after_an_interim_answer_sends_the_request_not_the_answer() {
    // The first backend sends 103 Early Hints and closes; the GET goes on to the
    // second, which must get the request itself.
    let dies =
        scripted_backend(|_| Script::AnswerAndClose("HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")).await;
    let healthy = scripted_backend(|head| {
        Script::Answer(if head.starts_with("GET /page HTTP/1.1\r\n") {
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npage"
        } else {
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\ngarbled"
        })
    })
    .await;
    let proxy = TestProxy::start(config(vec![vhost_over(vec![dies, healthy])])).await;

    for _ in 0..4 {
        let reply = raw_request(proxy.addr, "GET /page HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await;
        assert!(reply.ends_with("\r\n\r\npage"), "{reply}");
    }
}

#[tokio::test]
async fn errors_answering_a_head_request_have_no_body() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;

    let reply = raw_request(
        proxy.addr,
        "HEAD / HTTP/1.1\r\nHost: unknown.test\r\n\r\nGET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (error, next) = reply.split_at(reply.find("HTTP/1.1 200").expect("the GET is answered too"));
    assert!(error.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(error.ends_with("\r\n\r\n"), "no body after a HEAD: {reply}");
    assert_eq!(body(next), "b");
}

#[tokio::test]
async fn chunk_extensions_count_against_the_body_limit() {
    let backend = Backend::start("b").await;
    let mut config = config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])]);
    config.limits = Limits { max_body_bytes: 64, ..Limits::default() };
    let proxy = TestProxy::start(config).await;

    let padded = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(100));
    let request = format!("POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n{padded}");
    let reply = raw_request(proxy.addr, &request).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
}

#[tokio::test]
async fn a_target_that_is_not_ascii_is_a_400_not_a_panic() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;
    for target in ["h\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}", "/caf\u{e9}"] {
        let reply =
            raw_request(proxy.addr, &format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"))
                .await;
        assert!(reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.1 200"), "{target}: {reply}");
    }
    assert_eq!(proxy.backend_for("app.test").await, "b", "the proxy still serves");
}

#[tokio::test]
async fn a_connection_that_carried_an_event_stream_carries_the_next_request() {
    let backend = Backend::start("b").await;
    let proxy = proxy_for(&backend).await;
    let events = backend.sse_events();

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let open = "GET /sse HTTP/1.1\r\nHost: app.test\r\nAccept: text/event-stream\r\n\r\n";
    stream.write_all(open.as_bytes()).await.unwrap();
    events.send("one".to_owned()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("data: one") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("the event").unwrap();
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..read]);
    }
    // The stream ends (its last chunk); the same connection asks again.
    drop(events);
    while !String::from_utf8_lossy(&seen).ends_with("0\r\n\r\n") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.expect("the end").unwrap();
        assert!(read > 0, "closed instead of ending the stream");
        seen.extend_from_slice(&chunk[..read]);
    }
    stream.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut reply)).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(body(&reply), "b");
}
