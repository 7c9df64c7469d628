//! Tracker configuration: defaults, then `tracker.toml` (or `TRACKER_CONFIG`), then
//! `TRACKER_*` and `WEAPROUS_*` env vars, then flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use kit::client::endpoints::Endpoints;
use kit::config::{ConfigError, Secrets, ServerFlags, StorageFlags};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The address to bind.
    pub server_ip: IpAddr,
    pub server_port: u16,
    /// Where auth answers, to check passwords on `POST /login`: `ip:port` or a URL, or
    /// several, comma-separated (replicas), tried in turn while one is down.
    pub auth_url: String,
    /// The folder of the tracker's database (`tracker.db`).
    pub data_dir: PathBuf,
    /// The web UI folder; the tracker serves its login page.
    pub www_dir: PathBuf,
    /// A peer that sends no heartbeat for this long leaves the pool, and its users
    /// show offline.
    pub peer_ttl_secs: u64,
    /// The most connections to PostgreSQL (cluster mode) this replica opens, besides
    /// its one listening connection.
    pub database_pool_size: usize,
    /// Where browsers reach the chat, e.g. the proxy's `http://localhost:8080`
    /// (`TRACKER_PUBLIC_URL` or `WEAPROUS_PUBLIC_URL`): the original's log-in sends
    /// the browser there. Unset, it sends the browser to the peer's own address, which
    /// only works where browsers reach the peers directly (`weaprous up`).
    #[serde(default)]
    pub public_url: Option<String>,
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
            server_port: 9000,
            auth_url: "http://127.0.0.1:9100".into(),
            data_dir: PathBuf::from("data/tracker"),
            www_dir: PathBuf::from("www"),
            peer_ttl_secs: 15,
            database_pool_size: 16,
            public_url: None,
            limits: kit::rate::Limits::default(),
            edge: kit::http::EdgeConfig::default(),
            secrets: Secrets::default(),
        }
    }
}

/// The tracker's flags: the original's, plus the new services' addresses.
/// The tracker's flags. As a figment layer (`Serialize`), each flag given sets the
/// setting of its name.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerFlags,
    /// The tracker's port, as the original's `--tracker-port` (when --server-port is
    /// not given).
    #[arg(long = "tracker-port")]
    #[serde(skip)]
    pub tracker_port: Option<u16>,
    /// Where auth answers (`ip:port` or a URL); several, comma-separated, for
    /// replicas.
    #[arg(long = "auth-url")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// The folder of the tracker's database.
    #[arg(long = "data-dir")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The web UI folder.
    #[arg(long = "www")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub www_dir: Option<PathBuf>,
    /// `--database-url`: PostgreSQL (cluster mode) instead of the embedded database.
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageFlags,
}

impl Config {
    pub fn figment(flags: &Flags) -> Figment {
        let file = kit::config::file_path(flags.server.config.as_deref(), "TRACKER", "tracker.toml");
        let figment = kit::config::layered(&Config::default(), &file, "TRACKER", flags);
        // The original's `--tracker-port`, where `--server-port` is not given.
        match (flags.tracker_port, flags.server.server_port) {
            (Some(port), None) => figment.merge(Serialized::default("server_port", port)),
            _ => figment,
        }
    }

    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let config: Self = kit::config::extract(&Self::figment(flags))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Endpoints::parse("auth", &self.auth_url)?;
        self.public_url()?;
        if self.peer_ttl_secs < 3 {
            return Err(ConfigError("peer_ttl_secs must be at least 3".into()));
        }
        if self.database_pool_size < 2 {
            // The post batcher holds one connection while requests need others.
            return Err(ConfigError("database_pool_size must be at least 2".into()));
        }
        Ok(())
    }

    /// The public URL without its final `/`, checked to be an http(s) address; an
    /// empty one counts as unset.
    pub fn public_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.public_url.as_deref().map(str::trim).filter(|raw| !raw.is_empty()) else {
            return Ok(None);
        };
        if !raw.contains("://") {
            return Err(ConfigError(format!("public_url `{raw}` is not a URL: give it as http://host:port")));
        }
        kit::config::base_url(raw)?;
        Ok(Some(raw.trim_end_matches('/').to_owned()))
    }

    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.server_ip, self.server_port)
    }

    pub fn peer_ttl(&self) -> Duration {
        Duration::from_secs(self.peer_ttl_secs)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("tracker.db")
    }
}

#[cfg(test)]
// figment's Jail returns figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret;

    use super::*;

    fn database_url(flags: &Flags) -> Option<String> {
        Config::load(flags).unwrap().secrets.database_url.map(|url| url.expose_secret().to_owned())
    }

    #[test]
    fn flags_given_override_the_env_and_the_original_port_flag_yields_to_server_port() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TRACKER_SERVER_PORT", "9300");
            jail.set_env("TRACKER_DATA_DIR", "from-env");
            jail.set_env("TRACKER_AUTH_URL", "http://env-auth:9100");
            let config = Config::load(&Flags::default()).unwrap();
            assert_eq!((config.server_port, config.data_dir.as_path()), (9300, Path::new("from-env")));
            let flags = Flags {
                server: ServerFlags { host: Some("10.0.0.7".into()), ..ServerFlags::default() },
                tracker_port: Some(9400),
                data_dir: Some("from-flag".into()),
                www_dir: Some("ui".into()),
                ..Flags::default()
            };
            let config = Config::load(&flags).unwrap();
            assert_eq!(config.listen().to_string(), "10.0.0.7:9400", "--host and --tracker-port");
            assert_eq!(
                (config.data_dir.as_path(), config.www_dir.as_path()),
                (Path::new("from-flag"), Path::new("ui"))
            );
            assert_eq!(config.auth_url, "http://env-auth:9100", "a flag not given leaves the env's value");
            let flags = Flags {
                server: ServerFlags {
                    server_ip: Some("127.0.0.2".into()),
                    host: Some("10.0.0.7".into()),
                    server_port: Some(9500),
                    ..ServerFlags::default()
                },
                tracker_port: Some(9400),
                ..Flags::default()
            };
            assert_eq!(Config::load(&flags).unwrap().listen().to_string(), "127.0.0.2:9500", "--server-* win");
            Ok(())
        });
    }

    #[test]
    fn the_database_url_comes_from_the_env_or_the_flag_and_the_flag_wins() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(database_url(&Flags::default()), None, "embedded unless asked");
            jail.set_env("WEAPROUS_DATABASE_URL", "postgres://tracker@env-db/chat");
            assert_eq!(database_url(&Flags::default()).as_deref(), Some("postgres://tracker@env-db/chat"));
            let flags = Flags {
                storage: StorageFlags { database_url: Some("postgres://tracker@flag-db/chat".to_owned()) },
                ..Flags::default()
            };
            assert_eq!(database_url(&flags).as_deref(), Some("postgres://tracker@flag-db/chat"));
            Ok(())
        });
    }

    #[test]
    fn auth_url_takes_one_address_or_a_list_from_the_file_the_env_or_the_flag() {
        figment::Jail::expect_with(|jail| {
            let auth_url = |flags: &Flags| Config::load(flags).unwrap().auth_url;
            assert_eq!(auth_url(&Flags::default()), "http://127.0.0.1:9100");
            jail.create_file("tracker.toml", r#"auth_url = "127.0.0.1:9100""#)?;
            assert_eq!(auth_url(&Flags::default()), "127.0.0.1:9100", "the original's ip:port form");
            jail.set_env("TRACKER_AUTH_URL", "http://auth-a:9100,http://auth-b:9100");
            assert_eq!(auth_url(&Flags::default()), "http://auth-a:9100,http://auth-b:9100");
            let flags = Flags { auth_url: Some("10.0.0.1:9100, 10.0.0.2:9100".to_owned()), ..Flags::default() };
            assert_eq!(auth_url(&flags), "10.0.0.1:9100, 10.0.0.2:9100", "the flag wins");
            Ok(())
        });
    }

    #[test]
    fn auth_url_refuses_an_empty_list_and_other_schemes() {
        figment::Jail::expect_with(|jail| {
            for nonsense in [",", " , ", "", "ftp://x", "http://auth-a:9100,ftp://x", "http://"] {
                jail.set_env("TRACKER_AUTH_URL", nonsense);
                let err = Config::load(&Flags::default()).expect_err(nonsense);
                assert!(!err.0.is_empty(), "{nonsense:?} is refused with a reason");
            }
            Ok(())
        });
    }

    #[test]
    fn the_pool_size_comes_from_the_env_and_must_leave_room_for_the_batcher() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(&Flags::default()).unwrap().database_pool_size, 16);
            jail.set_env("TRACKER_DATABASE_POOL_SIZE", "4");
            assert_eq!(Config::load(&Flags::default()).unwrap().database_pool_size, 4);
            jail.set_env("TRACKER_DATABASE_POOL_SIZE", "1");
            assert!(Config::load(&Flags::default()).is_err());
            Ok(())
        });
    }
}
