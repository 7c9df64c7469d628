//! Every route, sent what a careless or hostile client sends: each gets a clear 4xx
//! with a JSON error, and the servers keep answering.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{Backend, Reply, System, TestUser};

/// Sends one request and checks the reply is `status` with a JSON error body.
async fn refused(user: &TestUser, method: Method, path: &str, body: Vec<u8>, status: u16) -> Reply {
    let request = user.request(method.clone(), path).header("content-type", "text/plain").body(body.clone());
    let response = request.send().await.unwrap_or_else(|err| panic!("{method} {path} got no answer: {err}"));
    let reply = Reply::read(response).await;
    let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    assert_eq!(reply.status, status, "{method} {path} {shown:?} -> {}", reply.body);
    assert_eq!(
        reply.body["status"], "error",
        "{method} {path} {shown:?}: JSON error body expected, got {}",
        reply.body
    );
    assert!(!reply.message().is_empty(), "{method} {path}: the error says what is wrong");
    reply
}

async fn every_route_refuses_bad_input_with_a_json_4xx_and_keeps_serving(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).start().await;
    let alice = sys.login(0, "user1", "password1").await;
    let _bob = sys.login(1, "user2", "password2").await;
    alice.post("/join-channel", "channel_name=general").await;

    let huge = vec![b'a'; 10 * 1024 * 1024];
    let non_utf8 = vec![b'm', b'e', b's', b's', b'a', b'g', b'e', b'=', 0xff, 0xfe];
    let bad_percent = b"channel_name=general&message=%C3%28".to_vec();
    let post = Method::POST;

    // Peer routes with a body: missing fields, wrong types, huge, non-UTF-8.
    let form_routes = [
        "/join-channel",
        "/leave-channel",
        "/create-channel",
        "/get-channel-messages",
        "/send-channel-message",
        "/submit-username",
        "/connect-peer",
        "/send-peer",
        "/broadcast-peer",
        "/edit-message",
        "/delete-message",
        "/react",
        "/typing",
        "/login",
        "/register",
    ];
    for path in form_routes {
        refused(&alice, post.clone(), path, b"".to_vec(), 400).await;
        refused(&alice, post.clone(), path, b"nonsense".to_vec(), 400).await;
        refused(&alice, post.clone(), path, b"{\"channel_name\": 5, \"message\": [], \"port\": \"x\"}".to_vec(), 400)
            .await;
        refused(&alice, post.clone(), path, b"{not json".to_vec(), 400).await;
        refused(&alice, post.clone(), path, huge.clone(), 413).await;
        refused(&alice, post.clone(), path, non_utf8.clone(), 400).await;
    }
    refused(&alice, post.clone(), "/send-channel-message", bad_percent, 400).await;

    // Wrong types and bad values in otherwise well-formed bodies.
    refused(&alice, post.clone(), "/send-peer", b"ip=127.0.0.1&port=abc&message=x".to_vec(), 400).await;
    refused(&alice, post.clone(), "/send-peer", b"ip=127.0.0.1&port=70000&message=x".to_vec(), 400).await;
    refused(&alice, post.clone(), "/send-peer", b"ip=127.0.0.1&port=9002&message=".to_vec(), 400).await;
    refused(&alice, post.clone(), "/send-peer", b"message=who".to_vec(), 400).await;
    refused(&alice, post.clone(), "/get-channel-messages", b"channel_name=general&limit=lots".to_vec(), 400).await;
    refused(
        &alice,
        post.clone(),
        "/send-channel-message",
        format!("channel_name=general&message={}", "x".repeat(4001)).into_bytes(),
        400,
    )
    .await;
    refused(&alice, post.clone(), "/join-channel", b"channel_name=%3Cscript%3E".to_vec(), 400).await;
    refused(&alice, post.clone(), "/submit-username", b"username=user2".to_vec(), 403).await;
    refused(&alice, Method::GET, "/get-conversation", b"".to_vec(), 400).await;
    refused(&alice, Method::GET, "/get-conversation?with=a%20b", b"".to_vec(), 400).await;

    // Unknown channels and users.
    refused(&alice, post.clone(), "/join-channel", b"channel_name=nope".to_vec(), 404).await;
    refused(&alice, post.clone(), "/get-channel-messages", b"channel_name=nope".to_vec(), 404).await;
    refused(&alice, post.clone(), "/send-channel-message", b"channel_name=nope&message=x".to_vec(), 404).await;
    refused(&alice, post.clone(), "/send-channel-message", b"channel_name=random&message=x".to_vec(), 403).await;
    refused(&alice, post.clone(), "/leave-channel", b"channel_name=random".to_vec(), 404).await;
    refused(&alice, post.clone(), "/send-peer", b"username=nobody&message=x".to_vec(), 404).await;
    refused(&alice, post.clone(), "/connect-peer", b"username=nobody".to_vec(), 404).await;
    refused(&alice, post.clone(), "/connect-peer", b"ip=127.0.0.1&port=1".to_vec(), 404).await;
    refused(&alice, post.clone(), "/login", b"username=user1&password=wrong".to_vec(), 401).await;
    refused(&alice, post.clone(), "/login", b"username=nobody&password=password1".to_vec(), 401).await;
    refused(&alice, Method::GET, "/no-such-route", b"".to_vec(), 404).await;
    refused(&alice, Method::DELETE, "/get-list", b"".to_vec(), 405).await;
    refused(&alice, Method::GET, "/../../etc/passwd", b"".to_vec(), 404).await;

    // Forged or missing sessions.
    let anonymous = alice.with_token("");
    let forged = alice.with_token("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyMSJ9.c2lnbmF0dXJl");
    let wrong_secret = {
        let keys = kit::session::TokenKeys::new(
            &secrecy::SecretString::from("not the secret".to_owned()),
            std::time::Duration::from_secs(60),
        );
        let (token, _) = keys.issue(&wire::names::Username::parse("user1").unwrap()).unwrap();
        alice.with_token(token)
    };
    for user in [&anonymous, &forged, &wrong_secret] {
        refused(user, Method::GET, "/get-list", b"".to_vec(), 401).await;
        refused(user, Method::GET, "/events", b"".to_vec(), 401).await;
        refused(user, post.clone(), "/send-channel-message", b"channel_name=general&message=x".to_vec(), 401).await;
        refused(user, post.clone(), "/send-peer", b"username=user2&message=x".to_vec(), 401).await;
        refused(user, post.clone(), "/edit-message", b"id=x&message=y".to_vec(), 401).await;
        refused(user, post.clone(), "/react", b"id=x&emoji=%F0%9F%91%8D".to_vec(), 401).await;
        refused(user, post.clone(), "/typing", b"to=user2".to_vec(), 401).await;
    }

    // A forged /receive-change (someone else's edit of alice's message), unsigned.
    let change = json!({"id": "c1", "from": "user1", "to": "user2",
                        "change": {"kind": "delete", "message_id": "m1"}});
    let forged_change = sys.client().post(format!("{}/receive-change", sys.peer_url(1))).json(&change).send().await;
    let reply = Reply::read(forged_change.unwrap()).await;
    assert_eq!((reply.status, reply.body["status"].as_str()), (401, Some("error")), "{}", reply.body);

    // A forged /receive-message: unsigned, signed with another secret, or tampered.
    let dm = json!({"id": "forged-1", "message": "I am alice, honest", "sender_ip": "127.0.0.1",
                    "sender_port": sys.peer_port(0), "username": "user1", "to": "user2", "ts": 1});
    let body = serde_json::to_vec(&dm).unwrap();
    let peer1 = format!("{}/receive-message", sys.peer_url(1));
    let send = |signature: Option<String>, body: Vec<u8>| {
        let mut request = sys.client().post(&peer1).header("content-type", "application/json").body(body);
        if let Some(signature) = signature {
            request = request.header(wire::headers::SIGNATURE, signature);
        }
        async move { Reply::read(request.send().await.unwrap()).await }
    };
    let other_key = kit::sign::ClusterKey::new(&secrecy::SecretString::from("guess".to_owned()));
    let target = reqwest::Url::parse(&peer1).unwrap();
    let good = sys.cluster_key().sign_url(&Method::POST, &target, &body);
    let mut tampered = body.clone();
    tampered[20] ^= 1;
    for reply in [
        send(None, body.clone()).await,
        send(Some(other_key.sign_url(&Method::POST, &target, &body)), body.clone()).await,
        send(Some(good.clone()), tampered).await,
        send(Some("t=1,v1=00".into()), body.clone()).await,
    ] {
        assert_eq!((reply.status, reply.body["status"].as_str()), (401, Some("error")), "{}", reply.body);
    }

    // Service routes on the tracker without the cluster signature.
    let tracker = sys.tracker_url();
    for path in ["/register-peer-pool", "/heartbeat", "/leave-peer-pool", "/submit-info", "/release-user"] {
        let response = sys
            .client()
            .post(format!("{tracker}{path}"))
            .body("ip=127.0.0.1&port=9055&username=evil")
            .send()
            .await
            .unwrap();
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
        assert_eq!(reply.body["status"], "error");
    }
    let stream = sys.client().get(format!("{tracker}/peer-stream?ip=127.0.0.1&port=1")).send().await.unwrap();
    assert_eq!(stream.status(), 401);
    // A user may not point the directory at an address of their choosing.
    let alice_tracker = alice.at(tracker);
    let hijack = alice_tracker.post("/submit-info", "ip=127.0.0.1&port=9055&username=user2").await;
    assert_eq!(hijack.status, 403);
    let fake_peer = alice_tracker.post("/submit-info", "ip=127.0.0.1&port=9055&username=user1").await;
    assert_eq!(fake_peer.status, 404, "{}", fake_peer.body);
    refused(&alice_tracker, post.clone(), "/login", b"username=user1".to_vec(), 400).await;
    refused(&alice_tracker, Method::GET, "/lookup", b"".to_vec(), 400).await;
    refused(&alice_tracker, Method::GET, "/lookup?username=nobody", b"".to_vec(), 404).await;

    // Auth directly.
    let auth = alice.at(sys.auth_url());
    refused(&auth, post.clone(), "/login", b"".to_vec(), 400).await;
    refused(&auth, post.clone(), "/login", huge.clone(), 413).await;
    refused(&anonymous.at(sys.auth_url()), Method::GET, "/session", b"".to_vec(), 401).await;
    refused(&forged.at(sys.auth_url()), Method::GET, "/session", b"".to_vec(), 401).await;

    // Nothing was stored from the forgeries, and everything still answers.
    let bob = sys.login(1, "user2", "password2").await;
    assert_eq!(bob.get("/get-received-messages").await.body, json!([]));
    assert_eq!(alice.get("/get-list").await.status, 200);
    let history = alice.post("/get-channel-messages", "channel_name=general").await;
    assert_eq!(history.body["messages"]["messages"], Value::Array(vec![]));
    for base in [sys.auth_url().to_owned(), sys.tracker_url().to_owned(), sys.peer_url(0), sys.peer_url(1)] {
        let health = sys.client().get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{base} still answers");
    }
    sys.shutdown().await;
}

testkit::on_both_backends!(every_route_refuses_bad_input_with_a_json_4xx_and_keeps_serving,);
