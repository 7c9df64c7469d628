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

/// Puts each request in a `debug` span with its method, host, path and trace id.
/// Below `debug` the span is disabled and costs a branch, which matters at the
/// request rates a proxy sees; warnings inside still carry their own fields.
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
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            host = request.headers().get(http::header::HOST).and_then(|value| value.to_str().ok()),
            path = request.uri().path(),
            trace_id = trace_context::trace_id(request.headers()),
        );
        self.inner.call(request).instrument(span)
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
