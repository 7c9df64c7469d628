//! Peer configuration: defaults, then `peer.toml` (or `PEER_CONFIG`), then `PEER_*`
//! and `WEAPROUS_*` env vars, then flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::Serialized;
use kit::client::endpoints::Endpoints;
use kit::config::{ConfigError, Secrets, ServerFlags, StorageFlags};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// Where a peer started without a port looks for a free one, as the original did.
pub const AUTO_PORTS: std::ops::RangeInclusive<u16> = 9001..=9999;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The address to bind.
    pub server_ip: IpAddr,
    /// The port to bind; without one, the first free port from 9001.
    #[serde(default)]
    pub server_port: Option<u16>,
    /// The host other peers and the tracker reach this peer at; defaults to the bind
    /// address, and is required when binding a wildcard address.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Where the tracker answers: `ip:port` or a URL, or several, comma-separated
    /// (every instance of a replicated tracker; calls fail over between them).
    pub tracker_url: String,
    /// Where auth answers: `ip:port` or a URL, or several, comma-separated.
    pub auth_url: String,
    /// The folder of the peer's database.
    pub data_dir: PathBuf,
    /// Name the database by a slot claimed in `data_dir` (`peer-slot-N.db`, the first
    /// one no running peer holds) instead of by the advertised address: for replicas
    /// that share one volume and get new addresses when recreated (compose), so a
    /// recreated replica takes over a database of the ones before it.
    #[serde(default)]
    pub db_slot: bool,
    /// The web UI folder.
    pub www_dir: PathBuf,
    /// The most connections to the PostgreSQL database (cluster mode) at once.
    #[serde(default = "default_pool_size")]
    pub database_pool_size: usize,
    /// How often the peer tells the tracker it is alive.
    pub heartbeat_secs: u64,
    /// How long an undelivered direct message is retried before it is given up.
    pub outbox_ttl_secs: u64,
    /// How long a user still shows active after closing the chat (a reload is not
    /// leaving).
    pub activity_grace_secs: u64,
    /// How often an idle event stream gets a keep-alive comment; a browser that went
    /// away is noticed within about two of these.
    pub sse_keepalive_secs: u64,
    /// Rate limits and caps (`[limits]`, `WEAPROUS_LIMITS__<NAME>`); every one off with
    /// `WEAPROUS_RATE_LIMITS=off`. See docs/security.md.
    #[serde(default)]
    pub limits: kit::rate::Limits,
    /// Trusted proxies and secure cookies ([`kit::http::edge`]), also from
    /// `WEAPROUS_TRUSTED_PROXIES` and `WEAPROUS_SECURE_COOKIES`.
    #[serde(flatten)]
    pub edge: kit::http::EdgeConfig,
    #[serde(flatten, skip_serializing)]
    pub secrets: Secrets,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            server_port: None,
            advertise: None,
            tracker_url: "http://127.0.0.1:9000".into(),
            auth_url: "http://127.0.0.1:9100".into(),
            data_dir: PathBuf::from("data/peers"),
            db_slot: false,
            www_dir: PathBuf::from("www"),
            database_pool_size: default_pool_size(),
            heartbeat_secs: 5,
            outbox_ttl_secs: 7 * 24 * 60 * 60,
            activity_grace_secs: 10,
            sse_keepalive_secs: 5,
            limits: kit::rate::Limits::default(),
            edge: kit::http::EdgeConfig::default(),
            secrets: Secrets::default(),
        }
    }
}

fn default_pool_size() -> usize {
    16
}

/// The peer's flags: the original's, plus the new services' addresses.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerFlags,
    /// The tracker's full address, `IP:PORT`, or several, comma-separated (overrides
    /// --host and --tracker-port).
    #[arg(long = "tracker-ip")]
    #[serde(skip)]
    pub tracker_ip: Option<String>,
    /// The tracker's port on --host.
    #[arg(long = "tracker-port")]
    #[serde(skip)]
    pub tracker_port: Option<u16>,
    /// Where auth answers (`ip:port` or a URL, or several, comma-separated).
    #[arg(long = "auth-url")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// The host other peers reach this one at.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// The folder of the peer's database.
    #[arg(long = "data-dir")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The web UI folder.
    #[arg(long = "www")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub www_dir: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageFlags,
}

impl Flags {
    /// The tracker's address the flags ask for, the original's way: `--tracker-ip`
    /// wins; else `--host` (or 127.0.0.1) with `--tracker-port` (or 9000), when either
    /// is given.
    fn tracker_url(&self) -> Option<String> {
        self.tracker_ip.clone().or_else(|| {
            (self.server.host.is_some() || self.tracker_port.is_some()).then(|| {
                format!("{}:{}", self.server.host.as_deref().unwrap_or("127.0.0.1"), self.tracker_port.unwrap_or(9000))
            })
        })
    }
}

impl Config {
    pub fn figment(flags: &Flags) -> Figment {
        let file = kit::config::file_path(flags.server.config.as_deref(), "PEER", "peer.toml");
        let figment = kit::config::layered(&Config::default(), &file, "PEER", flags);
        match flags.tracker_url() {
            Some(url) => figment.merge(Serialized::default("tracker_url", url)),
            None => figment,
        }
    }

    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let config: Self = kit::config::extract(&Self::figment(flags))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Endpoints::parse("tracker", &self.tracker_url)?;
        Endpoints::parse("auth", &self.auth_url)?;
        if self.server_ip.is_unspecified() && self.advertise.is_none() {
            return Err(ConfigError(format!(
                "binding {} needs --advertise (PEER_ADVERTISE): the host other peers reach this one at",
                self.server_ip
            )));
        }
        if self.sse_keepalive_secs == 0 {
            return Err(ConfigError("sse_keepalive_secs must be at least 1".into()));
        }
        if self.heartbeat_secs == 0 {
            return Err(ConfigError("heartbeat_secs must be at least 1".into()));
        }
        Ok(())
    }

    /// The host this peer tells others to reach it at.
    pub fn advertised_host(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.server_ip.to_string())
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// Binds the configured port, or the first free one from 9001.
    pub async fn bind(&self) -> anyhow::Result<TcpListener> {
        if let Some(port) = self.server_port {
            let addr = SocketAddr::new(self.server_ip, port);
            return TcpListener::bind(addr).await.with_context(|| format!("failed to bind {addr}"));
        }
        for port in AUTO_PORTS {
            if let Ok(listener) = TcpListener::bind(SocketAddr::new(self.server_ip, port)).await {
                return Ok(listener);
            }
        }
        anyhow::bail!("no free port between {} and {}", AUTO_PORTS.start(), AUTO_PORTS.end())
    }
}

#[cfg(test)]
// figment's Jail returns figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn database_url(flags: &Flags) -> Option<String> {
        Config::load(flags).unwrap().secrets.database_url.map(|url| url.expose_secret().to_owned())
    }

    #[test]
    fn the_database_url_comes_from_the_env_or_the_flag_and_the_flag_wins() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(database_url(&Flags::default()), None, "embedded unless asked");
            jail.set_env("WEAPROUS_DATABASE_URL", "postgres://peer@env-db/chat");
            assert_eq!(database_url(&Flags::default()).as_deref(), Some("postgres://peer@env-db/chat"));
            let flags = Flags {
                storage: StorageFlags { database_url: Some("postgres://peer@flag-db/chat".to_owned()) },
                ..Flags::default()
            };
            assert_eq!(database_url(&flags).as_deref(), Some("postgres://peer@flag-db/chat"));
            Ok(())
        });
    }

    fn flags(tracker_ip: Option<&str>, auth_url: Option<&str>) -> Flags {
        Flags { tracker_ip: tracker_ip.map(str::to_owned), auth_url: auth_url.map(str::to_owned), ..Flags::default() }
    }

    #[test]
    fn tracker_and_auth_take_one_address_or_a_list() {
        figment::Jail::expect_with(|jail| {
            let config =
                Config::load(&flags(Some("127.0.0.1:9000,127.0.0.1:9010"), Some("a:9100, http://b:9100"))).unwrap();
            assert_eq!(Endpoints::parse("tracker", &config.tracker_url).unwrap().len(), 2);
            assert_eq!(Endpoints::parse("auth", &config.auth_url).unwrap().len(), 2);
            // The original's single-address forms, unchanged.
            let config = Config::load(&flags(Some("127.0.0.1:9000"), None)).unwrap();
            assert_eq!(config.tracker_url, "127.0.0.1:9000");
            let tracker = Endpoints::parse("tracker", &config.tracker_url).unwrap();
            assert_eq!(tracker.url("/heartbeat").as_str(), "http://127.0.0.1:9000/heartbeat");
            let by_host = Flags {
                server: ServerFlags { host: Some("10.1.2.3".into()), ..ServerFlags::default() },
                tracker_port: Some(9500),
                ..Flags::default()
            };
            assert_eq!(Config::load(&by_host).unwrap().tracker_url, "10.1.2.3:9500");
            jail.set_env("PEER_TRACKER_URL", "http://t1:9000,http://t2:9000");
            let config = Config::load(&Flags::default()).unwrap();
            assert_eq!(Endpoints::parse("tracker", &config.tracker_url).unwrap().len(), 2);
            Ok(())
        });
    }

    #[test]
    fn bad_address_lists_are_config_errors() {
        figment::Jail::expect_with(|_| {
            for bad in [",", "127.0.0.1:9000,ftp://x", "127.0.0.1:notaport"] {
                let err = Config::load(&flags(Some(bad), None)).expect_err(bad);
                assert!(err.to_string().contains("address") || err.to_string().contains("http"), "{bad}: {err}");
            }
            assert!(Config::load(&flags(None, Some(" , "))).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_pool_size_has_a_default_and_can_be_set() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(&Flags::default()).unwrap().database_pool_size, 16);
            jail.set_env("PEER_DATABASE_POOL_SIZE", "4");
            assert_eq!(Config::load(&Flags::default()).unwrap().database_pool_size, 4);
            Ok(())
        });
    }
}
