//! Typed configuration, and how it is loaded.
//!
//! Layers, lowest first: defaults in code; the vhost blocks of `proxy.conf` (read by
//! the figment provider [`ConfFile`]); `PROXY_*` environment variables (`__` for
//! nesting, e.g. `PROXY_TIMEOUTS__CONNECT_MS=500`); the command-line flags of the
//! original (`--host`, `--server-ip`, `--server-port`, `--config`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use kit::config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::conf_parser;

pub(crate) mod paths;
pub(crate) mod vhost;

pub use paths::{PathRule, PathRules};
pub use vhost::{HttpsRules, Policy, TlsFiles, Upstream, VhostConfig};

/// The default path of the vhost file, relative to the working directory.
pub const DEFAULT_CONF_PATH: &str = "config/proxy.conf";

/// Everything the proxy needs to run. Build it in code (tests, the all-in-one
/// runner) with [`Config::from_conf_str`] or a struct literal over
/// `Config::default()`, or load it with [`Config::load`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `--host`: the shared IP of the original; replaces `$HOST` and `{{HOST}}`, and
    /// is the bind address when `--server-ip` is not given.
    pub host: Option<String>,
    /// `--server-ip`: the bind address (overrides `--host`); 127.0.0.1 by default.
    pub server_ip: Option<IpAddr>,
    /// `--server-port`: the listening port.
    pub server_port: u16,
    /// The virtual hosts, from `proxy.conf`.
    pub vhosts: Vec<VhostConfig>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub health: HealthConfig,
    /// How often upstream names (`peer:9001`) are resolved again, in milliseconds.
    pub resolve_interval_ms: u64,
    /// Idle keep-alive connections kept per backend.
    pub pool_max_idle_per_backend: usize,
    /// Paths whose event streams (a `GET` with `Accept: text/event-stream`) go to the
    /// backend on a connection of their own, closed when the stream ends, instead of
    /// a pooled one: a peer serves such a stream without hyper's per-connection
    /// buffers. Empty: every request uses the pool. Read at start.
    pub stream_paths: Vec<String>,
    /// Runtime worker threads for the `proxy` binary; the number of cores when absent.
    pub workers: Option<usize>,
    pub tls: TlsConfig,
    pub http2: Http2Config,
    /// A second listener (e.g. `0.0.0.0:9191`) that answers only the proxy's own
    /// `/metrics`, `/healthz` and `/readyz`, whatever the Host: for Prometheus, which
    /// no vhost can shadow there. None (the default): no such listener; the proxy's
    /// own endpoints answer on the main listener for a Host no block names.
    pub metrics_listen: Option<SocketAddr>,
}

/// HTTPS. The TLS listener runs when some certificate is configured (here or in a
/// `host` block), beside the plain one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// `--tls-port`: the HTTPS port, on the plain listener's address.
    pub port: u16,
    /// The default certificate (PEM), for names no `host` block has one for.
    pub certificate: Option<PathBuf>,
    pub certificate_key: Option<PathBuf>,
    /// How long a client may take over its TLS handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Development only: when `certificate` and `certificate_key` name files that do
    /// not exist, make a self-signed certificate there first (browsers warn).
    pub self_signed: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { port: 8443, certificate: None, certificate_key: None, handshake_timeout_ms: 10_000, self_signed: false }
    }
}

/// HTTP/2 to clients, on the HTTPS port (ALPN `h2`); backends stay HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Http2Config {
    /// Whether ALPN offers `h2` (else HTTPS is HTTP/1.1 only).
    pub enabled: bool,
    /// Streams a client may have open at once on one connection (SETTINGS).
    pub max_concurrent_streams: u32,
    /// Streams a client may cancel (RST_STREAM) on one connection beyond those it
    /// let finish; past that the connection ends with GOAWAY `ENHANCE_YOUR_CALM`
    /// (the rapid-reset flood, CVE-2023-44487).
    pub max_client_resets: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self { enabled: true, max_concurrent_streams: 128, max_client_resets: 100 }
    }
}

/// Timeouts, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Connecting to a backend; a backend that does not accept in time counts as down.
    pub connect_ms: u64,
    /// Reading a request head from a client, including the wait for the next request
    /// on an idle keep-alive connection.
    pub header_read_ms: u64,
    /// From forwarding a request to the backend's response head; then 504.
    pub upstream_ms: u64,
    /// How long an idle pooled connection to a backend is kept.
    pub upstream_idle_ms: u64,
    /// How long a body may make no progress (a backend silent mid-body, a client not
    /// reading its answer, a client pausing mid-upload) before the connection is cut.
    pub idle_ms: u64,
}

/// Size limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// The largest request head (request line and headers) read from a client.
    pub max_header_bytes: usize,
    /// The largest request body forwarded; a larger one gets 413.
    pub max_body_bytes: u64,
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// How often every backend is probed, in milliseconds. A backend taken out after
    /// a refused connection comes back when a probe succeeds.
    pub interval_ms: u64,
    /// How long a probe may take, in milliseconds.
    pub timeout_ms: u64,
    /// The path probed with `GET`.
    pub path: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: None,
            server_ip: None,
            server_port: 8080,
            vhosts: Vec::new(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            health: HealthConfig::default(),
            resolve_interval_ms: 5_000,
            pool_max_idle_per_backend: 1024,
            stream_paths: vec!["/events".to_owned()],
            workers: None,
            tls: TlsConfig::default(),
            http2: Http2Config::default(),
            metrics_listen: None,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 3_000,
            header_read_ms: 30_000,
            upstream_ms: 60_000,
            upstream_idle_ms: 60_000,
            idle_ms: 300_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_header_bytes: 64 * 1024, max_body_bytes: 16 * 1024 * 1024 }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval_ms: 3_000, timeout_ms: 2_000, path: "/healthz".to_owned() }
    }
}

impl Config {
    /// Worker threads: `workers`, else one per core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1)
    }

    /// Defaults plus the vhosts of a `proxy.conf` text, with `$HOST` and `{{HOST}}`
    /// replaced by `host_replacement`.
    pub fn from_conf_str(text: &str, host_replacement: &str) -> Result<Self, conf_parser::ParseError> {
        let vhosts = conf_parser::parse(text, host_replacement)?;
        Ok(Self { vhosts, ..Self::default() })
    }

    /// Loads the configuration for these flags: defaults, the conf file, `PROXY_*`
    /// env, flags. A missing or malformed file is an error.
    pub fn load(args: &Args) -> Result<Self, ConfigError> {
        let config: Self = kit::config::extract(&Self::figment(args)?)?;
        config.validate().map_err(ConfigError)?;
        Ok(config)
    }

    /// The figment behind [`Config::load`], for callers that add layers of their own.
    pub fn figment(args: &Args) -> Result<Figment, ConfigError> {
        let path = kit::config::file_path(args.config.as_deref(), "PROXY", DEFAULT_CONF_PATH);
        // The placeholders depend on `host` and `server_ip`, which env and flags may
        // set, so those are read first, without the file.
        let without_file = Figment::from(Serialized::defaults(Self::default()))
            .merge(Env::prefixed("PROXY_").split("__").ignore(&["config"]))
            .merge(Serialized::defaults(args));
        let addresses: Addresses = kit::config::extract(&without_file)?;
        let host_replacement = addresses.host_replacement();
        Ok(Figment::from(Serialized::defaults(Self::default()))
            .merge(ConfFile { path, host_replacement })
            .merge(Env::prefixed("PROXY_").split("__").ignore(&["config"]))
            .merge(Serialized::defaults(args))
            .merge(Serialized::defaults(TlsFlags::from(args))))
    }

    /// The address to bind: `--server-ip`, else `--host`, else 127.0.0.1; and the port.
    pub fn listen(&self) -> Result<SocketAddr, ConfigError> {
        let ip = match (self.server_ip, &self.host) {
            (Some(ip), _) => ip,
            (None, Some(host)) => host
                .parse()
                .map_err(|_| ConfigError(format!("--host `{host}` is not an IP address; set --server-ip to bind")))?,
            (None, None) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        Ok(SocketAddr::new(ip, self.server_port))
    }

    /// The HTTPS address: the plain one's IP and `tls.port`.
    pub fn listen_tls(&self) -> Result<SocketAddr, ConfigError> {
        Ok(SocketAddr::new(self.listen()?.ip(), self.tls.port))
    }

    /// What `$HOST` and `{{HOST}}` become: `--host`, else `--server-ip`, else 127.0.0.1.
    pub fn host_replacement(&self) -> String {
        Addresses { host: self.host.clone(), server_ip: self.server_ip }.host_replacement()
    }

    /// Checks what serde cannot: at least one vhost, unique names, at most one default.
    pub fn validate(&self) -> Result<(), String> {
        if self.vhosts.is_empty() {
            return Err("no `host` block is configured".to_owned());
        }
        for (index, vhost) in self.vhosts.iter().enumerate() {
            let normalized = conf_parser::validate_host_name(&vhost.name)?;
            if normalized != vhost.name {
                return Err(format!("host \"{}\" must be written in lowercase", vhost.name));
            }
            if vhost.upstreams.is_empty() {
                return Err(format!("host \"{}\" has no upstream", vhost.name));
            }
            if self.vhosts[..index].iter().any(|earlier| earlier.name == vhost.name) {
                return Err(format!("host \"{}\" is defined twice", vhost.name));
            }
        }
        if self.health.interval_ms == 0 || self.resolve_interval_ms == 0 {
            return Err("health.interval_ms and resolve_interval_ms must be above 0".to_owned());
        }
        if self.vhosts.iter().filter(|vhost| vhost.default).count() > 1 {
            return Err("more than one host block is marked `default`".to_owned());
        }
        Ok(())
    }

    pub(crate) fn timeout(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }
}

/// The flags of the original `start_proxy.py`.
#[derive(Debug, Clone, Default, clap::Parser, Serialize)]
#[command(name = "proxy", about = "The WeApRous reverse proxy", version)]
pub struct Args {
    /// Shared IP for the proxy and for `$HOST` / `{{HOST}}` in the config.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// IP address to bind (overrides --host) [default: 127.0.0.1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_ip: Option<IpAddr>,
    /// Port to bind [default: 8080].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_port: Option<u16>,
    /// Also serve the proxy's own /metrics, /healthz and /readyz on this address
    /// (e.g. 0.0.0.0:9191) [default: none, or PROXY_METRICS_LISTEN].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Path to the vhost config [default: config/proxy.conf, or PROXY_CONFIG].
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// HTTPS port, served when a certificate is configured [default: 8443].
    #[arg(long)]
    #[serde(skip)]
    pub tls_port: Option<u16>,
    /// The default certificate (PEM) for HTTPS.
    #[arg(long)]
    #[serde(skip)]
    pub tls_cert: Option<PathBuf>,
    /// The default certificate's private key (PEM).
    #[arg(long)]
    #[serde(skip)]
    pub tls_key: Option<PathBuf>,
}

/// The TLS flags as the `tls` key of the configuration.
#[derive(Serialize)]
struct TlsFlags {
    tls: Dict,
}

impl From<&Args> for TlsFlags {
    fn from(args: &Args) -> Self {
        let mut tls = Dict::new();
        if let Some(port) = args.tls_port {
            tls.insert("port".into(), Value::from(port));
        }
        let path = |path: &PathBuf| Value::from(path.display().to_string());
        if let Some(cert) = &args.tls_cert {
            tls.insert("certificate".into(), path(cert));
        }
        if let Some(key) = &args.tls_key {
            tls.insert("certificate_key".into(), path(key));
        }
        Self { tls }
    }
}

/// The figment provider of `proxy.conf`: it contributes the `vhosts` key.
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub path: PathBuf,
    pub host_replacement: String,
}

impl ConfFile {
    /// Reads and parses the file. Errors name the file, the line and the column.
    pub fn read(path: &Path, host_replacement: &str) -> Result<Vec<VhostConfig>, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        conf_parser::parse(&text, host_replacement).map_err(|err| format!("{}: {err}", path.display()))
    }
}

impl Provider for ConfFile {
    fn metadata(&self) -> Metadata {
        Metadata::named("proxy.conf").source(self.path.display().to_string())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let vhosts = Self::read(&self.path, &self.host_replacement).map_err(figment::Error::from)?;
        let value = Value::serialize(&vhosts)?;
        let mut dict = Dict::new();
        dict.insert("vhosts".to_owned(), value);
        Ok(Profile::Default.collect(dict))
    }
}

#[derive(Deserialize)]
struct Addresses {
    host: Option<String>,
    server_ip: Option<IpAddr>,
}

impl Addresses {
    fn host_replacement(&self) -> String {
        match (&self.host, self.server_ip) {
            (Some(host), _) => host.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => Ipv4Addr::LOCALHOST.to_string(),
        }
    }
}

#[cfg(test)]
// figment's Jail returns figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    const CONF: &str = "host \"$HOST:8080\" {\n  proxy_pass http://{{HOST}}:9001;\n}\n";

    #[test]
    fn flags_replace_placeholders_and_beat_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("proxy.conf", CONF)?;
            jail.set_env("PROXY_SERVER_PORT", "9999");
            jail.set_env("PROXY_TIMEOUTS__CONNECT_MS", "250");
            jail.set_env("PROXY_STREAM_PATHS", "[/events, /feed]");
            let args = Args { host: Some("10.1.2.3".into()), config: Some("proxy.conf".into()), ..Args::default() };
            let config = Config::load(&args).unwrap();
            assert_eq!(config.stream_paths, ["/events", "/feed"]);
            assert_eq!(config.vhosts[0].name, "10.1.2.3:8080");
            assert_eq!(config.vhosts[0].upstreams[0], Upstream { host: "10.1.2.3".into(), port: 9001 });
            assert_eq!(config.server_port, 9999);
            assert_eq!(config.timeouts.connect_ms, 250);
            assert_eq!(config.listen().unwrap(), "10.1.2.3:9999".parse().unwrap());

            let args = Args { server_port: Some(7000), config: Some("proxy.conf".into()), ..Args::default() };
            let config = Config::load(&args).unwrap();
            assert_eq!(config.server_port, 7000);
            assert_eq!(config.vhosts[0].name, "127.0.0.1:8080");
            Ok(())
        });
    }

    #[test]
    fn server_ip_is_the_placeholder_when_host_is_absent() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("proxy.conf", CONF)?;
            jail.set_env("PROXY_SERVER_IP", "0.0.0.0");
            let args = Args { config: Some("proxy.conf".into()), ..Args::default() };
            let config = Config::load(&args).unwrap();
            assert_eq!(config.vhosts[0].name, "0.0.0.0:8080");
            assert_eq!(config.listen().unwrap(), "0.0.0.0:8080".parse().unwrap());
            Ok(())
        });
    }

    #[test]
    fn a_malformed_file_names_the_file_line_and_column() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.conf", "host \"a\" {\n  proxy_pass http://127.0.0.1:1;\n  dist_policy fastest\n}\n")?;
            let args = Args { config: Some("bad.conf".into()), ..Args::default() };
            let err = Config::load(&args).unwrap_err().to_string();
            assert!(err.contains("bad.conf: line 3, column 15"), "{err}");
            assert!(err.contains("expected `round-robin`, `least-conn` or `sticky`"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error() {
        figment::Jail::expect_with(|_jail| {
            let args = Args { config: Some("nowhere.conf".into()), ..Args::default() };
            let err = Config::load(&args).unwrap_err().to_string();
            assert!(err.contains("cannot read nowhere.conf"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_shipped_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let local = ConfFile::read(&root.join("proxy.conf"), "127.0.0.1").unwrap();
        let names: Vec<_> = local.iter().map(|vhost| vhost.name.as_str()).collect();
        assert!(names.contains(&"localhost:8080") && names.contains(&"tracker.localhost:8080"), "{names:?}");
        let compose = ConfFile::read(&root.join("proxy.compose.conf"), "0.0.0.0").unwrap();
        let peers = compose.iter().find(|vhost| vhost.name == "localhost:8080").unwrap();
        assert_eq!(peers.upstreams, vec![Upstream { host: "peer".into(), port: 9001 }]);
        assert_eq!(peers.policy, Policy::Sticky);
    }
}
