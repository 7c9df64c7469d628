use std::path::Path;

use proxy::{Args, Config, Proxy};

use crate::helpers::{Backend, TestProxy};

fn conf(vhosts: &[(&str, &Backend)]) -> String {
    vhosts
        .iter()
        .map(|(name, backend)| {
            format!("host \"{name}\" {{\n    proxy_pass http://$HOST:{};\n}}\n", backend.addr.port())
        })
        .collect()
}

fn args(path: &Path) -> Args {
    Args { config: Some(path.to_owned()), ..Args::default() }
}

#[tokio::test]
async fn reload_swaps_vhosts_keeps_in_flight_requests_and_refuses_a_bad_file() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.conf");
    std::fs::write(&path, conf(&[("app.test", &b1)])).unwrap();
    let args = args(&path);
    let proxy = TestProxy::start(Config::load(&args).unwrap()).await;
    assert_eq!(proxy.backend_for("app.test").await, "b1");

    // A request in flight on b1 when the new file moves app.test to b2.
    let slow = proxy.client.get(proxy.url("/slow")).header("host", "app.test").send();
    let slow = tokio::spawn(slow);
    b1.slow_started.notified().await;

    std::fs::write(&path, conf(&[("app.test", &b2), ("new.test", &b1)])).unwrap();
    proxy.proxy.reload_from(&args).await.unwrap();
    assert_eq!(proxy.backend_for("app.test").await, "b2");
    assert_eq!(proxy.backend_for("new.test").await, "b1");
    let slow = slow.await.unwrap().unwrap();
    assert_eq!((slow.status().as_u16(), slow.text().await.unwrap()), (200, "slow".to_owned()));

    // A broken file is refused with its position, and the last good config serves on.
    std::fs::write(&path, "host \"app.test\" {\n    proxy_pass http://$HOST:1\n    dist_policy fastest\n}\n").unwrap();
    let err = proxy.proxy.reload_from(&args).await.unwrap_err().to_string();
    assert!(err.contains("line 3, column 17"), "{err}");
    assert!(err.contains("unknown dist_policy `fastest`"), "{err}");
    assert_eq!(proxy.backend_for("app.test").await, "b2");
    assert_eq!(proxy.backend_for("new.test").await, "b1");
    assert_eq!(proxy.proxy.vhost_names(), ["app.test", "new.test"]);
}

#[tokio::test]
async fn reload_keeps_backend_health_across_configs() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let text = conf(&[("app.test", &b1)]).replace("}\n", "")
        + &format!("    proxy_pass http://$HOST:{};\n}}\n", b2.addr.port());
    let config = Config::from_conf_str(&text, "127.0.0.1").unwrap();
    let proxy = Proxy::new(config.clone()).unwrap();
    b2.set_healthy(false);
    proxy.check_health().await;
    assert_eq!(proxy.backends("app.test"), vec![(b1.addr, true), (b2.addr, false)]);

    let mut more = config;
    more.vhosts[0].name = "renamed.test".into();
    proxy.reload(&more).await.unwrap();
    assert_eq!(proxy.backends("renamed.test"), vec![(b1.addr, true), (b2.addr, false)]);
    assert!(proxy.reload(&Config::default()).await.is_err(), "a config without vhosts is refused");
    assert_eq!(proxy.vhost_names(), ["renamed.test"]);
}
