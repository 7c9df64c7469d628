//! Serving: the layers every service shares, and a graceful shutdown with a bounded
//! drain.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use wire::headers::SERVED_BY;

use crate::body::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::metrics::HttpMetrics;

/// How long one request may take before the service gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Adds what every service wants around its routes: a request span named by the
/// matched route (the child of the caller's trace, if any), request metrics, JSON
/// replies for wrong methods and panics, a body size limit, a request timeout, and
/// `x-served-by: <service>@<addr>`.
pub fn common_layers(router: Router, served_by: &str, http_metrics: HttpMetrics) -> Router {
    let service = served_by.split('@').next().unwrap_or(served_by).to_owned();
    let served_by = HeaderValue::from_str(served_by).unwrap_or_else(|_| HeaderValue::from_static("weaprous"));
    router
        .method_not_allowed_fallback(crate::error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(http_metrics, HttpMetrics::record))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static(SERVED_BY), served_by))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
                    let method = request.method();
                    if !crate::telemetry::exporting() {
                        // Nothing reads spans: a debug span, off under the default filter.
                        return tracing::debug_span!("request", %method, route, status = tracing::field::Empty);
                    }
                    let span = tracing::info_span!(
                        "request",
                        otel.name = %format!("{method} {route}"),
                        otel.kind = "server",
                        otel.status_code = tracing::field::Empty,
                        http.request.method = %method,
                        http.route = route,
                        http.response.status_code = tracing::field::Empty,
                        service = %service,
                    );
                    crate::telemetry::set_parent(&span, crate::telemetry::extract(request.headers()));
                    span
                })
                .on_request(())
                .on_response(|response: &Response<_>, latency: Duration, span: &Span| {
                    span.record("http.response.status_code", response.status().as_u16());
                    span.record("status", response.status().as_u16());
                    if response.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                    tracing::debug!(latency_ms = latency.as_secs_f64() * 1000.0, "finished");
                })
                .on_failure(()),
        )
}

/// How long a client may take to send a request head (slow clients must not hold
/// connections open for free).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on an already bound listener until `shutdown` completes, then
/// lets in-flight requests finish for at most [`DRAIN_GRACE`].
///
/// One HTTP/1.1 connection per task, driven by hyper directly rather than through
/// `axum::serve`, for two settings that matter with thousands of idle event streams:
/// the router is shared, not rebuilt per connection, and `half_close` stops hyper from
/// reading (and growing its read buffer) while a streamed response is being written.
/// A client that vanishes is then noticed at the next keep-alive write.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(%err, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let draining = draining.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%err, "connection ended with an error");
                    }
                }
                () = draining.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    draining.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN_GRACE, connections.wait()).await.is_ok() {
        tracing::info!("drained");
    } else {
        tracing::warn!(grace_secs = DRAIN_GRACE.as_secs(), "drain timed out; closing the remaining connections");
    }
    Ok(())
}
