//! One client connection's request loop: its `DownstreamSession` reads a request
//! head, this module decides what it leads to, and the request is answered, refused,
//! or forwarded ([`crate::forward`]); then the connection waits for the next one.
//!
//! The head is parsed where it lies in the session's buffer, and everything that
//! needs it (routing, the policy's pick, the span, the head rewritten for the
//! backend) is done in one pass before any IO, so a request costs one parse and no
//! allocation in the common case.
//!
//! The proxy's own `/healthz`, `/readyz` and `/metrics` answer only for a Host that no
//! block names, before the default vhost: `curl http://proxy:8080/healthz` from inside
//! a compose network reaches them, while `localhost:8080/healthz` is a peer's. The
//! `metrics_listen` address (the private module `admin`) answers them whatever the Host.

use std::net::SocketAddr;
use std::sync::Arc;

use wire::api::{Done, ErrorBody};

use crate::access_log::AccessEntry;
use crate::balance::STICKY_COOKIE;
use crate::config::vhost::Policy;
use crate::downstream::{DownstreamSession, Head, HeadContext, Next};
use crate::error::ProxyError;
use crate::forward::{self, Forwarding, RequestInfo};
use crate::h1::head::{self, Framing, HostField, RequestHead};
use crate::routing::{self, Route};
use crate::shared::{Shared, Worker};
use crate::stream::ClientStream;
use crate::trace_context;
use crate::upstream::UpstreamScratch;

/// What the head of a request leads to.
enum Prepared {
    Forward(Forwarding),
    /// The proxy answers itself; the reply is in `out`.
    Answered {
        keep_alive: bool,
        status: u16,
    },
}

/// A request refused before forwarding.
struct Refused {
    error: ProxyError,
    /// Keep the connection: the request had no body left unread and asked for it.
    keep_alive: bool,
}

/// Serves one client connection until it closes, times out, or the proxy shuts down.
pub(crate) async fn serve_connection(stream: ClientStream, remote: SocketAddr, worker: Arc<Worker>) {
    let mut session = DownstreamSession::new(stream, remote, &worker);
    let mut scratch = UpstreamScratch::new();
    while serve_one(&mut session, &mut scratch, &worker).await == Next::KeepAlive {
        scratch.trim();
    }
    session.finish().await;
}

/// Reads one request head and answers the request, then writes its access-log line.
async fn serve_one(session: &mut DownstreamSession, scratch: &mut UpstreamScratch, worker: &Worker) -> Next {
    let read = session.read_request(|request, context| (prepare(worker, request, context), AccessEntry::of(request)));
    let (prepared, access) = match read.await {
        Head::Read(read) => read,
        Head::Refused(error) => return session.refuse(error, false).await,
        Head::Gone => return Next::Close,
    };
    let (next, span) = match prepared {
        Ok(Prepared::Forward(forwarding)) => {
            let span = forwarding.span.clone();
            let forwarded = forward::forward(session, scratch, worker, forwarding);
            (tracing::Instrument::instrument(forwarded, span.clone()).await, span)
        }
        Ok(Prepared::Answered { keep_alive, status }) => {
            session.answered(status);
            let next = if session.write_out().await { session.next(keep_alive) } else { Next::Close };
            (next, tracing::Span::none())
        }
        Err(Refused { error, keep_alive }) => (session.refuse(error, keep_alive).await, tracing::Span::none()),
    };
    let status = session.take_status();
    if let Some(access) = access {
        span.in_scope(|| access.log(status, session.client_ip()));
    }
    next
}

/// Everything a request head decides: the vhost and backend, the span, and the head
/// the backend will get (into the context's `request`), or the proxy's own answer
/// (into its `out`). No IO.
fn prepare(worker: &Worker, request: &RequestHead<'_>, context: HeadContext<'_>) -> Result<Prepared, Refused> {
    let HeadContext { request: upstream_head, out, host: lowercase, client_ip, closing, https } = context;
    let shared = &worker.shared;
    let settings = &shared.settings;
    // A refused request whose body was not read cannot be followed by another.
    let keep_alive = request.keep_alive && request.framing == Framing::Empty;
    let refuse = |error| Refused { error, keep_alive };

    let raw_host = match request.host {
        HostField::One(host) => host,
        HostField::Missing => return Err(refuse(ProxyError::NoHost)),
        HostField::Several => return Err(refuse(ProxyError::BadHost("more than one Host header"))),
        HostField::Unreadable => return Err(refuse(ProxyError::BadHost("the Host header is not visible ASCII"))),
    };
    let host = routing::normalize_host(raw_host, lowercase).map_err(refuse)?;
    let vhost = {
        let table = shared.tables[worker.index].load();
        let mut route = table.route(host);
        if https
            && matches!(route, Route::Unmatched(_))
            && let (name, Some(port)) = routing::split_host_port(host)
            && port.parse() == Ok(settings.tls_port)
        {
            let as_plain = format!("{name}:{}", settings.plain_port);
            if let Route::Vhost(vhost) = table.route(&as_plain) {
                route = Route::Vhost(vhost);
            }
        }
        match route {
            Route::Vhost(vhost) => vhost.clone(),
            Route::Unmatched(default) => {
                let keep_alive = keep_alive && !closing;
                if let Some(status) = own_endpoint(request, shared, out, keep_alive) {
                    return Ok(Prepared::Answered { keep_alive, status });
                }
                default.ok_or_else(|| refuse(ProxyError::UnknownVhost))?.clone()
            }
        }
    };
    // A refusal from here on is the vhost's answer, counted in its metrics.
    let refuse_for_vhost = |error: ProxyError| {
        vhost.stats.begin(worker.index).answered(error.status().as_u16());
        refuse(error)
    };
    if !vhost.paths.allows(request.path()) {
        return Err(refuse_for_vhost(ProxyError::PathDenied));
    }
    if vhost.https_redirect && !https {
        // The same URL over HTTPS; `308` keeps the method and the body.
        let (name, _) = routing::split_host_port(host);
        let port = if settings.tls_port == 443 { String::new() } else { format!(":{}", settings.tls_port) };
        let location = format!("https://{name}{port}{}", request.path());
        let keep_alive = keep_alive && !closing;
        out.clear();
        head::write_response(out, 308, &[("location", &location)], b"", !request.is_head(), !keep_alive);
        vhost.stats.begin(worker.index).answered(308);
        return Ok(Prepared::Answered { keep_alive, status: 308 });
    }
    if let Framing::Length(length) = request.framing
        && length > settings.max_body_bytes
    {
        return Err(refuse_for_vhost(ProxyError::BodyTooLarge(settings.max_body_bytes)));
    }
    let sticky_id = match vhost.policy {
        Policy::Sticky => request.cookie(STICKY_COOKIE),
        _ => None,
    };
    let pick = vhost.pick(sticky_id).ok_or_else(|| refuse_for_vhost(ProxyError::NoBackend))?;
    let event_stream = request.method == "GET"
        && request.accepts_event_stream
        && settings.stream_paths.iter().any(|path| request.path().split('?').next() == Some(path.as_str()));

    let (span, trace) = trace_context::request_span(request, raw_host);
    let rewrite = head::Upstream {
        client_ip,
        https,
        trace: trace.as_ref().map(|(parent, state)| (parent.as_str(), state.as_deref())),
        // The backend closes a stream's connection when the stream ends (so its side
        // keeps the TIME_WAIT, not the proxy's ports).
        close: event_stream,
    };
    upstream_head.clear();
    request.write_upstream(&rewrite, upstream_head);
    let info = RequestInfo {
        framing: request.framing,
        keep_alive: request.keep_alive,
        http10: request.http10,
        head: request.is_head(),
        idempotent: request.is_idempotent(),
        upgrade: request.upgrade.is_some(),
        expect_continue: request.expect_continue,
        own_connection: event_stream || request.upgrade.is_some(),
        https,
    };
    Ok(Prepared::Forward(Forwarding { vhost, pick, request: info, span }))
}

/// The proxy's own endpoints; writes the reply into `out` (saying `Connection: close`
/// unless `keep_alive`) and returns its status, or `None` when the path is not one of
/// them.
fn own_endpoint(request: &RequestHead<'_>, shared: &Shared, out: &mut Vec<u8>, keep_alive: bool) -> Option<u16> {
    let (code, content_type, body) = own_answer(request.method, request.path(), request.header("accept"), shared)?;
    out.clear();
    let content_type = ("content-type", content_type);
    head::write_response(out, code.as_u16(), &[content_type], &body, !request.is_head(), !keep_alive);
    Some(code.as_u16())
}

/// The answer of the proxy's own `/healthz`, `/readyz` or `/metrics` (in the format
/// `accept` asks for) to a `GET` or `HEAD`: status, content type and body; `None`
/// for any other request.
pub(crate) fn own_answer(
    method: &str,
    path: &str,
    accept: Option<&str>,
    shared: &Shared,
) -> Option<(http::StatusCode, &'static str, Vec<u8>)> {
    use http::StatusCode;
    if method != "GET" && method != "HEAD" {
        return None;
    }
    let json = "application/json";
    Some(match path.split('?').next().unwrap_or_default() {
        "/healthz" => (StatusCode::OK, json, serde_json::to_vec(&Done::success()).unwrap_or_default()),
        "/metrics" => {
            let (content_type, text) = shared.metrics.registry.render_for(accept);
            (StatusCode::OK, content_type, text.into_bytes())
        }
        "/readyz" => {
            let table = shared.table();
            match table.vhosts().find(|vhost| !vhost.any_up()) {
                None => (StatusCode::OK, json, serde_json::to_vec(&Done::success()).unwrap_or_default()),
                Some(vhost) => {
                    let message = format!("no backend of host \"{}\" is up", vhost.name);
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json,
                        serde_json::to_vec(&ErrorBody::new(message)).unwrap_or_default(),
                    )
                }
            }
        }
        _ => return None,
    })
}
