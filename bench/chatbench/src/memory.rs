//! Memory per idle event stream: a fresh peer hosts a few users; once each has one
//! stream open (their presence events have gone out), `streams` more idle streams
//! open, spread over the same users, and the peer's memory is read before and after.
//! The extra streams receive nothing but the 15 s keep-alive comment: idle clients.

use std::path::Path;
use std::time::Duration;

use crate::chat::Chat;
use crate::cluster::Cluster;
use crate::nats::NatsServer;
use crate::procfs::{self, Memory};

/// How long to let a process settle before reading its memory.
const SETTLE: Duration = Duration::from_secs(1);

/// What one memory run measured.
#[derive(Debug, Clone, Default)]
pub struct MemoryResult {
    pub streams: usize,
    pub before: Memory,
    pub after: Memory,
    /// Kernel memory of TCP sockets (both ends, they are all on loopback).
    pub tcp_kernel_delta: i64,
}

impl MemoryResult {
    /// Resident bytes per stream.
    pub fn rss_per_stream(&self) -> f64 {
        per(self.after.rss, self.before.rss, self.streams)
    }

    pub fn anon_per_stream(&self) -> f64 {
        per(self.after.rss_anon, self.before.rss_anon, self.streams)
    }

    pub fn pss_per_stream(&self) -> f64 {
        per(self.after.pss, self.before.pss, self.streams)
    }

    pub fn tcp_kernel_per_stream(&self) -> f64 {
        self.tcp_kernel_delta as f64 / self.streams.max(1) as f64
    }
}

/// Idle WeApRous event streams on a fresh peer, which is stopped afterwards.
pub async fn weaprous(
    cluster: &mut Cluster,
    chat: &Chat,
    round: usize,
    users: usize,
    streams: usize,
    wrapper: &[String],
) -> anyhow::Result<MemoryResult> {
    let peer = cluster.start_peer(&format!("memory-peer{round}"), wrapper).await?;
    let members = (0..users)
        .map(|index| chat.member(&format!("m{round}u{index}"), &peer.url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    chat.host_all(&members).await?;
    let first = chat.open_streams(&members, None).await?;
    tokio::time::sleep(SETTLE).await;
    let before = procfs::memory(peer.pid)?;
    let tcp_before = procfs::tcp_kernel_bytes();
    let spread: Vec<_> = members.iter().cycle().take(streams).cloned().collect();
    let idle = chat.open_streams(&spread, None).await?;
    tokio::time::sleep(SETTLE).await;
    let after = procfs::memory(peer.pid)?;
    let tcp_after = procfs::tcp_kernel_bytes();
    let opened = idle.len();
    drop(idle);
    drop(first);
    peer.terminate().await;
    Ok(MemoryResult { streams: opened, before, after, tcp_kernel_delta: tcp_after as i64 - tcp_before as i64 })
}

/// Idle NATS connections (one subscription each) on a fresh `nats-server`, which is
/// stopped afterwards (fresh, like the peer: a server that freed memory reuses it).
pub async fn nats(binary: &Path, connections: usize) -> anyhow::Result<MemoryResult> {
    let server = NatsServer::start(binary).await?;
    tokio::time::sleep(SETTLE).await;
    let before = procfs::memory(server.pid)?;
    let tcp_before = procfs::tcp_kernel_bytes();
    let idle = server.idle_connections(connections).await?;
    tokio::time::sleep(SETTLE).await;
    let after = procfs::memory(server.pid)?;
    let tcp_after = procfs::tcp_kernel_bytes();
    drop(idle);
    server.stop().await;
    Ok(MemoryResult { streams: connections, before, after, tcp_kernel_delta: tcp_after as i64 - tcp_before as i64 })
}

fn per(after: u64, before: u64, count: usize) -> f64 {
    (after as f64 - before as f64) / count.max(1) as f64
}
