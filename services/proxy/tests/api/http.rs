use std::time::{Duration, Instant};

use proxy::config::{Limits, Policy, Timeouts};
use wire::headers::PROXY_ERROR;

use crate::helpers::{Backend, TestProxy, config, vhost};

#[tokio::test]
async fn forwarded_headers_are_added_and_hop_by_hop_headers_removed() {
    let backend = Backend::start("b").await;
    let proxy = TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])])).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let response = proxy
        .client
        .get(proxy.url("/headers"))
        .header("host", "App.Test")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(seen["host"][0], "App.Test", "the Host goes through as the browser sent it");
    assert_eq!(seen["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"][0], "http");
    assert_eq!(seen["x-forwarded-host"][0], "App.Test");
    assert_eq!(seen["traceparent"][0], traceparent, "the trace continues");
    assert_eq!(seen["tracestate"][0], "vendor=1");
    assert!(seen.get("x-hop").is_none(), "{seen}");
}

#[tokio::test]
async fn a_slow_upstream_is_a_504() {
    let backend = Backend::start("slow").await;
    let mut config = config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])]);
    config.timeouts = Timeouts { upstream_ms: 200, ..Timeouts::default() };
    let proxy = TestProxy::start(config).await;

    let started = Instant::now();
    let response = proxy.get("app.test", "/slow").await;
    assert_eq!(response.status(), 504);
    assert_eq!(response.headers()[PROXY_ERROR], "upstream-timeout");
    assert!(started.elapsed() < Duration::from_millis(650), "took {:?}", started.elapsed());
    // A slow backend is not a dead one.
    assert_eq!(proxy.backend_for("app.test").await, "slow");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let backend = Backend::start("b").await;
    let mut config = config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])]);
    config.limits = Limits { max_body_bytes: 1000, ..Limits::default() };
    let proxy = TestProxy::start(config).await;

    let big = proxy.client.post(proxy.url("/echo")).header("host", "app.test").body("x".repeat(1001)).send();
    let response = big.await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()[PROXY_ERROR], "body-too-large");

    let fits = proxy.client.post(proxy.url("/echo")).header("host", "app.test").body("y".repeat(1000)).send();
    assert_eq!(fits.await.unwrap().text().await.unwrap(), "y".repeat(1000));
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_refuses_new_ones() {
    let backend = Backend::start("b").await;
    let proxy = TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])])).await;
    let addr = proxy.addr;
    let client = proxy.client.clone();

    let in_flight =
        tokio::spawn(async move { client.get(format!("http://{addr}/slow")).header("host", "app.test").send().await });
    // The backend has the request (and will answer 700 ms later): shut down now.
    backend.slow_started.notified().await;
    proxy.shutdown().await.unwrap();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slow");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_a_431() {
    let backend = Backend::start("b").await;
    let mut config = config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])]);
    config.limits = Limits { max_header_bytes: 4096, ..Limits::default() };
    let proxy = TestProxy::start(config).await;

    let big = proxy.client.get(proxy.url("/")).header("host", "app.test").header("x-big", "a".repeat(5000)).send();
    assert_eq!(big.await.unwrap().status(), 431);
    let fits = proxy.client.get(proxy.url("/")).header("host", "app.test").header("x-big", "a".repeat(3000)).send();
    assert_eq!(fits.await.unwrap().status(), 200);
}
