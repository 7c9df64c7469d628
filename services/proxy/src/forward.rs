//! Routing a request to a vhost and forwarding it to a backend.
//!
//! [`RouteForward`] is the innermost service of the stack (trace → timeout → route →
//! forward): it finds the vhost ([`crate::routing`]), lets the policy choose a backend
//! ([`crate::balance`]), rewrites the headers once, and sends the request with the
//! shared pooled client. A backend that refuses the connection is marked down and the
//! request goes to the next one; so does an idempotent request without a body whose
//! backend failed before answering. Nothing else is retried, because a backend may
//! already have acted on it.
//!
//! The proxy's own `/healthz` and `/readyz` answer only for a Host that no block
//! names, before the default vhost: `curl http://proxy:8080/healthz` from inside a
//! compose network reaches them, while `localhost:8080/healthz` is a peer's.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use wire::api::{Done, ErrorBody};

use crate::Shared;
use crate::balance::{Backend, InFlight, STICKY_COOKIE, Vhost};
use crate::body::{ProxyBody, UpstreamBody};
use crate::config::{Config, Policy};
use crate::error::{ProxyError, json_response};
use crate::routing::{self, Route};
use crate::trace_context;

/// The one pooled, keep-alive client every request and health probe goes through.
pub type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// Builds a pooled client: HTTP/1.1 with keep-alive, `TCP_NODELAY`, a connect
/// timeout, and up to `pool_max_idle_per_backend` idle connections per backend.
pub fn client(config: &Config) -> UpstreamClient {
    client_keeping(config, config.pool_max_idle_per_backend)
}

/// The clients a worker forwards with.
#[derive(Clone)]
pub struct Clients {
    /// The pooled client, for every request but event streams.
    requests: UpstreamClient,
    /// A client that keeps no idle connection, for event streams of the configured
    /// paths (`stream_paths`): each goes to the backend on a connection of its own,
    /// the first request on it, which a peer serves without hyper's buffers
    /// (`kit::http::serve_with_streams`: 2.7 KB an idle stream instead of 12 KB).
    streams: UpstreamClient,
    stream_paths: Arc<[String]>,
}

impl Clients {
    pub fn new(config: &Config) -> Self {
        Self {
            requests: client(config),
            streams: client_keeping(config, 0),
            stream_paths: config.stream_paths.iter().cloned().collect(),
        }
    }

    /// Whether the request is an event stream of a configured path; only those, so
    /// that other requests cannot make the proxy open a connection each.
    fn is_stream(&self, parts: &Parts) -> bool {
        parts.method == Method::GET
            && self.stream_paths.iter().any(|path| path == parts.uri.path())
            && parts
                .headers
                .get_all(header::ACCEPT)
                .iter()
                .any(|value| value.to_str().is_ok_and(|value| value.contains("text/event-stream")))
    }
}

fn client_keeping(config: &Config, max_idle_per_backend: usize) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Config::timeout(config.timeouts.connect_ms)));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_reuse_address(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Config::timeout(config.timeouts.upstream_idle_ms))
        .pool_max_idle_per_host(max_idle_per_backend)
        // The client's Host header is the backend address; we keep the browser's.
        .set_host(false)
        .build(connector)
}

/// Routes and forwards the requests of one client connection. Cloned for every
/// request, so it is one reference count.
#[derive(Clone)]
pub struct RouteForward {
    connection: Arc<ClientConnection>,
}

/// What the requests of one client connection share.
struct ClientConnection {
    shared: Arc<Shared>,
    /// The clients of the worker that accepted the connection.
    clients: Clients,
    /// The client's address, ready for `X-Forwarded-For`.
    client_ip: HeaderValue,
}

impl RouteForward {
    pub(crate) fn new(shared: Arc<Shared>, clients: Clients, client_ip: IpAddr) -> Self {
        // An IP address prints as visible ASCII.
        let client_ip = HeaderValue::try_from(client_ip.to_string()).expect("an IP address is a header value");
        Self { connection: Arc::new(ClientConnection { shared, clients, client_ip }) }
    }
}

impl tower::Service<Request<Incoming>> for RouteForward {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let connection = self.connection.clone();
        Box::pin(async move {
            Ok(route_and_forward(&connection, request).await.unwrap_or_else(|err| {
                connection.shared.metrics.error(err.reason());
                err.into_response()
            }))
        })
    }
}

async fn route_and_forward(
    connection: &ClientConnection,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let shared = &connection.shared;
    let upgrade = wants_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();

    let mut lowercase = String::new();
    let host = routing::request_host(&parts, &mut lowercase)?;
    let vhost = {
        let table = shared.table.load();
        match table.route(host) {
            Route::Vhost(vhost) => vhost.clone(),
            Route::Unmatched(default) => {
                if let Some(response) = own_endpoint(&parts, shared) {
                    return Ok(response);
                }
                default.ok_or(ProxyError::UnknownVhost)?.clone()
            }
        }
    };

    let limit = shared.settings.max_body_bytes;
    if declared_length(&parts.headers).is_some_and(|length| length > limit) {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    let sticky_id = match vhost.policy {
        Policy::Sticky => sticky_cookie(&parts.headers),
        _ => None,
    };
    let pick = vhost.pick(sticky_id).ok_or(ProxyError::NoBackend)?;
    let stream = connection.clients.is_stream(&parts);
    prepare_request_headers(&mut parts, connection.client_ip.clone(), upgrade);
    let client = if stream {
        // The backend closes the connection when the stream ends (its side keeps the
        // TIME_WAIT, not the proxy's ports).
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        &connection.clients.streams
    } else {
        &connection.clients.requests
    };

    let (body, replay) = UpstreamBody::new(body, limit);
    let mut body = Some(body);
    let can_retry = vhost.backends.len() > 1;
    let idempotent_without_body = parts.method.is_idempotent() && replay.is_none();
    let spare_headers = can_retry.then(|| parts.headers.clone());
    let mut headers = Some(std::mem::take(&mut parts.headers));
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut failure = ProxyError::AllDown;

    for backend in vhost.attempts(pick.first) {
        let Some(body) = body.take().or_else(|| match &replay {
            Some(replay) => replay.body(),
            None => Some(UpstreamBody::Empty),
        }) else {
            break;
        };
        let Some(headers) = headers.take().or_else(|| spare_headers.clone()) else {
            break;
        };
        let mut upstream_request = Request::new(body);
        *upstream_request.method_mut() = parts.method.clone();
        *upstream_request.uri_mut() = backend_uri(backend, &path);
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = headers;
        let in_flight = (vhost.policy == Policy::LeastConn).then(|| InFlight::start(backend));

        let sent = std::time::Instant::now();
        match client.request(upstream_request).await {
            Ok(response) => {
                backend.stats.answered(sent.elapsed());
                let pinned = pick.pinned && Arc::ptr_eq(backend, &vhost.backends[pick.first]);
                return Ok(relay_response(shared, response, backend, &vhost, pinned, client_upgrade, in_flight));
            }
            Err(err) if err.is_connect() && out_of_local_ports(&err) => {
                // Our side, not the backend's: it stays in rotation.
                tracing::warn!(backend = %backend.addr, cause = ?err, "no local port to connect from");
                failure = ProxyError::AllDown;
            }
            Err(err) if err.is_connect() => {
                if backend.mark_down() {
                    tracing::warn!(backend = %backend.addr, vhost = &*vhost.name, cause = ?err, "backend down");
                }
                failure = ProxyError::AllDown;
            }
            Err(err) => {
                tracing::warn!(backend = %backend.addr, vhost = &*vhost.name, cause = ?err, "backend failed");
                failure = ProxyError::UpstreamFailed;
                if !idempotent_without_body {
                    break;
                }
            }
        }
    }
    Err(failure)
}

/// Whether connecting failed for want of a local address or port
/// (`EADDRNOTAVAIL`), which says nothing about the backend.
fn out_of_local_ports(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::AddrNotAvailable;
        }
        source = cause.source();
    }
    false
}

/// The request target on a backend: `http://ip:port/path?query`.
fn backend_uri(backend: &Backend, path: &PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(backend.authority.clone());
    parts.path_and_query = Some(path.clone());
    // Scheme, authority and path are each valid, so the whole is.
    Uri::from_parts(parts).expect("scheme, authority and path make a URI")
}

/// Turns the backend's response into ours: hop-by-hop headers out, the sticky cookie
/// in when the browser is not pinned to this backend yet, and an upgraded connection
/// spliced to the client's.
fn relay_response(
    shared: &Shared,
    mut response: Response<Incoming>,
    backend: &Arc<Backend>,
    vhost: &Vhost,
    pinned: bool,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    in_flight: Option<InFlight>,
) -> Response<ProxyBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    match client_upgrade {
        Some(client_upgrade) if switching => {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            shared.tunnels.spawn(tunnel(client_upgrade, upstream_upgrade, shared.shutdown.clone()));
        }
        _ => remove_hop_by_hop(response.headers_mut(), false),
    }
    if vhost.policy == Policy::Sticky && !pinned && vhost.backends.len() > 1 {
        response.headers_mut().append(header::SET_COOKIE, backend.set_cookie.clone());
    }
    response.map(|body| ProxyBody::upstream(body, in_flight))
}

/// Copies bytes both ways between an upgraded client connection and an upgraded
/// backend connection (WebSocket), until either side closes or the proxy shuts down.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade, shutdown: CancellationToken) {
    let (client, upstream) = tokio::join!(client, upstream);
    let (client, upstream) = match (client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (client, upstream) => {
            tracing::debug!(client = client.is_ok(), upstream = upstream.is_ok(), "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(err) = copied {
                tracing::debug!(%err, "tunnel closed with an error");
            }
        }
        () = shutdown.cancelled() => tracing::debug!("tunnel closed by shutdown"),
    }
}

// === Headers ===

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Rewrites the headers of a request on its way upstream: hop-by-hop headers out
/// (except what an upgrade needs), `X-Forwarded-For`/`-Proto`/`-Host` in, the Host
/// kept as the browser sent it, and the trace context carried on.
pub fn prepare_request_headers(parts: &mut Parts, client_ip: HeaderValue, upgrade: bool) {
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers, upgrade);
    trace_context::propagate(&parts.extensions, headers);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // An absolute-form target names the host; the Host header must agree with it.
    let host = match parts.uri.authority() {
        Some(authority) => {
            // An authority is always a valid header value.
            let value = HeaderValue::from_str(authority.as_str()).expect("an authority is a header value");
            headers.insert(header::HOST, value.clone());
            value
        }
        None => headers.get(header::HOST).cloned().unwrap_or_else(|| HeaderValue::from_static("")),
    };
    append_forwarded_for(headers, client_ip);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(X_FORWARDED_HOST, host);
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: HeaderValue) {
    let mut earlier = headers.get_all(X_FORWARDED_FOR).iter().filter_map(|value| value.to_str().ok()).peekable();
    if earlier.peek().is_none() {
        headers.insert(X_FORWARDED_FOR, client_ip);
        return;
    }
    let mut joined = earlier.collect::<Vec<_>>().join(", ");
    joined.push_str(", ");
    joined.push_str(client_ip.to_str().unwrap_or_default());
    match HeaderValue::try_from(joined) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        Err(_) => {
            headers.insert(X_FORWARDED_FOR, client_ip);
        }
    }
}

/// Removes the headers that belong to one connection (RFC 9110 §7.6.1): the fixed
/// list and every header the `Connection` header names. `keep_upgrade` keeps
/// `Upgrade` for a WebSocket handshake.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none or only `Connection`: one pass over the few names
    // present is cheaper than hashing every name of the list.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|token| !token.eq_ignore_ascii_case("upgrade") || !keep_upgrade)
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, header::TE, header::TRAILER, header::TRANSFER_ENCODING] {
        headers.remove(name);
    }
    if !keep_upgrade {
        headers.remove(header::UPGRADE);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TE
        || name == header::TRAILER
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Whether a request asks to switch protocols (a WebSocket handshake).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|value| {
            value.to_str().is_ok_and(|value| value.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade")))
        })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The value of the sticky cookie, if the browser sent one.
pub fn sticky_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(STICKY_COOKIE)?.strip_prefix('='))
}

// === The proxy's own endpoints ===

fn own_endpoint(parts: &Parts, shared: &Shared) -> Option<Response<ProxyBody>> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    match parts.uri.path() {
        "/healthz" => Some(json_response(StatusCode::OK, &Done::success())),
        "/metrics" => {
            let mut response = Response::new(ProxyBody::full(bytes::Bytes::from(shared.metrics.registry.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            Some(response)
        }
        "/readyz" => {
            let table = shared.table.load();
            let down = table.vhosts().find(|vhost| !vhost.any_up());
            Some(match down {
                None => json_response(StatusCode::OK, &Done::success()),
                Some(vhost) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &ErrorBody::new(format!("no backend of host \"{}\" is up", vhost.name)),
                ),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::request::Builder) -> Parts {
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hop_by_hop_headers_go_and_forwarded_headers_come() {
        let mut parts = parts(
            Request::get("/x")
                .header("host", "Localhost:8080")
                .header("connection", "keep-alive, x-secret-hop")
                .header("keep-alive", "timeout=5")
                .header("x-secret-hop", "1")
                .header("te", "trailers")
                .header("transfer-encoding", "chunked")
                .header("upgrade", "h2c")
                .header("x-forwarded-for", "10.0.0.1")
                .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .header("cookie", "a=b"),
        );
        prepare_request_headers(&mut parts, HeaderValue::from_static("127.0.0.1"), false);
        let headers = &parts.headers;
        for gone in ["connection", "keep-alive", "x-secret-hop", "te", "transfer-encoding", "upgrade"] {
            assert!(!headers.contains_key(gone), "{gone} should be removed");
        }
        assert_eq!(headers["host"], "Localhost:8080");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "Localhost:8080");
        assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(headers["cookie"], "a=b");
    }

    #[test]
    fn an_upgrade_keeps_what_the_handshake_needs() {
        let mut parts = parts(
            Request::get("/ws")
                .header("host", "a")
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(wants_upgrade(&parts.headers));
        prepare_request_headers(&mut parts, HeaderValue::from_static("::1"), true);
        assert_eq!(parts.headers["connection"], "upgrade");
        assert_eq!(parts.headers["upgrade"], "websocket");
        assert_eq!(parts.headers["x-forwarded-for"], "::1");
    }

    #[test]
    fn the_sticky_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; weaprous_backend=abc; weaprous_session=x"));
        assert_eq!(sticky_cookie(&headers), Some("abc"));
        headers.clear();
        headers.append(header::COOKIE, HeaderValue::from_static("weaprous_backendx=1"));
        assert_eq!(sticky_cookie(&headers), None);
    }
}
