use super::request::split_target;
use super::*;

fn request(bytes: &str) -> Result<Option<(String, Framing, bool)>, Invalid> {
    let mut headers = header_slots();
    let parsed = parse_request(bytes.as_bytes(), &mut headers)?;
    Ok(parsed.map(|head| {
        let mut out = Vec::new();
        head.write_upstream(&Upstream { client_ip: "10.0.0.9", ..Upstream::default() }, &mut out);
        (String::from_utf8(out).unwrap(), head.framing, head.keep_alive)
    }))
}

/// The head the backend gets for a complete request.
fn upstream(bytes: &str) -> String {
    request(bytes).unwrap().expect("a complete head").0
}

fn refused(bytes: &str) -> Invalid {
    request(bytes).expect_err("refused")
}

fn response(bytes: &str, head_request: bool, rewrite: &Downstream<'_>) -> (String, Framing, bool) {
    let mut headers = header_slots();
    let head = parse_response(bytes.as_bytes(), &mut headers, head_request).unwrap().expect("a complete head");
    let mut out = Vec::new();
    head.write_downstream(rewrite, &mut out);
    (String::from_utf8(out).unwrap(), head.framing, head.keep_alive)
}

#[test]
fn hop_by_hop_headers_go_and_forwarded_headers_come() {
    let head = upstream(
        "GET /x?q=1 HTTP/1.1\r\nHost: Localhost:8080\r\nConnection: keep-alive, x-secret-hop\r\n\
         Keep-Alive: timeout=5\r\nX-Secret-Hop: 1\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n\
         X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\
         traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nCookie: a=b\r\n\r\n",
    );
    assert_eq!(
        head,
        "GET /x?q=1 HTTP/1.1\r\nHost: Localhost:8080\r\n\
         traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nCookie: a=b\r\n\
         x-forwarded-for: 10.0.0.1, 10.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: Localhost:8080\r\n\r\n"
    );
}

#[test]
fn several_forwarded_for_headers_become_one_list() {
    let head =
        upstream("GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n");
    assert!(head.contains("host: a\r\n") || head.contains("Host: a\r\n"), "{head}");
    assert!(head.contains("x-forwarded-for: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9\r\n"), "{head}");
    assert_eq!(head.matches("x-forwarded-for").count(), 1, "{head}");
}

#[test]
fn an_absolute_target_becomes_a_path_and_a_host() {
    let head = upstream("GET http://Tracker.Localhost:8080/get-list?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert!(head.starts_with("GET /get-list?x=1 HTTP/1.1\r\nhost: Tracker.Localhost:8080\r\n"), "{head}");
    assert!(!head.contains("other"), "{head}");
    let mut headers = header_slots();
    let bare = parse_request(b"GET http://a.test HTTP/1.1\r\n\r\n", &mut headers).unwrap().unwrap();
    assert_eq!((bare.path(), bare.host), ("/", HostField::One("a.test")));
    assert_eq!(refused("GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), Invalid::Malformed("unsupported request target"));
    assert_eq!(refused("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), Invalid::Malformed("CONNECT is not supported"));
}

#[test]
fn the_host_field_says_what_the_request_named() {
    let host = |bytes: &str| {
        let mut headers = header_slots();
        format!("{:?}", parse_request(bytes.as_bytes(), &mut headers).unwrap().unwrap().host)
    };
    assert_eq!(host("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), r#"One("a.test")"#);
    assert_eq!(host("GET / HTTP/1.0\r\n\r\n"), "Missing");
    assert_eq!(host("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "Several");
    assert_eq!(host("GET / HTTP/1.1\r\nHost: caf\u{e9}\r\n\r\n"), "Unreadable");
}

#[test]
fn request_framing_follows_the_rules_against_smuggling() {
    let framing = |bytes: &str| request(bytes).unwrap().unwrap().1;
    assert_eq!(framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Framing::Empty);
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), Framing::Empty);
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"), Framing::Length(12));
    assert_eq!(
        framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
        Framing::Length(7)
    );
    assert_eq!(framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"), Framing::Chunked);
    for bad in [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1e3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert!(matches!(refused(bad), Invalid::Malformed(_)), "{bad:?}");
    }
    let chunked = upstream("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(chunked.contains("transfer-encoding: chunked\r\n"), "{chunked}");
}

#[test]
fn keep_alive_depends_on_version_and_connection() {
    let keep = |bytes: &str| request(bytes).unwrap().unwrap().2;
    assert!(keep("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    assert!(!keep("GET / HTTP/1.0\r\nHost: a\r\n\r\n"));
    assert!(keep("GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n"));
}

#[test]
fn an_upgrade_keeps_what_the_handshake_needs() {
    let head = upstream(
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
    );
    assert!(head.contains("Sec-WebSocket-Key: k\r\n"), "{head}");
    assert!(head.ends_with("connection: upgrade\r\nupgrade: websocket\r\n\r\n"), "{head}");
    // `Upgrade` without `Connection: upgrade` asks for nothing.
    let plain = upstream("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    assert!(!plain.to_lowercase().contains("upgrade"), "{plain}");
}

#[test]
fn expect_continue_is_answered_by_the_proxy_not_forwarded() {
    let mut headers = header_slots();
    let bytes = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    let head = parse_request(bytes, &mut headers).unwrap().unwrap();
    assert!(head.expect_continue);
    let mut out = Vec::new();
    head.write_upstream(&Upstream::default(), &mut out);
    assert!(!String::from_utf8(out).unwrap().contains("Expect"));
}

#[test]
fn the_proxys_span_replaces_the_trace_headers() {
    let mut headers = header_slots();
    let bytes =
        b"GET / HTTP/1.1\r\nHost: a\r\ntraceparent: old\r\ntracestate: old=1\r\nAccept: text/event-stream\r\n\r\n";
    let head = parse_request(bytes, &mut headers).unwrap().unwrap();
    assert!(head.accepts_event_stream);
    let mut out = Vec::new();
    let rewrite = Upstream { client_ip: "::1", https: false, trace: Some(("new", Some("new=1"))), close: true };
    head.write_upstream(&rewrite, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("old"), "{text}");
    assert!(text.contains("traceparent: new\r\ntracestate: new=1\r\nconnection: close\r\n\r\n"), "{text}");
}

#[test]
fn incomplete_heads_wait_and_broken_ones_are_refused() {
    assert_eq!(request("GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), None);
    assert_eq!(request("").unwrap(), None);
    assert!(matches!(refused("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"), Invalid::Malformed(_)));
    assert!(matches!(refused("GET /\x01 HTTP/1.1\r\n\r\n"), Invalid::Malformed(_)));
    let many: String = (0..=MAX_HEADERS).map(|index| format!("X-{index}: 1\r\n")).collect();
    assert_eq!(refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Invalid::TooManyHeaders);
}

#[test]
fn response_framing_follows_rfc_9112() {
    let plain = Downstream::default();
    let framing = |bytes: &str, head: bool| response(bytes, head, &plain).1;
    assert_eq!(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false), Framing::Length(5));
    assert_eq!(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true), Framing::Empty);
    assert_eq!(framing("HTTP/1.1 204 No Content\r\n\r\n", false), Framing::Empty);
    assert_eq!(framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false), Framing::Empty);
    assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false), Framing::Chunked);
    assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false), Framing::UntilClose);
    assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n", false), Framing::UntilClose);
    let mut headers = header_slots();
    let conflicting = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    assert!(parse_response(conflicting, &mut headers, false).is_err());
}

#[test]
fn backend_connections_are_kept_only_when_the_message_allows() {
    let keep = |bytes: &str| response(bytes, false, &Downstream::default()).2;
    assert!(keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
}

#[test]
fn the_client_gets_the_head_with_the_proxys_framing_and_connection() {
    let rewrite = Downstream {
        set_cookie: Some(b"pin=1; Path=/"),
        hsts: None,
        close: true,
        keep_alive_10: false,
        transfer_encoding: true,
    };
    let (head, _, _) = response(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\
         Connection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n",
        false,
        &rewrite,
    );
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\
         set-cookie: pin=1; Path=/\r\nconnection: close\r\n\r\n"
    );
    let (switching, _, _) = response(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
        false,
        &Downstream::default(),
    );
    assert_eq!(
        switching,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nconnection: upgrade\r\n\r\n"
    );
    let (to_10, _, _) = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
        false,
        &Downstream { keep_alive_10: true, ..Downstream::default() },
    );
    assert_eq!(to_10, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: keep-alive\r\n\r\n");
}

#[test]
fn the_proxys_own_replies_are_whole_messages() {
    let mut out = Vec::new();
    write_response(&mut out, 502, &[("content-type", "application/json"), ("x-proxy-error", "x")], b"{}", true, true);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\nx-proxy-error: x\r\ndate: ")
    );
    assert!(text.ends_with("\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"), "{text}");
    let mut head_only = Vec::new();
    write_response(&mut head_only, 200, &[], b"{}", false, false);
    assert!(String::from_utf8(head_only).unwrap().ends_with("content-length: 2\r\n\r\n"));
}

#[test]
fn expect_from_an_http10_client_is_ignored_and_not_forwarded() {
    let mut headers = header_slots();
    let bytes = b"POST / HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    let head = parse_request(bytes, &mut headers).unwrap().unwrap();
    assert!(!head.expect_continue);
    let mut out = Vec::new();
    head.write_upstream(&Upstream::default(), &mut out);
    assert!(!String::from_utf8(out).unwrap().contains("Expect"));
}

#[test]
fn targets_that_are_not_ascii_are_refused_without_panicking() {
    for target in ["h\u{e9}\u{e9}\u{e9}\u{e9}", "http:/\u{e9}x"] {
        assert!(split_target(target).is_err(), "{target}");
    }
}

#[test]
fn transfer_codings_go_to_the_client_as_they_came() {
    let keep = Downstream { transfer_encoding: true, ..Downstream::default() };
    let (head, framing, _) = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, &keep);
    assert_eq!(framing, Framing::Chunked);
    assert!(head.contains("Transfer-Encoding: gzip, chunked\r\n"), "{head}");
    let mut headers = header_slots();
    let coded = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &mut headers, false);
    assert!(coded.unwrap().unwrap().has_codings());
}
