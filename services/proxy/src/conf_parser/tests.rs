use super::*;

fn parse_ok(text: &str) -> Vec<VhostConfig> {
    parse(text, "127.0.0.1").unwrap_or_else(|err| panic!("{text:?} should parse: {err}"))
}

fn check_error(text: &str, line: usize, column: usize, expected: &str) {
    let err = parse(text, "127.0.0.1").expect_err(text);
    assert_eq!((err.line, err.column), (line, column), "{text:?}: {err}");
    assert!(err.message.contains(expected), "{text:?}: `{}` should mention `{expected}`", err.message);
}

#[test]
fn the_original_syntax_parses_with_placeholders_and_comments() {
    let text = r#"
# Peers, sticky.
host "$HOST:8080" {
    proxy_pass http://$HOST:9001;
    proxy_pass http://{{HOST}}:9002;
    dist_policy sticky
}
# host "commented.out" { proxy_pass http://10.0.0.1:1; }
host "Tracker.Localhost:8080" {
    proxy_pass http://127.0.0.1:9000;   # trailing comment
}
host "auth.localhost" { proxy_pass http://auth:9100/; dist_policy least-conn; default; }
"#;
    let vhosts = parse_ok(text);
    assert_eq!(vhosts.len(), 3);
    assert_eq!(vhosts[0].name, "127.0.0.1:8080");
    assert_eq!(
        vhosts[0].upstreams,
        vec![Upstream { host: "127.0.0.1".into(), port: 9001 }, Upstream { host: "127.0.0.1".into(), port: 9002 }]
    );
    assert_eq!(vhosts[0].policy, Policy::Sticky);
    assert_eq!(vhosts[1].name, "tracker.localhost:8080");
    assert_eq!(vhosts[1].policy, Policy::RoundRobin);
    assert!(!vhosts[1].default);
    assert_eq!(vhosts[2].upstreams, vec![Upstream { host: "auth".into(), port: 9100 }]);
    assert_eq!(vhosts[2].policy, Policy::LeastConn);
    assert!(vhosts[2].default);
}

#[test]
fn upstreams_take_a_default_port_and_ipv6() {
    assert_eq!(parse_upstream("http://peer").unwrap(), Upstream { host: "peer".into(), port: 80 });
    assert_eq!(parse_upstream("http://[::1]:9001").unwrap(), Upstream { host: "::1".into(), port: 9001 });
    for bad in ["https://a:1", "a:1", "http://", "http://a:0", "http://a:70000", "http://a:1/path", "http://a b:1"] {
        assert!(parse_upstream(bad).is_err(), "{bad} should be refused");
    }
}

#[test]
fn errors_give_the_line_column_and_what_was_expected() {
    check_error("", 1, 1, "at least one `host");
    check_error("# only a comment\n", 2, 1, "at least one `host");
    check_error("hots \"a\" {}", 1, 1, "expected `host`, found `hots`");
    check_error("host {", 1, 6, "expected a host name");
    check_error("host \"a\" proxy_pass", 1, 10, "expected `{`, found `proxy_pass`");
    check_error("host \"a\" {\n  proxy_pass;\n}", 2, 13, "expected an address");
    check_error("host \"a\" {\n  proxy_pass ftp://x:1;\n}", 2, 14, "not an http address");
    check_error(
        "host \"a\" {\n  proxy_pass http://x:1;\n  dist_policy random\n}",
        3,
        15,
        "unknown dist_policy `random`",
    );
    check_error(
        "host \"a\" {\n  proxy_pass http://x:1;\n  weight 3;\n}",
        3,
        3,
        "expected `proxy_pass`, `dist_policy`, `default`, `allow`, `deny`, `tls_certificate` or `}`, found `weight`",
    );
    check_error(
        "host \"a\" {\n  proxy_pass http://x:1;\n",
        3,
        1,
        "expected `}` to close the host block opened at line 1",
    );
    check_error("host \"a {\n", 1, 6, "unterminated string");
    check_error("host \"a\" {\n}", 1, 1, "has no `proxy_pass`");
    check_error(
        "host \"a\" { proxy_pass http://x:1; }\nhost \"A\" { proxy_pass http://y:1; }",
        2,
        6,
        "defined twice (first at line 1)",
    );
    check_error(
        "host \"a\" { proxy_pass http://x:1; default }\nhost \"b\" { proxy_pass http://y:1; default }",
        2,
        35,
        "a second `default`",
    );
    check_error("host \"a:http\" { proxy_pass http://x:1; }", 1, 6, "invalid port");
    check_error("host \"a\" { proxy_pass http://x:1; dist_policy sticky; dist_policy sticky }", 1, 55, "set twice");
}

/// A property-style check over many generated and mutated inputs: the parser never
/// panics, and every error points inside the text (or just past its end). `cargo fuzz`
/// (services/proxy/fuzz) covers the same property with coverage guidance.
#[test]
fn random_and_mutated_inputs_never_panic_and_errors_point_into_the_text() {
    let seeds = [
        "host \"$HOST:8080\" {\n proxy_pass http://$HOST:9001;\n dist_policy round-robin\n}\n",
        "host \"a\" { proxy_pass http://{{HOST}}:1; default; }",
        "# c\nhost x { proxy_pass http://[::1]:2 }",
    ];
    let alphabet: Vec<char> =
        "host\"{};#: \n\tproxy_passhttp://$HOST{{}}dist_policystickydefault[]0123456789é".chars().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut text: Vec<char> = seeds[round % seeds.len()].chars().collect();
        let edits = 1 + next() % 6;
        for _ in 0..edits {
            let position = (next() as usize) % (text.len() + 1);
            let character = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => text.insert(position, character),
                1 if position < text.len() => {
                    text.remove(position);
                }
                _ if position < text.len() => text[position] = character,
                _ => text.push(character),
            }
        }
        let text: String = text.into_iter().collect();
        if let Err(err) = parse(&text, "10.0.0.1") {
            let lines = text.split('\n').count();
            assert!(err.line >= 1 && err.line <= lines, "{text:?}: {err}");
            let line_length = text.split('\n').nth(err.line - 1).map_or(0, |line| line.chars().count());
            assert!(err.column >= 1 && err.column <= line_length + 1, "{text:?}: {err}");
        }
    }
}

#[test]
fn allow_and_deny_take_one_or_more_paths_with_or_without_a_semicolon() {
    let text = r#"
host "localhost:8080" {
    proxy_pass http://127.0.0.1:9001;
    deny /metrics /Receive-Message;
    allow / "/js/"
    deny /admin
}
"#;
    let vhosts = parse_ok(text);
    let rule = |path: &str, allow| PathRule { path: path.to_owned(), allow };
    assert_eq!(
        vhosts[0].paths.rules(),
        [
            rule("/metrics", false),
            rule("/receive-message", false),
            rule("/", true),
            rule("/js/", true),
            rule("/admin", false)
        ]
    );
    assert!(!vhosts[0].paths.allows("/metrics"));
    assert!(vhosts[0].paths.allows("/get-list"));
    assert!(parse_ok("host a { proxy_pass http://b; }")[0].paths.is_empty());
}

#[test]
fn bad_path_rules_say_where_and_why() {
    check_error("host a {\n proxy_pass http://b;\n deny;\n}", 3, 6, "a path after `deny`");
    check_error("host a {\n proxy_pass http://b;\n deny metrics;\n}", 3, 7, "starting with `/`");
    check_error("host a {\n proxy_pass http://b;\n allow /a/../b;\n}", 3, 8, "segments");
    check_error("host a {\n proxy_pass http://b;\n deny /%6d;\n}", 3, 7, "escapes");
}
