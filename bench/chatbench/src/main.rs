//! `chatbench`: runs the WeApRous real-time benchmark (see the crate docs and
//! bench/CHAT.md). Ctrl-C or SIGTERM stops it; the services it started die with it.

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> anyhow::Result<()> {
    let args = chatbench::Args::parse();
    let limit = std::time::Duration::from_secs(args.max_seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut stdout = std::io::stdout();
        // Dropping the benchmark's future drops the child handles, which kills them.
        tokio::select! {
            outcome = chatbench::run(args, &mut stdout) => outcome.map(drop),
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            _ = terminate.recv() => anyhow::bail!("terminated"),
            () = tokio::time::sleep(limit) => anyhow::bail!("the run took longer than {limit:?} (--max-seconds)"),
        }
    })
}
