use proxy::config::Policy;

use crate::helpers::{Backend, TestProxy, config, vhost};

/// One browser: sends back the sticky cookie it was given.
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    /// GET / and return (backend, whether a new cookie was set).
    async fn visit(&mut self, proxy: &TestProxy) -> (String, bool) {
        let mut request = proxy.client.get(proxy.url("/")).header("host", "chat.test");
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("theme=dark; {cookie}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let backend = response.headers()["x-backend"].to_str().unwrap().to_owned();
        let set_cookie = response.headers().get("set-cookie").map(|value| value.to_str().unwrap().to_owned());
        if let Some(set_cookie) = &set_cookie {
            assert!(set_cookie.starts_with("weaprous_backend="), "{set_cookie}");
            for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
                assert!(set_cookie.contains(attribute), "{set_cookie} lacks {attribute}");
            }
            assert!(!set_cookie.contains("127.0.0.1"), "the cookie must not show the backend address: {set_cookie}");
            self.cookie = Some(set_cookie.split(';').next().unwrap().to_owned());
        }
        (backend, set_cookie.is_some())
    }
}

#[tokio::test]
async fn a_browser_stays_on_its_first_backend_and_is_repinned_when_it_dies() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let proxy = TestProxy::start(config(vec![vhost("chat.test", Policy::Sticky, &[&b1, &b2])])).await;

    let mut alice = Browser { cookie: None };
    let (first, pinned) = alice.visit(&proxy).await;
    assert!(pinned, "the first visit sets the cookie");
    for _ in 0..10 {
        assert_eq!(alice.visit(&proxy).await, (first.clone(), false));
    }

    // A second browser is spread to the other backend, then stays there too.
    let mut bob = Browser { cookie: None };
    let (bobs, _) = bob.visit(&proxy).await;
    assert_ne!(bobs, first);
    assert_eq!(bob.visit(&proxy).await, (bobs.clone(), false));

    // Alice's backend dies: she moves to the other one and is pinned there.
    let mut alices_backend = if first == "b1" { b1 } else { b2 };
    alices_backend.kill().await;
    let (moved, repinned) = alice.visit(&proxy).await;
    assert_ne!(moved, first);
    assert!(repinned, "a new cookie pins the new backend");
    for _ in 0..5 {
        assert_eq!(alice.visit(&proxy).await, (moved.clone(), false));
    }
}
