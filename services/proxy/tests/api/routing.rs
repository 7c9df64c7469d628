use proxy::config::{PathRule, PathRules, Policy, VhostConfig};
use wire::headers::PROXY_ERROR;

use crate::helpers::{Backend, TestProxy, config, raw_request, vhost};

#[tokio::test]
async fn round_robin_keeps_one_counter_per_vhost() {
    let (b1, b2, b3) = (Backend::start("b1").await, Backend::start("b2").await, Backend::start("b3").await);
    let proxy = TestProxy::start(config(vec![
        vhost("a.test", Policy::RoundRobin, &[&b1, &b2, &b3]),
        vhost("b.test", Policy::RoundRobin, &[&b1, &b2]),
    ]))
    .await;

    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for _ in 0..6 {
        on_a.push(proxy.backend_for("a.test").await);
        on_b.push(proxy.backend_for("b.test").await);
    }
    assert_eq!(on_a, ["b1", "b2", "b3", "b1", "b2", "b3"]);
    assert_eq!(on_b, ["b1", "b2", "b1", "b2", "b1", "b2"]);
}

#[tokio::test]
async fn hosts_match_case_insensitively_and_by_port() {
    let (exact, any_port) = (Backend::start("exact").await, Backend::start("any-port").await);
    let proxy = TestProxy::start(config(vec![
        vhost("site.test:8080", Policy::RoundRobin, &[&exact]),
        vhost("site.test", Policy::RoundRobin, &[&any_port]),
    ]))
    .await;

    assert_eq!(proxy.backend_for("site.test:8080").await, "exact");
    assert_eq!(proxy.backend_for("SITE.Test:8080").await, "exact");
    assert_eq!(proxy.backend_for("site.test:9090").await, "any-port");
    assert_eq!(proxy.backend_for("site.test").await, "any-port");
}

#[tokio::test]
async fn an_unknown_host_is_a_404_with_a_json_error() {
    let backend = Backend::start("b").await;
    let proxy = TestProxy::start(config(vec![vhost("known.test", Policy::RoundRobin, &[&backend])])).await;

    let response = proxy.get("unknown.test", "/").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()[PROXY_ERROR], "unknown-vhost");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(body["message"].as_str().unwrap().contains("no virtual host"), "{body}");
}

#[tokio::test]
async fn a_request_without_host_is_a_400_not_a_hang() {
    let backend = Backend::start("b").await;
    let proxy = TestProxy::start(config(vec![vhost("known.test", Policy::RoundRobin, &[&backend])])).await;

    let reply = raw_request(proxy.addr, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.0 400") || reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("x-proxy-error: no-host"), "{reply}");
    assert!(reply.contains(r#""status":"error""#), "{reply}");

    let reply = raw_request(proxy.addr, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn the_default_vhost_answers_unknown_hosts_and_the_proxy_answers_its_own_health() {
    let (main, other) = (Backend::start("main").await, Backend::start("other").await);
    let mut main_vhost = vhost("main.test", Policy::RoundRobin, &[&main]);
    main_vhost.default = true;
    let other_vhost: VhostConfig = vhost("other.test", Policy::RoundRobin, &[&other]);
    let proxy = TestProxy::start(config(vec![other_vhost, main_vhost])).await;

    assert_eq!(proxy.backend_for("whatever.example").await, "main");
    assert_eq!(proxy.backend_for("other.test").await, "other");

    // The proxy's own health routes answer for a Host that no block names...
    let health = proxy.get("proxy.internal", "/healthz").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-backend").is_none());
    assert_eq!(proxy.get("proxy.internal", "/readyz").await.status(), 200);
    // ...while a vhost's /healthz belongs to its backend.
    let backend_health = proxy.get("other.test", "/healthz").await;
    assert_eq!(backend_health.status(), 200);
    assert_eq!(backend_health.headers()["x-backend"], "other");
}

#[tokio::test]
async fn least_conn_sends_new_requests_away_from_a_busy_backend() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let proxy = TestProxy::start(config(vec![vhost("app.test", Policy::LeastConn, &[&b1, &b2])])).await;

    // Both idle: the first request goes to b1 and stays there for 700 ms.
    let slow = tokio::spawn(proxy.client.get(proxy.url("/slow")).header("host", "app.test").send());
    b1.slow_started.notified().await;
    for _ in 0..4 {
        assert_eq!(proxy.backend_for("app.test").await, "b2");
    }
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.headers()["x-backend"], "b1");
}

#[tokio::test]
async fn denied_paths_are_a_403_in_every_spelling_and_the_rest_passes() {
    let backend = Backend::start("b").await;
    let mut public = vhost("public.test", Policy::RoundRobin, &[&backend]);
    public.paths = PathRules::new(vec![
        PathRule { path: "/metrics".into(), allow: false },
        PathRule { path: "/receive-message".into(), allow: false },
    ]);
    let open = vhost("open.test", Policy::RoundRobin, &[&backend]);
    let proxy = TestProxy::start(config(vec![public, open])).await;

    let response = proxy.get("public.test", "/metrics").await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()[PROXY_ERROR], "path-denied");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(body["message"].as_str().unwrap().contains("not served"), "{body}");

    for target in ["/metrics?x=1", "/METRICS", "//metrics", "/./metrics", "/a/../metrics", "/%6detrics", "/metrics/"] {
        let reply = raw_request(proxy.addr, &format!("GET {target} HTTP/1.0\r\nHost: public.test\r\n\r\n")).await;
        assert!(reply.starts_with("HTTP/1.0 403") || reply.starts_with("HTTP/1.1 403"), "{target}: {reply}");
    }
    let signed =
        "POST /receive-message HTTP/1.1\r\nHost: public.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let reply = raw_request(proxy.addr, signed).await;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("path-denied"), "{reply}");

    assert_eq!(proxy.get("public.test", "/metricsfoo").await.headers()["x-backend"], "b");
    assert_eq!(proxy.get("public.test", "/get-list").await.headers()["x-backend"], "b");
    let other_vhost = proxy.get("open.test", "/metrics").await;
    assert_eq!(other_vhost.status(), 200, "rules belong to their vhost");
}

/// The shipped proxy.conf files keep each service's internal routes
/// (`wire::routes::internal`) off every public vhost, and pass the rest.
#[test]
fn the_shipped_configs_deny_every_internal_route() {
    use wire::routes::internal::{AUTH, PEER, TRACKER};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files =
        ["config/proxy.conf", "config/proxy.compose.conf", "k8s/base/proxy.conf", "k8s/components/jaeger/proxy.conf"];
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let config = proxy::Config::from_conf_str(&text, "127.0.0.1").unwrap();
        for vhost in &config.vhosts {
            let internal = match vhost.upstreams[0].port {
                9001 => PEER,
                9000 => TRACKER,
                9100 => AUTH,
                _ => continue,
            };
            for path in internal {
                assert!(!vhost.paths.allows(path), "{file}: {} passes {path}", vhost.name);
            }
            for path in ["/", "/login-options", "/healthz", "/get-list"] {
                assert!(vhost.paths.allows(path), "{file}: {} denies {path}", vhost.name);
            }
        }
    }
}
