//! Auth configuration: defaults, then `auth.toml` (or `AUTH_CONFIG`), then `AUTH_*`
//! and `WEAPROUS_*` env vars, then flags.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use kit::config::{ConfigError, Secrets, ServerFlags, StorageFlags};
use serde::{Deserialize, Serialize};

use crate::hashing::HashLimits;

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
    /// Password hashes (log-in checks, sign-ups) run at once; each holds 19 MiB. 0 is 1.
    pub hash_concurrency: usize,
    /// Hashes that may wait for a turn; past that a log-in gets `503` at once.
    pub hash_queue: usize,
    /// How long a hash waits for a turn before the log-in gets `503`, in milliseconds.
    pub hash_queue_wait_ms: u64,
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
            server_port: 9100,
            db: PathBuf::from("db/database.csv"),
            allow_registration: true,
            session_ttl_secs: 24 * 60 * 60,
            database_pool_size: 16,
            hash_concurrency: cores(),
            hash_queue: 4 * cores(),
            hash_queue_wait_ms: 2000,
            limits: kit::rate::Limits::default(),
            edge: kit::http::EdgeConfig::default(),
            secrets: Secrets::default(),
        }
    }
}

/// The auth server's flags beyond the shared ones.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct Flags {
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerFlags,
    /// The user database file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageFlags,
}

impl Config {
    pub fn figment(flags: &Flags) -> Figment {
        let file = kit::config::file_path(flags.server.config.as_deref(), "AUTH", "auth.toml");
        kit::config::layered(&Config::default(), &file, "AUTH", flags)
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

    pub fn hash_limits(&self) -> HashLimits {
        HashLimits {
            concurrency: self.hash_concurrency.max(1),
            queue: self.hash_queue,
            max_wait: Duration::from_millis(self.hash_queue_wait_ms),
        }
    }
}

/// The cores this process may use (std reads the cgroup's CPU quota too), at least 1.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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
            jail.set_env("WEAPROUS_DATABASE_URL", "postgres://auth@env-db/chat");
            assert_eq!(database_url(&Flags::default()).as_deref(), Some("postgres://auth@env-db/chat"));
            let flags = Flags {
                storage: StorageFlags { database_url: Some("postgres://auth@flag-db/chat".to_owned()) },
                ..Flags::default()
            };
            assert_eq!(database_url(&flags).as_deref(), Some("postgres://auth@flag-db/chat"));
            Ok(())
        });
    }
}
