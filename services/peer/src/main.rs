//! The `peer` binary.

use clap::Parser;
use peer::config::Flags;

#[derive(Parser)]
#[command(name = "peer", version, about = "WeApRous peer: the web UI, users' sessions and direct messages")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    peer::run_command(&Cli::parse().flags).await
}
