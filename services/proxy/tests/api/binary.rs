//! The `proxy` binary itself: exit code on bad config, the `listening` event, SIGHUP
//! reload and SIGTERM shutdown, with one worker thread per core.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

use crate::helpers::Backend;

const PATIENCE: Duration = Duration::from_secs(10);

fn proxy_command(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_proxy"));
    command
        .args(["--server-ip", "127.0.0.1", "--server-port", "0", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("WEAPROUS_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn conf(backend: &Backend) -> String {
    format!("host \"app.test\" {{\n    proxy_pass http://$HOST:{};\n}}\n", backend.addr.port())
}

/// Reads log lines until one has this message, and returns it as JSON.
async fn wait_for(lines: &mut Lines<BufReader<ChildStderr>>, message: &str) -> serde_json::Value {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if event["message"] == message {
                return event;
            }
        }
        panic!("the proxy exited before logging `{message}`");
    });
    found.await.unwrap_or_else(|_| panic!("no `{message}` within {PATIENCE:?}"))
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args([format!("-{name}"), pid]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_bad_config_exits_with_64_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.conf");
    std::fs::write(&path, "host \"a\" {\n    proxy_pass http//127.0.0.1:9001;\n}\n").unwrap();
    let output = proxy_command(&path).output().await.unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2, column 16"), "{stderr}");
    assert!(stderr.contains("not an http address"), "{stderr}");
}

#[tokio::test]
async fn the_binary_serves_reloads_on_sighup_and_stops_on_sigterm() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.conf");
    std::fs::write(&path, conf(&b1)).unwrap();
    let mut child = proxy_command(&path).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    let listening = wait_for(&mut lines, "listening").await;
    let addr: std::net::SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    assert!(listening["workers"].as_u64().unwrap() >= 1);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let backend_for = |client: reqwest::Client| async move {
        let response = client.get(format!("http://{addr}/")).header("host", "app.test").send().await.unwrap();
        response.headers()["x-backend"].to_str().unwrap().to_owned()
    };
    for _ in 0..4 {
        assert_eq!(backend_for(client.clone()).await, "b1");
    }

    std::fs::write(&path, conf(&b2)).unwrap();
    signal(&child, "HUP");
    wait_for(&mut lines, "configuration reloaded").await;
    for _ in 0..4 {
        assert_eq!(backend_for(client.clone()).await, "b2");
    }

    signal(&child, "TERM");
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn round_robin_strictly_alternates_whichever_worker_takes_the_request() {
    let (b1, b2) = (Backend::start("b1").await, Backend::start("b2").await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.conf");
    let conf = format!(
        "host \"app.test\" {{\n    proxy_pass http://$HOST:{};\n    proxy_pass http://$HOST:{};\n    dist_policy round-robin\n}}\n",
        b1.addr.port(),
        b2.addr.port()
    );
    std::fs::write(&path, conf).unwrap();
    // Four workers, so successive connections land on different ones.
    let mut child = proxy_command(&path).env("PROXY_WORKERS", "4").spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = wait_for(&mut lines, "listening").await;
    assert_eq!(listening["workers"], 4);
    let addr: std::net::SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();

    let mut seen = Vec::new();
    for _ in 0..16 {
        // A new connection per request, as two `curl`s in a row make.
        let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
        let response = client.get(format!("http://{addr}/")).header("host", "app.test").send().await.unwrap();
        seen.push(response.headers()["x-backend"].to_str().unwrap().to_owned());
    }
    assert!(seen.windows(2).all(|pair| pair[0] != pair[1]), "strict alternation: {seen:?}");

    signal(&child, "TERM");
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
