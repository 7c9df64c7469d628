//! Choosing the vhost for a request by its Host.
//!
//! The host is the authority of an absolute-form request target, else the `Host`
//! header. It is compared case-insensitively, in this order:
//!
//! 1. a block named exactly like it: `Host: localhost:8080` matches `host "localhost:8080"`;
//! 2. when the Host has a port, a block named without one, which matches every port:
//!    `Host: localhost:8080` also matches `host "localhost"`;
//!    when the Host has no port, a block for port 80: `Host: localhost` matches
//!    `host "localhost:80"`;
//! 3. the proxy's own `/healthz` and `/readyz` (see [`crate::server`]);
//! 4. the block marked `default`, if any; otherwise 404.

use std::sync::Arc;

use crate::balance::Vhost;
use crate::error::ProxyError;

/// The vhosts of one configuration, with their resolved backends. Immutable; replaced
/// whole on reload and when DNS answers change.
#[derive(Debug, Default)]
pub struct RoutingTable {
    /// Names and vhosts. A linear scan: configs hold a handful of vhosts, and comparing
    /// a few short strings beats hashing one.
    entries: Vec<(Box<str>, Arc<Vhost>)>,
    default: Option<Arc<Vhost>>,
}

/// The outcome of matching a Host.
#[derive(Debug)]
pub enum Route<'a> {
    Vhost(&'a Arc<Vhost>),
    /// No block names this host (the default vhost, if any, comes with it).
    Unmatched(Option<&'a Arc<Vhost>>),
}

impl RoutingTable {
    pub fn new(vhosts: Vec<Arc<Vhost>>, default: Option<&str>) -> Self {
        let default = default.and_then(|name| vhosts.iter().find(|vhost| &*vhost.name == name).cloned());
        let entries = vhosts.into_iter().map(|vhost| (vhost.name.clone(), vhost)).collect();
        Self { entries, default }
    }

    pub fn vhosts(&self) -> impl Iterator<Item = &Arc<Vhost>> {
        self.entries.iter().map(|(_, vhost)| vhost)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Vhost>> {
        self.entries.iter().find(|(entry, _)| &**entry == name).map(|(_, vhost)| vhost)
    }

    pub fn default_vhost(&self) -> Option<&Arc<Vhost>> {
        self.default.as_ref()
    }

    /// Matches a host (already lowercase) against the blocks.
    pub fn route(&self, host: &str) -> Route<'_> {
        if let Some(vhost) = self.get(host) {
            return Route::Vhost(vhost);
        }
        let (name, port) = split_host_port(host);
        let by_port = match port {
            Some(_) => self.get(name),
            None => self
                .entries
                .iter()
                .find(|(entry, _)| entry.strip_suffix(":80").is_some_and(|entry_name| entry_name == host))
                .map(|(_, vhost)| vhost),
        };
        match by_port {
            Some(vhost) => Route::Vhost(vhost),
            None => Route::Unmatched(self.default.as_ref()),
        }
    }
}

/// Splits `name:port` (or `[v6]:port`) into the name and the port text.
pub fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.rfind("]:") {
            Some(end) => (&host[..=end], Some(&host[end + 2..])),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// Checks a Host (or the authority of an absolute-form target) and lowercases it
/// into `buffer` when it has capitals. An empty Host, or one with spaces or a `/`, is
/// refused with 400.
pub fn normalize_host<'a>(raw: &'a str, buffer: &'a mut String) -> Result<&'a str, ProxyError> {
    if raw.is_empty() {
        return Err(ProxyError::NoHost);
    }
    if raw.bytes().any(|byte| byte.is_ascii_whitespace() || byte == b'/' || !byte.is_ascii_graphic()) {
        return Err(ProxyError::BadHost("the Host header is not a host name"));
    }
    if raw.bytes().any(|byte| byte.is_ascii_uppercase()) {
        buffer.clear();
        buffer.extend(raw.chars().map(|character| character.to_ascii_lowercase()));
        return Ok(buffer.as_str());
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vhost::Policy;

    fn table(names: &[&str], default: Option<&str>) -> RoutingTable {
        let vhosts =
            names.iter().map(|name| Arc::new(Vhost::new(name, Policy::RoundRobin, Vec::new(), Vec::new()))).collect();
        RoutingTable::new(vhosts, default)
    }

    fn routed<'a>(table: &'a RoutingTable, host: &str) -> Option<&'a str> {
        match table.route(host) {
            Route::Vhost(vhost) => Some(&vhost.name),
            Route::Unmatched(default) => default.map(|vhost| &*vhost.name),
        }
    }

    #[test]
    fn exact_names_win_then_portless_names_match_any_port() {
        let table = table(&["localhost:8080", "tracker.localhost", "plain:80"], None);
        assert_eq!(routed(&table, "localhost:8080"), Some("localhost:8080"));
        assert_eq!(routed(&table, "localhost:9090"), None);
        assert_eq!(routed(&table, "localhost"), None);
        assert_eq!(routed(&table, "tracker.localhost:8080"), Some("tracker.localhost"));
        assert_eq!(routed(&table, "tracker.localhost"), Some("tracker.localhost"));
        assert_eq!(routed(&table, "plain"), Some("plain:80"));
        assert_eq!(routed(&table, "plain:81"), None);
    }

    #[test]
    fn unknown_hosts_go_to_the_default_when_there_is_one() {
        let table = table(&["a:8080", "b:8080"], Some("b:8080"));
        assert_eq!(routed(&table, "c:8080"), Some("b:8080"));
        assert!(matches!(table.route("c:8080"), Route::Unmatched(Some(_))));
    }

    #[test]
    fn host_ports_split_for_names_and_ipv6() {
        assert_eq!(split_host_port("a:1"), ("a", Some("1")));
        assert_eq!(split_host_port("a"), ("a", None));
        assert_eq!(split_host_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
    }

    #[test]
    fn hosts_are_lowercased_and_checked() {
        let mut buffer = String::new();
        assert_eq!(normalize_host("TRACKER.Localhost:8080", &mut buffer).unwrap(), "tracker.localhost:8080");
        assert_eq!(normalize_host("plain:80", &mut buffer).unwrap(), "plain:80");
        assert!(matches!(normalize_host("", &mut buffer), Err(ProxyError::NoHost)));
        for bad in ["a b", "a/b", "a\tb"] {
            assert!(matches!(normalize_host(bad, &mut buffer), Err(ProxyError::BadHost(_))), "{bad:?}");
        }
    }
}
