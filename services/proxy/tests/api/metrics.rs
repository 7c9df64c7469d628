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

/// The value of the sample `series` (name and labels as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_edge_counts_requests_by_vhost_and_status_class_and_those_in_flight() {
    let backend = Backend::start("b1").await;
    let mut dead = vhost("dead.test", Policy::RoundRobin, &[]);
    dead.upstreams.push(crate::helpers::dead_upstream().await);
    let proxy = TestProxy::start(config(vec![vhost("app.test", Policy::RoundRobin, &[&backend]), dead])).await;
    for _ in 0..3 {
        assert_eq!(proxy.get("app.test", "/").await.status(), 200);
    }
    let rejected = proxy.client.post(proxy.url("/reject")).header("host", "app.test").body("x").send().await.unwrap();
    assert_eq!(rejected.status(), 413);
    assert!(proxy.get("dead.test", "/").await.status().is_server_error());
    // A request still being answered counts in flight.
    let slow = tokio::spawn(proxy.client.get(proxy.url("/slow")).header("host", "app.test").send());
    backend.slow_started.notified().await;

    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, r#"proxy_requests_total{vhost="app.test",status_class="2xx"}"#), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"proxy_requests_total{vhost="app.test",status_class="4xx"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"proxy_requests_total{vhost="app.test",status_class="5xx"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"proxy_requests_total{vhost="dead.test",status_class="5xx"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"proxy_request_duration_seconds_count{vhost="app.test"}"#), Some(4.0), "{text}");
    assert_eq!(sample(&text, r#"proxy_requests_in_flight{vhost="app.test"}"#), Some(1.0), "{text}");
    assert!(kit::metrics::histogram_violations(&text).is_empty(), "{text}");

    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, r#"proxy_requests_in_flight{vhost="app.test"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, r#"proxy_requests_total{vhost="app.test",status_class="2xx"}"#), Some(4.0), "{text}");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reload_drops_the_series_of_the_backends_and_vhosts_it_removed() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let both =
        config(vec![vhost("app.test", Policy::RoundRobin, &[&b1, &b2]), vhost("old.test", Policy::RoundRobin, &[&b1])]);
    let proxy = TestProxy::start(both.clone()).await;
    for _ in 0..4 {
        assert_eq!(proxy.get("app.test", "/").await.status(), 200);
    }
    assert_eq!(proxy.get("old.test", "/").await.status(), 200);
    let up = |backend: &Backend| format!("proxy_backend_up{{backend=\"{}\"}}", backend.addr);
    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, &up(&b1)), Some(1.0), "{text}");
    assert!(text.contains("vhost=\"old.test\""), "{text}");

    // b1 and old.test leave: none of their series stays behind.
    proxy.proxy.reload(&config(vec![vhost("app.test", Policy::RoundRobin, &[&b2])])).await.unwrap();
    let text = scrape(&proxy).await;
    assert!(!text.contains(&b1.addr.to_string()), "{text}");
    assert!(!text.contains("vhost=\"old.test\""), "{text}");
    assert_eq!(sample(&text, &up(&b2)), Some(1.0), "{text}");
    assert!(text.contains(&format!("proxy_upstream_requests_total{{backend=\"{}\"}} 2\n", b2.addr)), "{text}");

    // b1 comes back: its series with it, up.
    proxy.proxy.reload(&both).await.unwrap();
    assert_eq!(proxy.get("old.test", "/").await.status(), 200);
    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, &up(&b1)), Some(1.0), "{text}");
    assert!(text.contains("vhost=\"old.test\""), "{text}");

    // b1 leaves and comes back while a request still holds it: the backend kept
    // across the two reloads is reported again.
    let slow = tokio::spawn(proxy.client.get(proxy.url("/slow")).header("host", "old.test").send());
    b1.slow_started.notified().await;
    proxy.proxy.reload(&config(vec![vhost("app.test", Policy::RoundRobin, &[&b2])])).await.unwrap();
    assert!(!scrape(&proxy).await.contains(&b1.addr.to_string()));
    proxy.proxy.reload(&both).await.unwrap();
    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, &up(&b1)), Some(1.0), "{text}");
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_metrics_listener_answers_whatever_the_host_where_a_vhost_shadows_the_main_one() {
    let backend = Backend::start("b1").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A vhost named after the proxy's own address, as `weaprous up` has one.
    let mut config = config(vec![vhost(&addr.to_string(), Policy::RoundRobin, &[&backend])]);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let proxy = proxy::Proxy::new(config).unwrap();
    let metrics_addr = proxy.metrics_addr().expect("the metrics listener is bound");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(proxy::serve(listener, proxy, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(client.get(format!("http://{addr}/")).send().await.unwrap().status(), 200);

    // On the main listener, that vhost's backend answers `/metrics`.
    let shadowed = client.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(shadowed.headers().get("x-backend").map(|value| value.to_str().unwrap()), Some("b1"));
    // On the metrics listener, the proxy does, whatever the Host.
    for host in [addr.to_string(), "anything.test".to_owned()] {
        let response = client.get(format!("http://{metrics_addr}/metrics")).header("host", &host).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-backend").is_none());
        let text = response.text().await.unwrap();
        let series = format!(r#"proxy_requests_total{{vhost="{addr}",status_class="2xx"}}"#);
        assert!(sample(&text, &series).is_some_and(|count| count >= 1.0), "{text}");
    }
    let health = client.get(format!("http://{metrics_addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let other = client.get(format!("http://{metrics_addr}/get-list")).send().await.unwrap();
    assert_eq!(other.status(), 404);
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn redirects_to_https_count_as_the_vhosts_3xx() {
    let backend = Backend::start("b1").await;
    let text =
        format!(r#"host "site.test" {{ proxy_pass http://127.0.0.1:{}; redirect_to_https; }}"#, backend.addr.port());
    let proxy = TestProxy::start(proxy::Config::from_conf_str(&text, "127.0.0.1").unwrap()).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(proxy.url("/"))
        .header("host", "site.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    let text = scrape(&proxy).await;
    assert_eq!(sample(&text, r#"proxy_requests_total{vhost="site.test",status_class="3xx"}"#), Some(1.0), "{text}");
    proxy.shutdown().await.unwrap();
}
