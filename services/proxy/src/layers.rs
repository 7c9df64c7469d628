//! The outer layers of the stack: trace → timeout → route/forward.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::trace_context;

/// Puts each request in a span. When traces are exported, an `info` server span that
/// continues the caller's trace (its context goes upstream, see
/// [`trace_context::propagate`]) and records the status; otherwise a `debug` span with
/// method, host, path and trace id, which below `debug` is disabled and costs a branch:
/// that matters at the request rates a proxy sees.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

impl<S, B> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>>,
{
    type Response = Response<ProxyBody>;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let host = request.headers().get(http::header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
        if kit::telemetry::exporting() {
            let span = tracing::info_span!(
                "request",
                otel.name = %format!("{} {host}", request.method()),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                http.request.method = %request.method(),
                server.address = host,
                url.path = request.uri().path(),
                http.response.status_code = tracing::field::Empty,
                service = "proxy",
            );
            kit::telemetry::set_parent(&span, kit::telemetry::extract(request.headers()));
            request.extensions_mut().insert(trace_context::Upstream(span.clone()));
            let inner = self.inner.call(request).instrument(span.clone());
            return TraceFuture { inner, exported: Some(span) };
        }
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            host,
            path = request.uri().path(),
            trace_id = trace_context::trace_id(request.headers()),
        );
        TraceFuture { inner: self.inner.call(request).instrument(span), exported: None }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Trace`]: records the status on an exported span.
    pub struct TraceFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        exported: Option<tracing::Span>,
    }
}

impl<F, E> Future for TraceFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, E>>,
{
    type Output = Result<Response<ProxyBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let (Some(span), Ok(response)) = (this.exported.as_ref(), &output) {
            span.record("http.response.status_code", response.status().as_u16());
            if response.status().is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        Poll::Ready(output)
    }
}

/// Answers 504 when the backend's response head does not arrive in time. The body
/// is not limited: an SSE stream may stay open for hours.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl TimeoutLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner, limit: self.limit }
    }
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>, Error = Infallible>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        TimeoutFuture { inner: tokio::time::timeout(self.limit, self.inner.call(request)), limit: self.limit }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Timeout`].
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        limit: Duration,
    }
}

impl<F> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, Infallible>>,
{
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_elapsed)) => Poll::Ready(Ok(ProxyError::UpstreamTimeout(*this.limit).into_response())),
            Poll::Pending => Poll::Pending,
        }
    }
}
