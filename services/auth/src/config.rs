//! Auth configuration: defaults, then `auth.toml` (or `AUTH_CONFIG`), then `AUTH_*`
//! and `WEAPROUS_*` env vars, then flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use kit::config::{ConfigError, Secrets, ServerFlags};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The address to bind.
    pub server_ip: IpAddr,
    pub server_port: u16,
    /// The user database: CSV with the header `username,password_hash`.
    pub db: PathBuf,
    /// Whether `POST /register` signs new users up.
    pub allow_registration: bool,
    /// How long a session token stays valid, in seconds.
    pub session_ttl_secs: u64,
    /// The most connections to PostgreSQL (cluster mode) this replica holds at once.
    pub database_pool_size: usize,
    #[serde(flatten, skip_serializing)]
    pub secrets: Secrets,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            server_port: 9100,
            db: PathBuf::from("db/database.csv"),
            allow_registration: true,
            session_ttl_secs: 24 * 60 * 60,
            database_pool_size: 16,
            secrets: Secrets::default(),
        }
    }
}

/// The auth server's flags beyond the shared ones.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    #[command(flatten)]
    pub server: ServerFlags,
    /// The user database file.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Serialize)]
struct Overrides<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    server_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    db: Option<&'a PathBuf>,
}

impl Config {
    pub fn figment(flags: &Flags) -> Figment {
        let file = kit::config::file_path(flags.server.config.as_deref(), "AUTH", "auth.toml");
        let overrides = Overrides {
            server_ip: flags.server.bind_ip(),
            server_port: flags.server.server_port,
            db: flags.db.as_ref(),
        };
        kit::config::layered(&Config::default(), &file, "AUTH", &overrides)
    }

    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        kit::config::extract(&Self::figment(flags))
    }

    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(self.server_ip, self.server_port)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }
}
