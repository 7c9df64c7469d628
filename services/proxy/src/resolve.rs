//! Turning upstream names into backend addresses, again and again.
//!
//! `proxy_pass http://peer:9001` in compose resolves to one address per replica
//! (`--scale peer=3`), and each becomes a backend. Names are resolved at start, on
//! reload, and every `resolve_interval_ms`, so scaling up or down shows within
//! seconds. A name that fails to resolve keeps its last addresses: a DNS hiccup does
//! not empty a vhost. A name that keeps failing (an optional service that is not
//! deployed, such as a collector) is warned about once, then once every
//! [`WARN_EVERY`](kit::telemetry::throttle::WARN_EVERY) with the count of failures in between, and once more when it
//! resolves again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kit::telemetry::throttle::Throttle;

use crate::config::vhost::{Upstream, VhostConfig};

/// Resolved addresses of the named upstreams (IP literals are not listed).
pub type Resolved = HashMap<Upstream, Vec<SocketAddr>>;

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The warnings about each upstream that does not resolve, process-wide (a reload
/// makes new tables, not new names).
static UNRESOLVED: LazyLock<Mutex<HashMap<Upstream, Throttle>>> = LazyLock::new(Mutex::default);

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
                if resolved_again(upstream) {
                    tracing::info!(upstream = %host, port = upstream.port, "upstream resolves again");
                }
                found
            }
            Ok(Err(err)) => {
                if let Some(failures_held_back) = unresolved(upstream) {
                    tracing::warn!(upstream = %host, port = upstream.port, %err, failures_held_back, "cannot resolve upstream");
                }
                previous.get(upstream).cloned().unwrap_or_default()
            }
            Err(_) => {
                if let Some(failures_held_back) = unresolved(upstream) {
                    tracing::warn!(upstream = %host, port = upstream.port, failures_held_back, "resolving upstream timed out");
                }
                previous.get(upstream).cloned().unwrap_or_default()
            }
        };
        resolved.insert(upstream.clone(), addresses);
    }
    resolved
}

/// Counts a failed look-up of `upstream`: `Some(failures held back since the last
/// warning)` when this one is to be warned about.
fn unresolved(upstream: &Upstream) -> Option<u64> {
    let mut unresolved = UNRESOLVED.lock().unwrap_or_else(PoisonError::into_inner);
    unresolved.entry(upstream.clone()).or_default().hit(Instant::now())
}

/// Whether `upstream` had failed and was warned about, and is resolved now.
fn resolved_again(upstream: &Upstream) -> bool {
    let mut unresolved = UNRESOLVED.lock().unwrap_or_else(PoisonError::into_inner);
    unresolved.remove(upstream).is_some_and(|mut throttle| throttle.clear())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vhost::Policy;

    #[tokio::test]
    async fn an_upstream_that_keeps_failing_to_resolve_is_warned_about_once() {
        let lines = kit::telemetry::capture::CapturedLines::default();
        let _default = tracing::subscriber::set_default(lines.subscriber());
        let upstream = Upstream { host: "jaeger.weaprous-test.invalid".into(), port: 4318 };
        let vhosts = [VhostConfig {
            name: "jaeger.localhost".into(),
            upstreams: vec![upstream.clone()],
            policy: Policy::default(),
            default: false,
            paths: Default::default(),
            tls: None,
            https: Default::default(),
        }];
        let mut resolved = Resolved::new();
        for _ in 0..5 {
            resolved = resolve_all(&vhosts, &resolved).await;
        }
        assert_eq!(resolved.get(&upstream), Some(&Vec::new()));
        let logged = lines.text();
        let warnings = logged.lines().filter(|line| line.contains("WARN")).count();
        assert_eq!(warnings, 1, "{logged}");
    }
}
