//! Latency buckets link to traces: when traces are exported, a service's
//! `http_request_duration_seconds` buckets carry the trace id of a request they
//! counted as an OpenMetrics exemplar, and that trace reached the collector.

use testkit::System;
use testkit::otlp::Collector;

const TRACE_ID: &str = "5c0ffee0ddba11d00d5ca1ab1eb0a710";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_buckets_carry_the_trace_id_of_a_request_they_counted() {
    let collector = Collector::start().await;
    let sys = System::builder()
        .processes(env!("CARGO_BIN_EXE_weaprous"))
        .peers(1)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start()
        .await;
    let alice = sys.login(0, "user1", "password1").await;
    // The only request of its route, so its bucket's exemplar is this one.
    let me = alice
        .request(reqwest::Method::GET, "/me")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let scrape = |accept: &'static str| {
        let request = sys.client().get(format!("{}/metrics", sys.peer_url(0))).header("accept", accept);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let text = scrape(OPENMETRICS).await;
    let exemplar = format!("# {{trace_id=\"{TRACE_ID}\"}}");
    let bucket = text
        .lines()
        .find(|line| line.starts_with("http_request_duration_seconds_bucket{") && line.contains(&exemplar))
        .unwrap_or_else(|| panic!("no bucket with the exemplar {exemplar}:\n{text}"));
    assert!(bucket.contains("route=\"/me\"") && bucket.contains("method=\"GET\""), "{bucket}");
    assert!(kit::metrics::histogram_violations(&text).is_empty(), "{text}");
    // The classic text format has no exemplars.
    let classic = scrape("*/*").await;
    assert!(!classic.contains("# {"), "{classic}");

    // The exemplar leads to a trace the collector has.
    testkit::eventually("the request's span at the collector", || async {
        collector.trace(TRACE_ID).iter().any(|span| span.name == "GET /me")
    })
    .await;
    sys.shutdown().await;
}
