//! The proxy's `/metrics` after real traffic: every histogram keeps its invariants,
//! and clients cannot mint series by inventing HTTP methods.

use proxy::config::Policy;

use crate::helpers::{Backend, TestProxy, config, raw_request, vhost};

/// The proxy's own `/metrics`, asked with a Host that names no block.
async fn scrape(proxy: &TestProxy) -> String {
    let response = proxy.get("proxy.internal", "/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn every_histogram_keeps_its_invariants_after_traffic() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let mut config = config(vec![vhost("app.test", Policy::RoundRobin, &[&b1, &b2])]);
    // Several workers, so the shards have to be added up.
    config.workers = Some(3);
    let proxy = TestProxy::start(config).await;
    for _ in 0..30 {
        assert_eq!(proxy.get("app.test", "/").await.status(), 200);
    }
    let echoed = proxy.client.post(proxy.url("/echo")).header("host", "app.test").body("hi").send().await.unwrap();
    assert_eq!(echoed.text().await.unwrap(), "hi");
    // One slow answer, so the observations span more than one bucket.
    assert_eq!(proxy.get("app.test", "/slow").await.status(), 200);

    let text = scrape(&proxy).await;
    let violations = kit::metrics::histogram_violations(&text);
    assert!(violations.is_empty(), "{violations:#?}\n{text}");
    // Not vacuous: both backends' series were there, and they add up to the traffic.
    let counts: u64 = text
        .lines()
        .filter(|line| line.starts_with("proxy_upstream_duration_seconds_count{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 32, "{text}");
    for backend in [b1.addr, b2.addr] {
        let inf = format!("le=\"+Inf\",backend=\"{backend}\"");
        assert!(text.contains(&inf) || text.contains(&format!("backend=\"{backend}\",le=\"+Inf\"")), "{text}");
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn invented_methods_add_no_series() {
    let backend = Backend::start("b1").await;
    let proxy = TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[&backend])])).await;
    let junk = |n: usize| format!("FOOBAR{n} / HTTP/1.0\r\nHost: app.test\r\n\r\n");
    // Every kind of series once: a known method, an invented one, a proxy-made error.
    assert_eq!(proxy.get("app.test", "/").await.status(), 200);
    assert!(raw_request(proxy.addr, &junk(0)).await.starts_with("HTTP/1.1 200"));
    assert!(proxy.get("nobody.test", "/").await.status().is_client_error());
    let before = scrape(&proxy).await;

    for n in 1..=50 {
        assert!(raw_request(proxy.addr, &junk(n)).await.starts_with("HTTP/1.1 200"), "FOOBAR{n}");
        let to_nobody = format!("FOOBAR{n} / HTTP/1.0\r\nHost: nobody.test\r\n\r\n");
        assert!(raw_request(proxy.addr, &to_nobody).await.starts_with("HTTP/1.1 4"), "FOOBAR{n} to nobody");
    }
    let after = scrape(&proxy).await;
    assert_eq!(before.lines().count(), after.lines().count(), "before:\n{before}\nafter:\n{after}");
    assert!(!after.contains("FOOBAR"), "{after}");
    // ...and the requests were counted, in the series that were there.
    assert!(after.contains(&format!("proxy_upstream_requests_total{{backend=\"{}\"}} 52\n", backend.addr)), "{after}");
    proxy.shutdown().await.unwrap();
}
