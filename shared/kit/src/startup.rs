//! One start-up path for every web service (in the manner of zero-to-production's
//! `Application::build`): a service's state implements [`Service`], and [`Bound`]
//! builds and runs it, the same way for its binary, for `weaprous` (`tracker`, `peer`,
//! `auth` and `up`) and for the tests.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::config::{ConfigError, Secrets};

/// What a web service's state tells the start-up path.
pub trait Service: Sized + Send + 'static {
    /// Its name in logs and traces (`service.name`).
    const NAME: &'static str;
    type Config: Sync;
    type Flags: Sync;

    /// The configuration for these flags: defaults, file, environment, flags.
    fn load(flags: &Self::Flags) -> Result<Self::Config, ConfigError>;
    /// The secrets of a configuration (refused before serving when public).
    fn secrets(config: &Self::Config) -> &Secrets;
    /// Binds the address the configuration names.
    fn bind(config: &Self::Config) -> impl Future<Output = anyhow::Result<TcpListener>> + Send;
    /// Builds the state (stores opened, clients made) for a service reached at `addr`.
    fn build(config: &Self::Config, addr: SocketAddr) -> impl Future<Output = anyhow::Result<Self>> + Send;
    /// Serves on `listener` until `shutdown` completes.
    fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A service built and bound, ready to run.
pub struct Bound<S> {
    listener: TcpListener,
    state: S,
}

impl<S: Service> Bound<S> {
    /// Builds the state from `config` and binds the configured address.
    pub async fn build(config: &S::Config) -> anyhow::Result<Self> {
        Self::build_on(S::bind(config).await?, config).await
    }

    /// Builds the state from `config`, on a listener the caller bound (the all-in-one
    /// binds every port before it starts anything; tests bind port 0).
    pub async fn build_on(listener: TcpListener, config: &S::Config) -> anyhow::Result<Self> {
        let state = S::build(config, listener.local_addr()?).await?;
        Ok(Self { listener, state })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Its state (tests look into it).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        self.state.serve(self.listener, shutdown).await
    }
}

/// A service's command, as its binary and `weaprous <service>` run it: the config from
/// `flags` (exit 64 when it is wrong), telemetry, the refusal of public secrets, then
/// serving until SIGINT or SIGTERM.
pub async fn run_command<S: Service>(flags: &S::Flags) -> anyhow::Result<()> {
    let config = S::load(flags).unwrap_or_else(|err| err.exit());
    let _telemetry = crate::start(S::NAME);
    S::secrets(&config).refuse_public().unwrap_or_else(|err| err.exit());
    Bound::<S>::build(&config).await?.run(crate::shutdown::signal()).await
}
