//! The `tracker` binary.

use clap::Parser;
use tracker::config::Flags;

#[derive(Parser)]
#[command(name = "tracker", version, about = "WeApRous tracker: peer pool, user directory, channels and history")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracker::run_command(&Cli::parse().flags).await
}
