//! Logs of the services under test, silent unless asked for.

use std::sync::LazyLock;

/// Installs a log subscriber once; silent unless `TEST_LOG=1`.
pub fn init_logging() {
    static LOGGING: LazyLock<()> = LazyLock::new(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                ))
                .with_test_writer()
                .try_init();
        }
    });
    LazyLock::force(&LOGGING);
}
