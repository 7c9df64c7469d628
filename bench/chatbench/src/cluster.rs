//! The system under test: the tracker (or several tracker replicas on one PostgreSQL
//! database) and the peers as child processes of the release `weaprous` binary, on
//! loopback ports the kernel picks, with a fresh data folder and fresh secrets.
//! Children are killed when their handle drops, so an error or Ctrl-C in the benchmark
//! leaves nothing running.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kit::session::TokenKeys;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::procfs;

/// How long a service may take to be ready.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// Log lines kept per service, to show when something fails.
const LOG_TAIL: usize = 40;
/// Warning and error lines kept per service for the report.
const NOTABLE: usize = 5;

/// A running service process. Killed on drop.
pub struct Service {
    pub name: String,
    /// The service's own pid (under a wrapper, not the wrapper's).
    pub pid: u32,
    pub url: String,
    child: tokio::process::Child,
    /// Under a wrapper: the service's pid, killed on drop too (the wrapper's death
    /// would leave it running).
    wrapped: Option<u32>,
    logs: Arc<Mutex<Logs>>,
}

#[derive(Default)]
struct Logs {
    tail: VecDeque<String>,
    warnings: u64,
    errors: u64,
    /// The first few warning and error lines, to show what went wrong.
    notable: Vec<String>,
}

/// Warnings and errors one service logged.
#[derive(Debug, Clone)]
pub struct LogSummary {
    pub service: String,
    pub warnings: u64,
    pub errors: u64,
    /// The first few, as `LEVEL message (fields)`.
    pub notable: Vec<String>,
}

/// How many trackers and peers, and where the trackers keep their data.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Tracker replicas; more than one needs `database_url` (they share it).
    pub trackers: usize,
    pub peers: usize,
    /// `None`: the embedded store (SQLite) in the data folder; `Some(url)`: PostgreSQL.
    pub database_url: Option<String>,
}

/// The tracker(s) and the peers, and what is needed to act as their users.
pub struct Cluster {
    pub tracker: Service,
    /// Tracker replicas beyond the first (same database), named `tracker2`...
    pub replicas: Vec<Service>,
    pub peers: Vec<Service>,
    binary: PathBuf,
    dir: tempfile::TempDir,
    session_secret: SecretString,
    cluster_secret: SecretString,
    service_log: String,
    service_env: Vec<(String, String)>,
    spare_peers: usize,
}

impl Cluster {
    /// Starts the tracker and `peers` peers, and waits until every peer is registered.
    /// `service_env` goes into every service's environment (for variants: allocator
    /// settings, log levels).
    pub async fn start(
        binary: &Path,
        peers: usize,
        service_log: &str,
        service_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let layout = Layout { trackers: 1, peers, database_url: None };
        Self::start_layout(binary, &layout, service_log, service_env).await
    }

    /// Starts `layout`: the trackers one after the other (the first migrates the
    /// database), then the peers, peer `i` registered with tracker `i % trackers`.
    pub async fn start_layout(
        binary: &Path,
        layout: &Layout,
        service_log: &str,
        service_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        if layout.trackers == 0 || (layout.trackers > 1 && layout.database_url.is_none()) {
            bail!("{} trackers need a shared database (a PostgreSQL URL)", layout.trackers);
        }
        if !binary.is_file() {
            bail!("{} not found: build it first (cargo build --release -p weaprous)", binary.display());
        }
        let dir = tempfile::Builder::new().prefix("chatbench-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("www"))?;
        let session_secret = SecretString::from(random_secret());
        let cluster_secret = SecretString::from(random_secret());
        let tracker_args = |name: &str| {
            vec![
                "tracker".to_owned(),
                "--auth-url".to_owned(),
                // Unused: the benchmark mints session tokens itself and never logs in.
                "http://127.0.0.1:9".to_owned(),
                "--data-dir".to_owned(),
                dir.path().join(name).display().to_string(),
                "--www".to_owned(),
                dir.path().join("www").display().to_string(),
                "--server-ip".to_owned(),
                "127.0.0.1".to_owned(),
            ]
        };
        let mut envs = envs(&session_secret, &cluster_secret, service_log, service_env);
        // In the environment rather than `--database-url`: a URL may carry a password,
        // and arguments show in `ps`. Only the trackers get it; the peers stay embedded.
        if let Some(url) = &layout.database_url {
            envs.push(("WEAPROUS_DATABASE_URL".to_owned(), url.clone()));
        }
        let tracker = Service::spawn(&[], binary, "tracker", &tracker_args("tracker"), &envs).await?;
        let mut replicas = Vec::new();
        for index in 2..=layout.trackers {
            let name = format!("tracker{index}");
            replicas.push(Service::spawn(&[], binary, &name, &tracker_args(&name), &envs).await?);
        }
        let mut cluster = Self {
            tracker,
            replicas,
            peers: Vec::new(),
            binary: binary.to_owned(),
            dir,
            session_secret,
            cluster_secret,
            service_log: service_log.to_owned(),
            service_env: service_env.to_vec(),
            spare_peers: 0,
        };
        for index in 0..layout.peers {
            let tracker = cluster.trackers()[index % layout.trackers].url.clone();
            let peer = cluster.start_peer_on(&format!("peer{}", index + 1), &[], &tracker).await?;
            cluster.peers.push(peer);
        }
        Ok(cluster)
    }

    /// Every tracker replica, the first one first.
    pub fn trackers(&self) -> Vec<&Service> {
        std::iter::once(&self.tracker).chain(&self.replicas).collect()
    }

    /// Starts one more peer with a fresh data folder, and waits until it is ready.
    /// A non-empty `wrapper` runs it under another program (`heaptrack -o FILE`), for
    /// profiling.
    pub async fn start_peer(&mut self, name: &str, wrapper: &[String]) -> anyhow::Result<Service> {
        let tracker = self.tracker.url.clone();
        self.start_peer_on(name, wrapper, &tracker).await
    }

    async fn start_peer_on(&mut self, name: &str, wrapper: &[String], tracker: &str) -> anyhow::Result<Service> {
        self.spare_peers += 1;
        let data = self.dir.path().join(format!("peer-{name}-{}", self.spare_peers));
        let args = vec![
            "peer".to_owned(),
            "--tracker-ip".to_owned(),
            tracker.to_owned(),
            "--auth-url".to_owned(),
            "http://127.0.0.1:9".to_owned(),
            "--data-dir".to_owned(),
            data.display().to_string(),
            "--www".to_owned(),
            self.dir.path().join("www").display().to_string(),
            "--server-ip".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        let envs = envs(&self.session_secret, &self.cluster_secret, &self.service_log, &self.service_env);
        Service::spawn(wrapper, &self.binary, name, &args, &envs).await
    }

    /// Keys that sign session tokens the services accept.
    pub fn token_keys(&self) -> TokenKeys {
        TokenKeys::new(&self.session_secret, Duration::from_secs(24 * 60 * 60))
    }

    /// Every service's label and pid, for CPU accounting.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.trackers().into_iter().chain(&self.peers).map(|service| (service.name.clone(), service.pid)).collect()
    }

    /// Warnings and errors the services logged so far, per service.
    pub fn log_summaries(&self) -> Vec<LogSummary> {
        self.trackers()
            .into_iter()
            .chain(&self.peers)
            .map(|service| {
                let logs = lock(&service.logs);
                LogSummary {
                    service: service.name.clone(),
                    warnings: logs.warnings,
                    errors: logs.errors,
                    notable: logs.notable.clone(),
                }
            })
            .collect()
    }

    /// Stops every service with SIGTERM (SIGKILL after a grace period).
    pub async fn stop(self) {
        for peer in self.peers {
            peer.terminate().await;
        }
        for replica in self.replicas {
            replica.terminate().await;
        }
        self.tracker.terminate().await;
        drop(self.dir);
    }
}

impl Service {
    /// Starts `[wrapper...] binary args... --server-port PORT` on a free loopback port
    /// and waits (bounded) until it answers `GET /readyz` (a peer: registered with the
    /// tracker). Readiness rather than the `listening` log line, so any `RUST_LOG`
    /// works.
    async fn spawn(
        wrapper: &[String],
        binary: &Path,
        name: &str,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        // The kernel picks a free port; the service binds it right after (a race only
        // with another program binding that very port meanwhile).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(args)
            .args(["--server-port", &port.to_string()])
            .envs(envs.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        let pid = child.id().context("the child exited at once")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let logs = Arc::new(Mutex::new(Logs::default()));
        // Keep draining the logs so the child never blocks on a full pipe.
        let kept = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                lock(&kept).push(line);
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        if let Err(err) = wait_ready(&mut child, &url).await {
            let tail: Vec<String> = lock(&logs).tail.iter().cloned().collect();
            bail!("{name} did not start: {err}; its last log lines:\n{}", tail.join("\n"));
        }
        let wrapped = if wrapper.is_empty() {
            None
        } else {
            let exe = binary.canonicalize()?;
            Some(procfs::descendant_running(pid, &exe).context("the wrapped service process was not found")?)
        };
        let pid = wrapped.unwrap_or(pid);
        eprintln!("started {name} (pid {pid}) on 127.0.0.1:{port}");
        Ok(Self { name: name.to_owned(), pid, url, child, wrapped, logs })
    }

    /// SIGTERM, then up to 10 s for a graceful exit, then SIGKILL.
    /// Under a wrapper, the service gets the signal and the wrapper up to 60 s to
    /// finish (a profiler writes its data).
    pub async fn terminate(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        let patience = Duration::from_secs(if self.wrapped.is_some() { 60 } else { 10 });
        if tokio::time::timeout(patience, self.child.wait()).await.is_err() {
            eprintln!("{} did not stop within {patience:?} of SIGTERM; killing it", self.name);
            let _ = self.child.kill().await;
        }
        self.wrapped = None;
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(pid) = self.wrapped.take() {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

impl Logs {
    fn push(&mut self, line: String) {
        let warning = line.contains(r#""level":"WARN""#);
        let error = line.contains(r#""level":"ERROR""#);
        self.warnings += u64::from(warning);
        self.errors += u64::from(error);
        if (warning || error) && self.notable.len() < NOTABLE {
            self.notable.push(notable(&line));
        }
        if self.tail.len() == LOG_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

fn envs(
    session_secret: &SecretString,
    cluster_secret: &SecretString,
    service_log: &str,
    service_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut envs = vec![
        ("WEAPROUS_SESSION_SECRET".to_owned(), session_secret.expose_secret().to_owned()),
        ("WEAPROUS_CLUSTER_SECRET".to_owned(), cluster_secret.expose_secret().to_owned()),
        ("WEAPROUS_LOG_FORMAT".to_owned(), "json".to_owned()),
        ("RUST_LOG".to_owned(), service_log.to_owned()),
        // A benchmark is a flood on purpose: no rate limit (a `--service-env` may set
        // them back on).
        ("WEAPROUS_RATE_LIMITS".to_owned(), "off".to_owned()),
    ];
    envs.extend(service_env.iter().cloned());
    envs
}

fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// `LEVEL message (other fields)` of a JSON log line; the line itself if it is not
/// JSON. The services never log secrets, so this is safe to print.
fn notable(line: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    let text = |key: &str| fields.get(key).and_then(|value| value.as_str()).unwrap_or("").to_owned();
    let others: Vec<String> = fields
        .iter()
        .filter(|(key, _)| !["timestamp", "level", "message", "target", "span", "spans"].contains(&key.as_str()))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    format!("{} {} ({})", text("level"), text("message"), others.join(" "))
}

/// Polls `GET /readyz` until it answers 200, the child exits, or patience runs out.
async fn wait_ready(child: &mut tokio::process::Child, url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("it exited with {status}");
        }
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("not ready within {START_PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_errors_are_counted_and_the_tail_is_bounded() {
        let mut logs = Logs::default();
        for _ in 0..LOG_TAIL + 5 {
            logs.push(r#"{"level":"WARN","message":"peer fell behind"}"#.to_owned());
        }
        logs.push(r#"{"level":"ERROR","message":"x"}"#.to_owned());
        assert_eq!((logs.warnings, logs.errors, logs.tail.len()), (LOG_TAIL as u64 + 5, 1, LOG_TAIL));
        assert_eq!(logs.notable.len(), NOTABLE);
        assert_eq!(logs.notable[0], "WARN peer fell behind ()");
    }
}
