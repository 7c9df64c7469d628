use axum::http::HeaderValue;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(header::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn ip(raw: &str) -> IpAddr {
    raw.parse().unwrap()
}

fn client(proxies: &str, forwarded_for: &[&str], connected: Option<&str>) -> IpAddr {
    let config = EdgeConfig { trusted_proxies: proxies.parse().unwrap(), ..EdgeConfig::default() };
    let pairs: Vec<(&str, &str)> = forwarded_for.iter().map(|value| ("x-forwarded-for", *value)).collect();
    config.resolve(&headers(&pairs), connected.map(ip)).0.client
}

#[test]
fn one_hop_is_the_last_forwarded_address_else_the_connection() {
    assert_eq!(client("1", &["203.0.113.9, 10.0.0.7"], Some("127.0.0.1")), ip("10.0.0.7"));
    assert_eq!(client("1", &["198.51.100.1", "10.0.0.8"], None), ip("10.0.0.8"));
    assert_eq!(client("1", &["not an address"], Some("127.0.0.2")), ip("127.0.0.2"));
    assert_eq!(client("1", &[], Some("::1")), ip("::1"));
    assert_eq!(client("1", &[], None), ip("0.0.0.0"));
}

#[test]
fn more_hops_reach_further_left_and_none_trusts_no_header() {
    // An ingress in front of the proxy: the proxy appended the ingress's address.
    assert_eq!(client("2", &["203.0.113.9, 10.0.0.7"], Some("10.0.0.3")), ip("203.0.113.9"));
    assert_eq!(client("2", &["6.6.6.6, 203.0.113.9, 10.0.0.7"], Some("10.0.0.3")), ip("203.0.113.9"));
    assert_eq!(client("2", &["203.0.113.9"], Some("10.0.0.3")), ip("203.0.113.9"), "the proxy alone this time");
    assert_eq!(client("0", &["203.0.113.9"], Some("10.0.0.3")), ip("10.0.0.3"));
}

#[test]
fn networks_skip_trusted_addresses_from_the_right() {
    let nets = "10.0.0.0/8, 127.0.0.1";
    assert_eq!(client(nets, &["203.0.113.9, 10.1.2.3"], Some("127.0.0.1")), ip("203.0.113.9"));
    assert_eq!(client(nets, &["6.6.6.6, 203.0.113.9, 10.1.2.3"], Some("10.0.0.3")), ip("203.0.113.9"));
    assert_eq!(client(nets, &["10.1.2.3"], Some("10.0.0.3")), ip("10.1.2.3"), "all trusted: the furthest");
    assert_eq!(client(nets, &["6.6.6.6"], Some("198.51.100.4")), ip("198.51.100.4"), "no proxy: not believed");
    assert_eq!(client(nets, &["junk, 10.9.9.9"], Some("10.0.0.3")), ip("10.9.9.9"));
    assert_eq!(client(nets, &["203.0.113.9"], Some("::ffff:10.0.0.3")), ip("203.0.113.9"), "IPv4-mapped");
}

#[test]
fn settings_parse_from_numbers_text_and_lists() {
    let parse = |raw: &str| serde_json::from_str::<TrustedProxies>(raw);
    assert_eq!(parse("2").unwrap(), TrustedProxies::Hops(2));
    assert_eq!(parse("\"0\"").unwrap(), TrustedProxies::Hops(0));
    let networks = parse("\"10.0.0.0/8 fc00::/7,192.168.1.7\"").unwrap();
    assert_eq!(networks.to_string(), "10.0.0.0/8,fc00::/7,192.168.1.7/32");
    assert_eq!(parse("[\"10.0.0.0/8\"]").unwrap().to_string(), "10.0.0.0/8");
    assert!(parse("\"10.0.0.0/33\"").is_err());
    assert!(parse("\"proxy.internal\"").is_err());
    assert!(parse("300").is_err());
    // Written out and read back the same (figment's defaults go through serde).
    let json = serde_json::to_string(&networks).unwrap();
    assert_eq!(parse(&json).unwrap(), networks);
    assert_eq!(serde_json::from_str::<SecureCookies>("\"always\"").unwrap(), SecureCookies::Always);
}

#[test]
fn https_and_the_forwarded_host_count_only_from_a_trusted_proxy() {
    let sent = headers(&[("x-forwarded-proto", "https"), ("x-forwarded-host", "chat.example")]);
    let trusting = EdgeConfig::default();
    let (forwarded, host) = trusting.resolve(&sent, Some(ip("127.0.0.1")));
    assert!(forwarded.https && forwarded.secure_cookie);
    assert_eq!(host.as_deref(), Some("chat.example"));
    let wary = EdgeConfig { trusted_proxies: TrustedProxies::Hops(0), ..EdgeConfig::default() };
    let (forwarded, host) = wary.resolve(&sent, Some(ip("127.0.0.1")));
    assert!(!forwarded.https && !forwarded.secure_cookie && host.is_none());
    let always = EdgeConfig { secure_cookies: SecureCookies::Always, ..wary.clone() };
    assert!(always.resolve(&HeaderMap::new(), None).0.secure_cookie);
    let never = EdgeConfig { secure_cookies: SecureCookies::Never, ..trusting };
    assert!(!never.resolve(&sent, None).0.secure_cookie);
}

#[test]
fn state_changes_from_other_origins_are_refused_like_go_does() {
    let check = |method: Method, pairs: &[(&str, &str)], forwarded: Option<&str>| {
        cross_origin(&method, &headers(pairs), forwarded).is_none()
    };
    let host = ("host", "localhost:8080");
    // Not a browser, or no state change.
    assert!(check(Method::POST, &[host], None));
    assert!(check(Method::GET, &[host, ("sec-fetch-site", "cross-site")], None));
    assert!(check(Method::OPTIONS, &[host, ("origin", "http://evil.example")], None));
    // Browsers that send Sec-Fetch-Site.
    assert!(check(Method::POST, &[host, ("sec-fetch-site", "same-origin")], None));
    assert!(check(Method::POST, &[host, ("sec-fetch-site", "none")], None));
    assert!(!check(Method::POST, &[host, ("sec-fetch-site", "same-site")], None));
    assert!(!check(
        Method::DELETE,
        &[host, ("sec-fetch-site", "cross-site"), ("origin", "http://localhost:8080")],
        None
    ));
    // Older browsers: Origin against Host (or a trusted proxy's X-Forwarded-Host).
    assert!(check(Method::POST, &[host, ("origin", "http://LOCALHOST:8080")], None));
    assert!(check(
        Method::POST,
        &[("host", "10.0.0.5:9001"), ("origin", "https://chat.example")],
        Some("chat.example")
    ));
    assert!(!check(Method::POST, &[host, ("origin", "http://localhost:8081")], None));
    assert!(!check(Method::POST, &[host, ("origin", "null")], None));
    assert!(!check(Method::PUT, &[("origin", "http://localhost:8080")], None), "no host to match");
}

#[test]
#[allow(clippy::result_large_err)]
fn the_settings_come_from_weaprous_variables_or_the_services_own() {
    #[derive(Serialize, Deserialize)]
    struct Demo {
        #[serde(flatten)]
        edge: EdgeConfig,
    }
    #[derive(Serialize)]
    struct NoFlags {}
    figment::Jail::expect_with(|jail| {
        let defaults = Demo { edge: EdgeConfig::default() };
        let load = || {
            let figment = crate::config::layered(&defaults, std::path::Path::new("none.toml"), "DEMO", &NoFlags {});
            crate::config::extract::<Demo>(&figment).unwrap().edge
        };
        assert_eq!(load(), EdgeConfig::default());
        jail.set_env("WEAPROUS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1");
        jail.set_env("WEAPROUS_SECURE_COOKIES", "always");
        let loaded = load();
        assert_eq!(loaded.trusted_proxies.to_string(), "10.0.0.0/8,127.0.0.1/32");
        assert_eq!(loaded.secure_cookies, SecureCookies::Always);
        assert_eq!(EdgeConfig::from_env().unwrap(), loaded, "what `weaprous up` reads");
        jail.set_env("DEMO_TRUSTED_PROXIES", "2");
        assert_eq!(load().trusted_proxies, TrustedProxies::Hops(2), "the service's own prefix wins");
        jail.set_env("DEMO_TRUSTED_PROXIES", "not-a-network");
        let figment = crate::config::layered(&defaults, std::path::Path::new("none.toml"), "DEMO", &NoFlags {});
        let err = crate::config::extract::<Demo>(&figment).err().unwrap().to_string();
        assert!(err.contains("not-a-network"), "{err}");
        Ok(())
    });
}
