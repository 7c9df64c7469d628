//! Serving: the layers every service shares, and a graceful shutdown with a bounded
//! drain.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
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
                    if response.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                    tracing::debug!(latency_ms = latency.as_secs_f64() * 1000.0, "finished");
                })
                .on_failure(()),
        )
}

/// Serves `router` on an already bound listener until `shutdown` completes, then
/// lets in-flight requests finish for at most [`DRAIN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signal).into_future();
    tokio::pin!(server);
    let deadline = async move {
        match signalled_rx.await {
            Ok(()) => tokio::time::sleep(DRAIN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut server => {
            result?;
            tracing::info!("drained");
        }
        () = deadline => {
            tracing::warn!(grace_secs = DRAIN_GRACE.as_secs(), "drain timed out; closing the remaining connections");
        }
    }
    Ok(())
}
