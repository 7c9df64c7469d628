use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proxy::config::Policy;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, TestProxy, config, vhost};

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn sse_events_arrive_one_by_one() {
    let backend = Backend::start("b").await;
    let proxy = TestProxy::start(config(vec![vhost("chat.test", Policy::Sticky, &[&backend])])).await;
    let events = backend.sse_events();

    let mut response = proxy.get("chat.test", "/sse").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    // Each event must come through before the next one even exists: a proxy that
    // buffered the body would time out here.
    for text in ["first", "second", "third"] {
        events.send(text.to_owned()).await.unwrap();
        let chunk = tokio::time::timeout(PATIENCE, response.chunk()).await.expect("event arrives").unwrap().unwrap();
        assert_eq!(std::str::from_utf8(&chunk).unwrap(), format!("data: {text}\n\n"));
    }
    drop(events);
    let end = tokio::time::timeout(PATIENCE, response.chunk()).await.expect("stream ends").unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn an_event_stream_gets_a_backend_connection_of_its_own() {
    let backend = Backend::start("b").await;
    let mut one_worker = config(vec![vhost("chat.test", Policy::RoundRobin, &[&backend])]);
    one_worker.workers = Some(1);
    one_worker.stream_paths = vec!["/sse".to_owned()];
    let proxy = TestProxy::start(one_worker).await;
    // The health checker probes once at start, on a connection of its own.
    backend.wait_for_probe().await;
    let before = backend.accepted();
    for _ in 0..3 {
        assert_eq!(proxy.get("chat.test", "/").await.status(), 200);
    }
    assert_eq!(backend.accepted(), before + 1, "requests share one pooled connection");

    // A stream must be the first request on its backend connection (a peer then
    // serves it without hyper's buffers), although an idle pooled one is there.
    let events = backend.sse_events();
    let mut response = proxy
        .client
        .get(proxy.url("/sse"))
        .header("host", "chat.test")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    events.send("hello".to_owned()).await.unwrap();
    let chunk = tokio::time::timeout(PATIENCE, response.chunk()).await.expect("event arrives").unwrap().unwrap();
    assert_eq!(&chunk[..], b"data: hello\n\n");
    assert_eq!(backend.accepted(), before + 2, "the stream opened a connection of its own");

    assert_eq!(proxy.get("chat.test", "/").await.status(), 200);
    assert_eq!(backend.accepted(), before + 2, "requests still reuse the pooled connection");

    // Only the configured stream paths: asking for events elsewhere cannot make the
    // proxy open a connection per request.
    for _ in 0..3 {
        let other =
            proxy.client.get(proxy.url("/other")).header("host", "chat.test").header("accept", "text/event-stream");
        assert_eq!(other.send().await.unwrap().status(), 200);
    }
    assert_eq!(backend.accepted(), before + 2, "other paths use the pool");
}

#[tokio::test]
async fn a_websocket_is_passed_through_and_echoes() {
    let backend = Backend::start("b").await;
    let proxy = TestProxy::start(config(vec![vhost("chat.test", Policy::RoundRobin, &[&backend])])).await;

    let mut request = format!("ws://{}/ws", proxy.addr).into_client_request().unwrap();
    request.headers_mut().insert("host", "chat.test".parse().unwrap());
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    assert_eq!(response.status(), 101);

    for text in ["hello", "xin chào"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(PATIENCE, socket.next()).await.expect("echo arrives").unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    socket.send(Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    let echoed = tokio::time::timeout(PATIENCE, socket.next()).await.expect("echo arrives").unwrap().unwrap();
    assert_eq!(echoed, Message::binary(vec![0u8, 1, 2, 255]));
    socket.close(None).await.unwrap();
}
