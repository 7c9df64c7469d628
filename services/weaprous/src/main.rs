//! The `weaprous` binary: `weaprous up` runs the whole system in one process; the
//! other subcommands (and the original's `--role tracker|peer`) run one service.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "weaprous", version, about = "WeApRous chat: the whole system in one process, or one service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run auth, the tracker, N peers and the proxy in this process.
    Up(UpArgs),
    /// Run the tracker (the original's `--role tracker`).
    Tracker(tracker::config::Flags),
    /// Run one peer (the original's `--role peer`).
    Peer(peer::config::Flags),
    /// Run the auth service.
    Auth(auth::config::Flags),
    /// Run the reverse proxy.
    Proxy(proxy::Args),
}

#[derive(clap::Args)]
struct UpArgs {
    /// How many peers to run (ports from --peer-port upwards).
    #[arg(long, default_value_t = 2)]
    peers: u16,
    /// The address every service binds and advertises.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Where the tracker and the peers keep their databases.
    #[arg(long = "data-dir", default_value = "data")]
    data_dir: PathBuf,
    /// The user database.
    #[arg(long, default_value = "db/database.csv")]
    db: PathBuf,
    /// The web UI folder.
    #[arg(long = "www", default_value = "www")]
    www_dir: PathBuf,
    /// The proxy's port.
    #[arg(long = "proxy-port", default_value_t = proxy::Config::default().server_port)]
    proxy_port: u16,
    /// A certificate (PEM) for HTTPS at the proxy, on --tls-port; with --tls-key.
    #[arg(long = "tls-cert", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long = "tls-key", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The proxy's HTTPS port, when --tls-cert is given.
    #[arg(long = "tls-port", default_value_t = proxy::config::TlsConfig::default().port)]
    tls_port: u16,
    /// The tracker's port.
    #[arg(long = "tracker-port", default_value_t = tracker::Config::default().server_port)]
    tracker_port: u16,
    /// The auth service's port.
    #[arg(long = "auth-port", default_value_t = auth::Config::default().server_port)]
    auth_port: u16,
    /// The first peer's port (the peer's first automatic one); the others take the next ones (0: every peer any free
    /// port, as every other port flag).
    #[arg(long = "peer-port", default_value_t = *peer::config::AUTO_PORTS.start())]
    peer_port: u16,
    /// Also serve the proxy's own /metrics, /healthz and /readyz on this port, where
    /// no vhost shadows them (on the proxy's port, `<host>:8080/metrics` belongs to
    /// the vhost of that name).
    #[arg(long = "proxy-metrics-port")]
    proxy_metrics_port: Option<u16>,
    #[command(flatten)]
    storage: kit::config::StorageFlags,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(with_role_as_subcommand(std::env::args_os()));
    if let Command::Proxy(args) = cli.command {
        // The same engine as the `proxy` binary: one single-threaded worker per core,
        // each with its own runtime, so no shared runtime is started here.
        let config = proxy::Config::load(&args).unwrap_or_else(|err| err.exit());
        if let Err(err) = config.listen() {
            err.exit();
        }
        let _telemetry = kit::start("proxy");
        return proxy::run(config, args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli.command))
}

/// The original's `start_sampleapp.py --role tracker ...` becomes `weaprous tracker ...`.
fn with_role_as_subcommand(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.collect();
    let role_at = args.iter().position(|arg| arg == "--role" || arg.to_string_lossy().starts_with("--role="));
    if let Some(index) = role_at {
        let flag = args.remove(index).to_string_lossy().into_owned();
        let role = match flag.strip_prefix("--role=") {
            Some(role) => OsString::from(role),
            None if index < args.len() => args.remove(index),
            None => OsString::from("peer"),
        };
        args.insert(1, role);
    }
    args
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Tracker(flags) => tracker::run_command(&flags).await,
        Command::Peer(flags) => peer::run_command(&flags).await,
        Command::Auth(flags) => auth::run_command(&flags).await,
        Command::Proxy(_) => unreachable!("the proxy runs its own workers, before any runtime starts"),
    }
}

/// The whole system in this process, on the original's ports.
async fn up(args: UpArgs) -> anyhow::Result<()> {
    let _telemetry = kit::start("weaprous");
    // `weaprous up` is for development: demo users, and public secrets accepted.
    let mut secrets = up_secrets(&args.data_dir)?;
    secrets.check_public(true)?;
    if let Some(url) = &args.storage.database_url {
        secrets.database_url = Some(SecretString::from(url.clone()));
    }
    match secrets.database_url.as_ref() {
        Some(url) => tracing::info!(db = %kit::pg::describe(url.expose_secret()), "storage: PostgreSQL"),
        None => tracing::info!(data_dir = %args.data_dir.display(), users = %args.db.display(), "storage: embedded"),
    }
    let host = args.host;
    let edge = kit::http::EdgeConfig::from_env().unwrap_or_else(|err| err.exit());

    // Bind every port first, so a busy port fails before anything starts.
    let auth_listener = kit::http::bind(SocketAddr::new(host, args.auth_port)).await?;
    let tracker_listener = kit::http::bind(SocketAddr::new(host, args.tracker_port)).await?;
    let mut peer_listeners = Vec::new();
    for index in 0..args.peers {
        let port = if args.peer_port == 0 { 0 } else { args.peer_port + index };
        peer_listeners.push(kit::http::bind(SocketAddr::new(host, port)).await?);
    }
    let proxy_listener = kit::http::bind(SocketAddr::new(host, args.proxy_port)).await?;
    let tls_listener = match &args.tls_cert {
        Some(_) => Some(kit::http::bind(SocketAddr::new(host, args.tls_port)).await?),
        None => None,
    };
    // The ports bound, which port 0 left to the system.
    let auth_port = auth_listener.local_addr()?.port();
    let tracker_port = tracker_listener.local_addr()?.port();
    let proxy_port = proxy_listener.local_addr()?.port();
    let peer_ports = peer_listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect::<anyhow::Result<Vec<u16>>>()?;

    // `WEAPROUS_RATE_LIMITS=off` and `WEAPROUS_LIMITS__*`, as each service alone reads them.
    let limits = kit::rate::Limits::from_env().unwrap_or_else(|err| err.exit());
    let auth_config = auth::Config {
        server_ip: host,
        db: args.db.clone(),
        limits: limits.clone(),
        edge: edge.clone(),
        secrets: secrets.clone(),
        ..auth::Config::default()
    };
    if secrets.database_url.is_some() {
        // The database may be new: the demo users go in as `auth import-csv` puts them,
        // leaving every user already there as they are.
        let users = auth::store::UserStore::open(&auth_config).await.context("failed to open the user store")?;
        let report = auth::import::import_csv(&users, &args.db)
            .await
            .with_context(|| format!("failed to import {}", args.db.display()))?;
        tracing::info!(file = %args.db.display(), added = report.added, skipped = report.skipped, "users imported");
    }
    let tracker_config = tracker::Config {
        server_ip: host,
        auth_url: format!("http://{host}:{auth_port}"),
        data_dir: args.data_dir.join("tracker"),
        www_dir: args.www_dir.clone(),
        limits: limits.clone(),
        edge: edge.clone(),
        secrets: secrets.clone(),
        ..tracker::Config::default()
    };
    let peer_config = peer::Config {
        server_ip: host,
        tracker_url: format!("http://{host}:{tracker_port}"),
        auth_url: format!("http://{host}:{auth_port}"),
        data_dir: args.data_dir.join("peers"),
        www_dir: args.www_dir.clone(),
        limits,
        edge,
        secrets: secrets.clone(),
        ..peer::Config::default()
    };
    let mut proxy_config = proxy::Config::from_conf_str(
        &proxy_conf(host, Ports { proxy: proxy_port, tracker: tracker_port, auth: auth_port }, &peer_ports),
        &host.to_string(),
    )
    .context("the generated proxy configuration is invalid")?;
    proxy_config.tls.certificate = args.tls_cert.clone();
    proxy_config.tls.certificate_key = args.tls_key.clone();
    proxy_config.metrics_listen = args.proxy_metrics_port.map(|port| SocketAddr::new(host, port));

    let shutdown = CancellationToken::new();
    let mut services = tokio::task::JoinSet::new();
    let stop = |token: &CancellationToken| token.clone().cancelled_owned();
    let auth = auth::Auth::build_on(auth_listener, &auth_config).await?;
    services.spawn(named("auth", auth.run(stop(&shutdown))));
    let tracker = tracker::Tracker::build_on(tracker_listener, &tracker_config).await?;
    services.spawn(named("tracker", tracker.run(stop(&shutdown))));
    for listener in peer_listeners {
        let peer = peer::Peer::build_on(listener, &peer_config).await?;
        services.spawn(named("peer", peer.run(stop(&shutdown))));
    }
    let tls_port = match &tls_listener {
        Some(tls) => Some(tls.local_addr()?.port()),
        None => None,
    };
    let proxy = proxy::Proxy::new(proxy_config)?;
    match tls_listener {
        Some(tls) => services.spawn(named("proxy", proxy::serve_with_tls(proxy_listener, tls, proxy, stop(&shutdown)))),
        None => services.spawn(named("proxy", proxy::serve(proxy_listener, proxy, stop(&shutdown)))),
    };

    print_urls(
        host,
        Ports { proxy: proxy_port, tracker: tracker_port, auth: auth_port },
        tls_port,
        &peer_ports,
        &args.data_dir,
    );
    tokio::select! {
        () = kit::shutdown::signal() => {}
        Some(ended) = services.join_next() => {
            // A service that stops on its own takes the others down with it.
            match ended {
                Ok((name, Ok(()))) => tracing::error!(service = name, "service stopped unexpectedly"),
                Ok((name, Err(err))) => tracing::error!(service = name, error.cause_chain = ?err, "service failed"),
                Err(err) => tracing::error!(%err, "service task panicked"),
            }
        }
    }
    shutdown.cancel();
    while let Some(ended) = services.join_next().await {
        if let Ok((name, Err(err))) = ended {
            tracing::error!(service = name, error.cause_chain = ?err, "service failed while stopping");
        }
    }
    tracing::info!("all services stopped");
    Ok(())
}

async fn named(
    name: &'static str,
    service: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, service.await)
}

/// `weaprous up`'s secrets: `WEAPROUS_SESSION_SECRET` / `WEAPROUS_CLUSTER_SECRET`
/// (or their `_FILE`) when set, else the ones kept in `<data dir>/secrets/`, made at
/// random on the first start. Kept, so a restart does not log everyone out; every
/// service of this process shares them, and none is published.
fn up_secrets(data_dir: &Path) -> anyhow::Result<kit::config::Secrets> {
    let dir = data_dir.join("secrets");
    let one = |name: &str, file: &str| -> anyhow::Result<SecretString> {
        let set = |var: String| std::env::var(var).ok().filter(|value| !value.is_empty());
        if let Some(value) = set(name.to_owned()) {
            return Ok(SecretString::from(value));
        }
        if let Some(path) = set(format!("{name}_FILE")) {
            let value = std::fs::read_to_string(&path).with_context(|| format!("{name}_FILE: cannot read {path}"))?;
            return Ok(SecretString::from(value.trim_end_matches(['\n', '\r']).to_owned()));
        }
        kept_secret(&dir.join(file))
    };
    Ok(kit::config::Secrets {
        session_secret: one("WEAPROUS_SESSION_SECRET", "session_secret")?,
        cluster_secret: one("WEAPROUS_CLUSTER_SECRET", "cluster_secret")?,
        database_url: std::env::var("WEAPROUS_DATABASE_URL").ok().filter(|url| !url.is_empty()).map(SecretString::from),
    })
}

/// The secret kept in `path`, or a new random one written there (mode 0600) when the
/// file does not exist yet.
fn kept_secret(path: &Path) -> anyhow::Result<SecretString> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    match std::fs::read_to_string(path) {
        Ok(value) if !value.trim().is_empty() => return Ok(SecretString::from(value.trim().to_owned())),
        Ok(_) => anyhow::bail!("{} is empty: delete it to have a new secret made", path.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let secret = kit::config::random_secret();
    // Written under another name and renamed: a crash never leaves half a secret.
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    writeln!(file, "{}", secret.expose_secret())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(file = %path.display(), "made a new secret");
    Ok(secret)
}

/// The ports of the services other than the peers, as bound.
#[derive(Clone, Copy)]
struct Ports {
    proxy: u16,
    tracker: u16,
    auth: u16,
}

/// The proxy's vhosts for this run: the app on `localhost` and the host IP (sticky
/// over the peers), the tracker and auth by name; each keeps its service's internal
/// routes off the public door.
fn proxy_conf(host: IpAddr, ports: Ports, peer_ports: &[u16]) -> String {
    use wire::routes::internal::{AUTH, PEER, TRACKER, deny_statement};
    let Ports { proxy: port, tracker: tracker_port, auth: auth_port } = ports;
    let peers: String = peer_ports.iter().map(|peer| format!("    proxy_pass http://$HOST:{peer};\n")).collect();
    let (peer, tracker, auth) = (deny_statement(PEER), deny_statement(TRACKER), deny_statement(AUTH));
    format!(
        "host \"localhost:{port}\" {{\n{peers}    dist_policy sticky\n    {peer}\n}}\n\
         host \"{host}:{port}\" {{\n{peers}    dist_policy sticky\n    {peer}\n}}\n\
         host \"tracker.localhost:{port}\" {{\n    proxy_pass http://$HOST:{tracker_port};\n    {tracker}\n}}\n\
         host \"auth.localhost:{port}\" {{\n    proxy_pass http://$HOST:{auth_port};\n    {auth}\n}}\n"
    )
}

#[allow(clippy::print_stdout, reason = "the URLs to open are the command's output")]
fn print_urls(host: IpAddr, ports: Ports, tls_port: Option<u16>, peer_ports: &[u16], data_dir: &Path) {
    let Ports { proxy: proxy_port, tracker, auth } = ports;
    let local = if host.is_loopback() { "localhost".to_owned() } else { host.to_string() };
    println!();
    println!("  WeApRous is up. Open the chat:  http://{local}:{proxy_port}/");
    if let Some(port) = tls_port {
        println!("  Over HTTPS (the certificate given):  https://{local}:{port}/");
    }
    println!("  Log in as user1 / password1 (user2..user4 likewise; or sign up).");
    println!();
    println!("  Development mode ({}=1): the demo accounts above, public passwords and all.", kit::config::DEV_ENV);
    println!("  Not for a server others can reach: use the compose deployment (README).");
    println!("  Secrets: {} (kept, so a restart keeps you logged in).", data_dir.join("secrets").display());
    println!();
    println!(
        "  through the proxy    http://{local}:{proxy_port}/   tracker: http://tracker.localhost:{proxy_port}/login"
    );
    for port in peer_ports {
        println!("  peer                 http://{host}:{port}/");
    }
    println!("  tracker              http://{host}:{tracker}/login   (the original's login: sends you to a peer)");
    println!("  auth                 http://{host}:{auth}/healthz");
    println!();
    println!("  Ctrl-C stops everything.");
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        with_role_as_subcommand(line.split(' ').map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_original_role_flag_picks_the_subcommand() {
        assert_eq!(
            args("weaprous --role tracker --server-port 9000"),
            ["weaprous", "tracker", "--server-port", "9000"]
        );
        assert_eq!(args("weaprous --server-port 9001 --role=peer"), ["weaprous", "peer", "--server-port", "9001"]);
        assert_eq!(args("weaprous up --peers 3"), ["weaprous", "up", "--peers", "3"]);
    }

    #[test]
    fn the_generated_proxy_conf_parses() {
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports = Ports { proxy: 8080, tracker: 9000, auth: 9100 };
        let config = proxy::Config::from_conf_str(&proxy_conf(host, ports, &[9001, 9002, 9003]), "127.0.0.1").unwrap();
        assert_eq!(config.vhosts.len(), 4);
        for vhost in &config.vhosts {
            assert!(!vhost.paths.allows("/metrics"), "{} passes /metrics", vhost.name);
            assert!(vhost.paths.allows("/"), "{} denies /", vhost.name);
        }
        let tracker = config.vhosts.iter().find(|vhost| vhost.name.starts_with("tracker.")).unwrap();
        assert!(!tracker.paths.allows(wire::routes::tracker::REGISTER_PEER_POOL));
    }
}
