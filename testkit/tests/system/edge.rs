//! The edge of the services, through the proxy (issue 11): the client behind the
//! trusted proxies, cross-origin state changes refused, no `GET` that changes state,
//! the security headers, and the session cookie over HTTPS.

use kit::http::EdgeConfig;
use reqwest::Method;
use testkit::{Reply, System, TestUser};

/// A log-in of `user1` through the proxy, as an ingress in front of it names the
/// browser at `client`.
async fn login_behind_an_ingress(sys: &System, client: &str, password: &str) -> Reply {
    let response = sys
        .client()
        .post(format!("{}/login", sys.proxy_url()))
        .header("host", "localhost")
        .header("x-forwarded-for", client)
        .header("accept", "application/json")
        .body(format!("username=user1&password={password}"))
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

/// Finding 2: every user behind an ingress shared the address the proxy saw, so one
/// guesser locked everybody out.
#[tokio::test]
async fn behind_an_ingress_a_guesser_does_not_lock_the_user_out() {
    let edge = EdgeConfig { trusted_proxies: "2".parse().unwrap(), ..EdgeConfig::default() };
    let sys = System::builder().peers(1).proxy().edge(edge).start().await;
    for _ in 0..5 {
        assert_eq!(login_behind_an_ingress(&sys, "203.0.113.9", "guess").await.status, 401);
    }
    let guesser = login_behind_an_ingress(&sys, "203.0.113.9", "password1").await;
    assert_eq!(guesser.status, 429, "the guesser waits: {}", guesser.body);
    assert!(guesser.headers.contains_key("retry-after"), "relayed with its wait");
    let user = login_behind_an_ingress(&sys, "198.51.100.7", "password1").await;
    assert_eq!(user.status, 200, "the user, behind the same ingress, logs in: {}", user.body);
    sys.shutdown().await;
}

async fn send(user: &TestUser, method: Method, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = user.request(method, path).header("content-type", "text/plain;charset=UTF-8");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::read(request.body(body.to_owned()).send().await.unwrap()).await
}

/// Finding 4: a page on another port of the same host made a channel with the user's
/// cookie, and log-in CSRF worked from anywhere.
#[tokio::test]
async fn state_changes_from_other_origins_are_refused_and_other_clients_keep_working() {
    let sys = System::builder().peers(1).proxy().start().await;
    let alice = sys.login(0, "user1", "password1").await.via(&sys.proxy_url(), "localhost");
    let foreign: [&[(&str, &str)]; 4] = [
        &[("sec-fetch-site", "same-site"), ("origin", "http://localhost:9999")],
        &[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")],
        // Browsers without Sec-Fetch-Site: the Origin against the Host.
        &[("origin", "http://localhost:9999")],
        &[("origin", "null")],
    ];
    for headers in foreign {
        let reply = send(&alice, Method::POST, "/create-channel", "channel_name=evil", headers).await;
        assert_eq!(reply.status, 403, "{headers:?}: {}", reply.body);
        assert_eq!(reply.body["status"], "error", "the JSON error");
    }
    let channels = alice.get("/get-all-channels").await;
    assert!(!channels.body.to_string().contains("evil"), "{}", channels.body);

    // Log-in CSRF: a foreign page logging the browser in as someone else.
    let forced = sys
        .client()
        .post(format!("{}/login", sys.proxy_url()))
        .header("host", "localhost")
        .header("sec-fetch-site", "cross-site")
        .body("username=user2&password=password2")
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 403);
    assert!(testkit::session_token(forced.headers()).is_none());
    // The same at the original's log-in on the tracker, and at auth itself.
    for url in [sys.tracker_url(), sys.auth_url()] {
        let forced = sys
            .client()
            .post(format!("{url}/login"))
            .header("origin", "http://evil.example")
            .body("username=user2&password=password2")
            .send()
            .await
            .unwrap();
        assert_eq!(forced.status(), 403, "{url}");
    }

    // The page itself, curl (no header), and a link from elsewhere (a GET) pass.
    let own = [("sec-fetch-site", "same-origin"), ("origin", "http://localhost")];
    assert_eq!(send(&alice, Method::POST, "/create-channel", "channel_name=ours", &own).await.status, 201);
    let old_browser = [("origin", "http://LOCALHOST")];
    assert_eq!(send(&alice, Method::POST, "/join-channel", "channel_name=ours", &old_browser).await.status, 200);
    assert_eq!(alice.post("/send-channel-message", "channel_name=ours&message=hi").await.status, 200);
    assert_eq!(send(&alice, Method::GET, "/me", "", &[("sec-fetch-site", "cross-site")]).await.status, 200);
    sys.shutdown().await;
}

/// Finding 4: a cross-site top-level `GET /get-received-messages` marked direct
/// messages read. Also shows a signed call between peers (`/receive-message`) passing
/// the edge.
#[tokio::test]
async fn reading_direct_messages_takes_an_explicit_post() {
    let sys = System::builder().peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let bob = sys.login(1, "user2", "password2").await;
    let sent =
        send(&alice, Method::POST, "/send-peer", "username=user2&message=hello", &[("origin", alice.base.as_str())])
            .await;
    assert_eq!(sent.status, 200, "delivered peer to peer: {}", sent.body);
    let link = [("sec-fetch-site", "cross-site")];
    for _ in 0..2 {
        let received = send(&bob, Method::GET, "/get-received-messages", "", &link).await;
        assert_eq!(received.status, 200);
        assert_eq!(received.body.as_array().unwrap().len(), 1, "still unread: {}", received.body);
    }
    let received = bob.get("/get-received-messages").await;
    let seq = received.body[0]["seq"].as_u64().unwrap();
    let refused = send(&bob, Method::POST, "/mark-read", &format!("up_to={seq}"), &link).await;
    assert_eq!(refused.status, 403);
    let marked = bob.post("/mark-read", &format!("up_to={seq}")).await;
    assert_eq!((marked.status, &marked.body["marked"]), (200, &serde_json::json!(1)), "{}", marked.body);
    assert_eq!(bob.get("/get-received-messages").await.body, serde_json::json!([]));
    sys.shutdown().await;
}

/// Finding 6: no Content-Security-Policy, frame protection, `nosniff` or
/// `Referrer-Policy`.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let sys = System::builder().peers(1).proxy().start().await;
    let get = |url: String, host: Option<&'static str>| {
        let mut request = sys.client().get(url);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    let responses = [
        get(format!("{}/login", sys.proxy_url()), Some("localhost")).await.unwrap(),
        get(format!("{}/", sys.proxy_url()), Some("localhost")).await.unwrap(),
        get(format!("{}/js/app.js", sys.peer_url(0)), None).await.unwrap(),
        get(format!("{}/get-list", sys.tracker_url()), None).await.unwrap(),
        get(format!("{}/login-options", sys.auth_url()), None).await.unwrap(),
        get(format!("{}/no-such-page", sys.peer_url(0)), None).await.unwrap(),
        sys.client().post(format!("{}/login", sys.auth_url())).body("").send().await.unwrap(),
    ];
    for response in responses {
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let url = response.url();
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{url}: {csp:?}");
        assert!(csp.contains("style-src 'self'") && !csp.contains("unsafe-inline"), "{url}: {csp:?}");
        assert_eq!(header("x-frame-options"), "DENY", "{url}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{url}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{url}");
        assert!(header("permissions-policy").contains("camera=()"), "{url}");
    }
    sys.shutdown().await;
}

/// Finding 6: the session cookie was never `Secure`.
#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_host_prefixed() {
    let sys = System::builder().peers(1).start().await;
    let login = |proto: &'static str| {
        sys.client()
            .post(format!("{}/login", sys.peer_url(0)))
            .header("accept", "application/json")
            // As the trusted proxy in front says when the browser came over TLS.
            .header("x-forwarded-proto", proto)
            .body("username=user1&password=password1")
            .send()
    };
    let response = login("https").await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-weaprous_session=") && cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    let token = cookie.trim_start_matches("__Host-weaprous_session=").split(';').next().unwrap();
    let me = sys
        .client()
        .get(format!("{}/me", sys.peer_url(0)))
        .header("cookie", format!("__Host-weaprous_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the prefixed cookie is read");

    let plain = login("http").await.unwrap();
    let cookie = plain.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("weaprous_session=") && !cookie.contains("Secure"), "{cookie}");
    sys.shutdown().await;
}
