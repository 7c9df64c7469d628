//! Serving: the layers every service shares, and a graceful shutdown with a bounded
//! drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::util::MapRequest;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use wire::headers::SERVED_BY;

use crate::body::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::metrics::HttpMetrics;

pub mod edge;
mod streams;

pub use edge::{EdgeConfig, Forwarded};
pub use streams::OwnConnection;

/// How long one request may take before the service gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::shutdown::DRAIN_GRACE;

/// Adds what every service wants around its routes: a request span named by the
/// matched route (the child of the caller's trace, if any), an access-log line,
/// request metrics, JSON replies for wrong methods and panics, a body size limit, a
/// request timeout, `x-served-by: <service>@<addr>`, and the edge ([`edge`]): the
/// client behind the trusted proxies, cross-origin state changes refused, security
/// headers.
pub fn common_layers(router: Router, served_by: &str, http_metrics: HttpMetrics, edge: &EdgeConfig) -> Router {
    let service = served_by.split('@').next().unwrap_or(served_by).to_owned();
    let served_by = HeaderValue::from_str(served_by).unwrap_or_else(|_| HeaderValue::from_static("weaprous"));
    let mut router = router
        .method_not_allowed_fallback(crate::error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(edge.clone(), edge::guard))
        .layer(axum::middleware::from_fn_with_state(http_metrics, HttpMetrics::record))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static(SERVED_BY), served_by))
        .layer(axum::middleware::from_fn_with_state(edge.clone(), access_log))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| request_span(request, &service))
                .on_request(())
                .on_response(|response: &Response<_>, latency: Duration, span: &Span| {
                    let status = response.status();
                    span.record("http.response.status_code", i64::from(status.as_u16()));
                    if status.is_server_error() {
                        span.record("otel.status_code", "ERROR");
                        span.record("error.type", status.as_str());
                    }
                    tracing::debug!(latency_ms = latency.as_secs_f64() * 1000.0, "finished");
                })
                .on_failure(()),
        );
    // Outermost, so that timeouts and panics get them too.
    for (name, value) in edge::SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// The server span of one request, after OpenTelemetry's HTTP conventions: named
/// `{method} {route}` (the method alone when no route matched), the child of the
/// caller's span. A `debug` span, off under the default filter, when it would not be
/// exported (see [`crate::telemetry::traced_route`]).
fn request_span(request: &Request, service: &str) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    let method = request.method().as_str();
    if !crate::telemetry::traced_route(route) {
        return tracing::debug_span!("request", method, route);
    }
    // Known methods only in the name and the method attribute, so clients cannot
    // mint span names.
    let span = tracing::info_span!(
        "request",
        otel.name = crate::telemetry::span_name(method, route),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = crate::telemetry::known_method(method),
        http.request.method_original = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        url.path = request.uri().path(),
        url.scheme = "http",
        service,
    );
    if !route.is_empty() {
        span.record("http.route", route);
    }
    crate::telemetry::record_original_method(&span, method);
    crate::telemetry::set_parent(&span, crate::telemetry::extract(request.headers()));
    span
}

/// Middleware that writes one access-log line per request (target `access`), inside
/// its span so the line carries the trace id: method, route (the matched pattern, or
/// the path when none matched), status, time to the response head, client and vhost.
/// `WEAPROUS_ACCESS_LOG=off` turns it off.
async fn access_log(
    axum::extract::State(edge): axum::extract::State<EdgeConfig>,
    request: Request,
    next: axum::middleware::Next,
) -> Response<axum::body::Body> {
    if !crate::telemetry::access_log() {
        return next.run(request).await;
    }
    let started = std::time::Instant::now();
    let method = crate::telemetry::known_method(request.method().as_str());
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str().to_owned(),
        None => request.uri().path().to_owned(),
    };
    // The client as the edge resolves it, behind the trusted proxies.
    let connected = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let client = edge.resolve(request.headers(), connected).0.client;
    let vhost = request.headers().get(axum::http::header::HOST).and_then(|host| host.to_str().ok()).map(str::to_owned);
    let response = next.run(request).await;
    tracing::info!(
        target: crate::telemetry::ACCESS_TARGET,
        method,
        route,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        %client,
        vhost = vhost.as_deref().unwrap_or_default(),
        "request"
    );
    response
}

pub use crate::limits::HEADER_READ_TIMEOUT;

/// The address of the client behind a request, as the edge resolved it from the
/// trusted proxies' `X-Forwarded-For` ([`edge::TrustedProxies`]), else the
/// connection's peer. Unspecified (`0.0.0.0`) when neither is known, as in router
/// tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let Ok(forwarded) = Forwarded::from_request_parts(parts, state).await;
        Ok(ClientIp(forwarded.client))
    }
}

/// Binds `addr`, with an error that says what is likely wrong.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr).await.with_context(|| format!("failed to bind {addr}: is something else using the port?"))
}

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
    serve_inner(listener, router, shutdown, None).await
}

/// [`serve`], with the long-lived event streams of `stream_path` served leanly: a
/// connection whose first request is a plain `GET` of it skips hyper and keeps no
/// buffers while idle (see [`streams`]); everything else is served as by [`serve`].
pub async fn serve_with_streams(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stream_path: &'static str,
) -> anyhow::Result<()> {
    serve_inner(listener, router, shutdown, Some(stream_path)).await
}

async fn serve_inner(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stream_path: Option<&'static str>,
) -> anyhow::Result<()> {
    let connections = TaskTracker::new();
    let draining = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(%err, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let draining = draining.clone();
        // Only a service with event streams peeks at first requests.
        match stream_path {
            Some(path) => connections.spawn(serve_stream_or_connection(stream, remote, router, draining, path)),
            None => connections.spawn(serve_connection(stream, remote, router, draining)),
        };
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

/// Serves a connection whose first request may be an event stream ([`streams`]), else
/// hands it to hyper.
async fn serve_stream_or_connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    draining: CancellationToken,
    path: &'static str,
) {
    let first = tokio::select! {
        first = tokio::time::timeout(HEADER_READ_TIMEOUT, streams::take(&mut stream, path, remote)) => first,
        // Like hyper with a connection that has not asked anything yet.
        () = draining.cancelled() => return,
    };
    match first {
        Ok(Ok(Some(request))) => streams::respond(stream, request, router, draining).await,
        // Boxed: a lean stream's task need not be the size of hyper's connection.
        Ok(Ok(None)) => Box::pin(serve_connection(stream, remote, router, draining)).await,
        Ok(Err(err)) => tracing::debug!(%err, "connection ended before its first request"),
        Err(_) => tracing::debug!("no request head in time"),
    }
}

/// Serves one connection with hyper until the client is done or `draining` asks
/// it to finish.
async fn serve_connection(stream: TcpStream, remote: SocketAddr, router: Router, draining: CancellationToken) {
    // Who is at the other end, for the handlers that need it ([`ClientIp`]).
    let with_peer = move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    };
    let service = TowerToHyperService::new(MapRequest::new(router, with_peer));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn client_ip(forwarded: &[&str], connected: Option<&str>) -> IpAddr {
        let mut request = axum::http::Request::builder();
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(addr) = connected {
            parts.extensions.insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        }
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(&mut parts, &()).await;
        ip
    }

    /// Without the edge layer (router tests), the default: the proxy in front is trusted.
    #[tokio::test]
    async fn the_client_is_the_last_forwarded_address_else_the_connection() {
        let ip = |raw: &str| raw.parse::<IpAddr>().unwrap();
        assert_eq!(client_ip(&["203.0.113.9, 10.0.0.7"], Some("127.0.0.1:5000")).await, ip("10.0.0.7"));
        assert_eq!(client_ip(&["198.51.100.1", "10.0.0.8"], None).await, ip("10.0.0.8"));
        assert_eq!(client_ip(&["not an address"], Some("127.0.0.2:5000")).await, ip("127.0.0.2"));
        assert_eq!(client_ip(&[], Some("[::1]:5000")).await, ip("::1"));
        assert_eq!(client_ip(&[], None).await, ip("0.0.0.0"));
    }
}
