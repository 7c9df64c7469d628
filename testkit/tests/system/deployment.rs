//! Secure by default: the log-in page offers demo accounts only where the server has
//! them (development), a deployment starts with no users, and the tracker's original
//! log-in sends the browser to the chat's public address when one is configured.

use serde_json::{Value, json};
use testkit::{Backend, System, TestUser};

async fn options(sys: &System, base: &str) -> Value {
    let response = sys.client().get(format!("{base}/login-options")).send().await.unwrap();
    assert_eq!(response.status(), 200, "{base}/login-options");
    response.json().await.unwrap()
}

fn demo_names(options: &Value) -> Vec<&str> {
    options["demo_accounts"].as_array().unwrap().iter().map(|account| account["username"].as_str().unwrap()).collect()
}

async fn the_log_in_page_offers_the_demo_accounts_in_development(backend: Backend) {
    // Development (`weaprous up`, `--profile demo`): the demo users, offered.
    let dev = System::builder().backend(backend).peers(1).start().await;
    for base in [dev.peer_url(0), dev.tracker_url().to_owned()] {
        let offered = options(&dev, &base).await;
        assert_eq!(demo_names(&offered), ["user1", "user2", "user3", "user4"], "{base}: {offered}");
        assert_eq!(offered["demo_accounts"][1], json!({"username": "user2", "password": "password2"}));
        assert_eq!(offered["sign_up"], true);
    }
}

async fn a_deployment_starts_with_no_users_and_the_page_offers_none(backend: Backend) {
    // A deployment: no users at all, nothing offered, sign-up is the way in.
    let sys = System::builder().backend(backend).peers(1).proxy().demo_users(false).start().await;
    for base in [sys.peer_url(0), sys.tracker_url().to_owned()] {
        let offered = options(&sys, &base).await;
        assert_eq!(offered, json!({"sign_up": true, "demo_accounts": []}), "{base}");
    }
    // Through the proxy, as the browser asks.
    let via_proxy = sys
        .client()
        .get(format!("{}/login-options", sys.proxy_url()))
        .header("host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(via_proxy.status(), 200);
    assert_eq!(via_proxy.json::<Value>().await.unwrap()["demo_accounts"], json!([]));
    for user in 1..=4 {
        let refused = sys
            .client()
            .post(format!("{}/login", sys.peer_url(0)))
            .header("accept", "application/json")
            .body(format!("username=user{user}&password=password{user}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "no demo user user{user} in a deployment");
    }
    // The page hides the demo section until the server offers accounts.
    let page = sys.client().get(format!("{}/login", sys.peer_url(0))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"id="demo" class="demo" aria-label="Demo accounts" data-testid="demo-accounts" hidden"#));
    assert!(!page.contains("password1"), "no demo password in the page itself");

    // The first user signs up (or is added with `auth add-user`), then logs in.
    let signed_up = sys
        .client()
        .post(format!("{}/register", sys.peer_url(0)))
        .header("accept", "application/json")
        .body("username=firstuser&password=a-good-long-password")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 201);
    let first = TestUser::login(sys.client(), &sys.peer_url(0), "firstuser", "a-good-long-password").await;
    assert_eq!(first.get("/me").await.body["username"], "firstuser");
    assert_eq!(demo_names(&options(&sys, &sys.peer_url(0)).await), Vec::<&str>::new(), "a real user is no demo");
}

async fn the_trackers_log_in_sends_the_browser_to_the_public_url(backend: Backend) {
    let sys = System::builder().backend(backend).peers(1).public_url("http://chat.example:8080/").start().await;
    let response = sys
        .client()
        .post(format!("{}/login", sys.tracker_url()))
        .body("username=user1&password=password1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "http://chat.example:8080/", "not the peer's own address");
    let token = testkit::session_token(response.headers()).expect("a session cookie");
    // The tracker's home page sends a logged-in user there too.
    let home = sys.client().get(format!("{}/", sys.tracker_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(home.headers()["location"], "http://chat.example:8080/");
    let json = sys
        .client()
        .post(format!("{}/login", sys.tracker_url()))
        .header("accept", "application/json")
        .body("username=user2&password=password2")
        .send()
        .await
        .unwrap();
    assert_eq!(json.json::<Value>().await.unwrap()["location"], "http://chat.example:8080/");
}

testkit::on_both_backends!(
    the_log_in_page_offers_the_demo_accounts_in_development,
    a_deployment_starts_with_no_users_and_the_page_offers_none,
    the_trackers_log_in_sends_the_browser_to_the_public_url
);
