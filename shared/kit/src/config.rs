//! Configuration helpers: every service layers defaults in code, an optional TOML
//! file, environment variables and command-line flags, in that order of precedence
//! (flags win), through figment.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The development secret used when none is configured. It is public, so a service
/// refuses to serve with it unless development mode ([`DEV_ENV`]) is on.
pub const DEV_SECRET: &str = "weaprous-dev-secret-change-me";

/// Values of the shared secrets that anyone who has read the repository knows (the
/// default, and the examples of `.env.example`, `k8s/` and the docs): a service
/// refuses them outside development.
pub const PUBLIC_SECRETS: &[&str] =
    &[DEV_SECRET, "weaprous-dev-password-change-me", "change-me", "changeme", "secret", "..."];

/// `WEAPROUS_DEV=1`: development mode. Services then accept the public development
/// secret (with a warning); `weaprous up` turns it on for itself.
pub const DEV_ENV: &str = "WEAPROUS_DEV";

/// Whether development mode is on (`WEAPROUS_DEV` is `1`, `true` or `yes`).
pub fn dev_mode() -> bool {
    std::env::var(DEV_ENV).is_ok_and(|value| matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The secrets that can also come from a file: `WEAPROUS_<NAME>_FILE` names a file
/// holding the value (Docker and Kubernetes secrets mounted as files).
const FILE_SECRETS: [&str; 3] = ["session_secret", "cluster_secret", "database_url"];

/// The secrets shared by the services. They come from `WEAPROUS_SESSION_SECRET`,
/// `WEAPROUS_CLUSTER_SECRET` and `WEAPROUS_DATABASE_URL` (or the service's own
/// prefix); only the database URL may also come from a flag.
#[derive(Clone, Deserialize)]
pub struct Secrets {
    /// Signs and verifies session tokens (auth signs; tracker and peers verify).
    #[serde(default = "dev_secret")]
    pub session_secret: SecretString,
    /// Signs and verifies calls between services (peer to tracker, peer to peer).
    #[serde(default = "dev_secret")]
    pub cluster_secret: SecretString,
    /// The PostgreSQL database of the cluster backend (`WEAPROUS_DATABASE_URL` or
    /// `--database-url`); without it a service keeps its data embedded (SQLite, CSV).
    /// A secret because the URL may carry a password.
    #[serde(default)]
    pub database_url: Option<SecretString>,
}

impl Default for Secrets {
    fn default() -> Self {
        Self { session_secret: dev_secret(), cluster_secret: dev_secret(), database_url: None }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

impl Secrets {
    /// Before a service serves: a secret that is unset or public (see
    /// [`PUBLIC_SECRETS`]) is an error, unless development mode is on, where it is a
    /// warning. The error exits with 64 ([`ConfigError::exit`]).
    pub fn refuse_public(&self) -> Result<(), ConfigError> {
        self.check_public(dev_mode())
    }

    /// [`Secrets::refuse_public`] with development mode given.
    pub fn check_public(&self, dev: bool) -> Result<(), ConfigError> {
        let public: Vec<&str> =
            [("WEAPROUS_SESSION_SECRET", &self.session_secret), ("WEAPROUS_CLUSTER_SECRET", &self.cluster_secret)]
                .into_iter()
                .filter(|(_, secret)| is_public(secret.expose_secret()))
                .map(|(name, _)| name)
                .collect();
        if public.is_empty() {
            return Ok(());
        }
        let names = public.join(" and ");
        if dev {
            tracing::warn!(
                secrets = %names,
                "development mode ({DEV_ENV}=1): using a public secret; anyone can forge sessions and calls here"
            );
            return Ok(());
        }
        Err(ConfigError(format!(
            "{names} unset or set to a public value from the repository (such as `{DEV_SECRET}`): anyone who \
             has read it could forge sessions for any user. Set each to a random value (`openssl rand -hex 32`), \
             directly or in a file named by {names_file}; or set {DEV_ENV}=1 to allow it on a development machine",
            names_file = public.iter().map(|name| format!("{name}_FILE")).collect::<Vec<_>>().join(" / "),
        )))
    }

    /// Fresh random secrets, for the all-in-one runner and tests.
    pub fn random() -> Self {
        Self { session_secret: random_secret(), cluster_secret: random_secret(), database_url: None }
    }
}

/// Whether `value` is a secret everyone knows (empty, or in [`PUBLIC_SECRETS`]).
pub fn is_public(value: &str) -> bool {
    let value = value.trim();
    value.is_empty() || PUBLIC_SECRETS.contains(&value)
}

fn dev_secret() -> SecretString {
    SecretString::from(DEV_SECRET.to_owned())
}

/// A fresh random secret: 32 bytes from the system's random source, as hex.
pub fn random_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    // The system random source failing leaves no safe way to run at all.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    SecretString::from(hex::encode(bytes))
}

/// Defaults, then the TOML file (if it exists), then `WEAPROUS_*` for the shared
/// secrets (or `WEAPROUS_*_FILE`, a file holding one) and the public URL, then
/// `<PREFIX>_*` (with `__` for nesting), then flags.
///
/// `defaults` is the service's `Config::default()`; `flags` holds only the flags
/// that were given on the command line.
pub fn layered<D: Serialize, F: Serialize>(defaults: &D, file: &Path, prefix: &str, flags: &F) -> Figment {
    Figment::from(Serialized::defaults(defaults))
        .merge(Toml::file(file))
        .merge(Env::prefixed("WEAPROUS_").only(&[
            "session_secret",
            "cluster_secret",
            "database_url",
            "public_url",
            "trusted_proxies",
            "secure_cookies",
        ]))
        .merge(rate_limits_from_env())
        .merge(SecretFiles)
        .merge(Env::prefixed(&format!("{prefix}_")).split("__").ignore(&["config"]))
        .merge(Serialized::defaults(flags))
}

/// The variable that switches every rate limit off: `WEAPROUS_RATE_LIMITS=off`
/// (`kit::rate::SWITCH_ENV`).
pub const RATE_LIMITS_SWITCH: &str = "WEAPROUS_RATE_LIMITS";

/// `WEAPROUS_LIMITS__<NAME>` for each rate limit of `kit::rate::Limits`, and
/// [`RATE_LIMITS_SWITCH`] (`WEAPROUS_RATE_LIMITS=off`) for `limits.enabled`.
pub(crate) fn rate_limits_from_env() -> Figment {
    Figment::new()
        .merge(Env::prefixed("WEAPROUS_LIMITS__").map(|key| format!("limits.{key}").into()))
        .merge(Env::raw().only(&[RATE_LIMITS_SWITCH]).map(|_| "limits.enabled".into()))
}

/// `WEAPROUS_SESSION_SECRET_FILE`, `WEAPROUS_CLUSTER_SECRET_FILE` and
/// `WEAPROUS_DATABASE_URL_FILE`: each names a file whose content (without a final
/// newline) is the value. Setting both a variable and its `_FILE` is an error, as is
/// a file that cannot be read or is empty.
struct SecretFiles;

impl Provider for SecretFiles {
    fn metadata(&self) -> Metadata {
        Metadata::named("WEAPROUS_*_FILE")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        let mut dict = Dict::new();
        for key in FILE_SECRETS {
            let direct = format!("WEAPROUS_{}", key.to_ascii_uppercase());
            let file_var = format!("{direct}_FILE");
            let Some(path) = set(&file_var) else { continue };
            if set(&direct).is_some() {
                return Err(format!("both {direct} and {file_var} are set: set one").into());
            }
            let path = PathBuf::from(path);
            let content = std::fs::read_to_string(&path)
                .map_err(|err| format!("{file_var}: cannot read {}: {err}", path.display()))?;
            let value = content.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(format!("{file_var}: {} is empty", path.display()).into());
            }
            dict.insert(key.to_owned(), value.into());
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The config file: the `--config` flag, else `<PREFIX>_CONFIG`, else `default`.
pub fn file_path(flag: Option<&Path>, prefix: &str, default: &str) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(format!("{prefix}_CONFIG")).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Extracts typed config, turning figment's error into one readable message.
pub fn extract<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
    figment.extract().map_err(|err| ConfigError(err.to_string()))
}

/// Invalid configuration: printed on stderr, then the process exits with 64.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// Exits with `EX_USAGE` (64) after printing the error: bad config fails at
    /// start, before any port is bound.
    pub fn exit(self) -> ! {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("error: {self}");
        }
        std::process::exit(64)
    }
}

/// The original's flags for where a server listens, shared by every binary. As a
/// figment layer (it is `Serialize`) it sets `server_ip` (`--server-ip`, else
/// `--host`) and `server_port` when given; `--config` picks the file and is no setting.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerFlags {
    /// Shared IP: the address to bind and the one the other services are found at.
    #[arg(long)]
    pub host: Option<String>,
    /// The IP address to bind (overrides --host).
    #[arg(long = "server-ip")]
    pub server_ip: Option<String>,
    /// The port to bind.
    #[arg(long = "server-port")]
    pub server_port: Option<u16>,
    /// A TOML config file (default: the service's `<PREFIX>_CONFIG`, else its own name).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl ServerFlags {
    /// The bind IP the flags ask for: `--server-ip`, else `--host`.
    pub fn bind_ip(&self) -> Option<&str> {
        self.server_ip.as_deref().or(self.host.as_deref())
    }
}

impl Serialize for ServerFlags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if let Some(ip) = self.bind_ip() {
            map.serialize_entry("server_ip", ip)?;
        }
        if let Some(port) = self.server_port {
            map.serialize_entry("server_port", &port)?;
        }
        map.end()
    }
}

/// The flag that picks the storage backend, shared by the services that keep data.
/// As a figment layer it sets `database_url` (a secret, flattened into each config).
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct StorageFlags {
    /// A PostgreSQL URL (`postgres://user:pass@host/db`): keep this service's data
    /// there (cluster mode) instead of embedded. Also `WEAPROUS_DATABASE_URL`.
    #[arg(long = "database-url")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Parses `ip:port` or `http://ip:port` into a base URL (the original's
/// `--tracker-ip 127.0.0.1:9000`).
pub fn base_url(raw: &str) -> Result<reqwest::Url, ConfigError> {
    let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("http://{raw}") };
    let url =
        reqwest::Url::parse(&with_scheme).map_err(|err| ConfigError(format!("`{raw}` is not an address: {err}")))?;
    if url.host_str().is_none() || !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError(format!("`{raw}` is not an http address")));
    }
    Ok(url)
}

#[cfg(test)]
// figment's Jail returns figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Demo {
        port: u16,
        nested: Nested,
        #[serde(flatten)]
        secrets: SecretsShape,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Nested {
        url: String,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    struct SecretsShape {
        #[serde(default, skip_serializing)]
        cluster_secret: Option<String>,
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    }

    fn defaults() -> Demo {
        Demo { port: 1, nested: Nested { url: "http://a".into() }, secrets: SecretsShape::default() }
    }

    #[test]
    fn flags_beat_env_which_beats_the_file_which_beats_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("demo.toml", "port = 2\n[nested]\nurl = \"http://file\"\n")?;
            let path = Path::new("demo.toml");
            let from_file: Demo = extract(&layered(&defaults(), path, "DEMO", &Flags { port: None })).unwrap();
            assert_eq!((from_file.port, from_file.nested.url.as_str()), (2, "http://file"));

            jail.set_env("DEMO_PORT", "3");
            jail.set_env("DEMO_NESTED__URL", "http://env");
            jail.set_env("WEAPROUS_CLUSTER_SECRET", "shh");
            let from_env: Demo = extract(&layered(&defaults(), path, "DEMO", &Flags { port: None })).unwrap();
            assert_eq!((from_env.port, from_env.nested.url.as_str()), (3, "http://env"));
            assert_eq!(from_env.secrets.cluster_secret.as_deref(), Some("shh"));

            let from_flag: Demo = extract(&layered(&defaults(), path, "DEMO", &Flags { port: Some(4) })).unwrap();
            assert_eq!(from_flag.port, 4);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DEMO_PORT", "not-a-port");
            let err = extract::<Demo>(&layered(&defaults(), Path::new("none.toml"), "DEMO", &Flags { port: None }))
                .unwrap_err();
            assert!(err.to_string().contains("port"), "{err}");
            Ok(())
        });
    }

    #[derive(Debug, Deserialize)]
    struct WithSecrets {
        #[serde(flatten)]
        secrets: Secrets,
    }

    fn secrets_of(jail_file: &str) -> Result<Secrets, ConfigError> {
        extract::<WithSecrets>(&layered(&defaults(), Path::new(jail_file), "DEMO", &Flags { port: None }))
            .map(|with| with.secrets)
    }

    #[test]
    fn secrets_can_come_from_files() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("session", "from-a-file\n")?;
            jail.create_file("empty", "")?;
            jail.set_env("WEAPROUS_SESSION_SECRET_FILE", "session");
            let secrets = secrets_of("none.toml").unwrap();
            assert_eq!(secrets.session_secret.expose_secret(), "from-a-file", "the final newline is not part of it");
            assert_eq!(secrets.cluster_secret.expose_secret(), DEV_SECRET);

            jail.set_env("WEAPROUS_SESSION_SECRET", "also-set");
            let err = secrets_of("none.toml").unwrap_err().to_string();
            assert!(err.contains("WEAPROUS_SESSION_SECRET_FILE") && err.contains("set one"), "{err}");

            jail.set_env("WEAPROUS_SESSION_SECRET", "");
            jail.set_env("WEAPROUS_CLUSTER_SECRET_FILE", "empty");
            let err = secrets_of("none.toml").unwrap_err().to_string();
            assert!(err.contains("empty"), "{err}");
            jail.set_env("WEAPROUS_CLUSTER_SECRET_FILE", "missing");
            let err = secrets_of("none.toml").unwrap_err().to_string();
            assert!(err.contains("cannot read missing"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn public_secrets_are_refused_outside_development() {
        let err = Secrets::default().check_public(false).unwrap_err().to_string();
        assert!(
            err.contains("WEAPROUS_SESSION_SECRET and WEAPROUS_CLUSTER_SECRET") && err.contains("WEAPROUS_DEV=1"),
            "{err}"
        );
        let mut secrets = Secrets::random();
        secrets.check_public(false).unwrap();
        secrets.cluster_secret = SecretString::from(" ".to_owned());
        let err = secrets.check_public(false).unwrap_err().to_string();
        assert!(err.contains("WEAPROUS_CLUSTER_SECRET") && !err.contains("WEAPROUS_SESSION_SECRET "), "{err}");
        Secrets::default().check_public(true).unwrap();
        for public in PUBLIC_SECRETS {
            assert!(is_public(public));
        }
        assert!(!is_public(Secrets::random().session_secret.expose_secret()));
    }

    #[test]
    fn the_compose_entrypoint_ignores_the_same_public_values() {
        let script =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker/entrypoint.sh")).unwrap();
        let line = script.lines().find(|line| line.contains("weaprous-dev-secret-change-me |")).unwrap();
        let mut listed: Vec<&str> = line
            .trim()
            .trim_end_matches(") return 0 ;;")
            .split('|')
            .map(|value| value.trim().trim_matches('\''))
            .collect();
        let mut expected: Vec<&str> = PUBLIC_SECRETS.iter().copied().chain([""]).collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected, "docker/entrypoint.sh's is_public and PUBLIC_SECRETS");
    }

    #[test]
    fn addresses_take_the_original_form_or_a_url() {
        assert_eq!(base_url("127.0.0.1:9000").unwrap().as_str(), "http://127.0.0.1:9000/");
        assert_eq!(base_url("http://tracker:9000").unwrap().as_str(), "http://tracker:9000/");
        assert!(base_url("ftp://x").is_err());
        assert!(base_url("::::").is_err());
    }

    #[cfg(feature = "service")]
    #[derive(Debug, Deserialize)]
    struct WithLimits {
        #[serde(default)]
        limits: crate::rate::Limits,
    }

    #[cfg(feature = "service")]
    #[test]
    fn rate_limits_are_switched_off_and_set_from_the_env() {
        figment::Jail::expect_with(|jail| {
            let load = || {
                extract::<WithLimits>(&layered(&defaults(), Path::new("none.toml"), "DEMO", &Flags { port: None }))
                    .unwrap()
                    .limits
            };
            assert_eq!(load(), crate::rate::Limits::default());
            jail.set_env("WEAPROUS_LIMITS__STREAMS_PER_USER", "7");
            jail.set_env("DEMO_LIMITS__MESSAGES_PER_SEC", "3");
            let set = load();
            assert_eq!((set.streams_per_user, set.messages_per_sec, set.enabled), (7, 3, true));
            assert_eq!(crate::rate::Limits::from_env().unwrap().streams_per_user, 7);
            jail.set_env("WEAPROUS_RATE_LIMITS", "off");
            assert!(!load().enabled);
            assert!(!crate::rate::Limits::from_env().unwrap().enabled);
            Ok(())
        });
    }
}
