//! Every service's `/metrics` parses as Prometheus text, in both formats, its
//! counters move with traffic, and its histograms keep their invariants.

use std::collections::HashMap;

use testkit::System;

/// Parses the text exposition format strictly enough to catch a broken line:
/// `# HELP`/`# TYPE`/`# UNIT`/`# EOF` comments, and `name{labels} value` samples.
/// Returns each sample (`name{labels}` as written) with its value.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().expect("# TYPE names a metric");
                    let kind = words.next().expect("# TYPE gives a type");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "unknown", "info", "stateset", "gaugehistogram"]
                            .contains(&kind),
                        "{line}"
                    );
                    typed.insert(name.to_owned());
                }
                Some("HELP") | Some("UNIT") => {}
                Some("EOF") => {}
                _ => panic!("unexpected comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample needs a value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number in: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name in: {line}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "bad labels in: {line}");
        }
        assert!(typed.iter().any(|family| name.starts_with(family.as_str())), "sample before its # TYPE: {line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// Prometheus's `Accept`: OpenMetrics first, the classic text format after.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn metrics(client: &reqwest::Client, base: &str, host: Option<&str>) -> HashMap<String, f64> {
    let mut request = client.get(format!("{base}/metrics")).header("accept", PROMETHEUS_ACCEPT);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{base}/metrics");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    parse(&response.text().await.unwrap())
}

fn sum(samples: &HashMap<String, f64>, prefix: &str, containing: &str) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| series.starts_with(prefix) && series.contains(containing))
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exposes_metrics_that_move_with_traffic() {
    let sys = System::builder().peers(2).proxy().start().await;
    let client = sys.client();
    let proxy_own = Some("127.0.0.1");
    let before_peer = metrics(client, &sys.peer_url(0), None).await;
    let before_tracker = metrics(client, &sys.tracker_url(), None).await;
    let before_auth = metrics(client, &sys.auth_url(), None).await;
    let before_proxy = metrics(client, &sys.proxy_url(), proxy_own).await;

    // Traffic: a log-in through the proxy, channel messages, a direct message.
    let alice = testkit::TestUser::login(client, &sys.peer_url(0), "user1", "password1").await;
    let _bob = sys.login(1, "user2", "password2").await;
    let via_proxy = alice.via(&sys.proxy_url(), "localhost");
    assert_eq!(via_proxy.get("/me").await.status, 200);
    alice.post("/join-channel", "channel_name=general").await;
    for i in 0..3 {
        assert_eq!(
            alice.post("/send-channel-message", &format!("channel_name=general&message=m{i}")).await.status,
            200
        );
    }
    assert_eq!(alice.post("/send-peer", "username=user2&message=hi").await.status, 200);

    let peer = metrics(client, &sys.peer_url(0), None).await;
    let tracker = metrics(client, &sys.tracker_url(), None).await;
    let auth = metrics(client, &sys.auth_url(), None).await;
    let proxy = metrics(client, &sys.proxy_url(), proxy_own).await;

    let moved = |after: &HashMap<String, f64>, before: &HashMap<String, f64>, prefix: &str, containing: &str| {
        sum(after, prefix, containing) - sum(before, prefix, containing)
    };
    assert_eq!(moved(&peer, &before_peer, "http_requests_total", "route=\"/send-channel-message\""), 3.0);
    assert_eq!(moved(&peer, &before_peer, "peer_direct_messages_sent_total", ""), 1.0);
    assert_eq!(moved(&peer, &before_peer, "peer_direct_messages_delivered_total", ""), 1.0);
    assert!(moved(&peer, &before_peer, "http_request_duration_seconds_count", "route=\"/send-peer\"") >= 1.0);
    assert_eq!(moved(&tracker, &before_tracker, "tracker_channel_messages_stored_total", ""), 3.0);
    assert!(moved(&tracker, &before_tracker, "http_requests_total", "route=\"/lookup\"") >= 1.0);
    assert_eq!(tracker.get("tracker_peers_live").copied(), Some(2.0));
    assert_eq!(moved(&auth, &before_auth, "auth_logins_total", "outcome=\"ok\""), 2.0);
    assert!(moved(&proxy, &before_proxy, "proxy_upstream_requests_total", "") >= 1.0);
    assert_eq!(sum(&proxy, "proxy_backend_up", ""), 4.0, "every backend is up");
    sys.shutdown().await;
}

/// `/metrics` in the format an `accept` asks for: its content type and text.
async fn scrape(client: &reqwest::Client, base: &str, host: Option<&str>, accept: &str) -> (String, String) {
    let mut request = client.get(format!("{base}/metrics")).header("accept", accept);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{base}/metrics");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_histogram_of_every_service_keeps_its_invariants_after_traffic() {
    let sys = System::builder().peers(2).proxy().start().await;
    let client = sys.client();

    // Traffic of every kind: log-ins through the proxy, channel and direct messages,
    // a page, a wrong method, a missing path, an invented method.
    let alice = testkit::TestUser::login(client, &sys.peer_url(0), "user1", "password1").await;
    let _bob = sys.login(1, "user2", "password2").await;
    let via_proxy = alice.via(&sys.proxy_url(), "localhost");
    for i in 0..5 {
        assert_eq!(via_proxy.get("/me").await.status, 200);
        assert_eq!(via_proxy.get("/no-such-page").await.status, 404);
        alice.post("/join-channel", "channel_name=general").await;
        alice.post("/send-channel-message", &format!("channel_name=general&message=m{i}")).await;
    }
    assert_eq!(alice.post("/send-peer", "username=user2&message=hi").await.status, 200);
    let junk = client.request(reqwest::Method::from_bytes(b"FOOBAR").unwrap(), format!("{}/me", sys.peer_url(0)));
    assert!(junk.send().await.unwrap().status().is_client_error());

    let services = [
        ("peer 0", sys.peer_url(0), None),
        ("peer 1", sys.peer_url(1), None),
        ("tracker", sys.tracker_url(), None),
        ("auth", sys.auth_url(), None),
        ("proxy", sys.proxy_url(), Some("127.0.0.1")),
    ];
    for (name, base, host) in &services {
        for accept in [PROMETHEUS_ACCEPT, "*/*"] {
            let (content_type, text) = scrape(client, base, *host, accept).await;
            let violations = kit::metrics::histogram_violations(&text);
            assert!(violations.is_empty(), "{name} ({content_type}): {violations:#?}\n{text}");
            // Not vacuous: the histograms had series after the traffic.
            let buckets = text.lines().filter(|line| line.contains("_bucket{")).count();
            assert!(buckets >= 17, "{name}: {buckets} bucket lines\n{text}");
            // The RED and process metrics of issue 12 are there.
            let expected: &[&str] = if *name == "proxy" {
                &["proxy_requests_total{", "proxy_request_duration_seconds_count{", "proxy_requests_in_flight{"]
            } else {
                &["http_requests_total{", "http_request_duration_seconds_count{", "http_requests_in_flight "]
            };
            for series in expected.iter().chain(&["process_cpu_seconds_total ", "weaprous_build_info{"]) {
                assert!(text.contains(series), "{name}: no {series}\n{text}");
            }
            if accept == PROMETHEUS_ACCEPT {
                assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
                assert!(text.ends_with("# EOF\n"), "{name}");
            } else {
                // The classic text format: counters declared with their `_total`.
                assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
                assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{name}\n{text}");
                for line in text.lines().filter(|line| line.starts_with("# TYPE ") && line.ends_with(" counter")) {
                    assert!(line.trim_end_matches(" counter").ends_with("_total"), "{name}: {line}");
                }
            }
        }
    }
    sys.shutdown().await;
}
