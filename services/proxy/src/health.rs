//! Active health checks: every backend gets `GET /healthz` every few seconds.
//!
//! A backend is up when it answers with anything but a 5xx within the probe timeout:
//! the point is to find backends that are gone or broken, and a backend without a
//! `/healthz` route (404) still serves. The probes run every interval from
//! `Shared::probe_periodically` (in `shared.rs`). Passive checks live in
//! [`crate::forward`]: a refused connection marks a backend down at once, and only a
//! probe brings it back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::balance::Backend;
use crate::config::Config;
use crate::routing::RoutingTable;

/// The client of the probes: a few requests every few seconds, so hyper-util's pooled
/// client, with a connect timeout and a short idle pool.
pub type HealthClient = Client<HttpConnector, Empty<Bytes>>;

/// Builds the probes' client.
pub fn client(config: &Config) -> HealthClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Config::timeout(config.timeouts.connect_ms)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Config::timeout(config.health.interval_ms.saturating_mul(2)))
        .pool_max_idle_per_host(1)
        // The probe sets the Host itself.
        .set_host(false)
        .build(connector)
}

/// Probes one backend now and records the result; true when it is up.
pub async fn probe_and_mark(client: &HealthClient, backend: &Backend, path: &str, timeout: Duration) -> bool {
    let up = probe(client, backend, path, timeout).await;
    if up {
        if backend.mark_up() {
            tracing::info!(backend = %backend.addr, "backend up");
        }
    } else if backend.mark_down() {
        tracing::warn!(backend = %backend.addr, "backend down: health probe failed");
    }
    up
}

async fn probe(client: &HealthClient, backend: &Backend, path: &str, timeout: Duration) -> bool {
    let Ok(uri) = Uri::builder().scheme("http").authority(backend.authority.clone()).path_and_query(path).build()
    else {
        return false;
    };
    let Ok(host) = HeaderValue::from_str(backend.authority.as_str()) else {
        return false;
    };
    let Ok(request) =
        Request::get(uri).header(HOST, host).header(USER_AGENT, "weaprous-proxy-health").body(Empty::new())
    else {
        return false;
    };
    let answered = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.ok()?;
        let status = response.status();
        // Reading the (small) body to its end returns the connection to the pool.
        response.into_body().collect().await.ok()?;
        Some(status)
    })
    .await;
    matches!(answered, Ok(Some(status)) if !status.is_server_error())
}

/// Each backend of the table once (a backend may serve several vhosts).
pub(crate) fn distinct_backends(table: &RoutingTable) -> Vec<Arc<Backend>> {
    let mut seen = HashSet::new();
    table
        .vhosts()
        .flat_map(|vhost| vhost.backends.iter())
        .filter(|backend| seen.insert(backend.addr))
        .cloned()
        .collect()
}
