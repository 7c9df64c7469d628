//! The edge of every service towards browsers and the proxies in front of it.
//!
//! - **Who the client is.** `X-Forwarded-For`, `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are believed only as far as the configuration trusts the
//!   proxies in front ([`TrustedProxies`]: a count of hops, or a list of networks, as
//!   nginx's `real_ip` and Synapse's `x_forwarded` do). The result is a request
//!   extension, [`Forwarded`], which [`super::ClientIp`] reads.
//! - **Cross-origin requests.** A request that changes state (any method but `GET`,
//!   `HEAD` and `OPTIONS`) and that a browser marks as coming from another origin is
//!   refused with `403`, in the manner of Go's `http.CrossOriginProtection`: a
//!   `Sec-Fetch-Site` other than `same-origin` or `none`, or, from browsers that do
//!   not send it, an `Origin` whose host is not the request's own. Requests that carry
//!   neither header are not from a browser page (curl, API clients, the calls between
//!   services) and pass.
//! - **Headers.** Every response gets a strict Content-Security-Policy, frame
//!   protection, `nosniff`, a `Referrer-Policy` and a `Permissions-Policy`
//!   ([`SECURITY_HEADERS`]), unless the handler set its own.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The edge settings of a service: flattened into its config, so they come from
/// `WEAPROUS_TRUSTED_PROXIES` / `WEAPROUS_SECURE_COOKIES` or the service's own prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeConfig {
    /// Which proxies may say who the client is and how it connected.
    #[serde(default)]
    pub trusted_proxies: TrustedProxies,
    /// When the session cookie is `Secure` (and named with the `__Host-` prefix).
    #[serde(default)]
    pub secure_cookies: SecureCookies,
}

/// The proxies whose `X-Forwarded-*` headers are believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawProxies", into = "String")]
pub enum TrustedProxies {
    /// This many proxies stand in front, each appending the address it was
    /// connected from to `X-Forwarded-For`: the client is the `n`-th address from the
    /// right (the one the outermost proxy saw). `0` trusts no header; the default,
    /// `1`, is the WeApRous proxy alone. A client that reaches the service directly,
    /// around the proxies, can name any address.
    Hops(u8),
    /// Connections from these networks are proxies: `X-Forwarded-For` is read from the
    /// right, skipping addresses in them, and the first other address is the client.
    /// A connection from elsewhere is the client, whatever its headers say.
    Networks(Vec<Network>),
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::Hops(1)
    }
}

/// When the session cookie is `Secure`, named `__Host-weaprous_session`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// When the request came over HTTPS: `X-Forwarded-Proto: https` from a trusted
    /// proxy (the services themselves speak plain HTTP).
    #[default]
    Auto,
    /// Always (every browser reaches the system over HTTPS).
    Always,
    /// Never.
    Never,
}

/// An IP network (`10.0.0.0/8`, `::1/128`; a bare address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// What the edge learned about a request (a request extension, also an extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address ([`TrustedProxies`]). Unspecified (`0.0.0.0`) when
    /// nothing tells it, as in router tests.
    pub client: IpAddr,
    /// Whether the client reached the first trusted proxy over HTTPS.
    pub https: bool,
    /// Whether the session cookie set in reply is `Secure` ([`SecureCookies`]).
    pub secure_cookie: bool,
}

/// The headers every response gets (unless its handler set them): nothing on the
/// pages runs or styles from anywhere but the service's own files, no page can be
/// framed, content types are not guessed, no address leaves in `Referer`, and no
/// powerful browser feature is granted.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// The middleware: learns [`Forwarded`], then refuses a cross-origin state change.
pub async fn guard(State(config): State<EdgeConfig>, mut request: Request, next: Next) -> Response {
    let connected = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let (forwarded, forwarded_host) = config.resolve(request.headers(), connected);
    if let Some(refusal) = cross_origin(request.method(), request.headers(), forwarded_host.as_deref()) {
        tracing::debug!(reason = refusal, "cross-origin request refused");
        return ApiError::forbidden(refusal).into_response();
    }
    request.extensions_mut().insert(forwarded);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Forwarded {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        if let Some(forwarded) = parts.extensions.get::<Forwarded>() {
            return Ok(*forwarded);
        }
        // A router without the edge layer (router tests): the default settings.
        let connected = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(EdgeConfig::default().resolve(&parts.headers, connected).0)
    }
}

// === impl EdgeConfig ===

impl EdgeConfig {
    /// `WEAPROUS_TRUSTED_PROXIES` and `WEAPROUS_SECURE_COOKIES` alone, over the
    /// defaults: for `weaprous up`, which reads no per-service settings.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use figment::providers::{Env, Serialized};
        let figment = figment::Figment::from(Serialized::defaults(Self::default()))
            .merge(Env::prefixed("WEAPROUS_").only(&["trusted_proxies", "secure_cookies"]));
        crate::config::extract(&figment)
    }

    /// What `headers` and the connection's address say about the request, and the
    /// host the client asked for by a trusted proxy's `X-Forwarded-Host`.
    pub fn resolve(&self, headers: &HeaderMap, connected: Option<IpAddr>) -> (Forwarded, Option<String>) {
        let (client, trusted) = self.trusted_proxies.client(headers, connected);
        let last = |name: header::HeaderName| {
            trusted.then(|| last_value(headers, name)).flatten().map(str::to_owned).filter(|value| !value.is_empty())
        };
        let https = last(header::HeaderName::from_static("x-forwarded-proto"))
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        let secure_cookie = match self.secure_cookies {
            SecureCookies::Auto => https,
            SecureCookies::Always => true,
            SecureCookies::Never => false,
        };
        let forwarded_host = last(header::HeaderName::from_static("x-forwarded-host"));
        (Forwarded { client, https, secure_cookie }, forwarded_host)
    }
}

// === impl TrustedProxies ===

impl TrustedProxies {
    /// The client's address, and whether the connection is a trusted proxy (so its
    /// other `X-Forwarded-*` headers count).
    fn client(&self, headers: &HeaderMap, connected: Option<IpAddr>) -> (IpAddr, bool) {
        let unknown = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let chain: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        match self {
            Self::Hops(0) => (connected.unwrap_or(unknown), false),
            Self::Hops(hops) => {
                // Fewer entries than hops: fewer proxies stood in front this time; the
                // furthest one named the client.
                let entry = chain.len().checked_sub(usize::from(*hops)).map_or(chain.first(), |at| chain.get(at));
                let named = entry.and_then(|entry| parse_entry(entry));
                (named.or(connected).unwrap_or(unknown), true)
            }
            Self::Networks(networks) => {
                let trusted = |ip: IpAddr| networks.iter().any(|network| network.contains(ip));
                let Some(connected) = connected.filter(|ip| trusted(*ip)) else {
                    return (connected.unwrap_or(unknown), false);
                };
                let mut client = connected;
                for entry in chain.iter().rev() {
                    // Garbage from a proxy's client: the proxy is the last one known.
                    let Some(ip) = parse_entry(entry) else { break };
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                (client, true)
            }
        }
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hops(hops) => write!(f, "{hops}"),
            Self::Networks(networks) => {
                let list: Vec<String> = networks.iter().map(Network::to_string).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

impl From<TrustedProxies> for String {
    fn from(proxies: TrustedProxies) -> Self {
        proxies.to_string()
    }
}

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    /// `2` (hops) or `10.0.0.0/8, 192.168.1.7` (networks, comma- or space-separated).
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(hops) = raw.parse::<u8>() {
            return Ok(Self::Hops(hops));
        }
        let networks = raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Network>, String>>()?;
        if networks.is_empty() {
            return Err("trusted_proxies: a number of hops (0 trusts none) or a list of networks".into());
        }
        Ok(Self::Networks(networks))
    }
}

/// What the config may hold: `2`, `"2"`, `"10.0.0.0/8,127.0.0.1"` or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawProxies {
    Hops(u64),
    Text(String),
    List(Vec<String>),
}

impl TryFrom<RawProxies> for TrustedProxies {
    type Error = String;

    fn try_from(raw: RawProxies) -> Result<Self, String> {
        match raw {
            RawProxies::Hops(hops) => {
                u8::try_from(hops).map(Self::Hops).map_err(|_| format!("trusted_proxies: {hops} hops is more than 255"))
            }
            RawProxies::Text(text) => text.parse(),
            RawProxies::List(list) => list.join(",").parse(),
        }
    }
}

// === impl Network ===

impl Network {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("trusted_proxies: `{raw}` is not an address or a network (such as 10.0.0.0/8)");
        let (addr, prefix) = raw.split_once('/').map_or((raw, None), |(addr, prefix)| (addr, Some(prefix)));
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|prefix| *prefix <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

// === helpers ===

/// An `X-Forwarded-For` entry: an address, perhaps with a port (`[::1]:80`, `1.2.3.4:5`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// The last comma-separated value of the last `name` header.
fn last_value(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get_all(name).iter().next_back()?.to_str().ok()?.rsplit(',').next().map(str::trim)
}

/// Why a state-changing request from another origin is refused, if it is one.
fn cross_origin(method: &Method, headers: &HeaderMap, forwarded_host: Option<&str>) -> Option<&'static str> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some("cross-origin request refused (Sec-Fetch-Site)"),
        };
    }
    let origin = headers.get(header::ORIGIN)?;
    let refused = Some("cross-origin request refused: Origin does not match Host");
    // `scheme://host[:port]`, nothing after; `null` (a sandboxed or opaque origin)
    // never matches.
    let Some(origin_host) = origin.to_str().ok().and_then(|origin| origin.split_once("://")).map(|(_, host)| host)
    else {
        return refused;
    };
    let own = headers.get(header::HOST).and_then(|host| host.to_str().ok()).into_iter().chain(forwarded_host);
    if origin_host.is_empty() || origin_host.contains('/') {
        return refused;
    }
    for host in own {
        if host.eq_ignore_ascii_case(origin_host) {
            return None;
        }
    }
    refused
}

#[cfg(test)]
mod tests;
