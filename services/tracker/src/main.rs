//! The `tracker` binary.

use anyhow::Context;
use clap::Parser;
use tracker::config::{Config, Flags};

#[derive(Parser)]
#[command(name = "tracker", version, about = "WeApRous tracker: peer pool, user directory, channels and history")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli.flags).unwrap_or_else(|err| err.exit());
    let _telemetry = kit::start("tracker");
    config.secrets.refuse_public().unwrap_or_else(|err| err.exit());
    let state = tracker::AppState::new(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen())
        .await
        .with_context(|| format!("failed to bind {}", config.listen()))?;
    tracker::serve(listener, state, kit::shutdown::signal()).await
}
