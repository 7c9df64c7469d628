//! `GET /peer-stream`: the tracker's push to one peer, as Server-Sent Events.
//!
//! A peer holds one stream open. It carries new channel messages for the channels
//! where the peer hosts members (with the message id as the event id), and membership
//! and presence changes. A peer that reconnects with `Last-Event-ID` first gets the
//! messages it missed, from the database, then the live ones; so does a peer that
//! fell too far behind the live feed, which the tracker disconnects to make it
//! resume that way.
//!
//! With several tracker replicas on PostgreSQL, every replica's feed carries every
//! replica's messages (its follower reads them from the database), and ids are the
//! database's: a peer may resume on any replica.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use kit::error::ApiError;
use kit::sign::ServiceCall;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use wire::api::PeerRegistration;
use wire::events::Event;

use crate::state::AppState;
use crate::store::{Push, pushed_json};
use wire::addr::PeerAddr;
use wire::routes::tracker;

/// How many replayed messages one database read takes.
const REPLAY_PAGE: u64 = 1000;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(tracker::PEER_STREAM, get(peer_stream))
}

async fn peer_stream(
    State(state): State<AppState>,
    _service: ServiceCall,
    headers: HeaderMap,
    query: Result<Query<PeerRegistration>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(peer) =
        query.map_err(|err| ApiError::bad_request(format!("expected ?ip=IP&port=PORT: {}", err.body_text())))?;
    let addr = PeerAddr::parse(&peer.ip, peer.port).map_err(ApiError::BadRequest)?;
    if !state.store.is_live(&addr).await? {
        return Err(ApiError::NotFound(format!("peer {addr} is not in the pool: register first")));
    }
    let resume_from = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let (sender, receiver) = mpsc::channel(256);
    tracing::info!(peer = %addr, ?resume_from, "peer stream opened");
    // Subscribed before the reply goes out: whatever the peer asks for once it sees
    // the stream open (the ended sessions) cannot miss what happens meanwhile.
    let live = state.store.subscribe();
    tokio::spawn(feed(state, addr, resume_from, live, sender));
    Ok(Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn feed(
    state: AppState,
    peer: PeerAddr,
    resume_from: Option<u64>,
    // Subscribed before the backlog is read, so nothing falls between the two.
    mut live: broadcast::Receiver<Arc<Push>>,
    sender: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    state.metrics.peer_streams.inc();
    let _open = scopeguard(state.metrics.peer_streams.clone());
    let mut last = match resume_from {
        Some(id) => id,
        None => match state.store.last_message_id().await {
            Ok(id) => id,
            Err(err) => {
                tracing::error!(%err, "peer stream failed to start");
                return;
            }
        },
    };
    if resume_from.is_some() {
        match replay(&state, &peer, &mut last, &sender).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::error!(%err, %peer, "peer stream replay failed");
                return;
            }
        }
    }
    loop {
        let push = tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = sender.closed() => return,
            push = live.recv() => push,
        };
        match push {
            Ok(push) => {
                if let Some(id) = push.id {
                    if id <= last {
                        continue;
                    }
                    last = id;
                }
                if push.is_for(&peer) {
                    if sender.send(Ok(sse_event(push.id, push.event.name(), push.json()))).await.is_err() {
                        return;
                    }
                    state.metrics.events_pushed.inc();
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(%peer, missed, "peer fell behind the live feed; closing its stream so it resumes");
                return;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Sends the stored messages after `last` that concern `peer`. Returns false when
/// the peer went away.
async fn replay(
    state: &AppState,
    peer: &PeerAddr,
    last: &mut u64,
    sender: &mpsc::Sender<Result<SseEvent, Infallible>>,
) -> anyhow::Result<bool> {
    let mut hosts = HashMap::new();
    loop {
        let page = state.store.messages_since(*last, REPLAY_PAGE).await?;
        let Some(newest) = page.last() else { return Ok(true) };
        *last = newest.id;
        for message in page {
            let concerns_peer = match hosts.get(&message.channel) {
                Some(concerns_peer) => *concerns_peer,
                None => {
                    let concerns_peer = state.store.hosts_of_members(&message.channel).await?.contains(peer);
                    hosts.insert(message.channel.clone(), concerns_peer);
                    concerns_peer
                }
            };
            if concerns_peer {
                let id = message.id;
                let event = Event::ChannelMessage(message);
                if sender.send(Ok(sse_event(Some(id), event.name(), &pushed_json(&event, None)))).await.is_err() {
                    return Ok(false);
                }
            }
        }
    }
}

/// One SSE frame: `json` is the [`Push::json`] of the event, which carries the trace
/// context of the request that caused it, so the peer's handling joins that trace.
fn sse_event(id: Option<u64>, name: &str, json: &str) -> SseEvent {
    let sse = SseEvent::default().event(name);
    let sse = match id {
        Some(id) => sse.id(id.to_string()),
        None => sse,
    };
    sse.data(json)
}

/// Decrements the open-streams gauge when a stream's feed ends, however it ends.
fn scopeguard(gauge: prometheus_client::metrics::gauge::Gauge) -> impl Drop {
    struct Closing(prometheus_client::metrics::gauge::Gauge);
    impl Drop for Closing {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    Closing(gauge)
}
