//! The `proxy` binary: flags, config, telemetry, then one worker per core until a
//! signal (see `proxy::run`).

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = proxy::Args::parse();
    let config = proxy::Config::load(&args).unwrap_or_else(|err| err.exit());
    if let Err(err) = config.listen() {
        err.exit();
    }
    let _telemetry = kit::start("proxy");
    proxy::run(config, args)
}
