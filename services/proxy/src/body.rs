//! Body types: what the proxy answers with, and what it sends upstream.
//!
//! Both stream frame by frame: nothing is buffered, so an SSE event reaches the
//! browser as soon as the backend writes it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::balance::InFlight;

/// Errors of a body sent upstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: relayed from a backend, or made by the proxy.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Upstream {
        body: Incoming,
        /// Keeps the request counted against its backend until the body is done.
        _in_flight: Option<InFlight>,
    },
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        Self { kind: Kind::Full(Some(bytes)) }
    }

    pub fn upstream(body: Incoming, in_flight: Option<InFlight>) -> Self {
        Self { kind: Kind::Upstream { body, _in_flight: in_flight } }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Kind::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

/// A request body sent to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    Empty,
    Stream(StreamBody),
}

/// A client's request body on its way upstream, cut off past the size limit.
///
/// It waits in a shared slot until the connection to the backend polls it, so when
/// connecting fails nothing was read and [`Replay`] can hand the body to the next
/// backend.
#[derive(Debug)]
pub struct StreamBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    body: Option<Incoming>,
    read: u64,
    limit: u64,
    hint: SizeHint,
}

/// Gives out the request body again while nothing of it has been sent.
#[derive(Debug)]
pub struct Replay {
    slot: Arc<Mutex<Option<Incoming>>>,
    limit: u64,
    hint: SizeHint,
}

/// The request body went past `max_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("request body is larger than {0} bytes")]
pub struct TooLarge(pub u64);

impl UpstreamBody {
    /// Wraps a client's body; the [`Replay`] is `None` for an empty body, which can
    /// always be sent again.
    pub fn new(body: Incoming, limit: u64) -> (Self, Option<Replay>) {
        if body.is_end_stream() {
            return (Self::Empty, None);
        }
        let replay = Replay { hint: body.size_hint(), slot: Arc::new(Mutex::new(Some(body))), limit };
        (replay.body().unwrap_or(Self::Empty), Some(replay))
    }
}

impl Replay {
    /// The body again, if no connection has started reading it.
    pub fn body(&self) -> Option<UpstreamBody> {
        let untouched = self.slot.lock().map(|slot| slot.is_some()).unwrap_or(false);
        untouched.then(|| {
            UpstreamBody::Stream(StreamBody {
                slot: self.slot.clone(),
                body: None,
                read: 0,
                limit: self.limit,
                hint: self.hint,
            })
        })
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let stream = match self.get_mut() {
            UpstreamBody::Empty => return Poll::Ready(None),
            UpstreamBody::Stream(stream) => stream,
        };
        if stream.body.is_none() {
            // A poisoned slot means a panic elsewhere mid-take; the body is gone either way.
            stream.body = stream.slot.lock().ok().and_then(|mut slot| slot.take());
        }
        let Some(body) = stream.body.as_mut() else {
            return Poll::Ready(Some(Err("request body was already sent".into())));
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    stream.read += data.len() as u64;
                    if stream.read > stream.limit {
                        return Poll::Ready(Some(Err(Box::new(TooLarge(stream.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Stream(stream) => stream.body.as_ref().is_some_and(Incoming::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Stream(stream) => stream.hint,
        }
    }
}
