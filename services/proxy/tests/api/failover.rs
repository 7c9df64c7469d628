use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proxy::config::{Policy, VhostConfig};
use tokio::sync::Notify;
use wire::headers::PROXY_ERROR;

use crate::helpers::{Backend, TestProxy, config, dead_upstream, vhost};

#[tokio::test]
async fn killing_a_backend_mid_run_fails_no_request() {
    let (b1, mut b2, b3) = (Backend::start("b1").await, Backend::start("b2").await, Backend::start("b3").await);
    let proxy = Arc::new(TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[&b1, &b2, &b3])])).await);

    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 150;
    let answered = Arc::new(AtomicUsize::new(0));
    let halfway = Arc::new(Notify::new());
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (proxy, answered, halfway) = (proxy.clone(), answered.clone(), halfway.clone());
        clients.spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..PER_CLIENT {
                let response = proxy.get("app.test", "/").await;
                assert_eq!(response.status(), 200, "{:?}", response.headers().get(PROXY_ERROR));
                seen.push(response.headers()["x-backend"].to_str().unwrap().to_owned());
                if answered.fetch_add(1, Ordering::Relaxed) + 1 == CLIENTS * PER_CLIENT / 3 {
                    halfway.notify_one();
                }
            }
            seen
        });
    }
    halfway.notified().await;
    b2.kill().await;
    let killed_at = answered.load(Ordering::Relaxed);

    let mut served = Vec::new();
    while let Some(seen) = clients.join_next().await {
        served.extend(seen.unwrap());
    }
    assert_eq!(served.len(), CLIENTS * PER_CLIENT);
    assert!(served.iter().filter(|name| *name == "b2").count() > 0, "b2 served before it was killed");
    assert!(killed_at < CLIENTS * PER_CLIENT, "the kill happened mid-run");
    let backends = proxy.proxy.backends("app.test");
    assert_eq!(backends.iter().filter(|(_, up)| !up).map(|(addr, _)| *addr).collect::<Vec<_>>(), vec![b2.addr]);
}

#[tokio::test]
async fn a_refused_post_is_replayed_on_the_next_backend_with_its_body() {
    let live = Backend::start("live").await;
    let vhost = VhostConfig {
        name: "app.test".into(),
        upstreams: vec![dead_upstream().await, live.upstream()],
        policy: Policy::RoundRobin,
        default: false,
        paths: Default::default(),
        tls: None,
        https: Default::default(),
    };
    let proxy = TestProxy::start(config(vec![vhost])).await;

    let body = "x".repeat(100_000);
    let response =
        proxy.client.post(proxy.url("/echo")).header("host", "app.test").body(body.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-backend"], "live");
    assert_eq!(response.text().await.unwrap(), body);
}

#[tokio::test]
async fn every_backend_down_is_a_fast_502_never_a_hang() {
    let vhost = VhostConfig {
        name: "app.test".into(),
        upstreams: vec![dead_upstream().await, dead_upstream().await],
        policy: Policy::RoundRobin,
        default: false,
        paths: Default::default(),
        tls: None,
        https: Default::default(),
    };
    let proxy = TestProxy::start(config(vec![vhost])).await;

    for _ in 0..3 {
        let started = Instant::now();
        let response = proxy.get("app.test", "/").await;
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        assert_eq!(response.status(), 502);
        assert_eq!(response.headers()[PROXY_ERROR], "upstream-unavailable");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error");
    }
    assert!(proxy.proxy.backends("app.test").iter().all(|(_, up)| !up));
    assert_eq!(proxy.get("proxy.internal", "/readyz").await.status(), 503);
}

#[tokio::test]
async fn health_probes_take_a_failing_backend_out_and_bring_it_back() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let proxy = TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[&b1, &b2])])).await;

    b2.set_healthy(false);
    proxy.proxy.check_health().await;
    for _ in 0..4 {
        assert_eq!(proxy.backend_for("app.test").await, "b1");
    }
    b2.set_healthy(true);
    proxy.proxy.check_health().await;
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..4 {
        seen.push(proxy.backend_for("app.test").await);
    }
    assert!(seen.iter().any(|name| name == "b2"), "{seen:?}");
}
