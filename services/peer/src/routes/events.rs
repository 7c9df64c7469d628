//! `GET /events`: the logged-in user's Server-Sent Events.
//!
//! A stream starts from the client's `Last-Event-ID`: first the events it missed
//! (or one `reset` when it missed too many), then live ones. Only events the user may
//! see are sent: their own direct messages, messages of channels they joined, and
//! presence and membership changes. A comment every few seconds (`sse_keepalive_secs`)
//! keeps proxies from closing an idle stream. A browser that closes the stream is
//! noticed at once when the stream has its connection to itself (served without
//! hyper: `kit::http::serve_with_streams`), else at the next comment (hyper does not
//! read while it streams); either ends its presence as active.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::stream::{self, Stream, StreamExt};
use kit::error::ApiError;
use kit::http::OwnConnection;
use kit::session::TokenKeys;
use tokio::sync::broadcast::error::RecvError;
use wire::events::Event;
use wire::names::Username;

use crate::hosting::{Session, StreamGuard};
use crate::hub::{Audience, HubEvent};
use crate::sessions::Sessions;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(state): State<AppState>,
    session: Session,
    own_connection: Option<Extension<OwnConnection>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let last_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let resume = state.hub.resume(last_id);
    let feed = Feed {
        _open: StreamGuard::open(&state, session.username(), own_connection.is_some())?,
        revocations: state.tokens.revocations(),
        tokens: state.tokens.clone(),
        sid: session.claims.sid,
        user: session.claims.sub,
        sessions: state.sessions.clone(),
        reset_first: resume.gap,
        backlog: resume.backlog.into(),
        live: resume.live,
    };
    let shutdown = state.shutdown.clone().cancelled_owned();
    let keep_alive = state.sse_keepalive;
    Ok(Sse::new(feed.into_stream().take_until(shutdown)).keep_alive(KeepAlive::new().interval(keep_alive)))
}

struct Feed {
    _open: StreamGuard,
    /// The session the stream belongs to: it ends when the session is revoked.
    sid: String,
    tokens: TokenKeys,
    /// [`TokenKeys::revocations`] when the session was last seen valid.
    revocations: u64,
    user: Username,
    sessions: Sessions,
    reset_first: bool,
    backlog: VecDeque<Arc<HubEvent>>,
    live: tokio::sync::broadcast::Receiver<Arc<HubEvent>>,
}

impl Feed {
    fn into_stream(self) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        stream::unfold(self, |mut feed| async move {
            let event = feed.next().await?;
            Some((Ok(event), feed))
        })
    }

    async fn next(&mut self) -> Option<SseEvent> {
        if std::mem::take(&mut self.reset_first) {
            return Some(reset());
        }
        while let Some(event) = self.backlog.pop_front() {
            if self.may_see(&event) {
                return Some(to_sse(&event));
            }
        }
        loop {
            let next = self.live.recv().await;
            // A logout anywhere ends the stream before it sends anything more.
            if self.ended() {
                return None;
            }
            match next {
                Ok(event) if self.may_see(&event) => return Some(to_sse(&event)),
                Ok(_) => {}
                // The client fell too far behind: it reloads instead of missing events.
                Err(RecvError::Lagged(_)) => return Some(reset()),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Whether the session was revoked; cheap while no session anywhere was.
    fn ended(&mut self) -> bool {
        let now = self.tokens.revocations();
        if now == self.revocations {
            return false;
        }
        self.revocations = now;
        self.tokens.is_revoked(&self.sid)
    }

    fn may_see(&self, event: &HubEvent) -> bool {
        match &event.audience {
            Audience::Everyone => true,
            Audience::Users(users) => users.contains(&self.user),
            Audience::Channel(channel) => self.sessions.is_member(&self.user, channel),
            Audience::ChannelAnd(channel, user) => *user == self.user || self.sessions.is_member(&self.user, channel),
            Audience::ChannelExcept(channel, user) => {
                *user != self.user && self.sessions.is_member(&self.user, channel)
            }
        }
    }
}

fn to_sse(event: &HubEvent) -> SseEvent {
    SseEvent::default().id(event.seq.to_string()).event(event.name).data(&event.json)
}

fn reset() -> SseEvent {
    let event = Event::Reset;
    SseEvent::default().event(event.name()).data(r#"{"type":"reset"}"#)
}
