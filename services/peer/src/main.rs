//! The `peer` binary.

use clap::Parser;
use peer::config::{Config, Flags};

#[derive(Parser)]
#[command(name = "peer", version, about = "WeApRous peer: the web UI, users' sessions and direct messages")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli.flags).unwrap_or_else(|err| err.exit());
    let _telemetry = kit::start("peer");
    config.secrets.refuse_public().unwrap_or_else(|err| err.exit());
    let listener = config.bind().await?;
    let state = peer::AppState::new(&config, listener.local_addr()?).await?;
    peer::serve(listener, state, kit::shutdown::signal()).await
}
