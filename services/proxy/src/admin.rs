//! The proxy's own endpoints (`/metrics`, `/healthz`, `/readyz`) on a listener of
//! their own, the `metrics_listen` setting: there they answer whatever the Host, so
//! no vhost can shadow them (on the main listener, `127.0.0.1:8080/metrics` is a
//! peer's when a block is named `127.0.0.1:8080`). Served by hyper: a scrape every
//! few seconds needs none of the request path's engine.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::own_answer;
use crate::shared::Shared;

/// Serves the proxy's own endpoints on `listener` until `shutdown`; anything else
/// gets 404.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "metrics listener: accept failed");
                    continue;
                }
            },
        };
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let accept = request.headers().get(http::header::ACCEPT).and_then(|value| value.to_str().ok());
                let answer = own_answer(request.method().as_str(), request.uri().path(), accept, &shared);
                let (code, content_type, body) =
                    answer.unwrap_or((http::StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()));
                let mut response = http::Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = code;
                response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
                std::future::ready(Ok::<_, Infallible>(response))
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(kit::limits::HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}
