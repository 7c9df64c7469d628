//! The vhost blocks of `proxy.conf` as types: what the parser ([`crate::conf_parser`])
//! produces and the balancer ([`crate::balance`]) reads. They depend on nothing else
//! in the crate but the path rules ([`super::paths`]), so both can use them without depending on each other.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::paths::PathRules;

/// One `host "NAME" { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostConfig {
    /// Lowercase `name` or `name:port`; see [`crate::routing`] for how it matches.
    pub name: String,
    pub upstreams: Vec<Upstream>,
    #[serde(default)]
    pub policy: Policy,
    /// Answers requests whose Host matches no block.
    #[serde(default)]
    pub default: bool,
    /// The `allow` and `deny` rules: which paths this vhost passes on.
    #[serde(default)]
    pub paths: PathRules,
    /// `tls_certificate` and `tls_certificate_key`: served over HTTPS to clients
    /// that ask for this name.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// `redirect_to_https` and `hsts`.
    #[serde(default)]
    pub https: HttpsRules,
}

/// How a vhost treats plain HTTP when it is served over HTTPS too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsRules {
    /// `redirect_to_https`: a plain request gets `308` to the same URL over HTTPS.
    pub redirect: bool,
    /// `hsts SECONDS`: responses over HTTPS carry `Strict-Transport-Security`.
    pub hsts_max_age_secs: Option<u64>,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A `proxy_pass http://host:port` target. A name may resolve to several addresses,
/// each of which becomes a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

/// How a vhost spreads requests over its backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each request goes to the next backend, one counter per vhost.
    #[default]
    RoundRobin,
    /// Each request goes to the backend with the fewest requests in flight.
    LeastConn,
    /// Round-robin for a browser's first request, then a cookie pins it to that backend.
    Sticky,
}

impl Policy {
    /// The spelling used in `dist_policy`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "round-robin" => Some(Self::RoundRobin),
            "least-conn" => Some(Self::LeastConn),
            "sticky" => Some(Self::Sticky),
            _ => None,
        }
    }
}
