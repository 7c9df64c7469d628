//! Starting one service of a test system: in this process, or as a child process.

use std::path::Path;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::process::Child;
use crate::service::{Role, Running, Service};
use crate::{System, repo_root};

impl System {
    /// Stops the proxy (every connection through it ends); [`System::restart_proxy`]
    /// brings it back on its port.
    pub async fn stop_proxy(&mut self) {
        self.proxy.take().expect("the proxy runs").stop().await;
    }

    /// Starts the proxy again on its old port.
    pub async fn restart_proxy(&mut self) {
        assert!(self.proxy.is_none(), "the proxy still runs");
        self.proxy = Some(self.launch(Role::Proxy, Some(self.proxy_port)).await);
    }

    pub(crate) async fn launch(&self, role: Role, port: Option<u16>) -> Service {
        match &self.settings.processes {
            Some(binary) => self.launch_process(binary, role, port).await,
            None => self.launch_in_process(role, port).await,
        }
    }

    pub(crate) async fn launch_in_process(&self, role: Role, port: Option<u16>) -> Service {
        let listener = bind(port.unwrap_or(0)).await;
        let port = listener.local_addr().expect("a bound address").port();
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let mut readiness = None;
        let task = match role {
            Role::Auth => {
                let config = auth::Config {
                    db: self.dir.path().join("database.csv"),
                    allow_registration: self.settings.allow_registration,
                    limits: self.settings.limits.clone(),
                    edge: self.settings.edge.clone(),
                    secrets: self.secrets.clone(),
                    ..auth::Config::default()
                };
                let auth = auth::Auth::build_on(listener, &config).await.expect("auth built");
                tokio::spawn(auth.run(shutdown))
            }
            Role::Tracker => {
                let tracker =
                    tracker::Tracker::build_on(listener, &self.tracker_config()).await.expect("tracker built");
                tokio::spawn(tracker.run(shutdown))
            }
            Role::Peer => {
                let peer = peer::Peer::build_on(listener, &self.peer_config()).await.expect("peer built");
                readiness = Some(peer.state().readiness.clone());
                tokio::spawn(peer.run(shutdown))
            }
            Role::Proxy => {
                let config = proxy::Config::from_conf_str(&self.proxy_conf(), "127.0.0.1").expect("a valid proxy.conf");
                let proxy = proxy::Proxy::new(config).expect("proxy state");
                tokio::spawn(proxy::serve(listener, proxy, shutdown))
            }
        };
        Service { port, running: Running::InProcess { stop, task, readiness } }
    }

    pub(crate) async fn launch_process(&self, binary: &Path, role: Role, port: Option<u16>) -> Service {
        let port_arg = port.unwrap_or(0).to_string();
        let dir = self.dir.path();
        let mut args: Vec<String> = match role {
            Role::Auth => vec!["auth".into(), "--db".into(), dir.join("database.csv").display().to_string()],
            Role::Tracker => vec![
                "tracker".into(),
                "--auth-url".into(),
                self.auth_urls(),
                "--data-dir".into(),
                dir.join("tracker").display().to_string(),
                "--www".into(),
                repo_root().join("www").display().to_string(),
            ],
            Role::Peer => vec![
                "peer".into(),
                "--tracker-ip".into(),
                self.tracker_urls(),
                "--auth-url".into(),
                self.auth_urls(),
                "--data-dir".into(),
                dir.join("peers").display().to_string(),
                "--www".into(),
                repo_root().join("www").display().to_string(),
            ],
            Role::Proxy => {
                let conf = dir.join("proxy.conf");
                std::fs::write(&conf, self.proxy_conf()).expect("writable temp folder");
                vec!["proxy".into(), "--config".into(), conf.display().to_string(), "--host".into(), "127.0.0.1".into()]
            }
        };
        args.extend(["--server-ip".into(), "127.0.0.1".into(), "--server-port".into(), port_arg]);
        let mut envs = vec![
            ("WEAPROUS_SESSION_SECRET", secrecy::ExposeSecret::expose_secret(&self.secrets.session_secret).to_owned()),
            ("WEAPROUS_CLUSTER_SECRET", secrecy::ExposeSecret::expose_secret(&self.secrets.cluster_secret).to_owned()),
            ("WEAPROUS_LOG_FORMAT", "json".to_owned()),
            ("TRACKER_PEER_TTL_SECS", self.settings.peer_ttl_secs.to_string()),
            ("PEER_HEARTBEAT_SECS", self.settings.heartbeat_secs.to_string()),
            ("PEER_ACTIVITY_GRACE_SECS", "1".to_owned()),
            ("PEER_SSE_KEEPALIVE_SECS", "1".to_owned()),
            ("AUTH_ALLOW_REGISTRATION", self.settings.allow_registration.to_string()),
        ];
        if let Some(url) = self.settings.backend.database_url() {
            envs.push(("WEAPROUS_DATABASE_URL", url.to_owned()));
        }
        envs.push(("WEAPROUS_TRUSTED_PROXIES", self.settings.edge.trusted_proxies.to_string()));
        let secure_cookies = serde_json::to_value(self.settings.edge.secure_cookies).expect("a plain enum");
        envs.push(("WEAPROUS_SECURE_COOKIES", secure_cookies.as_str().unwrap_or("auto").to_owned()));
        if let Some(url) = &self.settings.public_url {
            envs.push(("TRACKER_PUBLIC_URL", url.clone()));
        }
        let limits = limit_envs(&self.settings.limits);
        envs.extend(limits.iter().map(|(key, value)| (key.as_str(), value.clone())));
        envs.extend(self.settings.env.iter().map(|(key, value)| (key.as_str(), value.clone())));
        let child = Child::spawn(binary, &format!("{role:?}").to_lowercase(), &args, &envs).await;
        let port = child.port();
        Service { port, running: Running::Process(Box::new(child)) }
    }

    pub(crate) fn tracker_config(&self) -> tracker::Config {
        tracker::Config {
            auth_url: self.auth_urls(),
            data_dir: self.dir.path().join("tracker"),
            www_dir: repo_root().join("www"),
            peer_ttl_secs: self.settings.peer_ttl_secs,
            public_url: self.settings.public_url.clone(),
            limits: self.settings.limits.clone(),
            edge: self.settings.edge.clone(),
            secrets: self.secrets.clone(),
            ..tracker::Config::default()
        }
    }

    pub(crate) fn peer_config(&self) -> peer::Config {
        peer::Config {
            tracker_url: self.tracker_urls(),
            auth_url: self.auth_urls(),
            data_dir: self.dir.path().join("peers"),
            www_dir: repo_root().join("www"),
            heartbeat_secs: self.settings.heartbeat_secs,
            activity_grace_secs: 1,
            sse_keepalive_secs: 1,
            limits: self.settings.limits.clone(),
            edge: self.settings.edge.clone(),
            secrets: self.secrets.clone(),
            ..peer::Config::default()
        }
    }

    pub(crate) fn proxy_conf(&self) -> String {
        let peers: String =
            self.peers.iter().map(|(port, _)| format!("    proxy_pass http://$HOST:{port};\n")).collect();
        let passes = |slots: &[(u16, Option<Service>)]| -> String {
            slots.iter().map(|(port, _)| format!("    proxy_pass http://$HOST:{port};\n")).collect()
        };
        let (trackers, auths) = (passes(&self.trackers), passes(&self.auths));
        use wire::routes::internal::{AUTH, PEER, TRACKER, deny_statement};
        let (peer, tracker, auth) = (deny_statement(PEER), deny_statement(TRACKER), deny_statement(AUTH));
        format!(
            "host \"localhost\" {{\n{peers}    dist_policy sticky\n    {peer}\n}}\n\
             host \"tracker.localhost\" {{\n{trackers}    {tracker}\n}}\n\
             host \"auth.localhost\" {{\n{auths}    {auth}\n}}\n"
        )
    }
}

async fn bind(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|err| panic!("failed to bind 127.0.0.1:{port}: {err}"))
}

/// The rate limits as the environment of a child: `WEAPROUS_RATE_LIMITS` and one
/// `WEAPROUS_LIMITS__<NAME>` for each limit.
fn limit_envs(limits: &kit::rate::Limits) -> Vec<(String, String)> {
    let mut envs = vec![(kit::rate::SWITCH_ENV.to_owned(), if limits.enabled { "on" } else { "off" }.to_owned())];
    let fields = serde_json::to_value(limits).expect("limits serialize");
    for (name, value) in fields.as_object().into_iter().flatten() {
        if name != "enabled" {
            envs.push((format!("WEAPROUS_LIMITS__{}", name.to_ascii_uppercase()), value.to_string()));
        }
    }
    envs
}
