//! HTTP/2 to clients (ALPN `h2` on the HTTPS port), with the `h2` crate's client
//! against real HTTP/1.1 backends: the same rules and headers as HTTP/1.1, uploads
//! and downloads streamed, event streams event by event, many streams at once, the
//! limits, and a rapid-reset flood cut off while others are served.

use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream};
use proxy::config::{Config, Policy};
use tokio::task::JoinSet;

use crate::helpers::{Backend, config, vhost};
use crate::tls::{Issued, TlsProxy, issue, with_tls};

const PATIENCE: Duration = Duration::from_secs(5);

/// A proxy for `site.test` over `backend`, with `adjust` applied to its config.
async fn start(backend: &Backend, adjust: impl FnOnce(&mut Config)) -> (TlsProxy, Issued, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let site = issue(dir.path(), "site.test");
    let text = r#"host "site.test" { proxy_pass http://127.0.0.1:1; deny /private; }"#;
    let mut block = Config::from_conf_str(text, "127.0.0.1").unwrap().vhosts.remove(0);
    block.upstreams = vec![backend.upstream()];
    let other = vhost("other.test", Policy::RoundRobin, &[backend]);
    let mut settings = with_tls(config(vec![block, other]), &[("site.test", &site)]);
    adjust(&mut settings);
    (TlsProxy::start(settings).await, site, dir)
}

/// An HTTP/2 connection to the proxy; its driver runs on a task, and says how it ended.
async fn connect(
    proxy: &TlsProxy,
    site: &Issued,
) -> (SendRequest<Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>, tokio::sync::watch::Receiver<usize>) {
    let tls = proxy.connect_alpn("site.test", &[&site.der], &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, mut connection) = h2::client::handshake(tls).await.unwrap();
    // What the proxy allows at once, as its SETTINGS say.
    let (limit_tx, limit) = tokio::sync::watch::channel(0);
    let driver = tokio::spawn(std::future::poll_fn(move |context| {
        let polled = std::pin::Pin::new(&mut connection).poll(context);
        let _ = limit_tx.send(connection.max_concurrent_send_streams());
        polled
    }));
    (send, driver, limit)
}

fn request(method: &str, host: &str, path: &str) -> http::request::Builder {
    http::Request::builder().method(method).uri(format!("https://{host}{path}"))
}

/// Sends a request without a body; its response.
async fn send(client: &SendRequest<Bytes>, request: http::Request<()>) -> http::Response<RecvStream> {
    let mut ready = client.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    tokio::time::timeout(PATIENCE, response).await.expect("an answer in time").unwrap()
}

/// The whole body of a response.
async fn body(response: http::Response<RecvStream>) -> String {
    let mut stream = response.into_body();
    let mut all = Vec::new();
    while let Some(data) = tokio::time::timeout(PATIENCE, stream.data()).await.expect("the body in time") {
        let data = data.unwrap();
        let _ = stream.flow_control().release_capacity(data.len());
        all.extend_from_slice(&data);
    }
    String::from_utf8(all).unwrap()
}

#[tokio::test]
async fn h2_requests_take_the_same_path_as_http11_ones() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |_| {}).await;
    let (client, _driver, _) = connect(&proxy, &site).await;

    let headers =
        request("GET", "site.test", "/headers?x=1").header("cookie", "a=1").header("cookie", "b=2").body(()).unwrap();
    let response = send(&client, headers).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backend"], "b");
    assert!(response.headers().get("connection").is_none(), "no connection headers in HTTP/2");
    let seen = body(response).await;
    assert!(seen.contains(r#""x-forwarded-proto":["https"]"#), "{seen}");
    assert!(seen.contains(r#""x-forwarded-for":["127.0.0.1"]"#), "{seen}");
    assert!(seen.contains(r#""host":["site.test"]"#), "the authority is the Host: {seen}");
    assert!(seen.contains(r#""cookie":["a=1; b=2"]"#), "cookies joined (RFC 9113 §8.2.3): {seen}");

    // The vhost's path rules, the proxy's own errors, chunked bodies and HEAD.
    let denied = send(&client, request("GET", "site.test", "/private/x").body(()).unwrap()).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.headers()["content-type"], "application/json");
    let unknown = send(&client, request("GET", "nowhere.test", "/").body(()).unwrap()).await;
    assert_eq!(unknown.status(), 404);
    let chunked = send(&client, request("GET", "site.test", "/chunked").body(()).unwrap()).await;
    assert!(chunked.headers().get("transfer-encoding").is_none());
    assert_eq!(body(chunked).await, "onetwothree");
    let head = send(&client, request("HEAD", "site.test", "/").body(()).unwrap()).await;
    assert_eq!(head.status(), 200);
    assert!(head.body().is_end_stream() || body(head).await.is_empty());
    // Another vhost on the same connection (its name has no certificate: the default).
    let other = send(&client, request("GET", "other.test", "/").body(()).unwrap()).await;
    assert_eq!(body(other).await, "b");
}

#[tokio::test]
async fn h2_bodies_stream_both_ways_under_flow_control() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |_| {}).await;
    let (client, _driver, _) = connect(&proxy, &site).await;

    // Without a length (chunked to the backend): each piece reaches the backend
    // before the next is sent.
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut upload) =
        ready.send_request(request("POST", "site.test", "/upload").body(()).unwrap(), false).unwrap();
    let mut sent = String::new();
    for piece in 0..4 {
        let text = format!("piece-{piece};");
        upload.send_data(Bytes::from(text.clone()), false).unwrap();
        sent.push_str(&text);
        tokio::time::timeout(PATIENCE, backend.pieces.notified()).await.expect("the piece reaches the backend");
    }
    upload.send_data(Bytes::new(), true).unwrap();
    let response = tokio::time::timeout(PATIENCE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, sent);

    // 1 MiB with a length, 16 times the stream's window, there and back.
    let big: String = (0..(1 << 20)).map(|index| char::from(b'a' + (index % 26) as u8)).collect();
    let mut ready = client.clone().ready().await.unwrap();
    let post = request("POST", "site.test", "/echo").header("content-length", big.len()).body(()).unwrap();
    let (response, mut upload) = ready.send_request(post, false).unwrap();
    let pieces: Vec<Bytes> = big.as_bytes().chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
    let count = pieces.len();
    for (index, piece) in pieces.into_iter().enumerate() {
        upload.reserve_capacity(piece.len());
        let granted = std::future::poll_fn(|context| upload.poll_capacity(context));
        tokio::time::timeout(PATIENCE, granted).await.expect("the window opens").unwrap().unwrap();
        upload.send_data(piece, index + 1 == count).unwrap();
    }
    let response = tokio::time::timeout(PATIENCE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert!(body(response).await == big, "the body came back whole");
}

#[tokio::test]
async fn an_event_stream_over_h2_arrives_event_by_event() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |_| {}).await;
    let (client, _driver, _) = connect(&proxy, &site).await;
    let events = backend.sse_events();
    let subscribe = request("GET", "site.test", "/sse").header("accept", "text/event-stream").body(()).unwrap();
    let response = send(&client, subscribe).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.into_body();
    let mut seen = String::new();
    for text in ["first", "second", "third"] {
        // The next event is sent only once the last one has arrived.
        events.send(text.to_owned()).await.unwrap();
        let wanted = format!("data: {text}\n\n");
        while !seen.contains(&wanted) {
            let data = tokio::time::timeout(PATIENCE, stream.data()).await.expect("the event arrives");
            let data = data.expect("the stream stays open").unwrap();
            let _ = stream.flow_control().release_capacity(data.len());
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    // A cancelled stream ends the backend's event stream too.
    drop(stream);
    tokio::time::timeout(PATIENCE, events.closed()).await.expect("the backend stream is closed");
}

#[tokio::test]
async fn many_streams_share_one_connection_within_its_limit() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |settings| settings.http2.max_concurrent_streams = 16).await;
    let (client, _driver, limit) = connect(&proxy, &site).await;
    // One answer first: the proxy's SETTINGS are known by then (streams opened before
    // them, past the limit, would be refused, as RFC 9113 §5.1.2 allows).
    assert_eq!(send(&client, request("GET", "site.test", "/").body(()).unwrap()).await.status(), 200);
    let mut requests = JoinSet::new();
    for index in 0..200 {
        let client = client.clone();
        requests.spawn(async move {
            let path = format!("/headers?n={index}");
            let response = send(&client, request("GET", "site.test", &path).body(()).unwrap()).await;
            assert_eq!(response.status(), 200);
            assert!(body(response).await.contains("x-forwarded-proto"));
        });
    }
    while let Some(done) = requests.join_next().await {
        done.unwrap();
    }
    assert_eq!(*limit.borrow(), 16, "the proxy's SETTINGS allow 16 streams at once");
}

#[tokio::test]
async fn limits_are_answered_over_h2() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |settings| {
        settings.limits.max_header_bytes = 4096;
        settings.limits.max_body_bytes = 1000;
    })
    .await;
    let (client, _driver, _) = connect(&proxy, &site).await;

    let large = request("GET", "site.test", "/").header("x-large", "x".repeat(8000)).body(()).unwrap();
    assert_eq!(send(&client, large).await.status(), 431, "the header list is over the limit");

    let mut ready = client.clone().ready().await.unwrap();
    let post = request("POST", "site.test", "/echo").header("content-length", "5000").body(()).unwrap();
    let (response, mut upload) = ready.send_request(post, false).unwrap();
    upload.send_data(Bytes::from(vec![b'x'; 5000]), true).unwrap();
    let response = tokio::time::timeout(PATIENCE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 413, "the body is over the limit");

    // Without a length, the limit holds as the body streams.
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut upload) =
        ready.send_request(request("POST", "site.test", "/echo").body(()).unwrap(), false).unwrap();
    upload.send_data(Bytes::from(vec![b'x'; 3000]), true).unwrap();
    let response = tokio::time::timeout(PATIENCE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 413);

    // The connection still serves.
    assert_eq!(send(&client, request("GET", "site.test", "/").body(()).unwrap()).await.status(), 200);
}

#[tokio::test]
async fn a_rapid_reset_flood_is_cut_off_and_others_are_served() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |settings| {
        settings.http2.max_concurrent_streams = 8;
        settings.http2.max_client_resets = 50;
    })
    .await;
    let (client, driver, _) = connect(&proxy, &site).await;
    assert_eq!(send(&client, request("GET", "site.test", "/").body(()).unwrap()).await.status(), 200);

    // Open a stream to a slow route, cancel it at once, again and again.
    const BOUND: usize = 20_000;
    let mut opened = 0;
    while opened < BOUND && !driver.is_finished() {
        let Ok(mut ready) = client.clone().ready().await else { break };
        let Ok((response, mut stream)) =
            ready.send_request(request("GET", "site.test", "/slow").body(()).unwrap(), true)
        else {
            break;
        };
        stream.send_reset(Reason::CANCEL);
        drop(response);
        opened += 1;
        // As a flood over the network would: the frames go out as they are made.
        tokio::task::yield_now().await;
    }
    let ended = tokio::time::timeout(PATIENCE, driver).await.expect("the connection is closed").unwrap();
    let err = ended.expect_err("the proxy ends the flood with an error");
    assert_eq!(err.reason(), Some(Reason::ENHANCE_YOUR_CALM), "{err}");
    assert!(opened < BOUND, "cut off after {opened} streams");

    // Another client is served as ever.
    let (other, _driver, _) = connect(&proxy, &site).await;
    let response = send(&other, request("GET", "site.test", "/").body(()).unwrap()).await;
    assert_eq!(body(response).await, "b");
}

#[tokio::test]
async fn a_client_that_cancels_the_streams_it_started_is_sent_away() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |settings| settings.http2.max_client_resets = 20).await;
    let (client, driver, _) = connect(&proxy, &site).await;
    assert_eq!(send(&client, request("GET", "site.test", "/").body(()).unwrap()).await.status(), 200);

    // Each upload reaches the backend (the proxy is working for it), then is cancelled.
    let mut cancelled = 0;
    while cancelled < 1000 && !driver.is_finished() {
        let Ok(mut ready) = client.clone().ready().await else { break };
        let post = request("POST", "site.test", "/upload").body(()).unwrap();
        let Ok((_response, mut upload)) = ready.send_request(post, false) else { break };
        if upload.send_data(Bytes::from_static(b"piece"), false).is_err() {
            break;
        }
        let gone = async {
            while !driver.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            () = backend.pieces.notified() => {}
            () = gone => break,
            () = tokio::time::sleep(PATIENCE) => panic!("the upload never reached the backend"),
        }
        upload.send_reset(Reason::CANCEL);
        cancelled += 1;
    }
    let ended = tokio::time::timeout(PATIENCE, driver).await.expect("the connection is closed").unwrap();
    assert_eq!(ended.expect_err("GOAWAY").reason(), Some(Reason::ENHANCE_YOUR_CALM));
    assert!((20..30).contains(&cancelled), "sent away after {cancelled} cancelled streams");
}

#[tokio::test]
async fn idle_connections_and_a_stopping_proxy_send_goaway() {
    let backend = Backend::start("b").await;
    let (proxy, site, _dir) = start(&backend, |settings| settings.timeouts.header_read_ms = 300).await;

    // Idle past the header-read timeout: GOAWAY, and the connection ends cleanly.
    let (client, driver, _) = connect(&proxy, &site).await;
    assert_eq!(send(&client, request("GET", "site.test", "/").body(()).unwrap()).await.status(), 200);
    let ended = tokio::time::timeout(PATIENCE, driver).await.expect("the idle connection is closed").unwrap();
    assert!(ended.is_ok(), "a graceful GOAWAY: {ended:?}");

    // A stream in progress when the proxy stops is answered, then the connection ends.
    let (client, driver, _) = connect(&proxy, &site).await;
    let mut ready = client.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request("GET", "site.test", "/slow").body(()).unwrap(), true).unwrap();
    tokio::time::timeout(PATIENCE, backend.slow_started.notified()).await.expect("the slow request is in");
    let TlsProxy { _stop: stop, .. } = proxy;
    drop(stop);
    let response = tokio::time::timeout(PATIENCE, response).await.expect("answered while stopping").unwrap();
    assert_eq!(body(response).await, "slow");
    let ended = tokio::time::timeout(PATIENCE, driver).await.expect("the connection is closed").unwrap();
    assert!(ended.is_ok(), "a graceful GOAWAY: {ended:?}");
}
