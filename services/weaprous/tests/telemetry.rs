//! One trace per user action across every service, exported over OTLP; metrics that
//! move with traffic; nothing secret in spans or logs; a dead collector is harmless.

use std::collections::HashMap;

use testkit::otlp::{Collector, Span};
use testkit::{System, TestUser};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SECRET_TEXT: &str = "the-eagle-lands-at-midnight";

fn system(collector: &Collector) -> testkit::Builder {
    System::builder()
        .processes(env!("CARGO_BIN_EXE_weaprous"))
        .proxy()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
}

/// Logs a user in through the proxy and returns them with the peer that holds them.
async fn login_via_proxy(sys: &System, user: &str, password: &str) -> (TestUser, String) {
    let response = sys
        .client()
        .post(format!("{}/login", sys.proxy_url()))
        .header("host", "localhost")
        .header("accept", "application/json")
        .body(format!("username={user}&password={password}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served_by = response.headers()["x-served-by"].to_str().unwrap().to_owned();
    let sticky: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter(|cookie| !cookie.starts_with(wire::headers::SESSION_COOKIE))
        .map(|cookie| cookie.split(';').next().unwrap().to_owned())
        .collect();
    let token = testkit::session_token(response.headers()).unwrap();
    let user = TestUser::from_token(sys.client(), &sys.proxy_url(), user, token).via(&sys.proxy_url(), "localhost");
    (user.with_extra_cookies(&sticky.join("; ")), served_by)
}

/// Whether `line` is a JSON access-log line for `route`.
fn is_access_line(line: &str, route: &str) -> bool {
    line.contains(r#""target":"access""#) && line.contains(&format!(r#""route":"{route}""#))
}

fn by_service(spans: &[Span]) -> HashMap<&str, Vec<&Span>> {
    let mut map: HashMap<&str, Vec<&Span>> = HashMap::new();
    for span in spans {
        map.entry(span.service.as_str()).or_default().push(span);
    }
    map
}

fn find<'a>(spans: &'a [Span], service: &str, name: &str) -> &'a Span {
    spans.iter().find(|span| span.service == service && span.name == name).unwrap_or_else(|| {
        panic!(
            "no `{name}` span from {service}; got {:#?}",
            spans.iter().map(|s| (&s.service, &s.name)).collect::<Vec<_>>()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_through_the_proxy_is_one_trace_across_every_service() {
    let collector = Collector::start().await;
    let sys = system(&collector).peers(2).start().await;
    // Probes and scrapes, of every service and through the proxy: none is traced.
    let probed = probe_everything(&sys).await;
    let (alice, alice_peer) = login_via_proxy(&sys, "user1", "password1").await;
    let (mut bob, mut bob_peer) = login_via_proxy(&sys, "user2", "password2").await;
    if bob_peer == alice_peer {
        // Sticky spreading put both on one peer: log bob in directly on the other.
        let other = if alice_peer.ends_with(&sys.peer_port(0).to_string()) { 1 } else { 0 };
        bob = sys.login(other, "user2", "password2").await;
        bob_peer = format!("peer@127.0.0.1:{}", sys.peer_port(other));
    }
    assert_ne!(alice_peer, bob_peer);
    let _ = bob.get("/me").await;

    let sent = alice
        .request(reqwest::Method::POST, "/send-peer")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body(format!("username=user2&message={SECRET_TEXT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200, "{:?}", sent.text().await);

    testkit::eventually("the DM's spans from proxy, both peers and the tracker", || async {
        let services = by_service(&collector.trace(TRACE_ID)).keys().map(|s| s.to_string()).collect::<Vec<_>>();
        ["proxy", "peer", "tracker"].iter().all(|wanted| services.iter().any(|s| s == wanted))
            && collector.trace(TRACE_ID).iter().any(|span| span.name == "POST /receive-message" && span.kind == 2)
            && collector.trace(TRACE_ID).iter().any(|span| span.name == "POST /send-peer" && span.kind == 2)
    })
    .await;
    testkit::eventually("the log-ins' spans from auth", || async {
        collector.spans().iter().any(|span| span.service == "auth")
    })
    .await;
    let trace = collector.trace(TRACE_ID);
    let parent_of = |span: &Span| trace.iter().find(|candidate| candidate.span_id == span.parent_span_id).cloned();
    let descends_from = |span: &Span, ancestor: &Span| {
        let mut current = span.clone();
        while let Some(parent) = parent_of(&current) {
            if parent.span_id == ancestor.span_id {
                return true;
            }
            current = parent;
        }
        false
    };

    // The proxy continues the caller's trace; the sender's peer continues the proxy's.
    let proxy = trace.iter().find(|span| span.service == "proxy").expect("a proxy span");
    assert_eq!(proxy.parent_span_id, CALLER_SPAN, "the proxy's span is the caller's child");
    let send = find(&trace, "peer", "POST /send-peer");
    assert!(descends_from(send, proxy), "the peer's span descends from the proxy's");
    // The sender's peer asks the tracker where bob is: a client span, then the
    // tracker's server span under it.
    let lookup = find(&trace, "tracker", "GET /lookup");
    let lookup_call = parent_of(lookup).expect("the lookup's client span");
    assert_eq!((lookup_call.service.as_str(), lookup_call.kind), ("peer", 3));
    assert!(descends_from(&lookup_call, send));
    // Then it hands the message to bob's peer.
    let receive = trace.iter().find(|span| span.name == "POST /receive-message" && span.kind == 2).unwrap();
    let delivery = parent_of(receive).expect("the delivery's client span");
    assert_eq!(delivery.kind, 3);
    assert!(descends_from(&delivery, send));
    assert_ne!(receive.attributes.get("service"), None);
    assert_eq!(
        trace.iter().filter(|span| span.name == "GET /lookup" && span.kind == 2).count(),
        1,
        "one lookup per DM"
    );

    // Names and attributes after OpenTelemetry's HTTP conventions, numbers as numbers.
    assert_eq!(proxy.name, "POST", "a proxy span knows no route: the method alone");
    assert_eq!(proxy.kind, 2);
    assert_eq!(proxy.attributes.get("http.request.method").map(String::as_str), Some("POST"));
    assert_eq!(proxy.attributes.get("url.path").map(String::as_str), Some("/send-peer"));
    assert_eq!(proxy.attributes.get("server.address").map(String::as_str), Some("localhost"));
    assert!(proxy.int_attributes.contains_key("server.port"), "{:?}", proxy.attributes);
    assert_eq!(proxy.int_attributes.get("http.response.status_code"), Some(&200));
    assert_eq!(send.attributes.get("http.route").map(String::as_str), Some("/send-peer"));
    assert_eq!(send.attributes.get("http.request.method").map(String::as_str), Some("POST"));
    assert_eq!(send.int_attributes.get("http.response.status_code"), Some(&200));
    assert_eq!(lookup_call.name, "GET", "a client span without a route template: the method alone");
    assert_eq!(lookup_call.int_attributes.get("http.response.status_code"), Some(&200));
    assert!(lookup_call.int_attributes.get("server.port").is_some_and(|port| *port > 0));
    for span in &trace {
        let clutter: Vec<&String> = span
            .attributes
            .keys()
            .filter(|key| {
                ["busy_ns", "idle_ns"].contains(&key.as_str()) || key.starts_with("code.") || key.starts_with("thread.")
            })
            .collect();
        assert!(clutter.is_empty(), "{} carries {clutter:?}", span.name);
        assert!(!span.name.ends_with(' '), "a span name with an empty route: {:?}", span.name);
        // Every span says which build and which process made it.
        assert!(span.resource.contains_key("service.version"), "{:?}", span.resource);
        assert!(span.resource.contains_key("service.instance.id"), "{:?}", span.resource);
    }
    let instance = |span: &Span| span.resource["service.instance.id"].clone();
    assert_ne!(instance(send), instance(receive), "two peers are two instances");
    assert_ne!(instance(send), instance(lookup), "a peer and the tracker are two instances");

    // The probes and scrapes made before exported nothing: everything the services
    // made after them (the log-ins, this message) has arrived.
    let routine: Vec<(String, String)> = collector
        .spans()
        .iter()
        .filter(|span| {
            let path = span.attributes.get("http.route").or(span.attributes.get("url.path"));
            path.is_some_and(|path| ["/healthz", "/readyz", "/metrics", "/heartbeat"].contains(&path.as_str()))
        })
        .map(|span| (span.service.clone(), span.name.clone()))
        .collect();
    assert!(probed > 0);
    assert_eq!(routine, [], "probes, scrapes and heartbeats are not traced by default");

    // The log lines of the message lead to its trace: one access-log line from the
    // proxy and one from the sender's peer, each with the trace id, and each naming
    // its span once.
    let trace_id_field = format!(r#""trace_id":"{TRACE_ID}""#);
    testkit::eventually("the access-log lines of the message", || async {
        sys.logs().iter().filter(|line| is_access_line(line, "/send-peer")).count() >= 2
    })
    .await;
    let logs = sys.logs();
    let access: Vec<&String> = logs.iter().filter(|line| is_access_line(line, "/send-peer")).collect();
    assert_eq!(access.len(), 2, "one line from the proxy, one from the peer: {access:#?}");
    for line in &access {
        assert!(line.contains(&trace_id_field), "{line}");
        assert!(line.contains(r#""status":200"#) && line.contains(r#""method":"POST""#), "{line}");
        assert!(line.contains(r#""client":"#) && line.contains(r#""vhost":"#), "{line}");
        assert!(!line.contains(r#""span":"#), "the current span is in the span list already: {line}");
    }

    // Nothing secret in any span, from any service.
    let everything = format!("{:?}", collector.spans());
    for secret in ["password1", "password2", SECRET_TEXT, alice.token.as_str(), bob.token.as_str()] {
        assert!(!everything.contains(secret), "a span carries a secret: {secret}");
    }
    // Nor in any log line.
    let logs = sys.logs().join("\n");
    for secret in ["password1", "password2", SECRET_TEXT, alice.token.as_str(), bob.token.as_str()] {
        assert!(!logs.contains(secret), "a log line carries a secret: {secret}");
    }
    sys.shutdown().await;
}

/// Asks every service, directly and through the proxy, for `/healthz`, `/readyz` and
/// `/metrics`; returns how many answered 200.
async fn probe_everything(sys: &System) -> usize {
    let mut bases = vec![sys.tracker_url(), sys.auth_url(), sys.peer_url(0), sys.peer_url(1)];
    bases.push(sys.proxy_url());
    let mut answered = 0;
    for base in bases {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let response = sys.client().get(format!("{base}{path}")).header("host", "localhost").send().await.unwrap();
            answered += usize::from(response.status() == 200);
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_serve_normally_with_the_collector_down_and_do_not_flood_the_logs() {
    let sys = System::builder()
        .processes(env!("CARGO_BIN_EXE_weaprous"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .peers(2)
        .start()
        .await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    for i in 0..30 {
        assert_eq!(alice.post("/send-peer", &format!("username=user2&message=m{i}")).await.status, 200);
    }
    assert_eq!(bob.get("/get-received-messages").await.body.as_array().unwrap().len(), 30);
    let logs = sys.logs();
    let complaints = logs
        .iter()
        .filter(|line| line.to_lowercase().contains("otlp") || line.to_lowercase().contains("export"))
        .count();
    assert!(complaints <= 5, "{complaints} log lines about exporting:\n{}", logs.join("\n"));
    // But the loss is said, with the reason, by the services that lost spans.
    testkit::eventually("a warning about the failed export", || async {
        sys.logs().iter().any(|line| line.contains("failed to export traces over OTLP"))
    })
    .await;
    let logs = sys.logs();
    let warning = logs.iter().find(|line| line.contains("failed to export traces over OTLP")).unwrap();
    assert!(warning.contains(r#""level":"WARN""#) && warning.contains(r#""err":"#), "{warning}");
    assert!(warning.contains("127.0.0.1:9"), "the endpoint: {warning}");
    sys.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_scrapes_are_traced_when_asked_to() {
    let collector = Collector::start().await;
    let sys = System::builder()
        .processes(env!("CARGO_BIN_EXE_weaprous"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("WEAPROUS_TRACE_PROBES", "on")
        .peers(1)
        .start()
        .await;
    for path in ["/healthz", "/metrics"] {
        let response = sys.client().get(format!("{}{path}", sys.tracker_url())).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    testkit::eventually("the tracker's probe and scrape spans", || async {
        let spans = collector.spans();
        ["GET /healthz", "GET /metrics"]
            .iter()
            .all(|name| spans.iter().any(|span| span.service == "tracker" && span.name == *name))
    })
    .await;
    sys.shutdown().await;
}

#[tokio::test]
async fn otlp_over_grpc_is_refused_at_start_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    let started = tokio::process::Command::new(env!("CARGO_BIN_EXE_weaprous"))
        .args(["tracker", "--server-ip", "127.0.0.1", "--server-port", "0", "--data-dir"])
        .arg(data.path())
        .env("WEAPROUS_DEV", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A tracker that starts runs until stopped: the bound only catches that.
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), started.wait_with_output())
        .await
        .expect("the tracker started although it cannot export its traces")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"), "{stderr}");
    assert!(stderr.contains("http/protobuf") && stderr.contains("4318"), "says what to do: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_makes_one_access_log_line_unless_turned_off() {
    let sys = System::builder().processes(env!("CARGO_BIN_EXE_weaprous")).peers(1).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    assert_eq!(alice.get("/me").await.status, 200);
    testkit::eventually("the access-log line of GET /me", || async {
        sys.logs().iter().any(|line| is_access_line(line, "/me"))
    })
    .await;
    let logs = sys.logs();
    let lines: Vec<&String> = logs.iter().filter(|line| is_access_line(line, "/me")).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    for field in [
        r#""method":"GET""#,
        r#""status":200"#,
        r#""duration_ms":"#,
        r#""client":"127.0.0.1""#,
        r#""vhost":"127.0.0.1:"#,
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
    sys.shutdown().await;

    let quiet = System::builder()
        .processes(env!("CARGO_BIN_EXE_weaprous"))
        .env("WEAPROUS_ACCESS_LOG", "off")
        .peers(1)
        .start()
        .await;
    let alice = quiet.login(0, "user1", "password1").await;
    assert_eq!(alice.get("/me").await.status, 200);
    // The lines of the log-in and of /me would have come before the log-out's.
    alice.post("/logout", "").await;
    testkit::eventually("the log-out's line", || async { quiet.logs().iter().any(|line| line.contains("logged out")) })
        .await;
    let logs = quiet.logs();
    assert!(!logs.iter().any(|line| line.contains(r#""target":"access""#)), "{logs:#?}");
    quiet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_all_in_one_exports_each_service_under_its_own_name() {
    use tokio::io::AsyncBufReadExt;

    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("database.csv");
    std::fs::copy(testkit::repo_root().join("db/database.csv"), &db).unwrap();
    let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_weaprous"))
        .args([
            "up",
            "--peers",
            "2",
            "--proxy-port",
            "0",
            "--tracker-port",
            "0",
            "--auth-port",
            "0",
            "--peer-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--db")
        .arg(&db)
        .arg("--www")
        .arg(testkit::repo_root().join("www"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("WEAPROUS_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // `up` prints where to open the chat once everything listens.
    let mut stdout = tokio::io::BufReader::new(up.stdout.take().unwrap()).lines();
    let proxy_url = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(url) = line.split("Open the chat:").nth(1) {
                return url.trim().trim_end_matches('/').replace("localhost", "127.0.0.1");
            }
        }
        panic!("`weaprous up` ended before printing its URLs");
    })
    .await
    .expect("`weaprous up` printed its URLs");

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client
        .post(format!("{proxy_url}/login"))
        .header("accept", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body("username=user1&password=password1")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "{:?}", login.text().await);

    // The log-in crosses the proxy, a peer, auth and the tracker, all in one process.
    let names =
        || collector.trace(TRACE_ID).into_iter().map(|span| span.service).collect::<std::collections::BTreeSet<_>>();
    testkit::eventually("the log-in's spans from every service", || async {
        ["proxy", "peer", "auth", "tracker"].iter().all(|service| names().contains(*service))
    })
    .await;
    assert_eq!(names(), ["auth", "peer", "proxy", "tracker"].map(str::to_owned).into(), "no span under `weaprous`");
    // The presence change the log-in caused reaches the peers in the log-in's trace,
    // not as a trace of its own.
    testkit::eventually("the log-in's presence push, in its trace", || async {
        collector.trace(TRACE_ID).iter().any(|span| span.name == "push presence" && span.kind == 5)
    })
    .await;
    for span in collector.trace(TRACE_ID) {
        if let Some(service) = span.attributes.get("service") {
            assert_eq!(&span.service, service, "{} is exported under its own service", span.name);
        }
    }
    up.kill().await.unwrap();
}
