//! Services as real child processes, for tests that kill them.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A running service process. Killed on drop.
pub struct Child {
    child: tokio::process::Child,
    port: u16,
    name: String,
    /// Every line the child wrote to stderr.
    logs: Arc<Mutex<Vec<String>>>,
}

impl Child {
    /// Starts `binary args...` with `envs` in the child's environment, and waits
    /// (bounded) for its `listening` event to learn its port.
    pub async fn spawn(binary: &Path, name: &str, args: &[String], envs: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .envs(envs.iter().map(|(key, value)| (*key, value.as_str())))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|err| panic!("failed to start {}: {err}", binary.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let echo = std::env::var_os("TEST_LOG").is_some();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let kept = logs.clone();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                let port = listening_port(&line);
                kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
                if let Some(port) = port {
                    return Some(port);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{name} did not report `listening` (did `cargo build --workspace` run?)"));
        // Keep draining the child's logs so it never blocks on a full pipe.
        let tag = name.to_owned();
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{tag}] {line}");
                }
                kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line);
            }
        });
        Self { child, port, name: name.to_owned(), logs }
    }

    /// Every line the child wrote so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the child runs")
    }

    /// SIGTERM, then waits (up to 15 s) for a graceful exit; SIGKILL after that.
    pub async fn terminate(mut self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) => assert!(status.success(), "{} exited with {status} after SIGTERM", self.name),
            Ok(Err(err)) => panic!("waiting for {} failed: {err}", self.name),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("{} did not stop within 15 s of SIGTERM", self.name);
            }
        }
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap_or_else(|err| panic!("failed to kill {}: {err}", self.name));
    }
}

/// The port of a `listening` event (`"addr":"127.0.0.1:PORT"`) in a JSON log line.
fn listening_port(line: &str) -> Option<u16> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["message"] != "listening" {
        return None;
    }
    event["addr"].as_str()?.rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_comes_from_the_listening_event() {
        let line = r#"{"timestamp":"x","level":"INFO","message":"listening","addr":"127.0.0.1:41234","target":"peer"}"#;
        assert_eq!(listening_port(line), Some(41234));
        assert_eq!(listening_port(r#"{"message":"registered"}"#), None);
        assert_eq!(listening_port("not json"), None);
    }
}
