//! The ceiling: the same fan-out through `nats-server` (core NATS, no persistence) on
//! the same machine, with the same subscriber count and message size. Each member is
//! its own client connection with one subscription, as each WeApRous member holds its
//! own event stream.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::fanout::Poster;
use crate::probe::Probe;

/// The subject every member subscribes to.
const SUBJECT: &str = "chatbench.fanout";
/// The subject idle connections subscribe to (nothing is published on it).
const IDLE_SUBJECT: &str = "chatbench.idle";

/// A `nats-server` child process on a loopback port. Killed on drop.
pub struct NatsServer {
    pub url: String,
    pub pid: u32,
    port: u16,
    child: tokio::process::Child,
}

/// Subscribed member connections, read in the background; closed on drop.
pub struct Subscribers {
    clients: Vec<async_nats::Client>,
    tasks: Vec<JoinHandle<()>>,
    pub broken: Arc<AtomicU64>,
}

/// Publishes on the members' subject from one client connection.
#[derive(Clone)]
pub struct NatsPoster {
    client: async_nats::Client,
}

/// Raw idle connections (`CONNECT`, one `SUB`), for the memory comparison: cheaper
/// for the benchmark process than full clients, and all the server sees anyway.
pub struct IdleConnections {
    _sockets: Vec<TcpStream>,
}

impl NatsServer {
    /// Starts `binary` on a free loopback port and waits (bounded) until it accepts.
    pub async fn start(binary: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(binary);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| {
            format!("failed to start {} (apt-get install -y nats-server, or --skip-nats)", binary.display())
        })?;
        let pid = child.id().context("nats-server exited at once")?;
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() >= deadline {
                bail!("nats-server did not accept connections on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("started nats-server (pid {pid}) on 127.0.0.1:{port}");
        Ok(Self { url, pid, port, child })
    }

    /// A client connection for publishing.
    pub async fn poster(&self) -> anyhow::Result<NatsPoster> {
        Ok(NatsPoster { client: async_nats::connect(&self.url).await? })
    }

    /// `count` member connections, each subscribed (and the subscription confirmed by
    /// the server) before this returns; receiver `i` reports to `probe` as member `i`.
    pub async fn subscribers(&self, count: usize, probe: Arc<Probe>) -> anyhow::Result<Subscribers> {
        let broken = Arc::new(AtomicU64::new(0));
        let connecting = (0..count).map(|index| {
            let (probe, broken, url) = (probe.clone(), broken.clone(), self.url.clone());
            async move {
                let client = async_nats::ConnectOptions::new().subscription_capacity(1 << 16).connect(url).await?;
                let mut subscriber = client.subscribe(SUBJECT).await?;
                client.flush().await?;
                let task = tokio::spawn(async move {
                    while let Some(message) = subscriber.next().await {
                        if let Ok(text) = std::str::from_utf8(&message.payload) {
                            probe.delivered(index, text);
                        }
                    }
                    broken.fetch_add(1, Ordering::Relaxed);
                });
                anyhow::Ok((client, task))
            }
        });
        let (clients, tasks) =
            stream::iter(connecting).buffer_unordered(64).try_collect::<Vec<_>>().await?.into_iter().unzip();
        Ok(Subscribers { clients, tasks, broken })
    }

    /// `count` idle connections with one subscription each, confirmed by a `PONG`.
    pub async fn idle_connections(&self, count: usize) -> anyhow::Result<IdleConnections> {
        let port = self.port;
        let sockets = stream::iter((0..count).map(|_| async move {
            let mut socket = TcpStream::connect(("127.0.0.1", port)).await?;
            let hello = format!("CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {IDLE_SUBJECT} 1\r\nPING\r\n");
            socket.write_all(hello.as_bytes()).await?;
            let mut seen = Vec::new();
            let mut buffer = [0u8; 4096];
            while !seen.windows(4).any(|window| window == b"PONG") {
                let read = socket.read(&mut buffer).await?;
                if read == 0 {
                    bail!("nats-server closed an idle connection during its handshake");
                }
                seen.extend_from_slice(&buffer[..read]);
            }
            anyhow::Ok(socket)
        }))
        .buffer_unordered(64)
        .try_collect()
        .await?;
        Ok(IdleConnections { _sockets: sockets })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Subscribers {
    pub fn broken(&self) -> u64 {
        self.broken.load(Ordering::Relaxed)
    }

    /// Unsubscribes and closes every connection.
    pub async fn close(self) {
        for client in &self.clients {
            let _ = client.drain().await;
        }
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Poster for NatsPoster {
    async fn post(&self, _seq: u64, text: String) -> anyhow::Result<()> {
        self.client.publish(SUBJECT, text.into()).await?;
        Ok(())
    }
}
