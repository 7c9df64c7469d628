//! Idle keep-alive connections to backends, one pool per worker (as nginx keeps one
//! upstream pool per worker process), so the pool's lock is never contended.
//!
//! The most recently used connection goes out first: under light load the same few
//! stay warm and the rest age out. A connection is checked before it is handed out:
//! one the backend has closed meanwhile has a pending end-of-file, which the runtime
//! already knows of, so the check costs no system call on a live connection.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections by backend address.
#[derive(Debug)]
pub struct Pool {
    /// A list per backend: a vhost has a handful, and comparing a few addresses beats
    /// hashing one.
    idle: Mutex<Vec<(SocketAddr, Vec<Idle>)>>,
    max_per_backend: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    since: Instant,
}

impl Pool {
    /// A pool that keeps at most `max_per_backend` idle connections to each backend,
    /// each for at most `idle_timeout`.
    pub fn new(max_per_backend: usize, idle_timeout: Duration) -> Self {
        Self { idle: Mutex::new(Vec::new()), max_per_backend, idle_timeout }
    }

    /// An idle connection to `addr` that is still open at `now`, if there is one.
    pub fn take(&self, addr: SocketAddr, now: Instant) -> Option<TcpStream> {
        loop {
            let idle = {
                let mut idle = crate::sync::lock(&self.idle);
                let (_, list) = idle.iter_mut().find(|(backend, _)| *backend == addr)?;
                let newest = list.pop()?;
                if now.duration_since(newest.since) >= self.idle_timeout {
                    // The newest is too old, so all are.
                    list.clear();
                    return None;
                }
                newest
            };
            if still_open(&idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// Keeps a connection whose last exchange ended cleanly (at `now`), if there is
    /// room.
    pub fn put(&self, addr: SocketAddr, stream: TcpStream, now: Instant) {
        if self.max_per_backend == 0 {
            return;
        }
        let mut idle = crate::sync::lock(&self.idle);
        let index = match idle.iter().position(|(backend, _)| *backend == addr) {
            Some(index) => index,
            None => {
                idle.push((addr, Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[index].1;
        if list.len() < self.max_per_backend {
            list.push(Idle { stream, since: now });
        }
    }

    /// Closes the connections idle for longer than the timeout.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut idle = crate::sync::lock(&self.idle);
        for (_, list) in idle.iter_mut() {
            list.retain(|idle| now.duration_since(idle.since) < self.idle_timeout);
        }
        idle.retain(|(_, list)| !list.is_empty());
    }

    /// Idle connections in all.
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.idle).iter().map(|(_, list)| list.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an idle connection can carry a request: it has nothing to read (an end of
/// file, or bytes nobody asked for, mean it cannot).
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: (the pool's side, the backend's side).
    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_newest_open_connection_goes_out_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(8, Duration::from_secs(60));
        let (older, _older_server) = pair(&listener).await;
        let (newer, _newer_server) = pair(&listener).await;
        let newer_port = newer.local_addr().unwrap().port();
        pool.put(addr, older, Instant::now());
        pool.put(addr, newer, Instant::now());
        assert_eq!(pool.take(addr, Instant::now()).unwrap().local_addr().unwrap().port(), newer_port);
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test]
    async fn connections_the_backend_closed_or_wrote_to_are_not_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(8, Duration::from_secs(60));
        let (closed, closed_server) = pair(&listener).await;
        let (chatty, mut chatty_server) = pair(&listener).await;
        drop(closed_server);
        chatty_server.write_all(b"unasked").await.unwrap();
        // Let the end of file and the bytes arrive and be seen.
        closed.readable().await.unwrap();
        chatty.readable().await.unwrap();
        pool.put(addr, closed, Instant::now());
        pool.put(addr, chatty, Instant::now());
        assert!(pool.take(addr, Instant::now()).is_none());
        assert!(pool.is_empty());
    }

    #[tokio::test]
    async fn old_connections_expire_and_full_pools_keep_no_more() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let expiring = Pool::new(8, Duration::ZERO);
        let (stream, _server) = pair(&listener).await;
        expiring.put(addr, stream, Instant::now());
        assert!(expiring.take(addr, Instant::now()).is_none());

        let small = Pool::new(1, Duration::from_secs(60));
        let (first, _first_server) = pair(&listener).await;
        let (second, _second_server) = pair(&listener).await;
        small.put(addr, first, Instant::now());
        small.put(addr, second, Instant::now());
        assert_eq!(small.len(), 1);
        small.sweep();
        assert_eq!(small.len(), 1);
        let none_kept = Pool::new(0, Duration::from_secs(60));
        let (third, _third_server) = pair(&listener).await;
        none_kept.put(addr, third, Instant::now());
        assert!(none_kept.is_empty());
    }
}
