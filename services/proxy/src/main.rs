//! The `proxy` binary: flags, config, telemetry, bind, serve until a signal.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = proxy::Args::parse();
    let config = proxy::Config::load(&args).unwrap_or_else(|err| err.exit());
    let listen = config.listen().unwrap_or_else(|err| err.exit());
    let workers = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    runtime.block_on(async move {
        let _telemetry = kit::telemetry::init("proxy");
        let listener = proxy::bind(listen)?;
        tracing::info!(addr = %listener.local_addr()?, vhosts = ?config.vhosts.iter().map(|v| &v.name).collect::<Vec<_>>(), workers, "listening");
        let proxy = proxy::Proxy::new(config)?;
        tokio::spawn(proxy::reload_on_sighup(proxy.clone(), args));
        proxy::serve(listener, proxy, kit::shutdown::signal()).await
    })
}
