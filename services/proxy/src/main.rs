//! The `proxy` binary: flags, config, telemetry, then one worker per core until a
//! signal (see `proxy::run`).

use clap::Parser;

/// mimalloc rather than glibc's malloc: an HTTP/2 stream allocates its session's
/// buffers (several of 4 KiB) and the h2 crate's frames and header maps, and glibc
/// spent about 16 % of the proxy's CPU on them under h2load (`malloc_consolidate`
/// and friends, on blocks above its fast bins).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = proxy::Args::parse();
    let config = proxy::Config::load(&args).unwrap_or_else(|err| err.exit());
    if let Err(err) = config.listen() {
        err.exit();
    }
    let _telemetry = kit::start("proxy");
    proxy::run(config, args)
}
