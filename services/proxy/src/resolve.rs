//! Turning upstream names into backend addresses, again and again.
//!
//! `proxy_pass http://peer:9001` in compose resolves to one address per replica
//! (`--scale peer=3`), and each becomes a backend. Names are resolved at start, on
//! reload, and every `resolve_interval_ms`, so scaling up or down shows within
//! seconds. A name that fails to resolve keeps its last addresses: a DNS hiccup does
//! not empty a vhost.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::vhost::{Upstream, VhostConfig};

/// Resolved addresses of the named upstreams (IP literals are not listed).
pub type Resolved = HashMap<Upstream, Vec<SocketAddr>>;

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The addresses of an upstream: itself when it is an IP, else what DNS last said.
pub fn addresses(upstream: &Upstream, resolved: &Resolved) -> Vec<SocketAddr> {
    let host = upstream.host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, upstream.port)],
        Err(_) => resolved.get(upstream).cloned().unwrap_or_default(),
    }
}

/// Resolves every named upstream of these vhosts, keeping `previous` answers for
/// names that fail now.
pub async fn resolve_all(vhosts: &[VhostConfig], previous: &Resolved) -> Resolved {
    let mut resolved = Resolved::new();
    for upstream in vhosts.iter().flat_map(|vhost| vhost.upstreams.iter()) {
        let host = upstream.host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_ok() || resolved.contains_key(upstream) {
            continue;
        }
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, upstream.port))).await;
        let addresses = match lookup {
            Ok(Ok(found)) => {
                let mut found: Vec<SocketAddr> = found.collect();
                found.sort();
                found.dedup();
                found
            }
            Ok(Err(err)) => {
                tracing::warn!(upstream = %host, port = upstream.port, %err, "cannot resolve upstream");
                previous.get(upstream).cloned().unwrap_or_default()
            }
            Err(_) => {
                tracing::warn!(upstream = %host, port = upstream.port, "resolving upstream timed out");
                previous.get(upstream).cloned().unwrap_or_default()
            }
        };
        resolved.insert(upstream.clone(), addresses);
    }
    resolved
}
