//! Shutdown: SIGINT or SIGTERM as a future, and how long a drain may take.

use std::time::Duration;

/// How long in-flight requests get to finish after a shutdown signal (the services'
/// `kit::http::serve` and the proxy's workers alike).
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Completes on Ctrl-C (SIGINT) or SIGTERM, which Docker and Kubernetes send to stop
/// a container gracefully.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "failed to listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}
