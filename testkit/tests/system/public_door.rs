//! The public door (issue 11, finding 7): through the proxy no service's internal
//! routes or metrics can be reached, and between services a signed call is accepted
//! once, by the service it was addressed to.

use reqwest::{Method, Url};
use serde_json::json;
use testkit::{Backend, Reply, System};
use wire::headers::{PROXY_ERROR, SIGNATURE};
use wire::routes::internal::{AUTH, PEER, TRACKER};

async fn internal_routes_stay_off_the_proxy_and_a_signed_call_counts_once(backend: Backend) {
    let sys = System::builder().backend(backend).peers(2).proxy().start().await;
    let _alice = sys.login(0, "user1", "password1").await;
    let _bob = sys.login(1, "user2", "password2").await;

    // Through the proxy, every internal route of every service is refused by the
    // proxy itself, whatever the method.
    for (host, paths) in [("localhost", PEER), ("tracker.localhost", TRACKER), ("auth.localhost", AUTH)] {
        for path in paths {
            for method in [Method::GET, Method::POST] {
                let url = format!("{}{path}", sys.proxy_url());
                let response =
                    sys.client().request(method.clone(), &url).header("host", host).body("{}").send().await.unwrap();
                assert_eq!(response.headers().get(PROXY_ERROR).map(|v| v.to_str().unwrap()), Some("path-denied"));
                let reply = Reply::read(response).await;
                assert_eq!(
                    (reply.status, reply.body["status"].as_str()),
                    (403, Some("error")),
                    "{method} {host}{path}"
                );
            }
        }
    }
    // What the page uses still passes.
    let options = sys.client().get(format!("{}/login-options", sys.proxy_url())).header("host", "localhost");
    assert_eq!(options.send().await.unwrap().status(), 200);

    // A direct message as peer 0 sends it to peer 1, where user2 is.
    let dm = json!({"id": "door-1", "message": "hello", "sender_ip": "127.0.0.1",
                    "sender_port": sys.peer_port(0), "username": "user1", "to": "user2", "ts": 1});
    let body = serde_json::to_vec(&dm).unwrap();
    let to_peer1 = Url::parse(&format!("{}/receive-message", sys.peer_url(1))).unwrap();
    let post = |url: &Url, signature: &str| {
        let request = sys.client().post(url.clone()).header("content-type", "application/json");
        let request = request.header(SIGNATURE, signature).body(body.clone());
        async move { Reply::read(request.send().await.unwrap()).await }
    };
    let signature = sys.cluster_key().sign_url(&Method::POST, &to_peer1, &body);
    let delivered = post(&to_peer1, &signature).await;
    assert_eq!(delivered.status, 200, "{}", delivered.body);

    // The same call again, as someone who captured it would send it.
    let replayed = post(&to_peer1, &signature).await;
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(replayed.message().contains("already used"), "{}", replayed.body);

    // A call signed for peer 1, played to peer 0.
    let to_peer0 = Url::parse(&format!("{}/receive-message", sys.peer_url(0))).unwrap();
    let fresh = sys.cluster_key().sign_url(&Method::POST, &to_peer1, &body);
    let misdirected = post(&to_peer0, &fresh).await;
    assert_eq!(misdirected.status, 401, "{}", misdirected.body);
    sys.shutdown().await;
}

testkit::on_both_backends!(internal_routes_stay_off_the_proxy_and_a_signed_call_counts_once,);
