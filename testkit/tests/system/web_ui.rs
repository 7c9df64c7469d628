//! How the web page is served: compressed, with validators, and a log-in check that
//! answers without a session.

use serde_json::{Value, json};
use testkit::System;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_and_pages_go_out_compressed_with_validators() {
    let sys = System::builder().peers(1).start().await;
    let client = sys.client();
    for base in [sys.peer_url(0), sys.tracker_url().to_owned()] {
        for (encoding, path) in [("br", "/js/app.js"), ("gzip", "/css/styles.css"), ("br", "/login")] {
            let url = format!("{base}{path}");
            let response = client.get(&url).header("accept-encoding", encoding).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            assert_eq!(response.headers()["content-encoding"], encoding, "{url}");
        }
        // Without Accept-Encoding, plain.
        let plain = client.get(format!("{base}/js/app.js")).send().await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none());
        // A static file: revalidated every time (no-cache), 304 while unchanged.
        let headers = plain.headers().clone();
        assert_eq!(headers["cache-control"], "no-cache");
        let modified = headers["last-modified"].to_str().unwrap().to_owned();
        let again =
            client.get(format!("{base}/js/app.js")).header("if-modified-since", &modified).send().await.unwrap();
        assert_eq!(again.status(), 304, "{base}: unchanged since {modified}");
        // Pages depend on the session: never cached.
        let page = client.get(format!("{base}/login")).send().await.unwrap();
        assert_eq!(page.headers()["cache-control"], "no-store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_is_never_compressed() {
    let sys = System::builder().peers(1).start().await;
    let user = sys.login(0, "user1", "password1").await;
    let response =
        user.request(reqwest::Method::GET, "/events").header("accept-encoding", "gzip, br").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().get("content-encoding").is_none(), "{:?}", response.headers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_state_answers_200_with_or_without_a_session() {
    let sys = System::builder().peers(1).start().await;
    let user = sys.login(0, "user1", "password1").await;
    for base in [sys.peer_url(0), sys.tracker_url().to_owned()] {
        let anonymous = sys.client().get(format!("{base}/login-state")).send().await.unwrap();
        assert_eq!(anonymous.status(), 200, "{base}");
        assert_eq!(anonymous.json::<Value>().await.unwrap(), json!({"status": "success", "username": null}), "{base}");
        let known = user.at(&base).get("/login-state").await;
        assert_eq!(known.status, 200, "{base}");
        assert_eq!(known.body, json!({"status": "success", "username": "user1"}), "{base}");
        // A forged or ended session is nobody, not an error.
        let forged = sys
            .client()
            .get(format!("{base}/login-state"))
            .header("cookie", "weaprous_session=not.a.token")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 200, "{base}");
        assert_eq!(forged.json::<Value>().await.unwrap()["username"], Value::Null);
    }
}
