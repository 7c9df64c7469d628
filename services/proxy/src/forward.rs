//! Forwarding one request to a backend and relaying its answer.
//!
//! It orchestrates the two sessions of an exchange: the client's
//! `DownstreamSession` and the backend's `UpstreamSession`, each of which owns its
//! buffers and deadlines; here is only what goes from one to the other, and when.
//!
//! The request head (rewritten by [`crate::server`] into the downstream session's
//! request buffer) and the body bytes that came with it go to the backend in one write; the rest of the body follows as it arrives. The response head
//! is rewritten, and goes to the client in one write with the body bytes that came
//! with it; the rest of the body follows as it arrives, so an event stream reaches the
//! browser event by event. A `101 Switching Protocols` turns the two connections into
//! a tunnel (WebSocket).
//!
//! Retries: the policy's pick is tried first, then the vhost's other backends
//! ([`Vhost::attempts`]).
//! - When connecting fails (refused, timed out), nothing was sent: the request goes
//!   to the next backend, body and all, and the backend is marked down (unless the
//!   failure was the proxy's own: no local port left).
//! - When a pooled connection turns out to have been closed by the backend (writing
//!   to it fails; or, for an idempotent request, it ends without a byte of answer),
//!   the request goes again on a new connection to the same backend, if all of it is
//!   still at hand.
//! - When a backend fails before answering, an idempotent request whose body is at
//!   hand goes to the next backend. Nothing else is retried, because the backend may
//!   already have acted on it: the client gets a 502.
//!
//! Once the first byte of a final answer has gone to the client, a failure can only
//! close the connection: the client sees the message cut short.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::balance::{Backend, InFlight, Pick, Vhost};
use crate::body::{RequestBody, ResponseBody};
use crate::config::vhost::Policy;
use crate::downstream::{self, DownstreamSession, Next, Watched};
use crate::error::ProxyError;
use crate::h1::head::{Downstream, Framing, ResponseHead};
use crate::metrics::EdgeRequest;
use crate::shared::Worker;
use crate::upstream::{self, HeadRead, UpstreamScratch, UpstreamSession};

/// How much of a streamed body is read at a time.
const RELAY_CHUNK: usize = 16 * 1024;
/// The same for an event stream, which idles between small events for hours.
const EVENT_CHUNK: usize = 2 * 1024;

/// A request ready to forward: where to, and what about it matters once its head is
/// gone from the buffer. The head for the backend is in the downstream session.
pub(crate) struct Forwarding {
    pub(crate) vhost: Arc<Vhost>,
    pub(crate) pick: Pick,
    pub(crate) request: RequestInfo,
    pub(crate) span: tracing::Span,
}

/// What the forwarding needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo {
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) http10: bool,
    pub(crate) head: bool,
    pub(crate) idempotent: bool,
    pub(crate) upgrade: bool,
    pub(crate) expect_continue: bool,
    /// Goes to the backend on a connection of its own, never pooled: a WebSocket
    /// handshake, or an event stream of a configured path.
    pub(crate) own_connection: bool,
    /// The client came over TLS.
    pub(crate) https: bool,
}

/// Forwards a prepared request and answers the client; says whether the client
/// connection goes on.
/// `scratch`: the memory the upstream sessions read into, kept by the connection.
pub(crate) async fn forward(
    client: &mut DownstreamSession,
    scratch: &mut UpstreamScratch,
    worker: &Worker,
    forwarding: Forwarding,
) -> Next {
    let Forwarding { vhost, pick, request, span: _ } = forwarding;
    // In flight until the answer is relayed; counted when its head goes out.
    let mut edge = vhost.stats.begin(worker.index);
    let mut body = RequestBody::new(request.framing, worker.shared.settings.max_body_bytes);
    if let Err(error) = client.take_buffered(&mut body) {
        edge.answered(error.status().as_u16());
        return client.refuse(error, false).await;
    }
    // The whole request is in the session's request buffer, so it can be sent again.
    let replayable = body.is_done();

    let mut failure = ProxyError::AllDown;
    let mut attempts = vhost.attempts(pick.first);
    let mut current = attempts.next();
    let mut fresh_only = false;
    while let Some(backend) = current {
        let reuse = !request.own_connection && !fresh_only;
        let started = Instant::now();
        let upstream = match UpstreamSession::connect(worker, scratch, backend.addr, reuse, started).await {
            Ok(upstream) => upstream,
            Err(err) => {
                note_connect_failure(backend, &vhost, &err);
                failure = ProxyError::AllDown;
                current = attempts.next();
                fresh_only = false;
                continue;
            }
        };
        let reused = upstream.is_reused();
        let in_flight = (vhost.policy == Policy::LeastConn).then(|| InFlight::start(backend));
        let set_cookie = sticky_cookie(&vhost, pick, backend);
        let hsts = if request.https { vhost.hsts.as_deref() } else { None };
        let exchange = Exchange { request: &request, backend, set_cookie, hsts, in_flight, started, edge: &mut edge };
        match exchange.run(client, worker, upstream, &mut body).await {
            Ok(next) => return next,
            Err(Failure::Abort) => return Next::Close,
            Err(Failure::Refused(error)) => {
                edge.answered(error.status().as_u16());
                return client.refuse(error, false).await;
            }
            Err(Failure::TimedOut) => {
                let error = ProxyError::UpstreamTimeout(worker.shared.settings.upstream_timeout);
                edge.answered(error.status().as_u16());
                return client.refuse(error, request.keep_alive && body.is_done()).await;
            }
            Err(Failure::Backend { nothing_back, write_failed, cause }) => {
                // A write that fails means the backend never had the whole request; an
                // end without a byte of answer may follow a request it acted on, so
                // only an idempotent one goes again.
                let stale = reused && nothing_back && (write_failed || request.idempotent);
                if stale && replayable && !fresh_only {
                    tracing::debug!(backend = %backend.addr, %cause, "pooled connection closed; sending again");
                    fresh_only = true;
                    continue;
                }
                tracing::warn!(backend = %backend.addr, vhost = &*vhost.name, %cause, "backend failed");
                failure = ProxyError::UpstreamFailed;
                if !(replayable && request.idempotent) {
                    break;
                }
                current = attempts.next();
                fresh_only = false;
            }
        }
    }
    edge.answered(failure.status().as_u16());
    client.refuse(failure, request.keep_alive && body.is_done()).await
}

/// Why an exchange with a backend ended without a (whole) answer for the client.
enum Failure {
    /// Close the client connection without another word: the client left or went
    /// silent mid-body, or part of the answer has gone out already.
    Abort,
    /// The client's body broke the rules (too large, bad chunks).
    Refused(ProxyError),
    /// No response head within the upstream timeout.
    TimedOut,
    /// The backend closed, reset or garbled the exchange before the client got any
    /// of the answer. `nothing_back`: not a single byte came back; `write_failed`:
    /// sending the request failed.
    Backend { nothing_back: bool, write_failed: bool, cause: io::Error },
}

/// One try of a request on one backend.
struct Exchange<'a, 'v> {
    request: &'a RequestInfo,
    backend: &'a Backend,
    /// The sticky pin to hand out with the response.
    set_cookie: Option<&'a [u8]>,
    /// The `Strict-Transport-Security` value to send.
    hsts: Option<&'a [u8]>,
    /// Counts the request against its backend until the body is relayed.
    in_flight: Option<InFlight>,
    /// When the try began, for the upstream deadline and the latency metric.
    started: Instant,
    /// The request at the edge, counted when its answer's head is known.
    edge: &'a mut EdgeRequest<'v>,
}

/// What the response head says about relaying the rest.
struct Answer {
    code: u16,
    head_len: usize,
    body: ResponseBody,
    /// The backend keeps the connection for another request.
    upstream_keep_alive: bool,
    close_client: bool,
    /// De-chunk the body (an HTTP/1.0 client cannot read chunks).
    decode: bool,
    /// An event stream, closed at once when the proxy shuts down.
    event_stream: bool,
    /// A 1xx other than 101: relayed (or not), then the real head follows.
    interim: bool,
}

/// How sending the rest of a request body ended.
enum Streamed {
    /// All of it is with the backend.
    Whole,
    /// The backend began to answer while the proxy waited for the client; the rest
    /// can follow after an interim answer.
    BackendSpoke,
    /// Sending stopped mid-write (the backend answered or closed): the rest never goes.
    Stopped,
}

impl Exchange<'_, '_> {
    async fn run(
        self,
        client: &mut DownstreamSession,
        worker: &Worker,
        mut upstream: UpstreamSession<'_>,
        body: &mut RequestBody,
    ) -> Result<Next, Failure> {
        let request = self.request;
        let settings = &worker.shared.settings;
        if let Err(cause) = upstream.send(client.request()).await {
            return Err(Failure::Backend { nothing_back: true, write_failed: true, cause });
        }
        let mut sent_whole = body.is_done();
        let mut stopped = false;
        let mut continued = false;
        let mut relayed_interim = false;
        let answer = loop {
            let client_keep_alive = request.keep_alive && sent_whole && !client.shutdown_started();
            let parsed = match upstream
                .parse_head(request.head, |response| self.plan(response, client_keep_alive, client.out()))
            {
                Ok(Some(planned)) => Some(planned),
                Ok(None) => None,
                Err(invalid) => Some(Err(io::Error::other(invalid))),
            };
            match parsed {
                Some(Ok(answer)) if answer.interim => {
                    // The proxy answered `Expect` itself; other interim answers (103)
                    // go to clients that can read them.
                    if answer.code != 100 && !request.http10 && !client.write_out().await {
                        return Err(Failure::Abort);
                    }
                    upstream.drop_head(answer.head_len);
                    relayed_interim = true;
                    continue;
                }
                Some(Ok(answer)) => break answer,
                Some(Err(cause)) => return Err(Failure::Backend { nothing_back: false, write_failed: false, cause }),
                None => {}
            }
            if upstream.nothing_received() && !sent_whole && !stopped {
                // The backend has said nothing yet: send more of the body.
                if request.expect_continue && !continued && client.unread().is_empty() {
                    // The client waits for this before it sends the body (RFC 9110 §10.1.1).
                    if !client.send_continue().await {
                        return Err(Failure::Abort);
                    }
                    continued = true;
                }
                match stream_body(body, client, &mut upstream).await? {
                    Streamed::Whole => sent_whole = true,
                    Streamed::BackendSpoke => {}
                    Streamed::Stopped => stopped = true,
                }
                // The deadline for the answer runs from the end of the upload.
                upstream.restart_deadline(settings.upstream_timeout);
            }
            let read = upstream.read_head().await;
            let nothing_back = upstream.nothing_received() && !relayed_interim;
            match read {
                HeadRead::Read => {}
                HeadRead::TimedOut => return Err(Failure::TimedOut),
                HeadRead::Failed(cause) => return Err(Failure::Backend { nothing_back, write_failed: false, cause }),
            }
        };
        let answered = Instant::now();
        self.backend.stats.answered(worker.index, answered - self.started);
        client.answered(answer.code);
        self.edge.answered(answer.code);
        if kit::telemetry::exporting() {
            let span = tracing::Span::current();
            span.record("http.response.status_code", i64::from(answer.code));
            if answer.code >= 500 {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", answer.code.to_string());
            }
        }
        if !sent_whole {
            // The client is still sending a body nobody will read.
            client.linger_on_close();
        }

        if answer.code == 101 {
            if !request.upgrade {
                let cause = io::Error::other("101 without an upgrade request");
                return Err(Failure::Backend { nothing_back: false, write_failed: false, cause });
            }
            return Ok(upstream.tunnel(client, answer.head_len).await);
        }
        let relayed = relay_body(client, &mut upstream, &answer, settings.idle_timeout).await?;
        let reusable = relayed.clean && answer.upstream_keep_alive && sent_whole && !stopped;
        if reusable && !request.own_connection {
            // A body relayed in one write ended when its head came; a longer one, now.
            let idle_since = if relayed.reads == 0 { answered } else { Instant::now() };
            upstream.release(&worker.pool, self.backend.addr, idle_since);
        }
        drop(self.in_flight);
        Ok(client.next(!answer.close_client))
    }

    /// Reads what a response head means for the relay, and writes the head the client
    /// gets into `out`. A transfer coding an HTTP/1.0 client cannot be given is an
    /// error.
    fn plan(&self, response: &ResponseHead<'_>, client_keep_alive: bool, out: &mut Vec<u8>) -> io::Result<Answer> {
        let request = self.request;
        out.clear();
        let interim = response.code < 200 && response.code != 101;
        let decode = response.framing == Framing::Chunked && request.http10;
        if request.http10 && response.has_codings() {
            return Err(io::Error::other("a transfer coding an HTTP/1.0 client cannot read"));
        }
        let close_client = !client_keep_alive || response.framing == Framing::UntilClose || decode;
        let rewrite = if interim || response.code == 101 {
            Downstream::default()
        } else {
            Downstream {
                set_cookie: self.set_cookie,
                hsts: self.hsts,
                close: close_client,
                keep_alive_10: request.http10 && !close_client,
                transfer_encoding: !decode,
            }
        };
        response.write_downstream(&rewrite, out);
        Ok(Answer {
            code: response.code,
            head_len: response.len,
            body: ResponseBody::new(response.framing),
            upstream_keep_alive: response.keep_alive,
            close_client,
            decode,
            event_stream: response.is_event_stream(),
            interim,
        })
    }
}

/// Sends the rest of the request body as the client sends it, until it is all sent or
/// the backend speaks first.
async fn stream_body(
    body: &mut RequestBody,
    client: &mut DownstreamSession,
    upstream: &mut UpstreamSession<'_>,
) -> Result<Streamed, Failure> {
    while !body.is_done() {
        match client.read_body_or(upstream.spoke()).await {
            downstream::BodyRead::More => {}
            downstream::BodyRead::Other(()) => return Ok(Streamed::BackendSpoke),
            downstream::BodyRead::Gone => return Err(Failure::Abort),
        }
        let used = body.advance(client.unread()).map_err(Failure::Refused)?;
        let sent = upstream.send_body(&client.unread()[..used]).await;
        client.consume(used);
        if !sent {
            return Ok(Streamed::Stopped);
        }
    }
    Ok(Streamed::Whole)
}

/// How a response body was relayed.
struct Relayed {
    /// The message ended where its framing said, with nothing after it.
    clean: bool,
    /// Reads from the backend after the head's.
    reads: usize,
}

/// Relays a response body: the head in the client's `out` and the body bytes that
/// came with it in one write, then the rest as it arrives. Any failure here aborts:
/// the client has part of the answer already.
async fn relay_body(
    client: &mut DownstreamSession,
    upstream: &mut UpstreamSession<'_>,
    answer: &Answer,
    idle_timeout: Duration,
) -> Result<Relayed, Failure> {
    let mut body = answer.body.clone();
    let feed = body.feed(&upstream.received()[answer.head_len..], client.out(), answer.decode);
    let mut clean = feed.map_err(|_| Failure::Abort)?;
    if !client.write_out().await {
        return Err(Failure::Abort);
    }
    let chunk = if answer.event_stream {
        client.keep_small();
        upstream.keep_small();
        EVENT_CHUNK
    } else {
        RELAY_CHUNK
    };
    let mut reads = 0;
    let mut watch_client = true;
    while !body.is_done() {
        let watched = client.watch(watch_client, answer.event_stream, RELAY_CHUNK);
        let read = match upstream.read_body_or(chunk, idle_timeout, watched).await {
            upstream::BodyRead::Read(read) => read,
            // The client sent more (a pipelined request, kept) or left.
            upstream::BodyRead::Other(Watched::Sent { watch_more }) => {
                watch_client = watch_more;
                continue;
            }
            upstream::BodyRead::Other(Watched::Gone) => return Err(Failure::Abort),
            upstream::BodyRead::Other(Watched::Shutdown) => {
                tracing::debug!("event stream closed by shutdown");
                return Err(Failure::Abort);
            }
            upstream::BodyRead::TimedOut => {
                tracing::debug!(idle_secs = idle_timeout.as_secs(), "backend silent mid-body; closing");
                return Err(Failure::Abort);
            }
        };
        reads += 1;
        match read {
            Ok(0) if body.until_close() => break,
            Ok(0) | Err(_) => {
                // Cut short: the client sees the connection close before the end.
                tracing::debug!(backend_code = answer.code, "backend closed mid-body");
                return Err(Failure::Abort);
            }
            Ok(_) => {}
        }
        let out = client.out();
        out.clear();
        clean &= body.feed(upstream.received(), out, answer.decode).map_err(|_| Failure::Abort)?;
        if !client.write_out().await {
            return Err(Failure::Abort);
        }
    }
    Ok(Relayed { clean: clean && !body.until_close(), reads })
}

fn note_connect_failure(backend: &Backend, vhost: &Vhost, err: &io::Error) {
    if err.kind() == io::ErrorKind::AddrNotAvailable {
        // Our side, not the backend's: it stays in rotation.
        tracing::warn!(backend = %backend.addr, cause = %err, "no local port to connect from");
    } else if backend.mark_down() {
        tracing::warn!(backend = %backend.addr, vhost = &*vhost.name, cause = %err, "backend down");
    }
}

/// The sticky pin to set: under `sticky`, when the browser is not pinned to this
/// backend yet (and there is a choice at all).
fn sticky_cookie<'a>(vhost: &Vhost, pick: Pick, backend: &'a Backend) -> Option<&'a [u8]> {
    let pinned_here = pick.pinned && std::ptr::eq(backend, &*vhost.backends[pick.first]);
    (vhost.policy == Policy::Sticky && !pinned_here && vhost.backends.len() > 1).then(|| backend.set_cookie.as_bytes())
}
